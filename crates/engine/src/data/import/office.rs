//! Word (.docx) and OpenDocument (.odt) text: the body's paragraphs, headings, lists and tables,
//! read from the main XML part under the shared conventions (a blank line between paragraphs; a
//! table is one paragraph, one line per row, cells joined by " | "). Deleted revisions, field
//! codes, comments and footnotes are left out: they are not the body a reader sees.
//!
//! Both formats are walked by one collector; a `Dialect` says what each element means.

use std::path::Path;

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use super::zipsafe::Zip;
use super::{Limits, Section};
use crate::{Error, Result};

/// The text of the body of a Word document, as one section.
pub fn docx(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Vec<Section>> {
    // Password-protected .docx files, and old .doc files renamed, are OLE containers, not zips.
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(Error::file(
            path,
            "is password-protected or an old-style Word document (.doc) renamed to .docx; open it in Word, remove any password and save it as a Word Document (.docx)",
        ));
    }
    main_part(path, bytes, limits, &WORD, "word/document.xml")
}

/// The text of the body of an OpenDocument text file, as one section.
pub fn odt(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Vec<Section>> {
    main_part(path, bytes, limits, &ODF, "content.xml")
}

fn main_part(
    path: &Path,
    bytes: &[u8],
    limits: &Limits,
    d: &Dialect,
    part: &str,
) -> Result<Vec<Section>> {
    let invalid = |why: String| {
        Error::file(
            path,
            format!(
                "is not a valid {} file ({why}); open it and save it again",
                d.what
            ),
        )
    };
    let mut zip = Zip::open(path, bytes, d.what, limits)?;
    let xml = zip.read_string(part)?.ok_or_else(|| {
        invalid("the part holding its text is missing; it may be damaged or another kind of file renamed".into())
    })?;
    let text = extract(&xml, d).map_err(|e| invalid(format!("its text could not be read: {e}")))?;
    Ok(vec![Section::whole(text)])
}

/// What an element means for the text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Paragraph,
    Table,
    Row,
    Cell,
    /// Word's `w:t`: the only place Word keeps visible text.
    Chars,
    /// Stands for fixed text: a tab, a line break.
    Insert(&'static str),
    /// ODF's `text:s`: `text:c` spaces (one when absent).
    Spaces,
    /// Nothing inside is body text.
    Skip,
    Other,
}

struct Dialect {
    what: &'static str,
    role: fn(&str) -> Role,
    /// ODF counts any text inside a paragraph and collapses its whitespace (the file spells
    /// repeated spaces with `text:s`); Word keeps text only in `w:t`, exactly as written.
    loose_text: bool,
}

const WORD: Dialect = Dialect {
    what: "Word",
    role: word_role,
    loose_text: false,
};

const ODF: Dialect = Dialect {
    what: "OpenDocument",
    role: odf_role,
    loose_text: true,
};

fn word_role(local: &str) -> Role {
    match local {
        "p" => Role::Paragraph,
        "tbl" => Role::Table,
        "tr" => Role::Row,
        "tc" => Role::Cell,
        "t" => Role::Chars,
        "tab" => Role::Insert("\t"),
        "br" | "cr" => Role::Insert("\n"),
        "noBreakHyphen" => Role::Insert("-"),
        // Properties hold tab stops that are also named `tab`; `Fallback` repeats a text box
        // already read in its `Choice`; `moveFrom` is the old place of text that was moved.
        "pPr" | "rPr" | "Fallback" | "moveFrom" => Role::Skip,
        _ => Role::Other,
    }
}

fn odf_role(local: &str) -> Role {
    match local {
        "p" | "h" => Role::Paragraph,
        "table" => Role::Table,
        "table-row" => Role::Row,
        "table-cell" => Role::Cell,
        "tab" => Role::Insert("\t"),
        "line-break" => Role::Insert("\n"),
        "s" => Role::Spaces,
        // Footnotes, comments and deleted text; a covered cell is hidden under a merged one;
        // images may carry a description and base64 data inside a paragraph.
        "note" | "annotation" | "tracked-changes" | "covered-table-cell" | "desc"
        | "binary-data" => Role::Skip,
        _ => Role::Other,
    }
}

/// More spaces than this from one `text:s` is a hostile file, not layout.
const MAX_SPACES: usize = 1000;

fn extract(xml: &str, d: &Dialect) -> Result<String, quick_xml::Error> {
    let mut reader = Reader::from_str(xml.strip_prefix('\u{feff}').unwrap_or(xml));
    let mut c = Collector::default();
    loop {
        match reader.read_event()? {
            Event::Start(e) => c.open(&e, d, false),
            Event::Empty(e) => c.open(&e, d, true),
            Event::End(e) => c.close((d.role)(e.local_name().as_ref())),
            Event::Text(t) => c.text(&t.xml10_content(), d),
            Event::CData(t) => c.text(&t.xml10_content(), d),
            Event::GeneralRef(r) => c.text(&entity(&r)?, d),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(c.done.join("\n\n"))
}

/// `&amp;`, `&#233;` and the other predefined references; unknown names read as nothing.
fn entity(r: &BytesRef) -> Result<String, quick_xml::Error> {
    Ok(match r.resolve_char_ref()? {
        Some(ch) => ch.to_string(),
        None => resolve_xml_entity(r).unwrap_or("").to_string(),
    })
}

/// A table being read: finished rows, the current row's cells, the current cell's paragraphs.
#[derive(Default)]
struct Table {
    rows: Vec<String>,
    cells: Vec<String>,
    cell: Vec<String>,
}

#[derive(Default)]
struct Collector {
    /// Finished top-level paragraphs.
    done: Vec<String>,
    /// Paragraphs being read; more than one when a text box sits inside a paragraph.
    open: Vec<String>,
    /// Tables being read, innermost last.
    tables: Vec<Table>,
    /// Depth inside a skipped element (0: not skipping).
    skip: usize,
    /// Depth inside Word's `w:t`.
    chars: usize,
    /// The last character written was a collapsed ODF space.
    after_space: bool,
}

impl Collector {
    fn open(&mut self, e: &BytesStart, d: &Dialect, empty: bool) {
        let role = (d.role)(e.local_name().as_ref());
        if self.skip > 0 || role == Role::Skip {
            if !empty {
                self.skip += 1;
            }
            return;
        }
        match role {
            Role::Paragraph => {
                self.open.push(String::new());
                self.after_space = false;
            }
            Role::Table => self.tables.push(Table::default()),
            Role::Chars => self.chars += 1,
            Role::Insert(s) => self.write(s),
            Role::Spaces => {
                let n = attr(e, "c")
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(1);
                self.write(&" ".repeat(n.min(MAX_SPACES)));
            }
            Role::Row | Role::Cell | Role::Skip | Role::Other => {}
        }
        if empty {
            self.close_role(role);
        }
    }

    fn close(&mut self, role: Role) {
        if self.skip > 0 {
            self.skip -= 1;
        } else {
            self.close_role(role);
        }
    }

    fn close_role(&mut self, role: Role) {
        match role {
            Role::Paragraph => {
                if let Some(p) = self.open.pop() {
                    self.finish(p);
                }
            }
            Role::Chars => self.chars = self.chars.saturating_sub(1),
            Role::Cell => {
                if let Some(t) = self.tables.last_mut() {
                    // A row is one line, so a cell's own line breaks become spaces.
                    let cell = std::mem::take(&mut t.cell).join(" ");
                    t.cells.push(cell.replace('\n', " "));
                }
            }
            Role::Row => {
                if let Some(t) = self.tables.last_mut() {
                    let cells = std::mem::take(&mut t.cells);
                    if cells.iter().any(|c| !c.trim().is_empty()) {
                        t.rows.push(cells.join(" | ").trim_end().to_string());
                    }
                }
            }
            Role::Table => {
                if let Some(t) = self.tables.pop() {
                    self.finish(t.rows.join("\n"));
                }
            }
            _ => {}
        }
    }

    /// A finished paragraph goes to the innermost table cell, or to the output.
    fn finish(&mut self, p: String) {
        let p = p.trim_end().trim_start_matches('\n');
        if p.trim().is_empty() {
            return;
        }
        match self.tables.last_mut() {
            Some(t) => t.cell.push(p.to_string()),
            None => self.done.push(p.to_string()),
        }
    }

    /// Fixed text (tabs, breaks, `text:s` spaces): never collapsed.
    fn write(&mut self, s: &str) {
        if let Some(p) = self.open.last_mut() {
            p.push_str(s);
            self.after_space = false;
        }
    }

    /// Character data from the file.
    fn text(&mut self, s: &str, d: &Dialect) {
        if self.skip > 0 || (!d.loose_text && self.chars == 0) {
            return;
        }
        let Some(p) = self.open.last_mut() else {
            return;
        };
        if !d.loose_text {
            p.push_str(s);
            return;
        }
        for ch in s.chars() {
            if matches!(ch, ' ' | '\t' | '\n' | '\r') {
                // ODF: a run of whitespace is one space, and none at the start of a paragraph.
                if !p.is_empty() && !self.after_space {
                    p.push(' ');
                    self.after_space = true;
                }
            } else {
                p.push(ch);
                self.after_space = false;
            }
        }
    }
}

/// The unescaped value of the attribute whose local name is `local`.
fn attr(e: &BytesStart, local: &str) -> Option<String> {
    let a = e
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)?;
    Some(match quick_xml::escape::unescape(&a.value) {
        Ok(v) => v.into_owned(),
        Err(_) => a.value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::import::zipsafe::build;

    fn word(body: &str) -> Vec<u8> {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        build(&[("word/document.xml", xml.as_str())])
    }

    fn open_document(body: &str) -> Vec<u8> {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
        );
        build(&[
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", xml.as_str()),
        ])
    }

    fn docx_text(bytes: &[u8]) -> String {
        let sections = docx(Path::new("a.docx"), bytes, &Limits::default()).unwrap();
        assert_eq!(sections.len(), 1);
        sections[0].text.clone()
    }

    fn docx_error(bytes: &[u8]) -> String {
        docx(Path::new("a.docx"), bytes, &Limits::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn word_paragraphs_heading_breaks_tabs_entities_and_revisions() {
        let body = r#"
<w:p><w:pPr><w:pStyle w:val="Heading1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Title</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Fish </w:t></w:r><w:r><w:t>&amp; chips</w:t></w:r></w:p>
<w:p/>
<w:p><w:r><w:t>one</w:t><w:br/><w:t>two</w:t><w:tab/><w:t>three</w:t></w:r></w:p>
<w:p><w:r><w:t>kept</w:t></w:r><w:del><w:r><w:delText>gone</w:delText></w:r></w:del><w:r><w:instrText> PAGE </w:instrText></w:r></w:p>"#;
        assert_eq!(
            docx_text(&word(body)),
            "Title\n\nFish & chips\n\none\ntwo\tthree\n\nkept"
        );
    }

    #[test]
    fn a_word_table_is_one_paragraph_of_rows() {
        let cell = |t: &str| format!("<w:tc><w:p><w:r><w:t>{t}</w:t></w:r></w:p></w:tc>");
        let body = format!(
            "{}<w:tbl><w:tr><w:tc>{}{}</w:tc>{}</w:tr><w:tr>{}<w:tc><w:p/></w:tc></w:tr></w:tbl>{}",
            "<w:p><w:r><w:t>Before</w:t></w:r></w:p>",
            "<w:p><w:r><w:t>a</w:t></w:r></w:p>",
            "<w:p><w:r><w:t>b</w:t></w:r></w:p>",
            cell("c"),
            cell("d"),
            "<w:p><w:r><w:t>After</w:t></w:r></w:p>",
        );
        assert_eq!(docx_text(&word(&body)), "Before\n\na b | c\nd |\n\nAfter");
    }

    #[test]
    fn broken_word_files_are_explained() {
        let no_body = build(&[("word/styles.xml", "<x/>")]);
        assert!(docx_error(&no_body).contains("is not a valid Word file"));
        let corrupt = docx_error(b"PK\x03\x04 this is not really a zip");
        assert!(corrupt.contains("is not a valid Word file"), "{corrupt}");
        let bad_xml = docx_error(&word("<w:p><w:r><w:t>x</w:r></w:p>"));
        assert!(bad_xml.contains("its text could not be read"), "{bad_xml}");
        let ole = docx_error(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
        assert!(ole.contains("password-protected"), "{ole}");
    }

    #[test]
    fn open_document_text() {
        let body = r#"
<text:tracked-changes><text:changed-region text:id="c1"><text:deletion><text:p>gone</text:p></text:deletion></text:changed-region></text:tracked-changes>
<text:h text:outline-level="1">Title</text:h>
<text:p>Fish <text:span>&amp; chips</text:span></text:p>
<text:p/>
<text:p>one<text:line-break/>two<text:tab/>three<text:s text:c="2"/>four</text:p>
<text:list><text:list-item><text:p>  spread
    out  </text:p></text:list-item></text:list>
<text:p>note<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation><text:note-body><text:p>hidden</text:p></text:note-body></text:note></text:p>
<table:table><table:table-row><table:table-cell><text:p>a</text:p></table:table-cell><table:table-cell><text:p>c</text:p></table:table-cell></table:table-row></table:table>"#;
        let sections = odt(Path::new("a.odt"), &open_document(body), &Limits::default()).unwrap();
        assert_eq!(
            sections[0].text,
            "Title\n\nFish & chips\n\none\ntwo\tthree  four\n\nspread out\n\nnote\n\na | c"
        );
    }

    #[test]
    fn broken_open_documents_are_explained() {
        let limits = Limits::default();
        let no_content = build(&[("mimetype", "application/vnd.oasis.opendocument.text")]);
        let msg = odt(Path::new("a.odt"), &no_content, &limits)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not a valid OpenDocument file"), "{msg}");
        let bad = open_document("<text:p>x</text:span>");
        let msg = odt(Path::new("a.odt"), &bad, &limits)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("its text could not be read"), "{msg}");
    }
}
