//! Reading the gateway's `/metrics`: attempt counters and latency histograms per outcome, and
//! percentiles estimated from them the way Prometheus' `histogram_quantile` does.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cumulative bucket counts of one outcome: (upper bound in seconds, count ≤ bound); the last
/// bound is +Inf.
pub type Buckets = Vec<(f64, u64)>;

/// One reading of the gateway's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub attempts: BTreeMap<String, Buckets>,
    /// The deduct's stages (`queued`, `call`), each timed per attempt.
    pub deduct_stages: BTreeMap<String, Buckets>,
    pub sold_out_short_circuits: u64,
    pub redis_calls: u64,
    pub deduct_calls: u64,
    pub deduct_attempts: u64,
    pub inflight: i64,
    /// Client connections open at the reading (a gauge).
    pub connections_open: i64,
}

impl Scrape {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut scrape = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if let Some(labels) = series.strip_prefix("seckill_attempt_duration_seconds_bucket{") {
                push_bucket(&mut scrape.attempts, labels, "outcome", value, line)?;
            } else if let Some(labels) = series.strip_prefix("seckill_deduct_stage_seconds_bucket{")
            {
                push_bucket(&mut scrape.deduct_stages, labels, "stage", value, line)?;
            } else if series == "seckill_sold_out_short_circuits_total" {
                scrape.sold_out_short_circuits = value.parse()?;
            } else if series == "seckill_redis_calls_total" {
                scrape.redis_calls = value.parse()?;
            } else if series == "seckill_deduct_calls_total" {
                scrape.deduct_calls = value.parse()?;
            } else if series == "seckill_deduct_attempts_total" {
                scrape.deduct_attempts = value.parse()?;
            } else if series == "seckill_inflight_requests" {
                scrape.inflight = value.parse()?;
            } else if series == "seckill_connections_open" {
                scrape.connections_open = value.parse()?;
            }
        }
        if scrape.attempts.is_empty() {
            bail!("no seckill_attempt_duration_seconds histogram in the metrics");
        }
        Ok(scrape)
    }

    /// What happened between `earlier` and this reading (counters only grow).
    pub fn since(&self, earlier: &Scrape) -> Scrape {
        Scrape {
            attempts: buckets_since(&self.attempts, &earlier.attempts),
            deduct_stages: buckets_since(&self.deduct_stages, &earlier.deduct_stages),
            sold_out_short_circuits: self
                .sold_out_short_circuits
                .saturating_sub(earlier.sold_out_short_circuits),
            redis_calls: self.redis_calls.saturating_sub(earlier.redis_calls),
            deduct_calls: self.deduct_calls.saturating_sub(earlier.deduct_calls),
            deduct_attempts: self.deduct_attempts.saturating_sub(earlier.deduct_attempts),
            inflight: self.inflight,
            connections_open: self.connections_open,
        }
    }

    /// Two gateways' readings as one: counters and buckets added (the gateways share their
    /// bucket bounds), gauges added.
    pub fn plus(&self, other: &Scrape) -> Scrape {
        Scrape {
            attempts: buckets_plus(&self.attempts, &other.attempts),
            deduct_stages: buckets_plus(&self.deduct_stages, &other.deduct_stages),
            sold_out_short_circuits: self.sold_out_short_circuits + other.sold_out_short_circuits,
            redis_calls: self.redis_calls + other.redis_calls,
            deduct_calls: self.deduct_calls + other.deduct_calls,
            deduct_attempts: self.deduct_attempts + other.deduct_attempts,
            inflight: self.inflight + other.inflight,
            connections_open: self.connections_open + other.connections_open,
        }
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.attempts
            .get(outcome)
            .and_then(|b| b.last())
            .map_or(0, |(_, n)| *n)
    }

    pub fn total(&self) -> u64 {
        self.attempts.keys().map(|o| self.count(o)).sum()
    }

    /// Outcomes with at least one attempt, with their counts.
    pub fn outcomes(&self) -> impl Iterator<Item = (&str, u64)> {
        self.attempts
            .keys()
            .map(|o| (o.as_str(), self.count(o)))
            .filter(|(_, n)| *n > 0)
    }

    /// The `q` quantile (0..1) of one outcome's latency, or of all attempts with `None`.
    pub fn quantile(&self, outcome: Option<&str>, q: f64) -> Option<Duration> {
        let merged;
        let buckets = match outcome {
            Some(outcome) => self.attempts.get(outcome)?,
            None => {
                merged = self.merged();
                &merged
            }
        };
        quantile(buckets, q)
    }

    fn merged(&self) -> Buckets {
        let mut merged: Buckets = Vec::new();
        for buckets in self.attempts.values() {
            if merged.is_empty() {
                merged = buckets.clone();
            } else {
                for (slot, (_, n)) in merged.iter_mut().zip(buckets) {
                    slot.1 += n;
                }
            }
        }
        merged
    }
}

