//! Payment-notification signatures: `X-Signature: <hex hmac-sha256(payment secret, raw body)>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The payment provider's HMAC key, keyed once; each check clones the keyed state.
#[derive(Clone)]
pub struct SignatureKey {
    keyed: HmacSha256,
}

impl std::fmt::Debug for SignatureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureKey(<redacted>)")
    }
}

impl SignatureKey {
    pub fn new(secret: &[u8]) -> Self {
        SignatureKey {
            // HMAC accepts keys of any length; this cannot fail.
            keyed: HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
        }
    }

    /// The hex signature of `body` (what a payment provider sends).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// True when `signature` (hex, surrounding blanks ignored) signs `body`.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(signature) = hex::decode(signature.trim()) else {
            return false;
        };
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_body_under_its_key() {
        let key = SignatureKey::new(b"payment-secret-0123456789");
        let body = br#"{"order_id":"1","payment_id":"p","amount_cents":5}"#;
        let signature = key.sign(body);
        assert!(key.verify(body, &signature));
        assert!(key.verify(body, &format!(" {signature}\n")));
        assert!(!key.verify(b"{}", &signature));
        assert!(!SignatureKey::new(b"another-secret-0123456").verify(body, &signature));
        assert!(!key.verify(body, "zz"));
    }
}
