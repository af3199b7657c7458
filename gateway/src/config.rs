//! Gateway configuration: one typed struct, from an optional TOML file and `SECKILL_*`
//! environment variables (the environment wins), validated before anything starts.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// A secret that never appears in logs or debug output.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Everything the gateway needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// `SECKILL_LISTEN`, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `SECKILL_REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `SECKILL_AUTH_SECRET`, required: the HMAC key of user tokens.
    pub auth_secret: Secret,
    /// `SECKILL_PAYMENT_SECRET`, required: the HMAC key payment notifications are signed with.
    pub payment_secret: Secret,
    /// `SECKILL_RATE_GLOBAL`: attempts per second this instance lets through to Redis.
    pub rate_global: u32,
    /// `SECKILL_RATE_PER_USER`: attempts per second per user (also the burst).
    pub rate_per_user: u32,
    /// `SECKILL_MAX_INFLIGHT`: concurrent Redis calls; beyond it requests are shed with 503.
    pub max_inflight: usize,
    /// `SECKILL_ROCKETMQ_NAMESRV`, default `127.0.0.1:9876`: where won orders are queued.
    pub rocketmq_namesrv: String,
    /// `SECKILL_REDIS_CONNECTIONS`: multiplexed connections in the pool.
    pub redis_connections: usize,
    /// `SECKILL_PUBLISH_SENDERS` and `SECKILL_PUBLISH_LINGER_US`: enqueue batching.
    pub batching: crate::publish::Batching,
    /// `SECKILL_LOG_JSON`: `1`/`true` for JSON log lines.
    pub log_json: bool,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_RATE_GLOBAL: u32 = 200_000;
pub const DEFAULT_RATE_PER_USER: u32 = 10;
pub const DEFAULT_MAX_INFLIGHT: usize = 4096;
pub const DEFAULT_REDIS_CONNECTIONS: usize = 4;

/// The TOML file: the same settings, lower-case without the `SECKILL_` prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    redis_url: Option<String>,
    auth_secret: Option<String>,
    payment_secret: Option<String>,
    rate_global: Option<u32>,
    rate_per_user: Option<u32>,
    max_inflight: Option<usize>,
    redis_connections: Option<usize>,
    rocketmq_namesrv: Option<String>,
    publish_senders: Option<usize>,
    publish_linger_us: Option<u64>,
    log_json: Option<bool>,
}

