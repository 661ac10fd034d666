//! Training batches drawn from a token stream. Running text is cut into windows anywhere: packing
//! documents end to end is how language models read text. A dataset with question–answer
//! examples (it has a mask) gives each row one whole unit instead — padded with ignored targets,
//! never running into the next unit — because a window straddling two examples teaches the model
//! to answer one question with the start of another; and every row holds at least one target to
//! learn, so a long prompt never yields a batch with nothing to learn.

use crate::model::ops::IGNORE_INDEX;
use crate::rng::Rng;
use crate::{Error, Result};

/// One batch: inputs and next-token targets, each `batch × block` ids, row-major. Targets the model
/// reads but does not learn (prompts, padding) are [`IGNORE_INDEX`].
#[derive(Debug, Clone)]
pub struct Batch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub batch: usize,
    pub block: usize,
}

impl Batch {
    /// Number of targets that count towards the loss.
    pub fn learned(&self) -> usize {
        self.targets.iter().filter(|&&t| t != IGNORE_INDEX).count()
    }
}

/// The units of a masked stream as `(start, end)` ranges: each ends with `eot` (the last may end
/// with the stream), and only those with a target to learn (a non-zero mask byte after their first
/// token) are returned. Training draws rows from these, and validation scores them one by one, so
/// neither ever reads one example's answer in the context of another.
pub fn learned_units<'a>(
    tokens: &'a [u32],
    mask: &'a [u8],
    eot: Option<u32>,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut start = 0;
    tokens.iter().enumerate().filter_map(move |(i, &t)| {
        let end = i + 1;
        if Some(t) != eot && end != tokens.len() {
            return None;
        }
        let unit = (start, end);
        start = end;
        // Targets are the unit's tokens after its first.
        mask[unit.0 + 1..end]
            .iter()
            .any(|&m| m != 0)
            .then_some(unit)
    })
}

/// Draws batches of `block` positions; the draw depends only on `(seed, step, micro)`, so a
/// resumed run sees the same batches.
pub struct Sampler<'a> {
    tokens: &'a [u32],
    mask: Option<&'a [u8]>,
    block: usize,
    /// With a mask: the units (start, end) that hold a target to learn, and the running total of
    /// their lengths, so a unit is drawn in proportion to its tokens.
    units: Vec<(usize, usize)>,
    cumulative: Vec<usize>,
    /// The input id after a short unit's last token (its targets are ignored, and causal attention
    /// keeps it from touching the positions before it).
    pad: u32,
}

impl<'a> Sampler<'a> {
    /// `eot` separates units in the stream (every unit ends with it); without one the masked stream
    /// is a single unit.
    pub fn new(
        tokens: &'a [u32],
        mask: Option<&'a [u8]>,
        eot: Option<u32>,
        block: usize,
    ) -> Result<Self> {
        let mut s = Sampler {
            tokens,
            mask,
            block,
            units: Vec::new(),
            cumulative: Vec::new(),
            pad: eot.unwrap_or(0),
        };
        let Some(mask) = mask else {
            if tokens.len() <= block {
                return Err(Error::Data(format!(
                    "The training text is only {} tokens, less than one block of {block} + 1. Add more text, or lower block_size to {} or less.",
                    tokens.len(),
                    tokens.len().saturating_sub(1).max(2)
                )));
            }
            return Ok(s);
        };
        let mut total = 0;
        for (start, end) in learned_units(tokens, mask, eot) {
            total += end - start;
            s.units.push((start, end));
            s.cumulative.push(total);
        }
        if s.units.is_empty() {
            return Err(Error::Data(
                "No training example has an answer to learn (every completion is empty). Check the answer column of your examples.".into(),
            ));
        }
        Ok(s)
    }

    /// `batch` rows for micro-batch `micro` of optimiser step `step`.
    pub fn batch(&self, batch: usize, seed: u64, step: u64, micro: u64) -> Batch {
        let mut rng = Rng::derive(seed, "batch", &[step, micro]);
        let block = self.block;
        let mut b = Batch {
            inputs: Vec::with_capacity(batch * block),
            targets: Vec::with_capacity(batch * block),
            batch,
            block,
        };
        for _ in 0..batch {
            match self.mask {
                None => {
                    let start = rng.below((self.tokens.len() - block) as u64) as usize;
                    b.inputs
                        .extend_from_slice(&self.tokens[start..start + block]);
                    b.targets
                        .extend_from_slice(&self.tokens[start + 1..start + block + 1]);
                }
                Some(mask) => self.unit_row(mask, &mut rng, &mut b),
            }
        }
        b
    }

