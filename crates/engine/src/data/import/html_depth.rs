//! A bound on how deeply HTML nests before the HTML parser sees it. The standard tree-building
//! algorithm (html5ever, like browsers) scans the stack of open elements on many start tags
//! ("is there a `<p>` in button scope?"), so a file of N unclosed `<div>`s costs N² steps: 80 KB
//! of them took 4 s, a megabyte would take many minutes (found by the importer fuzzer). Browsers
//! cap the tree depth for the same reason (Blink at 512). Here start tags past `MAX_DEPTH` open
//! elements are dropped together with their end tags; the text inside them is kept, only the
//! structure that deep is flattened. Documents within the bound come back unchanged.

use std::borrow::Cow;
use std::collections::HashMap;

/// Deeper than any page a person or a tool writes (the deepest real pages nest ~100 levels).
pub const MAX_DEPTH: usize = 512;

/// Elements that never have content (no end tag).
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen", "basefont", "bgsound", "frame",
];

/// Elements whose end tag may be left out: the parser closes them when the next one starts, so
/// they do not pile up on the stack (old pages write `<p>` and `<li>` without closing them).
const OPTIONAL_END: &[&str] = &[
    "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "rt", "rp", "tbody", "thead",
    "tfoot", "colgroup", "caption", "html", "head", "body",
];

/// Elements whose content is raw text up to their end tag (a `<` there is not a tag).
const RAW_TEXT: &[&str] = &[
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];

/// `html` with start tags deeper than `max` (and their end tags) removed.
pub fn flatten_deep(html: &str, max: usize) -> Cow<'_, str> {
    let b = html.as_bytes();
    let mut out: Option<String> = None;
    // Bytes of `html` before `copied` are in `out` (when it exists).
    let mut copied = 0;
    let mut depth = 0usize;
    let mut dropped: HashMap<String, usize> = HashMap::new();
    let mut i = 0;
    while let Some(off) = memchr(b'<', &b[i..]) {
        let lt = i + off;
        if b[lt..].starts_with(b"<!--") {
            // A comment: its content is not markup.
            match html[lt + 4..].find("-->") {
                Some(e) => i = lt + 4 + e + 3,
                None => break,
            }
            continue;
        }
        let tag = match Tag::read(html, lt) {
            Read::Tag(tag) => tag,
            Read::Text => {
                i = lt + 1;
                continue;
            }
            // No `>` follows: no complete tag can start later either.
            Read::Unterminated => break,
        };
        i = tag.end;
        let name = tag.name.to_ascii_lowercase();
        let drop = if tag.closing {
            match dropped.get_mut(&name) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => {
                    if nests(&name) {
                        depth = depth.saturating_sub(1);
                    }
                    false
                }
            }
        } else if tag.self_closing || !nests(&name) {
            false
        } else if depth >= max {
            *dropped.entry(name.clone()).or_default() += 1;
            true
        } else {
            depth += 1;
            false
        };
        if drop {
            let o = out.get_or_insert_with(|| String::with_capacity(html.len()));
            o.push_str(&html[copied..lt]);
            copied = tag.end;
        }
        if !tag.closing && RAW_TEXT.contains(&name.as_str()) {
            // Skip the raw text to its end tag, which the next round reads as a tag.
            i = find_end_tag(html, i, &name).unwrap_or(html.len());
        }
    }
    match out {
        None => Cow::Borrowed(html),
        Some(mut o) => {
            o.push_str(&html[copied..]);
            Cow::Owned(o)
        }
    }
}

fn nests(name: &str) -> bool {
    !VOID.contains(&name) && !OPTIONAL_END.contains(&name)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

/// A start or end tag at `html[lt]` (which is `<`): its name, kind and where it ends.
struct Tag<'a> {
    name: &'a str,
    closing: bool,
    self_closing: bool,
    /// Index just past the closing `>`.
    end: usize,
}

enum Read<'a> {
    Tag(Tag<'a>),
    /// A doctype or processing instruction, or a `<` that is text.
    Text,
    Unterminated,
}

