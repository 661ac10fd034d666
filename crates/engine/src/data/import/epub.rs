//! EPUB e-books: the chapters in reading order. `META-INF/container.xml` names the package file
//! (OPF); its manifest maps ids to files and its spine lists ids in reading order. Each XHTML
//! chapter becomes one section, located by its file name within the book.

use std::collections::HashMap;
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::zipsafe::Zip;
use super::{html, Limits, Section};
use crate::{Error, Result};

/// One section per chapter with visible text, in reading order.
pub fn extract(path: &Path, bytes: &[u8], limits: &Limits) -> Result<Vec<Section>> {
    let invalid = |why: String| {
        Error::file(
            path,
            format!("is not a valid EPUB e-book ({why}); open it in an e-book program such as Calibre and save it again as EPUB"),
        )
    };
    let unreadable =
        |e: quick_xml::Error| invalid(format!("its list of chapters could not be read: {e}"));
    let mut zip = Zip::open(path, bytes, "EPUB", limits)?;

    let container = zip.read_string("META-INF/container.xml")?.ok_or_else(|| {
        invalid("META-INF/container.xml, which says where its contents are, is missing".into())
    })?;
    let opf_path = rootfile(&container)
        .map_err(unreadable)?
        .ok_or_else(|| invalid("META-INF/container.xml names no package file".into()))?;
    let opf = zip
        .read_string(&opf_path)?
        .ok_or_else(|| invalid(format!("its package file {opf_path} is missing")))?;
    let chapters = spine_chapters(&opf, &opf_path).map_err(unreadable)?;

    if let Some(xml) = zip.read_string("META-INF/encryption.xml")? {
        let locked = encrypted(&xml);
        // Publishers often obfuscate fonts without any DRM; only encrypted chapters stop us.
        if chapters.iter().any(|c| locked.contains(&c.entry))
            || locked.iter().any(|u| is_document("", u))
        {
            return Err(Error::file(
                path,
                "is protected by DRM (its chapters are encrypted); Tunesmith can only read unprotected e-books",
            ));
        }
    }

    let mut sections = Vec::new();
    for chapter in chapters {
        let doc = match zip.read_string(&chapter.entry)? {
            None if chapter.raw_entry != chapter.entry => zip.read_string(&chapter.raw_entry)?,
            found => found,
        };
        // A chapter the book lists but does not contain is left out; the rest still count.
        let Some(doc) = doc else { continue };
        let text = html::visible_text(&doc);
        if !text.trim().is_empty() {
            sections.push(Section {
                location: chapter.href,
                text,
            });
        }
    }
    Ok(sections)
}

/// A spine document: its name as the book gives it, for the report, and its zip entry.
struct Chapter {
    href: String,
    /// Percent-decoded, as zips store names; `raw_entry` as written, for books that differ.
    entry: String,
    raw_entry: String,
}

/// The package file named by container.xml.
fn rootfile(container: &str) -> Result<Option<String>, quick_xml::Error> {
    let mut found = None;
    each_element(container, |name, e| {
        if name == "rootfile" && found.is_none() {
            found = attr(e, "full-path");
        }
    })?;
    Ok(found)
}

/// The XHTML documents of the spine, in reading order, resolved against the OPF's folder.
fn spine_chapters(opf: &str, opf_path: &str) -> Result<Vec<Chapter>, quick_xml::Error> {
    // id -> (href, media type)
    let mut manifest = HashMap::new();
    let mut spine = Vec::new();
    each_element(opf, |name, e| match name {
        "item" => {
            if let (Some(id), Some(href)) = (attr(e, "id"), attr(e, "href")) {
                manifest.insert(id, (href, attr(e, "media-type").unwrap_or_default()));
            }
        }
        "itemref" => spine.extend(attr(e, "idref")),
        _ => {}
    })?;
    let base = opf_path.rfind('/').map_or("", |i| &opf_path[..=i]);
    Ok(spine
        .iter()
        .filter_map(|id| manifest.get(id))
        .filter(|(href, media)| is_document(media, href))
        .map(|(href, _)| {
            let raw_entry = resolve(base, href);
            Chapter {
                href: percent_decode(href.split('#').next().unwrap_or("")),
                entry: percent_decode(&raw_entry),
                raw_entry,
            }
        })
        .collect())
}

/// The zip entries listed as encrypted. An unreadable list is no proof of DRM, so it counts as
/// empty.
fn encrypted(xml: &str) -> Vec<String> {
    let mut locked = Vec::new();
    let _ = each_element(xml, |name, e| {
        if name == "CipherReference" {
            // URIs here are relative to the root of the book.
            locked.extend(attr(e, "URI").map(|u| percent_decode(&resolve("", &u))));
        }
    });
    locked
}

fn is_document(media_type: &str, href: &str) -> bool {
    let href = href.split('#').next().unwrap_or("").to_ascii_lowercase();
    matches!(media_type, "application/xhtml+xml" | "text/html")
        || [".xhtml", ".html", ".htm"]
            .iter()
            .any(|ext| href.ends_with(ext))
}

