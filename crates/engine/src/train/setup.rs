//! Everything the loop starts from: a new run's documents read, model and tokenizer obtained and
//! the run's dataset tokenised, or a stopped run's checkpoint and dataset loaded.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::data::dataset::{self, Split};
use crate::data::{prepare, tokenizer};
use crate::model::{load, lora, Gpt2Config, ModelConfig};
use crate::progress::{CancelToken, Event, ProgressSink};
use crate::runs::{CheckpointState, RunDir};
use crate::settings::{ModelSpec, TrainConfig};
use crate::{source, Error, Result};

/// Everything the loop needs, whether fresh or resumed.
pub(super) struct Prepared {
    pub model_cfg: ModelConfig,
    /// The source's tokenizer config, chat template and generation config, kept in checkpoints.
    pub side_files: Vec<(String, Vec<u8>)>,
    /// With LoRA: the base model as `adapter_config.json` names it (a hub id or a folder).
    pub lora_base: Option<String>,
    pub tok: Tokenizer,
    pub weights: HashMap<String, Tensor>,
    pub data: dataset::TokenData,
    pub state: Option<(CheckpointState, HashMap<String, Tensor>)>,
}

/// A new run: read documents (bad files are skipped with a warning), get the model and tokenizer,
/// tokenise into the run's dataset folder. Each of these can take minutes (many files, a model
/// download), so Stop is honoured between files, during the download and between the stages.
pub(super) fn prepare_fresh(
    cfg: &TrainConfig,
    run: &RunDir,
    device: &Device,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Prepared> {
    let stop_here = || {
        if cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    };
    let input = read_units(cfg, cancel, sink)?;
    stop_here()?;
    let mut lora_base = None;
    let (model_cfg, tok, mut weights, side_files, template) = match &cfg.model {
        ModelSpec::Source(src) => {
            let dir = source::resolve_cancellable(src, cancel, sink)?;
            stop_here()?;
            if cfg.lora.is_some() {
                if lora::is_adapter_dir(&dir) {
                    return Err(Error::config(
                        "lora",
                        format!("cannot adapt `{src}`, which is itself a LoRA adapter; train it on with LoRA off (its adapters are merged into the base and every weight is trained)"),
                    ));
                }
                // A hub id stays a hub id (portable, as PEFT writes it); a folder is made absolute.
                lora_base = Some(if Path::new(src).exists() {
                    std::fs::canonicalize(&dir)
                        .unwrap_or(dir.clone())
                        .display()
                        .to_string()
                } else {
                    src.clone()
                });
            }
            let s = load::read_source(&dir, None, device)?;
            if let ModelConfig::Llama(c) = &s.config {
                if c.rope_freq_factors.is_some() {
                    return Err(Error::model(
                        &dir,
                        "its rope scaling (a rope_freqs tensor of no known form) cannot be written into a checkpoint; train from the model's Hugging Face folder instead",
                    ));
                }
            }
            (s.config, s.tokenizer, s.weights, s.side_files, s.template)
        }
        ModelSpec::Scratch(preset) => {
            sink.emit(Event::Progress {
                stage: "train tokenizer".into(),
                done: 0,
                total: 1,
                unit: "steps".into(),
            });
            let texts: Vec<String> = input.units().iter().map(|u| u.full_text()).collect();
            let tok = tokenizer::train_bpe(texts.iter(), cfg.vocab_size)?;
            sink.emit(Event::Progress {
                stage: "train tokenizer".into(),
                done: 1,
                total: 1,
                unit: "steps".into(),
            });
            let mut model_cfg = ModelConfig::from(Gpt2Config::preset(
                preset,
                tok.get_vocab_size(true),
                cfg.block_size.max(64),
            )?);
            model_cfg.set_end_token(tokenizer::eot_id(&tok));
            let weights = model_cfg.init_weights(cfg.seed, device)?;
            (model_cfg, tok, weights, Vec::new(), None)
        }
    };
    if let Some(settings) = &cfg.lora {
        weights.extend(lora::init_adapters(&model_cfg, settings, cfg.seed, device)?);
    }
    stop_here()?;
    let built = match input {
        // A prepared dataset keeps the split (and chunks) it was made with.
        Source::Dataset(ds) => dataset::build_units(
            &ds.units,
            &tok,
            template.as_ref(),
            ds.split(),
            &run.dataset(),
            cancel,
            sink,
        )?,
        Source::Files(units) => {
            // Chunked with the model's tokenizer, so `chunk_tokens` counts the tokens it reads.
            let units = prepare::chunk_units(units, &cfg.prepare, &tok);
            stop_here()?;
            let split = Split::Seeded {
                val_frac: cfg.val_frac,
                seed: cfg.seed,
            };
            // Question–answer pairs and chats are rendered with the model's own chat template.
            dataset::build_units(
                &units,
                &tok,
                template.as_ref(),
                split,
                &run.dataset(),
                cancel,
                sink,
            )?
        }
    };
    let data = built.0.data;
    Ok(Prepared {
        model_cfg,
        side_files,
        lora_base,
        tok,
        weights,
        data,
        state: None,
    })
}

/// What a new run learns from, before tokenising.
enum Source {
    /// Units of the files given.
    Files(Vec<prepare::Unit>),
    /// A prepared dataset: its units (already chunked) and their split.
    Dataset(Box<prepare::DatasetUnits>),
}

impl Source {
    fn units(&self) -> &[prepare::Unit] {
        match self {
            Source::Files(u) => u,
            Source::Dataset(ds) => &ds.units,
        }
    }
}

/// A prepared dataset's units (already chunked, with their split), or the given files imported,
/// cleaned and deduplicated as `tunesmith prepare` does (a bad file is reported and skipped,
/// unless none is left).
fn read_units(
    cfg: &TrainConfig,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Source> {
    if let Some(dir) = &cfg.dataset {
        return Ok(Source::Dataset(Box::new(prepare::read_dataset(dir)?)));
    }
    let opts = prepare::PrepareOptions {
        val_frac: cfg.val_frac,
        seed: cfg.seed,
        ..cfg.prepare.clone()
    };
    let collected = prepare::collect_cancellable(&cfg.data, &opts, cancel, sink)?;
    let mut units = collected.units;
    let mut seen = std::collections::HashSet::new();
    for path in &collected.streamed {
        prepare::stream_blocks(path, &opts, &mut seen, |_, unit| {
            units.push(unit);
            Ok(())
        })?;
    }
    Ok(Source::Files(units))
}

/// Loads the latest checkpoint of a run and its dataset. A run continues the way it started: with
/// LoRA (the same settings) if its checkpoints are adapters, without otherwise.
pub(super) fn resume(
    cfg: &TrainConfig,
    run: &RunDir,
    ckpt: &Path,
    device: &Device,
    sink: &mut impl ProgressSink,
) -> Result<Prepared> {
    sink.log(format!("loading checkpoint {}", ckpt.display()));
    // The run's own config.json (its dropout), whichever the weights are.
    let model_cfg = load::read_config(ckpt)?;
    let (weights, lora_base) = if lora::is_adapter_dir(ckpt) {
        let (_, source, adapter) = load::read_adapter_model(ckpt, None, device)?;
        match &cfg.lora {
            None => {
                return Err(Error::config(
                    "lora",
                    "is off, but this run trains LoRA adapters; continue it with LoRA on (as its run.json has it), or start a new run",
                ))
            }
            Some(s) if s.rank != adapter.settings.rank
                || s.alpha != adapter.settings.alpha
                || s.dropout != adapter.settings.dropout
                || s.targets_for(&source.config)? != adapter.settings.targets =>
            {
                return Err(Error::config(
                    "lora",
                    format!(
                        "settings differ from those this run's adapters were trained with (rank {}, alpha {}, dropout {}, targets {}); continue with those, or start a new run",
                        adapter.settings.rank,
                        adapter.settings.alpha,
                        adapter.settings.dropout,
                        adapter.settings.targets.join(",")
                    ),
                ))
            }
            Some(_) => {}
        }
        (source.weights, Some(adapter.base))
    } else {
        if cfg.lora.is_some() {
            return Err(Error::config(
                "lora",
                "is on, but this run trains every weight of its model; continue it without LoRA, or start a new run with LoRA",
            ));
        }
        (load::read_weights(ckpt, &model_cfg, device)?, None)
    };
    let tok = tokenizer::load(ckpt)?;
    let state = RunDir::read_state(ckpt)?;
    let opt_path = ckpt.join("optimizer.safetensors");
    let moments = candle_core::safetensors::load(&opt_path, device).map_err(|e| {
        Error::file(
            &opt_path,
            format!(
                "is damaged ({e}); delete this checkpoint folder to resume from the one before"
            ),
        )
    })?;
    let data = dataset::load(&run.dataset())?;
    Ok(Prepared {
        model_cfg,
        side_files: load::read_side_files(ckpt)?,
        lora_base,
        tok,
        weights,
        data,
        state: Some((state, moments)),
    })
}
