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

/// A name server and broker on reserved loopback ports.
pub struct PrivateRocketMq {
    pub namesrv: String,
    home: PathBuf,
    broker_port: u16,
    namesrv_child: Child,
    broker_child: Option<Child>,
    _ports: Ports,
}

impl PrivateRocketMq {
    pub async fn start() -> Self {
        let home = std::env::temp_dir().join(crate::unique("rocketmq"));
        std::fs::create_dir_all(home.join("store")).unwrap();
        // Name server, then the broker's fast port (broker - 2), one unused, the broker's port,
        // and its HA port (broker + 1).
        let ports = Ports::reserve(5);
        let namesrv_port = ports.port(0);
        let broker_port = ports.port(3);
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
        let store = home.join("store");
        std::fs::write(
            home.join("broker.toml"),
            format!(
                "[broker]\nlistenPort = {broker_port}\nbrokerIp1 = \"127.0.0.1\"\nbrokerIp2 = \"127.0.0.1\"\n\
                 namesrvAddr = \"127.0.0.1:{namesrv_port}\"\nstorePathRootDir = \"{store}\"\nautoCreateTopicEnable = true\n\n\
                 [broker.brokerServerConfig]\nbindAddress = \"127.0.0.1\"\n\n\
                 [broker.brokerIdentity]\nbrokerName = \"{name}\"\nbrokerClusterName = \"TestCluster\"\nbrokerId = 0\n\n\
                 [store]\nhaListenAddress = \"127.0.0.1\"\nhaListenPort = {ha}\nstorePathRootDir = \"{store}\"\n\
                 maxTransferCountOnMessageInMemory = 1024\nmaxTransferBytesOnMessageInMemory = 1048576\n\
                 maxTransferCountOnMessageInDisk = 1024\nmaxTransferBytesOnMessageInDisk = 1048576\n\
                 mappedFileSizeCommitLog = {commit_log_file}\nmappedFileSizeConsumeQueue = {queue_file}\n",
                store = store.display(),
                name = crate::unique("broker"),
                ha = broker_port + 1,
                commit_log_file = COMMIT_LOG_FILE,
                queue_file = CONSUME_QUEUE_FILE,
            ),
        )
        .unwrap();
        let mut mq = PrivateRocketMq {
            namesrv: format!("127.0.0.1:{namesrv_port}"),
            home,
            broker_port,
            namesrv_child,
            broker_child: None,
            _ports: ports,
        };
        mq.start_broker().await;
        mq
    }

    pub async fn start_broker(&mut self) {
        let log = self.home.join("broker.log");
        let (stdout, stderr) = log_to(&log);
        let mut child = Command::new("rocketmq-broker-rust")
            .arg("-c")
            .arg(self.home.join("broker.toml"))
            .env("ROCKETMQ_HOME", &self.home)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("rocketmq-broker-rust must be installed (scripts/services.sh rocketmq)");
        wait_port(self.broker_port, true, Some((&mut child, &log))).await;
        self.broker_child = Some(child);
    }

    /// Kills the broker, deletes its whole store (every message and consumer offset), starts
    /// it again empty.
    pub async fn lose_store(&mut self) {
        self.stop_broker().await;
        std::fs::remove_dir_all(self.home.join("store")).unwrap();
        self.start_broker().await;
    }

    /// Kills the broker (SIGKILL) and waits until its port is closed.
    pub async fn stop_broker(&mut self) {
        if let Some(mut child) = self.broker_child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        wait_port(self.broker_port, false, None).await;
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
