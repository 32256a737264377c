//! CPU time and peak memory of processes, from `/proc` (Linux).

use std::sync::OnceLock;

/// CPU time (user + system) of process `pid` so far, in microseconds, from `/proc/<pid>/stat`
/// (all threads, exited ones included). `None` if the process is gone.
pub fn cpu_micros(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state (field 3 is index 0).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / clock_ticks())
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB. `None` if the process is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux in practice).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU used by a set of processes between two points in time.
#[derive(Debug)]
pub struct CpuWindow {
    start: Vec<(u32, u64)>,
}

impl CpuWindow {
    /// Starts measuring `pids`.
    pub fn start(pids: &[u32]) -> Self {
        Self {
            start: pids
                .iter()
                .map(|&p| (p, cpu_micros(p).unwrap_or(0)))
                .collect(),
        }
    }

    /// CPU microseconds used by each process since [`CpuWindow::start`], in the same order.
    pub fn stop(&self) -> Vec<u64> {
        self.start
            .iter()
            .map(|&(p, t0)| cpu_micros(p).unwrap_or(t0).saturating_sub(t0))
            .collect()
    }
}
