//! Throughput measurements for `tunesmith bench`: one training step (forward, backward, clipping,
//! AdamW) and one decode step, on random data, for the GPT-2 and SmolLM2 shapes in the README.

use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::data::batches::Batch;
use crate::generate::sampling::argmax;
use crate::model::lora::{self, LoraSettings};
use crate::model::{ops, Gpt2Config, KvCache, Model, ModelConfig};
use crate::rng::Rng;
use crate::train::optim::{AdamW, AdamWParams};
use crate::train::schedule::clip_factor;
use crate::train::step::accumulate;
use crate::{Error, Result};

/// A benchmark shape: architecture, batch, and how it trains.
#[derive(Debug, Clone)]
pub struct BenchPreset {
    pub name: String,
    pub config: ModelConfig,
    pub batch: usize,
    pub block: usize,
    /// LoRA adapters (rank 8, alpha 16, dropout 0.05, every projection) instead of full training.
    pub lora: bool,
    /// Activation recomputation per block.
    pub recompute: bool,
}

impl BenchPreset {
    /// The LoRA settings the preset trains with (rank 8, alpha 16, dropout 0.05, every
    /// projection), `None` for full training.
    fn lora_settings(&self) -> Option<LoraSettings> {
        self.lora.then(|| LoraSettings {
            dropout: 0.05,
            ..LoraSettings::default()
        })
    }
}

/// The preset names [`preset`] knows.
pub const PRESETS: &str = "tiny, small, gpt2, smollm2-135m, smollm2-135m-lora, smollm2-360m-lora, \
qwen2.5-0.5b-lora (each may name another block, as in gpt2@1024, and end in +recompute)";

/// `tiny` (4 layers, 4 heads, 256 wide), `small` (6, 6, 384), `gpt2` (12, 12, 768, batch 2): vocab
/// 50257, block 256, dropout 0.1, f32. `smollm2-135m`: SmolLM2-135M's shape (30 layers, 9 heads
/// over 3 key/value heads, 576 wide, vocab 49152, tied head), batch 2, block 256, no dropout;
/// `-lora` trains LoRA adapters on it. `smollm2-360m-lora` and `qwen2.5-0.5b-lora`: those models'
/// shapes, LoRA, batch 1, block 512 (issue 8's memory case). `@BLOCK` sets another block (GPT-2
/// shapes get the positions for it), as in `gpt2@1024`; a `+recompute` suffix recomputes
/// activations per block.
pub fn preset(name: &str) -> Result<BenchPreset> {
    let (base, recompute) = match name.strip_suffix("+recompute") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (base, block) = match base.split_once('@') {
        Some((base, block)) => {
            let digits = !block.is_empty() && block.bytes().all(|b| b.is_ascii_digit());
            match block.parse::<usize>() {
                Ok(b) if digits && (1..=MAX_BLOCK).contains(&b) => (base, Some(b)),
                _ => {
                    return Err(Error::config(
                        "presets",
                        format!(
                        "`{name}`: the block after @ must be a whole number from 1 to {MAX_BLOCK} \
                             (a suffix such as +recompute comes after it)"
                    ),
                    ))
                }
            }
        }
        None => (base, None),
    };
    let llama = |id: &str, batch, default_block: usize, lora| {
        let config = published(id);
        let block = block.unwrap_or(default_block);
        if block > config.context() {
            return Err(Error::config(
                "presets",
                format!(
                    "`{name}`: the block exceeds the model's {} positions",
                    config.context()
                ),
            ));
        }
        Ok(BenchPreset {
            name: name.into(),
            config,
            batch,
            block,
            lora,
            recompute,
        })
    };
    match base {
        "smollm2-135m" => return llama(SMOLLM2_135M, 2, 256, false),
        "smollm2-135m-lora" => return llama(SMOLLM2_135M, 2, 256, true),
        "smollm2-360m-lora" => return llama("HuggingFaceTB/SmolLM2-360M-Instruct", 1, 512, true),
        "qwen2.5-0.5b-lora" => return llama("Qwen/Qwen2.5-0.5B-Instruct", 1, 512, true),
        _ => {}
    }
    let (scratch, batch, n_positions) = match base {
        "tiny" => ("tiny", 4, 256),
        "small" => ("small", 4, 256),
        "gpt2" => ("base", 2, 1024),
        _ => {
            return Err(Error::config(
                "presets",
                format!("`{name}` is not one of {PRESETS}"),
            ))
        }
    };
    let block = block.unwrap_or(256);
    let config = Gpt2Config::preset(scratch, 50257, n_positions.max(block))?.into();
    Ok(BenchPreset {
        name: name.into(),
        config,
        batch,
        block,
        lora: false,
        recompute,
    })
}

/// The longest block a preset may name (`@BLOCK`).
const MAX_BLOCK: usize = 1 << 17;

const SMOLLM2_135M: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

fn published(id: &str) -> ModelConfig {
    crate::model::known::published_config(id).expect("a listed model")
}

fn random_ids(rng: &mut Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(vocab as u64) as u32).collect()
}

