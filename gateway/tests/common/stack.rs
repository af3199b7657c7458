//! The rest of the stack for end-to-end tests: a fresh PostgreSQL database per test, the order
//! writer (in-process or as its real binary, to be killed), and a private RocketMQ name server +
//! broker pair that a test may stop and restart without disturbing the others.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seckill_core::time::now_ms;
use seckill_core::{ActivityId, Ledger};
use seckill_order_writer::config::{StartAt, WriterConfig};
use seckill_order_writer::store::Store;
use seckill_order_writer::Writer;

pub const PG_BASE: &str = "postgres://seckill:seckill@127.0.0.1:5432";

fn unique(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates an empty database of this test's own; returns its URL.
pub async fn fresh_database() -> String {
    let name = unique("t");
    let (client, connection) =
        tokio_postgres::connect(&format!("{PG_BASE}/seckill"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be running (scripts/services.sh postgres starts it)");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("{PG_BASE}/{name}")
}

/// A writer of this test's own: its own group, database, start time and activities (so
/// concurrent tests never act on each other's orders).
pub fn writer_config(
    database_url: &str,
    namesrv: &str,
    activities: &[&seckill_core::ActivityId],
) -> WriterConfig {
    WriterConfig {
        activities: activities.iter().map(|a| a.to_string()).collect(),
        rocketmq_namesrv: namesrv.to_owned(),
        database_url: database_url.to_owned(),
        redis_url: super::redis_url(),
        consumer_group: unique("writer"),
        start_at: StartAt::UnixMs(now_ms()),
        db_pool: 8,
        payment_window: Duration::from_secs(1800),
        sweep_every: Duration::from_secs(30),
        log_json: false,
    }
}

/// An in-process writer for `activities`.
pub async fn start_writer(
    database_url: &str,
    namesrv: &str,
    activities: &[&seckill_core::ActivityId],
) -> Writer {
    Writer::start(&writer_config(database_url, namesrv, activities))
        .await
        .unwrap()
}

/// A sale on a stack of the test's own: a private broker (no other test's traffic, no history
/// to replay), a fresh database, an open activity, an in-process writer for it and a gateway on
/// that broker. Fields are public so a test destructures what it uses.
pub struct Sale {
    pub mq: PrivateRocketMq,
    pub database: String,
    pub ledger: Ledger,
    pub activity: ActivityId,
    pub writer: Writer,
    pub gw: Arc<super::TestGateway>,
    pub store: Store,
}

impl Sale {
    /// `configure` adjusts the writer (payment window, sweep period) before it starts.
    pub async fn start(
        name: &str,
        stock: i64,
        limit: u32,
        configure: impl FnOnce(&mut WriterConfig),
    ) -> Self {
        let mq = PrivateRocketMq::start().await;
        let database = fresh_database().await;
        let ledger = super::ledger_at(&super::redis_url()).await;
        let activity = super::open(&ledger, name, stock, limit).await;
        let mut config = writer_config(&database, &mq.namesrv, &[&activity]);
        configure(&mut config);
        let writer = Writer::start(&config).await.unwrap();
        let gw =
            Arc::new(super::TestGateway::start(&[("SECKILL_ROCKETMQ_NAMESRV", &mq.namesrv)]).await);
        let store = Store::connect(&database, 2).await.unwrap();
        Sale {
            mq,
            database,
            ledger,
            activity,
            writer,
            gw,
            store,
        }
    }
}

/// A workspace binary next to the test executable (`scripts/test.sh` builds them first).
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} missing: build it first (cargo build --workspace --bins)",
        binary.display()
    );
    binary
}

/// The `seckill-order-writer` binary next to the test executable.
pub fn writer_binary() -> PathBuf {
    binary("seckill-order-writer")
}

/// The writer as its own process, so a test can SIGKILL it.
pub struct WriterProcess {
    child: Child,
}

