//! A mutation fuzzer for the document importers that runs on the stable toolchain (the libFuzzer
//! targets in fuzz/ need nightly). It has no coverage guidance: it mutates the fixture files at
//! random, reproducibly (each format's generator is seeded from its name).
//!
//! `cargo run --release -p tunesmith-engine --example fuzz_import -- SECONDS_PER_FORMAT [FORMAT...]`
//!
//! Inputs that panic go to `$CARGO_TARGET_DIR/fuzz-crashes/<format>-<n>.bin` (./target without
//! CARGO_TARGET_DIR; a few per panic site), calls over 2 s to `<format>-slow-<n>.bin`, and a call
//! still running after 60 s to `<format>-hang.bin`, which ends the run (status 2). Status 1: some
//! input panicked. An abort (stack overflow, failed allocation) kills the process before anything
//! is saved; the run is deterministic, so rerun the same command with FUZZ_SAVE_LAST=1 and the
//! input that killed it is left in `<format>-last.bin`. Importers run on a thread with a 2 MiB
//! stack, what the desktop app's job threads get.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tunesmith_engine::data::import::{encoding, epub, html, office, pdf, rtf, structured, Limits};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

#[rustfmt::skip]
const FORMATS: &[&str] = &[
    "pdf", "docx", "odt", "epub", "html", "rtf", "csv", "tsv", "json", "jsonl", "txt", "md",
];
const ZIPS: &[&str] = &["docx", "odt", "epub"];
const MAX_LEN: usize = 1 << 20;
const SLOW: Duration = Duration::from_secs(2);
const HANG: Duration = Duration::from_secs(60);
/// Inputs saved per panic site.
const KEEP: usize = 3;
/// Slow inputs saved per format.
const KEEP_SLOW: usize = 20;

const INTERESTING: &[u8] = &[0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, b'\n', b'\\', b'{', b'<'];
/// Syntax of the formats read, for insertion and for long runs (deep nesting).
#[rustfmt::skip]
const DICT: &[&str] = &[
    "<", ">", "</", "/>", "<div>", "<p>", "<!--", "-->", "<![CDATA[", "]]>", "&amp;", "&#0;",
    "&#x110000;", "&#99999999999;", "<w:p>", "<w:t>", "<text:p>", "<itemref idref=\"", "\"",
    "{", "}", "\\", "{\\rtf1", "{\\*", "\\'ff", "\\u-1?", "\\uc9", "\\bin99999", "\\par",
    "\\fcharset128", "%PDF-1.7\n", " obj", "endobj", "stream\n", "endstream", "xref", "trailer",
    "startxref", "<<", ">>", "[", "]", "/Length ", "/Filter /FlateDecode", "/ToUnicode",
    "/Type /Page", "/Kids [", "/Encrypt", " 0 R", "\u{feff}", "\r\n", "\t", ",", "\"\"", ":",
    "null", "\"prompt\":", "\"completion\":", "\"messages\":", "\u{0}",
];
#[rustfmt::skip]
const NUMBERS: &[&str] = &[
    "0", "-1", "2147483647", "-2147483649", "4294967296", "99999999999999999999", "1e999",
    "007",
];