/// The engine's memory estimate for training this preset (what the app shows before training),
/// to set beside the measured peak.
pub fn estimated_peak_bytes(p: &BenchPreset) -> u64 {
    let lora = p.lora_settings();
    crate::train::memory::estimate(&p.config, p.batch, p.block, lora.as_ref(), p.recompute)
        .total_bytes
}

/// Untimed steps before timing starts, ours and the PyTorch reference's alike: the allocators and
/// thread pools of both settle over the first steps.
pub const WARMUP_STEPS: usize = 2;

/// Training tokens per second over `steps` timed steps (after [`WARMUP_STEPS`] untimed ones).
pub fn train_tokens_per_sec(p: &BenchPreset, steps: usize, device: &Device) -> Result<f64> {
    let mut weights = p.config.init_weights(0, device)?;
    let lora = p.lora_settings();
    if let Some(settings) = &lora {
        weights.extend(lora::init_adapters(&p.config, settings, 0, device)?);
    }
    let (tensors, params) =
        crate::train::into_trainable(weights, &p.config, false, lora.is_some())?;
    let model = Model::with_lora(&tensors, &p.config, lora.as_ref().map(|l| l.runtime()))?;
    let mut opt = AdamW::new(params)?;
    let hp = AdamWParams {
        lr: 3e-4,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut rng = Rng::new(1);
    let mut run_step = |step: u64| -> Result<()> {
        let n = p.batch * (p.block + 1);
        let ids = random_ids(&mut rng, n, p.config.vocab_size());
        let (inputs, targets): (Vec<u32>, Vec<u32>) = ids
            .chunks(p.block + 1)
            .flat_map(|row| row[..p.block].iter().copied().zip(row[1..].iter().copied()))
            .unzip();
        let batch = Batch {
            inputs,
            targets,
            batch: p.batch,
            block: p.block,
        };
        let (grads, _) = accumulate(&model, &opt.params, &[batch], 0, step, p.recompute, device)?;
        let norm = opt.grad_norm(&grads)?;
        opt.step(&grads, clip_factor(norm, 1.0), hp)?;
        Ok(())
    };
    for s in 0..WARMUP_STEPS {
        run_step(s as u64)?;
    }
    let start = Instant::now();
    for s in 0..steps {
        run_step((WARMUP_STEPS + s) as u64)?;
    }
    Ok((p.batch * p.block * steps) as f64 / start.elapsed().as_secs_f64())
}

/// How each new token is computed in [`generate_tokens_per_sec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// One position per token through the KV cache (what generation does).
    Cached,
    /// Full recompute: the whole sequence through the model's forward pass, logits for every
    /// position, as a model without a cache runs.
    FullForward,
    /// Recompute the whole sequence but take the head for the last position only: the leanest
    /// cache-free baseline.
    LastPosition,
}

/// Greedy decoding speed (tokens per second) for `new_tokens` after a 16-token prompt, after an
/// untimed warm-up generation.
pub fn generate_tokens_per_sec(
    p: &BenchPreset,
    new_tokens: usize,
    decode: Decode,
    device: &Device,
) -> Result<f64> {
    let weights = p.config.init_weights(0, device)?;
    let model = Model::new(&weights, &p.config)?;
    // One untimed generation first, as the PyTorch reference takes (`--warmup 1`).
    decode_tokens_per_sec(&model, new_tokens.min(16), decode)?;
    decode_tokens_per_sec(&model, new_tokens, decode)
}

/// Greedy decoding speed of a loaded model (a GGUF file, quantised or not): `new_tokens` after a
/// 16-token prompt, the prompt's forward pass included.
pub fn decode_tokens_per_sec(model: &Model, new_tokens: usize, decode: Decode) -> Result<f64> {
    let device = model.device();
    let mut ids = random_ids(&mut Rng::new(2), 16, model.config().vocab_size());
    let start = Instant::now();
    let mut cache = KvCache::default();
    let mut pending = ids.clone();
    for _ in 0..new_tokens {
        let logits = match decode {
            Decode::Cached => model.step(&pending, &mut cache)?,
            Decode::LastPosition => model.step(&ids, &mut KvCache::default())?,
            Decode::FullForward => {
                let x = Tensor::from_slice(&ids, (1, ids.len()), device)?;
                model.forward(&x)?.squeeze(0)?.get(ids.len() - 1)?
            }
        };
        let next = argmax(&logits.to_vec1::<f32>()?);
        ids.push(next);
        pending = vec![next];
    }
    Ok(new_tokens as f64 / start.elapsed().as_secs_f64())
}

/// Bytes of f32 weights one decode step reads: every weight except the embedding tables, which
/// are only looked up (a row each), and the token embedding once more as the head when it is
/// tied. Over [`ReadBandwidth::measure`], the fastest a decode step that streams its weights from
/// memory can be (a model small enough for the caches can beat it).
pub fn decode_weight_bytes(config: &ModelConfig) -> u64 {
    let tied = match config {
        ModelConfig::Gpt2(c) => c.tied(),
        ModelConfig::Llama(c) => c.tie_word_embeddings,
    };
    let mut weights = 0;
    for (name, shape) in config.weight_shapes() {
        let size: usize = shape.iter().product();
        let token_table = name == "wte.weight" || name == "model.embed_tokens.weight";
        let looked_up = token_table || name == "wpe.weight";
        if !looked_up || (token_table && tied) {
            weights += size as u64;
        }
    }
    4 * weights
}

