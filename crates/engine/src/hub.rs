//! Downloads from the Hugging Face hub through hf-hub and its cache (shared with Python tools when
//! `HF_HOME` is set). Files already in the cache are used without any network access; an offline
//! or unreachable hub fails fast with a message that says what to do instead.

use std::net::{TcpStream, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::api::Progress;
use hf_hub::{Cache, Repo};

use crate::progress::{CancelToken, Event, ProgressSink};
use crate::{Error, Result};

/// The hub's address: `HF_ENDPOINT`, or huggingface.co.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
}

/// Files of a GPT-2 model: the first two are required.
const REQUIRED: &[&str] = &["config.json", "model.safetensors"];
const TOKENIZER: &[&str] = &["tokenizer.json", "vocab.json", "merges.txt"];
/// Fetched when the repository has them: end ids, the chat template and its special tokens.
const OPTIONAL: &[&str] = &[
    "generation_config.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
];
/// Where a sharded checkpoint lists its shards.
const INDEX: &str = "model.safetensors.index.json";

/// The access token for gated repositories (Llama 3.2): `HF_TOKEN`, else
/// `HUGGING_FACE_HUB_TOKEN`, else the token `huggingface-cli login` saved.
fn token() -> Option<String> {
    ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|t| !t.trim().is_empty()))
        .or_else(|| {
            let home = std::env::var_os("HF_HOME").map(PathBuf::from).or_else(|| {
                directories::BaseDirs::new().map(|b| b.home_dir().join(".cache/huggingface"))
            })?;
            std::fs::read_to_string(home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        })
}

/// The shard files a `model.safetensors.index.json` lists; `None` when it lists none, or a name
/// that is not a plain `.safetensors` file name (the index comes from the network: a name with a
/// folder in it could put a file anywhere).
fn shards_of(index: &Path) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(index).ok()?).ok()?;
    index_shards(&v).ok().filter(|f| !f.is_empty())
}

/// The shard file names of a parsed `model.safetensors.index.json` (sorted, each once), or the
/// first name that is not a plain `.safetensors` file name.
pub(crate) fn index_shards(index: &serde_json::Value) -> std::result::Result<Vec<String>, String> {
    let mut files: Vec<String> = index["weight_map"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.dedup();
    match files
        .iter()
        .find(|f| !crate::fsutil::is_plain_file_name(f, ".safetensors"))
    {
        Some(bad) => Err(bad.clone()),
        None => Ok(files),
    }
}

/// Whether `s` looks like a hub id (`gpt2`, `openai-community/gpt2`).
pub fn is_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (parts.len() == 1 || parts.len() == 2) && parts.iter().all(|p| ok(p))
}

fn offline_advice() -> &'static str {
    "Check the internet connection and try again, or use a model you already have: import a \
     model folder, or train a small model from scratch, which needs no download"
}

/// The folder of a model already in the cache, if every needed file is there.
pub fn cached(repo_id: &str, cache_dir: &Path) -> Option<PathBuf> {
    let repo = Cache::new(cache_dir.to_path_buf()).repo(Repo::model(repo_id.to_string()));
    let config = repo.get("config.json")?;
    if repo.get("model.safetensors").is_none() {
        let shards = shards_of(&repo.get(INDEX)?)?;
        for s in shards {
            repo.get(&s)?;
        }
    }
    let has_tokenizer = repo.get("tokenizer.json").is_some()
        || (repo.get("vocab.json").is_some() && repo.get("merges.txt").is_some());
    has_tokenizer
        .then(|| config.parent().map(Path::to_path_buf))
        .flatten()
}

/// Fails within ~10 s when the hub cannot be reached at all, instead of hanging.
fn probe(endpoint: &str, repo_id: &str) -> Result<()> {
    let fail = |why: String| {
        Error::Hub(format!("Could not download `{repo_id}`: the model hub at {endpoint} cannot be reached ({why}). {}", offline_advice()))
    };
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let default_port = if endpoint.starts_with("https") {
        443
    } else {
        80
    };
    let target = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:{default_port}")
    };
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| fail(format!("name lookup failed: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(fail(last))
}

/// Forwards hf-hub's byte counts as `Progress` events, about once per percent, and stops the
/// transfer between two chunks when the user cancels.
struct HubProgress<'a, S: ProgressSink> {
    sink: &'a mut S,
    cancel: &'a CancelToken,
    file: String,
    total: u64,
    done: u64,
    last_emit: u64,
}

impl<S: ProgressSink> Progress for HubProgress<'_, S> {
    fn init(&mut self, size: usize, filename: &str) {
        self.total = size as u64;
        self.file = filename.to_string();
        self.emit();
    }

    fn update(&mut self, size: usize) {
        if self.cancel.is_cancelled() {
            // hf-hub's progress callback cannot return an error, so the transfer is unwound from
            // here (without the panic hook: this is not a crash) and caught in `download_from`.
            std::panic::resume_unwind(Box::new(Cancelled));
        }
        self.done += size as u64;
        if self.done - self.last_emit >= (self.total / 100).max(1 << 20) {
            self.emit();
        }
    }

    fn finish(&mut self) {
        self.done = self.total;
        self.emit();
    }
}

impl<S: ProgressSink> HubProgress<'_, S> {
    fn emit(&mut self) {
        self.last_emit = self.done;
        self.sink.emit(Event::Progress {
            stage: format!("download {}", self.file),
            done: self.done,
            total: self.total,
            unit: "bytes".into(),
        });
    }
}

/// The marker a cancelled transfer unwinds with.
struct Cancelled;

/// Returns a local folder with the model's files, downloading what the cache lacks from
/// [`endpoint()`]. It cannot be stopped; see [`download_cancellable`].
pub fn download(repo_id: &str, cache_dir: &Path, sink: &mut impl ProgressSink) -> Result<PathBuf> {
    download_cancellable(repo_id, cache_dir, &CancelToken::new(), sink)
}