/// One `_bucket` series of a histogram labelled by `key`, appended to its label's buckets.
fn push_bucket(
    histograms: &mut BTreeMap<String, Buckets>,
    labels: &str,
    key: &str,
    value: &str,
    line: &str,
) -> anyhow::Result<()> {
    let name = label(labels, key).with_context(|| format!("bucket without {key}"))?;
    let le = match label(labels, "le").context("bucket without le")? {
        "+Inf" => f64::INFINITY,
        bound => bound
            .parse()
            .with_context(|| format!("bad le in {line:?}"))?,
    };
    let count = value
        .parse()
        .with_context(|| format!("bad count in {line:?}"))?;
    histograms
        .entry(name.to_owned())
        .or_default()
        .push((le, count));
    Ok(())
}

/// Each histogram's counts since `earlier` (counters only grow).
fn buckets_since(
    now: &BTreeMap<String, Buckets>,
    earlier: &BTreeMap<String, Buckets>,
) -> BTreeMap<String, Buckets> {
    now.iter()
        .map(|(name, buckets)| {
            let before = earlier.get(name);
            let diff = buckets
                .iter()
                .enumerate()
                .map(|(i, (le, n))| {
                    let old = before.and_then(|b| b.get(i)).map_or(0, |(_, n)| *n);
                    (*le, n.saturating_sub(old))
                })
                .collect();
            (name.clone(), diff)
        })
        .collect()
}

/// Two readings' histograms added (gateways share their bucket bounds).
fn buckets_plus(
    one: &BTreeMap<String, Buckets>,
    other: &BTreeMap<String, Buckets>,
) -> BTreeMap<String, Buckets> {
    let mut sum = one.clone();
    for (name, buckets) in other {
        let mine = sum.entry(name.clone()).or_default();
        if mine.is_empty() {
            mine.clone_from(buckets);
        } else {
            for ((_, n), (_, m)) in mine.iter_mut().zip(buckets) {
                *n += m;
            }
        }
    }
    sum
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// Linear interpolation inside the bucket holding the rank, as Prometheus does; a rank in the
/// +Inf bucket answers the highest finite bound.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<Duration> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(Duration::from_secs_f64(lower.0));
            }
            let in_bucket = (count - lower.1) as f64;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(Duration::from_secs_f64(lower.0 + (le - lower.0) * fraction));
        }
        lower = (le, count);
    }
    None
}

/// `GET path` on a local HTTP/1.1 server; the body of a 200.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: timed out"))??;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .with_context(|| format!("GET {path} on {addr}: timed out"))??;
    let reply = String::from_utf8(reply).context("reply is not UTF-8")?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .context("reply without a header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "GET {path} on {addr}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}

