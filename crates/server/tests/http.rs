//! The server through real HTTP on loopback, with the repo's tiny models: every endpoint, the
//! OpenAI fields, streaming parsed as server-sent events, each error status, concurrent clients
//! and a client that disconnects mid-stream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tunesmith_engine::model::load;
use tunesmith_server::{ServeConfig, Server};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures")
        .join(name)
}

fn serve(model: &str, edit: impl FnOnce(&mut ServeConfig)) -> Server {
    let loaded = load(model);
    let mut config = ServeConfig::new("tiny");
    config.port = 0;
    edit(&mut config);
    Server::start(loaded, config).unwrap()
}

fn load(model: &str) -> load::LoadedModel {
    load::load_dir(
        &fixture(model),
        &tunesmith_engine::device::select("cpu").unwrap(),
    )
    .unwrap()
}

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

/// POSTs JSON; the status and the parsed body, whatever the status.
fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    post_with(server, path, body, None)
}

fn post_with(server: &Server, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = ureq::post(&url(server, path));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    match req.send_json(body.clone()) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("request failed: {e}"),
    }
}

/// Reads an SSE response: the JSON of every `data:` line before `[DONE]`, and whether `[DONE]`
/// came.
fn stream(server: &Server, path: &str, body: &Value) -> (Vec<Value>, bool) {
    let r = ureq::post(&url(server, path))
        .send_json(body.clone())
        .unwrap();
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let mut events = Vec::new();
    for line in BufReader::new(r.into_reader()).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            if data == "[DONE]" {
                return (events, true);
            }
            events.push(serde_json::from_str(data).unwrap());
        }
    }
    (events, false)
}

fn error_of(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {body}"))
}