    /// One row from one unit: the whole unit padded to the block, or — when it is longer — a
    /// window inside it that holds at least one learned target.
    fn unit_row(&self, mask: &[u8], rng: &mut Rng, b: &mut Batch) {
        let block = self.block;
        let r = rng.below(*self.cumulative.last().expect("checked in new") as u64) as usize;
        let (start, end) = self.units[self.cumulative.partition_point(|&c| c <= r)];
        let unit = &self.tokens[start..end];
        let m = &mask[start..end];
        let target = |j: usize| if m[j] == 0 { IGNORE_INDEX } else { unit[j] };
        let from = if unit.len() <= block + 1 {
            0
        } else {
            // Learned positions lo..=hi (relative, ≥ 1); windows [s, s + block] that reach them.
            let lo = (1..unit.len()).find(|&j| m[j] != 0).expect("unit learns");
            let hi = (1..unit.len())
                .rev()
                .find(|&j| m[j] != 0)
                .expect("unit learns");
            let first = lo.saturating_sub(block);
            let last = (hi - 1).min(unit.len() - block - 1);
            let s = first + rng.below((last - first + 1) as u64) as usize;
            if m[s + 1..=s + block].iter().any(|&x| x != 0) {
                s
            } else {
                // A gap in the learned span: take the window that ends on its last target.
                hi.saturating_sub(block)
            }
        };
        let n = (unit.len() - 1 - from).min(block);
        b.inputs.extend_from_slice(&unit[from..from + n]);
        b.targets.extend((from + 1..from + n + 1).map(target));
        b.inputs.extend(std::iter::repeat_n(self.pad, block - n));
        b.targets
            .extend(std::iter::repeat_n(IGNORE_INDEX, block - n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_batches_are_windows_with_shifted_targets() {
        let tokens: Vec<u32> = (0..100).collect();
        let s = Sampler::new(&tokens, None, None, 8).unwrap();
        let b = s.batch(3, 1, 5, 0);
        for r in 0..3 {
            let x = &b.inputs[r * 8..r * 8 + 8];
            let y = &b.targets[r * 8..r * 8 + 8];
            assert!(x.windows(2).all(|w| w[1] == w[0] + 1));
            assert!(x.iter().zip(y).all(|(a, b)| *b == a + 1));
        }
        assert_eq!(s.batch(3, 1, 5, 0).inputs, b.inputs);
        assert_ne!(s.batch(3, 1, 6, 0).inputs, b.inputs);
        assert!(Sampler::new(&tokens[..8], None, None, 8).is_err());
    }

    const EOT: u32 = 999;

    /// Examples whose tokens carry their example number (`100·k + i`), prompts masked; example
    /// `k` has a prompt of `prompt(k)` tokens and an answer of 3, then the end-of-text token.
    fn examples(n: u32, prompt: impl Fn(u32) -> u32) -> (Vec<u32>, Vec<u8>) {
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for k in 1..=n {
            for i in 0..prompt(k) + 3 {
                ids.push(100 * k + i);
                mask.push((i >= prompt(k)) as u8);
            }
            ids.push(EOT);
            mask.push(1);
        }
        (ids, mask)
    }

    /// The example a token belongs to, or `None` for the end-of-text and padding tokens.
    fn example_of(t: u32) -> Option<u32> {
        (t != EOT && t != IGNORE_INDEX).then_some(t / 100)
    }

    #[test]
    fn no_row_mixes_two_examples() {
        let (ids, mask) = examples(20, |k| k % 7 + 1);
        let s = Sampler::new(&ids, Some(&mask), Some(EOT), 16).unwrap();
        let mut seen = std::collections::HashSet::new();
        for step in 0..50 {
            let b = s.batch(4, 3, step, 0);
            for r in 0..4 {
                let x = &b.inputs[r * 16..r * 16 + 16];
                let y = &b.targets[r * 16..r * 16 + 16];
                let owners: std::collections::HashSet<u32> =
                    x.iter().chain(y).filter_map(|&t| example_of(t)).collect();
                assert_eq!(owners.len(), 1, "row {x:?} -> {y:?}");
                let k = *owners.iter().next().unwrap();
                seen.insert(k);
                // The row starts at its example's first token; after the end-of-text token come
                // only padding inputs and ignored targets.
                assert_eq!(x[0], 100 * k);
                let eot_at = y.iter().position(|&t| t == EOT).unwrap();
                assert!(y[eot_at + 1..].iter().all(|&t| t == IGNORE_INDEX));
                assert!(x[eot_at + 1..].iter().all(|&t| t == EOT));
                // Prompt targets are ignored, answer targets learned: exactly 3 + the EOT.
                let learned = y.iter().filter(|&&t| t != IGNORE_INDEX).count();
                assert_eq!(learned, 4, "{y:?}");
            }
        }
        assert!(seen.len() > 15, "examples drawn: {seen:?}");
    }

    #[test]
    fn prompts_longer_than_the_block_still_teach_their_answer() {
        // Prompts of 40 tokens and a block of 8: a window anywhere in the prompt learns nothing.
        let (ids, mask) = examples(5, |_| 40);
        let s = Sampler::new(&ids, Some(&mask), Some(EOT), 8).unwrap();
        for step in 0..100 {
            let b = s.batch(4, 9, step, 0);
            for r in 0..4 {
                let y = &b.targets[r * 8..r * 8 + 8];
                assert!(y.iter().any(|&t| t != IGNORE_INDEX), "step {step}: {y:?}");
                let owners: std::collections::HashSet<u32> = b.inputs[r * 8..r * 8 + 8]
                    .iter()
                    .filter_map(|&t| example_of(t))
                    .collect();
                assert_eq!(owners.len(), 1);
            }
        }
        // Nothing to learn anywhere is a plain error, not a failed step.
        let none = vec![0u8; ids.len()];
        let e = Sampler::new(&ids, Some(&none), Some(EOT), 8).err().unwrap();
        assert!(e.to_string().contains("answer"), "{e}");
    }
}
