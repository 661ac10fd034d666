//! Exports: GGUF files equal to what llama.cpp's own converter writes for the same model, reloaded
//! with identical (f32) or close (q8_0) logits; Hugging Face, PEFT and Ollama folders; the
//! verified hand-off catching damaged weights; refusals; and the job folder.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use common::{fixtures, full_logits};
use tunesmith_engine::export::{self, verify, ExportConfig, ExportFormat, Quant};
use tunesmith_engine::model::load::{self, load_dir, read_source};
use tunesmith_engine::{CancelToken, Error, NullSink};

fn cfg(model: &Path, format: ExportFormat, out: &Path, quant: Option<Quant>) -> ExportConfig {
    ExportConfig {
        model: model.to_path_buf(),
        base: None,
        format,
        out: out.to_path_buf(),
        quant,
        force: false,
        name: None,
        system: None,
        run: None,
    }
}

fn run(c: &ExportConfig) -> tunesmith_engine::Result<export::ExportReport> {
    export::export(c, &CancelToken::new(), &mut NullSink)
}

fn read_gguf(path: &Path) -> (Content, BufReader<File>) {
    let mut r = BufReader::new(File::open(path).unwrap());
    (Content::read(&mut r).unwrap(), r)
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::F32(x), Value::F32(y)) => x == y,
        _ => format!("{a:?}") == format!("{b:?}"),
    }
}

const PROBE: [u32; 12] = [5, 17, 200, 3, 99, 42, 7, 310, 12, 64, 1, 250];

/// For the models llama.cpp's `convert_hf_to_gguf.py` made the fixtures from, an f32 export holds
/// the same tensors, byte for byte, under the same names and types, and every metadata field the
/// converter wrote (but its descriptive `general.name`/`type`/`size_label`) with the same value.
/// Reloaded, it gives the source model's logits exactly (Llama 3's to float32 rounding).
#[test]
fn f32_gguf_equals_llama_cpps_conversion_and_reloads_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    for model in ["llama-tiny", "qwen2-tiny", "gpt2-tiny", "llama3-tiny"] {
        let src = fixtures().join(model);
        let out = tmp.path().join(format!("{model}.gguf"));
        let report = run(&cfg(&src, ExportFormat::Gguf, &out, Some(Quant::F32))).unwrap();
        let v = report.verification.unwrap();
        assert!(v.verified, "{model}: {}", v.summary);
        assert!(tmp
            .path()
            .join(format!("{model}.verification.json"))
            .is_file());

        let (want, mut wr) = read_gguf(&fixtures().join(format!("gguf/{model}-f32.gguf")));
        let (got, mut gr) = read_gguf(&out);
        for (key, value) in &want.metadata {
            if ["general.name", "general.type", "general.size_label"].contains(&key.as_str()) {
                continue;
            }
            let ours = got
                .metadata
                .get(key)
                .unwrap_or_else(|| panic!("{model}: no {key}"));
            assert!(
                value_eq(ours, value),
                "{model} {key}: {ours:?} vs {value:?}"
            );
        }
        let mut names: Vec<&String> = want.tensor_infos.keys().collect();
        names.sort();
        let mut ours: Vec<&String> = got.tensor_infos.keys().collect();
        ours.sort();
        assert_eq!(ours, names, "{model}");
        for name in names {
            let a = want.tensor(&mut wr, name, &Device::Cpu).unwrap();
            let b = got.tensor(&mut gr, name, &Device::Cpu).unwrap();
            assert_eq!(b.dtype(), a.dtype(), "{model} {name}");
            assert_eq!(b.shape(), a.shape(), "{model} {name}");
            if name == "rope_freqs.weight" {
                // Llama 3's divisors, computed from the rope settings (the converter does it in
                // float32, we in float64).
                let (a, b) = (
                    a.dequantize(&Device::Cpu).unwrap(),
                    b.dequantize(&Device::Cpu).unwrap(),
                );
                assert!(
                    common::max_abs_diff(&a, &b) <= 1e-5 * common::max_abs(&a),
                    "{model} {name}"
                );
                continue;
            }
            assert!(b.data().unwrap() == a.data().unwrap(), "{model} {name}");
        }

        let source = load_dir(&src, &Device::Cpu).unwrap();
        let back = load::load_dir_with(&out, None, true, &Device::Cpu).unwrap();
        let (a, b) = (
            full_logits(&back.model, &PROBE),
            full_logits(&source.model, &PROBE),
        );
        let worst = a
            .iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        // Bit for bit, but for Llama 3's rope divisors rounded through float32.
        let bound = if model == "llama3-tiny" { 1e-4 } else { 0.0 };
        assert!(worst <= bound, "{model}: logits differ by {worst}");
    }
}

