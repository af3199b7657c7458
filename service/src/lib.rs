//! `seckill-service`: what every seckill binary does the same way.
//!
//! - [`settings`]: reading `SECKILL_*` settings (environment first, then a TOML file's value,
//!   then the default) into typed values, with errors that name the variable; [`Secret`] for
//!   values that must never be printed, [`redact_url`] for URLs that may carry a password.
//! - [`duration`]: durations as operators write them (`30m`, `8s`).
//! - [`clock`]: Unix time in the units the ledger records.
//! - [`process`]: logging set-up, the shutdown signal, and the body of a service binary.

pub mod clock;
pub mod duration;
pub mod process;
pub mod settings;

pub use clock::{now_ms, now_unix};
pub use duration::{parse_duration, DurationError};
pub use settings::{redact_url, ConfigError, Secret, Settings};
