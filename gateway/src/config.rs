//! Gateway configuration: one typed struct, from an optional TOML file and `SECKILL_*`
//! environment variables (the environment wins), validated before anything starts.

use std::net::SocketAddr;
use std::path::Path;

use seckill_ledger::DEFAULT_REDIS_URL;
use serde::Deserialize;

use seckill_service::Settings;
pub use seckill_service::{ConfigError, Secret};

use crate::timing::Timing;

/// Everything the gateway needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// `SECKILL_LISTEN`, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `SECKILL_ADMIN_LISTEN`, default none: a second listener for `/metrics`, `/readyz` and
    /// `/healthz`. When set, the public listener answers `/metrics` and `/readyz` with 404.
    pub admin_listen: Option<SocketAddr>,
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
    /// `SECKILL_MAX_CONNECTIONS`: open client connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// `SECKILL_ROCKETMQ_NAMESRV`, default `127.0.0.1:9876`: where won orders are queued.
    pub rocketmq_namesrv: String,
    /// `SECKILL_REDIS_CONNECTIONS`: multiplexed connections in the pool.
    pub redis_connections: usize,
    /// `SECKILL_PUBLISH_SENDERS` and `SECKILL_PUBLISH_LINGER_US`: enqueue batching.
    pub batching: crate::publish::Batching,
    /// `SECKILL_DEDUCT_SLOTS`: `deduct.lua` calls in flight at once; attempts that arrive
    /// meanwhile share the next call.
    pub deduct_slots: usize,
    /// `SECKILL_CONFIRM`: when a winner is answered.
    pub confirm: Confirm,
    /// `SECKILL_PUBLISH_WAIT`, `SECKILL_SEND_TIMEOUT`, `SECKILL_RELAY_AGE`,
    /// `SECKILL_HEADER_TIMEOUT`, `SECKILL_WRITE_TIMEOUT` and the fixed clocks.
    pub timing: Timing,
    /// `SECKILL_LOG_JSON`: `1`/`true` for JSON log lines.
    pub log_json: bool,
    /// `SECKILL_CORS_ORIGINS`: origins whose pages may call the gateway (unset: no CORS).
    pub cors: crate::cors::Cors,
    /// `SECKILL_DEMO_UI`: `1` serves the storefront page of `web/` under `/demo/`.
    pub demo_ui: bool,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// When a winner gets its 202 (`SECKILL_CONFIRM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// `ledger` (default): once the deduct committed the order to the ledger and its outbox;
    /// publishing follows in batches behind the answer, the relay guaranteeing delivery.
    Ledger,
    /// `broker`: once the broker confirmed the order's message (SEND_OK), else 503 after
    /// `SECKILL_PUBLISH_WAIT`.
    Broker,
}

impl std::str::FromStr for Confirm {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "ledger" => Ok(Confirm::Ledger),
            "broker" => Ok(Confirm::Broker),
            _ => Err(()),
        }
    }
}
pub const DEFAULT_RATE_GLOBAL: u32 = 200_000;
pub const DEFAULT_RATE_PER_USER: u32 = 10;
pub const DEFAULT_MAX_INFLIGHT: usize = 4096;
/// A connection holds at most two `crate::conn::BUFFER`s (16 KiB) plus hyper's state: 10,000
/// of them stay within about 200 MiB whatever their clients do. The process's file-descriptor
/// limit must be above it (the accept loop backs off on EMFILE).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_REDIS_CONNECTIONS: usize = 4;
pub const DEFAULT_DEDUCT_SLOTS: usize = 2;