/// How fast this machine streams memory to the thread pool: sums over 1 GiB, far beyond the
/// caches (made once, and touched then, so each measurement reads pages already there).
pub struct ReadBandwidth(Vec<f32>);

impl ReadBandwidth {
    pub fn new() -> Self {
        ReadBandwidth(vec![1f32; 1 << 28])
    }

    /// Bytes per second: the best of three sums.
    pub fn measure(&self) -> f64 {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(ops::sum_streamed(std::hint::black_box(&self.0)));
                (self.0.len() * 4) as f64 / start.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    }
}

impl Default for ReadBandwidth {
    fn default() -> Self {
        Self::new()
    }
}

/// Prompt processing speed (tokens per second): one forward pass of a `prompt_len`-token prompt
/// into an empty KV cache, as the first step of a chat reply is (llama.cpp's `pp` figure).
pub fn prefill_tokens_per_sec(model: &Model, prompt_len: usize) -> Result<f64> {
    let ids = random_ids(&mut Rng::new(3), prompt_len, model.config().vocab_size());
    let start = Instant::now();
    let logits = model.step(&ids, &mut KvCache::default())?;
    logits.to_vec1::<f32>()?;
    Ok(prompt_len as f64 / start.elapsed().as_secs_f64())
}

/// How the cost per token grows with length: training time per token at block 128 and at block
/// 1024 (the same 1024 tokens per step), and decoding time per token over the first and the last
/// 128 of 2048 tokens through the KV cache. Flat costs keep both ratios near 1.
#[derive(Debug, Clone, Copy)]
pub struct CostGrowth {
    pub train_ms_per_token_block_128: f64,
    pub train_ms_per_token_block_1024: f64,
    pub decode_ms_per_token_first_128: f64,
    pub decode_ms_per_token_last_128: f64,
}

/// [`CostGrowth`] on `small`'s shape (6 layers, 384 wide, vocab 50257) with 2048 positions.
pub fn cost_growth(steps: usize, device: &Device) -> Result<CostGrowth> {
    let config: ModelConfig = Gpt2Config::preset("small", 50257, 2048)?.into();
    let at_block = |block: usize| -> Result<f64> {
        let p = BenchPreset {
            name: format!("small@{block}"),
            config: config.clone(),
            batch: 1024 / block,
            block,
            lora: false,
            recompute: false,
        };
        Ok(1000.0 / train_tokens_per_sec(&p, steps, device)?)
    };
    let (short, long) = (at_block(128)?, at_block(1024)?);
    let model = Model::new(&config.init_weights(0, device)?, &config)?;
    let times = decode_times(&model, 2048)?;
    let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64 * 1000.0;
    Ok(CostGrowth {
        train_ms_per_token_block_128: short,
        train_ms_per_token_block_1024: long,
        decode_ms_per_token_first_128: mean(&times[1..129]),
        decode_ms_per_token_last_128: mean(&times[times.len() - 128..]),
    })
}

/// Seconds each greedy token took, one position at a time from a one-token prompt, `n` in all.
fn decode_times(model: &Model, n: usize) -> Result<Vec<f64>> {
    let mut cache = KvCache::default();
    let mut next = 0u32;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let logits = model.step(&[next], &mut cache)?;
        next = argmax(&logits.to_vec1::<f32>()?);
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_step_reads_every_weight_but_the_looked_up_tables() {
        // GPT-2 124M: 124,439,808 parameters, the 1024 × 768 position table only looked up, the
        // token table read again as the tied head.
        let gpt2 = preset("gpt2").unwrap();
        assert_eq!(
            decode_weight_bytes(&gpt2.config),
            4 * (124_439_808 - 1024 * 768)
        );
        // SmolLM2-135M: tied, no position table: every parameter.
        let smol = preset("smollm2-135m").unwrap();
        assert_eq!(decode_weight_bytes(&smol.config), 4 * 134_515_008);
        // Untied: the token table is only looked up, the separate head is read.
        let mut untied = gpt2.config.clone();
        if let ModelConfig::Gpt2(c) = &mut untied {
            c.extra.insert("tie_word_embeddings".into(), false.into());
        }
        assert_eq!(decode_weight_bytes(&untied), 4 * (124_439_808 - 1024 * 768));
    }

    #[test]
    fn a_preset_may_name_its_block() {
        let p = preset("gpt2@1024+recompute").unwrap();
        assert_eq!((p.block, p.batch, p.recompute), (1024, 2, true));
        let p = preset("small@512").unwrap();
        assert_eq!((p.block, p.config.context()), (512, 512));
        assert_eq!(preset("smollm2-135m-lora@128").unwrap().block, 128);
        for bad in [
            "gpt2@",
            "gpt2@0",
            "gpt2@x",
            "gpt2@+64",
            "gpt2@18446744073709551615",
            "gpt2+recompute@64",
            "smollm2-135m@100000",
        ] {
            let e = preset(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
