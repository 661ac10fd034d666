//! Profiling helper: quantised decoding of a GGUF file, 128 tokens, a few rounds.
#![allow(clippy::print_stdout)]
fn main() -> tunesmith_engine::Result<()> {
    let file = std::env::args().nth(1).expect("a GGUF file");
    let dev = candle_core::Device::Cpu;
    let m = tunesmith_engine::model::load::load_dir_with(
        std::path::Path::new(&file),
        None,
        false,
        &dev,
    )?;
    use tunesmith_engine::bench::{decode_tokens_per_sec, Decode};
    decode_tokens_per_sec(&m.model, 16, Decode::Cached)?;
    for _ in 0..3 {
        println!(
            "{:.1} tok/s",
            decode_tokens_per_sec(&m.model, 128, Decode::Cached)?
        );
    }
    Ok(())
}