/// Q8_0: every matrix is 8-bit, blocks as llama.cpp's converter quantises them (the fixture file
/// is its q8_0 output), and the reloaded model's logits stay within 2 % of the scale.
#[test]
fn q8_0_gguf_matches_llama_cpps_quantisation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("llama-tiny");
    let out = tmp.path().join("q8.gguf");
    let report = run(&cfg(&src, ExportFormat::Gguf, &out, None)).unwrap();
    assert_eq!(report.verification.as_ref().unwrap().quant, Quant::Q8_0);
    let (want, mut wr) = read_gguf(&fixtures().join("gguf/llama-tiny-q8_0.gguf"));
    let (got, mut gr) = read_gguf(&out);
    assert_eq!(got.metadata["general.file_type"].to_u32().unwrap(), 7);
    for name in want.tensor_infos.keys() {
        let a = want.tensor(&mut wr, name, &Device::Cpu).unwrap();
        let b = got.tensor(&mut gr, name, &Device::Cpu).unwrap();
        assert_eq!(b.dtype(), a.dtype(), "{name}");
        let (a, b) = (
            a.dequantize(&Device::Cpu).unwrap(),
            b.dequantize(&Device::Cpu).unwrap(),
        );
        // gguf-py rounds halves to even where ggml rounds them away from zero.
        let step = common::max_abs(&a) / 127.0;
        assert!(common::max_abs_diff(&a, &b) <= step * 1.001, "{name}");
    }
    // Reloaded, it computes what llama.cpp's own q8_0 file computes.
    let theirs = load_dir(&fixtures().join("gguf/llama-tiny-q8_0.gguf"), &Device::Cpu).unwrap();
    let back = load_dir(&out, &Device::Cpu).unwrap();
    let x = Tensor::new(&PROBE, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let (a, b) = (
        theirs.model.forward(&x).unwrap(),
        back.model.forward(&x).unwrap(),
    );
    let err = common::max_abs_diff(&a, &b);
    assert!(err <= 1e-3 * common::max_abs(&a), "{err}");
}

