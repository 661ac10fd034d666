//! ROUGE-1, ROUGE-2 and ROUGE-L F1 as Google's `rouge-score` package computes them
//! (`RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=...)`): text lowercased, everything
//! but `a-z0-9` a separator, optionally Porter-stemmed (NLTK's stemmer, words over 3 letters),
//! n-gram overlap or longest common subsequence. rouge-score scores pairs; a corpus figure is
//! the mean of the pairs' F1.

use serde::{Deserialize, Serialize};

use super::porter;

/// F1 of each kind for one pair, 0–1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rouge {
    pub rouge1: f64,
    pub rouge2: f64,
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
}

/// rouge-score's `DefaultTokenizer`.
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|w| !w.is_empty())
        .map(|w| {
            if stem && w.len() > 3 {
                porter::stem(w)
            } else {
                w.to_string()
            }
        })
        // The stemmer keeps a-z0-9 words so; the check mirrors rouge-score's.
        .filter(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        .collect()
}

/// The scores of `prediction` against `target`.
pub fn score(target: &str, prediction: &str, stem: bool) -> Rouge {
    let t = tokenize(target, stem);
    let p = tokenize(prediction, stem);
    Rouge {
        rouge1: ngram_f1(&t, &p, 1),
        rouge2: ngram_f1(&t, &p, 2),
        rouge_l: lcs_f1(&t, &p),
    }
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn ngram_f1(target: &[String], prediction: &[String], n: usize) -> f64 {
    let (t, p) = (
        super::ngram_counts(target, n),
        super::ngram_counts(prediction, n),
    );
    let overlap: usize = t
        .iter()
        .map(|(g, c)| (*c).min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let t_total: usize = t.values().sum();
    let p_total: usize = p.values().sum();
    let precision = overlap as f64 / p_total.max(1) as f64;
    let recall = overlap as f64 / t_total.max(1) as f64;
    fmeasure(precision, recall)
}

fn lcs_f1(target: &[String], prediction: &[String]) -> f64 {
    if target.is_empty() || prediction.is_empty() {
        return 0.0;
    }
    // One row of the table at a time: the length is all rouge-score reads from it.
    let mut prev = vec![0usize; prediction.len() + 1];
    let mut row = prev.clone();
    for t in target {
        for (j, p) in prediction.iter().enumerate() {
            row[j + 1] = if t == p {
                prev[j] + 1
            } else {
                prev[j + 1].max(row[j])
            };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    let lcs = prev[prediction.len()] as f64;
    fmeasure(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenises_like_rouge_score() {
        assert_eq!(
            tokenize("Hello, World! It's 42.", false),
            ["hello", "world", "it", "s", "42"]
        );
        assert_eq!(tokenize("Running runners", true), ["run", "runner"]);
    }

    #[test]
    fn scores_overlap() {
        let r = score("the cat sat", "the cat sat", false);
        assert_eq!((r.rouge1, r.rouge2, r.rouge_l), (1.0, 1.0, 1.0));
        assert_eq!(score("", "x", false), Rouge::default());
    }
}
