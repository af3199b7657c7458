//! `GET /metrics` of the writer (`SECKILL_WRITER_METRICS_LISTEN`, off by default): what needs an
//! operator, read from the database at each scrape so every writer of a group reports the same
//! truth — messages parked (by reason), transitions whose follow-ups are not done yet, refused
//! payments whose refund is not announced yet. Prometheus text; anything else is a 404.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seckill_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Prometheus text of the writer's gauges.
pub async fn render(store: &Store) -> Result<String, seckill_store::StoreError> {
    let parked = store.parked_by_reason().await?;
    let unsettled = store.unsettled(Duration::ZERO, i64::MAX).await?.len();
    let refunds = store.pending_refunds(Duration::ZERO, i64::MAX).await?.len();
    let mut out = String::from(
        "# HELP seckill_parked_messages Messages the writer parked instead of applying (seckillctl parked), by reason.\n\
         # TYPE seckill_parked_messages gauge\n",
    );
    for (reason, count) in parked {
        out.push_str(&format!(
            "seckill_parked_messages{{reason=\"{reason}\"}} {count}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP seckill_unsettled_orders Orders whose last transition's follow-ups (ledger, event) are not done yet.\n\
         # TYPE seckill_unsettled_orders gauge\nseckill_unsettled_orders {unsettled}\n\
         # HELP seckill_refunds_pending Refused payments whose refund is not announced yet.\n\
         # TYPE seckill_refunds_pending gauge\nseckill_refunds_pending {refunds}\n"
    ));
    Ok(out)
}

/// Binds `listen` (an error if taken), then serves until `stopping`.
pub async fn start(
    listen: SocketAddr,
    store: Store,
    stopping: Arc<AtomicBool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "writer metrics on GET /metrics");
    Ok(tokio::spawn(async move {
        while !stopping.load(Ordering::Acquire) {
            let Ok(Ok((stream, _))) =
                tokio::time::timeout(Duration::from_secs(1), listener.accept()).await
            else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &store)).await;
            });
        }
    }))
}

/// One request per connection: reads the head, answers, closes.
async fn answer(mut stream: TcpStream, store: &Store) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let (status, body) = if line.starts_with("GET /metrics ") {
        match render(store).await {
            Ok(text) => ("200 OK", text),
            Err(e) => ("503 Service Unavailable", format!("database: {e}\n")),
        }
    } else {
        ("404 Not Found", "GET /metrics only\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
