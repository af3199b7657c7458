//! The report of one harness run: what was measured, on what machine, and what was checked;
//! written as JSON (everything) and Markdown (the tables the README shows).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::checks::Verdict;
use crate::tools::{Load, Percentiles, RedisBench};

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// Tool and service versions, e.g. "redis" → "7.0.15".
    pub versions: BTreeMap<String, String>,
    /// How the kernel schedules the running Redis servers' main threads ("SCHED_FIFO 10" when
    /// `scripts/services.sh` could give them a real-time priority), each distinct one once.
    pub redis_scheduling: Vec<String>,
    pub commit: String,
}

/// The ceilings of this machine, measured in the same run.
#[derive(Clone, Debug, Serialize)]
pub struct Ceilings {
    /// The gateway's own `GET /healthz`: HTTP with no Redis and no broker.
    pub healthz: Load,
    /// redis-benchmark running EVALSHA of the deduct script (every attempt a new winner): one
    /// attempt per call and a batch per call, with each fsync mode.
    pub redis_deduct: Vec<DeductCeiling>,
    /// The stack's Redis `appendfsync` during the run.
    pub stack_appendfsync: String,
}

impl Ceilings {
    /// The batched deduct's wins/s under the stack's fsync mode (what the gateway's hot path
    /// could reach if Redis were the only cost).
    pub fn redis_wins_per_second(&self) -> f64 {
        self.redis_deduct
            .iter()
            .filter(|c| c.appendfsync == self.stack_appendfsync)
            .map(|c| c.wins_per_second)
            .fold(0.0, f64::max)
    }
}

/// One redis-benchmark run of `deduct.lua`.
#[derive(Clone, Debug, Serialize)]
pub struct DeductCeiling {
    pub attempts_per_call: usize,
    pub appendfsync: &'static str,
    /// Calls per second and their latency.
    pub calls: RedisBench,
    /// Calls per second × attempts per call (every attempt wins).
    pub wins_per_second: f64,
}

/// Latency of one outcome, from the gateway's histogram (server side, bucket-interpolated).
#[derive(Clone, Debug, Serialize)]
pub struct OutcomeLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// From the database, once the writer drained.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Persistence {
    pub rows: i64,
    pub win_to_row_p50_ms: Option<f64>,
    pub win_to_row_p99_ms: Option<f64>,
    /// Rows over the time between the first and the last insert.
    pub writer_orders_per_s: Option<f64>,
    /// From the end of the load to the last row (or to giving up); `drain`: from the writer's
    /// start to the last order done.
    pub drain_s: f64,
    /// `drain` only.
    pub drain: Option<Drain>,
}

/// The `drain` scenario: the writer started with every order already in the topic.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Drain {
    /// From the writer's start to its first row (process start, consumer group rebalance).
    pub first_row_s: f64,
    /// From the writer's start to the last row (the bench then checks that every status was
    /// mirrored into the ledger; the writer sends a batch's timer and mirror before the next).
    pub done_s: f64,
    /// Orders over (last row − first row).
    pub orders_per_s: f64,
    /// Cores used from the writer's start to done, by process group.
    pub cpu_cores: BTreeMap<String, f64>,
}

/// One second of load, as the gateway's metrics saw it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub attempts_per_s: f64,
    pub p99_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub what: String,
    pub activity: String,
    pub users: u64,
    pub stock: i64,
    pub per_user_limit: u32,
    /// Many distinct users through `bench/wrk/attempt.lua`: the scenario's figures.
    pub wrk: Load,
    /// One buyer hammering the same endpoint (oha sends one token).
    pub oha: Option<Load>,
    pub ratio_to_healthz: f64,
    /// Attempts/s over the batched Redis ceiling (wins/s) under the stack's fsync mode.
    pub ratio_to_redis: f64,
    /// The stack's Redis `appendfsync` during the scenario.
    pub redis_appendfsync: String,
    /// Attempts per `deduct.lua` call the gateway made (its batches' mean size).
    pub attempts_per_deduct_call: Option<f64>,
    pub outcomes: BTreeMap<String, OutcomeLatency>,
    /// The deduct's stages per attempt (`queued` for a script call, the `call`), from the
    /// gateway's histograms.
    pub deduct_stages: BTreeMap<String, OutcomeLatency>,
    /// Wins the gateway answered during the scenario (its counter).
    pub wins: u64,
    pub redis_calls: u64,
    pub sold_out_short_circuits: u64,
    pub persistence: Persistence,
    /// Cores used during the wrk run, by process group ("other": wrk itself, the kernel, …).
    pub cpu_cores: BTreeMap<String, f64>,
    /// `cluster` only: cores each Redis Cluster master (by port) used during the load.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redis_masters: BTreeMap<String, f64>,
    pub timeline: Vec<Sample>,
    /// `crowd` only: what the hostile crowd did and cost.
    pub crowd: Option<CrowdReport>,
    pub verdict: Verdict,
}