/// The TOML file: the same settings, lower-case without the `SECKILL_` prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    redis_url: Option<String>,
    auth_secret: Option<String>,
    payment_secret: Option<String>,
    rate_global: Option<u32>,
    rate_per_user: Option<u32>,
    max_inflight: Option<usize>,
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    write_timeout: Option<String>,
    redis_connections: Option<usize>,
    rocketmq_namesrv: Option<String>,
    publish_senders: Option<usize>,
    deduct_slots: Option<usize>,
    publish_linger_us: Option<u64>,
    publish_wait: Option<String>,
    confirm: Option<String>,
    send_timeout: Option<String>,
    relay_age: Option<String>,
    log_json: Option<bool>,
    cors_origins: Option<String>,
    demo_ui: Option<bool>,
}

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
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!("cannot read {}: {e}", path.display()))
                })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };
        let settings = Settings::new(env);
        let listen_text = settings.get("SECKILL_LISTEN", file.listen, DEFAULT_LISTEN.to_owned())?;
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(format!(
                "SECKILL_LISTEN={listen_text:?} is not an address like 127.0.0.1:8080"
            ))
        })?;
        let admin_text = settings
            .raw("SECKILL_ADMIN_LISTEN")
            .or(file.admin_listen)
            .filter(|text| !text.is_empty());
        let admin_listen = match admin_text {
            None => None,
            Some(text) => {
                let admin: SocketAddr = text.parse().map_err(|_| {
                    ConfigError::new(format!(
                        "SECKILL_ADMIN_LISTEN={text:?} is not an address like 127.0.0.1:9090"
                    ))
                })?;
                if admin == listen && admin.port() != 0 {
                    return Err(ConfigError::new(format!(
                        "SECKILL_ADMIN_LISTEN={text:?} is SECKILL_LISTEN's address; the admin \
                         listener needs one of its own"
                    )));
                }
                Some(admin)
            }
        };
        let redis_url = settings.get(
            "SECKILL_REDIS_URL",
            file.redis_url,
            DEFAULT_REDIS_URL.to_owned(),
        )?;
        check_redis_url(&redis_url)?;
        let rocketmq_namesrv = settings.get(
            "SECKILL_ROCKETMQ_NAMESRV",
            file.rocketmq_namesrv,
            seckill_messages::DEFAULT_NAMESRV.to_owned(),
        )?;
        if rocketmq_namesrv.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::new(format!(
                "SECKILL_ROCKETMQ_NAMESRV={rocketmq_namesrv:?} is not an address like 127.0.0.1:9876"
            )));
        }
        let auth_secret = settings.secret(
            "SECKILL_AUTH_SECRET",
            file.auth_secret,
            "the HMAC key that signs user tokens (the same value seckillctl token mint uses)",
        )?;
        let payment_secret = settings.secret(
            "SECKILL_PAYMENT_SECRET",
            file.payment_secret,
            "the HMAC key that signs payment notifications (X-Signature)",
        )?;
        let confirm_text = settings.get("SECKILL_CONFIRM", file.confirm, "ledger".to_owned())?;
        let confirm: Confirm = confirm_text.parse().map_err(|()| {
            ConfigError::new(format!(
                "SECKILL_CONFIRM={confirm_text:?} must be `ledger` (answer at the ledger's commit) \
                 or `broker` (answer once the broker stored the order)"
            ))
        })?;
        let defaults = crate::publish::Batching::for_confirm(confirm);
        let batching = crate::publish::Batching {
            senders: settings.positive(
                "SECKILL_PUBLISH_SENDERS",
                file.publish_senders,
                defaults.senders,
            )?,
            linger: std::time::Duration::from_micros(settings.get(
                "SECKILL_PUBLISH_LINGER_US",
                file.publish_linger_us,
                defaults.linger.as_micros() as u64,
            )?),
        };
        let clocks = Timing::default();
        let timing = Timing {
            publish_wait: settings.duration(
                "SECKILL_PUBLISH_WAIT",
                file.publish_wait.as_deref(),
                clocks.publish_wait,
            )?,
            send_timeout: settings.duration(
                "SECKILL_SEND_TIMEOUT",
                file.send_timeout.as_deref(),
                clocks.send_timeout,
            )?,
            relay_age: settings.duration(
                "SECKILL_RELAY_AGE",
                file.relay_age.as_deref(),
                clocks.relay_age,
            )?,
            header_read: settings.duration(
                "SECKILL_HEADER_TIMEOUT",
                file.header_timeout.as_deref(),
                clocks.header_read,
            )?,
            write: settings.duration(
                "SECKILL_WRITE_TIMEOUT",
                file.write_timeout.as_deref(),
                clocks.write,
            )?,
            ..clocks
        };
        timing.check()?;
        let cors = crate::cors::Cors::parse(
            &settings
                .raw("SECKILL_CORS_ORIGINS")
                .or(file.cors_origins)
                .unwrap_or_default(),
        )?;
        Ok(Config {
            cors,
            demo_ui: settings.flag("SECKILL_DEMO_UI", file.demo_ui),
            batching,
            payment_secret,
            listen,
            admin_listen,
            redis_url,
            rocketmq_namesrv,
            auth_secret,
            rate_global: settings.positive(
                "SECKILL_RATE_GLOBAL",
                file.rate_global,
                DEFAULT_RATE_GLOBAL,
            )?,
            rate_per_user: settings.positive(
                "SECKILL_RATE_PER_USER",
                file.rate_per_user,
                DEFAULT_RATE_PER_USER,
            )?,
            max_inflight: settings.positive(
                "SECKILL_MAX_INFLIGHT",
                file.max_inflight,
                DEFAULT_MAX_INFLIGHT,
            )?,
            max_connections: settings.positive(
                "SECKILL_MAX_CONNECTIONS",
                file.max_connections,
                DEFAULT_MAX_CONNECTIONS,
            )?,
            redis_connections: settings.positive(
                "SECKILL_REDIS_CONNECTIONS",
                file.redis_connections,
                DEFAULT_REDIS_CONNECTIONS,
            )?,
            deduct_slots: settings.positive(
                "SECKILL_DEDUCT_SLOTS",
                file.deduct_slots,
                DEFAULT_DEDUCT_SLOTS,
            )?,
            confirm,
            timing,
            log_json: settings.flag("SECKILL_LOG_JSON", file.log_json),
        })
    }
}

