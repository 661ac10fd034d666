//! Generation: KV cache against full recompute, seeds, stop strings, n samples, UTF-8 streaming.

mod common;

use candle_core::Device;
use common::fixtures;
use tunesmith_engine::data::tokenizer;
use tunesmith_engine::generate::stream::TextStream;
use tunesmith_engine::generate::{generate, generate_one, FinishReason, GenerateConfig};
use tunesmith_engine::model::config::Gpt2Config;
use tunesmith_engine::model::load::{load_dir, LoadedModel};
use tunesmith_engine::model::{KvCache, Model, ModelConfig};
use tunesmith_engine::{CancelToken, Event, NullSink};

fn model() -> LoadedModel {
    load_dir(&fixtures().join("gpt2-tiny"), &Device::Cpu).unwrap()
}

fn cfg(prompt: &str) -> GenerateConfig {
    GenerateConfig {
        prompt: prompt.into(),
        max_new_tokens: 30,
        temperature: 1.0,
        top_k: 0,
        stop_at_eot: false,
        ..Default::default()
    }
}

/// Every family's decode path (one position at a time through the cache: the streamed
/// projections, grouped-query attention over the cache, Qwen2's q/k/v biases, a Q8_0 file's
/// quantised projections) against the whole sequence recomputed.
#[test]
fn kv_cache_gives_the_same_logits_as_recomputing() {
    for name in [
        "gpt2-tiny",
        "llama-tiny",
        "qwen2-tiny",
        "gguf/llama-tiny-q8_0.gguf",
    ] {
        let m = load_dir(&fixtures().join(name), &Device::Cpu).unwrap();
        let ids: Vec<u32> = (1..20).collect();
        let mut cache = KvCache::default();
        let mut cached = vec![m
            .model
            .step(&ids[..5], &mut cache)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()];
        for i in 5..ids.len() {
            cached.push(
                m.model
                    .step(&ids[i..i + 1], &mut cache)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
        }
        let full = common::full_logits(&m.model, &ids);
        for (k, c) in cached.iter().enumerate() {
            let f = &full[k + 4];
            let d = c
                .iter()
                .zip(f)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-4, "{name}, position {}: {d}", k + 4);
        }
    }
}

#[test]
fn an_empty_step_is_an_error_and_a_one_token_context_still_generates() {
    let m = model();
    assert!(m.model.step(&[], &mut KvCache::default()).is_err());
    // A context of one position: each new token restarts the cache on itself (restarting on
    // half the context, none, had panicked).
    let vocab = m.model.config().vocab_size();
    let config: ModelConfig = Gpt2Config::preset("tiny", vocab, 1).unwrap().into();
    let weights = config.init_weights(0, &Device::Cpu).unwrap();
    let one = Model::new(&weights, &config).unwrap();
    let out = generate_one(
        &one,
        &m.tokenizer,
        &GenerateConfig {
            max_new_tokens: 5,
            ..cfg("The invoice")
        },
        0,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(out.tokens.len(), 5);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let m = model();
    let c = cfg("The invoice");
    let run = |seed| {
        generate_one(
            &m.model,
            &m.tokenizer,
            &GenerateConfig { seed, ..c.clone() },
            0,
            &CancelToken::new(),
            &mut NullSink,
        )
        .unwrap()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).tokens, run(8).tokens);
}

#[test]
fn n_samples_are_independent_and_streamed() {
    let m = model();
    let mut pieces = Vec::new();
    let out = generate(
        &m.model,
        &m.tokenizer,
        &GenerateConfig {
            n: 3,
            ..cfg("Rules")
        },
        &CancelToken::new(),
        &mut |e| {
            if let Event::Token { text } = e {
                pieces.push(text)
            }
        },
    )
    .unwrap();
    assert_eq!(out.len(), 3);
    assert!(out[0].tokens != out[1].tokens || out[1].tokens != out[2].tokens);
    let all: String = out.iter().map(|g| g.text.as_str()).collect();
    assert_eq!(
        pieces.concat(),
        all,
        "streamed pieces add up to the samples"
    );
}

