//! `write`: collected documents chunked, tokenised, split and written as a dataset folder, which
//! replaces the old one as a whole. Huge plain-text files are streamed onto the end block by block.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use super::{finish_report, Collected, DatasetManifest, PrepareOptions, Report, Unit};
use crate::data::dataset::{self, Split};
use crate::data::import::encoding;
use crate::data::{chunk, clean, pii, tokenizer, unit};
use crate::progress::{CancelToken, ProgressSink};
use crate::{fsutil, Error, Result};

/// Huge files are read this many bytes at a time.
const STREAM_BLOCK: usize = 4 << 20;

/// Units cut to `chunk_tokens` on paragraph boundaries (pairs are never cut).
pub fn chunk_units(units: Vec<Unit>, opts: &PrepareOptions, tok: &Tokenizer) -> Vec<Unit> {
    if opts.chunk_tokens == 0 {
        return units;
    }
    let count = |s: &str| tokenizer::encode(tok, s).map_or(s.len() / 4, |v| v.len());
    let mut out = Vec::new();
    for u in units {
        match u {
            Unit::Text { source, text } => {
                let pieces = chunk::chunk(&text, opts.chunk_tokens, opts.overlap, &count);
                let n = pieces.len();
                for (i, t) in pieces.into_iter().enumerate() {
                    let source = if n > 1 {
                        format!("{source} (part {} of {n})", i + 1)
                    } else {
                        source.clone()
                    };
                    out.push(Unit::Text { source, text: t });
                }
            }
            pair => out.push(pair),
        }
    }
    out
}

/// Tokenises `collected` with `tok`, splits it and writes `dir` (replacing it as a whole, never
/// half-written): `manifest.json`, `documents.jsonl`, `train.tokens`/`val.tokens` and, when there
/// are examples, `train.mask`/`val.mask`. `tokenizer_name` is recorded in the manifest.
pub fn write(
    dir: &Path,
    mut collected: Collected,
    opts: &PrepareOptions,
    tok: &Tokenizer,
    tokenizer_name: &str,
    sink: &mut impl ProgressSink,
) -> Result<DatasetManifest> {
    let units = chunk_units(std::mem::take(&mut collected.units), opts, tok);
    let tmp = fsutil::temp_sibling(dir);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let split = Split::Seeded {
        val_frac: opts.val_frac,
        seed: opts.seed,
    };
    let (data, split) =
        dataset::build_units(&units, tok, None, split, &tmp, &CancelToken::new(), sink)?;
    let mut report = collected.report;
    // Token counts per file, from the units' sources.
    for f in &mut report.files {
        f.tokens = 0;
    }
    for (u, n) in units.iter().zip(&data.unit_tokens) {
        if let Some(f) = report
            .files
            .iter_mut()
            .find(|f| u.source().starts_with(&f.path))
        {
            f.tokens += *n as u64;
        }
    }
    let docs: Vec<String> = units
        .iter()
        .zip(&data.is_val)
        .map(|(u, &v)| unit::to_line(u, v))
        .collect();
    fsutil::write_atomic(
        &tmp.join("documents.jsonl"),
        (docs.join("\n") + "\n").as_bytes(),
    )?;
    let documents = units
        .iter()
        .filter(|u| matches!(u, Unit::Text { .. }))
        .count() as u64;
    let examples = units.len() as u64 - documents;
    let (mut train_tokens, mut val_tokens) = (data.train_tokens as u64, data.val_tokens as u64);
    let has_mask = data.data.train_mask.is_some();
    drop(data);
    let streamed = std::mem::take(&mut collected.streamed);
    let mut streamed_docs = 0;
    if !streamed.is_empty() {
        let s = append_streamed(&tmp, &streamed, opts, tok, has_mask, &mut report)?;
        (train_tokens, val_tokens) = (train_tokens + s.train, val_tokens + s.val);
        streamed_docs = s.documents;
    }
    finish_report(
        &mut report,
        documents + streamed_docs,
        examples,
        train_tokens,
        val_tokens,
    );
    let manifest = DatasetManifest {
        options: opts.clone(),
        tokenizer: tokenizer_name.to_string(),
        split,
        report,
    };
    fsutil::write_json(&tmp.join("manifest.json"), &manifest)?;
    tokenizer::save(tok, &tmp)?;
    fsutil::replace_dir(&tmp, dir)?;
    Ok(manifest)
}

