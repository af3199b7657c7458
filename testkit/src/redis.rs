//! Redis for tests: the shared server of the stack, a private one for each test's [`Stack`] and
//! when a test counts calls or flushes scripts, and the ledger operations tests set up with.
//!
//! [`Stack`]: crate::Stack

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seckill_ledger::id::IdGenerator;
use seckill_ledger::ledger::{Attempt, DeductOutcome};
use seckill_ledger::{
    ActivityId, ActivityKeys, Ledger, LedgerConfig, NewActivity, UserId, DEFAULT_REDIS_URL,
};

use crate::ports::Ports;

/// The shared Redis (`SECKILL_REDIS_URL`, default the local stack's).
pub fn redis_url() -> String {
    std::env::var("SECKILL_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

pub async fn ledger_at(url: &str) -> Ledger {
    Ledger::connect(&LedgerConfig::new(url))
        .await
        .expect("Redis must be running (scripts/services.sh starts it)")
}

/// Creates an activity (a fresh id) that opens `starts_in_ms` from now and ends `ends_in_ms`
/// from now; 49.99 a unit.
pub async fn create(
    ledger: &Ledger,
    name: &str,
    stock: i64,
    limit: u32,
    starts_in_ms: i64,
    ends_in_ms: i64,
) -> ActivityId {
    let id = crate::fresh_id(name);
    let now = seckill_service::now_ms();
    ledger
        .create_activity(&NewActivity {
            id: id.clone(),
            name: format!("{name} item"),
            price_cents: 4999,
            stock_total: stock,
            per_user_limit: limit,
            starts_at_ms: now + starts_in_ms,
            ends_at_ms: now + ends_in_ms,
        })
        .await
        .unwrap();
    id
}

/// An open activity (started a second ago, ends in an hour).
pub async fn open(ledger: &Ledger, name: &str, stock: i64, limit: u32) -> ActivityId {
    create(ledger, name, stock, limit, -1_000, 3_600_000).await
}

/// `quantity` units bought straight in the ledger as `user` (no gateway, nothing published).
pub async fn buy(
    ledger: &Ledger,
    keys: &ActivityKeys,
    ids: &IdGenerator,
    user: &str,
    quantity: u32,
) -> DeductOutcome {
    let user = UserId::parse(user).unwrap();
    let attempt = Attempt {
        user: &user,
        quantity,
        channel: "app",
    };
    ledger.deduct(keys, attempt, ids).await.unwrap()
}

/// A Redis server of this test's own (no persistence), so counters read from it are ours alone,
/// a SCRIPT FLUSH disturbs nobody else, and no other test's gateway relays its outbox.
pub struct PrivateRedis {
    pub url: String,
    pub port: u16,
    child: Child,
    /// The append-only directory of a durable server (see [`PrivateRedis::durable`]).
    dir: Option<PathBuf>,
    _ports: Ports,
}

impl PrivateRedis {
    /// A throwaway server: no persistence.
    pub async fn start() -> Self {
        let ports = Ports::reserve(1);
        let port = ports.port(0);
        let child = spawn_redis(port, None);
        let mut redis = PrivateRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child,
            dir: None,
            _ports: ports,
        };
        redis.wait_up().await;
        redis
    }

    /// A server with an append-only file fsynced on every write (`appendfsync always`), so a
    /// SIGKILL loses nothing it acknowledged: [`PrivateRedis::kill_and_restart`].
    pub async fn durable() -> Self {
        let ports = Ports::reserve(1);
        let port = ports.port(0);
        let dir = std::env::temp_dir().join(crate::unique("redis-aof"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = spawn_redis(port, Some(&dir));
        let mut redis = PrivateRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child,
            dir: Some(dir),
            _ports: ports,
        };
        redis.wait_up().await;
        redis
    }

    /// SIGKILL, then the same server again on the same port and files.
    pub async fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_redis(self.port, self.dir.as_deref());
        self.wait_up().await;
    }

    async fn wait_up(&mut self) {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let up = crate::eventually_async(Duration::from_secs(10), || async {
            match client.get_multiplexed_async_connection().await {
                Ok(mut conn) => redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        })
        .await;
        if !up {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("private redis-server on port {} did not start", self.port);
        }
    }

    /// Calls of one command so far, from INFO commandstats.
    pub async fn calls(&self, command: &str) -> u64 {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `redis-server` on `port`: with an append-only file (fsync always) in `dir`, else nothing
/// persisted.
fn spawn_redis(port: u16, dir: Option<&std::path::Path>) -> Child {
    let port = port.to_string();
    let mut args = vec!["--bind", "127.0.0.1", "--port", port.as_str(), "--save", ""];
    let dir_text = dir.map(|d| d.display().to_string());
    match &dir_text {
        Some(dir) => args.extend([
            "--dir",
            dir.as_str(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]),
        None => args.extend(["--appendonly", "no"]),
    }
    Command::new("redis-server")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/services.sh installs it)")
}

/// An order-id generator on a worker id leased for this test (for an hour, never renewed), so
/// its ids never collide with a running gateway's or another test's.
pub async fn leased_ids(ledger: &Ledger) -> IdGenerator {
    let instance = crate::unique("test");
    let start = (std::process::id() % u32::from(seckill_ledger::id::WORKERS)) as u16;
    let worker = ledger
        .acquire_worker(start, &instance, Duration::from_secs(3600))
        .await
        .unwrap();
    IdGenerator::new(worker)
}