#[test]
fn stop_strings_cut_before_the_stop_and_never_stream_it() {
    let m = model();
    let c = GenerateConfig {
        temperature: 0.0,
        max_new_tokens: 24,
        ..cfg("A refund request is approved by")
    };
    let full = generate_one(
        &m.model,
        &m.tokenizer,
        &c,
        0,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    let stop = "AAA";
    let cut = full
        .text
        .find(stop)
        .expect("the greedy text of the fixture repeats A");
    let mut pieces = Vec::new();
    let g = generate_one(
        &m.model,
        &m.tokenizer,
        &GenerateConfig {
            stop: vec![stop.into()],
            ..c
        },
        0,
        &CancelToken::new(),
        &mut |e| {
            if let Event::Token { text } = e {
                pieces.push(text)
            }
        },
    )
    .unwrap();
    assert_eq!(g.text, full.text[..cut]);
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert_eq!(pieces.concat(), g.text);
}

#[test]
fn streamed_pieces_are_whole_characters() {
    let m = model();
    let text = "Le café coûte 12 € — naïve 🚀 fin";
    let ids = tokenizer::encode(&m.tokenizer, text).unwrap();
    assert!(
        ids.len() > text.chars().count() / 2,
        "multi-byte characters span several tokens"
    );
    let mut s = TextStream::new(&m.tokenizer, &[]);
    let mut pieces = Vec::new();
    for id in ids {
        pieces.push(s.push(id).unwrap());
    }
    pieces.push(s.finish());
    assert!(
        pieces
            .iter()
            .all(|p| !p.contains(char::REPLACEMENT_CHARACTER)),
        "{pieces:?}"
    );
    assert_eq!(pieces.concat(), text);
    // A stop string that arrives split over several tokens is held back, then cut.
    let mut s = TextStream::new(&m.tokenizer, &["€ —".to_string()]);
    let mut out = String::new();
    for id in tokenizer::encode(&m.tokenizer, text).unwrap() {
        out.push_str(&s.push(id).unwrap());
    }
    out.push_str(&s.finish());
    assert_eq!(out, "Le café coûte 12 ");
    assert!(s.stopped());
}

#[test]
fn generation_runs_past_the_context_length() {
    let m = model();
    let n_ctx = m.config.context();
    let g = generate_one(
        &m.model,
        &m.tokenizer,
        &GenerateConfig {
            max_new_tokens: n_ctx + 20,
            ..cfg("x")
        },
        0,
        &CancelToken::new(),
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(g.tokens.len(), n_ctx + 20);
}

#[test]
fn bad_generation_settings_name_the_field() {
    let m = model();
    for (c, field) in [
        (
            GenerateConfig {
                temperature: -1.0,
                ..cfg("x")
            },
            "temperature",
        ),
        (
            GenerateConfig {
                top_p: 0.0,
                ..cfg("x")
            },
            "top_p",
        ),
        (GenerateConfig { n: 0, ..cfg("x") }, "`n`"),
        (
            GenerateConfig {
                min_new_tokens: 31,
                ..cfg("x")
            },
            "min_new_tokens",
        ),
    ] {
        let e = generate_one(
            &m.model,
            &m.tokenizer,
            &c,
            0,
            &CancelToken::new(),
            &mut NullSink,
        )
        .unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn min_new_tokens_holds_back_the_end_of_text() {
    let m = model();
    let eot = tokenizer::eot_id(&m.tokenizer).unwrap();
    let run = |c: &GenerateConfig| {
        generate_one(
            &m.model,
            &m.tokenizer,
            c,
            0,
            &CancelToken::new(),
            &mut NullSink,
        )
        .unwrap()
    };
    // Sampling is seeded, so this search finds the same sample that ends early every time.
    let ends_early = (0..500)
        .map(|seed| GenerateConfig {
            seed,
            stop_at_eot: true,
            ..cfg("The")
        })
        .find(|c| run(c).finish_reason == FinishReason::Stop)
        .expect("some seed samples the end-of-text token within 30 tokens");
    let held = run(&GenerateConfig {
        min_new_tokens: 30,
        ..ends_early
    });
    assert_eq!(held.finish_reason, FinishReason::Length);
    assert_eq!(held.tokens.len(), 30);
    assert!(!held.tokens.contains(&eot));
}

/// Several samples stepped together (one batched product per layer, as the server decodes its
/// clients) give each sample the tokens it gets alone: prompts of different lengths, greedy and
/// seeded sampling, samples ending at different steps, both model families and a quantised GGUF.
#[test]
fn samples_stepped_together_match_samples_stepped_alone() {
    use tunesmith_engine::generate::{DecodeOptions, Decoder};
    for source in [
        "gpt2-tiny",
        "llama-tiny",
        "qwen2-tiny",
        "gguf/llama-tiny-q8_0.gguf",
    ] {
        let m = load_dir(&fixtures().join(source), &Device::Cpu).unwrap();
        let configs: Vec<GenerateConfig> = [
            ("The invoice", 0.0, 9),
            ("Every approval workflow must validate", 0.9, 14),
            ("A", 0.0, 5),
            ("Refunds are", 1.2, 12),
        ]
        .into_iter()
        .map(|(prompt, temperature, n)| GenerateConfig {
            prompt: prompt.into(),
            max_new_tokens: n,
            temperature,
            top_k: 0,
            stop_at_eot: false,
            seed: 3,
            ..Default::default()
        })
        .collect();
        let alone: Vec<Vec<u32>> = configs
            .iter()
            .map(|c| {
                let mut d =
                    Decoder::new(&m.model, &m.tokenizer, c, 0, DecodeOptions::default()).unwrap();
                let mut ids = Vec::new();
                while let Some(t) = d.next().unwrap() {
                    ids.push(t.id);
                }
                ids
            })
            .collect();
        let mut decoders: Vec<Decoder> = configs
            .iter()
            .map(|c| Decoder::new(&m.model, &m.tokenizer, c, 0, DecodeOptions::default()).unwrap())
            .collect();
        let mut together = vec![Vec::new(); decoders.len()];
        loop {
            let mut refs: Vec<&mut Decoder> = decoders.iter_mut().collect();
            let steps = Decoder::step_all(&mut refs);
            let mut any = false;
            for (i, s) in steps.into_iter().enumerate() {
                if let Some(t) = s.unwrap() {
                    together[i].push(t.id);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        assert_eq!(together, alone, "{source}");
    }
}
