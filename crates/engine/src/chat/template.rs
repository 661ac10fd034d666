//! A model's chat template, rendered with minijinja the way transformers' `apply_chat_template`
//! renders it with jinja2: `trim_blocks` and `lstrip_blocks`, loop controls, Python's string and
//! dict methods (`.strip()`, `.items()`, …), `raise_exception`, `strftime_now`, a `tojson` that
//! writes what Python's `json.dumps` writes, and the tokenizer's special tokens as variables.

use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind, Value};
use serde_json::Value as Json;

use super::Message;
use crate::{Error, Result};

/// A chat template with the special tokens it may refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    pub source: String,
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` as the tokenizer config names them.
    pub tokens: serde_json::Map<String, Json>,
    /// Where it was read from, for error messages.
    pub origin: PathBuf,
}

impl ChatTemplate {
    /// The template of a model folder: `chat_template.jinja` (transformers' current layout), else
    /// `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates of which
    /// `default` is taken). `None` when the model has none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config: Json = if config_path.is_file() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| Error::model(&config_path, format!("it is not valid JSON ({e})")))?
        } else {
            Json::Null
        };
        let jinja = dir.join("chat_template.jinja");
        let (source, origin) = if jinja.is_file() {
            let s = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
            (s, jinja)
        } else {
            match config.get("chat_template") {
                Some(Json::String(s)) => (s.clone(), config_path.clone()),
                Some(Json::Array(list)) => {
                    let default = list
                        .iter()
                        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                        .and_then(|t| t.get("template"))
                        .and_then(|t| t.as_str());
                    match default {
                        Some(s) => (s.to_string(), config_path.clone()),
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        };
        Ok(Some(ChatTemplate {
            source,
            tokens: special_tokens(&config),
            origin,
        }))
    }

    /// A template given as text (from a GGUF file, say), with its special tokens.
    pub fn new(source: String, tokens: serde_json::Map<String, Json>, origin: PathBuf) -> Self {
        ChatTemplate {
            source,
            tokens,
            origin,
        }
    }

    /// The prompt for `messages`: with `add_generation_prompt`, ending where the assistant's reply
    /// begins. `extra` adds variables (transformers passes its keyword arguments the same way).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, Json>,
    ) -> Result<String> {
        let env = environment();
        let fail = |e: minijinja::Error| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            Error::model(
                &self.origin,
                format!(
                    "its chat template could not be rendered ({msg}); fix or remove the template"
                ),
            )
        };
        let tmpl = env.template_from_str(&self.source).map_err(fail)?;
        let mut ctx = self.tokens.clone();
        ctx.insert(
            "messages".into(),
            serde_json::to_value(messages).expect("messages serialise"),
        );
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        for (k, v) in extra {
            ctx.insert(k.clone(), v.clone());
        }
        tmpl.render(Value::from_serialize(&ctx)).map_err(fail)
    }
}

/// The special tokens of a `tokenizer_config.json`, each a string or an `AddedToken` object.
fn special_tokens(config: &Json) -> serde_json::Map<String, Json> {
    let mut out = serde_json::Map::new();
    for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
        let text = match config.get(key) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(String::from),
            _ => None,
        };
        if let Some(t) = text {
            out.insert(key.into(), t.into());
        }
    }
    out
}

