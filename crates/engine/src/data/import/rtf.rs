//! The text of an RTF document, read by a small hand-written parser: groups, control words and
//! symbols, `\'hh` bytes in the document's code page (or the current font's character set), and
//! `\uN` Unicode characters with their fallback characters skipped. Destinations that hold no
//! body text (font and colour tables, document info, pictures, headers, footers, footnotes, field
//! instructions, anything marked `\*`) are skipped. Paragraphs are separated by one blank line,
//! list items become "- " lines of one paragraph, table rows become lines of cells joined by
//! " | ". Any input is read without panicking; unbalanced braces simply end where the text does.

use std::collections::HashMap;
use std::path::Path;

use encoding_rs::{Encoding, WINDOWS_1252};

use crate::{Error, Result};

/// Destinations whose text a reader does not see as part of the body.
const SKIPPED: &str = "colortbl stylesheet info pict object header headerl headerr headerf \
    footer footerl footerr footerf footnote listtable listoverridetable rsidtbl generator \
    xmlnstbl themedata colorschememapping datastore latentstyles fldinst filetbl revtbl \
    annotation atnid atnauthor pn xe tc template nonshppict pgdsctbl";

/// Deepest group nesting with its own state; deeper groups share their parent's.
const MAX_DEPTH: usize = 1024;

/// The body text of `rtf`, a whole RTF file already decoded to a string.
pub fn extract(path: &Path, rtf: &str) -> Result<String> {
    let rtf = rtf.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if !rtf.starts_with("{\\rtf") {
        return Err(Error::file(
            path,
            "is not an RTF document (it does not start with {\\rtf); save it again as RTF or plain text",
        ));
    }
    Ok(Parser::default().run(rtf))
}

/// Where the text of a group goes.
#[derive(Clone, Copy, PartialEq)]
enum Dest {
    Body,
    /// The font table: read for each font's character set, its text dropped.
    Fonts,
    Skip,
}

/// State scoped to one `{...}` group.
#[derive(Clone, Copy)]
struct Group {
    dest: Dest,
    /// Fallback characters that follow each `\uN`.
    uc: usize,
    /// The current font; `None` is the document's default font.
    font: Option<i32>,
}

#[derive(Default)]
struct Parser {
    group: Group,
    stack: Vec<Group>,
    /// Groups opened past `MAX_DEPTH` and not yet closed.
    overflow: usize,
    /// The document's code page (`\ansicpgN`); `None` is Windows-1252.
    code_page: Option<&'static Encoding>,
    default_font: i32,
    /// Fonts whose character set is not the document's code page.
    font_encodings: HashMap<i32, &'static Encoding>,
    /// The font being described inside the font table.
    font_def: i32,
    /// Consecutive `\'hh` bytes, decoded together so that multi-byte code pages work.
    bytes: Vec<u8>,
    /// Fallback characters still to skip after a `\uN`.
    skip: usize,
    high_surrogate: Option<u32>,
    paragraphs: Vec<String>,
    current: String,
    /// Cell separators owed before the next text of a table row.
    cells: usize,
    /// The paragraph is in a table (`\intbl`), and whether the document ever says so.
    intbl: bool,
    uses_intbl: bool,
    /// A table row just ended: text outside the table starts a new paragraph.
    row_done: bool,
    /// The current paragraph is a list item, and so was the last one written.
    item: bool,
    last_item: bool,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            dest: Dest::Body,
            uc: 1,
            font: None,
        }
    }
}

