//! [`MqError`]: what can go wrong talking to RocketMQ, with its source.

use std::time::Duration;

use rocketmq_client_rust::ClientError;
use rocketmq_model::result::SendStatus;

/// A RocketMQ failure.
#[derive(Debug, thiserror::Error)]
pub enum MqError {
    /// The client failed: name server or broker unreachable, refused, timed out.
    #[error("rocketmq: {}", with_causes(.0))]
    Client(#[from] ClientError),
    /// The broker took the message but did not report it stored (`SEND_OK`).
    #[error("rocketmq: the broker answered {0:?}")]
    NotStored(SendStatus),
    /// The client returned no send result (the message's fate is unknown).
    #[error("rocketmq: the send returned no result")]
    NoResult,
    /// No answer within the caller's deadline.
    #[error("rocketmq: no confirmation within {0:?}")]
    Timeout(Duration),
    /// A transactional message whose local transaction did not commit.
    #[error("rocketmq: local transaction ended as {0}")]
    NotCommitted(String),
    /// A message body could not be encoded.
    #[error("message body: {0}")]
    Encode(#[from] serde_json::Error),
    /// A message would carry more than the broker takes (a caller's bug: never retried).
    #[error("{what} of {count} orders: at most {max}")]
    TooLarge {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// The client runtime could not be set up (start-up only).
    #[error("rocketmq runtime ({what}): {detail}")]
    Runtime { what: &'static str, detail: String },
}

/// An error and its sources, outermost first. The client's own text is often only a category
/// ("Broker operation failed", "Argument is invalid") whose source says what happened.
pub(crate) fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// The texts of an error and its sources, each new one once.
fn with_causes(error: &ClientError) -> String {
    let mut text = String::new();
    for cause in causes(error) {
        let more = cause.to_string();
        if !text.contains(&more) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&more);
        }
    }
    text
}

impl MqError {
    /// True when sending again later may succeed. An encoding failure or an oversized message
    /// never will.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            MqError::Encode(_) | MqError::Runtime { .. } | MqError::TooLarge { .. }
        )
    }
}