/// Instructions a template may run per rendering.
const FUEL: u64 = 20_000_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // A template comes with a downloaded model: it cannot read files (there is no loader), and it
    // may only run so long. Real templates use a few thousand steps per message.
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        },
    );
    env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
    env.add_filter("tojson", tojson);
    env
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`: `", "` and `": "` between
/// items when not indented, keys in their own order, non-ASCII text kept as it is.
fn tojson(value: Value, indent: Option<usize>) -> std::result::Result<String, minijinja::Error> {
    let mut out = String::new();
    write_json(&value, indent, 0, &mut out)?;
    Ok(out)
}

fn write_json(
    v: &Value,
    indent: Option<usize>,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    let (open, close) = match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => ('[', ']'),
        ValueKind::Map => ('{', '}'),
        ValueKind::Undefined | ValueKind::None => {
            out.push_str("null");
            return Ok(());
        }
        ValueKind::Bool => {
            out.push_str(if v.is_true() { "true" } else { "false" });
            return Ok(());
        }
        ValueKind::Number => {
            let n: Json = serde_json::to_value(v).map_err(|e| {
                minijinja::Error::new(ErrorKind::InvalidOperation, "cannot write a number as JSON")
                    .with_source(e)
            })?;
            out.push_str(&n.to_string());
            return Ok(());
        }
        _ => {
            let s = v.as_str().map_or_else(|| v.to_string(), String::from);
            out.push_str(&Json::String(s).to_string());
            return Ok(());
        }
    };
    out.push(open);
    let mut empty = true;
    for (i, item) in v.try_iter()?.enumerate() {
        empty = false;
        if i > 0 {
            out.push_str(sep);
        }
        newline(out, depth + 1);
        if open == '{' {
            let key = item.as_str().map_or_else(|| item.to_string(), String::from);
            out.push_str(&Json::String(key).to_string());
            out.push_str(": ");
            write_json(&v.get_item(&item)?, indent, depth + 1, out)?;
        } else {
            write_json(&item, indent, depth + 1, out)?;
        }
    }
    if !empty {
        newline(out, depth);
    }
    out.push(close);
    Ok(())
}

/// Today's date (UTC) in a `strftime` format, for templates that print it (Llama 3.x). Knows the
/// directives such templates use: `%d %b %B %Y %m %y %e %%`.
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_date(secs / 86_400, fmt)
}

/// Formats day number `days` since 1970-01-01.
fn format_date(days: u64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    // Civil date from a day count (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:2}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('b') => out.push_str(&name[..3]),
            Some('B') => out.push_str(name),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn dates_format_like_strftime() {
        // 2024-07-26 is day 19930.
        assert_eq!(format_date(19_930, "%d %b %Y"), "26 Jul 2024");
        assert_eq!(format_date(0, "%Y-%m-%d %B %%"), "1970-01-01 January %");
        assert_eq!(format_date(11_016, "%d %b %Y"), "29 Feb 2000");
    }

    #[test]
    fn tojson_writes_what_python_writes() {
        let list = Value::from(vec![Value::from(1), Value::from("é")]);
        let empty: Vec<(String, Value)> = Vec::new();
        let v = Value::from_iter([
            ("b".to_string(), list),
            ("a".to_string(), Value::from_iter(empty)),
        ]);
        assert_eq!(
            tojson(v.clone(), None).unwrap(),
            r#"{"b": [1, "é"], "a": {}}"#
        );
        assert_eq!(
            tojson(v, Some(2)).unwrap(),
            "{\n  \"b\": [\n    1,\n    \"é\"\n  ],\n  \"a\": {}\n}"
        );
    }

    #[test]
    fn python_methods_loop_controls_and_errors() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if m.role == 'skip' %}{% continue %}{% endif %}\
             {{ m['content'].strip().upper() }}{% if not loop.last %}|{% endif %}{% endfor %}\
             {% if add_generation_prompt %}{{ eos_token }}{% endif %}"
                .into(),
            serde_json::Map::from_iter([("eos_token".to_string(), Json::from("</s>"))]),
            PathBuf::from("model"),
        );
        let out = t
            .render(
                &[
                    msg("user", " hi "),
                    msg("skip", "x"),
                    msg("assistant", "yo"),
                ],
                true,
                &Default::default(),
            )
            .unwrap();
        assert_eq!(out, "HI|YO</s>");
        let bad = ChatTemplate::new(
            "{{ raise_exception('Conversation roles must alternate') }}".into(),
            Default::default(),
            PathBuf::from("some-model/tokenizer_config.json"),
        );
        let e = bad
            .render(&[], false, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("roles must alternate") && e.contains("some-model"),
            "{e}"
        );
        // A template that would run for ever runs out of fuel instead.
        let endless = ChatTemplate::new(
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
                .into(),
            Default::default(),
            PathBuf::from("loop-model"),
        );
        let e = endless
            .render(&[], false, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("loop-model"), "{e}");
        // Nor can it read files: there is nothing to include from.
        let include = ChatTemplate::new(
            "{% include '/etc/passwd' %}".into(),
            Default::default(),
            PathBuf::from("m"),
        );
        assert!(include.render(&[], false, &Default::default()).is_err());
    }
}