impl WriterProcess {
    pub fn spawn(config: &WriterConfig, start_at_rfc3339: &str) -> Self {
        let child = Command::new(writer_binary())
            .env("SECKILL_ROCKETMQ_NAMESRV", &config.rocketmq_namesrv)
            .env("SECKILL_DATABASE_URL", &config.database_url)
            .env("SECKILL_REDIS_URL", &config.redis_url)
            .env("SECKILL_WRITER_GROUP", &config.consumer_group)
            .env("SECKILL_WRITER_START_AT", start_at_rfc3339)
            .env("SECKILL_WRITER_ACTIVITIES", config.activities.join(","))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        WriterProcess { child }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for WriterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

async fn wait_port(port: u16, up: bool) {
    for _ in 0..300 {
        let open = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        if open == up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

/// A name server and broker of this test's own, on free loopback ports.
pub struct PrivateRocketMq {
    pub namesrv: String,
    home: PathBuf,
    broker_port: u16,
    namesrv_child: Child,
    broker_child: Option<Child>,
}

impl PrivateRocketMq {
    pub async fn start() -> Self {
        let home = std::env::temp_dir().join(unique("rocketmq"));
        std::fs::create_dir_all(home.join("store")).unwrap();
        let namesrv_port = free_port();
        // The broker also takes port-2 (fast port) and port+1 (HA).
        let broker_port = loop {
            let candidate = free_port();
            if candidate > 3
                && port_free(candidate - 2)
                && port_free(candidate + 1)
                && candidate != namesrv_port
            {
                break candidate;
            }
        };
        let namesrv_child = Command::new("rocketmq-namesrv-rust")
            .args([
                "--bindAddress",
                "127.0.0.1",
                "--listenPort",
                &namesrv_port.to_string(),
            ])
            .env("ROCKETMQ_HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rocketmq-namesrv-rust must be installed (scripts/services.sh rocketmq)");
        wait_port(namesrv_port, true).await;
        let store = home.join("store");
        std::fs::write(
            home.join("broker.toml"),
            format!(
                "[broker]\nlistenPort = {broker_port}\nbrokerIp1 = \"127.0.0.1\"\nbrokerIp2 = \"127.0.0.1\"\n\
                 namesrvAddr = \"127.0.0.1:{namesrv_port}\"\nstorePathRootDir = \"{store}\"\nautoCreateTopicEnable = true\n\n\
                 [broker.brokerServerConfig]\nbindAddress = \"127.0.0.1\"\n\n\
                 [broker.brokerIdentity]\nbrokerName = \"{name}\"\nbrokerClusterName = \"TestCluster\"\nbrokerId = 0\n\n\
                 [store]\nhaListenAddress = \"127.0.0.1\"\nhaListenPort = {ha}\nstorePathRootDir = \"{store}\"\n",
                store = store.display(),
                name = unique("broker"),
                ha = broker_port + 1,
            ),
        )
        .unwrap();
        let mut mq = PrivateRocketMq {
            namesrv: format!("127.0.0.1:{namesrv_port}"),
            home,
            broker_port,
            namesrv_child,
            broker_child: None,
        };
        mq.start_broker().await;
        mq
    }

    pub async fn start_broker(&mut self) {
        let child = Command::new("rocketmq-broker-rust")
            .arg("-c")
            .arg(self.home.join("broker.toml"))
            .env("ROCKETMQ_HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rocketmq-broker-rust must be installed (scripts/services.sh rocketmq)");
        self.broker_child = Some(child);
        wait_port(self.broker_port, true).await;
    }

    /// Kills the broker (SIGKILL) and waits until its port is closed.
    pub async fn stop_broker(&mut self) {
        if let Some(mut child) = self.broker_child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        wait_port(self.broker_port, false).await;
    }
}

impl Drop for PrivateRocketMq {
    fn drop(&mut self) {
        if let Some(mut child) = self.broker_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.namesrv_child.kill();
        let _ = self.namesrv_child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Waits (bounded) until the activity has `expected` rows; returns the count seen last.
pub async fn wait_for_rows(
    store: &Store,
    activity: &str,
    expected: usize,
    limit: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let rows = store.activity_orders(activity).await.unwrap().len();
        if rows >= expected || tokio::time::Instant::now() >= deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