/// Q4_K_M on a model wide enough for K-blocks: the mixture's Q4_K and Q6_K tensors, llama.cpp's
/// file type, and a reload that mostly agrees with the model.
#[test]
fn q4_k_m_mixes_k_quants_and_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    let base = fixtures().join("llama-tiny");
    let wide = tmp.path().join("wide");
    std::fs::create_dir(&wide).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("config.json")).unwrap()).unwrap();
    config["hidden_size"] = 256.into();
    config["intermediate_size"] = 512.into();
    config["head_dim"] = 64.into();
    config["num_hidden_layers"] = 8.into();
    std::fs::write(wide.join("config.json"), config.to_string()).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(base.join(f), wide.join(f)).unwrap();
    }
    let mc = load::read_config(&wide).unwrap();
    let weights = mc.init_weights(3, &Device::Cpu).unwrap();
    load::save_weights(&weights, &mc, &wide.join("model.safetensors")).unwrap();

    let out = tmp.path().join("q4.gguf");
    let report = run(&cfg(&wide, ExportFormat::Gguf, &out, Some(Quant::Q4KM))).unwrap();
    let (got, _) = read_gguf(&out);
    assert_eq!(got.metadata["general.file_type"].to_u32().unwrap(), 15);
    let ty = |n: &str| got.tensor_infos[n].ggml_dtype;
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlDType::Q4K);
    assert_eq!(ty("blk.0.attn_v.weight"), GgmlDType::Q6K);
    assert_eq!(ty("blk.1.attn_v.weight"), GgmlDType::Q4K);
    assert_eq!(ty("blk.7.ffn_down.weight"), GgmlDType::Q6K);
    assert_eq!(ty("token_embd.weight"), GgmlDType::Q6K);
    assert_eq!(ty("blk.0.attn_norm.weight"), GgmlDType::F32);
    let v = report.verification.unwrap();
    eprintln!("q4_k_m agreement {}", v.agreement);
    assert!(v.passed(), "{}", v.summary);
}

/// The pre-tokenizer of real tokenizer.json files (Qwen2.5's, Llama 3's, SmolLM2's kinds) is
/// named as llama.cpp's converter named it.
#[test]
fn pre_tokenizers_are_recognised() {
    let tmp = tempfile::tempdir().unwrap();
    for pre in ["qwen2", "llama-bpe", "smollm"] {
        let file = fixtures().join(format!("gguf/pre-{pre}.gguf"));
        let mut src = read_source(&file, None, &Device::Cpu).unwrap();
        src.tokenizer =
            tokenizers::Tokenizer::from_file(fixtures().join(format!("tokenizers/{pre}.json")))
                .unwrap();
        let out = tmp.path().join(format!("{pre}.gguf"));
        export::gguf::write(
            &src,
            Quant::F32,
            "x",
            &out,
            &CancelToken::new(),
            &mut NullSink,
        )
        .unwrap();
        let (got, _) = read_gguf(&out);
        let (want, _) = read_gguf(&file);
        for key in [
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.token_type",
        ] {
            assert!(
                value_eq(&got.metadata[key], &want.metadata[key]),
                "{pre}: {key}"
            );
        }
    }
}

/// An f32 export whose weights are damaged after writing fails the hand-off check, naming the
/// first difference.
#[test]
fn damaged_weights_fail_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = fixtures().join("llama-tiny");
    let out = tmp.path().join("m.gguf");
    run(&cfg(&src_dir, ExportFormat::Gguf, &out, Some(Quant::F32))).unwrap();
    // Turn a layer's feed-forward output around and amplify it.
    let name = "blk.1.ffn_down.weight";
    let (content, mut r) = read_gguf(&out);
    let info = &content.tensor_infos[name];
    let t = content
        .tensor(&mut r, name, &Device::Cpu)
        .unwrap()
        .dequantize(&Device::Cpu)
        .unwrap();
    let damaged: Vec<u8> = (t * -8.0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut bytes = std::fs::read(&out).unwrap();
    let at = content.tensor_data_offset as usize + info.offset as usize;
    bytes[at..at + damaged.len()].copy_from_slice(&damaged);
    std::fs::write(&out, bytes).unwrap();

    let src = read_source(&src_dir, None, &Device::Cpu).unwrap();
    let v = verify::verify(
        &src,
        &out,
        None,
        Quant::F32,
        &Device::Cpu,
        &CancelToken::new(),
    )
    .unwrap();
    assert!(!v.verified && v.outcome == verify::Outcome::Mismatch);
    assert!(v.summary.starts_with("Mismatch"), "{}", v.summary);
    assert!(v.prompts.iter().any(|p| p.first_difference.is_some()));
}

