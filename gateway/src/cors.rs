//! CORS for browser frontends served from another origin (`SECKILL_CORS_ORIGINS`).
//!
//! Everything is answered from memory: a preflight `OPTIONS` never reaches Redis, and a
//! gateway with no origins configured adds no header at all. Origins match exactly (scheme,
//! host and port, as the browser sends them in `Origin`); tokens travel in `Authorization`, never
//! in cookies, so no credentials mode is offered.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue};
use seckill_service::ConfigError;

/// The origins browsers may call this gateway from.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
}

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, DELETE");
const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("Authorization, Content-Type");
/// A buyer told to retry must be able to read when.
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("Retry-After");
/// Browsers cache a preflight this long (seconds): one per page, not one per click.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

impl Cors {
    /// `SECKILL_CORS_ORIGINS`: comma-separated origins such as `https://shop.example.com`;
    /// blank for none.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut origins = Vec::new();
        for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let bad = |why: &str| {
                ConfigError::new(format!(
                    "SECKILL_CORS_ORIGINS: {origin:?} {why} (an origin is scheme://host[:port], \
                     e.g. https://shop.example.com)"
                ))
            };
            let Some((scheme, host)) = origin.split_once("://") else {
                return Err(bad("has no scheme"));
            };
            if scheme != "http" && scheme != "https" {
                return Err(bad("is not http or https"));
            }
            if host.is_empty() || host.contains('/') {
                return Err(bad("must have a host and no path, not even a trailing /"));
            }
            origins.push(HeaderValue::from_str(origin).map_err(|_| bad("is not a header value"))?);
        }
        Ok(Cors { origins })
    }

    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The request's `Origin` when it is one of ours.
    pub fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if self.origins.is_empty() {
            return None;
        }
        let origin = headers.get(ORIGIN)?;
        self.origins.iter().find(|o| *o == origin).cloned()
    }

    /// The headers of an answer to an allowed origin; `preflight` adds what the browser asked
    /// permission for.
    pub fn decorate(headers: &mut HeaderMap, origin: HeaderValue, preflight: bool) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(VARY, VARY_ORIGIN);
        if preflight {
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
            headers.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        } else {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers
    }

    #[test]
    fn exact_origins_only() {
        let cors = Cors::parse(" https://shop.example.com , http://127.0.0.1:5173").unwrap();
        assert!(cors.enabled());
        assert!(cors
            .allowed(&with_origin("https://shop.example.com"))
            .is_some());
        assert!(cors
            .allowed(&with_origin("http://127.0.0.1:5173"))
            .is_some());
        for other in [
            "https://evil.example.com",
            "http://shop.example.com",
            "https://shop.example.com:8443",
            "null",
        ] {
            assert!(cors.allowed(&with_origin(other)).is_none(), "{other}");
        }
        assert!(cors.allowed(&HeaderMap::new()).is_none());
    }

    #[test]
    fn none_configured_allows_nobody() {
        let cors = Cors::parse("").unwrap();
        assert!(!cors.enabled());
        assert!(cors
            .allowed(&with_origin("https://shop.example.com"))
            .is_none());
    }

    #[test]
    fn typos_name_the_setting() {
        for bad in [
            "shop.example.com",
            "https://shop.example.com/",
            "ftp://shop.example.com",
            "https://",
            "*",
        ] {
            let err = Cors::parse(bad).unwrap_err();
            assert!(err.to_string().contains("SECKILL_CORS_ORIGINS"), "{err}");
        }
    }
}
