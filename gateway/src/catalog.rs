//! Cached activity metadata and the local sold-out flag, kept in step across gateway instances.
//!
//! The hot path reads this with no I/O and no lock: the map sits behind an `ArcSwap` (readers
//! load a pointer; the rare writers copy the map). Each activity carries its own sold-out flag.
//!
//! After sell-out, the activity also holds the buyers who hold units, read once
//! ([`Catalog::holders`]): a flagged attempt by one of them still gets their order (what
//! `deduct.lua` would answer), everyone else is refused from memory.
//!
//! Unknown ids cost no Redis call: the catalog also holds the id of every activity that exists
//! (`sk:activities`), so a flood of made-up ids is answered 404 from memory. A miss re-reads
//! that set at most once per [`MISS_REREAD`], however many misses arrive, in case the `changed`
//! event of an activity created a moment ago was lost.
//!
//! Freshness: a `sk:events` pub/sub listener applies `sold_out` / `stock_back` / `changed`
//! events at once (`changed` loads the activity, created or changed: a sale's first crowd finds
//! it cached); because pub/sub can drop messages (reconnects), a refresher also reloads every
//! cached activity and the id set every couple of seconds, which resets the flag from the real
//! stock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use seckill_ledger::event::LedgerEvent;
use seckill_ledger::ledger::Counters;
use seckill_ledger::{keys, ActivityId, ActivityKeys, ActivityMeta, Ledger, LedgerError};
use tokio::sync::{watch, OnceCell};

use crate::metrics::Metrics;

/// At most one re-read of the id set per this long on misses: a flood of made-up ids costs a
/// few Redis calls a second, not one per request.
pub const MISS_REREAD: Duration = Duration::from_millis(250);

/// Buyers (user → units held) of a sold-out activity.
pub type Holders = Arc<HashMap<String, u32>>;

/// One cached activity.
#[derive(Debug)]
pub struct Activity {
    pub meta: ActivityMeta,
    pub keys: ActivityKeys,
    /// Set when this instance (or another, via pub/sub) saw the stock reach zero.
    sold_out: AtomicBool,
    /// The ledger's counters when this entry was loaded (whether a reload may keep `holders`).
    counters: Counters,
    /// Read once after sell-out (concurrent askers wait for the one read); replaced by an empty
    /// cell whenever the flag goes down, so a read begun before that is never used.
    holders: ArcSwap<OnceCell<Holders>>,
    /// Set once this instance sent an attempt on it to the ledger ([`Catalog::serving`]).
    served: AtomicBool,
}

impl Activity {
    fn new(id: &ActivityId, meta: ActivityMeta, counters: Counters) -> Self {
        Activity {
            keys: ActivityKeys::new(id),
            meta,
            sold_out: AtomicBool::new(counters.stock <= 0),
            counters,
            holders: ArcSwap::from_pointee(OnceCell::new()),
            served: AtomicBool::new(false),
        }
    }

    pub fn is_sold_out(&self) -> bool {
        self.sold_out.load(Ordering::Relaxed)
    }

    /// The holders, if already read since the flag went up. No I/O.
    pub fn holders_read(&self) -> Option<Holders> {
        self.holders.load().get().cloned()
    }

    fn clear_sold_out(&self) {
        self.sold_out.store(false, Ordering::Relaxed);
        self.holders.store(Arc::new(OnceCell::new()));
    }
}

pub struct Catalog {
    ledger: Ledger,
    metrics: Arc<Metrics>,
    entries: ArcSwap<HashMap<ActivityId, Arc<Activity>>>,
    /// Every activity that exists (`sk:activities`); an id outside it is answered 404 from
    /// memory. Bounded by what operators created, not by what a crowd sends.
    existing: ArcSwap<HashSet<ActivityId>>,
    /// When a miss last re-read `existing` (see [`MISS_REREAD`]).
    last_miss_reread: Mutex<Option<Instant>>,
    /// The activities this instance has deducted in: the relay's ([`Catalog::served`]). Every
    /// activity is cached, but only these have outbox entries this instance may have left.
    served: Mutex<HashSet<ActivityId>>,
}

