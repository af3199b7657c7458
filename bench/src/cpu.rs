//! Where the cores went: CPU time of the stack's processes over a window, from /proc, so a
//! report can say what bounded a figure (the gateway, Redis, the broker, the writer…).

use std::collections::BTreeMap;
use std::time::Instant;

/// Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// The stack's processes, by the start of their command name (/proc/<pid>/comm keeps 15 bytes).
const GROUPS: [(&str, &str); 6] = [
    ("seckill-gateway", "gateway"),
    ("seckill-order-w", "writer"),
    ("redis-server", "redis"),
    ("rocketmq-broker", "rocketmq"),
    ("rocketmq-namesr", "rocketmq"),
    ("postgres", "postgresql"),
];

/// The group of the harness's own children that ended in the window: the load generator (wrk
/// runs as a child and has exited, its time added to ours, when the window closes).
const LOAD: &str = "wrk";

/// CPU ticks used so far, machine-wide and by group.
#[derive(Clone, Debug)]
pub struct CpuTimes {
    at: Instant,
    total_busy: u64,
    groups: BTreeMap<&'static str, u64>,
    /// Redis Cluster nodes by client port (also counted in the "redis" group).
    redis_nodes: BTreeMap<u16, u64>,
}

/// CPU ticks of this process's children that have exited and been waited for.
fn reaped_children_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| children_ticks(&stat))
        .unwrap_or(0)
}

impl CpuTimes {
    pub fn now() -> Self {
        let mut groups: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut redis_nodes = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, ticks)) = process_ticks(&stat) {
                    if let Some((_, group)) = GROUPS.iter().find(|(p, _)| comm.starts_with(p)) {
                        *groups.entry(group).or_default() += ticks;
                        if *group == "redis" {
                            let title = std::fs::read_to_string(entry.path().join("cmdline"));
                            if let Some(port) = title.ok().as_deref().and_then(cluster_node_port) {
                                *redis_nodes.entry(port).or_default() += ticks;
                            }
                        }
                    }
                }
            }
        }
        groups.insert(LOAD, reaped_children_ticks());
        CpuTimes {
            at: Instant::now(),
            total_busy: read_machine_ticks().0,
            groups,
            redis_nodes,
        }
    }

    /// Cores used by each group between `earlier` and this reading; "other" is the rest of the
    /// machine's busy time (the load tools, the kernel, anything else).
    pub fn cores_since(&self, earlier: &CpuTimes) -> BTreeMap<String, f64> {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_S / seconds;
        let mut out = BTreeMap::new();
        let mut known = 0;
        for (group, ticks) in &self.groups {
            // A process that exited in the window takes its ticks along: never below zero.
            let used = ticks.saturating_sub(earlier.groups.get(group).copied().unwrap_or(0));
            known += used;
            out.insert((*group).to_owned(), cores(used));
        }
        let busy = self.total_busy.saturating_sub(earlier.total_busy);
        out.insert("other".to_owned(), cores(busy.saturating_sub(known)));
        out
    }
}

impl CpuTimes {
    /// Cores used by each Redis Cluster node (by client port) between `earlier` and now.
    pub fn redis_nodes_since(&self, earlier: &CpuTimes) -> BTreeMap<u16, f64> {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        self.redis_nodes
            .iter()
            .map(|(port, ticks)| {
                let used =
                    ticks.saturating_sub(earlier.redis_nodes.get(port).copied().unwrap_or(0));
                (*port, used as f64 / TICKS_PER_S / seconds)
            })
            .collect()
    }
}

/// The client port of a Redis Cluster node from its process title (redis-server sets it to
/// `redis-server 127.0.0.1:7001 [cluster]`); `None` for a server not in cluster mode.
fn cluster_node_port(title: &str) -> Option<u16> {
    let title = title.trim_end_matches('\0');
    if !title.ends_with("[cluster]") {
        return None;
    }
    let address = title.split_whitespace().nth(1)?;
    address.rsplit(':').next()?.parse().ok()
}

/// (comm, utime + stime) from a /proc/<pid>/stat line.
fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    // After ")": state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// cutime + cstime (fields 16 and 17) from a /proc/<pid>/stat line.
fn children_ticks(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let cutime: u64 = fields.get(13)?.parse().ok()?;
    let cstime: u64 = fields.get(14)?.parse().ok()?;
    Some(cutime + cstime)
}

/// (busy, total) ticks of all cores from /proc/stat's first line (busy: all but idle and iowait).
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    Some((total - fields.get(3)? - fields.get(4)?, total))
}

fn read_machine_ticks() -> (u64, u64) {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| machine_ticks(&s))
        .unwrap_or((0, 0))
}

/// The busy share (0..1) of all cores over `window`.
pub async fn busy_share(window: std::time::Duration) -> f64 {
    let (busy0, total0) = read_machine_ticks();
    tokio::time::sleep(window).await;
    let (busy1, total1) = read_machine_ticks();
    busy1.saturating_sub(busy0) as f64 / total1.saturating_sub(total0).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_process_and_machine_ticks() {
        let stat =
            "4242 (seckill-gateway) S 1 4242 4242 0 -1 4194560 1 0 0 0 1500 250 0 0 20 0 6 0 1 2 3";
        assert_eq!(process_ticks(stat), Some(("seckill-gateway", 1750)));
        assert_eq!(children_ticks(stat), Some(0));
        let parent = "9 (seckill-bench) S 1 9 9 0 -1 0 0 0 0 0 10 5 700 42 20 0";
        assert_eq!(children_ticks(parent), Some(742));
        let odd = "7 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 10 5 0 0";
        assert_eq!(process_ticks(odd), Some(("a (b) c", 15)));
        assert_eq!(
            machine_ticks("cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3\n"),
            Some((160, 1180))
        );
    }

    #[test]
    fn cluster_nodes_are_told_by_their_title() {
        assert_eq!(
            cluster_node_port("redis-server 127.0.0.1:7002 [cluster]\0"),
            Some(7002)
        );
        assert_eq!(cluster_node_port("redis-server 127.0.0.1:6379\0"), None);
    }

    fn reading(at: Instant, busy: u64, groups: &[(&'static str, u64)]) -> CpuTimes {
        CpuTimes {
            at,
            total_busy: busy,
            groups: groups.iter().copied().collect(),
            redis_nodes: BTreeMap::new(),
        }
    }

    #[test]
    fn cores_are_split_between_the_groups_and_the_rest() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let before = reading(t0, 1_000, &[("gateway", 100), ("writer", 40)]);
        // Over 2 s: 300 busy ticks in all; the gateway used 100, a Redis that started meanwhile
        // 60, the writer exited (its ticks went with it); the other 140 are nobody's we know.
        let after = reading(t1, 1_300, &[("gateway", 200), ("redis", 60), ("writer", 0)]);
        let cores = after.cores_since(&before);
        let near = |group: &str, expected: f64| {
            let got = cores[group];
            assert!(
                (got - expected).abs() < 1e-9,
                "{group}: {got} != {expected}"
            );
        };
        near("gateway", 0.5);
        near("redis", 0.3);
        near("writer", 0.0);
        near("other", 0.7);
        assert_eq!(cores.len(), 4);
    }
}
