//! BLEU, chrF and ROUGE against the values sacrebleu 2.6.0 and rouge-score 0.1.2 give on the same
//! texts (recorded by fixtures/make_metric_fixtures.py): Unicode, punctuation, HTML entities,
//! empty outputs, single words, long and multi-sentence references. Equal to 1e-6.

mod common;

use common::fixtures;
use serde_json::Value;
use tunesmith_engine::eval::{bleu, chrf, porter, rouge, score_texts, Metric};

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("metrics-reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn close(got: f64, want: &Value, what: &str) {
    let want = want.as_f64().unwrap();
    assert!((got - want).abs() <= 1e-6, "{what}: {got} != {want}");
}

#[test]
fn the_13a_tokeniser_splits_as_sacrebleus() {
    for pair in reference()["tokenize_13a"].as_array().unwrap() {
        let (line, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let trimmed = line
            .trim_end_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
        assert_eq!(bleu::tokenize_13a(trimmed), want, "{line:?}");
    }
}

#[test]
fn corpus_and_sentence_scores_equal_the_references() {
    let r = reference();
    assert_eq!(r["versions"]["sacrebleu"], bleu::SACREBLEU_VERSION);
    for set in r["sets"].as_array().unwrap() {
        let name = set["name"].as_str().unwrap();
        let hyps = strings(&set["hypotheses"]);
        let refs = strings(&set["references"]);
        let h: Vec<&str> = hyps.iter().map(String::as_str).collect();
        let rf: Vec<&str> = refs.iter().map(String::as_str).collect();
        let b = bleu::corpus_bleu(&h, &rf);
        close(b.score, &set["bleu"], &format!("{name} corpus BLEU"));
        close(b.bp, &set["bleu_bp"], &format!("{name} BP"));
        for (k, p) in b.precisions.iter().enumerate() {
            close(
                *p,
                &set["bleu_precisions"][k],
                &format!("{name} p{}", k + 1),
            );
        }
        assert_eq!(bleu::signature(), set["bleu_signature"].as_str().unwrap());
        close(
            chrf::corpus_chrf(&h, &rf),
            &set["chrf"],
            &format!("{name} corpus chrF"),
        );
        assert_eq!(chrf::signature(), set["chrf_signature"].as_str().unwrap());
        for (i, ex) in set["examples"].as_array().unwrap().iter().enumerate() {
            let (hy, re) = (h[i], rf[i]);
            let at = |m: &str| format!("{name} #{i} {m}");
            close(bleu::sentence_bleu(hy, re), &ex["bleu"], &at("BLEU"));
            close(chrf::sentence_chrf(hy, re), &ex["chrf"], &at("chrF"));
            let plain = rouge::score(re, hy, false);
            close(plain.rouge1, &ex["rouge1"], &at("rouge1"));
            close(plain.rouge2, &ex["rouge2"], &at("rouge2"));
            close(plain.rouge_l, &ex["rougeL"], &at("rougeL"));
            let stemmed = rouge::score(re, hy, true);
            close(stemmed.rouge1, &ex["rouge1_stemmed"], &at("rouge1 stemmed"));
            close(stemmed.rouge2, &ex["rouge2_stemmed"], &at("rouge2 stemmed"));
            close(
                stemmed.rouge_l,
                &ex["rougeL_stemmed"],
                &at("rougeL stemmed"),
            );
        }
        // The report: sacrebleu's corpus figures, rouge-score's mean over the pairs.
        let report = score_texts(&hyps, &refs, None, &Metric::ALL, false);
        close(report.bleu.unwrap(), &set["bleu"], name);
        close(report.chrf.unwrap(), &set["chrf"], name);
        let examples = set["examples"].as_array().unwrap();
        let mean = |k: &str| {
            examples.iter().map(|e| e[k].as_f64().unwrap()).sum::<f64>() / examples.len() as f64
        };
        assert!(
            (report.rouge_l.unwrap() - mean("rougeL")).abs() < 1e-9,
            "{name}"
        );
        assert!(
            (report.rouge2.unwrap() - mean("rouge2")).abs() < 1e-9,
            "{name}"
        );
    }
}

#[test]
fn the_porter_stemmer_stems_as_nltks() {
    for pair in reference()["porter"].as_array().unwrap() {
        let (word, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert_eq!(porter::stem(word), want, "{word}");
    }
}

/// The JSON keys the issue names, from `score_texts`.
#[test]
fn the_report_has_the_documented_keys() {
    let report = score_texts(
        &["a b c".to_string()],
        &["a b d".to_string()],
        None,
        &Metric::ALL,
        false,
    );
    let v = serde_json::to_value(&report).unwrap();
    for k in [
        "bleu", "rouge1", "rouge2", "rougeL", "chrf", "exact", "examples",
    ] {
        assert!(v.get(k).is_some(), "{k}: {v}");
    }
    for k in ["reference", "output", "bleu", "rougeL"] {
        assert!(v["examples"][0].get(k).is_some(), "{k}");
    }
}
