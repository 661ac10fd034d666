//! Token datasets: units (documents, examples) each ending with the end-of-text token, tokenised
//! once into little-endian u32 files (`train.tokens`, `val.tokens`, and one mask byte per token in
//! `train.mask`/`val.mask` when there are examples), split by unit.

use std::path::Path;

use tokenizers::Tokenizer;

use super::tokenizer;
use super::unit::Unit;
use crate::chat::{ChatTemplate, Message};
use crate::fsutil;
use crate::rng::Rng;
use crate::{Error, Result};

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
    /// Whether each unit went to validation (all `false` for a tail split).
    pub is_val: Vec<bool>,
}

/// How units are divided between training and validation.
#[derive(Debug, Clone, Copy)]
pub enum Split<'a> {
    /// Whole units, in seeded random order, until validation holds `val_frac` of the tokens (at
    /// least one unit stays for training); a lone unit gives the last `val_frac` of its tokens.
    Seeded { val_frac: f64, seed: u64 },
    /// A division made earlier (a prepared dataset's), repeated exactly: `is_val` per unit, and for
    /// a tail split the share of the training tokens' end that goes to validation.
    Given {
        is_val: &'a [bool],
        tail: Option<f64>,
    },
}

/// A conversation in a model's chat template: the ids of everything, and a mask that learns only
/// the last (assistant) turn, from where the template's generation prompt ends, end-of-turn
/// tokens included. The prompt is what `apply_chat_template(messages[:-1],
/// add_generation_prompt=True)` gives, as the model sees it when chatting.
fn templated_pair(
    template: &ChatTemplate,
    tok: &Tokenizer,
    messages: &[Message],
    source: &str,
) -> Result<(Vec<u32>, Vec<u8>)> {
    let none = serde_json::Map::new();
    let fail = |e: Error| Error::Data(format!("{source}: {e}"));
    let prompt = template
        .render(&messages[..messages.len() - 1], true, &none)
        .map_err(fail)?;
    let full = template.render(messages, false, &none).map_err(fail)?;
    let p = tokenizer::encode(tok, &prompt)?;
    let ids = match full.strip_prefix(prompt.as_str()) {
        // The reply tokenised on its own after the prompt, so the prompt's ids are exactly the
        // ones chat gives the model.
        Some(reply) => [p.clone(), tokenizer::encode(tok, reply)?].concat(),
        None => {
            // A template that renders earlier turns differently once a reply follows (some drop
            // reasoning): the whole text, the prompt's length masked.
            tokenizer::encode(tok, &full)?
        }
    };
    let n = p.len().min(ids.len());
    let mask = [vec![0u8; n], vec![1u8; ids.len() - n]].concat();
    Ok((ids, mask))
}