/// A rounded export is only "close" while it agrees with the model as rounding allows: a q8_0
/// file with a damaged tensor is a mismatch too.
#[test]
fn damaged_quantised_weights_fail_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = fixtures().join("llama-tiny");
    let out = tmp.path().join("m.gguf");
    let report = run(&cfg(&src_dir, ExportFormat::Gguf, &out, Some(Quant::Q8_0))).unwrap();
    assert!(report.verification.unwrap().passed());
    // Q8_0 blocks are an f16 scale and 32 int8s: turn every scale of one tensor around and
    // multiply it by 8 (sign bit, exponent + 3).
    let name = "blk.1.ffn_down.weight";
    let (content, _) = read_gguf(&out);
    let info = &content.tensor_infos[name];
    assert_eq!(info.ggml_dtype, GgmlDType::Q8_0);
    let elems: usize = info.shape.elem_count();
    let mut bytes = std::fs::read(&out).unwrap();
    let at = content.tensor_data_offset as usize + info.offset as usize;
    for block in 0..elems / 32 {
        let scale = at + block * 34;
        let d = u16::from_le_bytes([bytes[scale], bytes[scale + 1]]);
        assert!((d >> 10) & 0x1f < 27, "scale too large to amplify");
        bytes[scale..scale + 2].copy_from_slice(&((d ^ 0x8000) + (3 << 10)).to_le_bytes());
    }
    std::fs::write(&out, bytes).unwrap();
    let src = read_source(&src_dir, None, &Device::Cpu).unwrap();
    let v = verify::verify(
        &src,
        &out,
        None,
        Quant::Q8_0,
        &Device::Cpu,
        &CancelToken::new(),
    )
    .unwrap();
    eprintln!("damaged q8_0: {}", v.summary);
    assert_eq!(v.outcome, verify::Outcome::Mismatch, "{}", v.summary);
    assert!(!v.passed());
}

/// The Hugging Face folder reloads with the model's logits, a LoRA adapter merged in; the PEFT
/// export is the adapter alone and loads over its base.
#[test]
fn hf_and_peft_exports_reload_as_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = fixtures().join("peft-llama-tiny");
    let hf = tmp.path().join("hf");
    let report = run(&cfg(&adapter, ExportFormat::Hf, &hf, None)).unwrap();
    assert!(report.verification.unwrap().verified);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
        "tokenizer_config.json",
        "verification.json",
    ] {
        assert!(hf.join(f).is_file(), "{f}");
    }
    let merged = load_dir(&adapter, &Device::Cpu).unwrap();
    let back = load_dir(&hf, &Device::Cpu).unwrap();
    assert_eq!(
        full_logits(&back.model, &PROBE),
        full_logits(&merged.model, &PROBE)
    );
    let names = candle_core::safetensors::load(hf.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(names.keys().all(|k| !k.contains("lora")), "merged");
    // The weights are as readable as the files beside them (not the 0600 of a private temp file).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| std::fs::metadata(hf.join(f)).unwrap().permissions().mode();
        assert_eq!(mode("model.safetensors"), mode("config.json"));
    }

    let peft = tmp.path().join("peft");
    let report = run(&cfg(&adapter, ExportFormat::Peft, &peft, None)).unwrap();
    assert!(report.verification.unwrap().verified);
    assert!(peft.join("adapter_model.safetensors").is_file());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(peft.join("adapter_config.json")).unwrap())
            .unwrap();
    // The fixture names its base relative to itself; the copy names it where it is.
    let base = PathBuf::from(config["base_model_name_or_path"].as_str().unwrap());
    assert!(
        base.is_absolute() && base.join("config.json").is_file(),
        "{base:?}"
    );

    // A model that is not an adapter has no PEFT export, and hf takes no block quantisation.
    let e = run(&cfg(
        &fixtures().join("llama-tiny"),
        ExportFormat::Peft,
        &tmp.path().join("p2"),
        None,
    ))
    .unwrap_err();
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("hf or gguf"),
        "{e}"
    );
    let e = run(&cfg(
        &adapter,
        ExportFormat::Hf,
        &tmp.path().join("h2"),
        Some(Quant::Q4KM),
    ))
    .unwrap_err();
    assert!(e.to_string().contains("f32 or f16"), "{e}");
}

