//! A small HTTP client for the gateway's API, and the reply as tests look at it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seckill_ledger::ActivityId;

/// One answer: status, headers, the body as text and as JSON (`Null` if it is not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl Reply {
    /// The `error` code of an error body (empty if none).
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

/// A client of one gateway.
#[derive(Clone)]
pub struct Http {
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Http {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request; `token` becomes a bearer header.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        self.send_with(method, path, &headers, body).await
    }

    /// Sends a request with the given headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.try_send_with(method, path, headers, body)
            .await
            .unwrap()
    }

    /// As [`Http::send_with`], a transport failure (refused, reset) as an error instead of a
    /// panic: for tests that kill the gateway under its clients.
    pub async fn try_send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// `POST /v1/activities/{activity}/orders` as `user` (a token signed with
    /// [`crate::SECRET`]), no body.
    pub async fn attempt(&self, activity: &ActivityId, user: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/v1/activities/{activity}/orders"),
            Some(&crate::token_for(user)),
            b"",
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, b"").await
    }
}
