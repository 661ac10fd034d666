//! An Ollama folder: the GGUF file and a `Modelfile` (`FROM`, a `TEMPLATE` in Ollama's Go-template
//! syntax for the model's chat format, `PARAMETER stop …`, `SYSTEM`), made with one command:
//! `ollama create NAME -f Modelfile`.
//!
//! The Go template is derived from the model's own chat template by rendering marker messages and
//! reading off what surrounds each role's text (the beginning-of-text token, a default system
//! message the template adds, the generation prompt). A template that wraps turns irregularly
//! (the second user turn differently from the first, say) is refused rather than approximated.

use std::path::Path;

use super::{gguf, Quant};
use crate::chat::{self, ChatTemplate, Message};
use crate::model::load::Source;
use crate::progress::{CancelToken, ProgressSink};
use crate::{fsutil, Error, Result};

/// The GGUF file's name inside the folder.
pub const GGUF_FILE: &str = "model.gguf";

/// Writes the GGUF file and the Modelfile into `dir`; returns the file names.
pub fn write(
    src: &Source,
    quant: Quant,
    name: &str,
    system: Option<&str>,
    dir: &Path,
    cancel: &CancelToken,
    sink: &mut impl ProgressSink,
) -> Result<Vec<String>> {
    // The Modelfile first: a template Ollama cannot express fails before the long conversion.
    let text = modelfile(src, name, system)?;
    gguf::write(src, quant, name, &dir.join(GGUF_FILE), cancel, sink)?;
    fsutil::write_atomic(&dir.join("Modelfile"), text.as_bytes())?;
    Ok(vec![GGUF_FILE.into(), "Modelfile".into()])
}

/// Checks a model name as Ollama takes it: `name`, `namespace/name` or `host/namespace/name`,
/// with an optional `:tag`; letters,
/// digits, `_`, `-` and `.` (a name starts with a letter or digit).
pub fn check_name(name: &str) -> Result<()> {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 80
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    let (path, tag) = match name.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (name, None),
    };
    let mut parts = path.split('/');
    let ok = parts.clone().count() <= 3 && parts.all(part) && tag.is_none_or(part);
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            "name",
            format!(
                "is `{name}`, which Ollama does not take as a model name; use letters, digits, `-`, `_` and `.` (as `my-model` or `me/my-model:v2`)"
            ),
        ))
    }
}

/// The command that makes the Ollama model from the folder.
pub fn create_command(name: &str, dir: &Path) -> String {
    format!(
        "ollama create {name} -f {}",
        shell_quote(&dir.join("Modelfile").to_string_lossy())
    )
}

/// `s` as one word for a POSIX shell (single-quoted unless it is plain).
pub fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How a chat format wraps each turn, read off the model's template.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFormat {
    /// Text before everything (the beginning-of-text token written by the template).
    pub bos: String,
    pub system: (String, String),
    pub user: (String, String),
    pub assistant: (String, String),
    /// What follows the last turn for the model to reply.
    pub generation: String,
    /// A system message the template adds when the conversation has none.
    pub default_system: Option<String>,
}

const S: &str = "\u{1}SYS\u{1}";
const U: &str = "\u{1}USR\u{1}";
const U2: &str = "\u{1}US2\u{1}";
const A: &str = "\u{1}AST\u{1}";

