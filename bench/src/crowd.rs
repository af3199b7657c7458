//! The hostile crowd of the `crowd` scenario: what hits a real flash sale besides its buyers.
//!
//! - Never-reading clients: connections that pipeline attempts with forged tokens and never
//!   read an answer (they pin what a server buffers for them).
//! - Slowloris clients: connections that send a request head one byte a second, never
//!   finishing it.
//! - A flood at a fixed rate: `GET /v1/activities/<made-up id>`, attempts on made-up ids, and
//!   attempts on the real sale with forged tokens, each answer read.
//!
//! A closed connection is opened again, so the crowd keeps its size until told to leave. All of
//! it is bounded: by [`Crowd::leave`], and by `limit` whatever happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The crowd's shape.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub never_reading: usize,
    pub slowloris: usize,
    /// Connections of the flood, and requests per second each sends.
    pub flood_connections: usize,
    pub flood_rate_per_connection: u32,
}

/// What the crowd did.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections opened (again after the gateway closed one).
    pub connects: AtomicU64,
    /// Connections the gateway closed on them.
    pub dropped: AtomicU64,
    /// Flood requests answered, and those whose answer was a 5xx or unreadable.
    pub flood_answered: AtomicU64,
    pub flood_failed: AtomicU64,
}

pub struct Crowd {
    leave: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub counts: Arc<Counts>,
}

impl Crowd {
    /// Starts the crowd against `addr`, where `activity` is the sale on.
    pub fn arrive(addr: &str, activity: &str, shape: Shape, limit: Duration) -> Self {
        let (leave, gone) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let mut tasks = JoinSet::new();
        let addr: std::net::SocketAddr =
            addr.parse().unwrap_or_else(|_| ([127, 0, 0, 1], 0).into());
        let forged_attempt = format!(
            "POST /v1/activities/{activity}/orders HTTP/1.1\r\nhost: crowd\r\nauthorization: Bearer bot.4102444800.00ff\r\ncontent-length: 0\r\n\r\n"
        )
        .into_bytes();
        let pipelined: Arc<Vec<u8>> = Arc::new(forged_attempt.repeat(64));
        // Arriving over about a second (a connection every RAMP / 2): the measure is what the
        // gateway holds, not how its kernel queue takes a single burst.
        for i in 0..shape.never_reading {
            tasks.spawn(after(
                RAMP * (2 * i) as u32,
                never_reading(addr, pipelined.clone(), counts.clone(), gone.clone()),
            ));
        }
        let head = Arc::new(format!(
            "POST /v1/activities/{activity}/orders HTTP/1.1\r\nhost: crowd\r\nx-slow: "
        ));
        for i in 0..shape.slowloris {
            tasks.spawn(after(
                RAMP * (2 * i + 1) as u32,
                slowloris(addr, head.clone(), counts.clone(), gone.clone()),
            ));
        }
        for connection in 0..shape.flood_connections {
            tasks.spawn(flood(
                addr,
                activity.to_owned(),
                connection,
                shape.flood_rate_per_connection,
                counts.clone(),
                gone.clone(),
            ));
        }
        // Whatever the caller does, the crowd leaves by `limit`.
        let deadline = leave.clone();
        tasks.spawn(async move {
            tokio::time::sleep(limit).await;
            let _ = deadline.send(true);
        });
        Crowd {
            leave,
            tasks,
            counts,
        }
    }

    /// Every connection closes at once (its task is stopped, its socket dropped).
    pub async fn leave(mut self) {
        let _ = self.leave.send(true);
        self.tasks.shutdown().await;
    }
}

/// Between two connections of the crowd's arrival.
const RAMP: Duration = Duration::from_micros(80);

async fn after(delay: Duration, task: impl std::future::Future<Output = ()>) {
    tokio::time::sleep(delay).await;
    task.await;
}

