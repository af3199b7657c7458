//! The load tools the harness drives — wrk, oha, redis-benchmark — and their outputs, read into
//! one shape.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    /// redis-benchmark reports none.
    pub p999: Option<f64>,
    pub max: f64,
}

/// What one load tool measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub tool: String,
    pub command: String,
    /// Completed requests.
    pub requests: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency_ms: Percentiles,
    /// Completed requests by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Socket errors and timeouts (not HTTP statuses).
    pub errors: u64,
}

impl Load {
    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Load generators run side by side (one per gateway) as one: requests, rates, statuses
    /// and errors added; each latency percentile the worst of theirs (percentiles of separate
    /// runs cannot be merged exactly; the worst is an upper bound).
    pub fn combine(mut loads: Vec<Load>) -> Load {
        if loads.len() == 1 {
            return loads.remove(0);
        }
        let mut statuses = BTreeMap::new();
        for load in &loads {
            for (status, n) in &load.statuses {
                *statuses.entry(*status).or_default() += n;
            }
        }
        let worst = |pick: fn(&Percentiles) -> f64| {
            loads
                .iter()
                .map(|l| pick(&l.latency_ms))
                .fold(0.0, f64::max)
        };
        Load {
            tool: loads[0].tool.clone(),
            command: loads
                .iter()
                .map(|l| l.command.as_str())
                .collect::<Vec<_>>()
                .join(" & "),
            requests: loads.iter().map(|l| l.requests).sum(),
            seconds: loads.iter().map(|l| l.seconds).fold(0.0, f64::max),
            per_second: loads.iter().map(|l| l.per_second).sum(),
            latency_ms: Percentiles {
                p50: worst(|p| p.p50),
                p99: worst(|p| p.p99),
                p999: loads
                    .iter()
                    .all(|l| l.latency_ms.p999.is_some())
                    .then(|| worst(|p| p.p999.unwrap_or(0.0))),
                max: worst(|p| p.max),
            },
            statuses,
            errors: loads.iter().map(|l| l.errors).sum(),
        }
    }
}

/// A wrk run: `-t threads -c connections -d duration --latency [-s script URL -- args]`.
pub struct Wrk<'a> {
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
    pub script: &'a Path,
    pub url: &'a str,
    pub script_args: Vec<String>,
}

impl Wrk<'_> {
    pub async fn run(&self) -> anyhow::Result<Load> {
        let mut args = vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{}s", self.duration.as_secs().max(1)),
            "--latency".to_owned(),
            "-s".to_owned(),
            self.script.display().to_string(),
            self.url.to_owned(),
        ];
        if !self.script_args.is_empty() {
            args.push("--".to_owned());
            args.extend(self.script_args.iter().cloned());
        }
        let stdout = run_tool("wrk", &args).await?;
        let mut load = parse_wrk(&stdout)?;
        load.command = format!("wrk {}", shorten(&args));
        Ok(load)
    }
}

#[derive(Deserialize)]
struct WrkJson {
    requests: u64,
    duration_us: u64,
    errors: BTreeMap<String, u64>,
    latency_us: BTreeMap<String, f64>,
    statuses: BTreeMap<u16, u64>,
}

/// Reads the `wrk-json:` line that `bench/wrk/report.lua` prints.
pub fn parse_wrk(stdout: &str) -> anyhow::Result<Load> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrk-json: "))
        .context("wrk printed no `wrk-json:` line (is the script loading report.lua?)")?;
    let json: WrkJson = serde_json::from_str(line).context("wrk's JSON line")?;
    let seconds = json.duration_us as f64 / 1e6;
    let ms = |key: &str| json.latency_us.get(key).copied().unwrap_or(0.0) / 1000.0;
    // Non-2xx answers are HTTP statuses here, not errors.
    let errors = json
        .errors
        .iter()
        .filter(|(kind, _)| kind.as_str() != "status")
        .map(|(_, n)| n)
        .sum();
    Ok(Load {
        tool: "wrk".to_owned(),
        command: String::new(),
        requests: json.requests,
        seconds,
        per_second: json.requests as f64 / seconds.max(1e-9),
        latency_ms: Percentiles {
            p50: ms("p50"),
            p99: ms("p99"),
            p999: Some(ms("p999")),
            max: ms("max"),
        },
        statuses: json.statuses,
        errors,
    })
}

/// An oha run: `-c connections -z duration`, waiting for the requests in flight at the end.
pub struct Oha<'a> {
    pub connections: u32,
    pub duration: Duration,
    pub method: &'a str,
    pub headers: Vec<String>,
    pub url: &'a str,
}

