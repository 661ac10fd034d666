//! Choosing the next token from logits: repetition penalty, temperature (0 = greedy), top-k, top-p.
//! Pure functions over a logits vector, so every rule is unit-tested by hand.

use crate::rng::Rng;

/// Sampling settings for one generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; 1 = off.
    pub top_p: f64,
    /// > 1 makes tokens already in the context less likely (CTRL-style); 1 = off.
    pub repetition_penalty: f64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 1.0,
            repetition_penalty: 1.0,
        }
    }
}

/// Divides positive logits (multiplies negative ones) of every token seen in `context` by `penalty`.
pub fn apply_repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f64) {
    if penalty == 1.0 {
        return;
    }
    let p = penalty as f32;
    let mut seen = vec![false; logits.len()];
    for &t in context {
        if let Some(s) = seen.get_mut(t as usize) {
            if !*s {
                *s = true;
                let l = &mut logits[t as usize];
                *l = if *l > 0.0 { *l / p } else { *l * p };
            }
        }
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Picks the next token.
pub fn sample(logits: &mut [f32], context: &[u32], params: &SamplingParams, rng: &mut Rng) -> u32 {
    apply_repetition_penalty(logits, context, params.repetition_penalty);
    if params.temperature <= 0.0 {
        return argmax(logits);
    }
    let t = params.temperature as f32;
    // Candidates sorted by logit, most likely first.
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if params.top_k > 0 && params.top_k < idx.len() {
        idx.truncate(params.top_k);
    }
    let max = logits[idx[0] as usize];
    let mut probs: Vec<f64> = idx
        .iter()
        .map(|&i| (((logits[i as usize] - max) / t) as f64).exp())
        .collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    if params.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= params.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        idx.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut r = rng.next_f64() * total;
    for (i, p) in probs.iter().enumerate() {
        r -= p;
        if r < 0.0 {
            return idx[i];
        }
    }
    idx[probs.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax() {
        let p = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(sample(&mut [0.1, 3.0, 2.0], &[], &p, &mut Rng::new(0)), 1);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut l = [2.0, -1.0, 4.0];
        apply_repetition_penalty(&mut l, &[0, 1, 1], 2.0);
        assert_eq!(l, [1.0, -2.0, 4.0]);
        // With a penalty the greedy choice moves away from a repeated token.
        let p = SamplingParams {
            temperature: 0.0,
            repetition_penalty: 3.0,
            ..Default::default()
        };
        assert_eq!(sample(&mut [3.0, 2.0], &[0], &p, &mut Rng::new(0)), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_cuts_the_tail() {
        let mut rng = Rng::new(3);
        let k1 = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        for _ in 0..20 {
            assert_eq!(sample(&mut [0.0, 1.0, 0.5], &[], &k1, &mut rng), 1);
        }
        // probs ≈ [0.665, 0.245, 0.09]: top_p 0.6 keeps only the first.
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.6,
            repetition_penalty: 1.0,
        };
        for _ in 0..20 {
            assert_eq!(sample(&mut [2.0, 1.0, 0.0], &[], &p, &mut rng), 0);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let mut rng = Rng::new(9);
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
        };
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| sample(&mut [0.0, (3f32).ln()], &[], &p, &mut rng) == 1)
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "{frac}");
    }
}
