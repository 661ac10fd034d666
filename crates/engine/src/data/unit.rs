//! The unit a dataset is made of — running text, or a prompt whose completion the model learns —
//! and its line in a dataset's `documents.jsonl`, which also records the split the unit went to so
//! that training from the dataset divides it the same way. A leaf: `prepare` makes units,
//! `dataset` tokenises them, and neither needs the other for it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One thing the model learns from: running text, or a prompt whose completion it learns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Unit {
    Pair {
        source: String,
        prompt: String,
        completion: String,
        /// A chat example's conversation, ending with the reply learned; rendered with the chat
        /// template of a model that has one (a plain pair is one user turn and one reply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        messages: Option<Vec<crate::chat::Message>>,
    },
    Text {
        source: String,
        text: String,
    },
}

impl Unit {
    pub fn source(&self) -> &str {
        match self {
            Unit::Text { source, .. } | Unit::Pair { source, .. } => source,
        }
    }
    /// The whole text, as the deduplicator and the tokenizer trainer see it.
    pub fn full_text(&self) -> String {
        match self {
            Unit::Text { text, .. } => text.clone(),
            Unit::Pair {
                prompt, completion, ..
            } => format!("{prompt} {completion}"),
        }
    }
}

/// The `documents.jsonl` line of a unit: its fields plus `"split": "train"` or `"val"`.
pub fn to_line(unit: &Unit, is_val: bool) -> String {
    let mut v = serde_json::to_value(unit).expect("units serialise");
    v["split"] = (if is_val { "val" } else { "train" }).into();
    v.to_string()
}

/// The units of a `documents.jsonl`, each with whether it went to validation (`None` in datasets
/// made before the split was recorded).
pub fn read_lines(path: &Path) -> Result<Vec<(Unit, Option<bool>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let bad = |e: String| {
                Error::file(
                    path,
                    format!(
                        "line {} is not a document ({e}); prepare the dataset again",
                        i + 1
                    ),
                )
            };
            let mut v: serde_json::Value =
                serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
            let split = v.as_object_mut().and_then(|o| o.remove("split"));
            let is_val = match split.as_ref().and_then(|s| s.as_str()) {
                None => None,
                Some("val") => Some(true),
                Some("train") => Some(false),
                Some(other) => {
                    return Err(bad(format!("its split is `{other}`, not train or val")))
                }
            };
            let unit = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
            Ok((unit, is_val))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_their_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("documents.jsonl");
        let pair = Unit::Pair {
            source: "qa.csv (row 2)".into(),
            prompt: "Q?".into(),
            completion: "A.".into(),
            messages: None,
        };
        let text = Unit::Text {
            source: "a.txt".into(),
            text: "Some text.".into(),
        };
        let old = serde_json::to_string(&text).unwrap();
        let lines = [to_line(&pair, true), to_line(&text, false), old].join("\n");
        std::fs::write(&path, lines).unwrap();
        let got = read_lines(&path).unwrap();
        assert_eq!(
            got,
            vec![
                (pair, Some(true)),
                (text.clone(), Some(false)),
                (text, None)
            ]
        );
        std::fs::write(&path, r#"{"source":"x","text":"y","split":"test"}"#).unwrap();
        let e = read_lines(&path).unwrap_err().to_string();
        assert!(e.contains("documents.jsonl") && e.contains("`test`"), "{e}");
    }
}
