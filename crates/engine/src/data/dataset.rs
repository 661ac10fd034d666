//! Token datasets: documents joined with the end-of-text token, tokenised once into little-endian
//! u32 files (`train.tokens`, `val.tokens`) beside a `manifest.json`, split by document.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::text::Document;
use super::tokenizer;
use crate::fsutil;
use crate::rng::Rng;
use crate::{Error, Result};

/// What `manifest.json` records about a dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub sources: Vec<SourceStats>,
    pub val_frac: f64,
    pub seed: u64,
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// How the split was made: `documents` or `tail` (one document: its last part).
    pub split: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceStats {
    pub path: PathBuf,
    pub chars: usize,
    pub tokens: usize,
    pub split: String,
}

/// Train and validation token streams. A mask, when present, has one byte per token: 0 where
/// the token is part of a prompt the model reads but is not taught to write (supervised pairs).
#[derive(Debug, Clone, Default)]
pub struct TokenData {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub train_mask: Option<Vec<u8>>,
    pub val_mask: Option<Vec<u8>>,
}

/// What [`build_units`] wrote.
#[derive(Debug, Clone)]
pub struct Built {
    pub data: TokenData,
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// Tokens of each unit, in order.
    pub unit_tokens: Vec<usize>,
}

/// Tokenises prepared units (text, or prompt + completion pairs whose prompt is masked), splits
/// them by unit (seeded; the tail of a lone unit) and writes the token files into `dir`.
pub fn build_units(
    units: &[super::prepare::Unit],
    tok: &Tokenizer,
    val_frac: f64,
    seed: u64,
    dir: &Path,
    sink: &mut impl crate::ProgressSink,
) -> Result<(Built, String)> {
    use super::prepare::Unit;
    let eot = tokenizer::eot_id(tok);
    let mut encoded: Vec<(Vec<u32>, Vec<u8>)> = Vec::with_capacity(units.len());
    let has_pairs = units.iter().any(|u| matches!(u, Unit::Pair { .. }));
    for (i, u) in units.iter().enumerate() {
        if i % 256 == 0 {
            sink.emit(crate::Event::Progress {
                stage: "tokenize".into(),
                done: i as u64,
                total: units.len() as u64,
                unit: "documents".into(),
            });
        }
        let (mut ids, mut mask) = match u {
            Unit::Text { text, .. } => {
                let ids = tokenizer::encode_long(tok, text)?;
                let n = ids.len();
                (ids, vec![1u8; n])
            }
            Unit::Pair {
                prompt, completion, ..
            } => {
                let p = tokenizer::encode(tok, prompt)?;
                // The completion follows the prompt after a space, as the chat cue ends "Assistant:".
                let c = tokenizer::encode(tok, &format!(" {completion}"))?;
                let mask = [vec![0u8; p.len()], vec![1u8; c.len()]].concat();
                ([p, c].concat(), mask)
            }
        };
        if let Some(e) = eot {
            ids.push(e);
            mask.push(1);
        }
        encoded.push((ids, mask));
    }
    let total: usize = encoded.iter().map(|(v, _)| v.len()).sum();
    let want_val = (total as f64 * val_frac).round() as usize;
    let mut is_val = vec![false; units.len()];
    let split = if units.len() >= 2 && want_val > 0 {
        let mut order: Vec<usize> = (0..units.len()).collect();
        Rng::derive(seed, "split", &[]).shuffle(&mut order);
        let mut have = 0;
        for &i in order.iter().take(units.len() - 1) {
            if have >= want_val {
                break;
            }
            is_val[i] = true;
            have += encoded[i].0.len();
        }
        "documents"
    } else {
        "tail"
    };
    let mut data = TokenData::default();
    let (mut train_mask, mut val_mask) = (Vec::new(), Vec::new());
    for ((ids, mask), &v) in encoded.iter().zip(&is_val) {
        if v {
            data.val.extend_from_slice(ids);
            val_mask.extend_from_slice(mask);
        } else {
            data.train.extend_from_slice(ids);
            train_mask.extend_from_slice(mask);
        }
    }
    if split == "tail" {
        data.val = data.train.split_off(data.train.len() - want_val);
        val_mask = train_mask.split_off(train_mask.len() - want_val);
    }
    write_tokens(&dir.join("train.tokens"), &data.train)?;
    write_tokens(&dir.join("val.tokens"), &data.val)?;
    if has_pairs {
        fsutil::write_atomic(&dir.join("train.mask"), &train_mask)?;
        fsutil::write_atomic(&dir.join("val.mask"), &val_mask)?;
        data.train_mask = Some(train_mask);
        data.val_mask = Some(val_mask);
    }
    let built = Built {
        train_tokens: data.train.len(),
        val_tokens: data.val.len(),
        unit_tokens: encoded.iter().map(|(v, _)| v.len()).collect(),
        data,
    };
    Ok((built, split.to_string()))
}

