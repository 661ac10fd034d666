//! Bytes to text: UTF-8 (with or without a BOM), UTF-16 with a BOM, and legacy 8-bit code pages
//! detected from the bytes themselves. Invalid bytes never crash anything: they become U+FFFD, and
//! a file that is mostly not text is refused as binary.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};

use crate::{Error, Result};

/// The text of `bytes` and the name of the encoding it was read as.
pub fn decode_named(path: &Path, bytes: &[u8]) -> Result<(String, &'static str)> {
    let encoding = detect(bytes);
    if encoding != UTF_16LE && encoding != UTF_16BE && looks_binary(bytes) {
        return Err(not_text(path));
    }
    let (text, used, _had_errors) = encoding.decode(bytes);
    Ok((text.into_owned(), used.name()))
}

/// The text of `bytes`, whatever its encoding.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<String> {
    decode_named(path, bytes).map(|(t, _)| t)
}

/// The encoding of `bytes`: a BOM wins, then valid UTF-8, then chardetng's guess.
pub fn detect(bytes: &[u8]) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return enc;
    }
    if std::str::from_utf8(bytes).is_ok() {
        return UTF_8;
    }
    // A UTF-8 file cut inside a character (a streamed block, a truncated file) is still UTF-8.
    if let Err(e) = std::str::from_utf8(bytes) {
        if e.error_len().is_none() && e.valid_up_to() + 4 > bytes.len() {
            return UTF_8;
        }
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    det.guess(None, chardetng::Utf8Detection::Allow)
}

/// NUL bytes or many control characters mean binary data (an image, an archive) renamed to .txt.
fn looks_binary(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(64 << 10)];
    if sample.contains(&0) {
        return true;
    }
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    control * 100 > sample.len()
}

fn not_text(path: &Path) -> Error {
    Error::file(
        path,
        "is not a text file (it looks like binary data, such as an image or an archive); remove it from the list",
    )
}

/// Reads a large text file in blocks of about `block` bytes that end at a line break (a single
/// line longer than `block` is cut at the block size), decoding each with the encoding detected on
/// the first block. Memory stays bounded by the block size whatever the file's size.
pub fn read_text_streamed(
    path: &Path,
    block: usize,
    mut each: impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut decoder: Option<encoding_rs::Decoder> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(block + 1024);
    loop {
        buf.clear();
        // Fill to the block size, then extend to the end of the line (bounded by another block).
        let n = (&mut reader)
            .take(block as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == block {
            let mut rest = Vec::new();
            (&mut reader)
                .take(block as u64)
                .read_until(b'\n', &mut rest)
                .map_err(|e| Error::io(path, e))?;
            buf.extend_from_slice(&rest);
        }
        if buf.is_empty() {
            break;
        }
        let dec = match &mut decoder {
            Some(d) => d,
            None => {
                let enc = detect(&buf);
                if enc != UTF_16LE && enc != UTF_16BE && looks_binary(&buf) {
                    return Err(not_text(path));
                }
                decoder.insert(enc.new_decoder_with_bom_removal())
            }
        };
        let mut out = String::with_capacity(
            dec.max_utf8_buffer_length(buf.len())
                .unwrap_or(buf.len() * 3),
        );
        let last = n < block;
        let _ = dec.decode_to_string(&buf, &mut out, last);
        each(out)?;
        if last {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms_utf8_and_legacy_code_pages() {
        let p = Path::new("x.txt");
        assert_eq!(decode(p, "\u{feff}héllo".as_bytes()).unwrap(), "héllo");
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("née".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode(p, &utf16).unwrap(), "née");
        let french = "Le café était très apprécié, à l’époque, par les élèves français. ".repeat(4);
        let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(&french);
        let (text, name) = decode_named(p, &cp1252).unwrap();
        assert!(text.starts_with("Le café était"), "{text} ({name})");
    }

    #[test]
    fn binary_is_refused_and_invalid_bytes_do_not_crash() {
        let p = Path::new("x.txt");
        let e = decode(p, &[0x89, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap_err();
        assert!(e.to_string().contains("not a text file"));
        assert!(decode(p, b"abc \xff\xfe\xfd def").is_ok());
    }

    #[test]
    fn streaming_keeps_lines_whole_and_memory_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        let line = "ünïcode line of text\n";
        std::fs::write(&path, line.repeat(1000)).unwrap();
        let mut pieces = Vec::new();
        read_text_streamed(&path, 256, |s| {
            pieces.push(s);
            Ok(())
        })
        .unwrap();
        assert!(pieces.len() > 10);
        assert!(pieces.iter().all(|p| p.len() < 600 && p.ends_with('\n')));
        assert_eq!(pieces.concat(), line.repeat(1000));
    }
}