impl<'a> Tag<'a> {
    fn read(html: &'a str, lt: usize) -> Read<'a> {
        let b = html.as_bytes();
        let mut j = lt + 1;
        let closing = b.get(j) == Some(&b'/');
        if closing {
            j += 1;
        }
        if !b.get(j).is_some_and(u8::is_ascii_alphabetic) {
            return Read::Text;
        }
        let start = j;
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'/' && b[j] != b'>' {
            j += 1;
        }
        let name = &html[start..j];
        // The tag ends at the first `>` outside quoted attribute values.
        let mut quote = None;
        while j < b.len() {
            match (quote, b[j]) {
                (None, b'"' | b'\'') => quote = Some(b[j]),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => {
                    let self_closing = b[j - 1] == b'/';
                    return Read::Tag(Tag {
                        name,
                        closing,
                        self_closing,
                        end: j + 1,
                    });
                }
                _ => {}
            }
            j += 1;
        }
        Read::Unterminated
    }
}

/// The index of `</name` (any case) at or after `from`.
fn find_end_tag(html: &str, from: usize, name: &str) -> Option<usize> {
    let b = html.as_bytes();
    let mut i = from;
    while let Some(off) = memchr(b'<', &b[i..]) {
        let lt = i + off;
        let rest = &b[lt + 1..];
        if rest.first() == Some(&b'/')
            && rest.len() > name.len()
            && rest[1..=name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            return Some(lt);
        }
        i = lt + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest nesting of `nests` elements in `html`, counted as `flatten_deep` does.
    fn depth(html: &str) -> usize {
        let (mut d, mut most) = (0usize, 0);
        let mut i = 0;
        while let Some(off) = memchr(b'<', &html.as_bytes()[i..]) {
            let t = match Tag::read(html, i + off) {
                Read::Tag(t) => t,
                Read::Text => {
                    i += off + 1;
                    continue;
                }
                Read::Unterminated => break,
            };
            i = t.end;
            let name = t.name.to_ascii_lowercase();
            if nests(&name) && !t.self_closing {
                if t.closing {
                    d = d.saturating_sub(1);
                } else {
                    d += 1;
                    most = most.max(d);
                }
            }
        }
        most
    }

    #[test]
    fn ordinary_pages_come_back_unchanged() {
        let page = "<!DOCTYPE html><html><head><title>a < b</title><script>if (a<b) {}</script>\
            </head><body><p>one<p>two<ul><li>x<li>y</ul><br><img src='a>b'/><div>text</div>\
            <!-- <div><div> --></body></html>";
        assert!(matches!(flatten_deep(page, 3), Cow::Borrowed(_)));
    }

    #[test]
    fn deep_nesting_is_flattened_and_the_text_kept() {
        let page = format!(
            "<p>x{}deep{}<b>after</b>",
            "<div>".repeat(2000),
            "</div>".repeat(2000)
        );
        let flat = flatten_deep(&page, 100);
        assert_eq!(depth(&flat), 100);
        assert_eq!(flat.matches("<div>").count(), 100);
        assert_eq!(flat.matches("</div>").count(), 100);
        assert!(flat.contains("deep") && flat.ends_with("<b>after</b>"));
        // Unclosed: no end tags to drop.
        let open = "<span>".repeat(1000) + "words";
        let flat = flatten_deep(&open, 10);
        assert_eq!(flat, "<span>".repeat(10) + "words");
    }

    #[test]
    fn unterminated_tags_end_the_scan() {
        // Linear: each `<` must not rescan the rest of the file for a `>`.
        let junk = "<a".repeat(200_000);
        assert!(matches!(flatten_deep(&junk, 5), Cow::Borrowed(_)));
    }

    #[test]
    fn tags_inside_raw_text_do_not_count() {
        let page = format!("<script>{}</script><div>t</div>", "<div>".repeat(50));
        assert!(matches!(flatten_deep(&page, 5), Cow::Borrowed(_)));
    }
}
