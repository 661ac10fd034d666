//! The memorisation check: which stretches of a generated text the model copied word for word
//! from its training set. A reply's spans of at least `n` tokens (12 by default) that occur
//! verbatim in the training tokens are found exactly, with where they occur.
//!
//! The index is every training position sorted by a hash of the `n` tokens starting there. A
//! query hashes each `n`-gram of the reply, binary-searches the positions with that hash,
//! checks the tokens themselves (so a hash collision never counts), and extends a match as far
//! as the training text goes on agreeing. Building sorts one (hash, position) pair per training
//! token, once per dataset; the index is kept beside the token file (`copies-N.index`, 4 bytes a
//! token) and rebuilt when the tokens change. A query costs one binary search per reply token:
//! for a 500-token reply on 100 M training tokens, well under the 100 ms target (README).

use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};

use crate::data::dataset;
use crate::{fsutil, Error, Result};

/// The shortest copied span worth reporting, in tokens (about ten words of English).
pub const DEFAULT_MIN_TOKENS: usize = 12;
/// At most this many occurrences of one `n`-gram are extended (a phrase the training set
/// repeats thousands of times is copied whichever occurrence is taken).
const MAX_OCCURRENCES: usize = 64;
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;
const MAGIC: &[u8; 8] = b"TSCOPY1\0";

/// A training set ready to be searched.
pub struct CopyIndex {
    n: usize,
    tokens: Vec<u32>,
    /// Positions (with at least `n` tokens after them) ordered by the hash of their `n`-gram.
    order: Vec<u32>,
}

/// One copied span of a reply: its tokens `start..end` equal the training tokens from `source`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopiedSpan {
    pub start: usize,
    pub end: usize,
    pub source: u64,
}

fn ngram_hash(ids: &[u32]) -> u64 {
    ids.iter().fold(0u64, |h, &t| {
        h.wrapping_mul(BASE).wrapping_add(t as u64 + 1)
    })
}

impl CopyIndex {
    /// Indexes `tokens` for spans of at least `n` tokens.
    pub fn build(tokens: Vec<u32>, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::config("min_tokens", "is 0; it must be at least 1"));
        }
        if tokens.len() > u32::MAX as usize {
            return Err(Error::Data(
                "the training set has more than 4 billion tokens, beyond what the copy check indexes".into(),
            ));
        }
        let count = tokens.len().saturating_sub(n - 1);
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(count);
        if count > 0 {
            // Rolling: drop the oldest token's share, shift, add the newest.
            let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(BASE));
            let mut h = ngram_hash(&tokens[..n]);
            pairs.push((h, 0));
            for p in 1..count {
                h = h
                    .wrapping_sub((tokens[p - 1] as u64 + 1).wrapping_mul(top))
                    .wrapping_mul(BASE)
                    .wrapping_add(tokens[p + n - 1] as u64 + 1);
                pairs.push((h, p as u32));
            }
        }
        pairs.par_sort_unstable();
        let order = pairs.into_iter().map(|(_, p)| p).collect();
        Ok(CopyIndex { n, tokens, order })
    }

    /// The index of a dataset folder's training tokens: read from `copies-N.index` when it was
    /// built for these very tokens, else built and written there (atomically) for next time.
    pub fn for_dataset(dir: &Path, n: usize) -> Result<Self> {
        let tokens = dataset::read_tokens(&dir.join("train.tokens"))?;
        let path = index_path(dir, n);
        let stamp = stamp(&tokens);
        if let Ok(bytes) = std::fs::read(&path) {
            if let Some(order) = parse(&bytes, n, stamp, tokens.len()) {
                return Ok(CopyIndex { n, tokens, order });
            }
        }
        let index = CopyIndex::build(tokens, n)?;
        let mut bytes = Vec::with_capacity(32 + index.order.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(n as u64).to_le_bytes());
        bytes.extend_from_slice(&stamp.to_le_bytes());
        bytes.extend_from_slice(&(index.tokens.len() as u64).to_le_bytes());
        for p in &index.order {
            bytes.extend_from_slice(&p.to_le_bytes());
        }
        fsutil::write_atomic(&path, &bytes)?;
        Ok(index)
    }

    pub fn min_tokens(&self) -> usize {
        self.n
    }

    pub fn training_tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The reply's copied spans: each as long as the training text agrees, none inside another,
    /// in order.
    pub fn find(&self, ids: &[u32]) -> Vec<CopiedSpan> {
        let n = self.n;
        let mut spans: Vec<CopiedSpan> = Vec::new();
        if ids.len() < n {
            return spans;
        }
        for start in 0..=ids.len() - n {
            let gram = &ids[start..start + n];
            let h = ngram_hash(gram);
            let key = |p: u32| ngram_hash(&self.tokens[p as usize..p as usize + n]);
            let first = self.order.partition_point(|&p| key(p) < h);
            let mut best: Option<(usize, u32)> = None;
            for &p in self.order[first..]
                .iter()
                .take_while(|&&p| key(p) == h)
                .take(MAX_OCCURRENCES)
            {
                let at = p as usize;
                if self.tokens[at..at + n] != *gram {
                    continue; // a hash collision
                }
                let more = ids[start + n..]
                    .iter()
                    .zip(&self.tokens[at + n..])
                    .take_while(|(a, b)| a == b)
                    .count();
                if best.is_none_or(|(len, _)| n + more > len) {
                    best = Some((n + more, p));
                }
            }
            if let Some((len, p)) = best {
                let end = start + len;
                // A span ending where an earlier one ends is inside it.
                if spans.last().is_none_or(|s| end > s.end) {
                    spans.push(CopiedSpan {
                        start,
                        end,
                        source: p as u64,
                    });
                }
            }
        }
        spans
    }

    /// The share of `len` reply tokens that lie in some copied span (0–1).
    pub fn share(spans: &[CopiedSpan], len: usize) -> f64 {
        if len == 0 {
            return 0.0;
        }
        let mut covered = 0;
        let mut upto = 0;
        for s in spans {
            let from = s.start.max(upto);
            if s.end > from {
                covered += s.end - from;
            }
            upto = upto.max(s.end);
        }
        covered as f64 / len as f64
    }
}

