//! Duplicates: exact (same text once case and spacing are ignored) and near (MinHash over word
//! shingles, candidates found with locality-sensitive hashing, then checked against the
//! threshold), across documents; and exact repeats of whole paragraphs across documents.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Signature length; more is a closer estimate of the Jaccard similarity at more cost.
const PERMUTATIONS: usize = 128;
/// Words per shingle.
const SHINGLE: usize = 3;

/// Why a document was dropped: `of` is the index of the kept document it repeats.
#[derive(Debug, Clone, PartialEq)]
pub enum Duplicate {
    Exact { of: usize },
    Near { of: usize, similarity: f64 },
}

fn hash64<T: Hash + ?Sized>(seed: u64, v: &T) -> u64 {
    // DefaultHasher with fixed keys is stable within a build, which is all a single run needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    v.hash(&mut h);
    h.finish()
}

/// The text with case and spacing ignored, as the exact-duplicate key.
fn normalised_key(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for w in text.split_whitespace() {
        w.to_lowercase().hash(&mut h);
    }
    h.finish()
}

fn signature(text: &str) -> Vec<u64> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let shingles: HashSet<u64> = if words.len() < SHINGLE {
        std::iter::once(hash64(0, &words)).collect()
    } else {
        words.windows(SHINGLE).map(|w| hash64(0, w)).collect()
    };
    (0..PERMUTATIONS as u64)
        .map(|p| {
            // Permutation p: a cheap mix of the shingle hash with its own odd multiplier.
            let (a, b) = (hash64(p, "a") | 1, hash64(p, "b"));
            shingles
                .iter()
                .map(|&s| s.wrapping_mul(a).wrapping_add(b).rotate_left(17))
                .min()
                .unwrap_or(u64::MAX)
        })
        .collect()
}

fn similarity(a: &[u64], b: &[u64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// For each document, `None` to keep it or the reason to drop it. The first of a group is kept.
/// `near` is the Jaccard threshold (0.8 is a good default); `None` checks exact duplicates only.
pub fn find_duplicates(texts: &[&str], near: Option<f64>) -> Vec<Option<Duplicate>> {
    let mut verdicts = vec![None; texts.len()];
    let mut exact: HashMap<u64, usize> = HashMap::new();
    for (i, t) in texts.iter().enumerate() {
        if let Some(&of) = exact.get(&normalised_key(t)) {
            verdicts[i] = Some(Duplicate::Exact { of });
        } else {
            exact.insert(normalised_key(t), i);
        }
    }
    let Some(threshold) = near else {
        return verdicts;
    };
    // Bands of `rows` hashes: two documents become candidates when one whole band agrees. Fewer
    // rows catch lower similarities (more candidates to check).
    let rows = if threshold >= 0.6 { 4 } else { 2 };
    let mut buckets: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    let mut sigs: Vec<Option<Vec<u64>>> = vec![None; texts.len()];
    for i in 0..texts.len() {
        if verdicts[i].is_some() {
            continue;
        }
        let sig = signature(texts[i]);
        let mut best: Option<(usize, f64)> = None;
        for (band, chunk) in sig.chunks(rows).enumerate() {
            let key = (band, hash64(band as u64, chunk));
            for &j in buckets.get(&key).into_iter().flatten() {
                let s = similarity(
                    &sig,
                    sigs[j].as_ref().expect("kept documents have signatures"),
                );
                if s >= threshold && best.is_none_or(|(_, b)| s > b) {
                    best = Some((j, s));
                }
            }
        }
        if let Some((of, similarity)) = best {
            verdicts[i] = Some(Duplicate::Near { of, similarity });
            continue;
        }
        for (band, chunk) in sig.chunks(rows).enumerate() {
            buckets
                .entry((band, hash64(band as u64, chunk)))
                .or_default()
                .push(i);
        }
        sigs[i] = Some(sig);
    }
    verdicts
}

/// Drops paragraphs (of at least 80 characters: short ones like "Thank you." repeat naturally)
/// already seen in an earlier document or earlier in the same one. Returns the kept text and the
/// number of paragraphs dropped.
pub fn drop_repeated_paragraphs(text: &str, seen: &mut HashSet<u64>) -> (String, usize) {
    let mut dropped = 0;
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|p| {
            if p.trim().chars().count() < 80 {
                return true;
            }
            let fresh = seen.insert(normalised_key(p));
            dropped += (!fresh) as usize;
            fresh
        })
        .collect();
    (kept.join("\n\n"), dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(seed: usize) -> String {
        (0..400)
            .map(|i| format!("w{}", (i * 7919 + seed * 104729) % 997))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn exact_and_near_duplicates() {
        let a = article(1);
        let mut words: Vec<String> = a.split(' ').map(String::from).collect();
        for i in (0..400).step_by(40) {
            words[i] = format!("changed{i}");
        }
        let near = words.join(" ");
        let upper = a.to_uppercase().replace(' ', "  ");
        let other = article(2);
        let texts = [a.as_str(), near.as_str(), upper.as_str(), other.as_str()];
        let v = find_duplicates(&texts, Some(0.7));
        assert_eq!(v[0], None);
        assert!(matches!(v[1], Some(Duplicate::Near { of: 0, similarity }) if similarity > 0.7));
        assert_eq!(v[2], Some(Duplicate::Exact { of: 0 }));
        assert_eq!(v[3], None);
        // Exact only: the near duplicate stays.
        assert_eq!(find_duplicates(&texts, None)[1], None);
    }

    #[test]
    fn repeated_long_paragraphs_go() {
        let disclaimer = "This message and any attachments are confidential and intended only for the named recipient.";
        let mut seen = HashSet::new();
        let (a, n) = drop_repeated_paragraphs(&format!("Hi.\n\n{disclaimer}"), &mut seen);
        assert_eq!(
            (a.as_str(), n),
            (format!("Hi.\n\n{disclaimer}").as_str(), 0)
        );
        let (b, n) =
            drop_repeated_paragraphs(&format!("Thanks.\n\n{disclaimer}\n\nHi."), &mut seen);
        assert_eq!((b.as_str(), n), ("Thanks.\n\nHi.", 1));
    }
}
