//! Long documents into training-sized pieces: chunks of at most `max_tokens` tokens that end on
//! paragraph boundaries, each optionally starting with the last paragraphs of the one before
//! (`overlap` tokens at most) so no passage loses its context at a cut.

/// Splits `text` (paragraphs separated by blank lines). `count` gives a text's token count.
pub fn chunk(
    text: &str,
    max_tokens: usize,
    overlap: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<String> {
    // Each paragraph is charged for the blank line that joins it to the next, so a chunk's own
    // count stays within the limit.
    let sep = count("\n\n");
    let max_tokens = max_tokens.saturating_sub(sep).max(1);
    let mut pieces: Vec<(String, usize)> = Vec::new();
    for p in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let n = count(p) + sep;
        if n <= max_tokens {
            pieces.push((p.to_string(), n));
        } else {
            // A paragraph longer than a chunk is cut between words.
            pieces.extend(
                split_long(p, max_tokens, count)
                    .into_iter()
                    .map(|(q, m)| (q, m + sep)),
            );
        }
    }
    let mut chunks = Vec::new();
    let mut current: Vec<(String, usize)> = Vec::new();
    let mut tokens = 0;
    let mut fresh = 0; // paragraphs in `current` not carried over from the previous chunk
    for (p, n) in pieces {
        if tokens + n > max_tokens && fresh > 0 {
            chunks.push(join(&current));
            // Carry the tail of this chunk (within `overlap` tokens) into the next.
            let mut carried = Vec::new();
            let mut carried_tokens = 0;
            for (q, m) in current.iter().rev() {
                if carried_tokens + m > overlap || carried_tokens + m + n > max_tokens {
                    break;
                }
                carried_tokens += m;
                carried.insert(0, (q.clone(), *m));
            }
            current = carried;
            tokens = carried_tokens;
            fresh = 0;
        }
        tokens += n;
        fresh += 1;
        current.push((p, n));
    }
    if fresh > 0 {
        chunks.push(join(&current));
    }
    chunks
}

fn join(parts: &[(String, usize)]) -> String {
    parts
        .iter()
        .map(|(p, _)| p.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn split_long(p: &str, max_tokens: usize, count: &dyn Fn(&str) -> usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in p.split(' ') {
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if !current.is_empty() && count(&candidate) > max_tokens {
            let n = count(&current);
            out.push((std::mem::replace(&mut current, word.to_string()), n));
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() {
        let n = count(&current);
        out.push((current, n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn chunks_end_on_paragraphs_and_overlap() {
        let text = "a b c\n\nd e\n\nf g h i\n\nj";
        assert_eq!(chunk(text, 5, 0, &words), ["a b c\n\nd e", "f g h i\n\nj"]);
        assert_eq!(
            chunk(text, 7, 2, &words),
            ["a b c\n\nd e", "d e\n\nf g h i\n\nj"]
        );
        // Nothing is lost without overlap.
        let joined = chunk(text, 3, 0, &words).join(" ");
        assert_eq!(words(&joined), 10);
    }

    #[test]
    fn long_paragraphs_are_cut_between_words() {
        let long = (0..25).map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
        let c = chunk(&long, 10, 0, &words);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|x| words(x) <= 10));
    }
}