/// Tokenises `docs`, splits them and writes the dataset into `dir` (files written atomically).
pub fn build(
    docs: &[Document],
    tok: &Tokenizer,
    val_frac: f64,
    seed: u64,
    dir: &Path,
) -> Result<(TokenData, Manifest)> {
    if !(0.0..1.0).contains(&val_frac) {
        return Err(Error::config(
            "val_frac",
            format!("is {val_frac}; use a value from 0 to 0.5"),
        ));
    }
    let eot = tokenizer::eot_id(tok);
    let mut encoded = Vec::with_capacity(docs.len());
    for d in docs {
        let mut ids = tokenizer::encode(tok, &d.text)?;
        ids.extend(eot);
        encoded.push(ids);
    }
    let total: usize = encoded.iter().map(Vec::len).sum();
    let want_val = (total as f64 * val_frac).round() as usize;
    let mut is_val = vec![false; docs.len()];
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let split;
    if docs.len() >= 2 && want_val > 0 {
        // Whole documents go to validation, in seeded random order, until it has its share;
        // at least one document always stays for training.
        let mut order: Vec<usize> = (0..docs.len()).collect();
        Rng::derive(seed, "split", &[]).shuffle(&mut order);
        let mut have = 0;
        for &i in order.iter().take(docs.len() - 1) {
            if have >= want_val {
                break;
            }
            is_val[i] = true;
            have += encoded[i].len();
        }
        for (ids, &v) in encoded.iter().zip(&is_val) {
            if v { &mut val } else { &mut train }.extend_from_slice(ids);
        }
        split = "documents";
    } else {
        // One document (or no validation): its last `val_frac` becomes the validation text.
        for ids in &encoded {
            train.extend_from_slice(ids);
        }
        val = train.split_off(total - want_val);
        split = "tail";
    }
    let sources = docs
        .iter()
        .zip(&encoded)
        .zip(&is_val)
        .map(|((d, ids), &v)| SourceStats {
            path: d.source.clone(),
            chars: d.text.chars().count(),
            tokens: ids.len(),
            split: if v { "val" } else { "train" }.into(),
        })
        .collect();
    let manifest = Manifest {
        sources,
        val_frac,
        seed,
        train_tokens: train.len(),
        val_tokens: val.len(),
        split: split.into(),
    };
    write_tokens(&dir.join("train.tokens"), &train)?;
    write_tokens(&dir.join("val.tokens"), &val)?;
    fsutil::write_json(&dir.join("manifest.json"), &manifest)?;
    Ok((
        TokenData {
            train,
            val,
            ..Default::default()
        },
        manifest,
    ))
}

/// Loads a dataset written by [`build`].
pub fn load(dir: &Path) -> Result<TokenData> {
    let mask = |name: &str| -> Result<Option<Vec<u8>>> {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    };
    Ok(TokenData {
        train: read_tokens(&dir.join("train.tokens"))?,
        val: read_tokens(&dir.join("val.tokens"))?,
        train_mask: mask("train.mask")?,
        val_mask: mask("val.mask")?,
    })
}

