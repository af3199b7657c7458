//! Durations as operators write them: `30m`, `8s`, `1h30m`, `250ms`.

use std::time::Duration;

/// A duration that could not be read, with what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Parses a short duration such as `30m`, `8s`, `1h`, `250ms`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError("empty duration".into()));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError(format!(
                "bad duration {text:?}: expected a number, e.g. 30m, 8s, 1h"
            )));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError(format!("bad duration {text:?}: number too large")))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => {
                return Err(DurationError(format!(
                    "bad duration {text:?}: missing unit (ms, s, m, h, d)"
                )))
            }
            other => {
                return Err(DurationError(format!(
                    "bad duration {text:?}: unknown unit {other:?}"
                )))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "10", "10x", "-5s", "1.5h", "s10"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
