//! LoRA: low-rank adapters beside the projections they adapt, for both families, stored in PEFT's
//! format so that `peft.PeftModel.from_pretrained` loads them (and we load PEFT's).
//!
//! An adapted projection computes `base(x) + scale · dropout(x) · Aᵀ · Bᵀ` with `A: (r, in)`,
//! `B: (out, r)` and `scale = alpha / r` (`alpha / √r` with rsLoRA), PEFT's `lora_A` / `lora_B`.
//! The adapters live in the same weight map as the model, as `<module>.lora_A.weight` and
//! `<module>.lora_B.weight`; a projection that finds them there uses them.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::family::ModelConfig;
use super::layers::{dropout, get, DropoutRng, Weights};
use super::ops;
use crate::rng::Rng;
use crate::{fsutil, Error, Result};

/// The adapter file and its settings, named as PEFT names them.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// What LoRA training adapts and how much.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraSettings {
    /// Rank of each adapter (`r`).
    pub rank: usize,
    /// Scale numerator: updates are multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on an adapter's input while training.
    pub dropout: f32,
    /// Projection names to adapt (`q_proj`, `c_attn`, …); empty means every attention and MLP
    /// projection of the model.
    pub targets: Vec<String>,
}

impl Default for LoraSettings {
    fn default() -> Self {
        LoraSettings {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: Vec::new(),
        }
    }
}

impl LoraSettings {
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || self.rank > 1024 {
            return Err(Error::config("lora_rank", "must be from 1 to 1024"));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::config("lora_alpha", "must be above 0"));
        }
        if !(0.0..=0.9).contains(&self.dropout) {
            return Err(Error::config("lora_dropout", "must be from 0 to 0.9"));
        }
        Ok(())
    }

    pub fn runtime(&self) -> LoraRuntime {
        LoraRuntime {
            scale: self.alpha / self.rank as f64,
            dropout: self.dropout,
        }
    }

    /// The target names for `cfg`, refusing names the model does not have.
    pub fn targets_for(&self, cfg: &ModelConfig) -> Result<Vec<String>> {
        let all = default_targets(cfg);
        if self.targets.is_empty() {
            return Ok(all.iter().map(|s| s.to_string()).collect());
        }
        for t in &self.targets {
            if !all.contains(&t.as_str()) {
                return Err(Error::config(
                    "lora_targets",
                    format!(
                        "`{t}` is not a projection of this {} model; choose from {}",
                        cfg.model_type(),
                        all.join(", ")
                    ),
                ));
            }
        }
        Ok(self.targets.clone())
    }
}

/// Every attention and MLP projection of the family.
pub fn default_targets(cfg: &ModelConfig) -> &'static [&'static str] {
    match cfg {
        ModelConfig::Gpt2(_) => &["c_attn", "c_proj", "c_fc"],
        ModelConfig::Llama(_) => &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    }
}

/// The scale and dropout every adapter of a model shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraRuntime {
    pub scale: f64,
    pub dropout: f32,
}

/// The modules `targets` selects, with their input and output widths, in a stable order.
pub fn target_modules(cfg: &ModelConfig, targets: &[String]) -> Vec<(String, usize, usize)> {
    cfg.weight_shapes()
        .into_iter()
        .filter_map(|(name, shape)| {
            let module = name.strip_suffix(".weight")?;
            let last = module.rsplit('.').next()?;
            if shape.len() != 2 || !targets.iter().any(|t| t == last) {
                return None;
            }
            // GPT-2's Conv1D stores (in, out); nn.Linear stores (out, in).
            let (n_in, n_out) = match cfg {
                ModelConfig::Gpt2(_) => (shape[0], shape[1]),
                ModelConfig::Llama(_) => (shape[1], shape[0]),
            };
            Some((module.to_string(), n_in, n_out))
        })
        .collect()
}

/// Whether a weight name is an adapter's.
pub fn is_adapter(name: &str) -> bool {
    name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight")
}

/// New adapters as PEFT initialises them: `A` Kaiming-uniform (bound 1/√in), `B` zero, so the
/// adapted model starts as the base model. Seeded.
pub fn init_adapters(
    cfg: &ModelConfig,
    settings: &LoraSettings,
    seed: u64,
    device: &Device,
) -> Result<Weights> {
    let mut out = Weights::new();
    let r = settings.rank;
    for (i, (module, n_in, n_out)) in target_modules(cfg, &settings.targets_for(cfg)?)
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng::derive(seed, "lora", &[i as u64]);
        let bound = 1.0 / (n_in as f32).sqrt();
        let a: Vec<f32> = (0..r * n_in)
            .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
            .collect();
        out.insert(
            format!("{module}.lora_A.weight"),
            Tensor::from_vec(a, (r, n_in), device)?,
        );
        out.insert(
            format!("{module}.lora_B.weight"),
            Tensor::zeros((n_out, r), candle_core::DType::F32, device)?,
        );
    }
    Ok(out)
}

