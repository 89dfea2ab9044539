//! CPU time of a process, from `/proc` (Linux), for benchmarks that report CPU per unit of work.

use std::process::Command;

/// User + system CPU time of process `pid` so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat_name_and_ticks(&stat).expect("a /proc stat line").1
}

/// The command name and user + system CPU ticks of a `/proc/.../stat` line (a process's, or a
/// thread's under `/proc/<pid>/task`).
pub fn stat_name_and_ticks(stat: &str) -> Option<(&str, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((&stat[open + 1..close], ticks))
}

/// Clock ticks per second.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
