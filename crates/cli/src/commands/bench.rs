//! `tunesmith bench`: our training and generation throughput next to PyTorch's, measured in the
//! same invocation (these machines drift by up to 30 % between minutes; only same-run ratios count).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};
use tunesmith_engine::bench::{self, Decode};
use tunesmith_engine::model::load;
use tunesmith_engine::{device, memory};

use crate::args::BenchArgs;

/// The PyTorch reference script, from the source tree or beside the current directory.
fn torch_script() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/torch_bench.py"),
        PathBuf::from("bench/torch_bench.py"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// Runs the PyTorch reference for `preset`/`mode`; its JSON line (`tokens_per_sec`, and
/// `peak_rss_bytes` for training).
fn torch(args: &BenchArgs, preset: &str, mode: &str, steps: usize) -> Option<Value> {
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
            // Untimed steps as ours take (generation: one untimed generation, as
            // `bench::generate_tokens_per_sec` does).
            "--warmup",
            &if mode == "train" {
                bench::WARMUP_STEPS
            } else {
                1
            }
            .to_string(),
        ])
        .output()
        .ok()?;
    last_json(&out, "PyTorch reference")
}

/// Whether a child finished well; if not, says so with its last error line.
fn succeeded(out: &std::process::Output, what: &str) -> bool {
    if !out.status.success() {
        eprintln!(
            "({what} unavailable: {})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    out.status.success()
}

/// The last stdout line of a finished child as JSON, or `None` with its last error line shown.
fn last_json(out: &std::process::Output, what: &str) -> Option<Value> {
    if !succeeded(out, what) {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .to_string();
    serde_json::from_str(&line).ok()
}

/// Our training figures for one preset, measured in a child process so that its peak memory is
/// that preset's alone.
fn ours_train(args: &BenchArgs, preset: &str) -> Result<(f64, Option<u64>)> {
    let out = Command::new(std::env::current_exe()?)
        .args(["bench", "--worker", "--presets", preset, "--steps"])
        .arg(args.steps.to_string())
        .output()?;
    let v = last_json(&out, "our training measurement")
        .ok_or_else(|| anyhow::anyhow!("measuring `{preset}` failed"))?;
    let tps = v["train_tokens_per_sec"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("measuring `{preset}` gave no figure"))?;
    Ok((tps, v["peak_rss_bytes"].as_u64()))
}

/// The child's side of [`ours_train`].
fn worker(args: &BenchArgs) -> Result<()> {
    let p = bench::preset(args.presets.trim())?;
    let dev = device::select("auto")?;
    let tps = bench::train_tokens_per_sec(&p, args.steps, &dev)?;
    println!(
        "{}",
        json!({"train_tokens_per_sec": tps, "peak_rss_bytes": memory::peak_rss_bytes()})
    );
    Ok(())
}

/// The median of some figures (the mean of the middle two for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn gib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    })
}

fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or("-".into(), |t| format!("{:.2}x", ours / t))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.worker {
        return worker(&args);
    }
    if let Some(model) = &args.serve {
        return super::bench_serve::run(&args, model);
    }
    if let Some(tokens) = args.copies {
        return copies(tokens, args.json);
    }
    if args.growth {
        return growth(&args);
    }
    let dev = device::select("auto")?;
    let mut stream = None;
    for name in args
        .presets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let p = bench::preset(name)?;
        eprintln!("{name}: training…");
        // Interleaved rounds (ours, then PyTorch's), medians: these machines drift between
        // minutes, so only figures measured side by side compare.
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..args.rounds.max(1) {
            ours.push(ours_train(&args, name)?);
            theirs.extend(torch(&args, name, "train", args.steps));
        }
        let train = median(ours.iter().map(|o| o.0));
        let peak = ours.iter().filter_map(|o| o.1).max();
        let t_train = (!theirs.is_empty())
            .then(|| median(theirs.iter().filter_map(|v| v["tokens_per_sec"].as_f64())));
        let t_peak = theirs
            .iter()
            .filter_map(|v| v["peak_rss_bytes"].as_u64())
            .max();
        let mut row = json!({
            "preset": name,
            "batch": p.batch,
            "block": p.block,
            "lora": p.lora,
            "recompute": p.recompute,
            "train_tokens_per_sec": train,
            "torch_train_tokens_per_sec": t_train,
            "train_ratio": t_train.map(|t| train / t),
            "rounds": args.rounds.max(1),
            "peak_rss_bytes": peak,
            "estimated_peak_bytes": bench::estimated_peak_bytes(&p),
            "torch_peak_rss_bytes": t_peak,
            "memory_ratio": peak.zip(t_peak).map(|(a, b)| a as f64 / b as f64),
        });
        let mut line = format!(
            "{name:>6}  train {train:8.1} tok/s (PyTorch {}, ratio {})  peak memory {} (PyTorch {}; estimated {})",
            t_train.map_or("-".into(), |t| format!("{t:.1}")),
            ratio(train, t_train),
            gib(peak),
            gib(t_peak),
            gib(Some(bench::estimated_peak_bytes(&p))),
        );
        // Decoding depends on the shape alone: timed once per model, not per training mode.
        if !p.lora && !p.recompute {
            eprintln!("{name}: generation…");
            let (mut ours, mut theirs, mut streams) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..args.rounds.max(1) {
                ours.push(bench::generate_tokens_per_sec(
                    &p,
                    128,
                    Decode::Cached,
                    &dev,
                )?);
                // The machine's memory bandwidth beside each round's decodes: f32 decoding reads
                // every weight once per token, so this bounds both sides.
                let probe = stream.get_or_insert_with(bench::ReadBandwidth::new);
                streams.push(probe.measure());
                theirs.extend(torch_tps(&args, name, "generate"));
            }
            let cached = median(ours.into_iter());
            let bandwidth = median(streams.into_iter());
            let bytes = bench::decode_weight_bytes(&p.config) as f64;
            let bound = bandwidth / bytes;
            let t_gen = (!theirs.is_empty()).then(|| median(theirs.into_iter()));
            let full = bench::generate_tokens_per_sec(&p, 128, Decode::FullForward, &dev)?;
            let t_full = torch_tps(&args, name, "generate-nocache");
            let lean = bench::generate_tokens_per_sec(&p, 128, Decode::LastPosition, &dev)?;
            let extra = json!({
                "generate_tokens_per_sec": cached,
                "torch_generate_tokens_per_sec": t_gen,
                "generate_ratio": t_gen.map(|t| cached / t),
                "full_recompute_tokens_per_sec": full,
                "kv_cache_speedup": cached / full,
                "torch_full_recompute_tokens_per_sec": t_full,
                "torch_kv_cache_speedup": t_gen.zip(t_full).map(|(c, f)| c / f),
                "last_position_recompute_tokens_per_sec": lean,
                "kv_cache_speedup_vs_last_position": cached / lean,
                "decode_weight_bytes": bytes,
                "read_bandwidth_bytes_per_sec": bandwidth,
                "decode_read_bytes_per_sec": cached * bytes,
                "decode_bound_tokens_per_sec": bound,
                "decode_bound_ratio": t_gen.map(|t| bound / t),
            });
            row.as_object_mut()
                .expect("an object")
                .extend(extra.as_object().expect("an object").clone());
            line += &format!(
                "  generate {cached:7.1} tok/s (PyTorch {}, ratio {})  KV cache {:.1}x faster than full recompute ({:.1}x than last-position recompute)",
                t_gen.map_or("-".into(), |t| format!("{t:.1}")),
                ratio(cached, t_gen),
                cached / full,
                cached / lean
            );
            line += &format!(
                "  decode reads {:.1} GB/s of the {:.1} GB/s memory streams: at most {bound:.1} tok/s from memory (ratio {})",
                cached * bytes / 1e9,
                bandwidth / 1e9,
                ratio(bound, t_gen),
            );
        }
        if args.json {
            println!("{row}");
        } else {
            println!("{line}");
        }
    }
    for file in &args.gguf {
        gguf_decode(&args, file)?;
    }
    Ok(())
}

