//! Connection bounds: what one client, or a crowd of them, can hold of the gateway.
//!
//! - A cap on open connections (`SECKILL_MAX_CONNECTIONS`): past it a new connection is closed
//!   at once, before hyper sees it — refusing costs an accept and a close.
//! - A header timeout (`SECKILL_HEADER_TIMEOUT`, hyper's own): a request's head must arrive
//!   within it once the connection waits for one. hyper starts that clock whenever it waits for
//!   a head, so it also closes a keep-alive connection idle that long, and a slowloris client
//!   trickling bytes.
//! - A write timeout (`SECKILL_WRITE_TIMEOUT`, [`Bounded`]): a response write that makes no
//!   progress for that long fails the connection, so a client that never reads cannot pin it.
//!   Each connection's is spread between 1 and 1.5 times the setting ([`spread`]): a crowd that
//!   arrived together would otherwise be cut together and come back together, a burst of work
//!   that is the honest buyers' latency.
//! - A per-connection buffer bound ([`BUFFER`]): hyper serves pipelined requests one after the
//!   other and stops reading while its buffers are full, so what a connection queues — unread
//!   requests, unsent responses — stays within it whatever the client sends. The kernel's own
//!   buffers are bounded too ([`SOCKET_BUFFER`], [`bound_socket`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// hyper's read and write buffers, each at most this (hyper's minimum; its default is ~400 KiB:
/// with thousands of clients that never read, that would be the gateway's memory). A request
/// head must fit (past it: 431); bodies (at most 4 KiB) stream through.
pub const BUFFER: usize = 8 * 1024;

/// The kernel's send and receive buffers of an accepted connection. Left to autotuning they grow
/// to `net.ipv4.tcp_wmem` / `tcp_rmem`'s maxima (4 MiB / 32 MiB on Debian) for a client that
/// pipelines and never reads; a few thousand such clients exhaust the kernel's TCP memory
/// (`tcp_mem`), and it then resets connections — everyone's. Seen in the `crowd` bench ("TCP:
/// out of memory -- consider tuning tcp_mem" in the kernel log) before this bound. It also
/// bounds the work a never-reading client gets done before its writes stall: about
/// (this + [`BUFFER`]) / the answer's size requests per connection per write timeout. Answers
/// here are a few hundred bytes (the kernel doubles the figure for its bookkeeping): 4 KiB
/// each way costs an honest client nothing.
pub const SOCKET_BUFFER: usize = 4 * 1024;

/// Applies [`SOCKET_BUFFER`] to an accepted connection (best effort: a failure leaves the
/// kernel's defaults).
pub fn bound_socket(stream: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
}

/// The write timeout of the `n`th connection: between `timeout` and 1.5 × `timeout`, spread
/// evenly over consecutive connections (a multiplicative hash of `n`, no RNG needed).
pub fn spread(timeout: Duration, n: u64) -> Duration {
    let fraction = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as u32; // 0..1024
    timeout + timeout * fraction / 2048
}

/// An accepted stream whose writes fail once stalled for `write_timeout`.
pub struct Bounded<IO> {
    io: IO,
    write_timeout: Duration,
    /// Armed when a write is first refused (socket buffer full); disarmed on any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> Bounded<IO> {
    pub fn new(io: IO, write_timeout: Duration) -> Self {
        Bounded {
            io,
            write_timeout,
            stalled: None,
        }
    }

    /// Passes progress through (disarming the stall clock); on `Pending`, fails once the clock
    /// armed at the first `Pending` has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.write_timeout;
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, WriteTimedOut)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The error a stalled write fails with (recognised by [`is_write_timeout`]).
#[derive(Debug)]
pub struct WriteTimedOut;

impl std::fmt::Display for WriteTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client read nothing for the whole write timeout")
    }
}

impl std::error::Error for WriteTimedOut {}

/// True if hyper's connection error is a write stalled past the timeout.
pub fn is_write_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<WriteTimedOut>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<WriteTimedOut>())
            {
                return true;
            }
        }
        source = e.source();
    }
    false
}

impl<IO: AsyncRead + Unpin> AsyncRead for Bounded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Bounded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn write_timeouts_spread_between_one_and_one_and_a_half_times() {
        let base = Duration::from_secs(10);
        let spread: Vec<Duration> = (0..1000).map(|n| spread(base, n)).collect();
        assert!(spread.iter().all(|d| *d >= base && *d < base * 3 / 2));
        let late = spread.iter().filter(|d| **d >= base * 5 / 4).count();
        assert!(
            (400..600).contains(&late),
            "{late} of 1000 in the upper half"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_timeout_and_progress_resets_the_clock() {
        // A pipe of 64 bytes whose reader never reads.
        let (writer, mut reader) = tokio::io::duplex(64);
        let mut bounded = Bounded::new(writer, Duration::from_secs(5));
        bounded.write_all(&[0; 64]).await.unwrap();
        let started = tokio::time::Instant::now();
        let error = bounded.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(is_write_timeout(&error));
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        // Reading frees room: the next write goes through, its clock starts afresh.
        let mut sink = [0; 64];
        tokio::io::AsyncReadExt::read_exact(&mut reader, &mut sink)
            .await
            .unwrap();
        bounded.write_all(&[0; 64]).await.unwrap();
    }
}
