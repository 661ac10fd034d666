//! Atomic writes: a file or folder appears complete under its final name, or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A sibling temporary path: `.name.tmp-<pid>`.
pub fn temp_sibling(path: &Path) -> PathBuf {
    tagged_sibling(path, "tmp")
}

/// `.name.<tag>-<pid>` beside `path`: a name only this process uses.
fn tagged_sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Removes what an earlier process killed mid-write left beside `path`: `.NAME.tmp-PID…` and
/// `.NAME.old-PID` siblings whose process is gone (known on systems with `/proc`; elsewhere they
/// are left, as a live process's cannot be told apart).
pub fn sweep_stale_siblings(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = [
            format!(".{name}.tmp-"),
            format!(".{name}.old-"),
            format!(".{stem}.tmp-"),
        ]
        .iter()
        .find_map(|prefix| file.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split('.').next().unwrap_or_default().to_string());
        if !pid.as_deref().is_some_and(process_gone) {
            continue;
        }
        let p = entry.path();
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

/// Whether `pid` (decimal) names a process that no longer runs. Known only where `/proc` lists
/// processes (Linux); elsewhere, and for anything not a process id, false: what a live process
/// may still be writing is never taken for a leftover.
pub fn process_gone(pid: &str) -> bool {
    let proc = Path::new("/proc");
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && pid != std::process::id().to_string()
        && proc.join("self").exists()
        && !proc.join(pid).exists()
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Writes a file at `path` by handing `fill` a temporary sibling, then syncing and renaming it; on
/// any error (a full disk, a cancel) the temporary file is removed and nothing appears under
/// `path`.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Saves safetensors at `path` with the permissions a new file gets here. The safetensors crate
/// writes through a private temporary file (mode 0600), which would leave an export or a
/// checkpoint unreadable to the user's other accounts and tools (a shared models folder, a
/// container running Ollama) while every other file beside it is readable.
pub fn save_safetensors(
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    path: &Path,
) -> Result<()> {
    candle_core::safetensors::save(tensors, path)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    let probe = tagged_sibling(path, "mode");
    let mode = std::fs::File::create(&probe).and_then(|f| f.metadata());
    let _ = std::fs::remove_file(&probe);
    let perms = mode.map_err(|e| Error::io(path, e))?.permissions();
    std::fs::set_permissions(path, perms).map_err(|e| Error::io(path, e))
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    write_atomic(path, text.as_bytes())
}

/// Puts the complete folder `tmp` in place of `dir` (the old one, if any, is moved aside first and
/// removed only after the new one is in place, so a crash leaves one whole folder or the other).
pub fn replace_dir(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        let old = tagged_sibling(dir, "old");
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::rename(tmp, dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Appends one line to a log file (metrics, samples). The line and its newline go out in one
/// `write`, so a crash can at worst truncate the last line, which readers skip. A line torn that
/// way is ended first: the next process's line must not be glued onto it, or both would be lost.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let torn = ends_without_newline(&mut f).map_err(|e| Error::io(path, e))?;
    let mut buf = String::with_capacity(line.len() + 2);
    if torn {
        buf.push('\n');
    }
    buf.push_str(line);
    buf.push('\n');
    f.write_all(buf.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_without_newline(f: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if f.metadata()?.len() == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Whether `name` is a bare file name ending in `ext`: no folder separators, not hidden, `.` or
/// `..`, not absolute. For file names that come from downloaded or user-supplied indexes.
pub fn is_plain_file_name(name: &str, ext: &str) -> bool {
    name.len() > ext.len()
        && name.ends_with(ext)
        && !name.contains(['/', '\\', ':', '\0'])
        && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a killed process left beside a file goes; what this process or another file owns
    /// stays.
    #[test]
    fn leftovers_of_dead_processes_are_swept() {
        if !Path::new("/proc/self").exists() {
            return; // elsewhere nothing is known to be dead, so nothing is swept
        }
        let dir = tempfile::tempdir().unwrap();
        let dead = "4000000000"; // above any pid_max
        let me = std::process::id();
        let name = |n: &str| dir.path().join(n);
        for f in [
            format!(".m.gguf.tmp-{dead}"),
            format!(".m.tmp-{dead}.gguf"),
            format!(".m.gguf.tmp-{me}"),
            format!(".other.gguf.tmp-{dead}"),
        ] {
            std::fs::write(name(&f), b"x").unwrap();
        }
        std::fs::create_dir(name(&format!(".m.gguf.old-{dead}"))).unwrap();
        sweep_stale_siblings(&name("m.gguf"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            format!(".m.gguf.tmp-{me}"),
            format!(".other.gguf.tmp-{dead}"),
        ];
        want.sort();
        assert_eq!(left, want);
        assert!(!process_gone(&me.to_string()) && !process_gone("abc") && process_gone(dead));
    }

    #[test]
    fn a_line_torn_by_a_crash_is_not_glued_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        // A process killed between writing a line and its newline (or mid-line).
        std::fs::write(&p, "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"lo").unwrap();
        append_line(&p, r#"{"step":2,"loss":2.4}"#).unwrap();
        append_line(&p, r#"{"step":3,"loss":2.3}"#).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let whole: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["step"].as_u64().unwrap())
            .collect();
        assert_eq!(whole, vec![1, 2, 3], "{text:?}");
        assert!(text.ends_with("2.3}\n"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn plain_file_names_only() {
        assert!(is_plain_file_name(
            "model-00001-of-00002.safetensors",
            ".safetensors"
        ));
        for bad in [
            "../x.safetensors",
            "/etc/x.safetensors",
            "a/b.safetensors",
            "a\\b.safetensors",
            ".safetensors",
            "..safetensors",
            "x.bin",
            "C:x.safetensors",
        ] {
            assert!(!is_plain_file_name(bad, ".safetensors"), "{bad}");
        }
    }
}