/// How the cost per token grows with length (see `bench::cost_growth`).
fn growth(args: &BenchArgs) -> Result<()> {
    eprintln!("cost growth: training at block 128 and 1024, decoding 2048 tokens…");
    let g = bench::cost_growth(args.steps, &device::select("auto")?)?;
    let train = g.train_ms_per_token_block_1024 / g.train_ms_per_token_block_128;
    let decode = g.decode_ms_per_token_last_128 / g.decode_ms_per_token_first_128;
    if args.json {
        println!(
            "{}",
            json!({
                "train_ms_per_token_block_128": g.train_ms_per_token_block_128,
                "train_ms_per_token_block_1024": g.train_ms_per_token_block_1024,
                "train_growth": train,
                "decode_ms_per_token_first_128": g.decode_ms_per_token_first_128,
                "decode_ms_per_token_last_128": g.decode_ms_per_token_last_128,
                "decode_growth": decode,
            })
        );
    } else {
        println!(
            "training per token: {:.3} ms at block 128, {:.3} ms at block 1024 ({train:.2}x); decoding per token: {:.2} ms over the first 128 tokens, {:.2} ms over the last 128 of 2048 ({decode:.2}x)",
            g.train_ms_per_token_block_128,
            g.train_ms_per_token_block_1024,
            g.decode_ms_per_token_first_128,
            g.decode_ms_per_token_last_128,
        );
    }
    Ok(())
}

fn torch_tps(args: &BenchArgs, preset: &str, mode: &str) -> Option<f64> {
    torch(args, preset, mode, 1)?["tokens_per_sec"].as_f64()
}

