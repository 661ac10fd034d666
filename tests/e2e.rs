//! End-to-end: the real app binary in a real window (WebKitGTK under Xvfb), driven through
//! tauri-driver + WebKitWebDriver. Add the demo data, train a tiny model from scratch for a few
//! steps, watch the chart and a checkpoint appear, stop and resume, then chat. Screenshots of each
//! page are saved as artefacts and checked not to be blank.
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
        let id = self.wait(testid, Duration::from_secs(30));
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn text(&self, testid: &str) -> String {
        let id = self.wait(testid, Duration::from_secs(30));
        self.call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn type_into(&self, testid: &str, text: &str) {
        let id = self.wait(testid, Duration::from_secs(30));
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
                panic!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Saves a PNG artefact and checks it shows something (a blank window compresses to a few KB).
    fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", None);
        let png = base64_decode(data.as_str().unwrap_or(""));
        let dir = target_dir().join("e2e-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        path
    }
}

/// Standard base64 (screenshots); no dependency needed for one decoder.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bits: Vec<u8> = s.bytes().filter_map(val).collect();
    bits.chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &v)| n | (v as u32) << (18 - 6 * i));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len().saturating_sub(1))
        })
        .collect()
}

fn not_blank(path: &Path) {
    let size = std::fs::metadata(path).unwrap().len();
    assert!(
        size > 8_000,
        "{} looks blank ({size} bytes)",
        path.display()
    );
}

#[test]
#[ignore = "needs Xvfb, WebKitWebDriver and tauri-driver: run by `make e2e`"]
fn first_five_minutes_in_a_real_window() {
    let app = target_dir().join("e2e/tunesmith-desktop");
    assert!(
        app.is_file(),
        "build it first: cargo build -p tunesmith-desktop --profile e2e --features custom-protocol"
    );
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
    let d = Driver { base, session };

    // Data: the built-in demo dataset.
    d.click("nav-data");
    d.click("use-demo");
    d.wait("file-row", Duration::from_secs(30));
    not_blank(&d.screenshot("1-data"));

    // Train: a tiny model from scratch (the default), a few steps.
    d.click("nav-train");
    d.click("advanced-toggle");
    d.type_into("cfg-steps", "30");
    not_blank(&d.screenshot("2-train-settings"));
    d.click("start-training");
    d.wait_until("steps on the chart", Duration::from_secs(300), |d| {
        let t = d.text("step-counter");
        t.contains("of 30") && !t.starts_with("Step 0 ")
    });
    d.wait("checkpoint-item", Duration::from_secs(300));
    d.click("stop-training");
    d.wait("resume-training", Duration::from_secs(120));
    not_blank(&d.screenshot("3-train-stopped"));
    d.click("resume-training");
    d.wait_until("the run to finish", Duration::from_secs(600), |d| {
        d.text("step-counter").contains("Step 30 of 30")
    });
    d.wait_until("the final checkpoint", Duration::from_secs(60), |d| {
        d.count("checkpoint-item") >= 2
    });
    not_blank(&d.screenshot("4-train-done"));

    // Chat with the result: streamed text arrives.
    d.click("nav-chat");
    d.type_into("chat-input", "A refund request");
    d.click("chat-send");
    d.wait_until("a reply", Duration::from_secs(120), |d| {
        d.find("chat-assistant-message").is_some()
            && !d.text("chat-assistant-message").trim().is_empty()
    });
    not_blank(&d.screenshot("5-chat"));

    d.click("nav-runs");
    d.wait("run-row", Duration::from_secs(30));
    not_blank(&d.screenshot("6-runs"));
    let _ = d.call("DELETE", "", None);
}
