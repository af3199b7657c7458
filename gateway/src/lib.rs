//! The seckill gateway: takes a crowd of buying attempts, sells exactly the stock.
//!
//! A request passes through named phases (see [`attempt`] and `docs/ARCHITECTURE.md`, "The
//! request path"): parse, local filters (no I/O), deduct in Redis with one script call (shared
//! with the attempts queued meanwhile), record, respond. Modules, one per concept:
//!
//! - [`config`]: the typed configuration from `SECKILL_*` variables and an optional TOML file;
//!   [`timing`]: every duration the gateway runs by, checked at start.
//! - [`auth`]: bearer-token check.
//! - [`limit`]: token buckets and the in-flight cap.
//! - [`catalog`]: cached activity metadata and the sold-out flag shared over pub/sub.
//! - [`attempt`], [`query`]: the endpoints' logic, returning typed outcomes ([`outcome`]).
//! - [`payment`]: payment notifications and owners' cancellations, handed to the writer.
//! - [`deduct`]: the deduct phase, batching concurrent attempts into `deduct.lua` calls.
//! - [`publish`]: the enqueue phase, batching won orders to RocketMQ; [`relay`]: republishes
//!   what the broker never confirmed.
//! - [`http`]: routing and the single outcome → HTTP mapping; [`conn`]: what one connection
//!   may hold (the cap on open connections, header and write timeouts, buffer bounds);
//!   [`cors`]: browser frontends on other origins; [`demo`]: the storefront page of `web/`.
//! - [`ready`]: readiness, probed in the background so `/readyz` costs no I/O.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`idgen`]: the order-id worker lease.
//!
//! [`Gateway::bind`] starts the service on any listener, so tests run it on port 0.

#![recursion_limit = "256"]

pub mod attempt;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod conn;
pub mod cors;
pub mod deduct;
pub mod demo;
pub mod http;
pub mod idgen;
pub mod limit;
pub mod metrics;
pub mod outcome;
pub mod payment;
pub mod publish;
pub mod query;
pub mod ready;
pub mod relay;
pub mod timing;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use seckill_auth::{SignatureKey, TokenKey};
use seckill_ledger::id::IdGenerator;
use seckill_ledger::{Ledger, LedgerConfig, LedgerError};
use seckill_messages::{MqError, MqRuntime};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::deduct::Deducter;
use crate::limit::Limits;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::ready::Readiness;

