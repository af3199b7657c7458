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
        let info: String = node_query(self.port, &["INFO", "commandstats"])
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

/// A Redis Cluster of this test's own: `masters` nodes (no replicas, nothing persisted), every
/// slot assigned by `redis-cli --cluster create`. [`PrivateRedisCluster::url`] is the
/// comma-separated node list that selects cluster mode in every binary.
pub struct PrivateRedisCluster {
    pub url: String,
    /// The masters' client ports.
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
    _ports: Ports,
}

impl PrivateRedisCluster {
    pub async fn start(masters: u16) -> Self {
        // Client ports, then the cluster-bus ports (set explicitly: the default, port + 10000,
        // could land on a port another test holds).
        let reserved = Ports::reserve(2 * masters);
        let dir = std::env::temp_dir().join(crate::unique("redis-cluster"));
        std::fs::create_dir_all(&dir).unwrap();
        let ports: Vec<u16> = (0..masters).map(|i| reserved.port(i)).collect();
        let children = (0..masters)
            .map(|i| {
                let (port, bus) = (reserved.port(i).to_string(), reserved.port(masters + i));
                Command::new("redis-server")
                    .args(["--bind", "127.0.0.1", "--port", &port, "--save", ""])
                    .args(["--appendonly", "no", "--cluster-enabled", "yes"])
                    .args(["--cluster-port", &bus.to_string()])
                    .args(["--cluster-node-timeout", "5000"])
                    .arg("--cluster-config-file")
                    .arg(dir.join(format!("nodes-{port}.conf")))
                    .arg("--dir")
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server must be installed (scripts/services.sh installs it)")
            })
            .collect();
        let cluster = PrivateRedisCluster {
            url: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(","),
            ports,
            children,
            dir,
            _ports: reserved,
        };
        for port in &cluster.ports {
            let up = crate::eventually_async(Duration::from_secs(10), || async {
                node_query::<String>(*port, &["PING"]).await.is_some()
            })
            .await;
            assert!(up, "cluster node on port {port} did not start");
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        // Every node must see every slot served before a client may rely on any of them.
        for port in &cluster.ports {
            let ok = crate::eventually_async(Duration::from_secs(30), || async {
                node_query::<String>(*port, &["CLUSTER", "INFO"])
                    .await
                    .is_some_and(|info| {
                        info.contains("cluster_state:ok")
                            && info.contains(&format!("cluster_known_nodes:{masters}"))
                    })
            })
            .await;
            assert!(
                ok,
                "cluster node on port {port} never reported cluster_state:ok"
            );
        }
        cluster
    }

    /// The client port of the master serving `key`, as the cluster says: CLUSTER KEYSLOT, then
    /// the slot ranges of CLUSTER NODES.
    pub async fn master_of(&self, key: &str) -> u16 {
        let first = self.ports[0];
        let slot: u16 = node_query(first, &["CLUSTER", "KEYSLOT", key])
            .await
            .unwrap();
        let nodes: String = node_query(first, &["CLUSTER", "NODES"]).await.unwrap();
        for line in nodes.lines() {
            // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges…>
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.split('-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(from)), Some(Ok(to))) => (from..=to).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false, // a migrating or importing marker
                }
            });
            if serves {
                let address = fields[1].split('@').next().unwrap();
                return address.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
        panic!("no master serves slot {slot} of {key:?}:\n{nodes}");
    }

    /// Fresh activity ids, one on each master (in the order of [`PrivateRedisCluster::ports`]),
    /// each checked with [`PrivateRedisCluster::master_of`] on its keys' hash tag.
    pub async fn ids_on_every_master(&self, name: &str) -> Vec<ActivityId> {
        let mut found: Vec<Option<ActivityId>> = vec![None; self.ports.len()];
        for _ in 0..1000 {
            let id = crate::fresh_id(name);
            let port = self.master_of(&ActivityKeys::new(&id).meta).await;
            let i = self.ports.iter().position(|p| *p == port).unwrap();
            found[i].get_or_insert(id);
            if found.iter().all(Option::is_some) {
                return found.into_iter().flatten().collect();
            }
        }
        panic!("1000 fresh ids did not cover every master");
    }

    /// Moves the slot of `key` to the master at `to` the way `redis-cli --cluster reshard`
    /// does: IMPORTING on the target, MIGRATING on the source, MIGRATE of every key in the slot,
    /// then the new owner announced to every master. Clients holding the old slot map are
    /// answered MOVED (or ASK while the keys move).
    pub async fn move_slot(&self, key: &str, to: u16) {
        let from = self.master_of(key).await;
        assert_ne!(from, to, "{key:?} is already served by :{to}");
        let slot: u16 = node_query(from, &["CLUSTER", "KEYSLOT", key])
            .await
            .unwrap();
        let slot = slot.to_string();
        let id = |port: u16| async move {
            node_query::<String>(port, &["CLUSTER", "MYID"])
                .await
                .unwrap()
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let ok =
            |reply: Option<String>, what: &str| assert_eq!(reply.as_deref(), Some("OK"), "{what}");
        ok(
            node_query(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]).await,
            "SETSLOT IMPORTING",
        );
        ok(
            node_query(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]).await,
            "SETSLOT MIGRATING",
        );
        loop {
            let keys: Vec<String> = node_query(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"])
                .await
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            ok(node_query(from, &args).await, "MIGRATE");
        }
        for port in &self.ports {
            ok(
                node_query(*port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]).await,
                "SETSLOT NODE",
            );
        }
        let moved = crate::eventually_async(Duration::from_secs(10), || async {
            self.master_of(key).await == to
        })
        .await;
        assert!(moved, "the slot of {key:?} never showed as served by :{to}");
    }

    /// A command on one node (no redirection), e.g. INFO or SCRIPT FLUSH; `None` if it failed.
    pub async fn on_node<T: ::redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> Option<T> {
        node_query(port, args).await
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command on one node of a cluster, not redirected.
async fn node_query<T: ::redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let mut cmd = ::redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await.ok()
}