impl TurnFormat {
    /// The format of `template`; `None` for the plain transcript.
    pub fn derive(template: &ChatTemplate) -> Result<Self> {
        let irregular = |why: &str| {
            Error::Unsupported {
            format: "Ollama".into(),
            message: format!(
                "its chat template {why}, which an Ollama TEMPLATE cannot express; export gguf instead (llama.cpp and LM Studio read the template from the file)"
            ),
        }
        };
        let r = |msgs: &[(&str, &str)], gen: bool| -> Result<String> {
            let m: Vec<Message> = msgs.iter().map(|(r, c)| Message::new(r, c)).collect();
            template.render(&m, gen, &Default::default())
        };
        let p_u = r(&[("user", U)], false)?;
        let p_ua = r(&[("user", U), ("assistant", A)], false)?;
        let p_uau = r(&[("user", U), ("assistant", A), ("user", U2)], false)?;
        let p_ug = r(&[("user", U)], true)?;
        let p_su = r(&[("system", S), ("user", U)], false)
            .map_err(|_| irregular("refuses system messages"))?;
        let user_turn = p_uau
            .strip_prefix(&p_ua)
            .ok_or_else(|| irregular("rewrites earlier turns as the conversation grows"))?;
        let user = split(user_turn, U2).ok_or_else(|| irregular("drops the user's text"))?;
        let assistant_turn = p_ua
            .strip_prefix(&p_u)
            .ok_or_else(|| irregular("rewrites earlier turns as the conversation grows"))?;
        let assistant =
            split(assistant_turn, A).ok_or_else(|| irregular("drops the assistant's text"))?;
        let generation = p_ug
            .strip_prefix(&p_u)
            .ok_or_else(|| irregular("changes earlier turns when asked for a reply"))?
            .to_string();
        let first_user = format!("{}{U}{}", user.0, user.1);
        let head = p_u
            .strip_suffix(&first_user)
            .ok_or_else(|| irregular("wraps the first user turn differently from later ones"))?;
        let head_s = p_su
            .strip_suffix(&first_user)
            .ok_or_else(|| irregular("wraps the first user turn differently from later ones"))?;
        // The beginning-of-text token, when the template writes it (`bos_token`).
        let bos = template
            .tokens
            .get("bos_token")
            .and_then(|b| b.as_str())
            .filter(|b| !b.is_empty() && template.source.contains("bos_token"))
            .filter(|b| head_s.starts_with(b) && head.starts_with(b))
            .unwrap_or_default()
            .to_string();
        let head = &head[bos.len()..];
        let system =
            split(&head_s[bos.len()..], S).ok_or_else(|| irregular("drops the system message"))?;
        let default_system = if head.is_empty() {
            None
        } else {
            let inner = head
                .strip_prefix(&system.0)
                .and_then(|h| h.strip_suffix(&system.1))
                .ok_or_else(|| irregular("adds text of its own before the conversation"))?;
            Some(inner.to_string())
        };
        let f = TurnFormat {
            bos,
            system,
            user,
            assistant,
            generation,
            default_system,
        };
        if f.pieces()
            .iter()
            .any(|p| p.contains("{{") || p.contains("\"\"\""))
        {
            return Err(irregular("contains `{{` or `\"\"\"`"));
        }
        Ok(f)
    }

    fn pieces(&self) -> Vec<&str> {
        vec![
            &self.bos,
            &self.system.0,
            &self.system.1,
            &self.user.0,
            &self.user.1,
            &self.assistant.0,
            &self.assistant.1,
            &self.generation,
        ]
    }

    /// The prompt for `messages` in this format, as Ollama renders the TEMPLATE: a default system
    /// message first when there is none (Ollama adds the Modelfile's SYSTEM so), then each turn,
    /// then the generation prompt.
    pub fn render(&self, messages: &[Message]) -> String {
        let mut out = self.bos.clone();
        let has_system = messages.iter().any(|m| m.role == "system");
        if let (false, Some(d)) = (has_system, &self.default_system) {
            out.push_str(&format!("{}{d}{}", self.system.0, self.system.1));
        }
        for m in messages {
            let (pre, post) = match m.role.as_str() {
                "system" => &self.system,
                "user" => &self.user,
                _ => &self.assistant,
            };
            out.push_str(&format!("{pre}{}{post}", m.content));
        }
        out.push_str(&self.generation);
        out
    }

    /// The same as an Ollama Go template over `.Messages`.
    pub fn go_template(&self) -> String {
        let turn = |role: &str, (pre, post): &(String, String)| {
            format!("{{{{ if eq .Role \"{role}\" }}}}{pre}{{{{ .Content }}}}{post}{{{{ end }}}}")
        };
        // Llama 3.x templates print the day they are rendered ("Today Date: 02 Dec 2026"); in a
        // Modelfile that day would be frozen at export, so the line is left out, as Ollama's own
        // Llama 3.2 template does.
        let system_open: String = self
            .system
            .0
            .split_inclusive('\n')
            .filter(|line| !line.starts_with("Today Date: "))
            .collect();
        format!(
            "{}{{{{ range .Messages }}}}{}{}{}{{{{ end }}}}{}",
            self.bos,
            turn("system", &(system_open, self.system.1.clone())),
            turn("user", &self.user),
            turn("assistant", &self.assistant),
            self.generation
        )
    }

    /// Where a reply ends: the assistant turn's closing text up to its first line break.
    fn stop(&self) -> Option<String> {
        let end = self.assistant.1.trim_start();
        let end = end.split('\n').next().unwrap_or_default().trim();
        (!end.is_empty()).then(|| end.to_string())
    }
}

/// `text` split around its one occurrence of `marker`.
fn split(text: &str, marker: &str) -> Option<(String, String)> {
    let (a, b) = text.split_once(marker)?;
    (!b.contains(marker)).then(|| (a.to_string(), b.to_string()))
}

