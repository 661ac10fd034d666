//! Tables (.csv, .tsv) and JSON (.json, .jsonl): running text, or supervised examples when the
//! data says so — `{"prompt", "completion"}`, `{"messages": [{role, content}…]}`, or two chosen
//! table columns. Bad JSONL lines are reported by line number and the good ones kept.

use std::path::Path;

use serde_json::Value;

use super::{Example, Imported, Section};
use crate::{Error, Result};

/// The plain transcript chat examples are trained on; the app's Chat page sends the same cue
/// (ui/src/stores/chat.ts), so a model trained on pairs answers there in the format it learned.
pub const USER: &str = "User:";
pub const ASSISTANT: &str = "Assistant:";

/// A table: with `pairs`, each row is an example (prompt column → completion column); without,
/// each row is a paragraph of "column: value" lines.
pub fn table(
    path: &Path,
    text: &str,
    tabs: bool,
    pairs: Option<&(String, String)>,
) -> Result<Imported> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tabs { b'\t' } else { b',' })
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| {
        Error::file(
            path,
            format!(
                "is not a readable table ({e}); check that it is saved as {}",
                if tabs { "tab-separated text" } else { "CSV" }
            ),
        )
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let mut out = Imported::default();
    // Tables without the chosen columns (another table in the same folder) are read as text.
    let pair_idx = match pairs {
        Some((p, c)) => match (column(p), column(c)) {
            (Some(p), Some(c)) => Some((p, c)),
            _ => {
                out.warnings.push(format!(
                    "has no columns named `{p}` and `{c}` (its columns are: {}), so it was read as text",
                    headers.join(", ")
                ));
                None
            }
        },
        None => None,
    };
    for (i, row) in reader.records().enumerate() {
        // Line numbers as a spreadsheet shows them: the header is row 1.
        let location = format!("row {}", i + 2);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                out.warnings.push(format!("{location}: skipped ({e})"));
                continue;
            }
        };
        match pair_idx {
            Some((p, c)) => {
                let (prompt, completion) = (
                    row.get(p).unwrap_or("").trim(),
                    row.get(c).unwrap_or("").trim(),
                );
                if prompt.is_empty() || completion.is_empty() {
                    out.warnings.push(format!(
                        "{location}: skipped (an empty prompt or completion)"
                    ));
                    continue;
                }
                out.examples.push(Example {
                    location,
                    prompt: prompt.to_string(),
                    completion: completion.to_string(),
                    messages: None,
                });
            }
            None => {
                let lines: Vec<String> = row
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !v.trim().is_empty())
                    .map(|(j, v)| match headers.get(j).filter(|h| !h.is_empty()) {
                        Some(h) => format!("{h}: {}", v.trim()),
                        None => v.trim().to_string(),
                    })
                    .collect();
                if !lines.is_empty() {
                    out.sections.push(Section {
                        location,
                        text: lines.join("\n"),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A .json file: one item or an array of items.
pub fn json(path: &Path, text: &str) -> Result<Imported> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::file(
            path,
            format!(
                "is not valid JSON (line {}, column {}: {e}); fix it or remove it from the list",
                e.line(),
                e.column()
            ),
        )
    })?;
    let mut out = Imported::default();
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                if let Err(why) = add_item(&mut out, item, format!("item {}", i + 1)) {
                    out.warnings.push(why);
                }
            }
        }
        item => {
            if let Err(why) = add_item(&mut out, item, String::new()) {
                return Err(Error::file(path, why));
            }
        }
    }
    Ok(out)
}

/// A .jsonl file: one item per line; bad lines become warnings naming their line numbers.
pub fn jsonl(path: &Path, text: &str) -> Result<Imported> {
    let mut out = Imported::default();
    let mut good = 0;
    let mut bad_lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let location = format!("line {}", i + 1);
        let result = serde_json::from_str::<Value>(line)
            .map_err(|e| format!("{location}: not valid JSON ({e})"))
            .and_then(|v| add_item(&mut out, v, location));
        match result {
            Ok(()) => good += 1,
            Err(why) => {
                bad_lines.push(i + 1);
                out.warnings.push(why);
            }
        }
    }
    if good == 0 && !bad_lines.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "has no usable lines ({}); each line must be a JSON object such as {{\"prompt\": …, \"completion\": …}} or {{\"text\": …}}",
                out.warnings.first().map_or("", String::as_str)
            ),
        ));
    }
    Ok(out)
}

