//! Bearer-token authentication (token format in `seckill_auth::token`).

use http::header::AUTHORIZATION;
use http::HeaderMap;
use seckill_auth::{TokenError, TokenKey};
use seckill_ledger::UserId;

use crate::outcome::Refusal;

/// The token of the request's `Authorization: Bearer <token>` header, unchecked.
fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let value = headers.get(AUTHORIZATION).ok_or(Refusal::Unauthorized(
        "missing Authorization: Bearer <token> header",
    ))?;
    let text = value
        .to_str()
        .map_err(|_| Refusal::Unauthorized("Authorization header is not ASCII"))?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or(Refusal::Unauthorized(
            "Authorization must use the Bearer scheme",
        ))?;
    Ok(token.trim())
}

/// The user a bearer token claims to be, its signature NOT checked: only for answers that
/// would be the same whoever the caller is (see `attempt::sold_out_before_auth`).
pub fn claimed_user(headers: &HeaderMap) -> Option<&str> {
    let token = bearer(headers).ok()?;
    token.split_once('.').map(|(user, _)| user)
}

/// The user behind the request's `Authorization: Bearer <token>` header.
pub fn authenticate(headers: &HeaderMap, key: &TokenKey, now_unix: u64) -> Result<UserId, Refusal> {
    key.verify(bearer(headers)?, now_unix).map_err(|e| {
        Refusal::Unauthorized(match e {
            TokenError::Malformed => "token is malformed",
            TokenError::Forged => "token signature does not match",
            TokenError::Expired => "token has expired",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_header_is_required_and_checked() {
        let secret = &TokenKey::new(b"0123456789abcdef");
        let user = UserId::parse("u1").unwrap();
        let token = secret.mint(&user, 100);
        let mut headers = HeaderMap::new();
        assert!(matches!(
            authenticate(&headers, secret, 50),
            Err(Refusal::Unauthorized(_))
        ));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        assert!(authenticate(&headers, secret, 50).is_err());
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert_eq!(authenticate(&headers, secret, 50).unwrap(), user);
        assert_eq!(
            authenticate(&headers, secret, 100).unwrap_err(),
            Refusal::Unauthorized("token has expired")
        );
    }
}