/// One Redis URL (a node) or several separated by commas (a cluster's nodes).
fn check_redis_url(url: &str) -> Result<(), ConfigError> {
    if url
        .split(',')
        .any(|u| !u.trim().starts_with("redis://") && !u.trim().starts_with("rediss://"))
    {
        return Err(ConfigError::new(
            "SECKILL_REDIS_URL must be redis:// or rediss:// URLs (several, comma-separated, for a cluster)",
        ));
    }
    seckill_ledger::Topology::parse(url)
        .map(|_| ())
        .map_err(|e| ConfigError::new(format!("SECKILL_REDIS_URL: {e}")))
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
    fn refuses_the_demos_published_secrets_unless_allowed() {
        let demo = [
            ("SECKILL_AUTH_SECRET", "demo-secret-change-me-0123456789"),
            (
                "SECKILL_PAYMENT_SECRET",
                "demo-payment-secret-change-me-0123",
            ),
        ];
        let err = Config::from_sources(None, env(&demo)).unwrap_err();
        assert!(err.to_string().contains("published secret"), "{err}");
        let allowed = [demo[0], demo[1], ("SECKILL_ALLOW_DEMO_SECRETS", "1")];
        assert!(Config::from_sources(None, env(&allowed)).is_ok());
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
        assert_eq!(config.admin_listen, None);
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
            ("SECKILL_REDIS_URL", "redis://127.0.0.1:7001,"),
            ("SECKILL_PUBLISH_WAIT", "soon"),
            ("SECKILL_RELAY_AGE", "1s"),
            ("SECKILL_CONFIRM", "later"),
            ("SECKILL_MAX_CONNECTIONS", "0"),
            ("SECKILL_WRITE_TIMEOUT", "0s"),
            ("SECKILL_HEADER_TIMEOUT", "never"),
            ("SECKILL_CORS_ORIGINS", "shop.example.com"),
            ("SECKILL_ADMIN_LISTEN", "admin"),
            ("SECKILL_ADMIN_LISTEN", DEFAULT_LISTEN),
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
            "auth_secret = \"from-file-0123456789\"\npayment_secret = \"pay-from-file-0123456\"\nrate_per_user = 7\nmax_inflight = 9\nadmin_listen = \"127.0.0.1:9090\"\n",
        )
        .unwrap();
        let config =
            Config::from_sources(Some(&path), env(&[("SECKILL_MAX_INFLIGHT", "11")])).unwrap();
        assert_eq!(config.auth_secret.expose(), b"from-file-0123456789");
        assert_eq!((config.rate_per_user, config.max_inflight), (7, 11));
        assert_eq!(config.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
        std::fs::write(&path, "nonsense = 1\n").unwrap();
        assert!(Config::from_sources(Some(&path), env(&[])).is_err());
    }
}
