//! Adoption: won orders whose message no writer will ever read.
//!
//! A broker killed without a replica keeps what it stored out of reach until it comes back; a
//! won order whose message it held and nobody had read yet is then only in the ledger. The
//! sweeper (one writer of the group at a time) looks at each activity of its group once a tick:
//! when the activity's rows have not grown for two ticks, below the ledger's order count, and
//! its outbox is empty (the gateways' relay has nothing left to send), the writer persists the orders the
//! ledger still holds as `queued` for longer than `adopt_after` and the database does not know,
//! itself, as a redelivered batch — exactly what the consumer would have done with their
//! messages. If the broker comes back, its copies find their rows and change nothing.
//!
//! The conditions keep a writer that is merely behind (a backlog in the topic, rows still
//! growing) from persisting what its consumer is about to read. Should it happen anyway (a
//! consumer stalled for two ticks with the messages older than `adopt_after` still to come), the
//! consumer's copy finds its row: no second row, at most a second `ORDER_CREATED` (consumers of
//! that topic dedupe by order id) and a second payment timer (the expiry is idempotent).
//! Activities ended more than a day ago are not looked at when the group handles all of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use seckill_ledger::{ActivityId, ActivityKeys, Ledger, OrderStatus};
use seckill_lifecycle::Lifecycle;
use seckill_store::Store;

use crate::consume::{persist_and_mirror, ConsumeError};
use crate::persist::Persister;

/// Orders adopted in one persisted batch at most (one `ORDER_CREATED` event's worth).
const ADOPT_BATCH: usize = 1024;
/// Ticks an activity's rows must stay unmoved before its orders are looked at.
const STALLED_TICKS: u32 = 2;
/// Activities ended longer ago than this are no longer looked at (when the group handles all).
const LOOK_BACK_MS: i64 = 24 * 3600 * 1000;

pub struct Adopter {
    pub persister: Arc<Persister>,
    pub ledger: Ledger,
    pub store: Store,
    pub lifecycle: Lifecycle,
    /// The group's activities (empty: every activity of the ledger, ended within a day).
    pub activities: Vec<String>,
    /// Orders won longer ago than this, still `queued`, with no row: adopted.
    pub after: Duration,
    /// Each activity's row count, and for how many ticks in a row it has not moved.
    rows_before: HashMap<ActivityId, (i64, u32)>,
    /// (rows, ledger orders) of each activity when a scan last found nothing to adopt: some
    /// orders never get a row (a limit-1 buyer's second order is parked, its stock released), so
    /// an activity may stay below the ledger's count for good; it is scanned again only once
    /// either count moves.
    fruitless: HashMap<ActivityId, (i64, i64)>,
}

/// Why an adoption tick stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("ledger: {0}")]
    Ledger(#[from] seckill_ledger::LedgerError),
    #[error("database: {0}")]
    Store(#[from] seckill_store::StoreError),
    #[error("{0}")]
    Persist(#[from] ConsumeError),
}

impl Adopter {
    pub fn new(
        persister: Arc<Persister>,
        ledger: Ledger,
        store: Store,
        lifecycle: Lifecycle,
        activities: Vec<String>,
        after: Duration,
    ) -> Self {
        Adopter {
            persister,
            ledger,
            store,
            lifecycle,
            activities,
            after,
            rows_before: HashMap::new(),
            fruitless: HashMap::new(),
        }
    }

    /// One look at every activity of the group; the number of orders adopted. An activity that
    /// fails is logged and left to the next tick; the others are still looked at.
    pub async fn tick(&mut self) -> Result<usize, AdoptError> {
        let mut adopted = 0;
        for id in self.scope().await? {
            match self.look_at(&id).await {
                Ok(n) => adopted += n,
                Err(e) => {
                    tracing::warn!(activity = %id, error = %e, "adoption failed; next tick retries")
                }
            }
        }
        Ok(adopted)
    }

    async fn scope(&self) -> Result<Vec<ActivityId>, AdoptError> {
        if !self.activities.is_empty() {
            return Ok(self
                .activities
                .iter()
                .filter_map(|a| ActivityId::parse(a).ok())
                .collect());
        }
        let now = seckill_service::now_ms();
        let mut recent = Vec::new();
        for id in self.ledger.list_activities().await? {
            if let Some(meta) = self.ledger.meta(&id).await? {
                if meta.ends_at_ms + LOOK_BACK_MS > now {
                    recent.push(id);
                }
            }
        }
        Ok(recent)
    }

    async fn look_at(&mut self, id: &ActivityId) -> Result<usize, AdoptError> {
        let keys = ActivityKeys::new(id);
        // Counts only (HLEN, ZCARD): cheap enough for every tick during a live sale.
        let Some((_, counters)) = self.ledger.snapshot(id).await? else {
            return Ok(0);
        };
        let rows = self.store.order_count(id.as_str()).await?;
        let still = match self.rows_before.get(id) {
            Some((before, ticks)) if *before == rows => ticks + 1,
            _ => 0,
        };
        self.rows_before.insert(id.clone(), (rows, still));
        // Rows unmoved for two ticks in a row, not one: a consumer busy with another
        // activity's backlog in the same queues leaves this one's rows flat for a while.
        let stalled = rows < counters.orders && counters.outbox == 0 && still >= STALLED_TICKS;
        if !stalled || self.fruitless.get(id) == Some(&(rows, counters.orders)) {
            return Ok(0);
        }
        let queued: Vec<_> = self
            .ledger
            .orders(&keys)
            .await?
            .into_iter()
            .filter(|o| o.status == OrderStatus::Queued)
            .collect();
        let ids: Vec<_> = queued.iter().map(|o| o.order_id).collect();
        let known = self.store.existing(&ids).await?;
        let rowless: Vec<_> = queued
            .into_iter()
            .filter(|o| !known.contains(&o.order_id))
            .collect();
        if rowless.is_empty() {
            self.fruitless.insert(id.clone(), (rows, counters.orders));
            return Ok(0);
        }
        // Only those old enough: a younger one's message may still be on its way.
        let due = seckill_service::now_ms() - self.after.as_millis() as i64;
        let missing: Vec<_> = rowless.into_iter().filter(|o| o.created_at < due).collect();
        let count = missing.len();
        for batch in missing.chunks(ADOPT_BATCH) {
            persist_and_mirror(
                &self.persister,
                &self.ledger,
                Some(&self.lifecycle),
                batch.to_vec(),
                true,
            )
            .await?;
        }
        if count > 0 {
            tracing::warn!(
                activity = %id,
                adopted = count,
                "persisted won orders whose messages no writer could read (a broker lost?)"
            );
        }
        Ok(count)
    }
}
