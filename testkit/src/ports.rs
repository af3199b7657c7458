//! Loopback ports for the servers a test starts (Redis, a name server, a broker, a gateway).
//!
//! Finding a free port by binding port 0 and releasing it races: another test may take the port
//! before our server binds it. Instead a test *reserves* a block of ports: a lock file per port
//! under the system temp dir, created exclusively and naming the reserving process, so two tests
//! (in one process or several) never get the same port. The blocks come from below the kernel's
//! ephemeral range (32768+), so client sockets never hold them either. A lock whose process is
//! gone is stale and taken over.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Ports handed out: [FIRST, LAST).
const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("seckill-test-ports");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `count` consecutive ports held until dropped.
#[derive(Debug)]
pub struct Ports {
    pub first: u16,
    locks: Vec<PathBuf>,
}

impl Ports {
    /// Reserves `count` consecutive free ports.
    pub fn reserve(count: u16) -> Ports {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let span = u32::from(LAST - FIRST - count);
        // Processes start their search at different places; within one, each call moves on.
        let seed = std::process::id().wrapping_mul(7919);
        for _ in 0..span {
            let offset =
                (seed.wrapping_add(NEXT.fetch_add(u32::from(count), Ordering::Relaxed))) % span;
            let first = FIRST + offset as u16;
            if let Some(ports) = Self::try_block(first, count) {
                return ports;
            }
        }
        panic!("no {count} consecutive free loopback ports in {FIRST}..{LAST}");
    }

    fn try_block(first: u16, count: u16) -> Option<Ports> {
        let mut ports = Ports {
            first,
            locks: Vec::new(),
        };
        for port in first..first + count {
            let lock = lock_dir().join(port.to_string());
            if !take_lock(&lock) {
                return None; // drop releases what was taken
            }
            ports.locks.push(lock);
            // Something outside the tests (a service of the machine) may hold it.
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                return None;
            }
        }
        Some(ports)
    }

    /// The `i`-th port of the block.
    pub fn port(&self, i: u16) -> u16 {
        assert!(usize::from(i) < self.locks.len());
        self.first + i
    }
}

impl Drop for Ports {
    fn drop(&mut self) {
        for lock in &self.locks {
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// Creates `lock` naming this process; takes it over if its process is gone.
fn take_lock(lock: &PathBuf) -> bool {
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(lock) {
            Ok(mut file) => {
                let _ = write!(file, "{}", std::process::id());
                return true;
            }
            Err(_) => {
                let holder = std::fs::read_to_string(lock).unwrap_or_default();
                let alive = holder
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|pid| PathBuf::from(format!("/proc/{pid}")).exists());
                if alive || holder.is_empty() {
                    return false;
                }
                let _ = std::fs::remove_file(lock);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_overlap_and_are_released() {
        let a = Ports::reserve(4);
        let b = Ports::reserve(4);
        let a_range = a.first..a.first + 4;
        assert!((b.first..b.first + 4).all(|p| !a_range.contains(&p)));
        let lock = lock_dir().join(a.first.to_string());
        assert!(lock.exists());
        assert!(!take_lock(&lock), "a held port was handed out again");
        drop(a);
        assert!(!lock.exists());
    }
}