impl Parser {
    fn run(mut self, s: &str) -> String {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' => {
                    self.flush();
                    self.skip = 0;
                    if self.stack.len() < MAX_DEPTH {
                        self.stack.push(self.group);
                    } else {
                        self.overflow += 1;
                    }
                    i += 1;
                }
                b'}' => {
                    self.flush();
                    self.skip = 0;
                    i += 1;
                    if self.overflow > 0 {
                        self.overflow -= 1;
                        continue;
                    }
                    match self.stack.pop() {
                        Some(group) => self.group = group,
                        None => break,
                    }
                    if self.stack.is_empty() {
                        break; // the document's outer group is closed; anything after is not text
                    }
                }
                b'\\' => i = self.control(s, i + 1),
                b'\r' | b'\n' | b'\0' => i += 1,
                _ => {
                    let c = s
                        .get(i..)
                        .and_then(|t| t.chars().next())
                        .unwrap_or('\u{fffd}');
                    i += c.len_utf8();
                    self.flush();
                    if self.skip > 0 {
                        self.skip -= 1;
                    } else if self.group.dest == Dest::Body {
                        self.push(c.encode_utf8(&mut [0; 4]));
                    }
                }
            }
        }
        self.flush();
        self.end_paragraph();
        self.paragraphs.join("\n\n")
    }

    /// Reads the control word or symbol whose backslash is just before `i`; returns where
    /// reading goes on.
    fn control(&mut self, s: &str, mut i: usize) -> usize {
        let b = s.as_bytes();
        let Some(&c) = b.get(i) else { return i };
        if c == b'\'' {
            let byte = b
                .get(i + 1..i + 3)
                .and_then(|h| Some(hex(h[0])? * 16 + hex(h[1])?));
            let Some(byte) = byte else { return i + 1 };
            if self.skip > 0 {
                self.skip -= 1;
            } else if self.group.dest == Dest::Body {
                self.bytes.push(byte);
            }
            return i + 3;
        }
        self.flush();
        if !c.is_ascii_alphabetic() {
            let len = s
                .get(i..)
                .and_then(|t| t.chars().next())
                .map_or(1, char::len_utf8);
            self.symbol(c);
            return i + len;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
        }
        // ASCII letters only, so both ends are character boundaries.
        let word = &s[start..i];
        let negative = b.get(i) == Some(&b'-') && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if negative {
            i += 1;
        }
        let mut param: Option<i64> = None;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            let value = param.unwrap_or(0) * 10 + i64::from(d - b'0');
            param = Some(value.min(i64::from(i32::MAX)));
            i += 1;
        }
        let param = param.map(|v| i32::try_from(if negative { -v } else { v }).unwrap_or(0));
        if b.get(i) == Some(&b' ') {
            i += 1; // the delimiter belongs to the control word
        }
        if word == "bin" {
            // Raw binary data follows; it may contain braces and backslashes.
            let n = param.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
            let mut end = i.saturating_add(n).min(s.len());
            while !s.is_char_boundary(end) {
                end += 1;
            }
            return end;
        }
        self.word(word, param);
        i
    }

    fn symbol(&mut self, c: u8) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if c == b'*' {
            self.group.dest = Dest::Skip; // an optional destination this reader need not know
        } else if self.group.dest == Dest::Body {
            match c {
                b'\\' => self.push("\\"),
                b'{' => self.push("{"),
                b'}' => self.push("}"),
                b'~' => self.push("\u{a0}"),
                b'_' => self.push("-"),
                b'\n' | b'\r' => self.par(),
                _ => {} // `\-` optional hyphen, `\|`, `\:` and unknown symbols
            }
        }
    }

    fn word(&mut self, word: &str, param: Option<i32>) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        let dest = self.group.dest;
        if dest == Dest::Skip {
            return;
        }
        if word == "fonttbl" {
            self.group.dest = Dest::Fonts;
            return;
        }
        if SKIPPED.split(' ').any(|w| w == word) {
            self.group.dest = Dest::Skip;
            return;
        }
        if dest == Dest::Fonts {
            let encoding = match (word, param) {
                ("f", Some(n)) => {
                    self.font_def = n;
                    None
                }
                ("fcharset", Some(n)) => charset(n),
                ("cpg", Some(n)) => code_page(n),
                _ => None,
            };
            if let Some(encoding) = encoding {
                self.font_encodings.insert(self.font_def, encoding);
            }
            return;
        }
        match (word, param) {
            ("par" | "sect" | "page", _) => self.par(),
            ("line", _) => self.push("\n"),
            ("tab", _) => self.push("\t"),
            ("emdash", _) => self.push("\u{2014}"),
            ("endash", _) => self.push("\u{2013}"),
            ("bullet", _) => self.push("\u{2022}"),
            ("lquote", _) => self.push("\u{2018}"),
            ("rquote", _) => self.push("\u{2019}"),
            ("ldblquote", _) => self.push("\u{201c}"),
            ("rdblquote", _) => self.push("\u{201d}"),
            ("enspace" | "emspace" | "qmspace", _) => self.push(" "),
            ("cell" | "nestcell", _) => {
                self.cells += 1;
                self.row_done = false;
            }
            ("row" | "nestrow", _) => {
                self.cells = 0;
                self.row_done = true;
                if !self.current.is_empty() && !self.current.ends_with('\n') {
                    self.current.push('\n');
                }
            }
            ("intbl", _) => {
                self.intbl = true;
                self.uses_intbl = true;
            }
            ("pard", _) => self.intbl = false,
            ("u", Some(n)) => {
                self.unicode(n);
                self.skip = self.group.uc;
            }
            ("uc", _) => {
                self.group.uc = usize::try_from(param.unwrap_or(1).clamp(0, 255)).unwrap_or(1)
            }
            ("ansicpg", Some(n)) => self.code_page = code_page(n).or(self.code_page),
            ("mac", _) => self.code_page = code_page(10000),
            ("deff", Some(n)) => self.default_font = n,
            ("f", _) => self.group.font = param,
            ("plain", _) => self.group.font = None,
            ("listtext" | "pntext", _) => {
                // The bullet or number a reader without list support would show: a "- " instead.
                self.group.dest = Dest::Skip;
                if !self.item {
                    self.push("- ");
                    self.item = true;
                }
            }
            _ => {}
        }
    }

    /// Writes the character `\uN` names; a UTF-16 surrogate pair arrives as two `\u`.
    fn unicode(&mut self, n: i32) {
        let v = if n < 0 {
            i64::from(n) + 65_536
        } else {
            i64::from(n)
        };
        let v = u32::try_from(v).unwrap_or(0xfffd);
        let c = match v {
            0xd800..=0xdbff => {
                self.high_surrogate = Some(v);
                return;
            }
            0xdc00..=0xdfff => self
                .high_surrogate
                .and_then(|h| char::from_u32(0x10000 + ((h - 0xd800) << 10) + (v - 0xdc00))),
            _ => char::from_u32(v),
        };
        self.high_surrogate = None;
        if let Some(c) = c {
            self.push(c.encode_utf8(&mut [0; 4]));
        }
    }

    /// Decodes the pending `\'hh` bytes with the current font's character set.
    fn flush(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.bytes);
        let font = self.group.font.unwrap_or(self.default_font);
        let encoding = self
            .font_encodings
            .get(&font)
            .copied()
            .or(self.code_page)
            .unwrap_or(WINDOWS_1252);
        let (text, _had_errors) = encoding.decode_without_bom_handling(&bytes);
        self.push(&text);
    }

    /// Appends body text, after any table cell separators it is owed.
    fn push(&mut self, text: &str) {
        if self.row_done && self.uses_intbl && !self.intbl {
            self.end_paragraph(); // the table has ended
        }
        self.row_done = false;
        for _ in 0..self.cells {
            self.current.push_str(" | ");
        }
        self.cells = 0;
        self.current.push_str(text);
    }

    /// `\par`: the end of a paragraph, or of a paragraph inside a table cell (a space).
    fn par(&mut self) {
        if !self.intbl {
            self.end_paragraph();
        } else if !self.current.is_empty() && !self.current.ends_with([' ', '\n']) {
            self.current.push(' ');
        }
    }

    fn end_paragraph(&mut self) {
        let text = tidy(&self.current);
        self.current.clear();
        self.cells = 0;
        self.row_done = false;
        let item = std::mem::take(&mut self.item);
        if text.is_empty() {
            return;
        }
        // Consecutive list items make one paragraph.
        let joins = item && self.last_item;
        self.last_item = item;
        if joins {
            if let Some(last) = self.paragraphs.last_mut() {
                last.push('\n');
                last.push_str(&text);
                return;
            }
        }
        self.paragraphs.push(text);
    }
}

