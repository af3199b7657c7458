//! Request-body fields as the contract (`docs/openapi.yaml`, JSON Schema) types them.
//!
//! JSON Schema's `integer` is any number without a fraction, so `2.0` is the integer 2: a client
//! that serialises whole numbers as floats is within the contract and gets the same answer as
//! one that writes `2`. A present field has its type: `null` is not "absent".

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A whole number in `i64`'s range (`3` or `3.0`), or `None` (`2.5`, `1e30`).
fn whole(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(f))
            // In range and without a fraction: the cast is exact.
            .map(|f| f as i64)
    })
}

/// An integer field of type `T` (`u32`, `i64`, …): a whole number that fits `T`.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    whole(&number)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, not {number}")))
}

/// An optional integer field: absent is `None`; `null` is refused.
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    integer(deserializer).map(Some)
}

/// An optional field of any type: absent is `None`; `null` is refused.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional_integer")]
        units: Option<u32>,
        #[serde(default, deserialize_with = "super::integer")]
        cents: i64,
    }

    fn parse(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        let body = parse(r#"{"units": 2.0, "cents": -171.0}"#).unwrap();
        assert_eq!((body.units, body.cents), (Some(2), -171));
        let body = parse(r#"{"cents": 9223372036854775807}"#).unwrap();
        assert_eq!((body.units, body.cents), (None, i64::MAX));
        for bad in [
            r#"{"units": 2.5}"#,
            r#"{"units": -1}"#,
            r#"{"units": 4294967296}"#,
            r#"{"units": null}"#,
            r#"{"units": "2"}"#,
            r#"{"cents": 26288681347879402471424}"#,
            r#"{"cents": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
