//! Writer configuration from `SECKILL_*` environment variables, validated at start.

use std::net::SocketAddr;

use seckill_ledger::{ActivityId, DEFAULT_REDIS_URL};
use seckill_service::{ConfigError, Settings};

use crate::timing::Timing;

#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// `SECKILL_ROCKETMQ_NAMESRV`, default `127.0.0.1:9876`.
    pub rocketmq_namesrv: String,
    /// `SECKILL_DATABASE_URL`, default the local stack's database.
    pub database_url: String,
    /// `SECKILL_REDIS_URL`, default `redis://127.0.0.1:6379` (status mirror, stock release).
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
    /// `SECKILL_PAYMENT_WINDOW`, `SECKILL_SWEEP_EVERY` and the fixed clocks.
    pub timing: Timing,
    /// `SECKILL_LOG_JSON`.
    pub log_json: bool,
    /// `SECKILL_WRITER_METRICS_LISTEN`: where `GET /metrics` answers (unset: no listener).
    pub metrics_listen: Option<SocketAddr>,
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

impl StartAt {
    /// The consumer's start position (`None` = the first message).
    pub fn unix_ms(self) -> Option<i64> {
        match self {
            StartAt::Earliest => None,
            StartAt::UnixMs(ms) => Some(ms),
        }
    }
}

pub const DEFAULT_GROUP: &str = "seckill_order_writer";
pub const DEFAULT_DB_POOL: usize = 16;

impl WriterConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::from_process())
    }

    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::new(env))
    }

    fn from_settings<E: Fn(&str) -> Option<String>>(
        settings: &Settings<E>,
    ) -> Result<Self, ConfigError> {
        let rocketmq_namesrv = settings.get(
            "SECKILL_ROCKETMQ_NAMESRV",
            None,
            seckill_messages::DEFAULT_NAMESRV.to_owned(),
        )?;
        if rocketmq_namesrv.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::new(format!(
                "SECKILL_ROCKETMQ_NAMESRV={rocketmq_namesrv:?} is not an address like 127.0.0.1:9876"
            )));
        }
        let database_url = settings.get(
            "SECKILL_DATABASE_URL",
            None,
            seckill_store::DEFAULT_DATABASE_URL.to_owned(),
        )?;
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(ConfigError::new(
                "SECKILL_DATABASE_URL must be a postgres:// URL",
            ));
        }
        let redis_url = settings.get("SECKILL_REDIS_URL", None, DEFAULT_REDIS_URL.to_owned())?;
        seckill_ledger::Topology::parse(&redis_url)
            .map_err(|e| ConfigError::new(format!("SECKILL_REDIS_URL: {e}")))?;
        let start_at = match settings.raw("SECKILL_WRITER_START_AT") {
            None => StartAt::Earliest,
            Some(raw) if raw == "earliest" => StartAt::Earliest,
            Some(raw) => {
                let at = time::OffsetDateTime::parse(
                    &raw,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|_| {
                    ConfigError::new(format!(
                        "SECKILL_WRITER_START_AT={raw:?} must be `earliest` or an RFC 3339 time"
                    ))
                })?;
                StartAt::UnixMs((at.unix_timestamp_nanos() / 1_000_000) as i64)
            }
        };
        let defaults = Timing::default();
        let timing = Timing {
            payment_window: settings.duration(
                "SECKILL_PAYMENT_WINDOW",
                None,
                defaults.payment_window,
            )?,
            adopt_after: settings.duration(
                "SECKILL_WRITER_ADOPT_AFTER",
                None,
                defaults.adopt_after,
            )?,
            ..defaults.clone()
        }
        .with_sweep_every(settings.duration(
            "SECKILL_SWEEP_EVERY",
            None,
            defaults.sweep_every,
        )?);
        timing.check()?;
        let activities: Vec<String> = settings
            .raw("SECKILL_WRITER_ACTIVITIES")
            .map(|list| {
                list.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for activity in &activities {
            ActivityId::parse(activity)
                .map_err(|e| ConfigError::new(format!("SECKILL_WRITER_ACTIVITIES: {e}")))?;
        }
        let metrics_listen = match settings.raw("SECKILL_WRITER_METRICS_LISTEN") {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(format!(
                    "SECKILL_WRITER_METRICS_LISTEN={text:?} is not an address like 127.0.0.1:9464"
                ))
            })?),
        };
        let consumer_group: String =
            settings.get("SECKILL_WRITER_GROUP", None, DEFAULT_GROUP.to_owned())?;
        if !activities.is_empty() && consumer_group == DEFAULT_GROUP {
            // A filtered writer acknowledges other activities' orders without persisting them:
            // in the group that must persist every order, that would lose them.
            return Err(ConfigError::new(format!(
                "SECKILL_WRITER_ACTIVITIES needs a SECKILL_WRITER_GROUP of its own: the default \
                 group {DEFAULT_GROUP} persists every activity's orders"
            )));
        }
        Ok(WriterConfig {
            activities,
            timing,
            start_at,
            rocketmq_namesrv,
            database_url,
            redis_url,
            consumer_group,
            db_pool: settings.positive("SECKILL_DB_POOL", None, DEFAULT_DB_POOL)?,
            log_json: settings.flag("SECKILL_LOG_JSON", None),
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn config(pairs: &[(&str, &str)]) -> Result<WriterConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WriterConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.consumer_group, DEFAULT_GROUP);
        assert_eq!(defaults.start_at, StartAt::Earliest);
        assert_eq!(defaults.timing, Timing::default());
        let set = config(&[
            ("SECKILL_PAYMENT_WINDOW", "8s"),
            ("SECKILL_SWEEP_EVERY", "1s"),
            ("SECKILL_WRITER_GROUP", "hot_sale"),
            ("SECKILL_WRITER_ACTIVITIES", "a, b"),
            ("SECKILL_WRITER_START_AT", "2026-12-01T00:00:00Z"),
        ])
        .unwrap();
        assert_eq!(set.timing.payment_window, Duration::from_secs(8));
        assert_eq!(set.timing.sweep_lease, Duration::from_secs(3));
        assert_eq!(set.activities, ["a", "b"]);
        assert_eq!(set.start_at, StartAt::UnixMs(1_796_083_200_000));
    }

    #[test]
    fn a_filtered_writer_needs_a_group_of_its_own() {
        let err = config(&[("SECKILL_WRITER_ACTIVITIES", "a")]).unwrap_err();
        assert!(
            err.to_string().contains("SECKILL_WRITER_GROUP of its own"),
            "{err}"
        );
        let explicit_default = config(&[
            ("SECKILL_WRITER_ACTIVITIES", "a"),
            ("SECKILL_WRITER_GROUP", DEFAULT_GROUP),
        ]);
        assert!(explicit_default.is_err());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("SECKILL_ROCKETMQ_NAMESRV", "nowhere"),
            ("SECKILL_DATABASE_URL", "mysql://x"),
            ("SECKILL_PAYMENT_WINDOW", "soon"),
            ("SECKILL_SWEEP_EVERY", "0s"),
            ("SECKILL_WRITER_ADOPT_AFTER", "0s"),
            ("SECKILL_WRITER_ADOPT_AFTER", "later"),
            ("SECKILL_REDIS_URL", "redis://127.0.0.1:7001,"),
            ("SECKILL_WRITER_ACTIVITIES", "a{b}"),
            ("SECKILL_WRITER_START_AT", "yesterday"),
            ("SECKILL_DB_POOL", "0"),
            ("SECKILL_WRITER_METRICS_LISTEN", "everywhere"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
