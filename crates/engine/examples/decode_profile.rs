//! Profiling helper: greedy decoding with and without the KV cache for one bench preset.
//! `cargo run --release -p tunesmith-engine --example decode_profile -- small`
#![allow(clippy::print_stdout)]

fn main() -> tunesmith_engine::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "tiny".into());
    let p = tunesmith_engine::bench::preset(&name)?;
    let dev = candle_core::Device::Cpu;
    let only_cached = std::env::args().nth(2).is_some_and(|a| a == "cached");
    use tunesmith_engine::bench::Decode;
    for decode in [Decode::Cached, Decode::FullForward, Decode::LastPosition] {
        if only_cached && decode != Decode::Cached {
            continue;
        }
        let tps = tunesmith_engine::bench::generate_tokens_per_sec(&p, 128, decode, &dev)?;
        println!("{name} {decode:?}: {tps:.1} tok/s");
    }
    // The LM head alone: the share of a decode step spent reading the embedding.
    let c = p.config.width();
    let w = candle_core::Tensor::randn(0f32, 0.02, (p.config.vocab_size(), c), &dev)?;
    let x = candle_core::Tensor::randn(0f32, 1.0, (1, c), &dev)?;
    let t = std::time::Instant::now();
    for _ in 0..50 {
        tunesmith_engine::model::ops::matvec_rows(&x, &w)?;
    }
    println!(
        "head matvec: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0 / 50.0
    );
    Ok(())
}