#[test]
fn completions_answer_in_openais_shape_and_honour_the_fields() {
    let server = serve("gpt2-tiny", |_| ());
    let (status, body) = post(
        &server,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "The cat", "max_tokens": 5, "temperature": 0, "logprobs": 2, "user": "me"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], "tiny");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    let usage = &body["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((1..=5).contains(&completion));
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
    assert_eq!(
        choice["finish_reason"],
        if completion == 5 { "length" } else { "stop" }
    );
    // Logprobs: one per token, each ≤ 0, the chosen (greedy) token the most likely of the top 2,
    // and the tokens spell the text.
    let lp = &choice["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tokens.len() as u64, completion);
    assert_eq!(tokens.concat(), choice["text"].as_str().unwrap());
    for (i, l) in lp["token_logprobs"].as_array().unwrap().iter().enumerate() {
        let l = l.as_f64().unwrap();
        assert!(l <= 0.0);
        let top = lp["top_logprobs"][i].as_object().unwrap();
        assert!(top.len() <= 2 && !top.is_empty());
        let best = top
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(
            (best - l).abs() < 1e-5,
            "greedy picks the most likely token"
        );
        let mass: f64 = top.values().map(|v| v.as_f64().unwrap().exp()).sum();
        assert!(mass <= 1.0 + 1e-5);
    }

    // Greedy is reproducible; echo puts the prompt first.
    let again = post(
        &server,
        "/v1/completions",
        &json!({"prompt": "The cat", "max_tokens": 5, "temperature": 0, "echo": true}),
    )
    .1;
    assert_eq!(
        again["choices"][0]["text"],
        format!("The cat{}", choice["text"].as_str().unwrap())
    );

    // n samples per prompt, prompts in order; a seed makes sampling reproducible.
    let sampled = json!({"prompt": ["Once", "The dog"], "max_tokens": 8, "n": 3, "seed": 7, "temperature": 1.0});
    let (status, a) = post(&server, "/v1/completions", &sampled);
    assert_eq!(status, 200, "{a}");
    let b = post(&server, "/v1/completions", &sampled).1;
    let texts = |v: &Value| {
        v["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&a).len(), 6);
    assert_eq!(texts(&a), texts(&b));
    let indexes: Vec<u64> = a["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..6).collect::<Vec<_>>());

    // A stop string ends the text before it.
    let free = post(
        &server,
        "/v1/completions",
        &json!({"prompt": "The", "max_tokens": 30, "temperature": 0}),
    )
    .1;
    let free_text = free["choices"][0]["text"].as_str().unwrap().to_string();
    let stop = free_text
        .get(3..5)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| panic!("pick another stop in {free_text:?}"));
    {
        let cut = post(
            &server,
            "/v1/completions",
            &json!({"prompt": "The", "max_tokens": 30, "temperature": 0, "stop": [stop]}),
        )
        .1;
        let text = cut["choices"][0]["text"].as_str().unwrap();
        assert_eq!(text, &free_text[..free_text.find(stop).unwrap()]);
        assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    }
}

#[test]
fn replies_fit_the_context_and_usage_counts_each_prompt() {
    let server = serve("gpt2-tiny", |_| ());
    // The context is 64 tokens: a limit past it is cut to what the prompt leaves.
    let (status, body) = post(
        &server,
        "/v1/completions",
        &json!({"prompt": "The cat", "max_tokens": 1000000, "logit_bias": {"0": -100}}),
    );
    assert_eq!(status, 200, "{body}");
    let usage = &body["usage"];
    assert_eq!(usage["total_tokens"], 64, "{usage}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    // The same prompt twice counts twice; n samples of one prompt count it once.
    let one = post(
        &server,
        "/v1/completions",
        &json!({"prompt": "The cat", "max_tokens": 1}),
    )
    .1["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap();
    let twice = post(
        &server,
        "/v1/completions",
        &json!({"prompt": ["The cat", "The cat"], "max_tokens": 1, "n": 3}),
    )
    .1;
    assert_eq!(twice["usage"]["prompt_tokens"].as_u64().unwrap(), 2 * one);
    // null for an optional field is the same as leaving it out.
    assert_eq!(
        post(
            &server,
            "/v1/completions",
            &json!({"prompt": "x", "max_tokens": 1, "stream": null, "echo": null})
        )
        .0,
        200
    );
}

#[test]
fn streaming_sends_chunks_then_done_and_matches_the_whole_answer() {
    let server = serve("gpt2-tiny", |_| ());
    let request = json!({"prompt": "The cat", "max_tokens": 12, "temperature": 0, "n": 2});
    let whole = post(&server, "/v1/completions", &request).1;
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (events, done) = stream(&server, "/v1/completions", &streamed);
    assert!(done, "the stream ends with [DONE]");
    let mut texts = vec![String::new(); 2];
    let mut finishes = vec![Value::Null; 2];
    for e in &events {
        if let Some(usage) = e.get("usage") {
            assert_eq!(usage, &whole["usage"]);
            continue;
        }
        assert_eq!(e["object"], "text_completion");
        let c = &e["choices"][0];
        let i = c["index"].as_u64().unwrap() as usize;
        texts[i] += c["text"].as_str().unwrap();
        if !c["finish_reason"].is_null() {
            finishes[i] = c["finish_reason"].clone();
        }
    }
    for i in 0..2 {
        assert_eq!(texts[i], whole["choices"][i]["text"].as_str().unwrap());
        assert_eq!(finishes[i], whole["choices"][i]["finish_reason"]);
    }
}

#[test]
fn chat_completions_use_the_models_template() {
    let server = serve("smollm2-chat-tiny", |_| ());
    let messages = json!([
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]},
    ]);
    let (status, body) = post(
        &server,
        "/v1/chat/completions",
        &json!({"model": "tiny", "messages": messages, "max_completion_tokens": 6, "temperature": 0, "logprobs": true, "top_logprobs": 2}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        content.len() as u64,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );
    // Each token's bytes, joined, are the reply's bytes (a token may be half a character).
    let bytes: Vec<u8> = content
        .iter()
        .flat_map(|t| {
            t["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
        })
        .collect();
    let text = choice["message"]["content"].as_str().unwrap();
    assert_eq!(String::from_utf8_lossy(&bytes), text);
    // The prompt is the template's rendering: the same conversation through the engine gives the
    // same prompt length.
    let loaded = load("smollm2-chat-tiny");
    let parsed = tunesmith_engine::chat::parse_messages(&json!([
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Hi there"},
    ]))
    .unwrap();
    let prompt = tunesmith_engine::chat::render(loaded.template.as_ref(), &parsed, true).unwrap();
    let ids = tunesmith_engine::data::tokenizer::encode(&loaded.tokenizer, &prompt).unwrap();
    assert_eq!(
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        ids.len() as u64
    );

    let (events, done) = stream(
        &server,
        "/v1/chat/completions",
        &json!({"messages": messages, "max_tokens": 6, "temperature": 0, "stream": true}),
    );
    assert!(done);
    assert_eq!(events[0]["object"], "chat.completion.chunk");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = events
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(text, choice["message"]["content"].as_str().unwrap());
}

#[test]
fn models_and_health() {
    let server = serve("gpt2-tiny", |_| ());
    let models: Value = ureq::get(&url(&server, "/v1/models"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "tiny");
    let one: Value = ureq::get(&url(&server, "/v1/models/tiny"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(one["object"], "model");
    let health: Value = ureq::get(&url(&server, "/health"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[test]
fn bad_requests_get_openais_error_shape_and_status() {
    let server = serve("gpt2-tiny", |c| c.max_body_bytes = 4096);
    let cases = [
        (json!({"prompt": "x", "max_tokens": -1}), 400, "max_tokens"),
        (json!({"prompt": "x", "temperature": 3}), 400, "temperature"),
        (json!({"prompt": "x", "top_p": 0}), 400, "top_p"),
        (json!({"prompt": "x", "n": 0}), 400, "n"),
        (
            json!({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
            400,
            "stop",
        ),
        (json!({"prompt": "x", "logprobs": 9}), 400, "logprobs"),
        (
            json!({"prompt": "x", "presence_penalty": 5}),
            400,
            "presence_penalty",
        ),
        (
            json!({"prompt": "x", "logit_bias": {"a": 1}}),
            400,
            "logit_bias",
        ),
        (
            json!({"prompt": "x", "logit_bias": {"5": 101}}),
            400,
            "logit_bias",
        ),
        (json!({"prompt": "x", "max_tokns": 5}), 400, "max_tokns"),
        (json!({"prompt": "word ".repeat(200)}), 400, "prompt"),
        (json!({"model": "gpt-4", "prompt": "x"}), 404, "gpt-4"),
        (json!({"prompt": "x".repeat(5000)}), 413, "larger"),
    ];
    for (body, status, named) in cases {
        let (got, reply) = post(&server, "/v1/completions", &body);
        assert_eq!(got, status, "{body}: {reply}");
        assert!(error_of(&reply).contains(named), "{body}: {reply}");
        assert!(reply["error"]["type"].is_string());
    }
    let (got, reply) = post(
        &server,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "robot", "content": "x"}]}),
    );
    assert_eq!(got, 400);
    assert!(error_of(&reply).contains("robot"));
    let (got, _) = post(&server, "/v1/nothing", &json!({}));
    assert_eq!(got, 404);
    // Not JSON at all.
    let r = ureq::post(&url(&server, "/v1/completions"))
        .set("Content-Type", "application/json")
        .send_string("{oops");
    match r {
        Err(ureq::Error::Status(400, r)) => {
            assert!(error_of(&r.into_json().unwrap()).contains("not valid"))
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // What a web page could send: a form's text/plain body, a request from another site, a
    // request addressed to another name (DNS rebinding).
    let status = |r: Result<ureq::Response, ureq::Error>| match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, r)) => {
            assert!(!error_of(&r.into_json().unwrap()).is_empty());
            s
        }
        Err(e) => panic!("{e}"),
    };
    let ok = json!({"prompt": "x", "max_tokens": 1}).to_string();
    let req = || ureq::post(&url(&server, "/v1/completions"));
    assert_eq!(
        status(req().set("Content-Type", "text/plain").send_string(&ok)),
        415
    );
    assert_eq!(
        status(
            req()
                .set("Content-Type", "application/json")
                .set("Origin", "https://evil.example")
                .send_string(&ok)
        ),
        403
    );
    assert_eq!(
        status(
            req()
                .set("Content-Type", "application/json")
                .set("Host", "evil.example")
                .send_string(&ok)
        ),
        403
    );
    assert_eq!(
        status(
            req()
                .set("Content-Type", "application/json")
                .send_string(&ok)
        ),
        200
    );
}

#[test]
fn an_api_key_is_required_when_set() {
    let server = serve("gpt2-tiny", |c| c.api_key = Some("sesame".into()));
    let body = json!({"prompt": "x", "max_tokens": 1});
    assert_eq!(post(&server, "/v1/completions", &body).0, 401);
    assert_eq!(
        post_with(&server, "/v1/completions", &body, Some("wrong")).0,
        401
    );
    assert_eq!(
        post_with(&server, "/v1/completions", &body, Some("sesame")).0,
        200
    );
    match ureq::get(&url(&server, "/v1/models")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn concurrent_clients_are_all_served_and_a_full_queue_says_429() {
    let server = serve("gpt2-tiny", |c| c.queue = 64);
    let addr = server.addr();
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    ureq::post(&format!("http://{addr}/v1/completions"))
                        .send_json(json!({"prompt": format!("Client {i}"), "max_tokens": 20, "temperature": 0}))
                        .unwrap()
                        .into_json::<Value>()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Interleaving does not change anyone's answer.
    for (i, a) in answers.iter().enumerate() {
        let alone = post(
            &server,
            "/v1/completions",
            &json!({"prompt": format!("Client {i}"), "max_tokens": 20, "temperature": 0}),
        )
        .1;
        assert_eq!(a["choices"][0]["text"], alone["choices"][0]["text"]);
    }
    drop(server);

    let small = serve("gpt2-tiny", |c| c.queue = 1);
    // More samples than the server ever takes at once: 400, not a retry-able 429.
    let (status, reply) = post(&small, "/v1/completions", &json!({"prompt": "x", "n": 40}));
    assert_eq!(status, 400, "{reply}");
    // Eight clients of 8 samples each, at once, against 8 decoding and 1 waiting: some are told
    // the server is busy (429), and those let in are answered.
    let addr = small.addr();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(move || {
                    let r = ureq::post(&format!("http://{addr}/v1/completions")).send_json(
                        json!({"prompt": "x", "n": 8, "max_tokens": 40, "logit_bias": {"0": -100}}),
                    );
                    match r {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, r)) => {
                            let body: Value = r.into_json().unwrap();
                            assert!(error_of(&body).contains("busy"), "{body}");
                            code
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // The server recovers once the queue drains.
    std::thread::sleep(Duration::from_millis(200));
    let mut ok = false;
    for _ in 0..50 {
        if post(
            &small,
            "/v1/completions",
            &json!({"prompt": "x", "max_tokens": 2}),
        )
        .0 == 200
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "the server serves again after a 429");
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_the_model() {
    let server = serve("gpt2-tiny", |c| c.queue = 16);
    // A long stream, read a little, then the connection is closed.
    let mut conn = TcpStream::connect(server.addr()).unwrap();
    // Token 0 (end of text) banned, so nothing ends early.
    let body = json!({"prompt": "The", "max_tokens": 100000, "stream": true, "n": 8, "logit_bias": {"0": -100}}).to_string();
    write!(
        conn,
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 512];
    let n = conn.read(&mut first).unwrap();
    let head = String::from_utf8_lossy(&first[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let busy = |s: &Server| {
        let h: Value = ureq::get(&url(s, "/health"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        h["active"].as_u64().unwrap() + h["waiting"].as_u64().unwrap()
    };
    assert!(busy(&server) > 0, "the samples are being decoded");
    drop(conn);
    // 8 samples of 100 000 tokens would keep the model busy for minutes: closing the connection
    // must stop them.
    let start = std::time::Instant::now();
    while busy(&server) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the samples kept running after the client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = post(
        &server,
        "/v1/completions",
        &json!({"prompt": "Hi", "max_tokens": 3}),
    );
    assert_eq!(status, 200);
}

/// The official `openai` Python client against the server (skipped, saying so, when Python or
/// the package is missing): models, completions with n/stop/seed/logprobs, streaming, chat, and
/// its exception types for our errors.
#[test]
fn the_openai_python_client_talks_to_the_server() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_openai = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_openai {
        eprintln!(
            "skipped: {python} with the `openai` package is not installed (pip install openai)"
        );
        return;
    }
    let server = serve("gpt2-tiny", |c| c.api_key = Some("sesame".into()));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}/v1", server.addr()))
        .arg("tiny")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `logit_bias` steers every token (a +100 bias makes that token the only choice), and chat's
/// `developer` role is read as `system` (the same prompt).
#[test]
fn logit_bias_steers_and_developer_means_system() {
    let server = serve("gpt2-tiny", |_| ());
    let (status, body) = post(
        &server,
        "/v1/completions",
        &json!({"prompt": "The", "max_tokens": 3, "temperature": 1, "logprobs": 0, "logit_bias": {"5": 100}}),
    );
    assert_eq!(status, 200, "{body}");
    let tokens = body["choices"][0]["logprobs"]["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    drop(server);

    let chat = serve("smollm2-chat-tiny", |_| ());
    let usage = |role: &str| {
        post(
            &chat,
            "/v1/chat/completions",
            &json!({"messages": [{"role": role, "content": "Be brief."}, {"role": "user", "content": "Hi"}], "max_tokens": 1}),
        )
        .1["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(usage("developer"), usage("system"));
}
