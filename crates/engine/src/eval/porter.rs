//! The Porter stemmer exactly as NLTK 3.10.4 implements it (`PorterStemmer()` in its default
//! `NLTK_EXTENSIONS` mode), because rouge-score stems with it and stemmed ROUGE has to match
//! rouge-score to the last digit. Each function mirrors the Python method of the same name, quirks
//! included; the word is held as `char`s since NLTK indexes Python strings by code point.

/// Stems one word as `nltk.stem.porter.PorterStemmer().stem(word)` does.
/// Lowercasing uses Rust's Unicode tables, which may be newer than the Python's (a few dozen
/// recently encoded capitals differ); rouge-score only ever passes ASCII.
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(irregular) = irregular_form(&lower) {
        return irregular.to_string();
    }
    // NLTK tests the length of the word as given, not of its lowercase form (which can be longer).
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: Vec<char> = lower.chars().collect();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        w = step(&w);
    }
    w.into_iter().collect()
}

/// NLTK's pool of irregular forms, mapped straight to their stems before any step runs.
fn irregular_form(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

type Condition<'a> = &'a dyn Fn(&[char]) -> bool;

/// A suffix rule: the suffix, its replacement, and the condition the remaining stem must meet.
type Rule<'a> = (&'a str, &'a str, Condition<'a>);

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Consonant flag of every char: a 'y' is a consonant at the start or after a vowel, a vowel after
/// a consonant; anything else but a, e, i, o, u (digits and non-ASCII letters too) is a consonant.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for &c in w {
        let flag = match c {
            'y' => flags.last().is_none_or(|&prev| !prev),
            c => !is_vowel(c),
        };
        flags.push(flag);
    }
    flags
}

fn is_consonant(w: &[char], i: usize) -> bool {
    consonant_flags(&w[..=i])[i]
}

/// Porter's m: the number of vowel-consonant transitions.
fn measure(w: &[char]) -> usize {
    let flags = consonant_flags(w);
    flags.windows(2).filter(|p| !p[0] && p[1]).count()
}

fn has_positive_measure(w: &[char]) -> bool {
    measure(w) > 0
}

fn contains_vowel(w: &[char]) -> bool {
    consonant_flags(w).contains(&false)
}

/// Condition *d: the word ends in a doubled consonant.
fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// Condition *o: the word ends consonant-vowel-consonant, the last not w, x or y; NLTK also
/// accepts a two-letter vowel-consonant word.
fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    // Suffixes are ASCII, so their byte length is their length in chars.
    w.len() >= suffix.len()
        && w[w.len() - suffix.len()..]
            .iter()
            .copied()
            .eq(suffix.chars())
}

/// `w` with its last `n` chars replaced by `replacement`.
fn replace_tail(w: &[char], n: usize, replacement: &str) -> Vec<char> {
    w[..w.len() - n]
        .iter()
        .copied()
        .chain(replacement.chars())
        .collect()
}

/// Applies the first rule whose suffix matches; a matching rule whose condition fails ends the
/// list, leaving the word as it was. The pseudo-suffix "*d" stands for a doubled consonant, and
/// (as in NLTK) still matches a literal "*d" when there is none.
fn apply_rule_list(w: &[char], rules: &[Rule]) -> Vec<char> {
    for &(suffix, replacement, condition) in rules {
        if suffix == "*d" && ends_double_consonant(w) {
            let stem = &w[..w.len() - 2];
            return if condition(stem) {
                replace_tail(w, 2, replacement)
            } else {
                w.to_vec()
            };
        }
        if ends_with(w, suffix) {
            let stem = &w[..w.len() - suffix.len()];
            return if condition(stem) {
                replace_tail(w, suffix.len(), replacement)
            } else {
                w.to_vec()
            };
        }
    }
    w.to_vec()
}

fn always(_: &[char]) -> bool {
    true
}

fn step1a(w: &[char]) -> Vec<char> {
    // NLTK: a four-letter "-ies" word keeps its e, so "dies" -> "die" while "flies" -> "fli".
    if ends_with(w, "ies") && w.len() == 4 {
        return replace_tail(w, 3, "ie");
    }
    apply_rule_list(
        w,
        &[
            ("sses", "ss", &always),
            ("ies", "i", &always),
            ("ss", "ss", &always),
            ("s", "", &always),
        ],
    )
}

