//! chrF as sacrebleu 2.x computes it by default (chrF2: character n-grams of orders 1–6 with
//! whitespace removed, precision and recall averaged over the orders that occur, β = 2).
//! `corpus_chrf` is sacrebleu's `corpus_chrf(hyps, [refs])`, `sentence_chrf` its
//! `sentence_chrf(hyp, [ref])`.

use super::bleu::SACREBLEU_VERSION;
use super::pytext;

const ORDER: usize = 6;
const BETA: f64 = 2.0;

/// The signature sacrebleu prints beside a default chrF with one reference.
pub fn signature() -> String {
    format!("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{SACREBLEU_VERSION}")
}

/// Per order: hypothesis n-grams (counted only when the reference has some), reference
/// n-grams, matches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats([[usize; 3]; ORDER]);

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
    }
}

/// The statistics of one hypothesis against its reference.
pub fn segment_stats(hyp: &str, reference: &str) -> Stats {
    let squeeze = |s: &str| -> Vec<char> { pytext::split(s).flat_map(str::chars).collect() };
    let (h, r) = (squeeze(hyp), squeeze(reference));
    let mut stats = Stats::default();
    for n in 1..=ORDER {
        let (hc, rc) = (super::ngram_counts(&h, n), super::ngram_counts(&r, n));
        let mut hyp_count = 0;
        let mut matches = 0;
        for (g, c) in &hc {
            hyp_count += c;
            if let Some(&rn) = rc.get(g) {
                matches += (*c).min(rn);
            }
        }
        let ref_count: usize = rc.values().sum();
        stats.0[n - 1] = [
            if rc.is_empty() { 0 } else { hyp_count },
            ref_count,
            matches,
        ];
    }
    stats
}

/// sacrebleu's `_compute_f_score` (0–100).
pub fn score_stats(s: &Stats) -> f64 {
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut orders) = (0.0, 0.0, 0usize);
    for &[n_hyp, n_ref, n_match] in &s.0 {
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += n_match as f64 / n_hyp as f64;
            avg_rec += n_match as f64 / n_ref as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    avg_prec /= orders as f64;
    avg_rec /= orders as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    let score = (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
    100.0 * score
}

/// Corpus chrF of `hyps` against one reference each, 0–100.
pub fn corpus_chrf(hyps: &[&str], refs: &[&str]) -> f64 {
    let mut total = Stats::default();
    for (h, r) in hyps.iter().zip(refs) {
        total += segment_stats(h, r);
    }
    score_stats(&total)
}

/// Sentence chrF, 0–100.
pub fn sentence_chrf(hyp: &str, reference: &str) -> f64 {
    score_stats(&segment_stats(hyp, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_100_and_disjoint_0() {
        assert!((sentence_chrf("the cat", "the cat") - 100.0).abs() < 1e-9);
        assert_eq!(sentence_chrf("xyz", "abc"), 0.0);
    }
}
