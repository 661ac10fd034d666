//! Document import on a corpus made by real tools (tests/fixtures/import/make_corpus.py: python-docx,
//! reportlab, odfpy, ebooklib): extracted text against expected text, every bad input with its
//! own plain error, duplicates, personal data, and a prepared dataset on disk with masked prompts.

mod common;

use std::path::{Path, PathBuf};

use common::fixtures;
use tunesmith_engine::data::clean::{clean_text, CleanOptions};
use tunesmith_engine::data::import::{import_file, ImportOptions, Limits};
use tunesmith_engine::data::prepare::{self, PrepareOptions, Unit};
use tunesmith_engine::data::{dataset, tokenizer};
use tunesmith_engine::NullSink;

fn corpus() -> PathBuf {
    fixtures().join("import")
}

/// A file's text as the model will see it (before deduplication).
fn extracted(path: &Path, opts: &ImportOptions) -> Result<String, String> {
    let imp = import_file(path, opts).map_err(|e| e.to_string())?;
    let joined: Vec<String> = imp.sections.into_iter().map(|s| s.text).collect();
    Ok(clean_text(&joined.join("\n\n"), &CleanOptions::default()))
}

#[test]
fn text_formats_extract_exactly() {
    for name in [
        "notes.txt",
        "latin1.txt",
        "utf16.txt",
        "readme.md",
        "page.html",
        "report.docx",
        "letter.odt",
        "book.epub",
        "memo.rtf",
    ] {
        let got = extracted(&corpus().join("good").join(name), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want =
            std::fs::read_to_string(corpus().join("expected").join(format!("{name}.txt"))).unwrap();
        assert_eq!(got.trim_end(), want.trim_end(), "{name}");
    }
}

#[test]
fn pdf_keeps_body_words_in_order_without_running_headers() {
    let got = extracted(&corpus().join("good/manual.pdf"), &ImportOptions::default()).unwrap();
    let want = std::fs::read_to_string(corpus().join("expected/manual.pdf.txt")).unwrap();
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (got_w, want_w) = (words(&got), words(&want));
    // Expected words found in order (greedy subsequence match).
    let mut at = 0;
    let mut found = 0;
    for w in &want_w {
        if let Some(i) = got_w[at..].iter().position(|g| g == w) {
            at += i + 1;
            found += 1;
        }
    }
    let share = found as f64 / want_w.len() as f64;
    assert!(share >= 0.98, "{found} of {} words in order", want_w.len());
    assert!(!got.contains("ACME Handbook"), "running header left in");
    assert!(!got.contains("of 4"), "page numbers left in");
    assert!(got.contains("document"), "hyphenation not joined");
}

#[test]
fn every_bad_input_gets_its_own_plain_error() {
    let opts = ImportOptions {
        limits: Limits {
            max_unpacked_bytes: 16 << 20,
            ..Limits::default()
        },
        ..Default::default()
    };
    for (name, says) in [
        ("empty.txt", "empty"),
        ("binary.txt", "not a text file"),
        ("truncated.pdf", "damaged"),
        ("garbage.pdf", "not a PDF"),
        ("locked.pdf", "password"),
        ("scanned.pdf", "OCR"),
        ("corrupt.docx", "not a valid Word file"),
        ("bomb.docx", "zip bomb"),
        ("drm.epub", "DRM"),
    ] {
        let path = corpus().join("bad").join(name);
        let e = extracted(&path, &opts).expect_err(name);
        assert!(e.contains(says), "{name}: {e}");
        assert!(e.starts_with(&path.display().to_string()), "{name}: {e}");
    }
    // Bad JSONL lines are named; the good ones are kept.
    let imp = import_file(&corpus().join("bad/bad-lines.jsonl"), &opts).unwrap();
    assert_eq!(imp.examples.len(), 3);
    assert!(
        imp.warnings.iter().any(|w| w.starts_with("line 2")),
        "{:?}",
        imp.warnings
    );
    assert!(
        imp.warnings.iter().any(|w| w.starts_with("line 4")),
        "{:?}",
        imp.warnings
    );
}

#[cfg(unix)]
#[test]
fn unreadable_and_vanished_files_do_not_stop_the_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(&good, "The refund window is thirty days from delivery.").unwrap();
    let locked = dir.path().join("locked.txt");
    std::fs::write(&locked, "secret").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let gone = dir.path().join("gone.txt");
    let c = prepare::collect(
        &[good.clone(), locked.clone(), gone],
        &PrepareOptions::default(),
        &mut NullSink,
    )
    .unwrap();
    let readable = std::fs::read(&locked).is_ok();
    assert_eq!(c.units.len(), 1 + readable as usize);
    let errors: Vec<&str> = c
        .report
        .files
        .iter()
        .filter_map(|f| f.error.as_deref())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("does not exist")),
        "{errors:?}"
    );
    // Root can read anything; elsewhere the permission error is reported.
    if !readable {
        assert!(
            errors.iter().any(|e| e.contains("permission")),
            "{errors:?}"
        );
    }
    assert_eq!(c.report.files_failed as usize, errors.len());
}

