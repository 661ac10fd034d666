//! Profiling helper: greedy decoding of a GGUF file, quantised as chat runs it or expanded to f32.
//! `cargo run --release -p tunesmith-engine --example gguf_decode -- FILE.gguf [f32]`
#![allow(clippy::print_stdout)]

use tunesmith_engine::bench::{decode_tokens_per_sec, Decode};

fn main() -> tunesmith_engine::Result<()> {
    let file = std::env::args().nth(1).ok_or_else(|| {
        tunesmith_engine::Error::config("FILE", "usage: gguf_decode FILE.gguf [f32]")
    })?;
    let dequantize = std::env::args().nth(2).is_some_and(|a| a == "f32");
    let dev = candle_core::Device::Cpu;
    let m = tunesmith_engine::model::load::load_dir_with(
        std::path::Path::new(&file),
        None,
        dequantize,
        &dev,
    )?;
    // An untimed pass first: the first touches of the weights page them in.
    decode_tokens_per_sec(&m.model, 16, Decode::Cached)?;
    let mut runs = (0..3)
        .map(|_| decode_tokens_per_sec(&m.model, 128, Decode::Cached))
        .collect::<tunesmith_engine::Result<Vec<f64>>>()?;
    runs.sort_by(f64::total_cmp);
    let kind = if dequantize { "f32" } else { "quantised" };
    println!(
        "{file} {kind}: {:.1} tok/s (median of {:.1} / {:.1} / {:.1})",
        runs[1], runs[0], runs[1], runs[2]
    );
    Ok(())
}