/// Shared state of one gateway instance.
pub struct App {
    pub config: Config,
    pub ledger: Ledger,
    pub catalog: Arc<Catalog>,
    pub limits: Limits,
    pub ids: Arc<IdGenerator>,
    pub metrics: Arc<Metrics>,
    pub publisher: Publisher,
    /// Phase 3: attempts batched into `deduct.lua` calls.
    pub deducter: Deducter,
    /// Keyed once from the secrets; each request clones the keyed state.
    pub token_key: TokenKey,
    pub signature_key: SignatureKey,
    pub readiness: Arc<Readiness>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] seckill_service::ConfigError),
    #[error("cannot reach the ledger at {url}: {source}")]
    Ledger { url: String, source: LedgerError },
    #[error("cannot start the RocketMQ producer for {namesrv}: {source}")]
    Mq { namesrv: String, source: MqError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Connections the kernel queues before the accept loop takes them. A crowd arrives all at
/// once; tokio's default (1,024) makes the kernel drop the rest of a burst (capped by
/// `net.core.somaxconn`).
const ACCEPT_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Connections the admin listener holds at once: probes and scrapers, not a crowd.
const ADMIN_CONNECTIONS: usize = 64;

/// A gateway bound to its listeners, ready to serve.
pub struct Gateway {
    app: Arc<App>,
    listener: TcpListener,
    /// `SECKILL_ADMIN_LISTEN`'s, if set.
    admin: Option<TcpListener>,
    instance: String,
    mq: MqRuntime,
}

impl Gateway {
    /// Connects to Redis, preloads the scripts, leases an id worker and binds `config.listen`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let listener = listen(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        Self::bind(config, listener).await
    }

    /// As [`Gateway::build`], on a listener the caller made (tests bind port 0). The admin
    /// listener, if configured, is bound here.
    pub async fn bind(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        config.timing.check()?;
        let admin = match config.admin_listen {
            Some(addr) => Some(listen(addr).map_err(|source| StartError::Bind { addr, source })?),
            None => None,
        };
        let ledger_error = |source| StartError::Ledger {
            url: seckill_service::redact_url(&config.redis_url),
            source,
        };
        let mut ledger_config = LedgerConfig::new(config.redis_url.clone());
        ledger_config.connections = config.redis_connections;
        ledger_config.response_timeout = config.timing.redis_reply;
        let ledger = Ledger::connect(&ledger_config)
            .await
            .map_err(ledger_error)?;
        let instance = idgen::instance_token();
        let ids = idgen::lease(&ledger, &instance, config.timing.worker_lease)
            .await
            .map_err(ledger_error)?;
        let mq_error = |source| StartError::Mq {
            namesrv: config.rocketmq_namesrv.clone(),
            source,
        };
        let mq = MqRuntime::start("gateway").map_err(mq_error)?;
        // Not fatal: without it a topic lives on the brokers its first messages reached.
        if let Err(e) = seckill_messages::spread_topics(&mq, &config.rocketmq_namesrv).await {
            tracing::warn!(error = %e, "could not give every topic queues on every broker");
        }
        let publisher = Publisher::start(
            &mq,
            &config.rocketmq_namesrv,
            ledger.clone(),
            config.batching,
            config.timing.send_timeout,
        )
        .await
        .map_err(mq_error)?;
        let ids = Arc::new(ids);
        let metrics = Arc::new(Metrics::default());
        let deducter = Deducter::start(
            &ledger_config,
            ids.clone(),
            config.deduct_slots,
            metrics.clone(),
        )
        .await
        .map_err(ledger_error)?;
        let catalog = Catalog::start(ledger.clone(), metrics.clone())
            .await
            .map_err(ledger_error)?;
        let app = App {
            publisher,
            deducter,
            limits: Limits::new(
                config.rate_global,
                config.rate_per_user,
                config.max_inflight,
            ),
            catalog: Arc::new(catalog),
            readiness: Arc::default(),
            token_key: TokenKey::new(config.auth_secret.expose()),
            signature_key: SignatureKey::new(config.payment_secret.expose()),
            ids,
            metrics,
            ledger,
            config,
        };
        Ok(Gateway {
            app: Arc::new(app),
            listener,
            admin,
            instance,
            mq,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.app.config.listen)
    }

    /// Where the admin listener listens, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (tests read metrics from it).
    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let Gateway {
            app,
            listener,
            admin,
            instance,
            mq,
        } = self;
        // Background tasks stop when this flips to true.
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = [
            tokio::spawn(catalog::keep_fresh(
                app.catalog.clone(),
                app.ledger.event_clients(),
                app.config.timing.catalog_refresh,
                stop_rx.clone(),
            )),
            tokio::spawn(idgen::keep_lease(
                app.ledger.clone(),
                app.ids.clone(),
                instance,
                app.config.timing.worker_lease,
                stop_rx.clone(),
            )),
            tokio::spawn(relay::run(app.clone(), stop_rx.clone())),
            tokio::spawn(ready::keep_probing(
                app.readiness.clone(),
                app.ledger.clone(),
                app.deducter.running(),
                app.config.timing.ready_ping,
                stop_rx.clone(),
            )),
            tokio::spawn(forget_idle_users(app.clone(), stop_rx)),
        ];

        let mut server = Server {
            http: hyper::server::conn::http1::Builder::new(),
            graceful: hyper_util::server::graceful::GracefulShutdown::new(),
            accepted: 0,
        };
        // Slow or idle clients must not hold a connection forever, nor one connection much
        // memory (`conn`).
        server
            .http
            .timer(TokioTimer::new())
            .header_read_timeout(app.config.timing.header_read)
            .max_buf_size(conn::BUFFER);
        // One permit per open connection: the caps are checked before hyper sees the stream.
        let public = Arc::new(Semaphore::new(app.config.max_connections));
        let admin_connections = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
        tokio::pin!(shutdown);
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "gateway listening");
        if let Some(admin) = &admin {
            tracing::info!(addr = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin listener: /metrics, /readyz, /healthz");
        }
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    server.accept(&app, accepted, &public, http::Listener::Public).await;
                }
                accepted = accept_on(admin.as_ref()) => {
                    server.accept(&app, accepted, &admin_connections, http::Listener::Admin).await;
                }
                () = &mut shutdown => break,
            }
        }
        drop(admin);
        drop(listener);
        tracing::info!("shutting down: draining in-flight requests");
        if tokio::time::timeout(app.config.timing.drain, server.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain timed out; closing remaining connections");
        }
        let _ = stop_tx.send(true);
        for task in background {
            let _ = task.await;
        }
        // Every answered winner was confirmed or left in the outbox; nothing is pending.
        app.publisher.shutdown().await;
        let mq_wait = app.config.timing.mq_shutdown;
        drop(app);
        if tokio::time::timeout(mq_wait, mq.shutdown()).await.is_err() {
            tracing::warn!("RocketMQ client runtime did not stop within {mq_wait:?}");
        }
        tracing::info!("gateway stopped");
    }
}

/// What every accepted connection is served with.
struct Server {
    http: hyper::server::conn::http1::Builder,
    graceful: hyper_util::server::graceful::GracefulShutdown,
    /// Connections accepted so far (spreads the write timeouts, [`conn::spread`]).
    accepted: u64,
}

impl Server {
    /// Serves one accepted connection on a task of its own, if `cap` has room for it.
    async fn accept(
        &mut self,
        app: &Arc<App>,
        accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
        cap: &Arc<Semaphore>,
        listener: http::Listener,
    ) {
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            // Closed at once: refusing must cost less than serving.
            app.metrics.connection_refused();
            drop(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        conn::bound_socket(&stream);
        let metrics = app.metrics.clone();
        let service = {
            let app = app.clone();
            // Boxed: hyper keeps room for its service's future in every connection from the
            // start, idle or not; the handler's future is tens of KiB, a box is a pointer (one
            // allocation per request instead).
            service_fn(move |request| Box::pin(http::handle(app.clone(), listener, request)))
        };
        self.accepted += 1;
        let write_timeout = conn::spread(app.config.timing.write, self.accepted);
        let stream = conn::Bounded::new(stream, write_timeout);
        let connection = self
            .graceful
            .watch(self.http.serve_connection(TokioIo::new(stream), service));
        metrics.connections_add(1);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    metrics.header_timeout();
                } else if conn::is_write_timeout(&e) {
                    metrics.write_timeout();
                }
                tracing::debug!(error = %e, "connection ended with an error");
            }
            metrics.connections_add(-1);
            drop(permit);
        });
    }
}

/// The next connection on `listener`; never, if there is none.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn forget_idle_users(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(app.config.timing.forget_idle_users);
    loop {
        tokio::select! {
            _ = tick.tick() => app.limits.forget_idle_users(),
            _ = stop.changed() => return,
        }
    }
}
