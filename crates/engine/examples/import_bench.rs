//! Import throughput per format on the generated fixture corpus, and the peak memory of preparing
//! one large generated text file (streamed block by block).
//!
//! `cargo run --release -p tunesmith-engine --example import_bench -- [BIG_FILE_MB]` (default 1024;
//! 0 skips the large file). Peak memory is the process's high-water mark (VmHWM, Linux).

// An example prints its results.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tunesmith_engine::data::import::{extension, import_file, ImportOptions};
use tunesmith_engine::data::prepare::{self, PrepareOptions};
use tunesmith_engine::data::tokenizer;
use tunesmith_engine::NullSink;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/good")
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Imports every file of one format repeatedly for about a second; MB/s of input.
fn throughput(files: &[PathBuf]) -> (f64, u64) {
    let opts = ImportOptions::default();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(1) || rounds < 3 {
        for f in files {
            import_file(f, &opts).expect("fixture imports");
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    ((bytes * rounds) as f64 / secs / 1e6, bytes)
}

fn big_text(path: &Path, mb: u64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut i = 0u64;
    while written < mb << 20 {
        let para = format!(
            "Order {i} left the warehouse on day {} and reached customer {} after {} days; \
             the invoice total was {}.{:02} euros and the courier rated the route {}.\n\n",
            i % 365,
            i * 7919 % 100_003,
            i % 9 + 1,
            i * 31 % 5000,
            i % 100,
            i % 5 + 1
        );
        w.write_all(para.as_bytes()).unwrap();
        written += para.len() as u64;
        i += 1;
    }
    w.flush().unwrap();
}

fn main() {
    let big_mb: u64 = std::env::args()
        .nth(1)
        .map_or(1024, |a| a.parse().expect("BIG_FILE_MB is a number"));
    let mut by_format: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for e in std::fs::read_dir(corpus()).unwrap() {
        let p = e.unwrap().path();
        by_format.entry(extension(&p)).or_default().push(p);
    }
    println!("| format | fixture bytes | MB/s |");
    println!("|---|---:|---:|");
    for (ext, files) in &by_format {
        let (mbs, bytes) = throughput(files);
        println!("| .{ext} | {bytes} | {mbs:.1} |");
    }
    if big_mb == 0 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    big_text(&path, big_mb);
    let before = peak_rss_mb();
    let start = Instant::now();
    let opts = PrepareOptions::default();
    let c = prepare::collect(std::slice::from_ref(&path), &opts, &mut NullSink).unwrap();
    let tok = tokenizer::train_bpe(
        ["Order left the warehouse on day and reached customer after days the invoice total was euros and the courier rated the route"].iter(),
        400,
    )
    .unwrap();
    let m = prepare::write(
        &dir.path().join("ds"),
        c,
        &opts,
        &tok,
        "bench",
        &mut NullSink,
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\n{big_mb} MB text file: prepared in {secs:.1} s ({:.1} MB/s), {} tokens; peak memory {:.0} MB (before: {:.0} MB)",
        (big_mb << 20) as f64 / secs / 1e6,
        m.report.tokens,
        peak_rss_mb(),
        before
    );
}
