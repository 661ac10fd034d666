//! Evaluation: loss and perplexity of a model on text; BLEU, chrF and ROUGE of outputs against
//! references, each computed as its reference implementation computes it.

pub mod bleu;
pub mod checkpoints;
pub mod chrf;
pub mod copied;
pub mod pairs;
pub mod perplexity;
pub mod porter;
mod pytext;
pub mod rouge;
pub mod score;

pub use pairs::{evaluate_pairs, read_pairs, run_split_examples, EvalExample, PairEvalConfig};
pub use perplexity::{evaluate_text, loss_on_masked_tokens, loss_on_tokens, EvalResult};
pub use score::{score_files, score_texts, ExampleScore, Metric, ScoreReport};

/// How often each run of `n` items occurs in `items`.
pub(crate) fn ngram_counts<T: Eq + std::hash::Hash>(
    items: &[T],
    n: usize,
) -> std::collections::HashMap<&[T], usize> {
    let mut counts = std::collections::HashMap::new();
    for g in items.windows(n) {
        *counts.entry(g).or_insert(0) += 1;
    }
    counts
}