/// One projection's adapter.
pub(crate) struct Adapter {
    a: Tensor,
    b: Tensor,
    rt: LoraRuntime,
}

impl Adapter {
    /// The adapter of module `p` if `w` holds one.
    pub(crate) fn find(
        w: &Weights,
        p: &str,
        n_in: usize,
        n_out: usize,
        rt: Option<LoraRuntime>,
    ) -> candle_core::Result<Option<Self>> {
        let (Some(rt), Some(a)) = (rt, w.get(&format!("{p}.lora_A.weight"))) else {
            return Ok(None);
        };
        let r = a.dim(0)?;
        Ok(Some(Adapter {
            a: get(w, &format!("{p}.lora_A.weight"), &[r, n_in])?,
            b: get(w, &format!("{p}.lora_B.weight"), &[n_out, r])?,
            rt,
        }))
    }

    /// The frozen projection `base` of `x` plus this adapter's update, as one fused op
    /// ([`ops::lora_linear`]); `None` (drawing no dropout mask) where that op does not apply.
    pub(crate) fn fused(
        &self,
        x: &Tensor,
        base: &ops::FrozenBase,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Option<Tensor>> {
        if !ops::lora_linear::applies(x, base, &self.a, &self.b) {
            return Ok(None);
        }
        let p = self.rt.dropout;
        let mask = match rng.as_mut() {
            // One draw seeds the mask, as `layers::dropout` draws it on the unfused path.
            Some(r) if p > 0.0 => Some((r.0.next_u64(), p)),
            _ => None,
        };
        ops::lora_linear(x, base, &self.a, &self.b, self.rt.scale, mask)
    }

    /// `y` plus the adapter's update for input `x`, or `y` itself without an adapter.
    pub(crate) fn add(
        adapter: &Option<Self>,
        y: Tensor,
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        match adapter {
            Some(a) => y + a.forward(x, rng)?,
            None => Ok(y),
        }
    }

    /// `scale · dropout(x) · Aᵀ · Bᵀ` for `x: (N, in)`; the scale multiplies the narrow `(N, r)`
    /// product, so training keeps no extra `(N, out)` tensor for it.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rng: &mut Option<&mut DropoutRng>,
    ) -> candle_core::Result<Tensor> {
        let x = dropout(x, self.rt.dropout, rng)?;
        (x.matmul(&self.a.t()?)? * self.rt.scale)?.matmul(&self.b.t()?)
    }
}

/// Folds the adapters into the base weights (`W += scale · B·A`, transposed for GPT-2's Conv1D)
/// and drops them: the result is a plain model with the adapted behaviour.
pub fn merge(weights: &mut Weights, cfg: &ModelConfig, rt: LoraRuntime) -> Result<()> {
    let modules: Vec<String> = weights
        .keys()
        .filter_map(|k| k.strip_suffix(".lora_A.weight").map(String::from))
        .collect();
    for m in modules {
        let a = weights
            .remove(&format!("{m}.lora_A.weight"))
            .expect("listed");
        let b = weights
            .remove(&format!("{m}.lora_B.weight"))
            .ok_or_else(|| Error::Data(format!("the adapter of `{m}` has no lora_B")))?;
        let delta = (b.matmul(&a)? * rt.scale)?;
        let delta = match cfg {
            ModelConfig::Gpt2(_) => delta.t()?.contiguous()?,
            ModelConfig::Llama(_) => delta,
        };
        let key = format!("{m}.weight");
        let w = weights.get(&key).ok_or_else(|| {
            Error::Data(format!("the adapter adapts `{m}`, which the model lacks"))
        })?;
        if w.dims() != delta.dims() {
            return Err(Error::Data(format!(
                "the adapter of `{m}` has shape {:?} but the model's weight is {:?}",
                delta.dims(),
                w.dims()
            )));
        }
        let merged = (w + delta)?;
        weights.insert(key, merged);
    }
    Ok(())
}

/// The settings of an adapter folder (`adapter_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// Where the base model is: a hub id or a folder.
    pub base: String,
    pub settings: LoraSettings,
    pub runtime: LoraRuntime,
}

/// Whether `dir` is a PEFT LoRA adapter folder.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// Reads `adapter_config.json`, refusing PEFT variants we do not implement.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::model(&path, format!("it is not valid JSON ({e})")))?;
    let bad = |msg: String| Error::model(&path, msg);
    let peft_type = v["peft_type"].as_str().unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(bad(format!(
            "it is a {peft_type} adapter; Tunesmith reads LoRA adapters only"
        )));
    }
    if v["use_dora"].as_bool() == Some(true) {
        return Err(bad(
            "it is a DoRA adapter, which Tunesmith cannot read".into()
        ));
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if v[k].as_object().is_some_and(|o| !o.is_empty()) {
            return Err(bad(format!(
                "its `{k}` gives modules their own ranks, which Tunesmith cannot read"
            )));
        }
    }
    let rank = v["r"]
        .as_u64()
        .ok_or_else(|| bad("it has no rank `r`".into()))? as usize;
    let alpha = v["lora_alpha"].as_f64().unwrap_or(8.0);
    let targets = match &v["target_modules"] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    let settings = LoraSettings {
        rank,
        alpha,
        dropout: v["lora_dropout"].as_f64().unwrap_or(0.0) as f32,
        targets,
    };
    let scale = if v["use_rslora"].as_bool() == Some(true) {
        alpha / (rank as f64).sqrt()
    } else {
        alpha / rank as f64
    };
    Ok(AdapterConfig {
        base: v["base_model_name_or_path"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        runtime: LoraRuntime {
            scale,
            dropout: settings.dropout,
        },
        settings,
    })
}

