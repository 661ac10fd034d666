//! `tunesmith bench`: our training and generation throughput next to PyTorch's, measured in the
//! same invocation (these machines drift by up to 30 % between minutes; only same-run ratios count).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use serde_json::json;
use tunesmith_engine::bench::{self, Decode};
use tunesmith_engine::device;

use crate::args::BenchArgs;

/// The PyTorch reference script, from the source tree or beside the current directory.
fn torch_script() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/torch_bench.py"),
        PathBuf::from("bench/torch_bench.py"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

fn torch(args: &BenchArgs, preset: &str, mode: &str, steps: usize) -> Option<f64> {
    if args.no_torch {
        return None;
    }
    let script = torch_script()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new(&args.python)
        .arg(script)
        .args([
            "--preset",
            preset,
            "--mode",
            mode,
            "--threads",
            &threads.to_string(),
            "--steps",
            &steps.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "(PyTorch reference unavailable: {})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .to_string();
    serde_json::from_str::<serde_json::Value>(&line).ok()?["tokens_per_sec"].as_f64()
}

fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or("-".into(), |t| format!("{:.2}x", ours / t))
}

pub fn run(args: BenchArgs) -> Result<()> {
    let dev = device::select("auto")?;
    for name in args
        .presets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let p = bench::preset(name)?;
        eprintln!("{name}: training…");
        // Interleaved: ours, PyTorch, ours again; our figure is the mean of the two.
        let a = bench::train_tokens_per_sec(&p, args.steps, &dev)?;
        let t_train = torch(&args, name, "train", args.steps);
        let b = bench::train_tokens_per_sec(&p, args.steps, &dev)?;
        let train = (a + b) / 2.0;
        eprintln!("{name}: generation…");
        let cached = bench::generate_tokens_per_sec(&p, 128, Decode::Cached, &dev)?;
        let t_gen = torch(&args, name, "generate", 1);
        let full = bench::generate_tokens_per_sec(&p, 128, Decode::FullForward, &dev)?;
        let t_full = torch(&args, name, "generate-nocache", 1);
        let lean = bench::generate_tokens_per_sec(&p, 128, Decode::LastPosition, &dev)?;
        let row = json!({
            "preset": name,
            "train_tokens_per_sec": train,
            "torch_train_tokens_per_sec": t_train,
            "train_ratio": t_train.map(|t| train / t),
            "generate_tokens_per_sec": cached,
            "torch_generate_tokens_per_sec": t_gen,
            "generate_ratio": t_gen.map(|t| cached / t),
            "full_recompute_tokens_per_sec": full,
            "kv_cache_speedup": cached / full,
            "torch_full_recompute_tokens_per_sec": t_full,
            "torch_kv_cache_speedup": t_gen.zip(t_full).map(|(c, f)| c / f),
            "last_position_recompute_tokens_per_sec": lean,
            "kv_cache_speedup_vs_last_position": cached / lean,
        });
        if args.json {
            println!("{row}");
        } else {
            println!(
                "{name:>6}  train {train:8.1} tok/s (PyTorch {}, ratio {})  generate {cached:7.1} tok/s (PyTorch {}, ratio {})  KV cache {:.1}x faster than full recompute ({:.1}x than last-position recompute)",
                t_train.map_or("-".into(), |t| format!("{t:.1}")),
                ratio(train, t_train),
                t_gen.map_or("-".into(), |t| format!("{t:.1}")),
                ratio(cached, t_gen),
                cached / full,
                cached / lean
            );
        }
    }
    Ok(())
}