fn step1b(w: &[char]) -> Vec<char> {
    // NLTK: "-ied" goes to "i" ("spied" -> "spi"), but to "ie" in four-letter words ("died").
    if ends_with(w, "ied") {
        let replacement = if w.len() == 4 { "ie" } else { "i" };
        return replace_tail(w, 3, replacement);
    }
    // The "-eed" rule claims every "-eed" word, so "feed" never reaches the "-ed" rule.
    if ends_with(w, "eed") {
        let stem = &w[..w.len() - 3];
        return if measure(stem) > 0 {
            replace_tail(w, 3, "ee")
        } else {
            w.to_vec()
        };
    }
    let Some(stem) = ["ed", "ing"]
        .into_iter()
        .filter(|suffix| ends_with(w, suffix))
        .map(|suffix| &w[..w.len() - suffix.len()])
        .find(|stem| contains_vowel(stem))
    else {
        return w.to_vec();
    };
    // Non-empty: it contains a vowel.
    let last = stem[stem.len() - 1];
    let undouble = last.to_string();
    let not_lsz = |_: &[char]| !matches!(last, 'l' | 's' | 'z');
    let add_e = |s: &[char]| measure(s) == 1 && ends_cvc(s);
    apply_rule_list(
        stem,
        &[
            ("at", "ate", &always),
            ("bl", "ble", &always),
            ("iz", "ize", &always),
            ("*d", &undouble, &not_lsz),
            ("", "e", &add_e),
        ],
    )
}

fn step1c(w: &[char]) -> Vec<char> {
    // NLTK: y -> i only after a consonant that is not the whole stem ("happy" -> "happi", but
    // "enjoy" and "by" stay).
    let after_consonant = |s: &[char]| s.len() > 1 && is_consonant(s, s.len() - 1);
    apply_rule_list(w, &[("y", "i", &after_consonant)])
}

fn step2(w: &[char]) -> Vec<char> {
    // NLTK applies "-alli" -> "-al" first and then step 2 again on the result.
    if ends_with(w, "alli") && has_positive_measure(&w[..w.len() - 4]) {
        return step2(&replace_tail(w, 4, "al"));
    }
    let m0 = &has_positive_measure;
    // NLTK keeps the 'l' of "-logi" with the stem so short stems like "geo" qualify.
    let logi = |_: &[char]| has_positive_measure(&w[..w.len() - 3]);
    apply_rule_list(
        w,
        &[
            ("ational", "ate", m0),
            ("tional", "tion", m0),
            ("enci", "ence", m0),
            ("anci", "ance", m0),
            ("izer", "ize", m0),
            ("bli", "ble", m0),
            ("alli", "al", m0),
            ("entli", "ent", m0),
            ("eli", "e", m0),
            ("ousli", "ous", m0),
            ("ization", "ize", m0),
            ("ation", "ate", m0),
            ("ator", "ate", m0),
            ("alism", "al", m0),
            ("iveness", "ive", m0),
            ("fulness", "ful", m0),
            ("ousness", "ous", m0),
            ("aliti", "al", m0),
            ("iviti", "ive", m0),
            ("biliti", "ble", m0),
            ("fulli", "ful", m0),
            ("logi", "log", &logi),
        ],
    )
}

fn step3(w: &[char]) -> Vec<char> {
    let m0 = &has_positive_measure;
    apply_rule_list(
        w,
        &[
            ("icate", "ic", m0),
            ("ative", "", m0),
            ("alize", "al", m0),
            ("iciti", "ic", m0),
            ("ical", "ic", m0),
            ("ful", "", m0),
            ("ness", "", m0),
        ],
    )
}