/// A configuration problem, phrased for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the process environment and, if given, a TOML file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, |name| std::env::var(name).ok())
    }

    /// Builds a configuration from a file and an environment lookup (tests pass their own).
    pub fn from_sources(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        fn pick<T: std::str::FromStr>(
            name: &str,
            env: &impl Fn(&str) -> Option<String>,
            from_file: Option<T>,
            default: T,
        ) -> Result<T, ConfigError> {
            match env(name).filter(|v| !v.trim().is_empty()) {
                Some(raw) => raw
                    .trim()
                    .parse()
                    .map_err(|_| ConfigError(format!("{name}={raw:?} is not valid"))),
                None => Ok(from_file.unwrap_or(default)),
            }
        }
        let listen_text = pick(
            "SECKILL_LISTEN",
            &env,
            file.listen,
            DEFAULT_LISTEN.to_owned(),
        )?;
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError(format!(
                "SECKILL_LISTEN={listen_text:?} is not an address like 127.0.0.1:8080"
            ))
        })?;
        let redis_url = pick(
            "SECKILL_REDIS_URL",
            &env,
            file.redis_url,
            DEFAULT_REDIS_URL.to_owned(),
        )?;
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            return Err(ConfigError(format!(
                "SECKILL_REDIS_URL={redis_url:?} must start with redis:// or rediss://"
            )));
        }
        let auth_secret = env("SECKILL_AUTH_SECRET")
            .or(file.auth_secret)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "SECKILL_AUTH_SECRET is required: the HMAC key that signs user tokens \
                     (the same value seckillctl token mint uses)"
                        .into(),
                )
            })?;
        if auth_secret.len() < 16 {
            return Err(ConfigError(
                "SECKILL_AUTH_SECRET must be at least 16 bytes long".into(),
            ));
        }
        let rocketmq_namesrv = pick(
            "SECKILL_ROCKETMQ_NAMESRV",
            &env,
            file.rocketmq_namesrv,
            seckill_core::mq::DEFAULT_NAMESRV.to_owned(),
        )?;
        if rocketmq_namesrv.parse::<SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "SECKILL_ROCKETMQ_NAMESRV={rocketmq_namesrv:?} is not an address like 127.0.0.1:9876"
            )));
        }
        let payment_secret = env("SECKILL_PAYMENT_SECRET")
            .or(file.payment_secret)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "SECKILL_PAYMENT_SECRET is required: the HMAC key that signs payment \
                     notifications (X-Signature)"
                        .into(),
                )
            })?;
        if payment_secret.len() < 16 {
            return Err(ConfigError(
                "SECKILL_PAYMENT_SECRET must be at least 16 bytes long".into(),
            ));
        }
        let defaults = crate::publish::Batching::default();
        let batching = crate::publish::Batching {
            senders: pick(
                "SECKILL_PUBLISH_SENDERS",
                &env,
                file.publish_senders,
                defaults.senders,
            )?,
            linger: std::time::Duration::from_micros(pick(
                "SECKILL_PUBLISH_LINGER_US",
                &env,
                file.publish_linger_us,
                defaults.linger.as_micros() as u64,
            )?),
        };
        if batching.senders == 0 {
            return Err(ConfigError(
                "SECKILL_PUBLISH_SENDERS must be at least 1".into(),
            ));
        }
        let config = Config {
            batching,
            payment_secret: Secret::new(payment_secret),
            listen,
            redis_url,
            rocketmq_namesrv,
            auth_secret: Secret::new(auth_secret),
            rate_global: pick(
                "SECKILL_RATE_GLOBAL",
                &env,
                file.rate_global,
                DEFAULT_RATE_GLOBAL,
            )?,
            rate_per_user: pick(
                "SECKILL_RATE_PER_USER",
                &env,
                file.rate_per_user,
                DEFAULT_RATE_PER_USER,
            )?,
            max_inflight: pick(
                "SECKILL_MAX_INFLIGHT",
                &env,
                file.max_inflight,
                DEFAULT_MAX_INFLIGHT,
            )?,
            redis_connections: pick(
                "SECKILL_REDIS_CONNECTIONS",
                &env,
                file.redis_connections,
                DEFAULT_REDIS_CONNECTIONS,
            )?,
            log_json: matches!(
                env("SECKILL_LOG_JSON").as_deref(),
                Some("1" | "true" | "yes")
            ) || file.log_json.unwrap_or(false),
        };
        for (name, value) in [
            ("SECKILL_RATE_GLOBAL", config.rate_global as usize),
            ("SECKILL_RATE_PER_USER", config.rate_per_user as usize),
            ("SECKILL_MAX_INFLIGHT", config.max_inflight),
            ("SECKILL_REDIS_CONNECTIONS", config.redis_connections),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn refuses_to_start_without_a_secret() {
        let err = Config::from_sources(None, env(&[])).unwrap_err();
        assert!(err.to_string().contains("SECKILL_AUTH_SECRET is required"));
    }

    #[test]
    fn defaults_and_overrides() {
        let config = Config::from_sources(
            None,
            env(&[
                ("SECKILL_AUTH_SECRET", "0123456789abcdef"),
                ("SECKILL_PAYMENT_SECRET", "fedcba9876543210"),
                ("SECKILL_RATE_PER_USER", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.rate_per_user, 3);
        assert_eq!(config.max_inflight, DEFAULT_MAX_INFLIGHT);
        assert!(
            !format!("{config:?}").contains("0123456789abcdef"),
            "secret leaked"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("SECKILL_LISTEN", "localhost"),
            ("SECKILL_RATE_GLOBAL", "fast"),
            ("SECKILL_MAX_INFLIGHT", "0"),
            ("SECKILL_REDIS_URL", "http://x"),
        ] {
            let err = Config::from_sources(
                None,
                env(&[
                    ("SECKILL_AUTH_SECRET", "0123456789abcdef"),
                    ("SECKILL_PAYMENT_SECRET", "fedcba9876543210"),
                    (name, value),
                ]),
            )
            .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("seckill-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(
            &path,
            "auth_secret = \"from-file-0123456789\"\npayment_secret = \"pay-from-file-0123456\"\nrate_per_user = 7\nmax_inflight = 9\n",
        )
        .unwrap();
        let config =
            Config::from_sources(Some(&path), env(&[("SECKILL_MAX_INFLIGHT", "11")])).unwrap();
        assert_eq!(config.auth_secret.expose(), b"from-file-0123456789");
        assert_eq!((config.rate_per_user, config.max_inflight), (7, 11));
        std::fs::write(&path, "nonsense = 1\n").unwrap();
        assert!(Config::from_sources(Some(&path), env(&[])).is_err());
    }
}
