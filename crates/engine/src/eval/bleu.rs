//! BLEU as sacrebleu 2.x computes it by default: mteval-v13a tokenisation, n-grams up to 4
//! clipped by the reference's counts, statistics summed over the corpus, the "exp" smoothing of
//! mteval for orders without a match, and the brevity penalty. `corpus_bleu` is sacrebleu's
//! `corpus_bleu(hyps, [refs])`; `sentence_bleu` its `sentence_bleu(hyp, [ref])` (effective order).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::pytext;

/// The sacrebleu release whose numbers these are (the signature names it).
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// The signature sacrebleu prints beside a default corpus BLEU with one reference.
pub fn signature() -> String {
    format!("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}")
}

const MAX_ORDER: usize = 4;

/// A corpus score with what it was made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// 0–100.
    pub score: f64,
    /// n-gram precisions (0–100), as smoothed.
    pub precisions: [f64; MAX_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    pub sys_len: usize,
    pub ref_len: usize,
}

/// Counts for one segment or a corpus: lengths, then matches and totals per order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    sys_len: usize,
    ref_len: usize,
    correct: [usize; MAX_ORDER],
    total: [usize; MAX_ORDER],
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

/// The mteval-v13a tokenisation of one line (sacrebleu's `Tokenizer13a`).
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let chars: Vec<char> = format!(" {line} ").chars().collect();
    // Symbols stand alone.
    let mut spaced = Vec::with_capacity(chars.len() * 2);
    for c in chars {
        if is_symbol(c) {
            spaced.extend([' ', c, ' ']);
        } else {
            spaced.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let stop = |c: char| c == '.' || c == ',';
    // Periods and commas split off except between digits, then hyphens after digits; each pass
    // is one left-to-right `re.sub` (matches do not overlap).
    let spaced = sub_pairs(
        &spaced,
        |a, b| !digit(a) && stop(b),
        |a, b| vec![a, ' ', b, ' '],
    );
    let spaced = sub_pairs(
        &spaced,
        |a, b| stop(a) && !digit(b),
        |a, b| vec![' ', a, ' ', b],
    );
    let spaced = sub_pairs(
        &spaced,
        |a, b| digit(a) && b == '-',
        |a, b| vec![a, ' ', b, ' '],
    );
    let text: String = spaced.into_iter().collect();
    pytext::split(&text).collect::<Vec<_>>().join(" ")
}

/// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
fn is_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// One `re.sub` of a two-character pattern: scanning left to right, each pair that `hit`s is
/// replaced by `with` and scanning resumes after it.
fn sub_pairs(
    s: &[char],
    hit: impl Fn(char, char) -> bool,
    with: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 4);
    let mut i = 0;
    while i < s.len() {
        if i + 1 < s.len() && hit(s[i], s[i + 1]) {
            out.extend(with(s[i], s[i + 1]));
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// sacrebleu's segment preprocessing: trailing whitespace off, then 13a.
fn preprocess(line: &str) -> String {
    tokenize_13a(pytext::rstrip(line))
}

fn ngrams(tokens: &[&str]) -> HashMap<Vec<String>, usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for w in tokens.windows(n) {
            *counts
                .entry(w.iter().map(|s| s.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// The statistics of one hypothesis against its reference.
pub fn segment_stats(hyp: &str, reference: &str) -> Stats {
    let (hyp, reference) = (preprocess(hyp), preprocess(reference));
    let h: Vec<&str> = pytext::split(&hyp).collect();
    let r: Vec<&str> = pytext::split(&reference).collect();
    let ref_counts = ngrams(&r);
    let mut stats = Stats {
        sys_len: h.len(),
        ref_len: r.len(),
        ..Stats::default()
    };
    for (gram, count) in ngrams(&h) {
        let n = gram.len() - 1;
        stats.total[n] += count;
        if let Some(&rc) = ref_counts.get(&gram) {
            stats.correct[n] += count.min(rc);
        }
    }
    stats
}

/// sacrebleu's `compute_bleu` with exp smoothing.
pub fn score_stats(s: &Stats, effective_order: bool) -> Bleu {
    let mut bp = 1.0;
    if s.sys_len < s.ref_len {
        bp = if s.sys_len > 0 {
            (1.0 - s.ref_len as f64 / s.sys_len as f64).exp()
        } else {
            0.0
        };
    }
    let mut precisions = [0.0; MAX_ORDER];
    let result = |score, precisions| Bleu {
        score,
        precisions,
        bp,
        sys_len: s.sys_len,
        ref_len: s.ref_len,
    };
    if s.correct.iter().all(|&c| c == 0) {
        return result(0.0, precisions);
    }
    let mut smooth = 1.0;
    let mut order = MAX_ORDER;
    for (n, p) in precisions.iter_mut().enumerate() {
        let (correct, total) = (s.correct[n], s.total[n]);
        if total == 0 {
            break;
        }
        if effective_order {
            order = n + 1;
        }
        if correct == 0 {
            smooth *= 2.0;
            *p = 100.0 / (smooth * total as f64);
        } else {
            *p = 100.0 * correct as f64 / total as f64;
        }
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    let sum: f64 = precisions[..order].iter().map(|&p| log(p)).sum();
    result(bp * (sum / order as f64).exp(), precisions)
}

/// Corpus BLEU of `hyps` against one reference each.
pub fn corpus_bleu(hyps: &[&str], refs: &[&str]) -> Bleu {
    let mut total = Stats::default();
    for (h, r) in hyps.iter().zip(refs) {
        total += segment_stats(h, r);
    }
    score_stats(&total, false)
}

/// Sentence BLEU (effective order, as sacrebleu's `sentence_bleu`), 0–100.
pub fn sentence_bleu(hyp: &str, reference: &str) -> f64 {
    score_stats(&segment_stats(hyp, reference), true).score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenises_like_mteval() {
        assert_eq!(tokenize_13a("Hello, world."), "Hello , world .");
        assert_eq!(tokenize_13a("3.5 and 1,000-2"), "3.5 and 1,000 - 2");
        assert_eq!(tokenize_13a("a.,b"), "a . , b");
        assert_eq!(tokenize_13a("&quot;x&quot; &amp; y"), "\" x \" & y");
    }

    #[test]
    fn identical_text_scores_100() {
        let b = corpus_bleu(&["the cat sat on the mat"], &["the cat sat on the mat"]);
        assert!((b.score - 100.0).abs() < 1e-9);
    }
}