/// The Ollama folder: the GGUF file and a Modelfile whose TEMPLATE is the model's ChatML format,
/// with its stop token, default system message and the command to run.
#[test]
fn ollama_folder_has_a_modelfile_for_the_chat_format() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("My Bot");
    let mut c = cfg(
        &fixtures().join("smollm2-chat-tiny"),
        ExportFormat::Ollama,
        &out,
        Some(Quant::F32),
    );
    c.name = Some("mybot".into());
    let report = run(&c).unwrap();
    assert!(report.verification.unwrap().verified);
    assert!(out.join("model.gguf").is_file());
    let m = std::fs::read_to_string(out.join("Modelfile")).unwrap();
    assert!(m.contains("\nFROM ./model.gguf\n"), "{m}");
    assert!(m.contains("TEMPLATE \"\"\"{{ range .Messages }}{{ if eq .Role \"system\" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n{{ end }}"), "{m}");
    assert!(
        m.contains("{{ end }}<|im_start|>assistant\n\"\"\"\n"),
        "{m}"
    );
    assert!(m.contains("PARAMETER stop \"<|im_end|>\"\n"), "{m}");
    assert!(m.contains("SYSTEM \"\"\"You are a helpful AI assistant named SmolLM, trained by Hugging Face\"\"\""), "{m}");
    assert_eq!(
        report.next_step.unwrap(),
        format!(
            "ollama create mybot -f '{}'",
            out.join("Modelfile").display()
        )
    );
    // A model without a template chats through the transcript.
    let out2 = tmp.path().join("plain");
    run(&cfg(
        &fixtures().join("gpt2-tiny"),
        ExportFormat::Ollama,
        &out2,
        Some(Quant::F32),
    ))
    .unwrap();
    let m = std::fs::read_to_string(out2.join("Modelfile")).unwrap();
    assert!(
        m.contains("User: {{ .Content }}") && m.contains("PARAMETER stop \"User:\""),
        "{m}"
    );
}

/// An `--out` that holds something is refused unless forced; a stopped export leaves nothing
/// under the final name and no temporary file.
#[test]
fn existing_outputs_are_kept_and_stopped_exports_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("llama-tiny");
    let out = tmp.path().join("m.gguf");
    std::fs::write(&out, b"precious").unwrap();
    let e = run(&cfg(&src, ExportFormat::Gguf, &out, None)).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // A folder of the user's own is never replaced, not even with --force; an earlier export is.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"mine").unwrap();
    let e = run(&cfg(&src, ExportFormat::Hf, &mine, None)).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    let mut forced = cfg(&src, ExportFormat::Hf, &mine, None);
    forced.force = true;
    let e = run(&forced).unwrap_err();
    assert!(e.to_string().contains("did not export"), "{e}");
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"mine");
    let folder = tmp.path().join("hf");
    run(&cfg(&src, ExportFormat::Hf, &folder, None)).unwrap();
    std::fs::write(folder.join("stale.txt"), b"old").unwrap();
    let mut forced = cfg(&src, ExportFormat::Hf, &folder, None);
    forced.force = true;
    run(&forced).unwrap();
    assert!(folder.join("model.safetensors").is_file() && !folder.join("stale.txt").exists());
    let e = run(&cfg(
        &src,
        ExportFormat::Gguf,
        &tmp.path().join("m.bin"),
        None,
    ))
    .unwrap_err();
    assert!(e.to_string().contains(".gguf"), "{e}");

    let cancel = CancelToken::new();
    let c = cancel.clone();
    let target = tmp.path().join("stopped.gguf");
    let mut seen = 0;
    let e = export::export(
        &cfg(&src, ExportFormat::Gguf, &target, None),
        &cancel,
        &mut |e: tunesmith_engine::Event| {
            if matches!(e, tunesmith_engine::Event::Progress { done: 3, .. }) {
                seen += 1;
                c.cancel();
            }
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled) && seen > 0, "{e}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("stopped"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Stopped once written, while the export is being checked: the folder it was to replace is
    // still there, unchanged, and nothing else is left.
    for format in [ExportFormat::Hf, ExportFormat::Gguf] {
        let cancel = CancelToken::new();
        let c = cancel.clone();
        let target = match format {
            ExportFormat::Gguf => out.clone(),
            _ => folder.clone(),
        };
        let before = std::fs::read_dir(tmp.path()).unwrap().count();
        let was = std::fs::read_dir(&folder).unwrap().count();
        let mut forced = cfg(&src, format, &target, None);
        forced.force = true;
        let e = export::export(&forced, &cancel, &mut |e: tunesmith_engine::Event| {
            if matches!(&e, tunesmith_engine::Event::Progress { stage, .. } if stage.contains("Checking"))
            {
                c.cancel();
            }
        })
        .unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{format:?}: {e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), was);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), before);
    }
}

