//! The facts of the machine a report was measured on: cores, CPU, memory, kernel, the versions
//! of everything in the run, the commit.

use std::collections::BTreeMap;
use std::process::Command;

use crate::report::Machine;

/// Reads the machine's facts (PostgreSQL's version from `database`).
pub async fn machine(database: &seckill_store::Store) -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let mut versions = BTreeMap::new();
    let first_line = |program: &str, args: &[&str]| -> Option<String> {
        let out = Command::new(program).args(args).output().ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines().next().map(|l| l.trim().to_owned())
    };
    if let Some(v) = first_line("redis-server", &["--version"]) {
        let v = v
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or(&v);
        versions.insert("redis".to_owned(), v.to_owned());
    }
    if let Ok(v) = database.server_version().await {
        versions.insert(
            "postgresql".to_owned(),
            v.split_whitespace().next().unwrap_or("").to_owned(),
        );
    }
    if let Some(list) = first_line(
        "sh",
        &["-c", "cargo install --list | grep '^rocketmq-broker '"],
    ) {
        versions.insert(
            "rocketmq-broker".to_owned(),
            list.split_whitespace()
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(':')
                .to_owned(),
        );
    }
    for (name, args) in [
        ("wrk", ["-v"]),
        ("oha", ["--version"]),
        ("rustc", ["--version"]),
    ] {
        if let Some(v) = first_line(name, &args) {
            if let Some(v) = v.split_whitespace().nth(1) {
                versions.insert(name.to_owned(), v.to_owned());
            }
        }
    }
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = first_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        versions,
        commit: if dirty {
            format!("{commit}-dirty")
        } else {
            commit
        },
    }
}
