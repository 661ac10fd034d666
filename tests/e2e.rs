//! End-to-end: the real app binary in a real window (WebKitGTK under Xvfb), driven through
//! tauri-driver + WebKitWebDriver. Add two text files (and an empty one, which must be refused in
//! place), see the model page, train a tiny model from scratch for a few steps, watch the chart and
//! a checkpoint appear, stop and resume, then chat. Screenshots of each page are saved as
//! artefacts and checked not to be blank.
//!
//! A WebDriver cannot make the OS drag files onto a window, so the files go through the page's
//! documented test entry point `window.__tunesmithDrop(paths)` (ui/src/ipc/window.ts), the same
//! handler a real drop calls; everything behind it (inspection, training, chat) is the real engine.
//!
//! Needs the page built into the binary (`make ui` first) and tauri-driver: `make e2e` (part of
//! `make test`) runs it with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn which(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([home.join(".cargo/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Driver {
    base: String,
    session: String,
    display: String,
    /// When the session started: each page's line says how far into the test it was reached.
    started: Instant,
}

impl Driver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => panic!(
                "{method} {path}: {code} {}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn find(&self, testid: &str) -> Option<String> {
        let url = format!("{}/session/{}/elements", self.base, self.session);
        let r = ureq::post(&url)
            .send_json(
                json!({"using": "css selector", "value": format!("[data-testid='{testid}']")}),
            )
            .ok()?
            .into_json::<Value>()
            .ok()?;
        let first = r["value"].as_array()?.first()?.clone();
        first
            .as_object()?
            .values()
            .next()?
            .as_str()
            .map(str::to_string)
    }

    fn count(&self, testid: &str) -> usize {
        let url = format!("{}/session/{}/elements", self.base, self.session);
        ureq::post(&url)
            .send_json(
                json!({"using": "css selector", "value": format!("[data-testid='{testid}']")}),
            )
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v["value"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    fn wait(&self, testid: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(id) = self.find(testid) {
                return id;
            }
            if start.elapsed() > timeout {
                self.screenshot(&format!("timeout-{testid}"));
                panic!("`{testid}` did not appear within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn click(&self, testid: &str) {
        let id = self.scroll_to(testid);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Controls below the fold are scrolled to first, as a person would.
    fn scroll_to(&self, testid: &str) -> String {
        let id = self.wait(testid, Duration::from_secs(30));
        let script = format!(
            "document.querySelector(\"[data-testid='{testid}']\").scrollIntoView({{block: 'center'}});"
        );
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        );
        id
    }

    /// The text content of every element with this test id, joined by `|`.
    fn text(&self, testid: &str) -> String {
        let script = format!(
            "return [...document.querySelectorAll(\"[data-testid='{testid}']\")].map(e => e.textContent.trim()).join('|');"
        );
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Runs `script` in the page and returns its value.
    fn exec(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    fn type_into(&self, testid: &str, text: &str) {
        let id = self.scroll_to(testid);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    fn wait_until(&self, what: &str, timeout: Duration, mut ok: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !ok(self) {
            if start.elapsed() > timeout {
                self.screenshot(&format!("timeout-{what}"));
                panic!(
                    "timed out waiting for {what}; step counter shows {:?}",
                    self.text("step-counter")
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Saves a PNG of the X display as an artefact. (WebKitWebDriver's own screenshot hangs
    /// without compositing, which Xvfb lacks; the display shows exactly what a person would see.)
    fn screenshot(&self, name: &str) -> PathBuf {
        let dir = target_dir().join("e2e-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let ok = Command::new("import")
            .args([
                "-display",
                &self.display,
                "-window",
                "root",
                &path.display().to_string(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`import` (ImageMagick) could not capture the display");
        path
    }
}

fn not_blank(path: &Path) {
    let size = std::fs::metadata(path).unwrap().len();
    assert!(
        size > 8_000,
        "{} looks blank ({size} bytes)",
        path.display()
    );
}

/// Fewest characters of visible text the page area (`<main>`, without the navigation) may show.
/// Every page explains itself in sentences; an empty or half-rendered one holds a heading at most.
const MIN_PAGE_TEXT: usize = 120;

/// The error boxes a person would see (ErrorMessage.svelte is `role="alert"`), and the length of
/// the visible text in `<main>`, whitespace collapsed. `innerText` leaves out hidden elements.
const PAGE_HEALTH: &str = r#"
const shown = e => e.getClientRects().length > 0;
const alerts = [...document.querySelectorAll("[role='alert'], [data-testid='error-message']")]
  .filter(shown)
  .map(e => e.innerText.replace(/\s+/g, ' ').trim());
const main = document.querySelector('main');
const text = main ? main.innerText.replace(/\s+/g, ' ').trim() : '';
return { alerts, text: text.length, sample: text.slice(0, 200) };
"#;

impl Driver {
    /// Screenshot of a page that must be healthy: the picture is not blank, no error box is shown
    /// and the page holds at least [`MIN_PAGE_TEXT`] characters of visible text. The screenshot is
    /// taken first so a failure leaves the picture of what went wrong.
    fn page_shot(&self, name: &str) {
        let path = self.screenshot(name);
        not_blank(&path);
        let health = self.exec(PAGE_HEALTH, json!([]));
        let alerts: Vec<&str> = health["alerts"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            alerts.is_empty(),
            "page `{name}` shows an error box: {alerts:?} (screenshot {})",
            path.display()
        );
        let text = health["text"].as_u64().unwrap_or(0) as usize;
        assert!(
            text >= MIN_PAGE_TEXT,
            "page `{name}` is mostly empty: {text} characters of visible text (at least \
             {MIN_PAGE_TEXT} expected): {:?} (screenshot {})",
            health["sample"].as_str().unwrap_or(""),
            path.display()
        );
        eprintln!(
            "page `{name}`: {text} characters of text, no error box ({:.1} s)",
            self.started.elapsed().as_secs_f64()
        );
    }
}

#[test]
#[ignore = "needs Xvfb, WebKitWebDriver and tauri-driver: run by `make e2e`"]
fn first_five_minutes_in_a_real_window() {
    let app = PathBuf::from(env!("CARGO_BIN_EXE_tunesmith-desktop"));
    let driver = which("tauri-driver")
        .expect("tauri-driver is not installed (cargo install tauri-driver --locked)");
    let home = tempfile::tempdir().unwrap();

    // A private X display unless one is given.
    let mut _xvfb = None;
    let display = match std::env::var("E2E_DISPLAY") {
        Ok(d) => d,
        Err(_) => {
            let d = format!(":{}", 90 + std::process::id() % 9);
            _xvfb = Some(Kill(
                Command::new("Xvfb")
                    .args([&d, "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("Xvfb"),
            ));
            std::thread::sleep(Duration::from_secs(1));
            d
        }
    };
    let port = 4444 + (std::process::id() % 500) as u16;
    let _driver = Kill(
        Command::new(driver)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &(port + 1000).to_string(),
            ])
            .env("DISPLAY", &display)
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .env("TUNESMITH_HOME", home.path())
            // The page's test-only drop hook (`window.__tunesmithDrop`) exists only with this set;
            // tauri-driver and WebKitWebDriver pass their environment on to the app they start.
            .env("TUNESMITH_E2E", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let session = loop {
        let r = ureq::post(&format!("{base}/session")).send_json(json!({
            "capabilities": {"alwaysMatch": {"tauri:options": {"application": app.display().to_string()}}}
        }));
        match r {
            Ok(r) => {
                break r.into_json::<Value>().unwrap()["value"]["sessionId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    };
    let d = Driver {
        base,
        session,
        display,
        started: Instant::now(),
    };

    // Data: two of the user's own text files, and an empty one that must be refused in place.
    let docs = home.path().join("my documents");
    std::fs::create_dir_all(&docs).unwrap();
    let demo = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo/business-rules.md"),
    )
    .unwrap();
    let half = demo[demo.len() / 2..].find("\n## ").unwrap() + demo.len() / 2;
    let files = [
        docs.join("processes part 1.md"),
        docs.join("processes-part-2.txt"),
        docs.join("empty.txt"),
    ];
    std::fs::write(&files[0], &demo[..half]).unwrap();
    std::fs::write(&files[1], &demo[half..]).unwrap();
    std::fs::write(&files[2], "").unwrap();
    d.click("nav-data");
    d.wait("use-demo", Duration::from_secs(30));
    d.exec(
        "window.__tunesmithDrop(arguments[0]);",
        json!([files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()]),
    );
    d.wait_until("three file rows", Duration::from_secs(30), |d| {
        d.count("file-row") == 3
    });
    let refused = d.text("file-error");
    assert!(refused.to_lowercase().contains("empty"), "{refused:?}");
    d.page_shot("1-data");

    // The window shows only the app: a script (or a link that slipped into a reply) that loads
    // another page is refused by the navigation guard. The other page is a server of our own on
    // loopback: without the guard WebKit would connect to it within milliseconds.
    // (The load is started after the script returns, so that WebDriver does not wait on it.)
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let to = format!("http://{}/", elsewhere.local_addr().unwrap());
    d.exec(
        "const to = arguments[0]; setTimeout(() => { window.location.href = to; }, 0);",
        json!([to]),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the window connected to {to}: the navigation guard let it load"
    );
    let here = d.exec("return window.location.href;", json!([]));
    assert!(
        here.as_str()
            .is_some_and(|h| h.starts_with("tauri://localhost")),
        "the window left the app: {here}"
    );
    assert!(d.find("use-demo").is_some(), "the app's page is gone");

    // Model: a new small model from scratch is the default and needs no download.
    d.click("nav-model");
    d.wait("model-scratch", Duration::from_secs(30));
    // Each model's memory comes from the engine's estimate, next to this machine's free memory.
    d.wait_until("the memory estimates", Duration::from_secs(30), |d| {
        d.text("model-scratch").contains("of memory to train")
            && d.text("model-HuggingFaceTB/SmolLM2-135M-Instruct")
                .contains("to train with LoRA")
    });
    d.page_shot("2-model");

    // Train: a tiny model from scratch (the default), a few steps.
    d.click("nav-train");
    d.click("advanced-toggle");
    // Long enough to stop part-way: checkpoints every 10 of 30 steps. Short windows and small
    // batches keep each step quick (the settings a user with a slow laptop would pick).
    d.type_into("cfg-steps", "30");
    d.type_into("cfg-save_every", "10");
    d.type_into("cfg-batch_size", "2");
    d.type_into("cfg-block_size", "64");
    d.page_shot("3-train-settings");
    d.click("start-training");
    // Stopped as soon as it trains (Stop writes a checkpoint), well before its 30 steps are done.
    d.wait_until("steps on the chart", Duration::from_secs(300), |d| {
        let t = d.text("step-counter");
        t.contains("of 30") && !t.contains("Step 0 ")
    });
    d.click("stop-training");
    d.wait("resume-training", Duration::from_secs(120));
    assert!(d.count("checkpoint-item") >= 1, "Stop saved no checkpoint");
    d.page_shot("4-train-stopped");
    d.click("resume-training");
    d.wait_until("the run to finish", Duration::from_secs(300), |d| {
        d.text("step-counter").contains("Step 30 of 30")
    });
    // Step 30 is on the chart before the final validation and checkpoint are written; the run is
    // over when the Stop button gives way to Start again.
    d.wait_until("the run to end", Duration::from_secs(120), |d| {
        d.find("stop-training").is_none() && d.find("start-training").is_some()
    });
    assert!(d.count("checkpoint-item") >= 2);
    d.page_shot("5-train-done");

    // Chat with the result at once (the page hears "finished" and the job is already free):
    // streamed text arrives. A tiny model may still end a reply with nothing but spaces; the page
    // then says so, and the user presses Regenerate, as this test does.
    d.click("nav-chat");
    d.type_into("chat-input", "A refund request");
    d.click("chat-send");
    let mut tries = 0;
    loop {
        d.wait_until("a reply", Duration::from_secs(120), |d| {
            d.find("error-message").is_some()
                || (d.find("chat-assistant-message").is_some() && d.find("chat-send").is_some())
        });
        let error = d.text("error-message");
        assert!(error.is_empty(), "the chat showed an error: {error}");
        if d.find("chat-empty-reply").is_none() || tries == 3 {
            break;
        }
        tries += 1;
        d.click("chat-regenerate");
    }
    assert!(
        d.find("chat-empty-reply").is_none() && !d.text("chat-assistant-message").is_empty(),
        "no words in the reply after {tries} regenerations"
    );
    d.page_shot("6-chat");

    d.click("nav-runs");
    d.wait("run-row", Duration::from_secs(30));
    d.page_shot("7-runs");
    let _ = d.call("DELETE", "", None);
}
