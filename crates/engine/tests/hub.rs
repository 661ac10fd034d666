//! The hub client against a small HTTP server on loopback that answers like the Hugging Face hub
//! (`/{repo}/resolve/{rev}/{file}` with etag, commit and range headers), and hf-hub's cache layout.
//! No test touches the network.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use common::fixtures;
use tunesmith_engine::hub;
use tunesmith_engine::model::load::load_dir;
use tunesmith_engine::{CancelToken, Event, NullSink};

/// Serves `repo -> folder` for up to `max_requests` requests, then stops.
fn serve(repos: Vec<(&'static str, PathBuf)>, max_requests: usize) -> String {
    serve_at_pace(repos, max_requests, false)
}

/// [`serve`]; with `slow`, bodies over 10 kB trickle out 1 kB every 10 ms (a slow connection).
fn serve_at_pace(repos: Vec<(&'static str, PathBuf)>, max_requests: usize, slow: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).ok();
            let mut range_start = 0usize;
            let mut range_end = None;
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().trim() == "authorization: bearer hf_secret" {
                    authorized = true;
                }
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    range_start = a.parse().unwrap_or(0);
                    range_end = b.parse::<usize>().ok();
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            // Repositories under `gated/` answer as a gated hub repo does without access.
            if path.starts_with("/gated/") && !authorized {
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let file = repos.iter().find_map(|(repo, dir)| {
                let rest = path.strip_prefix(&format!("/{repo}/resolve/main/"))?;
                let f = dir.join(rest);
                f.is_file().then_some((f, rest.to_string()))
            });
            let Some((f, name)) = file else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let mut body = Vec::new();
            std::fs::File::open(&f)
                .unwrap()
                .read_to_end(&mut body)
                .unwrap();
            let size = body.len();
            let end = range_end.unwrap_or(size - 1).min(size - 1);
            let part = &body[range_start..=end];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {range_start}-{end}/{size}\r\nETag: \"etag-{name}-{size}\"\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\nConnection: close\r\n\r\n",
                part.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if slow && part.len() > 10_000 {
                for chunk in part.chunks(1024) {
                    if stream.write_all(chunk).is_err() {
                        break; // the client hung up (a stopped download)
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            } else {
                let _ = stream.write_all(part);
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn downloads_into_the_cache_with_progress_then_works_offline() {
    let endpoint = serve(
        vec![
            ("acme/tiny", fixtures().join("gpt2-tiny")),
            ("acme/noprefix", fixtures().join("gpt2-tiny-noprefix")),
        ],
        40,
    );
    let cache = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let dir = hub::download_from(
        &endpoint,
        "acme/tiny",
        cache.path(),
        &CancelToken::new(),
        &mut |e| events.push(e),
    )
    .unwrap();
    assert!(
        dir.starts_with(cache.path().join("models--acme--tiny/snapshots")),
        "{}",
        dir.display()
    );
    let m = load_dir(&dir, &Device::Cpu).unwrap();
    assert_eq!(m.config.weight_shapes().len(), 2 + 12 * 2 + 2);
    let weights_size = std::fs::metadata(fixtures().join("gpt2-tiny/model.safetensors"))
        .unwrap()
        .len();
    assert!(events.iter().any(|e| matches!(e, Event::Progress { stage, done, total, unit }
        if stage == "download model.safetensors" && unit == "bytes" && *done == weights_size && *total == weights_size)));

    // A repo without vocab.json/merges.txt: the missing optional files are skipped.
    let dir2 = hub::download_from(
        &endpoint,
        "acme/noprefix",
        cache.path(),
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    load_dir(&dir2, &Device::Cpu).unwrap();

    // Cached: no server needed any more (port 1 refuses connections).
    let again = hub::download_from(
        "http://127.0.0.1:1",
        "acme/tiny",
        cache.path(),
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(again, dir);

    // Unknown model: a clear message.
    let e = hub::download_from(
        &endpoint,
        "acme/nothing",
        cache.path(),
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("no model called `acme/nothing`"),
        "{e}"
    );
}

#[test]
fn unreachable_hub_fails_fast_and_says_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let e = hub::download_from(
        "http://127.0.0.1:1",
        "gpt2",
        cache.path(),
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(30));
    let msg = e.to_string();
    assert!(msg.contains("Could not download `gpt2`"), "{msg}");
    assert!(
        msg.contains("from scratch") && msg.contains("model folder"),
        "{msg}"
    );
    assert_eq!(e.kind(), "hub");
}

#[test]
fn finds_models_in_hf_hub_cache_layout() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--openai-community--gpt2");
    let commit = "a".repeat(40);
    let snap = repo.join("snapshots").join(&commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), &commit).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
    ] {
        std::fs::copy(fixtures().join("gpt2-tiny").join(f), snap.join(f)).unwrap();
    }
    let dir = hub::download_from(
        "http://127.0.0.1:1",
        "openai-community/gpt2",
        cache.path(),
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(dir, snap);
    // Loads with the tokenizer rebuilt from vocab.json + merges.txt.
    load_dir(&dir, &Device::Cpu).unwrap();
}

#[test]
fn a_stopped_download_ends_mid_file_and_leaves_no_partial_file() {
    let endpoint = serve_at_pace(vec![("acme/slow", fixtures().join("gpt2-tiny"))], 20, true);
    let cache = tempfile::tempdir().unwrap();
    let blobs = cache.path().join("models--acme--slow/blobs");
    let cancel = CancelToken::new();
    // Stop once part of the weights has arrived: the transfer is mid-file, not between files.
    let stopper = {
        let (cancel, blobs) = (cancel.clone(), blobs.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let partial = || {
                std::fs::read_dir(&blobs)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| {
                        e.path().extension().is_some_and(|x| x == "part")
                            && e.metadata().map(|m| m.len() > 4096).unwrap_or(false)
                    })
            };
            while !partial() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no partial file appeared"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            cancel.cancel();
        })
    };
    let e = hub::download_from(&endpoint, "acme/slow", cache.path(), &cancel, &mut NullSink)
        .unwrap_err();
    stopper.join().unwrap();
    assert_eq!(e.kind(), "cancelled", "{e}");
    let left: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!left.iter().any(|n| n.ends_with(".part")), "{left:?}");
    let weights_size = std::fs::metadata(fixtures().join("gpt2-tiny/model.safetensors"))
        .unwrap()
        .len();
    // Only config.json (finished before the stop) is a complete blob; no blob is the weights.
    for name in &left {
        let len = std::fs::metadata(blobs.join(name)).unwrap().len();
        assert_ne!(len, weights_size, "{name} holds the weights");
    }
    assert!(hub::cached("acme/slow", cache.path()).is_none());
    // A token already set stops before anything is fetched.
    let e = hub::download_from(&endpoint, "acme/slow", cache.path(), &cancel, &mut NullSink)
        .unwrap_err();
    assert_eq!(e.kind(), "cancelled");
}

/// The whole path a user takes: training from a hub id that is not in the cache yet, and Stop
/// pressed while its weights download. The run ends stopped (not failed) with no step taken, and
/// the cache keeps no weights. (The only test here that reads `HF_ENDPOINT`/`HF_HOME`, which it
/// sets: the others name their hub address and cache folder.)
#[test]
fn stop_while_a_run_downloads_its_model_stops_the_download() {
    use tunesmith_engine::runs::RunStatus;
    use tunesmith_engine::settings::{ModelSpec, TrainConfig};

    let endpoint = serve_at_pace(vec![("acme/slow", fixtures().join("gpt2-tiny"))], 20, true);
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_ENDPOINT", &endpoint);
    std::env::set_var("HF_HOME", home.path());
    let cfg = TrainConfig {
        model: ModelSpec::Source("acme/slow".into()),
        data: vec![fixtures().join("corpus.txt")],
        steps: Some(3),
        batch_size: 2,
        block_size: 32,
        ..Default::default()
    };
    // Stop as the weights start to arrive (they trickle in over about 1.5 s).
    let (summary, steps, pressed) = common::train_stopped_during_preparation(
        &cfg,
        &home.path().join("run"),
        |stage, done, total| stage == "download model.safetensors" && done < total,
    );
    assert_eq!(
        (summary.status, summary.steps, steps),
        (RunStatus::Stopped, 0, 0)
    );
    assert!(
        pressed,
        "Stop was never pressed: no download progress was reported"
    );
    assert!(hub::cached("acme/slow", &home.path().join("hub")).is_none());
    // Stopped mid-file, not after it: no blob in the cache is the (whole) weights file.
    let weights_size = std::fs::metadata(fixtures().join("gpt2-tiny/model.safetensors"))
        .unwrap()
        .len();
    let blobs = home.path().join("hub/models--acme--slow/blobs");
    let left: Vec<_> = std::fs::read_dir(&blobs).unwrap().flatten().collect();
    assert!(!left.is_empty(), "config.json's blob should be there");
    for e in left {
        let len = e.metadata().unwrap().len();
        assert_ne!(len, weights_size, "{:?} holds the whole weights", e.path());
    }
}

/// A sharded checkpoint downloads its index and every shard, with the chat model's side files; a
/// gated repository says how to get access, and downloads once HF_TOKEN holds a token it accepts.
#[test]
fn sharded_and_gated_repositories() {
    let endpoint = serve(
        vec![
            ("acme/sharded", fixtures().join("llama-tiny-sharded")),
            ("gated/chat", fixtures().join("smollm2-chat-tiny")),
        ],
        60,
    );
    let cache = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let dir = hub::download_from(
        &endpoint,
        "acme/sharded",
        cache.path(),
        &cancel,
        &mut NullSink,
    )
    .unwrap();
    for f in [
        "model.safetensors.index.json",
        "model-00001-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
        "generation_config.json",
        "tokenizer_config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} was not downloaded");
    }
    load_dir(&dir, &Device::Cpu).unwrap();
    assert_eq!(hub::cached("acme/sharded", cache.path()), Some(dir));

    // The token comes from the environment; this test alone sets HF_TOKEN.
    std::env::remove_var("HF_TOKEN");
    let e = hub::download_from(
        &endpoint,
        "gated/chat",
        cache.path(),
        &cancel,
        &mut NullSink,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("gated") && e.contains("HF_TOKEN"), "{e}");
    std::env::set_var("HF_TOKEN", "hf_secret");
    let dir = hub::download_from(
        &endpoint,
        "gated/chat",
        cache.path(),
        &cancel,
        &mut NullSink,
    )
    .unwrap();
    std::env::remove_var("HF_TOKEN");
    assert!(dir.join("chat_template.jinja").is_file());
    assert!(load_dir(&dir, &Device::Cpu).unwrap().template.is_some());
}
