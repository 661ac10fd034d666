//! This machine's memory, and this process's peak use: for the Model page's "fits this machine"
//! and for the benchmark's memory figures.

/// Physical memory of this machine, in bytes.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemMemory {
    pub total_bytes: u64,
    /// What programs can still get without swapping (Linux's `MemAvailable`); the total where the
    /// system does not say.
    pub available_bytes: u64,
}

/// This machine's memory, where the system tells it (Linux, macOS).
pub fn system() -> Option<SystemMemory> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let total = meminfo_field(&text, "MemTotal:")?;
        let available = meminfo_field(&text, "MemAvailable:").unwrap_or(total);
        return Some(SystemMemory {
            total_bytes: total,
            available_bytes: available,
        });
    }
    // macOS: no /proc; `sysctl` reports the installed memory.
    let out = std::process::Command::new("sysctl")
        .args(["-n", "hw.memsize"])
        .output()
        .ok()?;
    let total: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(SystemMemory {
        total_bytes: total,
        available_bytes: total,
    })
}

/// The most resident memory this process has held so far (Linux's `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    meminfo_field(&text, "VmHWM:")
}

/// This process's resident memory now (Linux's `VmRSS`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    meminfo_field(&text, "VmRSS:")
}

/// Starts [`peak_rss_bytes`] counting afresh from now (Linux: writing 5 to `clear_refs` resets
/// `VmHWM`); elsewhere a no-op.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `Name:   1234 kB` line's value in bytes.
fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_fields() {
        let text = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   20480000 kB\n";
        assert_eq!(meminfo_field(text, "MemTotal:"), Some(24576000 * 1024));
        assert_eq!(meminfo_field(text, "MemAvailable:"), Some(20480000 * 1024));
        assert_eq!(meminfo_field(text, "SwapTotal:"), None);
        if cfg!(target_os = "linux") {
            let m = system().unwrap();
            assert!(m.total_bytes >= m.available_bytes && m.total_bytes > 1 << 28);
            assert!(peak_rss_bytes().unwrap() > 1 << 20);
        }
    }
}