/// `href` (relative to `base`, a folder ending in '/', or to the root when it starts with '/')
/// as a zip entry name, with any `#fragment` dropped and `.`/`..` applied.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    let joined = match href.strip_prefix('/') {
        Some(rooted) => rooted.to_string(),
        None => format!("{base}{href}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// "%20" and friends back to the bytes they stand for; a stray '%' is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s
            .get(i + 1..i + 3)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        match (bytes[i], hex) {
            (b'%', Some(h)) => {
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'%'));
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Calls `f` with the local name and the tag of every element of `xml`.
fn each_element(xml: &str, mut f: impl FnMut(&str, &BytesStart)) -> Result<(), quick_xml::Error> {
    let mut reader = Reader::from_str(xml.strip_prefix('\u{feff}').unwrap_or(xml));
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) => f(e.local_name().as_ref(), &e),
            Event::Eof => return Ok(()),
            _ => {}
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

    const CONTAINER: &str = r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;

    // The manifest lists chapter 1 first, the spine reads chapter 2 first; one listed chapter
    // is missing from the zip and a stylesheet sits in the spine.
    const OPF: &str = r#"<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Book</dc:title></metadata><manifest><item id="ch1" href="Text/chapter%201.xhtml" media-type="application/xhtml+xml"/><item id="ch2" href="Text/two.xhtml#start" media-type="application/xhtml+xml"/><item id="gone" href="Text/missing.xhtml" media-type="application/xhtml+xml"/><item id="css" href="style.css" media-type="text/css"/></manifest><spine><itemref idref="ch2"/><itemref idref="ch1"/><itemref idref="gone"/><itemref idref="css"/></spine></package>"#;

    fn chapter(words: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body><p>{words}</p></body></html>"#
        )
    }

    fn book(encryption: Option<&str>) -> Vec<u8> {
        let (one, two) = (
            chapter("First chapter words"),
            chapter("Second chapter words"),
        );
        let mut entries = vec![
            ("mimetype", "application/epub+zip"),
            ("META-INF/container.xml", CONTAINER),
            ("OEBPS/content.opf", OPF),
            ("OEBPS/Text/chapter 1.xhtml", one.as_str()),
            ("OEBPS/Text/two.xhtml", two.as_str()),
            ("OEBPS/style.css", "p { margin: 0 }"),
        ];
        entries.extend(encryption.map(|xml| ("META-INF/encryption.xml", xml)));
        build(&entries)
    }

    fn encryption_xml(uri: &str) -> String {
        format!(
            r#"<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>"#
        )
    }

    fn read(bytes: &[u8]) -> Result<Vec<Section>> {
        extract(Path::new("book.epub"), bytes, &Limits::default())
    }

    #[test]
    fn chapters_come_in_spine_order_named_by_file() {
        let sections = read(&book(None)).unwrap();
        assert_eq!(sections.len(), 2, "{sections:?}");
        assert_eq!(sections[0].location, "Text/two.xhtml");
        assert!(
            sections[0].text.contains("Second chapter words"),
            "{sections:?}"
        );
        assert_eq!(sections[1].location, "Text/chapter 1.xhtml");
        assert!(
            sections[1].text.contains("First chapter words"),
            "{sections:?}"
        );
    }

    #[test]
    fn encrypted_chapters_are_drm_but_obfuscated_fonts_are_not() {
        let locked = encryption_xml("OEBPS/Text/two.xhtml");
        let msg = read(&book(Some(locked.as_str()))).unwrap_err().to_string();
        assert!(msg.contains("protected by DRM"), "{msg}");
        let fonts = encryption_xml("OEBPS/Fonts/serif.otf");
        assert_eq!(read(&book(Some(fonts.as_str()))).unwrap().len(), 2);
    }

    #[test]
    fn broken_books_are_explained() {
        let no_container = build(&[("OEBPS/content.opf", OPF)]);
        let msg = read(&no_container).unwrap_err().to_string();
        assert!(msg.contains("is not a valid EPUB e-book"), "{msg}");
        let no_opf = build(&[("META-INF/container.xml", CONTAINER)]);
        let msg = read(&no_opf).unwrap_err().to_string();
        assert!(msg.contains("is not a valid EPUB e-book"), "{msg}");
        let msg = read(b"not a zip").unwrap_err().to_string();
        assert!(msg.contains("is not a valid EPUB file"), "{msg}");
    }

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(resolve("OEBPS/", "../Text/a.xhtml#x"), "Text/a.xhtml");
        assert_eq!(resolve("OEBPS/", "./b.xhtml"), "OEBPS/b.xhtml");
        assert_eq!(resolve("OEBPS/", "/c.xhtml"), "c.xhtml");
        assert_eq!(percent_decode("chapter%201%zz%"), "chapter 1%zz%");
    }
}