/// The hostile crowd of the `crowd` scenario, as the gateway bore it.
#[derive(Clone, Debug, Serialize)]
pub struct CrowdReport {
    pub never_reading: usize,
    pub slowloris: usize,
    pub flood_per_second: u64,
    /// Client connections the gateway held once the crowd was in, and while the buyers bought.
    pub connections_open: i64,
    pub connections_open_during_sale: i64,
    /// Crowd connections opened in all (again after the gateway closed one) and closed by it.
    pub connects: u64,
    pub dropped: u64,
    /// The crowd alone, before the buyers came: flood requests answered and the Redis calls the
    /// gateway made meanwhile (all of them the crowd's).
    pub alone_s: f64,
    pub flood_requests_alone: u64,
    pub redis_calls_alone: u64,
    pub flood_requests: u64,
    pub flood_failed: u64,
    /// The honest buyers' answers (wrk, 64 connections), p99.
    pub honest_p99_ms: f64,
    /// The gateway's peak resident set during the crowd (VmHWM, reset when it arrived).
    pub gateway_peak_rss_mib: f64,
    /// Connections open once the crowd left, and whether the gateway then served normally.
    pub connections_after: i64,
    pub served_after: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    pub command: String,
    pub machine: Machine,
    pub threads: u32,
    pub connections: u32,
    pub duration_s: u64,
    pub ceilings: Ceilings,
    pub scenarios: Vec<ScenarioReport>,
    pub ok: bool,
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

fn opt_ms(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), ms)
}

/// 12345.6 → "12,346".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `| name | units/s | µs of core time per unit for each component | total |`.
fn per_unit_row(name: &str, per_s: f64, cores: &BTreeMap<String, f64>) -> String {
    let us = |c: f64| format!("{:.0}", c / per_s.max(1e-9) * 1e6);
    let parts: Vec<String> = [
        "gateway",
        "redis",
        "rocketmq",
        "writer",
        "postgresql",
        "wrk",
        "other",
    ]
    .iter()
    .map(|group| us(cores.get(*group).copied().unwrap_or(0.0)))
    .collect();
    format!(
        "| {name} | {} | {} | {} |",
        thousands(per_s),
        parts.join(" | "),
        us(cores.values().sum())
    )
}

/// One table row per histogram of a scenario: its name, count and percentiles.
fn latency_rows(md: &mut String, scenario: &str, latencies: &BTreeMap<String, OutcomeLatency>) {
    for (name, l) in latencies {
        let _ = writeln!(
            md,
            "| {scenario} | {name} | {} | {} | {} | {} |",
            thousands(l.count as f64),
            ms(l.p50_ms),
            ms(l.p99_ms),
            ms(l.p999_ms)
        );
    }
}

