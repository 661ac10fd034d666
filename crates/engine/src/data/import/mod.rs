//! Importers: one module per file format, each turning a file into text plus where each part came
//! from (page, section, line). Nothing here modifies the user's files. Every failure is a
//! [`Error::File`] naming the file and saying what to do, so one bad file never stops the others.

pub mod encoding;
pub mod epub;
pub mod html;
mod html_depth;
pub mod office;
pub mod pdf;
pub mod rtf;
pub mod structured;
pub mod walk;
pub mod zipsafe;

use std::path::Path;

use crate::{Error, Result};

/// A part of a document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Human-readable provenance inside the file: "page 3", "chapter1.xhtml", "line 12", "" for
    /// the whole file.
    pub location: String,
    pub text: String,
}

impl Section {
    pub fn whole(text: impl Into<String>) -> Self {
        Section {
            location: String::new(),
            text: text.into(),
        }
    }
}

/// One supervised example: the model learns to write `completion` after `prompt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub location: String,
    pub prompt: String,
    pub completion: String,
    /// For a chat transcript: the conversation up to and including this reply, so that a model
    /// with a chat template learns it in its own format (`prompt` is the plain transcript).
    pub messages: Option<Vec<crate::chat::Message>>,
}

/// What a file yielded: running text, supervised examples, or (rarely) both, plus warnings about
/// parts that were skipped (bad JSONL lines, unreadable chapters) while the rest was kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    pub sections: Vec<Section>,
    pub examples: Vec<Example>,
    pub warnings: Vec<String>,
}

/// Limits that keep hostile or huge files from exhausting memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes a zip-based file (.docx, .odt, .epub) may decompress to.
    pub max_unpacked_bytes: u64,
    /// Most bytes read whole into memory for formats that cannot be streamed (PDF, office files).
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: 512 << 20,
            max_file_bytes: 512 << 20,
        }
    }
}

/// Options that change what an importer returns.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub limits: Limits,
    /// For .csv/.tsv: the (prompt, completion) columns that make each row an example. Without
    /// them a table is read as text, one row per paragraph.
    pub pair_columns: Option<(String, String)>,
}

/// The formats Tunesmith reads, by lower-case extension.
pub const EXTENSIONS: &[&str] = &[
    "txt", "text", "log", "md", "markdown", "html", "htm", "xhtml", "pdf", "docx", "odt", "epub",
    "rtf", "csv", "tsv", "json", "jsonl",
];

/// The lower-case extension of `path`, or "".
pub fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// Whether `path` has an extension Tunesmith reads.
pub fn is_supported(path: &Path) -> bool {
    EXTENSIONS.contains(&extension(path).as_str())
}

/// A plain name for a format, for messages and the report.
pub fn kind(ext: &str) -> &'static str {
    match ext {
        "txt" | "text" | "log" => "text",
        "md" | "markdown" => "markdown",
        "html" | "htm" | "xhtml" => "html",
        "pdf" => "pdf",
        "docx" => "docx",
        "odt" => "odt",
        "epub" => "epub",
        "rtf" => "rtf",
        "csv" | "tsv" => "table",
        "json" | "jsonl" => "json",
        _ => "unknown",
    }
}

/// Reads and converts one file. Large plain-text files are better read with
/// [`encoding::read_text_streamed`]; this reads the whole file.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported> {
    let ext = extension(path);
    if !is_supported(path) {
        return Err(Error::file(
            path,
            format!(
                "has a format Tunesmith does not read (`.{}`); save it as text, PDF, Word or HTML",
                if ext.is_empty() { "(none)" } else { &ext }
            ),
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(Error::file(path, "is empty; add text or remove it"));
    }
    let binary = matches!(ext.as_str(), "pdf" | "docx" | "odt" | "epub");
    if binary && meta.len() > opts.limits.max_file_bytes {
        return Err(Error::file(
            path,
            format!(
                "is too large to read ({} MB, the limit is {} MB); split it into smaller files",
                meta.len() >> 20,
                opts.limits.max_file_bytes >> 20
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut imported = match ext.as_str() {
        "pdf" => text_only(pdf::extract(path, &bytes)?),
        "docx" => text_only(office::docx(path, &bytes, &opts.limits)?),
        "odt" => text_only(office::odt(path, &bytes, &opts.limits)?),
        "epub" => text_only(epub::extract(path, &bytes, &opts.limits)?),
        _ => {
            let text = encoding::decode(path, &bytes)?;
            match ext.as_str() {
                "html" | "htm" | "xhtml" => {
                    text_only(vec![Section::whole(html::visible_text(&text))])
                }
                "rtf" => text_only(vec![Section::whole(rtf::extract(path, &text)?)]),
                "csv" | "tsv" => {
                    structured::table(path, &text, ext == "tsv", opts.pair_columns.as_ref())?
                }
                "json" => structured::json(path, &text)?,
                "jsonl" => structured::jsonl(path, &text)?,
                _ => text_only(vec![Section::whole(text)]),
            }
        }
    };
    imported.sections.retain(|s| !s.text.trim().is_empty());
    if imported.sections.is_empty() && imported.examples.is_empty() {
        let why = match ext.as_str() {
            "pdf" => "has no text layer (it looks like a scan or images only); run it through OCR software first, then add the result",
            _ => "holds no text (it is empty or only whitespace); add text or remove it",
        };
        return Err(Error::file(path, why));
    }
    Ok(imported)
}

fn text_only(sections: Vec<Section>) -> Imported {
    Imported {
        sections,
        ..Default::default()
    }
}
