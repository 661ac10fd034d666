//! Python's idea of whitespace. sacrebleu splits and strips with `str.split()`/`str.rstrip()`,
//! whose whitespace is Unicode's plus the four ASCII separators U+001C..U+001F that Rust's
//! `char::is_whitespace` leaves out; matching the reference scores to 1e-6 needs the same split.

/// Whether Python's `str.isspace()` holds for `c`.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s.split()`: the words between runs of whitespace.
pub fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

/// `s.rstrip()`.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python() {
        let words: Vec<_> = split(" a\u{1f}b\u{a0}c\t\nd  ").collect();
        assert_eq!(words, ["a", "b", "c", "d"]);
        assert_eq!(rstrip("x \u{1c}\n"), "x");
    }
}
