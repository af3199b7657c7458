//! `seckill-auth`: the two HMAC-SHA256 proofs the gateway checks.
//!
//! - [`token`]: user bearer tokens, minted by `seckillctl token mint` (or a real login service)
//!   and verified by the gateway on every attempt.
//! - [`signature`]: the `X-Signature` of payment notifications, over the raw body.
//!
//! Keyed state is built once per secret ([`token::TokenKey`], [`signature::SignatureKey`]) and
//! cloned per request; comparisons are constant-time.

pub mod signature;
pub mod token;

pub use signature::SignatureKey;
pub use token::{TokenError, TokenKey};