#[test]
fn one_huge_line_and_a_big_file_are_read_in_bounded_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-line.txt");
    // 6 MB without a line break: cut at the block size, nothing lost.
    std::fs::write(&path, &"word ".repeat(6 << 20 >> 2).as_bytes()[..6 << 20]).unwrap();
    let mut blocks = Vec::new();
    tunesmith_engine::data::import::encoding::read_text_streamed(&path, 1 << 20, |b| {
        blocks.push(b.len());
        Ok(())
    })
    .unwrap();
    assert!(blocks.iter().all(|&n| n <= 2 << 20), "{blocks:?}");
    assert_eq!(blocks.iter().sum::<usize>(), 6 << 20);
}

#[test]
fn duplicates_exact_and_near_are_dropped_with_reasons() {
    let c = prepare::collect(
        &[corpus().join("near-dup")],
        &PrepareOptions::default(),
        &mut NullSink,
    )
    .unwrap();
    let kept: Vec<&str> = c.units.iter().map(|u| u.source()).collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].ends_with("a.txt") && kept[1].ends_with("d.txt"));
    let reasons: Vec<&str> = c.report.dropped.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("an exact duplicate of")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("% the same as")),
        "{reasons:?}"
    );
    assert!(c.report.duplicate_share > 0.3);
    let all = prepare::collect(
        &[corpus().join("near-dup")],
        &PrepareOptions {
            dedupe: false,
            ..Default::default()
        },
        &mut NullSink,
    )
    .unwrap();
    assert_eq!(all.units.len(), 4);
}

#[test]
fn personal_data_is_replaced_and_counted() {
    let text = std::fs::read_to_string(corpus().join("pii.txt")).unwrap();
    let want = std::fs::read_to_string(corpus().join("pii.expected.txt")).unwrap();
    let (got, hits) = tunesmith_engine::data::pii::scrub(&text);
    assert_eq!(got, want);
    let counts = tunesmith_engine::data::pii::count(&hits);
    for kind in ["EMAIL", "PHONE", "IBAN", "CARD", "URL", "IP"] {
        assert!(
            counts.get(kind).is_some_and(|&n| n > 0),
            "{kind}: {counts:?}"
        );
    }
}