/// Decoding a GGUF file as chat runs it (quantised) and dequantised (`--dtype f32`), and processing
/// a 512-token prompt, next to llama.cpp's `llama-bench` on the same file (128 new tokens, this
/// machine's threads), in interleaved rounds; medians.
fn gguf_decode(args: &BenchArgs, file: &Path) -> Result<()> {
    let dev = &device::select("auto")?;
    let name = file.display().to_string();
    eprintln!("{name}: decoding…");
    let quant = load::load_dir_with(file, None, false, dev)?;
    // An untimed pass first: the first touches of the weights page them in.
    bench::decode_tokens_per_sec(&quant.model, 16, Decode::Cached)?;
    let (mut q, mut pp, mut lc, mut lc_pp) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.rounds.max(1) {
        q.push(bench::decode_tokens_per_sec(
            &quant.model,
            128,
            Decode::Cached,
        )?);
        pp.push(bench::prefill_tokens_per_sec(&quant.model, 512)?);
        if let Some((tg, p)) = llama_bench(args, file) {
            lc.push(tg);
            lc_pp.push(p);
        }
    }
    drop(quant);
    let dense = load::load_dir_with(file, None, true, dev)?;
    let f = bench::decode_tokens_per_sec(&dense.model, 128, Decode::Cached)?;
    let (q, pp) = (median(q.into_iter()), median(pp.into_iter()));
    let some_median = |v: Vec<f64>| (!v.is_empty()).then(|| median(v.into_iter()));
    let (lc, lc_pp) = (some_median(lc), some_median(lc_pp));
    let row = json!({
        "gguf": name,
        "decode_quantized_tokens_per_sec": q,
        "decode_f32_tokens_per_sec": f,
        "llama_cpp_decode_tokens_per_sec": lc,
        "llama_cpp_ratio": lc.map(|l| q / l),
        "prompt_tokens_per_sec": pp,
        "llama_cpp_prompt_tokens_per_sec": lc_pp,
        "llama_cpp_prompt_ratio": lc_pp.map(|l| pp / l),
    });
    if args.json {
        println!("{row}");
    } else {
        println!(
            "{name}  decode quantised {q:.1} tok/s (llama.cpp {}, ratio {}), dequantised f32 {f:.1} tok/s; 512-token prompt {pp:.1} tok/s (llama.cpp {}, ratio {})",
            lc.map_or("-".into(), |l| format!("{l:.1}")),
            ratio(q, lc),
            lc_pp.map_or("-".into(), |l| format!("{l:.1}")),
            ratio(pp, lc_pp),
        );
    }
    Ok(())
}

/// llama.cpp's decode and prompt speeds on `file` (`llama-bench -p 512 -n 128`): (tg128, pp512),
/// when the program is there.
fn llama_bench(args: &BenchArgs, file: &Path) -> Option<(f64, f64)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new(&args.llama_bench)
        .arg("-m")
        .arg(file)
        .args(["-p", "512", "-n", "128", "-r", "1", "-o", "json", "-t"])
        .arg(threads.to_string())
        .output()
        .map_err(|e| eprintln!("(llama.cpp's llama-bench unavailable: {e})"))
        .ok()?;
    if !succeeded(&out, "llama.cpp's llama-bench") {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let runs = v.as_array()?;
    let speed = |prompt: bool| {
        runs.iter()
            .find(|r| (r["n_prompt"].as_u64().unwrap_or(0) > 0) == prompt)
            .and_then(|r| r["avg_ts"].as_f64())
    };
    Some((speed(false)?, speed(true)?))
}

/// The memorisation check on `n` synthetic training tokens (a Zipf-like spread over a 50k
/// vocabulary, as text has): index build time, then replies of 500 tokens, half copied from the
/// training set in three passages and half new, timed one by one (median and worst of 21).
fn copies(n: usize, json_out: bool) -> Result<()> {
    use tunesmith_engine::eval::copied::{CopyIndex, DEFAULT_MIN_TOKENS};
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Zipf-like: squaring a uniform draw favours small ids, as frequent words are.
    let mut token = || {
        let u = (next() % 1_000_000) as f64 / 1_000_000.0;
        (u * u * 50_000.0) as u32
    };
    let train: Vec<u32> = (0..n).map(|_| token()).collect();
    let started = Instant::now();
    let index = CopyIndex::build(train.clone(), DEFAULT_MIN_TOKENS)?;
    let build_secs = started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    let mut found = 0;
    for r in 0..21usize {
        let mut reply = Vec::with_capacity(500);
        for part in 0..3usize {
            let at = (r * 7919 + part * 104_729) * 997 % (n - 100);
            reply.extend(&train[at..at + 83]);
            reply.extend((0..84).map(|_| token()));
        }
        reply.truncate(500);
        let t = Instant::now();
        let spans = index.find(&reply);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        found += spans.len();
    }
    times.sort_by(f64::total_cmp);
    let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
    if json_out {
        println!(
            "{}",
            json!({"copies_tokens": n, "build_secs": build_secs, "query_ms_median": median, "query_ms_max": worst, "spans_found": found})
        );
    } else {
        println!(
            "copy index of {n} tokens: built in {build_secs:.1} s; a 500-token reply checked in {median:.2} ms (median of 21, worst {worst:.2} ms); {found} copied spans found"
        );
    }
    Ok(())
}
