//! Black-box tests of the real `tunesmith` binary. Each test works in its own temporary folder
//! (also `TUNESMITH_HOME`) and prints the command, status, stdout and stderr when it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures")
}

fn tiny_model() -> String {
    fixtures().join("gpt2-tiny").display().to_string()
}

fn corpus() -> String {
    fixtures().join("corpus.txt").display().to_string()
}

fn cmd(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tunesmith"));
    c.args(args)
        .env("TUNESMITH_HOME", home)
        .env("HF_ENDPOINT", "http://127.0.0.1:1")
        .env_remove("HF_HOME");
    c
}

fn show(args: &[&str], out: &Output) -> String {
    format!(
        "command: tunesmith {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and expects success.
fn ok(home: &Path, args: &[&str]) -> Output {
    let out = cmd(home, args).output().unwrap();
    assert!(out.status.success(), "{}", show(args, &out));
    out
}

/// Runs and expects failure whose stderr (or JSON stdout) contains `needle`.
fn fails(home: &Path, args: &[&str], needle: &str) -> Output {
    let out = cmd(home, args).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && all.contains(needle),
        "expected failure with `{needle}`\n{}",
        show(args, &out)
    );
    out
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn train_args<'a>(out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        "MODEL",
        "--data",
        "CORPUS",
        "--out",
        out,
        "--steps",
        steps,
        "--batch-size",
        "4",
        "--block-size",
        "32",
        "--lr",
        "3e-3",
        "--warmup",
        "2",
        "--save-every",
        "4",
        "--eval-every",
        "4",
        "--sample-every",
        "0",
        "--json",
    ]
}

fn with_paths(args: Vec<&str>, model: &str, corpus: &str) -> Vec<String> {
    args.into_iter()
        .map(|a| match a {
            "MODEL" => model.to_string(),
            "CORPUS" => corpus.to_string(),
            a => a.to_string(),
        })
        .collect()
}

fn step_loss(lines: &[Value], step: u64) -> f64 {
    lines
        .iter()
        .find(|l| l["type"] == "trainStep" && l["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}"))["loss"]
        .as_f64()
        .unwrap()
}

#[test]
fn train_json_then_generate_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run").display().to_string();
    let args = with_paths(train_args(&run, "8"), &tiny_model(), &corpus());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(tmp.path(), &args);
    let lines = json_lines(&out);
    let steps: Vec<&Value> = lines.iter().filter(|l| l["type"] == "trainStep").collect();
    assert_eq!(steps.len(), 8, "--json logs every step by default");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"].as_u64(), Some(i as u64 + 1));
        assert!(s["loss"].as_f64().unwrap().is_finite());
    }
    assert!(lines.iter().any(|l| l["type"] == "checkpoint"));
    assert!(lines.iter().any(|l| l["type"] == "eval"));
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "finished", "{last}");
    assert_eq!(last["summary"]["status"], "completed");
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&run).join("run.json")).unwrap())
            .unwrap();
    assert_eq!(run_json["config"]["block_size"], 32);

    // Generate from the run folder (its latest checkpoint).
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            &run,
            "--prompt",
            "A refund",
            "--max-new-tokens",
            "12",
            "--n",
            "2",
        ];
        args.extend_from_slice(extra);
        ok(tmp.path(), &args)
    };
    let g = generate(&["--seed", "3"]);
    let text = String::from_utf8_lossy(&g.stdout);
    assert!(text.lines().any(|l| l == "===="), "{text}");
    let samples = json_lines(&generate(&["--json"]));
    assert_eq!(samples.len(), 2);
    for s in &samples {
        assert!(
            s["text"].is_string() && s["tokens"].is_array() && s["finish_reason"].is_string(),
            "{s}"
        );
    }
    // Same seed, same text.
    assert_eq!(g.stdout, generate(&["--seed", "3"]).stdout);

    // Settings can come from the run's own run.json.
    let run2 = tmp.path().join("run2").display().to_string();
    let run_json_path = Path::new(&run).join("run.json").display().to_string();
    let out2 = ok(
        tmp.path(),
        &[
            "train",
            "--config",
            &run_json_path,
            "--out",
            &run2,
            "--steps",
            "2",
            "--json",
        ],
    );
    assert_eq!(json_lines(&out2).last().unwrap()["summary"]["steps"], 2);
}

