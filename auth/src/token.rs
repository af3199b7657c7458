//! User bearer tokens: `<user_id>.<expires_unix>.<hex hmac-sha256(secret, "<user_id>.<expires_unix>")>`.
//!
//! Minted by `seckillctl token mint` (and by a real login service in production), verified by the
//! gateway on every attempt. Verification is constant-time in the MAC comparison.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use seckill_ledger::UserId;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused. Each maps to 401; the detail helps the client's developer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature does not match")]
    Forged,
    #[error("token has expired")]
    Expired,
}

/// The HMAC key of user tokens, keyed once; each use clones the keyed state.
#[derive(Clone)]
pub struct TokenKey {
    keyed: HmacSha256,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        TokenKey {
            // HMAC accepts keys of any length; this cannot fail.
            keyed: HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
        }
    }

    fn mac(&self, signed: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(signed.as_bytes());
        mac
    }

    /// Issues a token for `user`, valid until `expires_unix`.
    pub fn mint(&self, user: &UserId, expires_unix: u64) -> String {
        let signed = format!("{user}.{expires_unix}");
        let signature = hex::encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// Checks a token and returns the user it names.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<UserId, TokenError> {
        let mut parts = token.split('.');
        let (Some(user), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let user = UserId::parse(user).map_err(|_| TokenError::Malformed)?;
        let expires_unix: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let signature = hex::decode(signature).map_err(|_| TokenError::Malformed)?;
        let signed = &token[..user.as_str().len() + 1 + expires.len()];
        self.mac(signed)
            .verify_slice(&signature)
            .map_err(|_| TokenError::Forged)?;
        if expires_unix <= now_unix {
            return Err(TokenError::Expired);
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(b"test-secret")
    }

    #[test]
    fn minted_tokens_verify() {
        let user = UserId::parse("u42").unwrap();
        let token = key().mint(&user, 2_000);
        assert_eq!(key().verify(&token, 1_999), Ok(user));
    }

    #[test]
    fn expired_forged_and_malformed_are_refused() {
        let user = UserId::parse("u42").unwrap();
        let token = key().mint(&user, 2_000);
        assert_eq!(key().verify(&token, 2_000), Err(TokenError::Expired));
        assert_eq!(
            TokenKey::new(b"other").verify(&token, 1_000),
            Err(TokenError::Forged)
        );
        let tampered = token.replacen("u42", "u43", 1);
        assert_eq!(key().verify(&tampered, 1_000), Err(TokenError::Forged));
        let later = token.replacen("2000", "9000", 1);
        assert_eq!(key().verify(&later, 1_000), Err(TokenError::Forged));
        for bad in [
            "",
            "u42",
            "u42.2000",
            "u42.x.ab",
            "u42.2000.zz",
            "a.b.c.d",
            "u{1}.2000.ab",
        ] {
            assert_eq!(
                key().verify(bad, 1_000),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }
}