/// A unit's ids and learning mask (1 where the model learns the token), without the end-of-text
/// token that ends it in a dataset: text is learned whole; a pair learns its completion, in the
/// model's chat template when it has one, else after the prompt and a space.
pub fn encode_unit(
    u: &Unit,
    tok: &Tokenizer,
    template: Option<&ChatTemplate>,
) -> Result<(Vec<u32>, Vec<u8>)> {
    Ok(match u {
        Unit::Text { text, .. } => {
            let ids = tokenizer::encode_long(tok, text)?;
            let n = ids.len();
            (ids, vec![1u8; n])
        }
        Unit::Pair {
            prompt,
            completion,
            messages,
            ..
        } if template.is_some() => {
            let plain;
            let messages = match messages {
                Some(m) => m,
                None => {
                    plain = [
                        Message::new("user", prompt),
                        Message::new("assistant", completion),
                    ];
                    &plain[..]
                }
            };
            templated_pair(template.expect("guarded"), tok, messages, u.source())?
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
    })
}

/// Tokenises prepared units (text, or prompt + completion pairs whose prompt is masked), splits
/// them by unit as `split` says and writes the token files into `dir`. Every unit ends with the
/// end-of-text token, which is also where batches find the boundaries between examples.
pub fn build_units(
    units: &[Unit],
    tok: &Tokenizer,
    template: Option<&ChatTemplate>,
    split: Split,
    dir: &Path,
    cancel: &crate::CancelToken,
    sink: &mut impl crate::ProgressSink,
) -> Result<(Built, String)> {
    let eot = tokenizer::eot_id(tok);
    let mut encoded: Vec<(Vec<u32>, Vec<u8>)> = Vec::with_capacity(units.len());
    let has_pairs = units.iter().any(|u| matches!(u, Unit::Pair { .. }));
    for (i, u) in units.iter().enumerate() {
        // Tokenising a large corpus takes minutes, and one unit can be a whole book: Stop is
        // honoured before each unit, before anything is written.
        if cancel.is_cancelled() {
            return Err(crate::Error::Cancelled);
        }
        if i % 256 == 0 {
            sink.emit(crate::Event::Progress {
                stage: "tokenize".into(),
                done: i as u64,
                total: units.len() as u64,
                unit: "documents".into(),
            });
        }
        let (mut ids, mut mask) = encode_unit(u, tok, template)?;
        if let Some(e) = eot {
            ids.push(e);
            mask.push(1);
        }
        encoded.push((ids, mask));
    }
    let total: usize = encoded.iter().map(|(v, _)| v.len()).sum();
    let (is_val, tail) = match split {
        Split::Given { is_val, tail } => {
            if is_val.len() != units.len() {
                return Err(Error::Data(format!(
                    "the dataset lists {} documents but its split covers {}; prepare the dataset again",
                    units.len(),
                    is_val.len()
                )));
            }
            (
                is_val.to_vec(),
                tail.map(|f| (total as f64 * f).round() as usize),
            )
        }
        Split::Seeded { val_frac, seed } => seeded_split(&encoded, val_frac, seed),
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
    if let Some(want_val) = tail {
        let want_val = want_val.min(data.train.len());
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
        is_val,
        data,
    };
    let how = if tail.is_some() { "tail" } else { "documents" };
    Ok((built, how.to_string()))
}

/// Units to validation, whole, in seeded random order until it holds `val_frac` of the tokens;
/// with one unit (or no validation wanted) the tail of the text instead: `(is_val, tail tokens)`.
fn seeded_split(
    encoded: &[(Vec<u32>, Vec<u8>)],
    val_frac: f64,
    seed: u64,
) -> (Vec<bool>, Option<usize>) {
    let total: usize = encoded.iter().map(|(v, _)| v.len()).sum();
    let want_val = (total as f64 * val_frac).round() as usize;
    let mut is_val = vec![false; encoded.len()];
    if encoded.len() < 2 || want_val == 0 {
        return (is_val, Some(want_val));
    }
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    Rng::derive(seed, "split", &[]).shuffle(&mut order);
    let mut have = 0;
    for &i in order.iter().take(encoded.len() - 1) {
        if have >= want_val {
            break;
        }
        is_val[i] = true;
        have += encoded[i].0.len();
    }
    (is_val, None)
}

/// Loads a dataset written by [`build_units`] (and `prepare::write`), checking that each mask
/// belongs to its token file.
pub fn load(dir: &Path) -> Result<TokenData> {
    let mask = |name: &str, tokens: &[u32]| -> Result<Option<Vec<u8>>> {
        let p = dir.join(name);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&p, e)),
        };
        if bytes.len() != tokens.len() {
            return Err(Error::file(
                &p,
                format!(
                    "has {} entries but its token file has {} tokens, so they do not belong together; prepare the dataset again (or delete the run's dataset folder and start the run afresh)",
                    bytes.len(),
                    tokens.len()
                ),
            ));
        }
        Ok(Some(bytes))
    };
    let train = read_tokens(&dir.join("train.tokens"))?;
    let val = read_tokens(&dir.join("val.tokens"))?;
    let train_mask = mask("train.mask", &train)?;
    let val_mask = mask("val.mask", &val)?;
    Ok(TokenData {
        train,
        val,
        train_mask,
        val_mask,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CancelToken, NullSink};

    fn text(i: usize, t: &str) -> Unit {
        Unit::Text {
            source: format!("d{i}.txt"),
            text: t.into(),
        }
    }

    fn units() -> (Vec<Unit>, Tokenizer) {
        let texts = [
            "alpha beta gamma ".repeat(30),
            "delta epsilon ".repeat(30),
            "zeta eta ".repeat(30),
            "theta iota ".repeat(30),
            "kappa lambda mu ".repeat(20),
        ];
        let tok = tokenizer::train_bpe(texts.iter(), 300).unwrap();
        let mut units: Vec<Unit> = texts.iter().enumerate().map(|(i, t)| text(i, t)).collect();
        units.push(Unit::Pair {
            source: "qa.csv (row 2)".into(),
            prompt: "alpha beta?".into(),
            completion: "gamma delta.".into(),
            messages: None,
        });
        (units, tok)
    }

    fn build(units: &[Unit], tok: &Tokenizer, split: Split, dir: &Path) -> (Built, String) {
        build_units(
            units,
            tok,
            None,
            split,
            dir,
            &CancelToken::new(),
            &mut NullSink,
        )
        .unwrap()
    }

    #[test]
    fn seeded_split_holds_out_whole_units_and_is_written() {
        let (units, tok) = units();
        let dir = tempfile::tempdir().unwrap();
        let seeded = Split::Seeded {
            val_frac: 0.25,
            seed: 7,
        };
        let (b, how) = build(&units, &tok, seeded, dir.path());
        assert_eq!(how, "documents");
        let held: usize = (0..units.len())
            .filter(|&i| b.is_val[i])
            .map(|i| b.unit_tokens[i])
            .sum();
        assert_eq!(held, b.val_tokens, "validation is made of whole units");
        assert_eq!(
            b.train_tokens + b.val_tokens,
            b.unit_tokens.iter().sum::<usize>()
        );
        assert!(b.is_val.iter().any(|v| !v) && b.is_val.iter().any(|v| *v));
        // Validation stops once it has its share: without its last unit it had less than 25 %.
        let total: usize = b.unit_tokens.iter().sum();
        assert!(
            b.val_tokens >= (0.25 * total as f64).round() as usize,
            "{}",
            b.val_tokens
        );
        // Token files, masks (there is a pair) and the same split again from the same seed.
        let again = load(dir.path()).unwrap();
        assert_eq!(
            (again.train, again.val),
            (b.data.train.clone(), b.data.val.clone())
        );
        assert_eq!(again.train_mask.unwrap().len(), b.train_tokens);
        let other = tempfile::tempdir().unwrap();
        assert_eq!(build(&units, &tok, seeded, other.path()).0.is_val, b.is_val);
        let differs = (9..20).any(|seed| {
            let s = Split::Seeded {
                val_frac: 0.25,
                seed,
            };
            build(&units, &tok, s, other.path()).0.is_val != b.is_val
        });
        assert!(differs, "the seed chooses the held-out units");
    }

    #[test]
    fn a_given_split_is_repeated_exactly_and_a_lone_unit_gives_its_tail() {
        let (units, tok) = units();
        let dir = tempfile::tempdir().unwrap();
        let is_val = [true, false, false, true, false, false];
        let given = Split::Given {
            is_val: &is_val,
            tail: None,
        };
        let (b, how) = build(&units, &tok, given, dir.path());
        assert_eq!(
            (how.as_str(), b.is_val.as_slice()),
            ("documents", &is_val[..])
        );
        assert_eq!(b.val_tokens, b.unit_tokens[0] + b.unit_tokens[3]);
        let short = Split::Given {
            is_val: &is_val[..2],
            tail: None,
        };
        assert!(build_units(
            &units,
            &tok,
            None,
            short,
            dir.path(),
            &CancelToken::new(),
            &mut NullSink
        )
        .is_err());
        // Stopped while tokenising: cancelled, and no token file is written.
        let stopped = tempfile::tempdir().unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        let seeded = Split::Seeded {
            val_frac: 0.2,
            seed: 1,
        };
        assert!(matches!(
            build_units(
                &units,
                &tok,
                None,
                seeded,
                stopped.path(),
                &cancel,
                &mut NullSink
            ),
            Err(Error::Cancelled)
        ));
        assert!(!stopped.path().join("train.tokens").exists());

        let lone = &units[..1];
        let seeded = Split::Seeded {
            val_frac: 0.1,
            seed: 1,
        };
        let (t, how) = build(lone, &tok, seeded, dir.path());
        assert_eq!(how, "tail");
        let want = (t.unit_tokens[0] as f64 * 0.1).round() as usize;
        assert_eq!(t.val_tokens, want);
        let given_tail = Split::Given {
            is_val: &[false],
            tail: Some(0.1),
        };
        let (g, _) = build(lone, &tok, given_tail, dir.path());
        assert_eq!((g.data.train, g.data.val), (t.data.train, t.data.val));
    }

    #[test]
    fn a_mask_that_does_not_match_its_tokens_is_refused_by_name() {
        let (units, tok) = units();
        let dir = tempfile::tempdir().unwrap();
        let seeded = Split::Seeded {
            val_frac: 0.2,
            seed: 3,
        };
        build(&units, &tok, seeded, dir.path());
        let mask = dir.path().join("train.mask");
        let mut bytes = std::fs::read(&mask).unwrap();
        bytes.pop();
        std::fs::write(&mask, bytes).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("train.mask") && e.contains("prepare the dataset again"),
            "{e}"
        );
    }
}