/// `--messages` renders an OpenAI-style conversation with the model's chat template; `--json`
/// shows the exact prompt ids, which are transformers' own, and the reply ends at the end of turn.
#[test]
fn generate_renders_messages_with_the_chat_template() {
    let tmp = tempfile::tempdir().unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("chat-reference.json")).unwrap(),
    )
    .unwrap();
    let r = &reference["smollm2-chat-tiny"];
    let messages = tmp.path().join("chat.json");
    std::fs::write(&messages, r["messages"].to_string()).unwrap();
    let model = fixtures().join("smollm2-chat-tiny").display().to_string();
    let messages = messages.display().to_string();
    let out = ok(
        tmp.path(),
        &[
            "generate",
            "--model",
            &model,
            "--messages",
            &messages,
            "--temperature",
            "0",
            "--max-new-tokens",
            "40",
            "--json",
        ],
    );
    let sample = &json_lines(&out)[0];
    assert_eq!(sample["prompt_ids"], r["prompt_ids"]);
    assert_eq!(sample["tokens"], r["reply_ids"]);
    assert_eq!(sample["finish_reason"], "stop");
    // A broken messages file is named with the entry at fault.
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]"#,
    )
    .unwrap();
    let bad = bad.display().to_string();
    fails(
        tmp.path(),
        &["generate", "--model", &model, "--messages", &bad],
        "messages[1]",
    );
}