fn percentiles(p: &Percentiles) -> String {
    format!("{} | {} | {}", ms(p.p50), ms(p.p99), opt_ms(p.p999))
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let versions: Vec<String> = m.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(md, "### seckill bench, {}\n", self.started_at);
        let _ = writeln!(md, "`{}`\n", self.command);
        let _ = writeln!(
            md,
            "Machine: {} cores ({}), {:.0} GiB, Linux {}; {}; Redis main thread {}; commit {}. Load: \
             wrk -t{} -c{} -d{}s from the same machine, everything on 127.0.0.1.\n",
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            versions.join(", "),
            if m.redis_scheduling.is_empty() {
                "unknown".to_owned()
            } else {
                m.redis_scheduling.join(", ")
            },
            m.commit,
            self.threads,
            self.connections,
            self.duration_s
        );
        md.push_str("| ceiling | per second | p50 | p99 | p99.9 |\n|---|---:|---:|---:|---:|\n");
        let c = &self.ceilings;
        let _ = writeln!(
            md,
            "| gateway `GET /healthz` (wrk) | {} | {} |",
            thousands(c.healthz.per_second),
            percentiles(&c.healthz.latency_ms)
        );
        for d in &c.redis_deduct {
            let _ = writeln!(
                md,
                "| Redis `deduct.lua`, {} attempt{} per call, appendfsync {} (redis-benchmark -c{}): wins | {} | {} |",
                d.attempts_per_call,
                if d.attempts_per_call == 1 { "" } else { "s" },
                d.appendfsync,
                self.connections,
                thousands(d.wins_per_second),
                percentiles(&d.calls.latency_ms)
            );
        }
        let _ = writeln!(
            md,
            "\nThe stack's Redis runs with appendfsync {}; \"÷ Redis\" divides by the batched ceiling in that mode. \
             Latencies of the Redis rows are per call.\n",
            c.stack_appendfsync
        );
        md.push_str(
            "| scenario | appendfsync | attempts/s | p50 | p99 | p99.9 | ÷ healthz | ÷ Redis | attempts per deduct call | wins | rows | win→row p50 / p99 | writer orders/s | checks |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for s in &self.scenarios {
            let p = &s.persistence;
            let failed: Vec<&str> = s.verdict.violations().map(|c| c.name).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} / {} | {} | {} |",
                s.name,
                s.redis_appendfsync,
                thousands(s.wrk.per_second),
                percentiles(&s.wrk.latency_ms),
                s.ratio_to_healthz,
                s.ratio_to_redis,
                s.attempts_per_deduct_call
                    .map_or("–".to_owned(), |a| format!("{a:.1}")),
                thousands(s.wins as f64),
                thousands(p.rows as f64),
                opt_ms(p.win_to_row_p50_ms),
                opt_ms(p.win_to_row_p99_ms),
                p.writer_orders_per_s.map_or("–".to_owned(), thousands),
                if failed.is_empty() {
                    format!("{} passed", s.verdict.checks.len())
                } else {
                    format!("**FAILED: {}**", failed.join(", "))
                }
            );
        }
        for s in &self.scenarios {
            let Some(c) = &s.crowd else { continue };
            let _ = writeln!(
                md,
                "\nThe crowd of `{}`: {} never-reading and {} slowloris connections and a flood of {}/s \
                 (made-up ids, forged tokens), opened again whenever the gateway closed one.\n\n\
                 | connections held (crowd in / during the sale / after) | crowd connects / closed by the gateway | \
                 crowd alone: flood requests, Redis calls | flood answered / failed | honest p99 | gateway peak RSS |\n\
                 |---:|---:|---:|---:|---:|---:|\n\
                 | {} / {} / {} | {} / {} | {} in {:.1} s, {} | {} / {} | {} | {:.1} MiB |",
                s.name,
                c.never_reading,
                c.slowloris,
                thousands(c.flood_per_second as f64),
                c.connections_open,
                c.connections_open_during_sale,
                c.connections_after,
                thousands(c.connects as f64),
                thousands(c.dropped as f64),
                thousands(c.flood_requests_alone as f64),
                c.alone_s,
                c.redis_calls_alone,
                thousands((c.flood_requests - c.flood_failed) as f64),
                thousands(c.flood_failed as f64),
                ms(c.honest_p99_ms),
                c.gateway_peak_rss_mib
            );
        }
        for s in &self
            .scenarios
            .iter()
            .filter(|s| !s.redis_masters.is_empty())
            .collect::<Vec<_>>()
        {
            let _ = writeln!(
                md,
                "\nThe Redis Cluster of `{}` (activities {}; the rows above are all of theirs, win→row \
                 and writer orders/s those of the slowest), cores each master used during the load:\n\n\
                 | {} |\n|{}\n| {} |",
                s.name,
                s.activity,
                s.redis_masters
                    .keys()
                    .map(|port| format!("master :{port}"))
                    .collect::<Vec<_>>()
                    .join(" | "),
                "---:|".repeat(s.redis_masters.len()),
                s.redis_masters
                    .values()
                    .map(|cores| format!("{cores:.2}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        md.push_str(
            "\nLatency per outcome, from the gateway's histograms (server side):\n\n\
             | scenario | outcome | answers | p50 | p99 | p99.9 |\n|---|---|---:|---:|---:|---:|\n",
        );
        for s in &self.scenarios {
            latency_rows(&mut md, &s.name, &s.outcomes);
        }
        if self.scenarios.iter().any(|s| !s.deduct_stages.is_empty()) {
            md.push_str(
                "\nWhere a deduct's time went, per attempt (server side: `queued` from joining the \
                 batcher's queue to its script call starting, `call` the call's round trip; the \
                 rest of an answer is HTTP and scheduling):\n\n\
                 | scenario | stage | attempts | p50 | p99 | p99.9 |\n|---|---|---:|---:|---:|---:|\n",
            );
            for s in &self.scenarios {
                latency_rows(&mut md, &s.name, &s.deduct_stages);
            }
        }
        md.push_str(
            "\nWhere the cores went during the wrk run (cores busy, of the machine's all; wrk is the \
             load generator; \"other\" is the kernel's work outside these processes and the rest):\n\n\
             | scenario | gateway | redis | rocketmq | writer | postgresql | wrk | other | idle |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for s in &self.scenarios {
            let core = |name: &str| s.cpu_cores.get(name).copied().unwrap_or(0.0);
            let busy: f64 = s.cpu_cores.values().sum();
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                s.name,
                core("gateway"),
                core("redis"),
                core("rocketmq"),
                core("writer"),
                core("postgresql"),
                core("wrk"),
                core("other"),
                (self.machine.cores as f64 - busy).max(0.0)
            );
        }
        // Core time per win: what a win costs each component (scenarios where most attempts win).
        let winning: Vec<&ScenarioReport> = self
            .scenarios
            .iter()
            .filter(|s| s.wrk.status(202) * 2 > s.wrk.requests && s.wrk.seconds > 0.0)
            .collect();
        if !winning.is_empty() {
            md.push_str(
                "\nCore time per win during the wrk run (µs of CPU per 202 answered):\n\n\
                 | scenario | wins/s | gateway | redis | rocketmq | writer | postgresql | wrk | other | total |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for s in winning {
                let per_s = s.wrk.status(202) as f64 / s.wrk.seconds;
                let _ = writeln!(md, "{}", per_unit_row(&s.name, per_s, &s.cpu_cores));
            }
        }
        let drains: Vec<(&ScenarioReport, &Drain)> = self
            .scenarios
            .iter()
            .filter_map(|s| s.persistence.drain.as_ref().map(|d| (s, d)))
            .collect();
        if !drains.is_empty() {
            md.push_str(
                "\nThe writer draining a full topic (started with every order waiting; done = every \
                 row and item; every timer and ledger mirror checked done after):\n\n\
                 | scenario | orders | first row after start | last row after start | orders/s (first row → last) |\n\
                 |---|---:|---:|---:|---:|\n",
            );
            for (s, d) in &drains {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} s | {:.1} s | {} |",
                    s.name,
                    thousands(s.persistence.rows as f64),
                    d.first_row_s,
                    d.done_s,
                    thousands(d.orders_per_s)
                );
            }
            md.push_str(
                "\nCore time per order while draining (µs of CPU per order):\n\n\
                 | scenario | orders/s | gateway | redis | rocketmq | writer | postgresql | wrk | other | total |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for (s, d) in &drains {
                // Over the whole window from the writer's start to the end of polling.
                let per_s = s.persistence.rows as f64 / s.persistence.drain_s.max(1e-3);
                let _ = writeln!(md, "{}", per_unit_row(&s.name, per_s, &d.cpu_cores));
            }
        }
        if self.scenarios.iter().any(|s| s.oha.is_some()) {
            md.push_str(
                "\nOne buyer hammering the endpoint (oha, one token, same connections):\n\n\
                 | scenario | requests/s | answers | p50 | p99 | p99.9 |\n|---|---:|---|---:|---:|---:|\n",
            );
            for s in &self.scenarios {
                if let Some(oha) = &s.oha {
                    let answers: Vec<String> = oha
                        .statuses
                        .iter()
                        .map(|(status, n)| format!("{status}×{}", thousands(*n as f64)))
                        .collect();
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} |",
                        s.name,
                        thousands(oha.per_second),
                        answers.join(" "),
                        percentiles(&oha.latency_ms)
                    );
                }
            }
        }
        md.push_str("\nScenarios:\n");
        for s in &self.scenarios {
            let _ = writeln!(
                md,
                "- `{}`: {} ({} users, stock {}, limit {}).",
                s.name,
                s.what,
                thousands(s.users as f64),
                thousands(s.stock as f64),
                s.per_user_limit
            );
        }
        let _ = writeln!(
            md,
            "\nVerdict: {}.",
            if self.ok {
                "every check passed in every scenario"
            } else {
                "**VIOLATIONS** (see the checks in the JSON report)"
            }
        );
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }
}
