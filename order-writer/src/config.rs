//! Writer configuration from `SECKILL_*` environment variables, validated at start.

use std::net::SocketAddr;

use crate::store::DEFAULT_DATABASE_URL;

#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// `SECKILL_ROCKETMQ_NAMESRV`, default `127.0.0.1:9876`.
    pub rocketmq_namesrv: String,
    /// `SECKILL_DATABASE_URL`, default the local stack's database.
    pub database_url: String,
    /// `SECKILL_REDIS_URL`, default `redis://127.0.0.1:6379` (status mirror).
    pub redis_url: String,
    /// `SECKILL_WRITER_GROUP`: the consumer group; writers of one group share the work.
    pub consumer_group: String,
    /// `SECKILL_WRITER_START_AT`: where a NEW consumer group starts (`earliest`, the default, or
    /// an RFC 3339 time). A group that already consumed resumes where it stopped either way.
    pub start_at: StartAt,
    /// `SECKILL_WRITER_ACTIVITIES`: comma-separated activity ids this writer group handles
    /// (a group dedicated to a hot sale, say); empty = every activity.
    pub activities: Vec<String>,
    /// `SECKILL_DB_POOL`: database connections.
    pub db_pool: usize,
    /// `SECKILL_PAYMENT_WINDOW` (e.g. `30m`, `8s`), default 30 minutes: unpaid orders are
    /// cancelled and their stock returned after it.
    pub payment_window: std::time::Duration,
    /// `SECKILL_SWEEP_EVERY`, default 30 s: how often the sweep looks for overdue orders.
    pub sweep_every: std::time::Duration,
    /// `SECKILL_LOG_JSON`.
    pub log_json: bool,
}

/// Where a new consumer group starts reading `seckill_order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// From the first message the broker holds: a new writer group never skips an order that
    /// was published before it first started (persisting is idempotent, so replays are safe).
    Earliest,
    /// From this Unix time in milliseconds (tests: a fresh group that ignores older traffic).
    UnixMs(i64),
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl WriterConfig {
    /// The RocketMQ subscription expression: the activities' tags, or every tag.
    pub fn subscription(&self) -> String {
        if self.activities.is_empty() {
            "*".to_owned()
        } else {
            self.activities.join(" || ")
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let rocketmq_namesrv = env("SECKILL_ROCKETMQ_NAMESRV")
            .unwrap_or_else(|| seckill_core::mq::DEFAULT_NAMESRV.to_owned());
        if rocketmq_namesrv.parse::<SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "SECKILL_ROCKETMQ_NAMESRV={rocketmq_namesrv:?} is not an address like 127.0.0.1:9876"
            )));
        }
        let database_url =
            env("SECKILL_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(ConfigError(format!(
                "SECKILL_DATABASE_URL must be a postgres:// URL, got {database_url:?}"
            )));
        }
        let redis_url =
            env("SECKILL_REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        let db_pool = match env("SECKILL_DB_POOL") {
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ConfigError(format!("SECKILL_DB_POOL={raw:?} must be a positive number"))
                })?,
            None => 16,
        };
        let start_at = match env("SECKILL_WRITER_START_AT") {
            None => StartAt::Earliest,
            Some(raw) if raw == "earliest" => StartAt::Earliest,
            Some(raw) => {
                let at = time::OffsetDateTime::parse(
                    &raw,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|_| {
                    ConfigError(format!(
                        "SECKILL_WRITER_START_AT={raw:?} must be `earliest` or an RFC 3339 time"
                    ))
                })?;
                StartAt::UnixMs((at.unix_timestamp_nanos() / 1_000_000) as i64)
            }
        };
        let duration = |name: &str, default: &str| -> Result<std::time::Duration, ConfigError> {
            let raw = env(name).unwrap_or_else(|| default.to_owned());
            match seckill_core::time::parse_duration(&raw) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(ConfigError(format!("{name} must be positive"))),
                Err(e) => Err(ConfigError(format!("{name}: {e}"))),
            }
        };
        let payment_window = duration("SECKILL_PAYMENT_WINDOW", "30m")?;
        let sweep_every = duration("SECKILL_SWEEP_EVERY", "30s")?;
        let activities: Vec<String> = env("SECKILL_WRITER_ACTIVITIES")
            .map(|list| {
                list.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for activity in &activities {
            seckill_core::ActivityId::parse(activity)
                .map_err(|e| ConfigError(format!("SECKILL_WRITER_ACTIVITIES: {e}")))?;
        }
        Ok(WriterConfig {
            activities,
            payment_window,
            sweep_every,
            start_at,
            rocketmq_namesrv,
            database_url,
            redis_url,
            consumer_group: env("SECKILL_WRITER_GROUP")
                .unwrap_or_else(|| "seckill_order_writer".to_owned()),
            db_pool,
            log_json: matches!(
                env("SECKILL_LOG_JSON").as_deref(),
                Some("1" | "true" | "yes")
            ),
        })
    }
}