/// The adapter weights of a folder, under our names (PEFT's `base_model.model.` prefix removed,
/// GPT-2's `transformer.` too), checked against the base model's shapes.
pub fn read_adapter_weights(dir: &Path, cfg: &ModelConfig, device: &Device) -> Result<Weights> {
    let expected_rank = read_adapter_config(dir)?.settings.rank;
    let path = dir.join(ADAPTER_WEIGHTS);
    if !path.is_file() {
        return Err(Error::model(
            dir,
            format!("it has adapter_config.json but no {ADAPTER_WEIGHTS}"),
        ));
    }
    let raw = candle_core::safetensors::load(&path, device).map_err(|e| {
        Error::model(
            &path,
            format!("the adapter file is damaged or incomplete ({e}); copy it again"),
        )
    })?;
    let shapes: std::collections::HashMap<String, Vec<usize>> =
        cfg.weight_shapes().into_iter().collect();
    let mut out = Weights::new();
    for (name, t) in raw {
        let hf = name.strip_prefix("base_model.model.").unwrap_or(&name);
        // PEFT may keep the adapter name in the key (`lora_A.default.weight`).
        let hf = hf
            .replace(".lora_A.default.", ".lora_A.")
            .replace(".lora_B.default.", ".lora_B.");
        let Some(ours) = cfg.our_name(&hf) else {
            continue;
        };
        if !is_adapter(&ours) {
            return Err(Error::model(
                &path,
                format!("it holds `{name}`, which is not a LoRA weight; Tunesmith reads plain LoRA adapters only"),
            ));
        }
        let module = ours
            .rsplit_once(".lora_")
            .map(|(m, _)| m.to_string())
            .unwrap_or_default();
        let Some(base) = shapes.get(&format!("{module}.weight")) else {
            return Err(Error::model(
                &path,
                format!("it adapts `{module}`, which the base model does not have: the adapter was made for another model"),
            ));
        };
        let (n_in, n_out) = match cfg {
            ModelConfig::Gpt2(_) => (base[0], base[1]),
            ModelConfig::Llama(_) => (base[1], base[0]),
        };
        let d = t.dims();
        let fits = d.len() == 2
            && if ours.ends_with("lora_A.weight") {
                d[1] == n_in
            } else {
                d[0] == n_out
            };
        if !fits {
            return Err(Error::model(
                &path,
                format!(
                    "its `{name}` has shape {d:?}, which does not fit the base model's `{module}` ({n_in} in, {n_out} out): the adapter was made for another model"
                ),
            ));
        }
        if ours.ends_with("lora_A.weight") && d[0] != expected_rank
            || ours.ends_with("lora_B.weight") && d[1] != expected_rank
        {
            return Err(Error::model(
                &path,
                format!(
                    "its `{name}` has shape {d:?}, but adapter_config.json gives rank {expected_rank}; the adapter files do not belong together"
                ),
            ));
        }
        out.insert(ours, t.to_dtype(candle_core::DType::F32)?);
    }
    if out.is_empty() {
        return Err(Error::model(&path, "it holds no LoRA weights"));
    }
    Ok(out)
}

/// Writes `adapters` (our names) as a PEFT adapter folder's two files.
pub fn save_adapter(
    dir: &Path,
    adapters: &Weights,
    cfg: &ModelConfig,
    settings: &LoraSettings,
    base: &str,
) -> Result<()> {
    let named: std::collections::HashMap<String, Tensor> = adapters
        .iter()
        .filter(|(k, _)| is_adapter(k))
        .map(|(k, v)| (format!("base_model.model.{}", cfg.hf_name(k)), v.clone()))
        .collect();
    let path = dir.join(ADAPTER_WEIGHTS);
    crate::fsutil::save_safetensors(&named, &path)?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": settings.rank,
        "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout,
        "target_modules": settings.targets_for(cfg)?,
        "bias": "none",
        "fan_in_fan_out": matches!(cfg, ModelConfig::Gpt2(_)),
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": false,
        "use_dora": false,
        "rank_pattern": {},
        "alpha_pattern": {},
    });
    fsutil::write_json(&dir.join(ADAPTER_CONFIG), &config)
}
