//! Conversations with a model, kept in its run folder as `chats/<id>.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{fsutil, Error, Result};

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// Who wrote a message; serialised as `user` or `assistant`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// How a conversation prompts the model: `chat` (turns; the transcript so far is the prompt) or
/// `complete` (raw continuation of the latest text).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatMode {
    Chat,
    Complete,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: String,
    pub title: String,
    pub mode: ChatMode,
    pub messages: Vec<ChatMessage>,
    pub updated_unix: u64,
}

/// The run's `chats/` folder. A link there (or a file) is refused: the run folder is confined to
/// Tunesmith's data folder, but a `chats` link inside it would carry reads and writes anywhere.
fn chat_dir(run: &Path) -> Result<PathBuf> {
    let dir = run.join("chats");
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Error::config(
            dir.display().to_string(),
            "is not a folder (a link or a file): chats are kept only in a real `chats` folder",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(dir),
        Err(e) => Err(Error::io(&dir, e)),
    }
}

/// Every chat of a run, newest first; unreadable files (and links) are skipped.
pub fn list(run: &Path) -> Vec<Chat> {
    let Ok(dir) = chat_dir(run) else {
        return Vec::new();
    };
    let mut chats: Vec<Chat> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
        .collect();
    chats.sort_by_key(|c| std::cmp::Reverse(c.updated_unix));
    chats
}

/// Saves (or replaces) a chat atomically.
pub fn save(run: &Path, chat: &Chat) -> Result<()> {
    let ok = !chat.id.is_empty()
        && chat
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(Error::config("chat.id", "must be letters, digits, - or _"));
    }
    fsutil::write_json(&chat_dir(run)?.join(format!("{}.json", chat.id)), chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_round_trip_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |id: &str, t| Chat {
            id: id.into(),
            title: id.into(),
            mode: ChatMode::Chat,
            messages: vec![ChatMessage {
                role: Role::User,
                content: "hi".into(),
            }],
            updated_unix: t,
        };
        save(dir.path(), &mk("a", 1)).unwrap();
        save(dir.path(), &mk("b", 2)).unwrap();
        let got = list(dir.path());
        assert_eq!(
            got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(save(dir.path(), &mk("../x", 3)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_chats_folder_is_neither_read_nor_written() {
        let run = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let chat = Chat {
            id: "c1".into(),
            title: "t".into(),
            mode: ChatMode::Chat,
            messages: vec![],
            updated_unix: 1,
        };
        save(outside.path(), &chat).unwrap(); // outside/chats/c1.json
        std::os::unix::fs::symlink(outside.path().join("chats"), run.path().join("chats")).unwrap();
        let err = save(run.path(), &chat).unwrap_err().to_string();
        assert!(err.contains("chats"), "{err}");
        assert!(list(run.path()).is_empty());
        // A link to a chat file inside a real `chats` folder is not read either.
        let run2 = tempfile::tempdir().unwrap();
        std::fs::create_dir(run2.path().join("chats")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("chats/c1.json"),
            run2.path().join("chats/c1.json"),
        )
        .unwrap();
        assert!(list(run2.path()).is_empty());
    }

    #[test]
    fn chat_files_written_before_the_enums_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("chats")).unwrap();
        let old = r#"{"id":"c1","title":"Refunds","mode":"complete","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],"updatedUnix":7}"#;
        std::fs::write(dir.path().join("chats/c1.json"), old).unwrap();
        let got = list(dir.path());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].mode, ChatMode::Complete);
        let roles: Vec<Role> = got[0].messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant]);
        // Saved again, it is byte-for-byte the old format.
        assert_eq!(serde_json::to_string(&got[0]).unwrap(), old);
    }
}