fn step4(w: &[char]) -> Vec<char> {
    let m1 = &|s: &[char]| measure(s) > 1;
    let ion = |s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'));
    apply_rule_list(
        w,
        &[
            ("al", "", m1),
            ("ance", "", m1),
            ("ence", "", m1),
            ("er", "", m1),
            ("ic", "", m1),
            ("able", "", m1),
            ("ible", "", m1),
            ("ant", "", m1),
            ("ement", "", m1),
            ("ment", "", m1),
            ("ent", "", m1),
            ("ion", "", &ion),
            ("ou", "", m1),
            ("ism", "", m1),
            ("ate", "", m1),
            ("iti", "", m1),
            ("ous", "", m1),
            ("ive", "", m1),
            ("ize", "", m1),
        ],
    )
}

fn step5a(w: &[char]) -> Vec<char> {
    // Both "-e" rules are tried (unlike a rule list, where the first match decides).
    if let Some((&'e', stem)) = w.split_last() {
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w.to_vec()
}

fn step5b(w: &[char]) -> Vec<char> {
    // The measure is of the word less one 'l', not of the stem less "ll".
    let m1 = |_: &[char]| measure(&w[..w.len() - 1]) > 1;
    apply_rule_list(w, &[("ll", "l", &m1)])
}

#[cfg(test)]
mod tests {
    use super::stem;

    // Expected values are NLTK 3.10.4's `PorterStemmer().stem`.

    #[test]
    fn short_words_and_case() {
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("3d"), "3d");
        assert_eq!(stem("ies"), "i");
        assert_eq!(stem("Running"), "run");
        assert_eq!(stem("1990s"), "1990");
    }

    #[test]
    fn irregular_forms() {
        assert_eq!(stem("SKIES"), "sky");
        assert_eq!(stem("dying"), "die");
        assert_eq!(stem("news"), "news");
        assert_eq!(stem("innings"), "inning");
        assert_eq!(stem("proceed"), "proceed");
    }

    #[test]
    fn step1() {
        assert_eq!(stem("caresses"), "caress");
        assert_eq!(stem("ponies"), "poni");
        assert_eq!(stem("dies"), "die");
        assert_eq!(stem("flies"), "fli");
        assert_eq!(stem("died"), "die");
        assert_eq!(stem("spied"), "spi");
        assert_eq!(stem("agreed"), "agre");
        assert_eq!(stem("feed"), "feed");
        assert_eq!(stem("bled"), "bled");
        assert_eq!(stem("motoring"), "motor");
        assert_eq!(stem("sized"), "size");
        assert_eq!(stem("hopping"), "hop");
        assert_eq!(stem("hissing"), "hiss");
        assert_eq!(stem("filing"), "file");
        assert_eq!(stem("happy"), "happi");
        assert_eq!(stem("enjoy"), "enjoy");
        assert_eq!(stem("fly"), "fli");
        assert_eq!(stem("by"), "by");
        assert_eq!(stem("syzygy"), "syzygi");
    }

    #[test]
    fn step2() {
        assert_eq!(stem("relational"), "relat");
        assert_eq!(stem("conditional"), "condit");
        assert_eq!(stem("rational"), "ration");
        assert_eq!(stem("conformabli"), "conform");
        assert_eq!(stem("radicalli"), "radic");
        assert_eq!(stem("vietnamization"), "vietnam");
        assert_eq!(stem("sensibiliti"), "sensibl");
        assert_eq!(stem("hopefulli"), "hope");
        assert_eq!(stem("geologi"), "geolog");
        assert_eq!(stem("carelessli"), "carelessli");
    }

    #[test]
    fn steps3_to_5() {
        assert_eq!(stem("triplicate"), "triplic");
        assert_eq!(stem("formative"), "form");
        assert_eq!(stem("electrical"), "electr");
        assert_eq!(stem("goodness"), "good");
        assert_eq!(stem("allowance"), "allow");
        assert_eq!(stem("replacement"), "replac");
        assert_eq!(stem("adoption"), "adopt");
        assert_eq!(stem("generously"), "gener");
        assert_eq!(stem("probate"), "probat");
        assert_eq!(stem("rate"), "rate");
        assert_eq!(stem("cease"), "ceas");
        assert_eq!(stem("controll"), "control");
        assert_eq!(stem("roll"), "roll");
    }

    #[test]
    fn non_ascii_is_consonant() {
        assert_eq!(stem("cafés"), "café");
        assert_eq!(stem("naïve"), "naïv");
    }
}
