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
        redis_scheduling: redis_scheduling(),
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

/// The scheduling policy and real-time priority of every running `redis-server`'s main thread
/// (fields 40 and 41 of /proc/<pid>/stat), each distinct one once.
fn redis_scheduling() -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let is_redis = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.trim_end() == "redis-server");
        if !is_redis {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        if let Some(policy) = scheduling(&stat) {
            seen.insert(policy);
        }
    }
    seen.into_iter().collect()
}

/// "SCHED_FIFO 10", "SCHED_OTHER"… from a /proc/<pid>/stat line.
fn scheduling(stat: &str) -> Option<String> {
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 is fields[0]: rt_priority (40) is fields[37], policy (41) fields[38].
    let priority: u32 = fields.get(37)?.parse().ok()?;
    let policy = match fields.get(38)?.parse::<u32>().ok()? {
        0 => "SCHED_OTHER",
        1 => "SCHED_FIFO",
        2 => "SCHED_RR",
        3 => "SCHED_BATCH",
        5 => "SCHED_IDLE",
        6 => "SCHED_DEADLINE",
        _ => "unknown",
    };
    Some(if priority > 0 {
        format!("{policy} {priority}")
    } else {
        policy.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_and_priority_are_read_past_a_command_name_with_spaces() {
        let pid = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(scheduling(&pid).as_deref(), Some("SCHED_OTHER"));
        // Fields 3 (the state) to 39 are placeholders here; 40 is rt_priority, 41 the policy.
        let filler = vec!["0"; 36].join(" ");
        let stat = format!("42 (redis server) S {filler} 10 1 0 0 0");
        assert_eq!(scheduling(&stat).as_deref(), Some("SCHED_FIFO 10"));
    }
}