/// [`download`] that stops when `cancel` is set: between files, and within a file between two
/// chunks read from the network. A stopped download leaves no partial file in the cache (files
/// completed before the stop stay, and are not downloaded again next time).
pub fn download_cancellable(
    repo_id: &str,
    cache_dir: &Path,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<PathBuf> {
    download_from(&endpoint(), repo_id, cache_dir, cancel, sink)
}

/// [`download_cancellable`] from an explicit hub address.
pub fn download_from(
    endpoint: &str,
    repo_id: &str,
    cache_dir: &Path,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<PathBuf> {
    if !is_hub_id(repo_id) {
        return Err(Error::Hub(format!("`{repo_id}` is not a model name on the hub (expected something like `gpt2` or `owner/name`)")));
    }
    if let Some(dir) = cached(repo_id, cache_dir) {
        sink.log(format!("using {repo_id} from the local cache"));
        return Ok(dir);
    }
    probe(endpoint, repo_id)?;
    let api = ApiBuilder::new()
        .with_endpoint(endpoint.trim_end_matches('/').to_string())
        .with_cache_dir(cache_dir.to_path_buf())
        .with_progress(false)
        .with_retries(1)
        .with_token(token())
        .build()
        .map_err(|e| Error::Hub(format!("could not set up downloads ({e})")))?;
    let repo = api.model(repo_id.to_string());
    let mut dir = None;
    let mut files: Vec<String> = REQUIRED
        .iter()
        .chain(TOKENIZER)
        .chain(OPTIONAL)
        .map(|s| s.to_string())
        .collect();
    let mut i = 0;
    while i < files.len() {
        let file = files[i].clone();
        let file = file.as_str();
        i += 1;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let progress = HubProgress {
            sink: &mut *sink,
            cancel,
            file: file.into(),
            total: 0,
            done: 0,
            last_emit: 0,
        };
        let fetched = std::panic::catch_unwind(AssertUnwindSafe(|| {
            repo.download_with_progress(file, progress)
        }));
        let fetched = match fetched {
            Ok(r) => r,
            Err(payload) if payload.is::<Cancelled>() => {
                remove_partial_files(cache_dir, repo_id);
                return Err(Error::Cancelled);
            }
            Err(payload) => std::panic::resume_unwind(payload),
        };
        match fetched {
            Ok(path) => {
                if file == INDEX {
                    // A sharded checkpoint: its shards come next.
                    let shards = shards_of(&path).ok_or_else(|| {
                        Error::Hub(format!(
                            "`{repo_id}` on the hub has a {INDEX} that lists no usable weight files (each must be a plain .safetensors file name)"
                        ))
                    })?;
                    for (k, s) in shards.into_iter().enumerate() {
                        files.insert(i + k, s);
                    }
                }
                dir = path.parent().map(Path::to_path_buf)
            }
            Err(e) => {
                let text = e.to_string();
                let missing = text.contains("404");
                if (TOKENIZER.contains(&file) || OPTIONAL.contains(&file)) && missing {
                    continue; // a model has either tokenizer.json or vocab.json + merges.txt
                }
                if file == "model.safetensors" && missing {
                    files.insert(i, INDEX.to_string()); // perhaps sharded
                    continue;
                }
                let gated = text.contains("401") || text.contains("403");
                return Err(Error::Hub(if gated {
                    // Without a token the hub answers 401 for a private or mistyped name too.
                    let how = if token().is_some() {
                        "the access token you gave (HF_TOKEN, or the one `huggingface-cli login` saved) was refused: check that it is valid and that your account has accepted the model's licence on huggingface.co"
                    } else {
                        "accept the model's licence on its page on huggingface.co, create an access token (Settings → Access Tokens), and set it in the HF_TOKEN environment variable before starting Tunesmith"
                    };
                    format!("`{repo_id}` needs access: it is a gated (or private) model, or the name is mistyped. Check the name; for a gated model, {how}.")
                } else if missing && file == "config.json" {
                    format!("The hub has no model called `{repo_id}` (or it needs a login). Check the name, e.g. gpt2, HuggingFaceTB/SmolLM2-135M-Instruct or Qwen/Qwen2.5-0.5B-Instruct.")
                } else if missing && file == INDEX {
                    format!("`{repo_id}` on the hub has no model.safetensors (nor shards); Tunesmith needs models stored as safetensors. Pick another model.")
                } else if missing {
                    format!("`{repo_id}` on the hub has no {file}; Tunesmith needs models stored as safetensors. Pick another model.")
                } else {
                    format!(
                        "Could not download {file} of `{repo_id}` ({text}). {}",
                        offline_advice()
                    )
                }));
            }
        }
    }
    cached(repo_id, cache_dir).or(dir).ok_or_else(|| {
        Error::Hub(format!("`{repo_id}` on the hub has no tokenizer files (tokenizer.json, or vocab.json and merges.txt)"))
    })
}

/// Removes hf-hub's resumable `*.part` files of `repo_id`: after a stop the cache holds only
/// complete files.
fn remove_partial_files(cache_dir: &Path, repo_id: &str) {
    let blobs = cache_dir
        .join(format!("models--{}", repo_id.replace('/', "--")))
        .join("blobs");
    for entry in std::fs::read_dir(blobs).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|x| x == "part") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        assert!(is_hub_id("gpt2"));
        assert!(is_hub_id("openai-community/gpt2-large"));
        assert!(!is_hub_id("./gpt2"));
        assert!(!is_hub_id("/abs/path"));
        assert!(!is_hub_id("a/b/c"));
        assert!(!is_hub_id("has space"));
    }
}
