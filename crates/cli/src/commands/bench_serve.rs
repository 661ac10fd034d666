//! `tunesmith bench --serve MODEL`: the OpenAI-compatible server under 1, 4 and 8 concurrent
//! clients (tokens per second over all clients, p50/p95 request latency), next to llama.cpp's
//! `llama-server` on the same GGUF file under the same load when it is available. Both are driven
//! over HTTP by the same client code, in the same run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tunesmith_engine::device;
use tunesmith_server::{ServeConfig, Server};

use crate::args::BenchArgs;

/// One load level's outcome.
struct Load {
    tokens_per_sec: f64,
    p50: f64,
    p95: f64,
}

/// `clients` threads each send `requests` completions one after another to `base` (…/v1).
fn drive(base: &str, model: &str, clients: usize, requests: usize, tokens: usize) -> Result<Load> {
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("{base}/completions");
            let model = model.to_string();
            std::thread::spawn(move || -> Result<Vec<(f64, u64)>> {
                let mut out = Vec::new();
                for r in 0..requests {
                    let t0 = Instant::now();
                    let reply: Value = ureq::post(&url)
                        .timeout(Duration::from_secs(600))
                        .send_json(json!({
                            "model": model,
                            // Different prompts, so no server can answer from a cache.
                            "prompt": format!("Story {c}-{r}: Once upon a time"),
                            "max_tokens": tokens,
                            "temperature": 0,
                        }))?
                        .into_json()?;
                    let n = reply["usage"]["completion_tokens"].as_u64().unwrap_or(0);
                    out.push((t0.elapsed().as_secs_f64(), n));
                }
                Ok(out)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut total = 0u64;
    for h in handles {
        for (lat, n) in h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??
        {
            latencies.push(lat);
            total += n;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok(Load {
        tokens_per_sec: total as f64 / wall,
        p50: pct(0.5),
        p95: pct(0.95),
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process stopped when the bench ends, however it ends (an error in a round included).
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// llama.cpp's server on `gguf` with `slots` parallel sequences, once it answers /health.
fn start_llama_server(program: &str, gguf: &Path, slots: usize) -> Result<(Stopped, String)> {
    let port = free_port()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cmd = Command::new(program);
    if let Some(dir) = Path::new(program).parent().filter(|d| d.is_dir()) {
        cmd.env("LD_LIBRARY_PATH", dir);
    }
    let child = cmd
        .args([
            "-m",
            &gguf.display().to_string(),
            "--port",
            &port.to_string(),
        ])
        .args(["-t", &threads.to_string(), "-np", &slots.to_string()])
        .args(["-c", &(2048 * slots).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut child = Stopped(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ureq::get(&format!("{base}/health")).call().is_ok() {
            return Ok((child, format!("{base}/v1")));
        }
        if let Some(status) = child.0.try_wait()? {
            bail!("{program} exited ({status}) before answering");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{program} did not answer within 2 minutes")
}

pub fn run(args: &BenchArgs, model: &str) -> Result<()> {
    let levels: Vec<usize> = args
        .clients
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .context("--clients takes numbers, such as 1,4,8")?;
    let dev = device::select("auto")?;
    let dir = tunesmith_engine::source::resolve(model, &mut tunesmith_engine::NullSink)?;
    let loaded = tunesmith_engine::model::load::load_dir(&dir, &dev)?;
    let mut config = ServeConfig::new("bench");
    config.port = 0;
    let server = Server::start(loaded, config)?;
    let ours_base = format!("http://{}/v1", server.addr());
    let gguf = tunesmith_engine::model::gguf::is_gguf(&dir).then(|| dir.clone());
    let max_clients = levels.iter().copied().max().unwrap_or(1);
    let theirs = match &gguf {
        Some(g) => match start_llama_server(&args.llama_server, g, max_clients) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("(llama-server unavailable: {e})");
                None
            }
        },
        None => {
            eprintln!("(llama-server needs a GGUF model; skipped)");
            None
        }
    };
    // Warm both up (first-request allocations).
    drive(&ours_base, "bench", 1, 1, 8)?;
    if let Some((_, base)) = &theirs {
        drive(base, "bench", 1, 1, 8)?;
    }
    let mut rows = Vec::new();
    for &n in &levels {
        // Interleaved per level: ours, theirs.
        let ours = drive(&ours_base, "bench", n, args.requests, args.tokens)?;
        let other = match &theirs {
            Some((_, base)) => Some(drive(base, "bench", n, args.requests, args.tokens)?),
            None => None,
        };
        let row = json!({
            "clients": n,
            "tokens_per_sec": ours.tokens_per_sec,
            "p50_secs": ours.p50,
            "p95_secs": ours.p95,
            "llama_server_tokens_per_sec": other.as_ref().map(|o| o.tokens_per_sec),
            "llama_server_p50_secs": other.as_ref().map(|o| o.p50),
            "llama_server_p95_secs": other.as_ref().map(|o| o.p95),
            "ratio": other.as_ref().map(|o| ours.tokens_per_sec / o.tokens_per_sec),
        });
        if args.json {
            println!("{row}");
        } else {
            let theirs_text = other.map_or("llama-server -".to_string(), |o| {
                format!(
                    "llama-server {:6.1} tok/s p50 {:5.2}s p95 {:5.2}s  ratio {:.2}",
                    o.tokens_per_sec,
                    o.p50,
                    o.p95,
                    ours.tokens_per_sec / o.tokens_per_sec
                )
            });
            println!(
                "{n} clients: {:6.1} tok/s p50 {:5.2}s p95 {:5.2}s   {theirs_text}",
                ours.tokens_per_sec, ours.p50, ours.p95
            );
        }
        rows.push(row);
    }
    drop(theirs);
    server.stop();
    Ok(())
}