/// An `--out` of `.`, `..` or the folder the command runs in is refused, and nothing around it
/// is touched, even with `--force`; so is an export onto the model it reads or its base.
#[test]
fn out_paths_that_name_no_new_place_are_refused() {
    let src = fixtures().join("llama-tiny");
    let here = std::env::current_dir().unwrap();
    for out in [
        PathBuf::from("."),
        PathBuf::from(".."),
        PathBuf::from("sub/.."),
        here.clone(),
        here.parent().unwrap().to_path_buf(),
        PathBuf::from("/"),
    ] {
        for format in [ExportFormat::Hf, ExportFormat::Gguf] {
            let mut c = cfg(&src, format, &out, None);
            c.force = true;
            let e = run(&c).unwrap_err();
            assert!(
                e.to_string().contains("new file or folder name"),
                "{out:?}: {e}"
            );
        }
    }
    assert!(here.join("Cargo.toml").is_file());

    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("model");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(&src).unwrap().flatten() {
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    std::fs::write(copy.join("old.gguf"), b"x").unwrap();
    // Marked as exports, so that the refusal is for holding the model, not for being the user's.
    std::fs::write(tmp.path().join("verification.json"), b"{}").unwrap();
    for (format, out) in [
        // A file inside the model, the model's folder, and a folder holding it.
        (ExportFormat::Gguf, copy.join("old.gguf")),
        (ExportFormat::Hf, copy.clone()),
        (ExportFormat::Hf, copy.join("sub").join("..")),
        (ExportFormat::Hf, tmp.path().to_path_buf()),
    ] {
        let mut c = cfg(&copy, format, &out, None);
        c.force = true;
        let e = run(&c).unwrap_err();
        assert!(
            [
                "is the model being exported",
                "new file or folder name",
                "did not export"
            ]
            .iter()
            .any(|m| e.to_string().contains(m)),
            "{out:?}: {e}"
        );
    }
    assert!(copy.join("config.json").is_file());
    // A new file beside the model's own is fine (where llama.cpp's converter writes).
    run(&cfg(
        &copy,
        ExportFormat::Gguf,
        &copy.join("new.gguf"),
        Some(Quant::F32),
    ))
    .unwrap();
    // An adapter's base counts as the model too.
    let adapter = fixtures().join("peft-llama-tiny");
    let base = tmp.path().join("base");
    std::fs::create_dir(&base).unwrap();
    std::fs::write(base.join("verification.json"), b"{}").unwrap();
    let mut c = cfg(&adapter, ExportFormat::Hf, &base, None);
    c.base = Some(base.clone());
    c.force = true;
    let e = run(&c).unwrap_err();
    assert!(e.to_string().contains("is the model being exported"), "{e}");
}