static LAST_PANIC: Mutex<(String, String)> = Mutex::new((String::new(), String::new()));
/// The input being run and since when, for the watchdog.
static CURRENT: Mutex<Option<(Instant, String, Vec<u8>)>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// xorshift64, seeded from a name (FNV-1a).
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Rng {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Rng(h | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// 0..n, or 0 when n is 0.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// `d[start..end]` replaced by `with`.
fn replace(d: &mut Vec<u8>, start: usize, end: usize, with: &[u8]) {
    let tail = d.split_off(end);
    d.truncate(start);
    d.extend_from_slice(with);
    d.extend_from_slice(&tail);
}

fn mutate(rng: &mut Rng, d: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = d.len();
    let at = rng.below(len + 1);
    match rng.below(11) {
        0 if len > 0 => d[at.min(len - 1)] ^= 1u8 << rng.below(8),
        1 if len > 0 => d[at.min(len - 1)] = rng.next_u64() as u8,
        2 => replace(d, at, at, &[rng.next_u64() as u8]),
        3 => replace(d, at, (at + 1 + rng.below(64)).min(len), &[]),
        4 => d.truncate(at),
        5 => {
            let chunk = d[at..(at + 1 + rng.below(256)).min(len)].to_vec();
            let to = rng.below(len + 1);
            replace(d, to, to, &chunk);
        }
        6 => {
            // Splice: this input's head, another seed's tail.
            let other = &seeds[rng.below(seeds.len())];
            d.truncate(at);
            d.extend_from_slice(&other[rng.below(other.len() + 1)..]);
        }
        7 => {
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let n = 1 + rng.below(4);
            d.iter_mut().skip(at).take(n).for_each(|b| *b = v);
        }
        8 => replace(d, at, at, DICT[rng.below(DICT.len())].as_bytes()),
        9 => {
            let run = DICT[rng.below(DICT.len())].repeat(1 << rng.below(15));
            replace(d, at, at, run.as_bytes());
        }
        10 => {
            // A number (a length, an offset, a control word's parameter) made extreme.
            if let Some(s) = d[at..].iter().position(u8::is_ascii_digit).map(|p| at + p) {
                let e = d[s..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| s + p);
                replace(d, s, e, NUMBERS[rng.below(NUMBERS.len())].as_bytes());
            }
        }
        _ => replace(d, at, at, &[INTERESTING[rng.below(INTERESTING.len())]]),
    }
    d.truncate(MAX_LEN);
}

/// The zip `data` rewritten with one entry's content mutated; `None` when it is not a readable
/// zip.
fn mutate_entry(rng: &mut Rng, data: &[u8], seeds: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).ok()?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().ok()?.into_owned();
        let stored = file.compression() == CompressionMethod::Stored;
        let mut content = Vec::new();
        // The zip-bomb fixture unpacks to far more than is worth mutating.
        Read::take(&mut file, MAX_LEN as u64)
            .read_to_end(&mut content)
            .ok()?;
        entries.push((name, stored, content));
    }
    if entries.is_empty() {
        return None;
    }
    // Prefer the markup the importers parse over images and fonts.
    let markup = |n: &str| {
        [".xml", ".xhtml", ".html", ".opf", ".ncx", ".rels"]
            .iter()
            .any(|e| n.ends_with(e))
    };
    let mut k = rng.below(entries.len());
    if !markup(entries[k].0.as_str()) {
        k = rng.below(entries.len());
    }
    for _ in 0..1 + rng.below(8) {
        mutate(rng, &mut entries[k].2, seeds);
    }
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, stored, content) in &entries {
        let method = if *stored {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        let opts = SimpleFileOptions::default().compression_method(method);
        w.start_file(name.as_str(), opts).ok()?;
        w.write_all(content).ok()?;
    }
    Some(w.finish().ok()?.into_inner())
}

/// One call of the format's importer; errors are fine, only panics count.
fn run(format: &str, data: &[u8]) {
    let limits = Limits {
        max_unpacked_bytes: 64 << 20,
        max_file_bytes: 64 << 20,
    };
    let path = PathBuf::from(format!("fuzz.{format}"));
    let p = path.as_path();
    // Text formats are decoded first, as `import_file` does.
    let text =
        || encoding::decode(p, data).unwrap_or_else(|_| String::from_utf8_lossy(data).into_owned());
    match format {
        "pdf" => drop(pdf::extract(p, data)),
        "docx" => drop(office::docx(p, data, &limits)),
        "odt" => drop(office::odt(p, data, &limits)),
        "epub" => drop(epub::extract(p, data, &limits)),
        "html" => drop(html::visible_text(&text())),
        "rtf" => drop(rtf::extract(p, &text())),
        "csv" | "tsv" => {
            let (text, tabs) = (text(), format == "tsv");
            // The column names of the seed tables (good/pairs.tsv and good/products.csv).
            let (a, b) = if tabs {
                ("question", "answer")
            } else {
                ("name", "description")
            };
            drop(structured::table(p, &text, tabs, None));
            drop(structured::table(
                p,
                &text,
                tabs,
                Some(&(a.to_string(), b.to_string())),
            ));
        }
        "json" => drop(structured::json(p, &text())),
        "jsonl" => drop(structured::jsonl(p, &text())),
        _ => drop(encoding::decode(p, data)),
    }
}

