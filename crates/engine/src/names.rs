//! The one rule for names a user gives things that become folders (runs, datasets): a plain folder
//! name that is safe on Linux, macOS and Windows alike, so a run made on one machine can be copied
//! to another and no name can reach outside the folder it is meant for.

use crate::{Error, Result};

/// Longest name accepted, in characters (well under every file system's 255-byte limit, leaving
/// room for the temporary suffixes Tunesmith adds while writing).
pub const MAX_LEN: usize = 100;

/// Characters Windows refuses in file names (besides control characters).
const FORBIDDEN: &[char] = &['/', '\\', ':', '*', '?', '"', '<', '>', '|'];

/// Device names Windows reserves in every folder, with or without an extension (`nul.txt` too).
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6",
    "LPT7", "LPT8", "LPT9",
];

/// Checks `name` (already trimmed by the caller or not: surrounding spaces are refused) and returns
/// it. `field` names the setting in the error, e.g. `name` or `newName`.
pub fn validate_name<'a>(field: &str, name: &'a str) -> Result<&'a str> {
    let bad = |why: &str| Err(Error::config(field, format!("{why}; {}", advice())));
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name.chars().count() > MAX_LEN {
        return bad(&format!("is longer than {MAX_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character (such as a line break or tab)");
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return bad(&format!(
            "contains `{c}`, which cannot be used in a folder name"
        ));
    }
    if name.starts_with('.') {
        return bad("starts with a dot (Tunesmith keeps such names for its own temporary folders)");
    }
    if name.ends_with(['.', ' ']) || name.starts_with(' ') {
        return bad("starts or ends with a space, or ends with a dot");
    }
    // `CON`, `con.txt`, `Com1.tar.gz`: Windows looks at the part before the first dot.
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return bad(&format!("`{stem}` is a name Windows reserves for a device"));
    }
    Ok(name)
}

fn advice() -> String {
    format!(
        "use letters, digits, spaces, `-` or `_` (up to {MAX_LEN} characters), for example `my-notes 2`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in [
            "first",
            "my notes 2",
            "run_1-b",
            "v1.2",
            "Überschrift",
            "漢字",
        ] {
            assert_eq!(validate_name("name", ok).unwrap(), ok);
        }
    }

    #[test]
    fn names_that_leave_the_folder_or_break_windows_fail() {
        let long = "a".repeat(MAX_LEN + 1);
        for bad in [
            "",
            "   ",
            "..",
            ".",
            "../x",
            "..\\x",
            "a/b",
            "/abs",
            "C:foo",
            "C:\\x",
            ".hidden",
            "CON",
            "con",
            "nul.txt",
            "Com1.tar.gz",
            "LPT9",
            "aux .md",
            "trailing.",
            "trailing ",
            " leading",
            "tab\there",
            "line\nbreak",
            "what?",
            "a*b",
            long.as_str(),
        ] {
            let e = validate_name("name", bad).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("`name`"), "{bad:?}: {msg}");
            assert!(msg.contains("use letters"), "{bad:?}: {msg}");
            assert_eq!(e.kind(), "config");
        }
        // Names that merely contain a reserved word are fine.
        validate_name("name", "console").unwrap();
        validate_name("name", "com10").unwrap();
    }
}