/// The Modelfile for `src`.
pub fn modelfile(src: &Source, name: &str, system: Option<&str>) -> Result<String> {
    let mut out = format!(
        "# Made by Tunesmith. To use it in Ollama, run in this folder:\n#   ollama create {name} -f Modelfile\n#   ollama run {name}\nFROM ./{GGUF_FILE}\n"
    );
    let mut stops: Vec<String> = Vec::new();
    let default_system = match &src.template {
        Some(t) => {
            let f = TurnFormat::derive(t)?;
            out.push_str(&format!("TEMPLATE \"\"\"{}\"\"\"\n", f.go_template()));
            stops.extend(f.stop());
            f.default_system.clone()
        }
        None => {
            // The plain transcript the model was trained on (`chat::transcript`).
            out.push_str(concat!(
                "TEMPLATE \"\"\"{{ range $i, $m := .Messages }}{{ if $i }}\n{{ end }}",
                "{{ if eq .Role \"user\" }}User: {{ .Content }}",
                "{{ else if eq .Role \"assistant\" }}Assistant: {{ .Content }}",
                "{{ else }}{{ .Content }}{{ end }}{{ end }}\nAssistant:\"\"\"\n"
            ));
            stops.push(chat::TRANSCRIPT_STOP.trim().to_string());
            None
        }
    };
    for id in src.config.eos_ids() {
        if let Some(t) = src.tokenizer.id_to_token(id) {
            if !stops.contains(&t) {
                stops.push(t);
            }
        }
    }
    for s in &stops {
        out.push_str(&format!("PARAMETER stop {}\n", quote(s)));
    }
    if let Some(s) = system
        .map(String::from)
        .or(default_system)
        .filter(|s| !s.is_empty())
    {
        if s.contains("\"\"\"") {
            return Err(Error::config(
                "system",
                "contains `\"\"\"`, which a Modelfile cannot hold; rephrase it",
            ));
        }
        out.push_str(&format!("SYSTEM \"\"\"{s}\"\"\"\n"));
    }
    Ok(out)
}

/// A Modelfile string value.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn ollama_names_are_checked() {
        for good in [
            "book",
            "my-model",
            "me/my_model:v2",
            "a.b-c",
            "host/ns/model",
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "my model",
            "a\nFROM evil",
            "a/b/c/d",
            "x:",
            "naïve",
            "a;rm",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    fn template(dir: &str) -> ChatTemplate {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/chat-templates")
            .join(dir);
        ChatTemplate::load(&path).unwrap().unwrap()
    }

    /// For each real template: the derived turn format renders conversations exactly as the
    /// template does (with its default system message where it adds one).
    #[test]
    fn turn_formats_render_as_the_templates_do() {
        let convos = [
            vec![Message::new("user", "Hi")],
            vec![
                Message::new("system", "Be brief."),
                Message::new("user", "Hi"),
                Message::new("assistant", "Hello!"),
                Message::new("user", "Refunds?"),
            ],
        ];
        for dir in ["smollm2", "qwen2.5", "tinyllama", "llama3.2"] {
            let t = template(dir);
            let f = TurnFormat::derive(&t).unwrap();
            for m in &convos {
                assert_eq!(
                    f.render(m),
                    t.render(m, true, &Default::default()).unwrap(),
                    "{dir}"
                );
            }
        }
        let smol = TurnFormat::derive(&template("smollm2")).unwrap();
        assert_eq!(
            smol.user,
            ("<|im_start|>user\n".into(), "<|im_end|>\n".into())
        );
        assert_eq!(smol.generation, "<|im_start|>assistant\n");
        assert!(smol.default_system.unwrap().contains("SmolLM"));
        assert_eq!(
            TurnFormat::derive(&template("qwen2.5")).unwrap().go_template(),
            concat!(
                "{{ range .Messages }}",
                "{{ if eq .Role \"system\" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n{{ end }}",
                "{{ if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n{{ end }}",
                "{{ if eq .Role \"assistant\" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n{{ end }}",
                "{{ end }}<|im_start|>assistant\n"
            )
        );
    }

    /// Llama 3.2's turns, without the day of the export frozen into the system turn.
    #[test]
    fn llama3_turns_leave_out_the_export_date() {
        let f = TurnFormat::derive(&template("llama3.2")).unwrap();
        assert_eq!(f.user.0, "<|start_header_id|>user<|end_header_id|>\n\n");
        assert_eq!(f.assistant.1, "<|eot_id|>");
        assert_eq!(f.stop().as_deref(), Some("<|eot_id|>"));
        let go = f.go_template();
        assert!(
            go.contains("Cutting Knowledge Date: December 2023\n\n{{ .Content }}"),
            "{go}"
        );
        assert!(!go.contains("Today Date"), "{go}");
    }

    /// A template that treats the first turn unlike the others is refused with a reason.
    #[test]
    fn irregular_templates_are_refused() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if not loop.first %}{{ '\n' }}{% endif %}{{ m['content'] }}{% endfor %}".into(),
            Default::default(),
            PathBuf::from("x"),
        );
        let e = TurnFormat::derive(&t).unwrap_err().to_string();
        assert!(e.contains("Ollama") && e.contains("export gguf"), "{e}");
    }
}
