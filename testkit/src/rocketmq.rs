//! A RocketMQ name server and broker of one test's own: no other test's traffic, no history to
//! replay, and free to be killed and restarted.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::Ports;

/// A test broker's commit-log file. The broker refuses to start (exit 70) unless the disk has
/// room for one (the default is 1 GiB), and many tests run a broker at once.
const COMMIT_LOG_FILE: u64 = 64 << 20;
/// A consume-queue file: 30,000 entries of 20 bytes (default 300,000, per queue of every topic).
const CONSUME_QUEUE_FILE: u64 = 600_000;

/// Up to this long for a server's port to open or close.
const PORT_WAIT: Duration = Duration::from_secs(30);

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// A server's output, to a file in its home (shown if it dies at start).
fn log_to(path: &std::path::Path) -> (Stdio, Stdio) {
    let file = std::fs::File::create(path).unwrap();
    (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
}

/// The last lines of a server's log.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits until `port` answers (or, with `up` false, no longer does), while `child` (whose output
/// goes to `log`) lives.
async fn wait_port(port: u16, up: bool, child: Option<(&mut Child, &std::path::Path)>) {
    let mut child = child;
    let deadline = tokio::time::Instant::now() + PORT_WAIT;
    while tokio::time::Instant::now() < deadline {
        if port_open(port).await == up {
            return;
        }
        if let Some((child, log)) = child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the server for port {port} exited early: {status}; its log ({}) ends:\n{}",
                    log.display(),
                    tail(log)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "port {port} did not become {} within {PORT_WAIT:?}",
        if up { "open" } else { "closed" }
    );
}

/// One broker of a [`PrivateRocketMq`]: its ports, files and process.
struct Broker {
    port: u16,
    config: PathBuf,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A name server and one or more brokers (one cluster name) on reserved loopback ports.
pub struct PrivateRocketMq {
    pub namesrv: String,
    home: PathBuf,
    brokers: Vec<Broker>,
    namesrv_child: Child,
    _ports: Ports,
}

impl PrivateRocketMq {
    /// A name server and one broker.
    pub async fn start() -> Self {
        Self::with_brokers(1).await
    }

    /// A name server and `count` brokers under it, each with its own name, ports and store.
    pub async fn with_brokers(count: u16) -> Self {
        let home = std::env::temp_dir().join(crate::unique("rocketmq"));
        std::fs::create_dir_all(&home).unwrap();
        // The name server, then per broker: its fast port (broker - 2), one unused, the broker's
        // port, and its HA port (broker + 1).
        let ports = Ports::reserve(1 + 4 * count);
        let namesrv_port = ports.port(0);
        let namesrv_log = home.join("namesrv.log");
        let (stdout, stderr) = log_to(&namesrv_log);
        let mut namesrv_child = Command::new("rocketmq-namesrv-rust")
            .args([
                "--bindAddress",
                "127.0.0.1",
                "--listenPort",
                &namesrv_port.to_string(),
            ])
            .env("ROCKETMQ_HOME", &home)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("rocketmq-namesrv-rust must be installed (scripts/services.sh rocketmq)");
        wait_port(namesrv_port, true, Some((&mut namesrv_child, &namesrv_log))).await;
        let brokers = (0..count)
            .map(|i| {
                let port = ports.port(3 + 4 * i);
                // Broker 0 keeps the names it always had.
                let suffix = if i == 0 {
                    String::new()
                } else {
                    format!("-{i}")
                };
                let store = home.join(format!("store{suffix}"));
                std::fs::create_dir_all(&store).unwrap();
                let config = home.join(format!("broker{suffix}.toml"));
                std::fs::write(&config, broker_toml(port, namesrv_port, &store)).unwrap();
                Broker {
                    port,
                    config,
                    store,
                    log: home.join(format!("broker{suffix}.log")),
                    child: None,
                }
            })
            .collect();
        let mut mq = PrivateRocketMq {
            namesrv: format!("127.0.0.1:{namesrv_port}"),
            home,
            brokers,
            namesrv_child,
            _ports: ports,
        };
        for i in 0..usize::from(count) {
            mq.start_broker_at(i).await;
        }
        mq
    }

    /// Starts the (first) broker again.
    pub async fn start_broker(&mut self) {
        self.start_broker_at(0).await;
    }

    async fn start_broker_at(&mut self, i: usize) {
        let broker = &mut self.brokers[i];
        let (stdout, stderr) = log_to(&broker.log);
        let mut child = Command::new("rocketmq-broker-rust")
            .arg("-c")
            .arg(&broker.config)
            .env("ROCKETMQ_HOME", &self.home)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("rocketmq-broker-rust must be installed (scripts/services.sh rocketmq)");
        wait_port(broker.port, true, Some((&mut child, &broker.log))).await;
        broker.child = Some(child);
    }

    /// Kills the (first) broker, deletes its whole store (every message and consumer offset),
    /// starts it again empty.
    pub async fn lose_store(&mut self) {
        self.stop_broker().await;
        std::fs::remove_dir_all(&self.brokers[0].store).unwrap();
        self.start_broker().await;
    }

    /// Kills the (first) broker (SIGKILL) and waits until its port is closed.
    pub async fn stop_broker(&mut self) {
        self.kill_broker(0).await;
    }

    /// Queues of `topic` on broker `i` that hold at least one message (from its store's consume
    /// queue files).
    pub fn queues_used(&self, i: usize, topic: &str) -> usize {
        let dir = self.brokers[i].store.join("consumequeue").join(topic);
        let Ok(queues) = std::fs::read_dir(dir) else {
            return 0;
        };
        queues
            .flatten()
            .filter(|queue| {
                std::fs::read_dir(queue.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|file| file.metadata().is_ok_and(|m| m.len() > 0))
            })
            .count()
    }

    /// Kills broker `i` (SIGKILL) and waits until its port is closed.
    pub async fn kill_broker(&mut self, i: usize) {
        let broker = &mut self.brokers[i];
        if let Some(mut child) = broker.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        wait_port(broker.port, false, None).await;
    }
}

/// A test broker's configuration: loopback only, its own name, small files.
fn broker_toml(port: u16, namesrv_port: u16, store: &std::path::Path) -> String {
    format!(
        "[broker]\nlistenPort = {port}\nbrokerIp1 = \"127.0.0.1\"\nbrokerIp2 = \"127.0.0.1\"\n\
         namesrvAddr = \"127.0.0.1:{namesrv_port}\"\nstorePathRootDir = \"{store}\"\nautoCreateTopicEnable = true\n\n\
         [broker.brokerServerConfig]\nbindAddress = \"127.0.0.1\"\n\n\
         [broker.brokerIdentity]\nbrokerName = \"{name}\"\nbrokerClusterName = \"TestCluster\"\nbrokerId = 0\n\n\
         [store]\nhaListenAddress = \"127.0.0.1\"\nhaListenPort = {ha}\nstorePathRootDir = \"{store}\"\n\
         maxTransferCountOnMessageInMemory = 1024\nmaxTransferBytesOnMessageInMemory = 1048576\n\
         maxTransferCountOnMessageInDisk = 1024\nmaxTransferBytesOnMessageInDisk = 1048576\n\
         mappedFileSizeCommitLog = {commit_log_file}\nmappedFileSizeConsumeQueue = {queue_file}\n",
        store = store.display(),
        name = crate::unique("broker"),
        ha = port + 1,
        commit_log_file = COMMIT_LOG_FILE,
        queue_file = CONSUME_QUEUE_FILE,
    )
}

impl Drop for PrivateRocketMq {
    fn drop(&mut self) {
        for broker in &mut self.brokers {
            if let Some(mut child) = broker.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = self.namesrv_child.kill();
        let _ = self.namesrv_child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