impl Catalog {
    /// A catalog knowing every activity that exists now (one `SMEMBERS`).
    pub async fn start(ledger: Ledger, metrics: Arc<Metrics>) -> Result<Self, LedgerError> {
        let catalog = Catalog {
            ledger,
            metrics,
            entries: ArcSwap::from_pointee(HashMap::new()),
            existing: ArcSwap::from_pointee(HashSet::new()),
            last_miss_reread: Mutex::new(None),
            served: Mutex::new(HashSet::new()),
        };
        catalog.read_existing().await?;
        Ok(catalog)
    }

    /// The cached activity, if any. No I/O.
    pub fn cached(&self, id: &ActivityId) -> Option<Arc<Activity>> {
        self.entries.load().get(id).cloned()
    }

    /// Notes that an attempt on `activity` goes to the ledger. One atomic load on the hot path
    /// (a read: no write to the shared cache line once set), a lock only the first time.
    pub fn serving(&self, activity: &Activity) {
        if activity.served.load(Ordering::Relaxed) {
            return;
        }
        if !activity.served.swap(true, Ordering::Relaxed) {
            if let Ok(mut served) = self.served.lock() {
                served.insert(activity.keys.id.clone());
            }
        }
    }

    /// Ids of the activities this instance has deducted in.
    pub fn served(&self) -> Vec<ActivityId> {
        self.served
            .lock()
            .map(|served| served.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// False if `id` is not among the activities that exist, as far as this instance knows. No
    /// I/O.
    pub fn may_exist(&self, id: &ActivityId) -> bool {
        self.existing.load().contains(id)
    }

    fn note_existing(&self, id: &ActivityId) {
        if !self.may_exist(id) {
            self.existing.rcu(|set| {
                let mut set = HashSet::clone(set);
                set.insert(id.clone());
                set
            });
        }
    }

    async fn read_existing(&self) -> Result<(), LedgerError> {
        let ids = self.ledger.list_activities().await?;
        self.existing.store(Arc::new(ids.into_iter().collect()));
        Ok(())
    }

    /// The activity `id`: from the cache, else loaded from Redis if it exists. An id this
    /// instance does not know of costs no Redis call, except that one such miss in each
    /// [`MISS_REREAD`] re-reads the id set. Each call made here is counted as the request's.
    pub async fn find(&self, id: &ActivityId) -> Result<Option<Arc<Activity>>, LedgerError> {
        if let Some(activity) = self.cached(id) {
            return Ok(Some(activity));
        }
        if !self.may_exist(id) {
            if !self.take_miss_reread() {
                return Ok(None);
            }
            self.metrics.redis_call();
            self.read_existing().await?;
            if !self.may_exist(id) {
                return Ok(None);
            }
        }
        self.metrics.redis_call();
        self.load(id).await
    }

    /// True for the one miss per [`MISS_REREAD`] that may re-read the id set.
    fn take_miss_reread(&self) -> bool {
        let Ok(mut last) = self.last_miss_reread.try_lock() else {
            return false; // another miss is re-reading it now
        };
        if last.is_some_and(|at| at.elapsed() < MISS_REREAD) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Loads an activity from Redis (metadata and stock, atomically) into the cache.
    pub async fn load(&self, id: &ActivityId) -> Result<Option<Arc<Activity>>, LedgerError> {
        let Some((meta, counters)) = self.ledger.snapshot(id).await? else {
            self.entries.rcu(|map| {
                let mut map = HashMap::clone(map);
                map.remove(id);
                map
            });
            return Ok(None);
        };
        let activity = Arc::new(Activity::new(id, meta, counters));
        // A periodic reload keeps the holders read after sell-out while nothing was won or
        // given back since (every win adds an order; a release moves reserved).
        if let Some(previous) = self.cached(id) {
            activity
                .served
                .store(previous.served.load(Ordering::Relaxed), Ordering::Relaxed);
            let unchanged = |a: &Counters, b: &Counters| {
                (a.stock, a.reserved, a.sold, a.orders) == (b.stock, b.reserved, b.sold, b.orders)
            };
            if activity.is_sold_out() && unchanged(&previous.counters, &activity.counters) {
                activity.holders.store(previous.holders.load_full());
            }
        }
        self.entries.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(id.clone(), activity.clone());
            map
        });
        self.note_existing(id);
        Ok(Some(activity))
    }

    /// Raises the local flag; returns true if it was down (so the caller tells the others).
    pub fn mark_sold_out(&self, id: &ActivityId) -> bool {
        self.cached(id)
            .is_some_and(|a| !a.sold_out.swap(true, Ordering::Relaxed))
    }

    fn clear_sold_out(&self, id: &ActivityId) {
        if let Some(activity) = self.cached(id) {
            activity.clear_sold_out();
        }
    }

    /// The buyers holding units in a sold-out activity, read once (`HSCAN` in pages, each
    /// counted as a Redis call) however many attempts ask at once. No stock means no new buyers,
    /// so the read stays true until the flag goes down (a release or restock), which drops it.
    pub async fn holders(&self, activity: &Activity) -> Result<Holders, LedgerError> {
        let cell = activity.holders.load_full();
        cell.get_or_try_init(|| async {
            let holders = self
                .ledger
                .holders(&activity.keys, || self.metrics.redis_call())
                .await?;
            Ok(Arc::new(holders))
        })
        .await
        .cloned()
    }

    /// Applies one pub/sub event.
    pub async fn apply(&self, event: LedgerEvent) {
        match event {
            LedgerEvent::SoldOut(id) => {
                self.mark_sold_out(&id);
            }
            LedgerEvent::StockBack(id) => self.clear_sold_out(&id),
            LedgerEvent::Changed(id) => {
                // Announced after the activity was written: it exists. Loaded now, created or
                // changed, so that the crowd at the start of a sale finds it cached instead of
                // each of its first attempts loading it.
                self.note_existing(&id);
                if let Err(e) = self.load(&id).await {
                    tracing::warn!(activity = %id, error = %e, "load after change failed");
                }
            }
        }
    }

    /// Re-reads the id set and reloads every cached activity.
    pub async fn refresh_all(&self) {
        if let Err(e) = self.read_existing().await {
            tracing::warn!(error = %e, "periodic read of the activity set failed");
        }
        let ids: Vec<ActivityId> = self.entries.load().keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.load(&id).await {
                tracing::warn!(activity = %id, error = %e, "periodic reload failed");
            }
        }
    }

