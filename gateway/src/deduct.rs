//! Phase 3, deduct: concurrent attempts on one activity share one call of `deduct.lua`.
//!
//! A script call costs Redis far more to receive, run and answer than the few commands a winner
//! needs inside it, so attempts are coalesced: the batcher takes the next attempt, waits for one
//! of its call slots, then adds every attempt that queued up meanwhile (up to
//! [`MAX_ATTEMPTS`]), and makes one call per activity among them. There is no linger: when Redis
//! keeps up, a batch is what arrived during the previous call; when it does not, the slots are
//! busy and batches grow by themselves. Each attempt resolves with its own outcome, decided by
//! the script in arrival order exactly as if the attempts had come one by one.
//!
//! An attempt whose order id turned out to be taken (nothing was written for it) is queued again
//! with a fresh id, at most twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use seckill_ledger::id::IdGenerator;
use seckill_ledger::ledger::{Attempt, DeductOutcome, LedgerConfig};
use seckill_ledger::{Ledger, LedgerError, OrderId, UserId};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::catalog::Activity;
use crate::metrics::{DeductStage, Metrics};

/// Attempts in one script call at most (the script's arguments: 4 per attempt; the ledger takes
/// up to [`seckill_ledger::ledger::MAX_DEDUCT_BATCH`]).
pub const MAX_ATTEMPTS: usize = 64;
/// Queue between requests and the batcher; when full, requests wait (the in-flight permit
/// bounds how many can).
const QUEUE: usize = 16 * 1024;
/// Fresh order ids tried after the first was taken.
const ID_RETRIES: usize = 2;

/// Why an attempt got no outcome.
#[derive(Debug, Clone)]
pub enum DeductError {
    /// The script call failed (shared by every attempt of the call).
    Ledger(Arc<LedgerError>),
    /// The batcher is gone (the gateway is stopping).
    Stopped,
}

/// What the script decided for one attempt, or why it could not run.
pub type Decided = Result<DeductOutcome, DeductError>;

struct Pending {
    activity: Arc<Activity>,
    user: UserId,
    quantity: u32,
    channel: String,
    order_id: OrderId,
    /// When it joined the queue.
    queued_at: Instant,
    /// `None`: the order id was taken; try again with a fresh one.
    done: oneshot::Sender<Result<Option<DeductOutcome>, Arc<LedgerError>>>,
}

/// The gateway's side of `deduct.lua`.
pub struct Deducter {
    queue: mpsc::Sender<Pending>,
    ids: Arc<IdGenerator>,
    /// A handle on the thread's connections, for their counters (its calls run there).
    ledger: Ledger,
    /// Lowered when the thread ends, however it ends.
    running: Arc<AtomicBool>,
}

/// Lowers its flag when dropped: at the end of the deducter's thread, a panic's unwinding
/// included.
struct Lowers(Arc<AtomicBool>);