/// A reply checked against the training set, ready to show: the text cut into pieces, each
/// copied or not, and the share of its tokens that were copied.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// 0–1.
    pub share: f64,
    /// The shortest span counted, in tokens.
    pub min_tokens: usize,
    pub tokens: usize,
    /// The whole text, in order.
    pub segments: Vec<Segment>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub text: String,
    pub copied: bool,
}

/// Checks `text` (tokenised with the training set's tokenizer).
pub fn check_text(
    index: &CopyIndex,
    tok: &tokenizers::Tokenizer,
    text: &str,
) -> Result<CopyReport> {
    // `encode`, not `encode_fast`: the offsets are what place the spans in the text.
    let enc = tok
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(format!("could not encode text ({e})")))?;
    let ids = enc.get_ids();
    let offsets = enc.get_offsets();
    let spans = index.find(ids);
    // Byte ranges of the copied spans, widened to whole characters and merged.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for s in &spans {
        let mut a = offsets[s.start].0.min(text.len());
        let mut b = offsets[s.end - 1].1.min(text.len()).max(a);
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        while !text.is_char_boundary(b) {
            b += 1;
        }
        match ranges.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => ranges.push((a, b)),
        }
    }
    let mut segments = Vec::new();
    let mut at = 0;
    for (a, b) in ranges {
        if a > at {
            segments.push(Segment {
                text: text[at..a].to_string(),
                copied: false,
            });
        }
        segments.push(Segment {
            text: text[a..b].to_string(),
            copied: true,
        });
        at = b;
    }
    if at < text.len() {
        segments.push(Segment {
            text: text[at..].to_string(),
            copied: false,
        });
    }
    Ok(CopyReport {
        share: CopyIndex::share(&spans, ids.len()),
        min_tokens: index.n,
        tokens: ids.len(),
        segments,
    })
}

/// A run's training set ready to check replies against: its copy index and its tokenizer.
pub struct RunCopies {
    pub index: CopyIndex,
    pub tokenizer: tokenizers::Tokenizer,
}

impl RunCopies {
    /// The run's training tokens indexed (built once, then read from beside the tokens), with
    /// the tokenizer of its model. `None` for a run whose training tokens are gone.
    pub fn for_run(run_dir: &Path) -> Result<Option<Self>> {
        let run = crate::runs::RunDir::new(run_dir);
        let dataset = run.dataset();
        if !dataset.join("train.tokens").is_file() {
            return Ok(None);
        }
        let Some((_, checkpoint)) = run.model_checkpoint() else {
            return Ok(None);
        };
        let tokenizer = crate::data::tokenizer::load(&checkpoint)?;
        let index = CopyIndex::for_dataset(&dataset, DEFAULT_MIN_TOKENS)?;
        Ok(Some(RunCopies { index, tokenizer }))
    }