    /// Tells every gateway (this one included) that an activity sold out.
    pub async fn announce_sold_out(&self, id: &ActivityId) {
        if let Err(e) = self.ledger.publish(&LedgerEvent::SoldOut(id.clone())).await {
            tracing::warn!(activity = %id, error = %e, "could not publish sold-out event");
        }
    }
}

/// Keeps the catalog fresh until `shutdown` flips: the pub/sub listener and the refresher.
/// `clients` are the ledger's nodes (one, or a cluster's seeds, where a PUBLISH reaches every
/// node's subscribers): the listener subscribes on one and moves to the next when it is lost.
pub async fn keep_fresh(
    catalog: Arc<Catalog>,
    clients: Vec<redis::Client>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut refresh = tokio::time::interval(every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for client in clients.iter().cycle() {
        // (Re)subscribe; while subscribed, apply events and refresh on the timer.
        let pubsub = match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(keys::EVENTS_CHANNEL).await {
                Ok(()) => Some(pubsub),
                Err(e) => {
                    tracing::warn!(error = %e, "subscribe to ledger events failed");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "pub/sub connection failed");
                None
            }
        };
        // Anything may have happened while we were not listening.
        catalog.refresh_all().await;
        let Some(mut pubsub) = pubsub else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = shutdown.changed() => return,
            }
        };
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => {
                        let Ok(payload) = message.get_payload::<String>() else { continue };
                        match LedgerEvent::decode(&payload) {
                            Some(event) => catalog.apply(event).await,
                            None => tracing::warn!(payload, "ignoring unknown ledger event"),
                        }
                    }
                    None => {
                        tracing::warn!("ledger event stream closed; resubscribing");
                        break;
                    }
                },
                _ = refresh.tick() => catalog.refresh_all().await,
                _ = shutdown.changed() => return,
            }
        }
    }
}