pub fn write_tokens(path: &Path, ids: &[u32]) -> Result<()> {
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    fsutil::write_atomic(path, &bytes)
}

pub fn read_tokens(path: &Path) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() % 4 != 0 {
        return Err(Error::file(
            path,
            "is not a token file (its size is not a multiple of 4 bytes)",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// One batch: inputs and next-token targets, each `batch × block` ids, row-major.
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub batch: usize,
    pub block: usize,
}

/// `batch` random windows of `block + 1` tokens. The draw depends only on `(seed, step, micro)`,
/// so a resumed run sees the same batches. Targets whose `mask` byte is 0 (prompt tokens) become
/// [`IGNORE_INDEX`](crate::model::ops::IGNORE_INDEX): read, not learned.
pub fn sample_batch(
    tokens: &[u32],
    mask: Option<&[u8]>,
    batch: usize,
    block: usize,
    seed: u64,
    step: u64,
    micro: u64,
) -> Batch {
    assert!(
        tokens.len() > block,
        "caller checks the dataset holds one block"
    );
    let mut rng = Rng::derive(seed, "batch", &[step, micro]);
    let mut inputs = Vec::with_capacity(batch * block);
    let mut targets = Vec::with_capacity(batch * block);
    for _ in 0..batch {
        let start = rng.below((tokens.len() - block) as u64) as usize;
        inputs.extend_from_slice(&tokens[start..start + block]);
        match mask {
            Some(m) => targets.extend((start + 1..start + block + 1).map(|i| {
                if m[i] == 0 {
                    crate::model::ops::IGNORE_INDEX
                } else {
                    tokens[i]
                }
            })),
            None => targets.extend_from_slice(&tokens[start + 1..start + block + 1]),
        }
    }
    Batch {
        inputs,
        targets,
        batch,
        block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, text: &str) -> Document {
        Document {
            source: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn split_is_by_document_seeded_and_written() {
        let texts = [
            "alpha beta gamma ".repeat(30),
            "delta epsilon ".repeat(30),
            "zeta eta ".repeat(30),
            "theta iota ".repeat(30),
        ];
        let tok = tokenizer::train_bpe(texts.iter(), 300).unwrap();
        let docs: Vec<Document> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| doc(&format!("d{i}.txt"), t))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let (data, m) = build(&docs, &tok, 0.25, 7, dir.path()).unwrap();
        assert_eq!(m.split, "documents");
        assert!(!data.val.is_empty() && !data.train.is_empty());
        assert_eq!(
            m.train_tokens + m.val_tokens,
            m.sources.iter().map(|s| s.tokens).sum::<usize>()
        );
        let again = load(dir.path()).unwrap();
        assert_eq!(again.train, data.train);
        assert_eq!(again.val, data.val);
        let (data2, _) = build(&docs, &tok, 0.25, 7, tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(data2.val, data.val, "same seed, same split");
        // One document: the tail is held out.
        let (one, m1) = build(&docs[..1], &tok, 0.1, 7, dir.path()).unwrap();
        assert_eq!(m1.split, "tail");
        assert!(!one.val.is_empty());
        assert!(build(&docs, &tok, 1.0, 7, dir.path())
            .unwrap_err()
            .to_string()
            .contains("val_frac"));
    }

    #[test]
    fn batches_are_windows_with_shifted_targets() {
        let tokens: Vec<u32> = (0..100).collect();
        let b = sample_batch(&tokens, None, 3, 8, 1, 5, 0);
        for r in 0..3 {
            let x = &b.inputs[r * 8..r * 8 + 8];
            let y = &b.targets[r * 8..r * 8 + 8];
            assert!(x.windows(2).all(|w| w[1] == w[0] + 1));
            assert_eq!(y[0], x[0] + 1);
        }
        assert_eq!(sample_batch(&tokens, None, 3, 8, 1, 5, 0).inputs, b.inputs);
        assert_ne!(sample_batch(&tokens, None, 3, 8, 1, 6, 0).inputs, b.inputs);
    }
}