/// One JSON item into `out`; `Err` is a plain reason naming `location`.
fn add_item(out: &mut Imported, item: Value, location: String) -> std::result::Result<(), String> {
    let at = |what: &str| {
        if location.is_empty() {
            what.to_string()
        } else {
            format!("{location}: {what}")
        }
    };
    match item {
        Value::String(s) => {
            out.sections.push(Section { location, text: s });
            Ok(())
        }
        Value::Object(map) => {
            if map.contains_key("prompt") || map.contains_key("completion") {
                let field = |k: &str| {
                    map.get(k)
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                };
                let (Some(prompt), Some(completion)) = (field("prompt"), field("completion"))
                else {
                    return Err(at(
                        "skipped: an example needs both \"prompt\" and \"completion\" as text",
                    ));
                };
                out.examples.push(Example {
                    location,
                    prompt: prompt.into(),
                    completion: completion.into(),
                    messages: None,
                });
                return Ok(());
            }
            if let Some(messages) = map.get("messages") {
                let before = out.examples.len();
                chat_examples(messages, &location, &mut out.examples).map_err(|w| at(&w))?;
                return if out.examples.len() > before {
                    Ok(())
                } else {
                    Err(at("skipped: no assistant reply to learn"))
                };
            }
            let text_field = ["text", "content", "body"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str));
            let text = match text_field {
                Some(body) => {
                    let title = map
                        .get("title")
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|t| !t.is_empty());
                    match title {
                        Some(t) => format!("{t}\n\n{}", body.trim()),
                        None => body.trim().to_string(),
                    }
                }
                // Any other record: its text fields, one "key: value" line each.
                None => map
                    .iter()
                    .filter_map(|(k, v)| {
                        v.as_str()
                            .filter(|s| !s.trim().is_empty())
                            .map(|s| format!("{k}: {}", s.trim()))
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            if text.trim().is_empty() {
                return Err(at("skipped: no text in this item"));
            }
            out.sections.push(Section { location, text });
            Ok(())
        }
        _ => Err(at("skipped: expected a JSON object or a string")),
    }
}

/// A conversation becomes one example per assistant turn: everything before it is the prompt.
fn chat_examples(
    messages: &Value,
    location: &str,
    out: &mut Vec<Example>,
) -> std::result::Result<(), String> {
    let turns = messages
        .as_array()
        .ok_or("\"messages\" must be a list of {role, content}")?;
    let mut transcript: Vec<String> = Vec::new();
    let mut conversation: Vec<crate::chat::Message> = Vec::new();
    for turn in turns {
        let role = turn.get("role").and_then(Value::as_str).unwrap_or("");
        let content = turn
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        if matches!(role, "system" | "user" | "assistant") {
            // Pushed after the match for an assistant turn (its example holds it already).
            if role != "assistant" {
                conversation.push(crate::chat::Message::new(role, content));
            }
        }
        match role {
            "system" => transcript.push(content.to_string()),
            "user" => transcript.push(format!("{USER} {content}")),
            "assistant" => {
                if !content.is_empty() && !transcript.is_empty() {
                    let mut messages = conversation.clone();
                    messages.push(crate::chat::Message::new("assistant", content));
                    out.push(Example {
                        location: location.to_string(),
                        prompt: format!("{}\n{ASSISTANT}", transcript.join("\n")),
                        completion: content.to_string(),
                        messages: Some(messages),
                    });
                }
                transcript.push(format!("{ASSISTANT} {content}"));
                conversation.push(crate::chat::Message::new("assistant", content));
            }
            other => {
                return Err(format!(
                    "unknown role `{other}` (use system, user or assistant)"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_as_text_or_pairs() {
        let p = Path::new("t.csv");
        let csv = "name,price,note\nWidget,\"1,50\",\"two\nlines\"\nGadget,3,\n";
        let t = table(p, csv, false, None).unwrap();
        assert_eq!(
            t.sections[0].text,
            "name: Widget\nprice: 1,50\nnote: two\nlines"
        );
        assert_eq!(t.sections[1].text, "name: Gadget\nprice: 3");
        let tsv = "question\tanswer\nWhat is it?\tA widget.\n\tmissing\n";
        let pairs = table(p, tsv, true, Some(&("Question".into(), "answer".into()))).unwrap();
        assert_eq!(pairs.examples.len(), 1);
        assert_eq!(pairs.examples[0].completion, "A widget.");
        assert!(pairs.warnings[0].starts_with("row 3"));
        let text = table(p, tsv, true, Some(&("q".into(), "answer".into()))).unwrap();
        assert!(text.warnings[0].contains("read as text"));
        assert_eq!(
            text.sections[0].text,
            "question: What is it?\nanswer: A widget."
        );
    }

    #[test]
    fn jsonl_keeps_good_lines_and_names_bad_ones() {
        let p = Path::new("d.jsonl");
        let text = "{\"prompt\":\"a\",\"completion\":\"b\"}\n{oops\n{\"prompt\":\"c\"}\n\n{\"text\":\"plain\"}\n";
        let r = jsonl(p, text).unwrap();
        assert_eq!(r.examples.len(), 1);
        assert_eq!(r.sections[0].text, "plain");
        assert!(r.warnings[0].starts_with("line 2: not valid JSON"));
        assert!(r.warnings[1].starts_with("line 3: skipped"));
        assert!(jsonl(p, "nope\n")
            .unwrap_err()
            .to_string()
            .contains("no usable lines"));
    }

    #[test]
    fn chats_become_one_example_per_reply() {
        let p = Path::new("c.jsonl");
        let line = r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."},{"role":"user","content":"Refunds?"},{"role":"assistant","content":"30 days."}]}"#;
        let r = jsonl(p, line).unwrap();
        assert_eq!(r.examples.len(), 2);
        assert_eq!(
            r.examples[1].prompt,
            "Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Refunds?\nAssistant:"
        );
        assert_eq!(r.examples[1].completion, "30 days.");
    }

    #[test]
    fn json_arrays_of_articles() {
        let p = Path::new("a.json");
        let r = json(p, r#"[{"title":"T","text":"Body."},"loose", 3]"#).unwrap();
        assert_eq!(r.sections[0].text, "T\n\nBody.");
        assert_eq!(r.sections[1].text, "loose");
        assert_eq!(
            r.warnings,
            ["item 3: skipped: expected a JSON object or a string"]
        );
        assert!(json(p, "{")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
    }
}