/// `--lora` trains adapters on a Llama-family model; the run folder then chats and evaluates like
/// any model, and its checkpoint is a PEFT adapter folder that also loads with `--base`.
#[test]
fn lora_training_then_generate_and_eval_the_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run").display().to_string();
    let model = fixtures().join("qwen2-tiny").display().to_string();
    let mut args = with_paths(train_args(&run, "4"), &model, &corpus());
    args.extend(
        [
            "--lora",
            "--lora-rank",
            "4",
            "--lora-targets",
            "q_proj,v_proj",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = json_lines(&ok(tmp.path(), &args));
    assert_eq!(lines.last().unwrap()["summary"]["status"], "completed");
    let ckpt = Path::new(&run).join("checkpoints/step-4");
    let adapter: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(adapter["r"], 4);
    assert_eq!(
        adapter["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    let g = ok(
        tmp.path(),
        &[
            "generate",
            "--model",
            &run,
            "--prompt",
            "A refund",
            "--max-new-tokens",
            "5",
            "--json",
        ],
    );
    assert_eq!(json_lines(&g)[0]["finish_reason"], "length");
    let data = fixtures().join("eval.txt").display().to_string();
    let ckpt = ckpt.display().to_string();
    let e = ok(
        tmp.path(),
        &[
            "eval", "--model", &ckpt, "--base", &model, "--data", &data, "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&e.stdout).unwrap();
    assert!(v["loss"].as_f64().unwrap().is_finite());
    // A LoRA option without --lora, and a projection the model lacks, are refused clearly.
    let run2 = tmp.path().join("run2").display().to_string();
    let mut bad = with_paths(train_args(&run2, "4"), &model, &corpus());
    bad.extend(["--lora", "--lora-targets", "c_attn"].map(String::from));
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    fails(
        tmp.path(),
        &bad,
        "`c_attn` is not a projection of this qwen2 model",
    );
}

#[test]
fn eval_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap())
            .unwrap();
    let data = fixtures().join("eval.txt").display().to_string();
    let out = ok(
        tmp.path(),
        &["eval", "--model", &tiny_model(), "--data", &data, "--json"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = reference["eval"]["loss"].as_f64().unwrap();
    assert!(
        (v["loss"].as_f64().unwrap() - want).abs() / want < 1e-4,
        "{v}"
    );
    assert_eq!(v["tokens"], reference["eval"]["tokens"]);
    assert!(v["perplexity"].as_f64().unwrap() > 1.0);
    let plain = ok(
        tmp.path(),
        &["eval", "--model", &tiny_model(), "--data", &data],
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains("perplexity:"));
}

/// `score` gives sacrebleu's and rouge-score's numbers for line files and refuses files that do
/// not line up; `eval --pairs` answers each pair, skips broken lines by number, compares models.
#[test]
fn score_and_eval_on_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("metrics-reference.json")).unwrap(),
    )
    .unwrap();
    let set = &reference["sets"][1]; // punctuation
    let lines = |k: &str| {
        set[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let (h, r) = (tmp.path().join("h.txt"), tmp.path().join("r.txt"));
    std::fs::write(&h, lines("hypotheses")).unwrap();
    std::fs::write(&r, lines("references")).unwrap();
    let (hs, rs) = (h.display().to_string(), r.display().to_string());
    let out = ok(
        tmp.path(),
        &["score", "--hypotheses", &hs, "--references", &rs, "--json"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["bleu"].as_f64().unwrap() - set["bleu"].as_f64().unwrap()).abs() < 1e-6);
    assert!((v["chrf"].as_f64().unwrap() - set["chrf"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(v["bleu_signature"], set["bleu_signature"]);
    let plain = ok(
        tmp.path(),
        &["score", "--hypotheses", &hs, "--references", &rs],
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains("BLEU"));
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "one line\n").unwrap();
    fails(
        tmp.path(),
        &[
            "score",
            "--hypotheses",
            &hs,
            "--references",
            &short.display().to_string(),
        ],
        "has 4 lines but",
    );

    let pairs = tmp.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        concat!(
            "{\"prompt\": \"The invoice\", \"completion\": \"is due in thirty days.\"}\n",
            "not json\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n",
        ),
    )
    .unwrap();
    let p = pairs.display().to_string();
    let out = ok(
        tmp.path(),
        &["eval", "--model", &tiny_model(), "--pairs", &p, "--json"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["examples"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["examples"][1]["prompt"], "Hi");
    assert!(v["perplexity"].as_f64().unwrap() > 1.0);
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("line 2") && notes.contains("transcript"),
        "{notes}"
    );
    // The figures of an answer are the scores of that answer.
    let ex = &v["examples"][0];
    let out = ex["output"].as_str().unwrap();
    std::fs::write(&h, format!("{}\n", out.replace('\n', " "))).unwrap();
    std::fs::write(&r, "is due in thirty days.\n").unwrap();
    if !out.contains('\n') {
        let s: Value = serde_json::from_slice(
            &ok(
                tmp.path(),
                &["score", "--hypotheses", &hs, "--references", &rs, "--json"],
            )
            .stdout,
        )
        .unwrap();
        assert_eq!(s["examples"][0]["rougeL"], ex["rougeL"]);
    }
    let both = ok(
        tmp.path(),
        &[
            "eval",
            "--model",
            &tiny_model(),
            "--model",
            &tiny_model(),
            "--pairs",
            &p,
            "--metrics",
            "bleu,loss",
        ],
    );
    let table = String::from_utf8_lossy(&both.stdout);
    assert!(
        table.contains("BLEU") && table.contains("perplexity"),
        "{table}"
    );
    fails(
        tmp.path(),
        &["eval", "--model", &tiny_model(), "--pairs", &rs],
        "line 1: not valid JSON",
    );
}

/// A run trained to memorise a small text copies it when asked; `eval` says how much, against
/// the run's own training set (its index kept beside the tokens for next time).
#[test]
fn eval_reports_text_copied_from_the_training_set() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(corpus()).unwrap();
    let small = tmp.path().join("small.txt");
    std::fs::write(&small, &text[..1200]).unwrap();
    let run = tmp.path().join("mem").display().to_string();
    let model = tiny_model();
    let data = small.display().to_string();
    ok(
        tmp.path(),
        &[
            "train",
            "--model",
            &model,
            "--data",
            &data,
            "--out",
            &run,
            "--steps",
            "300",
            "--batch-size",
            "8",
            "--block-size",
            "32",
            "--lr",
            "1e-2",
            "--warmup",
            "2",
            "--eval-every",
            "0",
            "--sample-every",
            "0",
            "--val-frac",
            "0",
            "--json",
        ],
    );
    let pairs = tmp.path().join("p.jsonl");
    let prompt: String = text
        .split_whitespace()
        .take(5)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        &pairs,
        format!(
            "{}\n",
            serde_json::json!({"prompt": prompt, "completion": "x"})
        ),
    )
    .unwrap();
    let out = ok(
        tmp.path(),
        &[
            "eval",
            "--model",
            &run,
            "--pairs",
            &pairs.display().to_string(),
            "--metrics",
            "bleu",
            "--max-new-tokens",
            "40",
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["copied"].as_f64().unwrap() > 0.2, "{v}");
    assert_eq!(v["copied_min_tokens"], 12);
    assert!(Path::new(&run).join("dataset/copies-12.index").is_file());
}

/// Starts a training in the background with its JSON events on a pipe.
fn spawn(home: &Path, args: &[&str]) -> std::process::Child {
    cmd(home, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads JSON events from a running training until `stop(event)` is true or the output ends;
/// returns what was read.
fn read_until(child: &mut std::process::Child, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let done = stop(&v);
        lines.push(v);
        if done {
            break;
        }
    }
    lines
}

#[test]
fn killed_run_resumes_to_the_same_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight").display().to_string();
    let a = with_paths(train_args(&straight, "12"), &tiny_model(), &corpus());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let want = step_loss(&json_lines(&ok(tmp.path(), &a)), 12);

    let parted = tmp.path().join("parted").display().to_string();
    let b = with_paths(train_args(&parted, "12"), &tiny_model(), &corpus());
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let mut child = spawn(tmp.path(), &b);
    // kill -9 right after the step-8 checkpoint is reported: no chance to save anything more.
    read_until(&mut child, |v| v["type"] == "checkpoint" && v["step"] == 8);
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = json_lines(&ok(tmp.path(), &b));
    assert!(
        resumed
            .iter()
            .all(|l| l["type"] != "trainStep" || l["step"].as_u64().unwrap() > 8),
        "resumed after step 8"
    );
    let got = step_loss(&resumed, 12);
    assert!(
        (got - want).abs() <= 1e-5 * want.abs(),
        "loss at step 12: {got} vs {want}"
    );
}

#[test]
fn a_live_trainer_holds_its_run_and_kill_9_leaves_it_interrupted() {
    use tunesmith_engine::runs::{summarize, RunDir, RunStatus};
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let path = run.display().to_string();
    let a = with_paths(train_args(&path, "100000"), &tiny_model(), &corpus());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut child = spawn(tmp.path(), &a);
    read_until(&mut child, |v| v["type"] == "checkpoint" && v["step"] == 4);
    let status = || {
        let dir = RunDir::new(&run);
        let s = summarize(&run, &dir.read_info().unwrap().unwrap());
        (s.status, s.resumable)
    };
    assert_eq!(status(), (RunStatus::Running, false));
    // A second trainer on the same folder is refused before it touches anything.
    fails(tmp.path(), &a, "is being trained by another Tunesmith");
    child.kill().unwrap(); // SIGKILL: no chance to update run.json
    child.wait().unwrap();
    let info = RunDir::new(&run).read_info().unwrap().unwrap();
    assert_eq!(
        info.status,
        RunStatus::Running,
        "run.json still says running"
    );
    assert_eq!(status(), (RunStatus::Interrupted, true));
}

#[test]
fn ctrl_c_stops_saves_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run").display().to_string();
    let args = with_paths(train_args(&run, "40"), &tiny_model(), &corpus());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = spawn(tmp.path(), &args);
    let pid = child.id().to_string();
    // Ctrl-C after step 3, then read on to the end of the stream.
    let mut sent = false;
    let lines = read_until(&mut child, |v| {
        if !sent && v["type"] == "trainStep" && v["step"] == 3 {
            Command::new("kill").args(["-INT", &pid]).status().unwrap();
            sent = true;
        }
        false
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?} {lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "finished");
    assert_eq!(last["summary"]["status"], "stopped");
    let stopped_at = last["summary"]["steps"].as_u64().unwrap();
    assert!(
        stopped_at < 40
            && Path::new(&run)
                .join(format!("checkpoints/step-{stopped_at}"))
                .is_dir()
    );
    // Resume with only the run folder: settings come from its run.json.
    let out = ok(tmp.path(), &["train", "--out", &run, "--json"]);
    let lines = json_lines(&out);
    assert_eq!(lines.last().unwrap()["summary"]["steps"], 40);
    assert_eq!(
        lines.iter().find(|l| l["type"] == "trainStep").unwrap()["step"],
        stopped_at + 1
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run").display().to_string();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let missing = tmp.path().join("missing.txt").display().to_string();
    let m = tiny_model();
    fails(
        tmp.path(),
        &["train", "--model", &m, "--data", &missing, "--out", &run],
        "missing.txt: does not exist",
    );
    fails(
        tmp.path(),
        &["train", "--model", &m, "--data", &empty, "--out", &run],
        "is empty",
    );
    // Nonsense settings name the field.
    let corpus = corpus();
    for (flag, value, field) in [
        ("--lr", "0", "`lr`"),
        ("--val-frac", "1", "`val_frac`"),
        ("--batch-size", "0", "`batch_size`"),
    ] {
        let args = [
            "train", "--model", &m, "--data", &corpus, "--out", &run, flag, value,
        ];
        fails(tmp.path(), &args, field);
    }
    // The run's folder name follows the app's naming rule (here: a Windows device name).
    let reserved = tmp.path().join("CON").display().to_string();
    fails(
        tmp.path(),
        &[
            "train", "--model", &m, "--data", &corpus, "--out", &reserved,
        ],
        "`--out`",
    );
    assert!(!tmp.path().join("CON").exists());
    // In JSON mode the failure is the last line on stdout.
    let out = fails(
        tmp.path(),
        &[
            "train", "--model", &m, "--data", &missing, "--out", &run, "--json",
        ],
        "does not exist",
    );
    let last = json_lines(&out).pop().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["kind"].as_str()),
        (Some("failed"), Some("file"))
    );
    // Not a model; unreachable hub (HF_ENDPOINT points at a closed port) within 30 s.
    let not_model = tmp.path().display().to_string();
    fails(
        tmp.path(),
        &["generate", "--model", &not_model, "--prompt", "x"],
        "no config.json",
    );
    let start = Instant::now();
    fails(
        tmp.path(),
        &["download", "gpt2"],
        "train a small model from scratch",
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    fails(
        tmp.path(),
        &["generate", "--model", "gpt2", "--prompt", "x"],
        "cannot be reached",
    );
    assert!(
        !Path::new(&run).join("checkpoints").exists(),
        "failed runs write no checkpoints"
    );
}

#[test]
fn prepare_a_mixed_folder_then_train_on_the_dataset() {
    let home = tempfile::tempdir().unwrap();
    let input = fixtures().join("import/good").display().to_string();
    let bad = fixtures()
        .join("import/bad/locked.pdf")
        .display()
        .to_string();
    let dataset = home.path().join("dataset").display().to_string();
    let args = [
        "prepare",
        "--input",
        &input,
        &bad,
        "--out",
        &dataset,
        "--scrub-pii",
        "--chunk-tokens",
        "256",
        "--pair-columns",
        "question",
        "answer",
        "--vocab-size",
        "600",
        "--json",
    ];
    let out = ok(home.path(), &args);
    let lines = json_lines(&out);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "finished", "{}", show(&args, &out));
    let report = &last["summary"];
    let files = report["files"].as_array().unwrap();
    let locked = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("locked.pdf"))
        .unwrap();
    assert_eq!(locked["status"], "error");
    assert!(locked["error"].as_str().unwrap().contains("password"));
    assert_eq!(report["filesFailed"], 1);
    assert!(report["examples"].as_u64().unwrap() >= 12);
    assert!(report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("1 file could not be used")));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("dataset/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["report"], *report);

    // Train from scratch on the prepared dataset: the prompts of pairs are masked, the rest learned.
    let run = home.path().join("run").display().to_string();
    let train = [
        "train",
        "--dataset",
        &dataset,
        "--out",
        &run,
        "--scratch",
        "tiny",
        "--steps",
        "3",
        "--block-size",
        "32",
        "--batch-size",
        "2",
        "--vocab-size",
        "600",
        "--eval-every",
        "3",
        "--json",
    ];
    let out = ok(home.path(), &train);
    let lines = json_lines(&out);
    assert_eq!(
        lines.last().unwrap()["type"],
        "finished",
        "{}",
        show(&train, &out)
    );
    assert!(home.path().join("run/dataset/train.mask").is_file());
}

/// The benchmark measures a preset in a worker process that reports its own peak memory (so each
/// preset's figure is its alone), and an unknown preset is named with the ones there are.
#[test]
fn bench_worker_reports_speed_and_peak_memory() {
    let home = tempfile::tempdir().unwrap();
    let out = ok(
        home.path(),
        &["bench", "--worker", "--presets", "tiny", "--steps", "1"],
    );
    let v = json_lines(&out).pop().unwrap();
    assert!(v["train_tokens_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    if cfg!(target_os = "linux") {
        // A tiny model's weights, optimiser and logits take well over 50 MB.
        assert!(v["peak_rss_bytes"].as_u64().unwrap() > 50 << 20, "{v}");
    }
    fails(
        home.path(),
        &["bench", "--presets", "huge", "--no-torch"],
        "smollm2-135m-lora",
    );
}

/// `tunesmith serve` answers HTTP on the port it prints, and warns when it listens beyond this
/// computer without an API key.
#[test]
fn serve_answers_on_the_port_it_prints_and_warns_when_open_without_a_key() {
    use std::io::{Read, Write};
    let home = tempfile::tempdir().unwrap();
    let model = tiny_model();
    let args = [
        "serve", "--model", &model, "--host", "0.0.0.0", "--port", "0", "--name", "tiny",
    ];
    let mut child = cmd(home.path(), &args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let port = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        seen.push(line.clone());
        if let Some(rest) = line.split("http://0.0.0.0:").nth(1) {
            break rest.split('/').next().unwrap().parse::<u16>().unwrap();
        }
    };
    assert!(
        seen.iter()
            .any(|l| l.contains("warning") && l.contains("--api-key")),
        "{seen:?}"
    );
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"model\":\"tiny\""), "{reply}");
}
