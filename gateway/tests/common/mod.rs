//! The gateway in-process on port 0, for tests that look inside it (metrics, catalog); the rest
//! of what tests share is in `seckill-testkit`.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use seckill_gateway::config::Config;
use seckill_gateway::{App, Gateway};
pub use seckill_testkit::*;
use tokio::sync::oneshot;

/// A gateway serving on 127.0.0.1:0 until dropped; derefs to its HTTP client.
pub struct TestGateway {
    pub app: Arc<App>,
    http: Http,
    /// The admin listener's client, when `SECKILL_ADMIN_LISTEN` was set.
    pub admin: Option<Http>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway on `redis` with extra `SECKILL_*` settings.
    pub async fn start_with(redis: &str, settings: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = HashMap::from([
            ("SECKILL_AUTH_SECRET".into(), SECRET.into()),
            ("SECKILL_PAYMENT_SECRET".into(), PAYMENT_SECRET.into()),
            ("SECKILL_REDIS_URL".into(), redis.into()),
            ("SECKILL_RATE_PER_USER".into(), "1000".into()),
            ("SECKILL_REDIS_CONNECTIONS".into(), "2".into()),
        ]);
        for (k, v) in settings {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_sources(None, |name| env.get(name).cloned()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Gateway::bind(config, listener).await.unwrap();
        let http = Http::new(gateway.local_addr());
        let admin = gateway.admin_addr().map(Http::new);
        let app = gateway.app();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(gateway.run_until(async {
            let _ = stopped.await;
        }));
        TestGateway {
            app,
            http,
            admin,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_with(&redis_url(), settings).await
    }

    /// Stops accepting, drains, and waits for the gateway to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Deref for TestGateway {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