impl Drop for Lowers {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Deducter {
    /// Starts the batcher, with `slots` script calls in flight at most, on a thread of its own
    /// with connections of its own (made with `config`). The thread ends when the deducter is
    /// dropped.
    ///
    /// Its own thread because a winner's wait is mostly the call's round trip, and on the
    /// request runtime each reply waited behind the HTTP tasks queued on the same workers before
    /// the connection's driver read it: in `bench/run.sh --scenario sale` the call took 10 ms at
    /// the median for 0.3 ms of script. Here the reply is read as soon as the kernel has it.
    pub async fn start(
        config: &LedgerConfig,
        ids: Arc<IdGenerator>,
        slots: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LedgerError> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (connected, connection) = oneshot::channel();
        let config = config.clone();
        let running = Arc::new(AtomicBool::new(true));
        let lowers = Lowers(running.clone());
        std::thread::Builder::new()
            .name("seckill-deduct".into())
            .spawn(move || {
                let _lowers = lowers;
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = connected.send(Err(io_error(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Ledger::connect(&config).await {
                        Ok(ledger) => {
                            let _ = connected.send(Ok(ledger.clone()));
                            batch_loop(receiver, ledger, slots.max(1), metrics).await;
                        }
                        Err(e) => {
                            let _ = connected.send(Err(e));
                        }
                    }
                });
            })
            .map_err(io_error)?;
        let ledger = connection.await.map_err(|_| {
            io_error(std::io::Error::other(
                "the deduct thread ended while connecting",
            ))
        })??;
        Ok(Deducter {
            queue,
            ids,
            ledger,
            running,
        })
    }

    /// NOSCRIPT recoveries on the deducter's connections.
    pub fn script_reloads(&self) -> u64 {
        self.ledger.script_reloads()
    }

    /// False once the deducter's thread ended (it only does when the deducter is dropped, or
    /// if it panicked): readiness then answers 503 instead of every buyer getting one.
    pub fn running(&self) -> Arc<AtomicBool> {
        self.running.clone()
    }

    /// One attempt, decided together with whatever else is queued on the same activity.
    pub async fn deduct(
        &self,
        activity: &Arc<Activity>,
        user: &UserId,
        quantity: u32,
        channel: &str,
    ) -> Decided {
        for _ in 0..=ID_RETRIES {
            let (done, decided) = oneshot::channel();
            let pending = Pending {
                activity: activity.clone(),
                user: user.clone(),
                quantity,
                channel: channel.to_owned(),
                order_id: self.ids.next_id(),
                queued_at: Instant::now(),
                done,
            };
            let order_id = pending.order_id;
            if self.queue.send(pending).await.is_err() {
                return Err(DeductError::Stopped);
            }
            match decided.await {
                Ok(Ok(Some(outcome))) => return Ok(outcome),
                Ok(Ok(None)) => {
                    tracing::warn!(
                        order = order_id.0,
                        "order id already taken; retrying with a fresh id"
                    );
                }
                Ok(Err(e)) => return Err(DeductError::Ledger(e)),
                Err(_) => return Err(DeductError::Stopped),
            }
        }
        Err(DeductError::Ledger(Arc::new(LedgerError::Contract {
            script: "deduct",
            detail: "three order ids in a row were taken".into(),
        })))
    }
}

/// The deduct thread could not start: an I/O failure, as Redis errors are.
fn io_error(e: std::io::Error) -> LedgerError {
    LedgerError::Redis(e.into())
}

/// Collects attempts into batches and hands each to a call task.
async fn batch_loop(
    mut receiver: mpsc::Receiver<Pending>,
    ledger: Ledger,
    slots: usize,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(slots));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(first) = receiver.recv().await {
        // Waiting for a slot is what lets a batch grow under load.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(MAX_ATTEMPTS);
        batch.push(first);
        while batch.len() < MAX_ATTEMPTS {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let by_activity = group_by_activity(batch);
        let (ledger, metrics) = (ledger.clone(), metrics.clone());
        tasks.spawn(async move {
            let calls = by_activity
                .into_iter()
                .map(|attempts| call(&ledger, &metrics, attempts));
            futures_util::future::join_all(calls).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The batch split by activity, each group in arrival order. A batch nearly always holds one
/// activity (a sale is one hot activity), so a linear search beats hashing, and no id is cloned.
fn group_by_activity(batch: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    for pending in batch {
        let id = &pending.activity.keys.id;
        match groups.iter_mut().find(|g| &g[0].activity.keys.id == id) {
            Some(group) => group.push(pending),
            None => groups.push(vec![pending]),
        }
    }
    groups
}

/// One script call for attempts on one activity; every attempt is answered.
async fn call(ledger: &Ledger, metrics: &Metrics, batch: Vec<Pending>) {
    let Some(first) = batch.first() else { return };
    let keys = &first.activity.keys;
    let attempts: Vec<(Attempt<'_>, OrderId)> = batch
        .iter()
        .map(|p| {
            (
                Attempt {
                    user: &p.user,
                    quantity: p.quantity,
                    channel: &p.channel,
                },
                p.order_id,
            )
        })
        .collect();
    metrics.deduct_call(attempts.len());
    let started = Instant::now();
    for pending in &batch {
        metrics.observe_deduct_stage(
            DeductStage::Queued,
            started.saturating_duration_since(pending.queued_at),
            1,
        );
    }
    let decided = ledger.deduct_batch(keys, &attempts).await;
    metrics.observe_deduct_stage(DeductStage::Call, started.elapsed(), attempts.len());
    drop(attempts);
    match decided {
        Ok(outcomes) => {
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                let _ = pending.done.send(Ok(outcome));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for pending in batch {
                let _ = pending.done.send(Err(e.clone()));
            }
        }
    }
}