pub async fn scrape(addr: &str) -> anyhow::Result<Scrape> {
    // A reading may meet a full accept queue (the crowd scenario): three tries.
    let mut tries = 0;
    loop {
        match http_get(addr, "/metrics").await {
            Ok(text) => return Scrape::parse(&text),
            Err(_) if tries < 2 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every gateway's metrics, read one after the other and added up ([`Scrape::plus`]).
pub async fn scrape_all(addrs: &[String]) -> anyhow::Result<Scrape> {
    let mut total: Option<Scrape> = None;
    for addr in addrs {
        let one = scrape(addr).await?;
        total = Some(match total {
            Some(sum) => sum.plus(&one),
            None => one,
        });
    }
    total.context("no gateway to read")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE seckill_attempt_duration_seconds histogram
seckill_attempt_duration_seconds_bucket{outcome=\"won\",le=\"0.001\"} 50
seckill_attempt_duration_seconds_bucket{outcome=\"won\",le=\"0.002\"} 90
seckill_attempt_duration_seconds_bucket{outcome=\"won\",le=\"+Inf\"} 100
seckill_attempt_duration_seconds_bucket{outcome=\"sold_out\",le=\"0.001\"} 10
seckill_attempt_duration_seconds_bucket{outcome=\"sold_out\",le=\"0.002\"} 10
seckill_attempt_duration_seconds_bucket{outcome=\"sold_out\",le=\"+Inf\"} 10
seckill_deduct_stage_seconds_bucket{stage=\"call\",le=\"0.001\"} 32
seckill_deduct_stage_seconds_bucket{stage=\"call\",le=\"0.002\"} 64
seckill_deduct_stage_seconds_bucket{stage=\"call\",le=\"+Inf\"} 64
seckill_deduct_stage_seconds_sum{stage=\"call\"} 0.08
seckill_sold_out_short_circuits_total 7
seckill_inflight_requests 3
";

    #[test]
    fn reads_counts_and_interpolates_percentiles() {
        let scrape = Scrape::parse(TEXT).unwrap();
        assert_eq!(scrape.count("won"), 100);
        assert_eq!(scrape.total(), 110);
        assert_eq!(scrape.sold_out_short_circuits, 7);
        assert_eq!(scrape.inflight, 3);
        // rank 50 of 100 sits at the top of the first bucket
        assert_eq!(
            scrape.quantile(Some("won"), 0.5),
            Some(Duration::from_millis(1))
        );
        // rank 70: 20 of the 40 in (1 ms, 2 ms] → 1.5 ms
        assert_eq!(
            scrape.quantile(Some("won"), 0.7),
            Some(Duration::from_micros(1500))
        );
        // rank 99 is in +Inf: the highest finite bound
        assert_eq!(
            scrape.quantile(Some("won"), 0.99),
            Some(Duration::from_millis(2))
        );
        assert_eq!(scrape.quantile(Some("repeat"), 0.5), None);
        // the deduct's stages are histograms of their own, not outcomes
        assert_eq!(
            quantile(&scrape.deduct_stages["call"], 0.75),
            Some(Duration::from_micros(1500))
        );
        assert!(!scrape.attempts.contains_key("call"));
    }

    #[test]
    fn differences_and_merges() {
        let later = Scrape::parse(TEXT).unwrap();
        let earlier =
            Scrape::parse(&TEXT.replace("} 100", "} 95").replace("} 90", "} 85")).unwrap();
        let window = later.since(&earlier);
        assert_eq!(window.count("won"), 5);
        assert_eq!(window.count("sold_out"), 0);
        assert_eq!(window.outcomes().collect::<Vec<_>>(), vec![("won", 5)]);
        assert_eq!(
            window.deduct_stages["call"].last(),
            Some(&(f64::INFINITY, 0))
        );
        // merged over outcomes: 60 of 110 in the first bucket
        assert_eq!(
            later.quantile(None, 0.5),
            Some(Duration::from_secs_f64(0.001 * 55.0 / 60.0))
        );
    }

    #[test]
    fn two_gateways_add_up() {
        let one = Scrape::parse(TEXT).unwrap();
        let both = one.plus(&one);
        assert_eq!(both.count("won"), 2 * one.count("won"));
        assert_eq!(both.total(), 2 * one.total());
        assert_eq!(both.redis_calls, 2 * one.redis_calls);
        assert_eq!(
            both.deduct_stages["call"].last(),
            Some(&(f64::INFINITY, 128))
        );
        // Same shape in each: the quantiles do not move.
        assert_eq!(both.quantile(None, 0.5), one.quantile(None, 0.5));
    }

    #[test]
    fn refuses_text_without_the_histogram() {
        assert!(Scrape::parse("up 1\n").is_err());
    }
}