/// `text` with its lines trimmed, runs of blank lines collapsed to one and blank lines at either
/// end removed.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in text.split('\n').map(str::trim) {
        if line.is_empty() {
            blank = true;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank = false;
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The encoding of a Windows code page number (`\ansicpgN`, `\cpgN`).
fn code_page(n: i32) -> Option<&'static Encoding> {
    let label = match n {
        874 | 1250..=1258 => format!("windows-{n}"),
        866 => "ibm866".into(),
        932 => "shift_jis".into(),
        936 => "gbk".into(),
        949 => "euc-kr".into(),
        950 => "big5".into(),
        10000 => "macintosh".into(),
        20866 => "koi8-r".into(),
        21866 => "koi8-u".into(),
        28591..=28606 => format!("iso-8859-{}", n - 28590),
        65001 => "utf-8".into(),
        _ => return None,
    };
    Encoding::for_label(label.as_bytes())
}

/// Font character sets (`\fcharsetN`) and their Windows code pages.
const CHARSETS: &str = "77:10000 128:932 129:949 134:936 136:950 161:1253 162:1254 163:1258 \
    177:1255 178:1256 186:1257 204:1251 222:874 238:1250";

/// The encoding of a font character set; `None` for the document's code page.
fn charset(n: i32) -> Option<&'static Encoding> {
    let page = CHARSETS.split(' ').find_map(|pair| {
        let (set, page) = pair.split_once(':')?;
        (set.parse::<i32>().ok()? == n).then(|| page.parse::<i32>().ok())?
    })?;
    code_page(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(rtf: &str) -> String {
        extract(Path::new("t.rtf"), rtf).unwrap()
    }

    #[test]
    fn paragraphs_and_formatting() {
        let doc = r"{\rtf1\ansi\deff0{\fonttbl{\f0 Times New Roman;}}\f0\fs24 Hello
 world.\par This is {\b bold} and \i italic\i0  text.\par\par}";
        assert_eq!(text(doc), "Hello world.\n\nThis is bold and italic text.");
    }

    #[test]
    fn code_pages_and_font_charsets() {
        assert_eq!(
            text(r"{\rtf1\ansi\ansicpg1252 caf\'e9 \'93q\'94}"),
            "café \u{201c}q\u{201d}"
        );
        assert_eq!(
            text(r"{\rtf1\ansi\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2}"),
            "Привет"
        );
        assert_eq!(text(r"{\rtf1\ansi\ansicpg932 \'82\'a0}"), "あ");
        let doc = r"{\rtf1\ansi\deff0{\fonttbl{\f0\fswiss Arial;}{\f1\fnil\fcharset204 Arial CYR;}}
{\f1 \'cf\'f0\'e8\'e2\'e5\'f2} caf\'e9}";
        assert_eq!(text(doc), "Привет café");
    }

    #[test]
    fn unicode_skips_fallbacks() {
        let doc = r"{\rtf1\ansi\uc1 Price: \u8364?5, {\uc2\u8364 EU}\u-223? \u-10179?\u-8704?\u8220\'93x\u8221\'94}";
        assert_eq!(text(doc), "Price: €5, €\u{ff21} 😀\u{201c}x\u{201d}");
    }

    #[test]
    fn skipped_destinations() {
        let doc = r#"{\rtf1\ansi{\fonttbl{\f0 Arial;}}{\colortbl;\red255\green0\blue0;}{\*\generator Riched20 10.0;}{\stylesheet{\s0 Normal;}}{\info{\title Secret}{\author Me}}{\*\unknown hidden}{\header Page head}{\footnote note}Body {\field{\*\fldinst HYPERLINK "http://x"}{\fldrslt link}}.{\pict\bin4 }{}\}\par}"#;
        assert_eq!(text(doc), "Body link.");
    }

    #[test]
    fn symbols_and_specials() {
        let doc = r"{\rtf1 a\~b\-c\_d \\ \{x\} \emdash\endash\bullet\lquote q\rquote\ldblquote w\rdblquote\tab t\line n}";
        assert_eq!(
            text(doc),
            "a\u{a0}bc-d \\ {x} \u{2014}\u{2013}\u{2022}\u{2018}q\u{2019}\u{201c}w\u{201d}\tt\nn"
        );
    }

    #[test]
    fn tables_and_lists() {
        let doc = r"{\rtf1\ansi Intro\par\trowd\cellx1000\cellx2000 \intbl Name\cell Age\cell\row
\intbl Ann\cell 31\cell\row\pard After\par}";
        assert_eq!(text(doc), "Intro\n\nName | Age\nAnn | 31\n\nAfter");
        assert_eq!(
            text(r"{\rtf1 a\cell b\cell\row c\cell d\cell\row\par}"),
            "a | b\nc | d"
        );
        let list =
            r"{\rtf1 Intro\par{\listtext\'b7\tab}One\par{\listtext\'b7\tab}Two\par After\par}";
        assert_eq!(text(list), "Intro\n\n- One\n- Two\n\nAfter");
    }

    #[test]
    fn not_rtf_is_refused() {
        let err = extract(Path::new("notes.rtf"), "Hello").unwrap_err();
        assert!(err.to_string().contains("is not an RTF document"), "{err}");
        assert_eq!(text("\u{feff}  {\\rtf1 ok}"), "ok");
    }

    #[test]
    fn garbage_never_panics() {
        let deep = format!("{{\\rtf1 {}x", "{".repeat(50_000));
        let cases = [
            "{\\rtf",
            "{\\rtf1\\",
            "{\\rtf1 \\'",
            "{\\rtf1 \\'zz\\'e",
            "{\\rtf1 \\u",
            "{\\rtf1 \\u-",
            "{\\rtf1 \\u-99999999999999999999 x",
            "{\\rtf1 \\u99999999?",
            "{\\rtf1 \\bin99999999999 a",
            "{\\rtf1 \\bin4 é€x}",
            "{\\rtf1 \\bin-3 x}",
            "{\\rtf1 }}}}} tail",
            "{\\rtf1 \\uc-5\\u8364 x",
            "{\\rtf1 \\uc99999999999\\u1 x",
            "{\\rtf1\\ansicpg-1 \\'ff}",
            "{\\rtf1 é\\é\\'é}",
            "{\\rtf1 \\*",
            "{\\rtf1 \\cell\\row\\row\\intbl\\par\\cell}",
            "{\\rtf1{\\fonttbl\\f-5\\fcharset-1\\cpg932}\\f-5\\'82}",
            "{\\rtf1 \\u-10179\\u-10179?\\u-8704",
            deep.as_str(),
        ];
        for case in cases {
            let _ = text(case);
        }
        assert_eq!(text(r"{\rtf1 Hello {\b world"), "Hello world");
        assert_eq!(text(&deep), "x");
    }
}
