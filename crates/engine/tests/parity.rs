//! Our GPT-2 against Hugging Face transformers on the same tiny random checkpoints
//! (`fixtures/make_fixtures.py` made the checkpoints and `reference.json`).

mod common;

use candle_core::{Device, Tensor};
use common::{fixtures, ids, reference};
use tunesmith_engine::data::tokenizer;
use tunesmith_engine::eval::evaluate_text;
use tunesmith_engine::generate::{generate_one, FinishReason, GenerateConfig};
use tunesmith_engine::model::load::load_dir;
use tunesmith_engine::{CancelToken, NullSink};

fn check_logits(dir: &str) {
    let r = reference();
    let m = load_dir(&fixtures().join(dir), &Device::Cpu).unwrap();
    let prompt = ids(&r["prompt_ids"]);
    let x = Tensor::from_slice(&prompt, (1, prompt.len()), &Device::Cpu).unwrap();
    let ours = common::full_logits(&m.model, &prompt);
    let theirs = r["logits"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    let mut max = 0f64;
    for (a, b) in ours.iter().zip(theirs) {
        for (x, y) in a.iter().zip(b.as_array().unwrap()) {
            max = max.max((*x as f64 - y.as_f64().unwrap()).abs());
        }
    }
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
    let cfg = GenerateConfig {
        prompt: prompt.into(),
        max_new_tokens: 24,
        temperature: 0.0,
        stop_at_eot: false,
        ..Default::default()
    };
    let g = generate_one(
        &m.model,
        &m.tokenizer,
        &cfg,
        0,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
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