#[test]
fn prepared_dataset_on_disk_with_masked_prompts_and_a_report() {
    let good = corpus().join("good");
    let opts = PrepareOptions {
        pair_columns: Some(("question".into(), "answer".into())),
        chunk_tokens: 200,
        overlap: 20,
        ..Default::default()
    };
    let c = prepare::collect(&[good], &opts, &mut NullSink).unwrap();
    assert!(
        c.report
            .files
            .iter()
            .all(|f| f.status != tunesmith_engine::data::inspect::FileStatus::Error),
        "{:#?}",
        c.report.files
    );
    let pairs = c
        .units
        .iter()
        .filter(|u| matches!(u, Unit::Pair { .. }))
        .count();
    // 5 prompts.jsonl + 4 chat turns (3 conversations, one with two replies) + 4 pairs.tsv rows.
    assert!(pairs >= 12, "{pairs}");
    let texts: Vec<String> = c.units.iter().map(|u| u.full_text()).collect();
    let tok = tokenizer::train_bpe(texts.iter(), 1000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dataset");
    let m = prepare::write(&out, c, &opts, &tok, "test", &mut NullSink).unwrap();
    for f in [
        "manifest.json",
        "documents.jsonl",
        "train.tokens",
        "val.tokens",
        "train.mask",
        "tokenizer.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let r = &m.report;
    assert_eq!(r.tokens, r.train_tokens + r.val_tokens);
    assert!(r.val_tokens > 0 && r.examples as usize == pairs);
    assert!(r
        .files
        .iter()
        .any(|f| f.language.as_deref() == Some("English")));
    assert!(
        r.warnings.iter().any(|w| w.contains("memorise")),
        "{:?}",
        r.warnings
    );
    assert!(r.suggestions.quick_steps <= 300);
    // documents.jsonl holds exactly the text the model sees; chunks fit the size asked for.
    let units = prepare::read_units(&out).unwrap();
    for u in &units {
        if let Unit::Text { text, .. } = u {
            let n = tokenizer::encode(&tok, text).unwrap().len();
            assert!(n <= 200 + 5, "{n} tokens: {text:?}");
        }
    }
    // Prompt tokens are read but not learned: the mask is 0 exactly on them, in the order
    // documents.jsonl lists the training units.
    let data = dataset::load(&out).unwrap();
    let mask = data.train_mask.as_ref().unwrap();
    let ds = prepare::read_dataset(&out).unwrap();
    let is_val = ds.is_val.as_ref().expect("the split is recorded");
    let mut want = Vec::new();
    for (u, _) in ds.units.iter().zip(is_val).filter(|(_, v)| !**v) {
        match u {
            Unit::Pair {
                prompt, completion, ..
            } => {
                want.extend(vec![0u8; tokenizer::encode(&tok, prompt).unwrap().len()]);
                let c = tokenizer::encode(&tok, &format!(" {completion}")).unwrap();
                want.extend(vec![1u8; c.len()]);
            }
            Unit::Text { text, .. } => {
                want.extend(vec![1u8; tokenizer::encode_long(&tok, text).unwrap().len()]);
            }
        }
        want.push(1); // the end-of-text token is learned
    }
    assert_eq!(mask, &want);
}

#[test]
fn a_big_text_file_streams_into_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    let para =
        |i: usize| format!("Paragraph {i}: the warehouse ships every order within two days.\n\n");
    let text: String = (0..40_000).map(para).collect();
    std::fs::write(&big, &text).unwrap();
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "A small note about refunds and returns.").unwrap();
    let opts = PrepareOptions {
        stream_above_mb: 1,
        ..Default::default()
    };
    let c = prepare::collect(&[big.clone(), small], &opts, &mut NullSink).unwrap();
    assert_eq!((c.streamed.len(), c.units.len()), (1, 1));
    let tok = tokenizer::train_bpe(
        ["warehouse ships every order within two days refunds"].iter(),
        300,
    )
    .unwrap();
    let out = dir.path().join("ds");
    let m = prepare::write(&out, c, &opts, &tok, "test", &mut NullSink).unwrap();
    let r = &m.report;
    assert!(r.documents > 1, "{}", r.documents);
    assert!(r.train_tokens > 0 && r.val_tokens > 0);
    let data = dataset::load(&out).unwrap();
    assert_eq!((data.train.len() + data.val.len()) as u64, r.tokens);
    let units = prepare::read_units(&out).unwrap();
    assert_eq!(units.len() as u64, r.documents);
    let streamed_words: usize = units
        .iter()
        .filter(|u| u.source().contains("(block"))
        .map(|u| u.full_text().split_whitespace().count())
        .sum();
    assert_eq!(streamed_words, text.split_whitespace().count());
}
