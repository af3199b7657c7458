//! The seckill servers as child processes of a test: real binaries, configured through their
//! environment like in production, that a test may SIGKILL.

use std::net::SocketAddr;
use std::ops::Deref;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::Http;
use crate::ports::Ports;

/// `seckill-gateway` on a reserved port, with the test secrets and the given settings.
pub struct GatewayProcess {
    http: Http,
    child: Child,
    _ports: Ports,
}

impl GatewayProcess {
    /// Starts the gateway on `redis` with `settings` (`SECKILL_*` pairs) and waits until it
    /// answers `/healthz`.
    pub async fn start(redis: &str, settings: &[(&str, &str)]) -> Self {
        let ports = Ports::reserve(1);
        let addr: SocketAddr = format!("127.0.0.1:{}", ports.port(0)).parse().unwrap();
        let mut command = Command::new(crate::binary("seckill-gateway"));
        command
            .env("SECKILL_LISTEN", addr.to_string())
            .env("SECKILL_REDIS_URL", redis)
            .env("SECKILL_AUTH_SECRET", crate::SECRET)
            .env("SECKILL_PAYMENT_SECRET", crate::PAYMENT_SECRET)
            .env("SECKILL_RATE_PER_USER", "1000")
            .env("SECKILL_REDIS_CONNECTIONS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in settings {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let http = Http::new(addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("seckill-gateway exited at start: {status}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "seckill-gateway did not listen on {addr} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        GatewayProcess {
            http,
            child,
            _ports: ports,
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Deref for GatewayProcess {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `seckill-order-writer` with the given environment, so a test can SIGKILL it.
pub struct WriterProcess {
    child: Child,
}

impl WriterProcess {
    /// Starts the writer with these `SECKILL_*` settings.
    pub fn spawn(settings: &[(&str, &str)]) -> Self {
        let mut command = Command::new(crate::binary("seckill-order-writer"));
        command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in settings {
            command.env(name, value);
        }
        WriterProcess {
            child: command.spawn().unwrap(),
        }
    }

    /// SIGKILL: no chance to finish anything. Panics unless the writer was still running and
    /// died of the signal (an exit of its own would mean the test never killed anything).
    pub fn kill(mut self) {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the writer had already exited"
        );
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "the writer ended with {status}");
    }
}

impl Drop for WriterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
