//! `token mint`: user bearer tokens signed with the gateway's secret, for load tests and
//! support (a real deployment's login service mints its own).

use std::io::Write;
use std::path::Path;

use seckill_auth::TokenKey;
use seckill_ledger::UserId;
use seckill_service::{now_unix, parse_duration};

use crate::error::CtlError;

/// Guards against a typo such as `1..100000000000` filling the disk.
const MAX_TOKENS: u64 = 10_000_000;

pub(crate) fn mint(
    user: Option<String>,
    users: Option<String>,
    prefix: &str,
    ttl: &str,
    out: Option<&Path>,
) -> Result<(), CtlError> {
    // From the environment only, never a flag: a flag would leave the secret in shell history.
    let secret = std::env::var("SECKILL_AUTH_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            CtlError::input("SECKILL_AUTH_SECRET is required to mint tokens (the gateway's secret)")
        })?;
    let ttl = parse_duration(ttl)?;
    if ttl.is_zero() {
        return Err(CtlError::input("--ttl must be positive"));
    }
    // A sub-second TTL still yields a token valid for the next second rather than one already
    // expired.
    let expires = now_unix() + ttl.as_secs().max(1);
    let ids: Vec<UserId> = match (user, users) {
        (Some(user), None) => {
            vec![UserId::parse(&user).map_err(|e| CtlError::Input(e.to_string()))?]
        }
        (None, Some(range)) => {
            let (first, last) = range
                .split_once("..")
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .filter(|(a, b)| a <= b)
                .ok_or_else(|| {
                    CtlError::input(format!(
                        "--users {range:?}: expected FIRST..LAST, e.g. 1..10000"
                    ))
                })?;
            if last - first >= MAX_TOKENS {
                return Err(CtlError::input(
                    "--users: at most 10 million tokens at once",
                ));
            }
            (first..=last)
                .map(|n| UserId::parse(&format!("{prefix}{n}")))
                .collect::<Result<_, _>>()
                .map_err(|e| CtlError::Input(e.to_string()))?
        }
        _ => return Err(CtlError::input("give --user U or --users FIRST..LAST")),
    };
    let key = TokenKey::new(secret.as_bytes());
    let mut text = String::with_capacity(ids.len() * 96);
    for id in &ids {
        text.push_str(&key.mint(id, expires));
        text.push('\n');
    }
    match out {
        Some(path) => std::fs::write(path, text).map_err(|source| CtlError::Write {
            path: path.to_owned(),
            source,
        })?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}
