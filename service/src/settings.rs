//! Typed settings from `SECKILL_*` variables, an optional TOML file, and defaults.
//!
//! Each binary declares one configuration struct and fills it through [`Settings`], so every
//! setting is read the same way: a non-empty environment variable wins over the file's value,
//! which wins over the default; a value that does not parse stops the process with a message
//! naming the variable. Nothing here logs a value: secrets go through [`Secret`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A configuration problem, phrased for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

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

/// The secrets `scripts/demo.sh` publishes. A server refuses them unless
/// [`ALLOW_DEMO_SECRETS`] is set, so a deployment copied from the demo cannot go live with keys
/// everyone knows.
pub const DEMO_SECRETS: [&str; 2] = [
    "demo-secret-change-me-0123456789",
    "demo-payment-secret-change-me-0123",
];

/// The setting that lets a server start with [`DEMO_SECRETS`] (the demo sets it).
pub const ALLOW_DEMO_SECRETS: &str = "SECKILL_ALLOW_DEMO_SECRETS";

/// `scheme://user:***@host/…`: a URL fit for a message (its password, if any, hidden).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Reads settings from an environment lookup (the process environment, or a test's map).
pub struct Settings<E> {
    env: E,
}

impl Settings<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn from_process() -> Self {
        fn lookup(name: &str) -> Option<String> {
            std::env::var(name).ok()
        }
        Settings { env: lookup }
    }
}

impl<E: Fn(&str) -> Option<String>> Settings<E> {
    pub fn new(env: E) -> Self {
        Settings { env }
    }

    /// The variable's value, trimmed; `None` when unset or blank.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.env)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `name` parsed, else the file's value, else `default`.
    pub fn get<T: FromStr>(
        &self,
        name: &str,
        from_file: Option<T>,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.raw(name) {
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError(format!("{name}={raw:?} is not valid"))),
            None => Ok(from_file.unwrap_or(default)),
        }
    }

    /// As [`Settings::get`] for a count that must be at least 1.
    pub fn positive<T: FromStr + PartialEq + Default>(
        &self,
        name: &str,
        from_file: Option<T>,
        default: T,
    ) -> Result<T, ConfigError> {
        let value = self.get(name, from_file, default)?;
        if value == T::default() {
            return Err(ConfigError(format!("{name} must be at least 1")));
        }
        Ok(value)
    }

    /// A positive duration such as `30m` or `8s`.
    pub fn duration(
        &self,
        name: &str,
        from_file: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let raw = match self.raw(name) {
            Some(raw) => raw,
            None => match from_file {
                Some(text) => text.to_owned(),
                None => return Ok(default),
            },
        };
        match crate::duration::parse_duration(&raw) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(ConfigError(format!("{name} must be positive"))),
            Err(e) => Err(ConfigError(format!("{name}: {e}"))),
        }
    }

    /// `1`, `true` or `yes` (any case) for yes; anything else set for no.
    pub fn flag(&self, name: &str, from_file: Option<bool>) -> bool {
        match self.raw(name) {
            Some(raw) => matches!(raw.to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
            None => from_file.unwrap_or(false),
        }
    }

    /// A secret of at least 16 bytes; `purpose` says what it signs, for the error.
    pub fn secret(
        &self,
        name: &str,
        from_file: Option<String>,
        purpose: &str,
    ) -> Result<Secret, ConfigError> {
        let value = (self.env)(name)
            .filter(|s| !s.is_empty())
            .or(from_file.filter(|s| !s.is_empty()))
            .ok_or_else(|| ConfigError(format!("{name} is required: {purpose}")))?;
        if value.len() < 16 {
            return Err(ConfigError(format!(
                "{name} must be at least 16 bytes long"
            )));
        }
        if DEMO_SECRETS.contains(&value.as_str()) && !self.flag(ALLOW_DEMO_SECRETS, None) {
            return Err(ConfigError(format!(
                "{name} is the demo's published secret (scripts/demo.sh): anyone could sign with \
                 it. Set a secret of your own, or {ALLOW_DEMO_SECRETS}=1 for a demo"
            )));
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::new(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn environment_then_file_then_default() {
        let s = settings(&[("A", " 7 "), ("BLANK", "  ")]);
        assert_eq!(s.get("A", Some(3), 1).unwrap(), 7);
        assert_eq!(s.get("BLANK", Some(3), 1).unwrap(), 3);
        assert_eq!(s.get("UNSET", None, 1).unwrap(), 1);
        let err = settings(&[("A", "many")]).get("A", None, 1u32).unwrap_err();
        assert!(err.to_string().contains("A=\"many\""), "{err}");
        assert!(settings(&[("N", "0")]).positive("N", None, 4usize).is_err());
    }

    #[test]
    fn durations_flags_and_secrets() {
        let s = settings(&[("W", "8s"), ("Z", "0s"), ("F", "YES"), ("S", "short")]);
        assert_eq!(
            s.duration("W", None, Duration::ZERO).unwrap(),
            Duration::from_secs(8)
        );
        assert!(s.duration("Z", None, Duration::ZERO).is_err());
        assert_eq!(
            s.duration("U", Some("1m"), Duration::ZERO).unwrap(),
            Duration::from_secs(60)
        );
        assert!(s.flag("F", None));
        assert!(!s.flag("U", None));
        assert!(s.secret("S", None, "x").is_err());
        let missing = s.secret("U", None, "signs things").unwrap_err();
        assert!(missing.to_string().contains("U is required: signs things"));
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn the_demos_published_secrets_need_an_explicit_allowance() {
        for demo in DEMO_SECRETS {
            let refused = settings(&[("K", demo)]).secret("K", None, "x").unwrap_err();
            assert!(
                refused.to_string().contains("demo's published secret"),
                "{refused}"
            );
            let from_file = settings(&[]).secret("K", Some(demo.to_owned()), "x");
            assert!(from_file.is_err());
            let allowed =
                settings(&[("K", demo), (ALLOW_DEMO_SECRETS, "1")]).secret("K", None, "x");
            assert_eq!(allowed.unwrap().expose(), demo.as_bytes());
        }
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://seckill:pw@127.0.0.1:5432/db"),
            "postgres://seckill:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(redact_url("redis://127.0.0.1"), "redis://127.0.0.1");
    }
}