/// Every fixture file with the format's extension, in a fixed order; one empty input if none.
fn seeds(format: &str) -> Vec<Vec<u8>> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")];
    let mut paths = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(format))
            {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let mut seeds: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

fn save(file: &Path, data: &[u8]) {
    if let Err(e) = std::fs::write(file, data) {
        eprintln!("cannot write {}: {e}", file.display());
    }
}

/// Fuzzes one format for `budget`: (executions, crashes, slow inputs).
fn fuzz(format: &str, budget: Duration, out: &Path, save_last: bool) -> (usize, usize, usize) {
    let seeds = seeds(format);
    let mut rng = Rng::new(format);
    let (mut execs, mut crashes, mut slow, mut saved) = (0, 0, 0, 0);
    let mut sites: HashMap<String, (usize, String)> = HashMap::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        // Each seed once as it is, then mutants.
        let data = match seeds.get(execs) {
            Some(seed) => seed.clone(),
            None => {
                let seed = &seeds[rng.below(seeds.len())];
                let zipped = ZIPS.contains(&format) && rng.below(2) == 0;
                let entry = if zipped {
                    mutate_entry(&mut rng, seed, &seeds)
                } else {
                    None
                };
                entry.unwrap_or_else(|| {
                    let mut d = seed.clone();
                    for _ in 0..1 + rng.below(8) {
                        mutate(&mut rng, &mut d, &seeds);
                    }
                    d
                })
            }
        };
        if save_last {
            save(&out.join(format!("{format}-last.bin")), &data);
        }
        *lock(&CURRENT) = Some((Instant::now(), format.to_string(), data.clone()));
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| run(format, &data)));
        let took = t.elapsed();
        *lock(&CURRENT) = None;
        execs += 1;
        if result.is_err() {
            crashes += 1;
            let (site, msg) = std::mem::take(&mut *lock(&LAST_PANIC));
            let seen = sites.entry(site.clone()).or_insert((0, msg.clone()));
            seen.0 += 1;
            if seen.0 <= KEEP {
                let file = out.join(format!("{format}-{saved}.bin"));
                saved += 1;
                save(&file, &data);
                eprintln!(
                    "{format}: panicked at {site}: {msg}\n  input: {}",
                    file.display()
                );
            }
        }
        if took > SLOW {
            if slow < KEEP_SLOW {
                let file = out.join(format!("{format}-slow-{slow}.bin"));
                save(&file, &data);
                eprintln!(
                    "{format}: took {:.1} s\n  input: {}",
                    took.as_secs_f64(),
                    file.display()
                );
            }
            slow += 1;
        }
    }
    for (site, (n, msg)) in &sites {
        eprintln!("{format}: {n} panic(s) at {site}: {msg}");
    }
    (execs, crashes, slow)
}

/// Saves the input of a call that runs past [`HANG`] and ends the process.
fn watchdog(dir: &Path) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let current = lock(&CURRENT);
        if let Some((since, format, data)) = current.as_ref() {
            if since.elapsed() > HANG {
                let file = dir.join(format!("{format}-hang.bin"));
                save(&file, data);
                eprintln!(
                    "{format}: a call ran over {} s; input: {}",
                    HANG.as_secs(),
                    file.display()
                );
                std::process::exit(2);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = format!(
        "usage: fuzz_import SECONDS_PER_FORMAT [FORMAT...]; formats: {}",
        FORMATS.join(" ")
    );
    let Some(secs) = args
        .first()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
    else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let formats: Vec<String> = match &args[1..] {
        [] => FORMATS.iter().map(|f| f.to_string()).collect(),
        chosen => chosen.iter().map(|f| f.to_ascii_lowercase()).collect(),
    };
    if let Some(f) = formats.iter().find(|f| !FORMATS.contains(&f.as_str())) {
        eprintln!("unknown format `{f}`; {usage}");
        std::process::exit(2);
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let out = PathBuf::from(target).join("fuzz-crashes");
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        std::process::exit(2);
    }
    let save_last = std::env::var_os("FUZZ_SAVE_LAST").is_some();
    // Silent: panics are counted and reported per site instead.
    std::panic::set_hook(Box::new(|info| {
        let site = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned());
        *lock(&LAST_PANIC) = (site, msg.unwrap_or_default());
    }));
    let dir = out.clone();
    std::thread::spawn(move || watchdog(&dir));
    let budget = Duration::from_secs_f64(secs);
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            println!(
                "{:<6} {:>10} {:>9} {:>8} {:>5}",
                "format", "execs", "execs/s", "crashes", "slow"
            );
            let mut total = 0;
            for format in &formats {
                let t = Instant::now();
                let (execs, crashes, slow) = fuzz(format, budget, &out, save_last);
                let rate = execs as f64 / t.elapsed().as_secs_f64();
                println!("{format:<6} {execs:>10} {rate:>9.0} {crashes:>8} {slow:>5}");
                total += crashes;
            }
            println!("inputs saved under {}", out.display());
            total
        });
    match worker.map(|w| w.join()) {
        Ok(Ok(0)) => {}
        Ok(Ok(_)) => std::process::exit(1),
        _ => {
            eprintln!("the fuzzer itself failed");
            std::process::exit(2);
        }
    }
}
