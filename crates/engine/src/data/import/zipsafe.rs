//! Reading the parts of zip-based formats (.docx, .odt, .epub) under a decompression budget. A
//! few kilobytes of zip can unpack to gigabytes (a "zip bomb"), and an entry's declared size can
//! lie, so every read is capped by what is left of [`Limits::max_unpacked_bytes`] across the
//! whole file, counted in bytes actually produced.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::ZipArchive;

use super::Limits;
use crate::{Error, Result};

/// An opened zip file that remembers how much it has unpacked so far.
pub struct Zip<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    path: PathBuf,
    /// The format in plain words ("Word", "OpenDocument", "EPUB"), for messages.
    what: String,
    limit: u64,
    unpacked: u64,
}

impl<'a> Zip<'a> {
    /// Reads the zip's table of contents; `what` names the format in messages.
    pub fn open(path: &Path, bytes: &'a [u8], what: &str, limits: &Limits) -> Result<Zip<'a>> {
        let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|_| damaged(path, what))?;
        Ok(Zip {
            archive,
            path: path.to_path_buf(),
            what: what.to_string(),
            limit: limits.max_unpacked_bytes,
            unpacked: 0,
        })
    }

    /// The names of all entries, in the zip's order. Names that are not valid text are left out:
    /// no format we read needs them.
    pub fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect()
    }

    /// The unpacked bytes of entry `name`, or `None` when the zip has no such entry.
    pub fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let remaining = self.limit.saturating_sub(self.unpacked);
        let mut out = Vec::new();
        {
            let mut file = match self.archive.by_name(name) {
                Ok(f) => f,
                Err(ZipError::FileNotFound) => return Ok(None),
                Err(ZipError::UnsupportedArchive(m)) if m == ZipError::PASSWORD_REQUIRED => {
                    return Err(Error::file(
                        &self.path,
                        "is protected by a password; open it, remove the password and save it again",
                    ))
                }
                Err(_) => return Err(damaged(&self.path, &self.what)),
            };
            // An honest header saves unpacking anything; a lying one is caught by `take` below.
            if file.size() > remaining {
                return Err(bomb(&self.path, self.limit));
            }
            // One byte past the budget is enough to know it was exceeded.
            file.by_ref()
                .take(remaining.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|_| damaged(&self.path, &self.what))?;
        }
        self.unpacked += out.len() as u64;
        if self.unpacked > self.limit {
            return Err(bomb(&self.path, self.limit));
        }
        Ok(Some(out))
    }

    /// Like [`Zip::read`], as text; bytes that are not UTF-8 become U+FFFD.
    pub fn read_string(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .read(name)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

fn damaged(path: &Path, what: &str) -> Error {
    Error::file(
        path,
        format!(
            "is not a valid {what} file (it may be damaged or only partly downloaded); open it and save it again"
        ),
    )
}

fn bomb(path: &Path, limit: u64) -> Error {
    // Rounded up so a limit under 1 MB never reads "more than 0 MB".
    let mb = limit.div_ceil(1 << 20);
    Error::file(
        path,
        format!(
            "unpacks to more than {mb} MB, which looks like a damaged or malicious file (a \"zip bomb\"); remove it from the list"
        ),
    )
}

/// A zip holding `entries` (name, text), deflated, for the importers' tests.
#[cfg(test)]
pub(crate) fn build(entries: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u64) -> Limits {
        Limits {
            max_unpacked_bytes: max,
            ..Limits::default()
        }
    }

    #[test]
    fn reads_entries_and_reports_absent_ones() {
        let bytes = build(&[("a.txt", "hello"), ("dir/b.xml", "<x/>")]);
        let mut z = Zip::open(Path::new("f.docx"), &bytes, "Word", &limits(1 << 20)).unwrap();
        assert_eq!(
            z.names(),
            vec!["a.txt".to_string(), "dir/b.xml".to_string()]
        );
        assert_eq!(z.read("a.txt").unwrap().unwrap(), b"hello");
        assert_eq!(z.read_string("dir/b.xml").unwrap().unwrap(), "<x/>");
        assert!(z.read("missing.txt").unwrap().is_none());
    }

    #[test]
    fn a_highly_compressible_entry_exceeds_the_budget() {
        let zeros = "\0".repeat(2 << 20);
        let bytes = build(&[("zeros.bin", zeros.as_str())]);
        assert!(bytes.len() < 100 << 10, "the test zip should be small");
        let mut z = Zip::open(Path::new("bomb.docx"), &bytes, "Word", &limits(1 << 20)).unwrap();
        let msg = z.read("zeros.bin").unwrap_err().to_string();
        assert!(msg.contains("zip bomb"), "{msg}");
        assert!(msg.contains("more than 1 MB"), "{msg}");
        assert!(msg.starts_with("bomb.docx: unpacks"), "{msg}");
    }

    #[test]
    fn the_budget_spans_all_entries() {
        let part = "a".repeat(600 << 10);
        let bytes = build(&[("one", part.as_str()), ("two", part.as_str())]);
        let mut z = Zip::open(Path::new("f.epub"), &bytes, "EPUB", &limits(1 << 20)).unwrap();
        assert!(z.read("one").unwrap().is_some());
        let msg = z.read("two").unwrap_err().to_string();
        assert!(msg.contains("zip bomb"), "{msg}");
    }

    #[test]
    fn a_corrupt_file_is_named_as_such() {
        let bytes = b"this is not a zip file at all".to_vec();
        let err = Zip::open(Path::new("bad.docx"), &bytes, "Word", &limits(1 << 20))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("is not a valid Word file"), "{msg}");
        assert!(msg.contains("save it again"), "{msg}");
    }
}