async fn connect(addr: std::net::SocketAddr, counts: &Counts) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    // A small window: the gateway's writes stall after a few answers. A small send buffer too:
    // an attacker elsewhere costs this kernel nothing for its own buffers; here, on the same
    // machine, thousands of full 4 MiB send buffers would exhaust the kernel's TCP memory.
    let _ = socket.set_recv_buffer_size(4096);
    let _ = socket.set_send_buffer_size(16 * 1024);
    // A SYN the gateway's full accept queue dropped is retried for minutes: give up sooner.
    let stream = tokio::time::timeout(Duration::from_secs(3), socket.connect(addr))
        .await
        .ok()?
        .ok()?;
    counts.connects.fetch_add(1, Ordering::Relaxed);
    Some(stream)
}

/// Waits a little before reconnecting after a refusal (the cap) or a failed connect.
async fn back_off(gone: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(200)) => false,
        _ = gone.changed() => true,
    }
}

async fn never_reading(
    addr: std::net::SocketAddr,
    pipelined: Arc<Vec<u8>>,
    counts: Arc<Counts>,
    mut gone: watch::Receiver<bool>,
) {
    while !*gone.borrow() {
        let Some(stream) = connect(addr, &counts).await else {
            if back_off(&mut gone).await {
                return;
            }
            continue;
        };
        let (_unread, mut write) = stream.into_split();
        loop {
            tokio::select! {
                written = write.write_all(&pipelined) => if written.is_err() {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                },
                _ = gone.changed() => return,
            }
        }
        if back_off(&mut gone).await {
            return;
        }
    }
}

async fn slowloris(
    addr: std::net::SocketAddr,
    head: Arc<String>,
    counts: Arc<Counts>,
    mut gone: watch::Receiver<bool>,
) {
    while !*gone.borrow() {
        let Some(mut stream) = connect(addr, &counts).await else {
            if back_off(&mut gone).await {
                return;
            }
            continue;
        };
        let mut alive = stream.write_all(head.as_bytes()).await.is_ok();
        while alive {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    alive = stream.write_all(b"a").await.is_ok();
                }
                _ = gone.changed() => return,
            }
        }
        counts.dropped.fetch_add(1, Ordering::Relaxed);
        if back_off(&mut gone).await {
            return;
        }
    }
}

/// The flood's `n`th request: a made-up id never sent before (read, or bought with a forged
/// token), or the real sale with a forged token.
fn flood_request(activity: &str, connection: usize, n: u64) -> Vec<u8> {
    let made_up = format!("no-such-{connection}-{n}");
    match n % 3 {
        0 => format!("GET /v1/activities/{made_up} HTTP/1.1\r\nhost: crowd\r\n\r\n"),
        1 => format!(
            "POST /v1/activities/{made_up}/orders HTTP/1.1\r\nhost: crowd\r\nauthorization: Bearer bot{n}.4102444800.00\r\ncontent-length: 0\r\n\r\n"
        ),
        _ => format!(
            "POST /v1/activities/{activity}/orders HTTP/1.1\r\nhost: crowd\r\nauthorization: Bearer bot{n}.4102444800.00\r\ncontent-length: 0\r\n\r\n"
        ),
    }
    .into_bytes()
}

/// One request at a time on one keep-alive connection, `rate` a second, each answer read.
async fn flood(
    addr: std::net::SocketAddr,
    activity: String,
    connection: usize,
    rate: u32,
    counts: Arc<Counts>,
    mut gone: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 4096];
    for n in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = gone.changed() => return,
        }
        if stream.is_none() {
            stream = TcpStream::connect(addr).await.ok();
        }
        let Some(conn) = stream.as_mut() else {
            counts.flood_failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match exchange(conn, &flood_request(&activity, connection, n), &mut buf).await {
            Some(status) if status < 500 => {
                counts.flood_answered.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counts.flood_failed.fetch_add(1, Ordering::Relaxed);
                stream = None;
            }
        }
    }
}

/// Sends `request`, reads one answer (head and `content-length` body); its status.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> Option<u16> {
    stream.write_all(request).await.ok()?;
    let mut got = Vec::with_capacity(512);
    let answer = async {
        loop {
            let n = stream.read(buf).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .ok()
        .flatten()
}

/// Resets a process's peak resident set (`VmHWM`) to its current one (Linux `clear_refs`).
pub fn reset_peak_rss(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// The resident set of a process now and at its peak, in bytes (Linux `/proc`).
pub fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