struct Appended {
    train: u64,
    val: u64,
    documents: u64,
}

/// Huge text files, block by block straight onto the end of the token files and documents.jsonl,
/// so memory holds one block at a time: cleaned, exact duplicate blocks dropped, scrubbed if
/// asked, chunked, and each block sent to training or validation by a seeded draw.
fn append_streamed(
    dir: &Path,
    files: &[PathBuf],
    opts: &PrepareOptions,
    tok: &Tokenizer,
    has_mask: bool,
    report: &mut Report,
) -> Result<Appended> {
    use std::io::Write;
    let open = |name: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        let p = dir.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        Ok(std::io::BufWriter::new(f))
    };
    let (mut train, mut val, mut docs) = (
        open("train.tokens")?,
        open("val.tokens")?,
        open("documents.jsonl")?,
    );
    let mut masks = if has_mask {
        Some((open("train.mask")?, open("val.mask")?))
    } else {
        None
    };
    let eot = tokenizer::eot_id(tok);
    let mut seen = HashSet::new();
    let mut out = Appended {
        train: 0,
        val: 0,
        documents: 0,
    };
    for (fi, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let mut part = 0u64;
        let mut file_tokens = 0u64;
        stream_blocks(path, opts, &mut seen, |p, unit| {
            part = p;
            for u in chunk_units(vec![unit], opts, tok) {
                let Unit::Text { text, .. } = &u else {
                    continue;
                };
                let mut ids = tokenizer::encode_long(tok, text)?;
                ids.extend(eot);
                let to_val = crate::rng::Rng::derive(opts.seed, "stream-split", &[fi as u64, part])
                    .next_f64()
                    < opts.val_frac;
                let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
                let w = if to_val { &mut val } else { &mut train };
                w.write_all(&bytes).map_err(|e| Error::io(dir, e))?;
                if let Some((tm, vm)) = &mut masks {
                    let m = if to_val { vm } else { tm };
                    m.write_all(&vec![1u8; ids.len()])
                        .map_err(|e| Error::io(dir, e))?;
                }
                *if to_val { &mut out.val } else { &mut out.train } += ids.len() as u64;
                file_tokens += ids.len() as u64;
                writeln!(docs, "{}", unit::to_line(&u, to_val)).map_err(|e| Error::io(dir, e))?;
                out.documents += 1;
            }
            Ok(())
        })?;
        if let Some(f) = report.files.iter_mut().find(|f| f.path == name) {
            f.tokens = file_tokens;
            f.documents = part;
        }
    }
    for mut w in [train, val, docs] {
        w.flush().map_err(|e| Error::io(dir, e))?;
    }
    if let Some((mut a, mut b)) = masks {
        a.flush().map_err(|e| Error::io(dir, e))?;
        b.flush().map_err(|e| Error::io(dir, e))?;
    }
    Ok(out)
}

/// A huge text file as documents of one block each (numbered from 1), cleaned, scrubbed if asked,
/// and without blocks already in `seen` when deduplicating; memory holds one block at a time.
pub fn stream_blocks(
    path: &Path,
    opts: &PrepareOptions,
    seen: &mut HashSet<u64>,
    mut each: impl FnMut(u64, Unit) -> Result<()>,
) -> Result<()> {
    let mut part = 0u64;
    encoding::read_text_streamed(path, STREAM_BLOCK, |block| {
        part += 1;
        let text = clean::clean_text(&block, &opts.clean);
        if text.trim().is_empty() || (opts.dedupe && !seen.insert(fxhash(&text))) {
            return Ok(());
        }
        let text = if opts.scrub_pii {
            pii::scrub(&text).0
        } else {
            text
        };
        let source = format!("{} (block {part})", path.display());
        each(part, Unit::Text { source, text })
    })
}

fn fxhash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}