impl Oha<'_> {
    pub async fn run(&self) -> anyhow::Result<Load> {
        let mut args = vec![
            "--no-tui".to_owned(),
            "--output-format".to_owned(),
            "json".to_owned(),
            "--wait-ongoing-requests-after-deadline".to_owned(),
            "-c".to_owned(),
            self.connections.to_string(),
            "-z".to_owned(),
            format!("{}s", self.duration.as_secs().max(1)),
            "-m".to_owned(),
            self.method.to_owned(),
        ];
        for header in &self.headers {
            args.push("-H".to_owned());
            args.push(header.clone());
        }
        args.push(self.url.to_owned());
        let stdout = run_tool("oha", &args).await?;
        let mut load = parse_oha(&stdout)?;
        load.command = format!("oha {}", shorten(&args));
        Ok(load)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaJson {
    summary: OhaSummary,
    latency_percentiles: BTreeMap<String, Option<f64>>,
    status_code_distribution: BTreeMap<u16, u64>,
    #[serde(default)]
    error_distribution: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaSummary {
    total: f64,
    slowest: Option<f64>,
}

/// Reads oha's `--output-format json` report (times in seconds).
pub fn parse_oha(stdout: &str) -> anyhow::Result<Load> {
    let json: OhaJson = serde_json::from_str(stdout).context("oha's JSON report")?;
    let ms = |key: &str| {
        json.latency_percentiles
            .get(key)
            .copied()
            .flatten()
            .unwrap_or(0.0)
            * 1000.0
    };
    let requests: u64 = json.status_code_distribution.values().sum();
    Ok(Load {
        tool: "oha".to_owned(),
        command: String::new(),
        requests,
        seconds: json.summary.total,
        per_second: requests as f64 / json.summary.total.max(1e-9),
        latency_ms: Percentiles {
            p50: ms("p50"),
            p99: ms("p99"),
            p999: Some(ms("p99.9")),
            max: json.summary.slowest.unwrap_or(0.0) * 1000.0,
        },
        statuses: json.status_code_distribution,
        errors: json.error_distribution.values().sum(),
    })
}

/// What redis-benchmark measured for one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedisBench {
    pub command: String,
    pub per_second: f64,
    pub latency_ms: Percentiles,
}

/// Reads `redis-benchmark --csv`: a header line, then one line per test.
pub fn parse_redis_benchmark(stdout: &str) -> anyhow::Result<RedisBench> {
    let mut lines = stdout.lines().filter(|l| l.starts_with('"'));
    let header: Vec<String> = csv_fields(lines.next().context("redis-benchmark printed no CSV")?);
    let values = csv_fields(
        lines
            .next()
            .context("redis-benchmark printed no result line")?,
    );
    let field = |name: &str| -> anyhow::Result<f64> {
        let i = header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no {name} column in redis-benchmark's CSV"))?;
        values
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bad {name} in redis-benchmark's CSV"))
    };
    Ok(RedisBench {
        command: String::new(),
        per_second: field("rps")?,
        latency_ms: Percentiles {
            p50: field("p50_latency_ms")?,
            p99: field("p99_latency_ms")?,
            p999: None,
            max: field("max_latency_ms")?,
        },
    })
}

fn csv_fields(line: &str) -> Vec<String> {
    line.split("\",\"")
        .map(|f| f.trim_matches('"').to_owned())
        .collect()
}

/// Runs a tool to its end; its stdout, or an error with its stderr.
pub async fn run_tool(program: &str, args: &[String]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| {
            format!("running {program} (is it installed? bench/run.sh installs it)")
        })?;
    if !output.status.success() {
        bail!(
            "{program} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A command line for the report, with bearer tokens cut short.
fn shorten(args: &[String]) -> String {
    args.iter()
        .map(|a| match a.strip_prefix("Authorization: Bearer ") {
            Some(token) => format!("'Authorization: Bearer {}…'", &token[..token.len().min(12)]),
            None => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_json_line() {
        let out = "Running 10s test\nwrk-json: {\"requests\":1000,\"duration_us\":2000000,\
            \"errors\":{\"connect\":0,\"read\":1,\"write\":0,\"status\":900,\"timeout\":2},\
            \"latency_us\":{\"mean\":500.0,\"p50\":400,\"p90\":800,\"p99\":1500,\"p999\":3000,\"max\":9000},\
            \"statuses\":{\"202\":100,\"409\":900}}\n";
        let load = parse_wrk(out).unwrap();
        assert_eq!(load.requests, 1000);
        assert_eq!(load.per_second, 500.0);
        assert_eq!(load.errors, 3);
        assert_eq!(load.status(202), 100);
        assert_eq!(load.latency_ms.p999, Some(3.0));
        assert!(parse_wrk("no json here").is_err());
    }

    #[test]
    fn reads_oha_json() {
        let out = r#"{"summary":{"successRate":1.0,"total":5.0,"slowest":0.02,"fastest":0.0001,
            "average":0.001,"requestsPerSec":1000.0},
            "latencyPercentiles":{"p50":0.001,"p99":0.004,"p99.9":0.008},
            "statusCodeDistribution":{"409":5000},"errorDistribution":{}}"#;
        let load = parse_oha(out).unwrap();
        assert_eq!(load.requests, 5000);
        assert_eq!(load.per_second, 1000.0);
        assert_eq!(load.latency_ms.p99, 4.0);
        assert_eq!(load.latency_ms.max, 20.0);
        assert_eq!(load.status(409), 5000);
    }

    #[test]
    fn reads_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"EVALSHA abc 7 k\",\"54054.05\",\"0.084\",\"0.016\",\"0.055\",\"0.095\",\"2.039\",\"2.791\"\n";
        let bench = parse_redis_benchmark(out).unwrap();
        assert_eq!(bench.per_second, 54054.05);
        assert_eq!(bench.latency_ms.p99, 2.039);
        assert!(parse_redis_benchmark("").is_err());
    }
}