    pub fn check(&self, text: &str) -> Result<CopyReport> {
        check_text(&self.index, &self.tokenizer, text)
    }
}

/// Where a dataset's index for spans of `n` tokens is kept.
pub fn index_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("copies-{n}.index"))
}

/// A fingerprint of the token file the index was built from.
fn stamp(tokens: &[u32]) -> u64 {
    tokens.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
        (h ^ t as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn parse(bytes: &[u8], n: usize, stamp: u64, len: usize) -> Option<Vec<u32>> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?))
    };
    if bytes.get(..8)? != MAGIC
        || word(8)? != n as u64
        || word(16)? != stamp
        || word(24)? != len as u64
    {
        return None;
    }
    let body = &bytes[32..];
    let count = len.saturating_sub(n - 1);
    if body.len() != count * 4 {
        return None;
    }
    let order: Vec<u32> = body
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    order.iter().all(|&p| (p as usize) < count).then_some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans are found exactly (positions and sources), a span is as long as the training text
    /// agrees, and novel text has none.
    #[test]
    fn finds_copied_spans_exactly() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let train: Vec<u32> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 500) as u32
            })
            .collect();
        let index = CopyIndex::build(train.clone(), 4).unwrap();
        // 3 novel tokens, 10 copied from position 100, 2 novel, 5 copied from position 700.
        let mut reply = vec![9000, 9001, 9002];
        reply.extend(&train[100..110]);
        reply.extend([9003, 9004]);
        reply.extend(&train[700..705]);
        let spans = index.find(&reply);
        assert_eq!(
            spans,
            vec![
                CopiedSpan {
                    start: 3,
                    end: 13,
                    source: 100
                },
                CopiedSpan {
                    start: 15,
                    end: 20,
                    source: 700
                },
            ]
        );
        assert!((CopyIndex::share(&spans, reply.len()) - 15.0 / 20.0).abs() < 1e-12);
        // Three copied tokens are below the bar of four.
        assert!(index
            .find(&[9000, train[5], train[6], train[7], 9001])
            .is_empty());
        assert!(index.find(&(5000..5100).collect::<Vec<_>>()).is_empty());
    }

    #[test]
    fn the_index_is_kept_and_rebuilt_when_the_tokens_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 88172645463325252u64;
        let train: Vec<u32> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000) as u32
            })
            .collect();
        dataset::write_tokens(&dir.path().join("train.tokens"), &train).unwrap();
        let a = CopyIndex::for_dataset(dir.path(), 5).unwrap();
        assert!(index_path(dir.path(), 5).is_file());
        let b = CopyIndex::for_dataset(dir.path(), 5).unwrap();
        assert_eq!(a.order, b.order);
        let changed: Vec<u32> = train.iter().map(|t| t + 1).collect();
        dataset::write_tokens(&dir.path().join("train.tokens"), &changed).unwrap();
        let c = CopyIndex::for_dataset(dir.path(), 5).unwrap();
        assert_eq!(c.find(&changed[40..60]).len(), 1);
        assert!(c.find(&train[40..60]).is_empty());
    }

    /// With a real tokenizer: the copied sentence is shown as copied, the rest not.
    #[test]
    fn a_reply_is_cut_into_copied_and_new_text() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let tok = crate::data::tokenizer::load(&fixtures.join("gpt2-tiny")).unwrap();
        let corpus = std::fs::read_to_string(fixtures.join("corpus.txt")).unwrap();
        let ids = crate::data::tokenizer::encode(&tok, &corpus).unwrap();
        let index = CopyIndex::build(ids, DEFAULT_MIN_TOKENS).unwrap();
        let quote = &corpus[200..400];
        let reply = format!("Zebras quietly juggle marmalade. {quote} Xylophones hum.");
        let r = check_text(&index, &tok, &reply).unwrap();
        let joined: String = r.segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, reply);
        let copied: Vec<&Segment> = r.segments.iter().filter(|s| s.copied).collect();
        assert_eq!(copied.len(), 1, "{:?}", r.segments);
        assert!(corpus.contains(copied[0].text.trim()), "{:?}", copied[0]);
        assert!(
            copied[0].text.trim().len() > quote.len() / 2,
            "{:?}",
            r.segments
        );
        assert!(r.share > 0.5 && r.share < 1.0, "{}", r.share);
        let none = check_text(
            &index,
            &tok,
            "Zebras quietly juggle marmalade while xylophones hum softly in the purple night air.",
        )
        .unwrap();
        assert_eq!(none.share, 0.0);
        assert!(none.segments.iter().all(|s| !s.copied));
    }
}
