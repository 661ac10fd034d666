//! Personal-data scrubbing (opt-in): e-mail addresses, URLs, IBANs, payment-card numbers, IP
//! addresses and phone numbers become placeholders such as `[EMAIL]`. Numbers are checked (IBAN
//! mod-97, card Luhn) so dates, invoice numbers and prices stay. Each hit is kept for review.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};

/// One replaced piece of text, for the review list.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiHit {
    /// `EMAIL`, `URL`, `IBAN`, `CARD`, `IP` or `PHONE`.
    pub kind: String,
    pub text: String,
}

struct Rule {
    kind: &'static str,
    re: Regex,
    valid: fn(&str) -> bool,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let rule = |kind, pattern: &str, valid: fn(&str) -> bool| Rule {
            kind,
            re: Regex::new(pattern).expect("valid pattern"),
            valid,
        };
        let any = |_: &str| true;
        // Order matters: URLs before IPs (a URL may hold one), IBANs and cards before phones.
        vec![
            rule("EMAIL", r"(?P<m>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})", any),
            rule("URL", r#"(?P<m>\b(?:https?://|www\.)[^\s<>"'()\[\]]*[^\s<>"'()\[\].,;:!?])"#, any),
            rule("IBAN", r"\b(?P<m>[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b", iban_ok),
            rule("CARD", r"\b(?P<m>\d(?:[ -]?\d){12,18})\b", luhn_ok),
            rule("IP", r"\b(?P<m>(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})\b", any),
            rule("IP", r"(?i)(?P<m>\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,5})?\b|::1\b)", any),
            // International (+44 20 7946 0958), North American ((555) 123-4567, 555-123-4567) and
            // national trunk-prefixed numbers (030 1234567), the last only after a space or
            // bracket so references like INV-2024-000123 stay.
            rule("PHONE", r"(?P<m>\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\d)", phone_ok),
            rule("PHONE", r"(?P<m>\(\d{3}\) ?\d{3}[-. ]\d{4}\b|\b\d{3}[-.]\d{3}[-.]\d{4}\b)", any),
            rule("PHONE", r"(?:^|[\s(:])(?P<m>0\d{2,4}[ /-]?\d{4,8})\b", phone_ok),
        ]
    })
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn luhn_ok(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 {
                    x * 2 - 9
                } else {
                    x * 2
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem: u64 = 0;
    for c in rearranged {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn phone_ok(s: &str) -> bool {
    (7..=15).contains(&digits(s).len())
}

/// `text` with personal data replaced, and each hit in order of kind.
pub fn scrub(text: &str) -> (String, Vec<PiiHit>) {
    let mut out = text.to_string();
    let mut hits = Vec::new();
    for rule in rules() {
        out = rule
            .re
            .replace_all(&out, |c: &Captures| {
                let whole = c.get(0).expect("match").as_str();
                let m = c.name("m").expect("every pattern names its match");
                if !(rule.valid)(m.as_str()) {
                    return whole.to_string();
                }
                hits.push(PiiHit {
                    kind: rule.kind.into(),
                    text: m.as_str().into(),
                });
                // Keep what the pattern matched around the hit (a leading space or bracket).
                let start = m.start() - c.get(0).expect("match").start();
                format!(
                    "{}[{}]{}",
                    &whole[..start],
                    rule.kind,
                    &whole[start + m.len()..]
                )
            })
            .into_owned();
    }
    (out, hits)
}

/// Hits counted by kind, for the report.
pub fn count(hits: &[PiiHit]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for h in hits {
        *m.entry(h.kind.clone()).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_personal_data() {
        let (s, hits) = scrub(
            "Mail jane.doe@example.co.uk or call +44 20 7946 0958, (555) 123-4567 or 030 1234567. \
             Pay to DE89 3704 0044 0532 0130 00 with card 4111 1111 1111 1111. \
             See https://example.com/path?q=1. Server 192.168.1.10 and 2001:db8::1.",
        );
        assert_eq!(
            s,
            "Mail [EMAIL] or call [PHONE], [PHONE] or [PHONE]. \
             Pay to [IBAN] with card [CARD]. \
             See [URL]. Server [IP] and [IP]."
        );
        let c = count(&hits);
        assert_eq!((c["PHONE"], c["IP"], c["EMAIL"]), (3, 2, 1));
    }

    #[test]
    fn leaves_lookalikes_alone() {
        let text = "On 2024-05-01 at 10:30 invoice INV-2024-000123 for 1,234.56 EUR; \
                    ref 1234 5678 9012 3456; version 2.1 shipped; DE00 1234 5678 9012 3456 78.";
        let (s, hits) = scrub(text);
        assert_eq!(s, text, "{hits:?}");
    }
}
