//! [`Ledger`]: typed callers of the ledger scripts over auto-pipelined Redis connections.
//!
//! Every caller goes through here; nobody else builds script arguments. Scripts run with EVALSHA;
//! a NOSCRIPT answer (Redis restarted, failed over, `SCRIPT FLUSH`, or a cluster node that never
//! saw the script) is retried exactly once as EVAL of the source, which runs on the same node
//! and caches the script there.
//!
//! Connections are multiplexed (many concurrent requests share one socket and are written as
//! pipelines) and reconnecting: `redis` connection managers on a single node, cluster
//! connections (slot-routed, following MOVED and ASK) on a Redis Cluster. A small pool of them
//! spreads the parsing work of the client side over the runtime's workers.
//!
//! On a cluster everything an activity owns still changes in one script call (one slot); what
//! is global lives in keys of its own slot and is written by separate calls: the activity list,
//! leases, and the order-id index (`sk:order:<id>`), which the deduct writes in the same call on
//! a single node and right after it, before anyone is told the order id, on a cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{AsyncCommands, FromRedisValue, ToRedisArgs};

use crate::activity::{ActivityMeta, NewActivity};
use crate::connection::{Connection, Topology};
use crate::error::LedgerError;
use crate::event::LedgerEvent;
use crate::id::IdGenerator;
use crate::keys::{self, ActivityId, ActivityKeys, UserId};
use crate::order::{OrderId, OrderRecord, OrderStatus, OrderText};
use crate::scripts::{Script, SCRIPTS};

/// The local stack's Redis (`scripts/services.sh redis` starts it); every binary's default.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// One URL (a node) or several comma-separated node URLs (a Redis Cluster).
    pub url: String,
    /// Multiplexed connections in the pool (each one pipelines many requests).
    pub connections: usize,
    /// Upper bound on one command's round trip; past it the caller gets a retryable error.
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

impl LedgerConfig {
    pub fn new(url: impl Into<String>) -> Self {
        LedgerConfig {
            url: url.into(),
            connections: 4,
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// A handle on the ledger. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Ledger {
    connections: Arc<[Connection]>,
    next: Arc<AtomicUsize>,
    /// NOSCRIPT recoveries so far (exported as a metric).
    script_reloads: Arc<AtomicU64>,
    topology: Arc<Topology>,
    /// One per URL given (see [`Ledger::event_clients`]).
    event_clients: Arc<[redis::Client]>,
}

/// What one attempt in `deduct.lua` came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeductOutcome {
    /// A new order; `record` is exactly what the ledger stored (the order message body).
    Won {
        record: Box<OrderText>,
        stock_left: i64,
    },
    /// The user's allowance was already used; their latest order and its status.
    Repeat {
        order_id: Option<OrderId>,
        status: Option<OrderStatus>,
    },
    SoldOut {
        stock_left: i64,
    },
    LimitExceeded,
    NotStarted,
    Ended,
    NotFound,
}

/// Attempts [`Ledger::deduct_batch`] takes in one call at most.
pub const MAX_DEDUCT_BATCH: usize = 1000;

/// Orders [`Ledger::mirror`] moves in one script call at most (a chunk costs Redis a few
/// hundred µs; the deducts queued behind it wait no longer than that).
pub const MIRROR_CHUNK: usize = 128;

/// One buyer's attempt.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub user: &'a UserId,
    pub quantity: u32,
    pub channel: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released {
        stock_left: i64,
    },
    AlreadyReleased,
    UnknownOrder,
    /// Paid or later: the stock is final.
    NotReleasable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed,
    AlreadyConfirmed,
    UnknownOrder,
    /// The order's stock was released.
    NotConfirmable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    Exists,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestockOutcome {
    Restocked {
        stock_left: i64,
    },
    /// The requested total is below what is already won or sold (`taken`).
    BelowTaken {
        taken: i64,
    },
    /// Negative, or above [`MAX_STOCK`](crate::activity::MAX_STOCK): refused before Redis.
    OutOfRange,
    NotFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    AlreadyClosed,
    NotFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetStatusOutcome {
    Changed,
    Already,
    UnknownOrder,
    /// The order is in a status the transition does not start from.
    NotAllowed(Option<OrderStatus>),
}

/// What mirroring one status change of a batch came to (see `mirror.lua`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorCounts {
    pub changed: u64,
    pub already: u64,
    pub unknown: u64,
    /// Orders in neither the source nor the target status: left as they are.
    pub not_allowed: u64,
}

/// Live counters of one activity, read atomically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
    pub orders: i64,
    pub outbox: i64,
}

/// A payment notification the gateway accepted (signature and amount checked).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentNotice {
    pub order_id: OrderId,
    pub payment_id: String,
    pub amount_cents: i64,
    /// Unix milliseconds, by the accepting gateway's clock.
    pub accepted_at: i64,
}

/// One buyer in one activity (see [`Ledger::buyer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buyer {
    /// Units held now (won and not released).
    pub held: u32,
    /// Their latest order in the activity, whatever its status.
    pub order: Option<OrderRecord>,
}

/// The exact, atomic audit of one activity (see `audit.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub stock_total: i64,
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
    pub per_user_limit: i64,
    pub buyers: i64,
    pub units_held: i64,
    pub orders: i64,
    pub units_in_live_orders: i64,
    pub outbox: i64,
    pub released: i64,
    /// Buyers holding more than the limit: (user, units).
    pub over_limit: Vec<(String, i64)>,
}

impl Audit {
    /// Units won and not given back: reserved + sold.
    pub fn taken(&self) -> i64 {
        self.reserved + self.sold
    }

    /// The ledger's invariant: stock + reserved + sold = stock_total.
    pub fn balanced(&self) -> bool {
        self.stock + self.taken() == self.stock_total
    }

    /// The invariant's terms, for reports: `stock S + reserved R + sold D = X (total T)`.
    pub fn balance_line(&self) -> String {
        format!(
            "stock {} + reserved {} + sold {} = {} (total {})",
            self.stock,
            self.reserved,
            self.sold,
            self.stock + self.taken(),
            self.stock_total
        )
    }
}

/// For scripts that take no ARGV.
const NO_ARGS: &[&str] = &[];

fn contract(script: &Script, detail: impl Into<String>) -> LedgerError {
    LedgerError::Contract {
        script: script.name,
        detail: detail.into(),
    }
}

impl Ledger {
    /// Opens the connection pool and preloads every script.
    pub async fn connect(config: &LedgerConfig) -> Result<Self, LedgerError> {
        let topology = Topology::parse(&config.url).map_err(LedgerError::Config)?;
        let size = config.connections.max(1);
        let mut connections = Vec::with_capacity(size);
        match &topology {
            Topology::Node(url) => {
                let client = redis::Client::open(url.as_str())?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_response_timeout(config.response_timeout)
                    .set_connection_timeout(config.connect_timeout)
                    .set_number_of_retries(2)
                    .set_max_delay(500);
                for _ in 0..size {
                    let manager =
                        ConnectionManager::new_with_config(client.clone(), manager_config.clone())
                            .await?;
                    connections.push(Connection::Node(manager));
                }
            }
            Topology::Cluster(urls) => {
                let client = ClusterClientBuilder::new(urls.clone())
                    .response_timeout(config.response_timeout)
                    .connection_timeout(config.connect_timeout)
                    .retries(3)
                    .max_retry_wait(500)
                    .build()?;
                for _ in 0..size {
                    connections.push(Connection::Cluster(client.get_async_connection().await?));
                }
            }
        }
        let event_clients = topology
            .urls()
            .into_iter()
            .map(redis::Client::open)
            .collect::<Result<Vec<_>, _>>()?;
        let ledger = Ledger {
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
            script_reloads: Arc::new(AtomicU64::new(0)),
            topology: Arc::new(topology),
            event_clients: event_clients.into(),
        };
        ledger.preload().await?;
        Ok(ledger)
    }

    /// Where the ledger lives.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// One client per URL given, for pub/sub: on a cluster a PUBLISH reaches the subscribers of
    /// every node, so a subscriber needs one node, and moves to the next when it is gone.
    pub fn event_clients(&self) -> Vec<redis::Client> {
        self.event_clients.to_vec()
    }

    /// A connection from the pool, round robin.
    pub fn connection(&self) -> Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// On a cluster, makes orders findable by their id alone (`sk:order:<id>` → activity id):
    /// the index keys hash to other slots than their activity, so one SET each, sent together
    /// (on a single node the scripts and `rebuild` write the index themselves).
    async fn write_index(&self, entries: &[(OrderId, &str)]) -> Result<(), LedgerError> {
        let conn = self.connection();
        for chunk in entries.chunks(1000) {
            // Twice (SET is idempotent): a winner's index failing once (a moved slot, a
            // timeout) should not leave their order unfindable until the relay comes by.
            let write = || {
                futures_util::future::try_join_all(chunk.iter().map(|(id, activity)| {
                    let mut conn = conn.clone();
                    async move {
                        conn.set::<_, _, ()>(keys::order_index(id.0), *activity)
                            .await
                    }
                }))
            };
            if write().await.is_err() {
                write().await?;
            }
        }
        Ok(())
    }

    /// How many times a NOSCRIPT answer made us reload a script.
    pub fn script_reloads(&self) -> u64 {
        self.script_reloads.load(Ordering::Relaxed)
    }

    /// SCRIPT LOAD of every script, so the hot path only ever sends EVALSHA.
    pub async fn preload(&self) -> Result<(), LedgerError> {
        let mut conn = self.connection();
        for script in SCRIPTS.all() {
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.source)
                .query_async(&mut conn)
                .await?;
            if sha != script.sha {
                return Err(contract(
                    script,
                    format!("SCRIPT LOAD gave sha {sha}, expected {}", script.sha),
                ));
            }
        }
        Ok(())
    }

    /// PING, for readiness checks.
    pub async fn ping(&self) -> Result<(), LedgerError> {
        let mut conn = self.connection();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// EVALSHA, and on NOSCRIPT one retry as EVAL of the source: routed by its first key like
    /// the EVALSHA, so it runs on the node that lacked the script (on a cluster, the master of
    /// the keys' slot, whatever the other nodes' state) and leaves the script cached there.
    async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: impl ToRedisArgs,
    ) -> Result<T, LedgerError> {
        let args = args.to_redis_args();
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(&script.sha)
            .arg(keys.len())
            .arg(keys)
            .arg(&args);
        let mut conn = self.connection();
        match evalsha.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.script_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    script = script.name,
                    "NOSCRIPT: running the script's source once, which caches it there"
                );
                let mut eval = redis::cmd("EVAL");
                eval.arg(script.source).arg(keys.len()).arg(keys).arg(&args);
                Ok(eval.query_async(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }

    /// One attempt: window, limit and stock checks, decrement, buyer, order, outbox and the
    /// order-id index — atomically, so a won order is always findable by its id. (A batch of
    /// one: see [`Ledger::deduct_batch`].)
    pub async fn deduct(
        &self,
        keys: &ActivityKeys,
        attempt: Attempt<'_>,
        ids: &IdGenerator,
    ) -> Result<DeductOutcome, LedgerError> {
        // An id collision is refused by the script without writing; a fresh id fixes it.
        for _ in 0..3 {
            let order_id = ids.next_id();
            match self.deduct_batch(keys, &[(attempt, order_id)]).await?.pop() {
                Some(Some(outcome)) => return Ok(outcome),
                Some(None) => {
                    tracing::warn!(
                        order = order_id.0,
                        "order id already taken; retrying with a fresh id"
                    );
                }
                None => return Err(contract(&SCRIPTS.deduct, "no outcome for the attempt")),
            }
        }
        Err(contract(
            &SCRIPTS.deduct,
            "three order ids in a row were taken",
        ))
    }

    /// Several attempts on one activity in ONE script call, decided in order as if made one
    /// after the other; each with the order id it wins under. One outcome per attempt, in
    /// order; `None` where the order id was already taken (nothing written for that attempt:
    /// try it again with a fresh id).
    pub async fn deduct_batch(
        &self,
        keys: &ActivityKeys,
        attempts: &[(Attempt<'_>, OrderId)],
    ) -> Result<Vec<Option<DeductOutcome>>, LedgerError> {
        let script = &SCRIPTS.deduct;
        // The script writes a batch's winners with one command per key (`unpack` of two values
        // per winner), and Lua refuses to unpack about 8000 values: past that the records would
        // be written and the stock not taken. Refused here, before anything is written.
        if attempts.len() > MAX_DEDUCT_BATCH {
            return Err(contract(
                script,
                format!(
                    "{} attempts in one call; at most {MAX_DEDUCT_BATCH}",
                    attempts.len()
                ),
            ));
        }
        // The order-id index keys lie outside the activity's slot: in the script's KEYS on a
        // single node (written atomically with the order), after the script on a cluster.
        let cluster = self.topology.is_cluster();
        let index: Vec<String> = if cluster {
            Vec::new()
        } else {
            attempts
                .iter()
                .map(|(_, id)| keys::order_index(id.0))
                .collect()
        };
        let mut key_list: Vec<&str> = keys.deduct_keys().to_vec();
        key_list.extend(index.iter().map(String::as_str));
        let mut args: Vec<String> = Vec::with_capacity(1 + 4 * attempts.len());
        args.push(keys.id.as_str().to_owned());
        for (attempt, order_id) in attempts {
            args.extend([
                attempt.user.as_str().to_owned(),
                attempt.quantity.to_string(),
                order_id.0.to_string(),
                attempt.channel.to_owned(),
            ]);
        }
        let replies: Vec<(i64, String, i64, String, String)> =
            self.eval(script, &key_list, args).await?;
        if replies.len() != attempts.len() {
            return Err(contract(
                script,
                format!("{} outcomes for {} attempts", replies.len(), attempts.len()),
            ));
        }
        if cluster {
            // Before any winner hears its order id, so a won order is findable by it. Should
            // this fail, the orders are still in the outbox, and the relay that republishes
            // them writes their index too (see `claim_outbox`).
            let won: Vec<(OrderId, &str)> = replies
                .iter()
                .zip(attempts)
                .filter(|((code, ..), _)| *code == 0)
                .map(|(_, (_, id))| (*id, keys.id.as_str()))
                .collect();
            self.write_index(&won).await?;
        }
        let parse_id =
            |text: &str| OrderId::parse(text).map_err(|e| contract(script, e.to_string()));
        replies
            .into_iter()
            .zip(attempts)
            .map(
                |((code, returned, stock_left, status, record), (_, order_id))| {
                    Ok(Some(match code {
                        0 => {
                            // Not decoded: passed on as the message body. The script writes
                            // the order id first; checked, so a record is never sent under
                            // another order's id.
                            let id = order_id.0.to_string();
                            let names_it = record
                                .strip_prefix("{\"order_id\":\"")
                                .and_then(|rest| rest.strip_prefix(id.as_str()))
                                .is_some_and(|rest| rest.starts_with('"'));
                            if returned != id || !names_it {
                                return Err(contract(script, "record and order id disagree"));
                            }
                            DeductOutcome::Won {
                                record: Box::new(OrderText {
                                    order_id: *order_id,
                                    activity_id: keys.id.as_str().to_owned(),
                                    json: record,
                                }),
                                stock_left,
                            }
                        }
                        1 => DeductOutcome::Repeat {
                            order_id: if returned.is_empty() {
                                None
                            } else {
                                Some(parse_id(&returned)?)
                            },
                            status: serde_json::from_value(serde_json::Value::String(status)).ok(),
                        },
                        2 => DeductOutcome::SoldOut { stock_left },
                        3 => DeductOutcome::LimitExceeded,
                        4 => DeductOutcome::NotStarted,
                        5 => DeductOutcome::Ended,
                        6 => DeductOutcome::NotFound,
                        7 => return Ok(None),
                        other => return Err(contract(script, format!("unknown code {other}"))),
                    }))
                },
            )
            .collect()
    }

    /// Gives an order's stock back (idempotent), recording `status` on the order.
    pub async fn release(
        &self,
        keys: &ActivityKeys,
        order_id: OrderId,
        status: crate::order::OrderStatus,
    ) -> Result<ReleaseOutcome, LedgerError> {
        let script = &SCRIPTS.release;
        let (code, stock_left): (i64, i64) = self
            .eval(
                script,
                &[
                    keys.stock.as_str(),
                    &keys.reserved,
                    &keys.buyers,
                    &keys.orders,
                    &keys.released,
                ],
                (order_id.0, status.as_str()),
            )
            .await?;
        Ok(match code {
            0 => ReleaseOutcome::Released { stock_left },
            1 => ReleaseOutcome::AlreadyReleased,
            2 => ReleaseOutcome::UnknownOrder,
            3 => ReleaseOutcome::NotReleasable,
            other => return Err(contract(script, format!("unknown code {other}"))),
        })
    }

    /// Moves a paid order's units from reserved to sold (idempotent).
    pub async fn confirm(
        &self,
        keys: &ActivityKeys,
        order_id: OrderId,
    ) -> Result<ConfirmOutcome, LedgerError> {
        let script = &SCRIPTS.confirm;
        let (code,): (i64,) = self
            .eval(
                script,
                &[
                    keys.reserved.as_str(),
                    &keys.sold,
                    &keys.orders,
                    &keys.released,
                ],
                order_id.0,
            )
            .await?;
        Ok(match code {
            0 => ConfirmOutcome::Confirmed,
            1 => ConfirmOutcome::AlreadyConfirmed,
            2 => ConfirmOutcome::UnknownOrder,
            3 => ConfirmOutcome::NotConfirmable,
            other => return Err(contract(script, format!("unknown code {other}"))),
        })
    }

    /// Creates an activity (never overwriting one) and lists it in `sk:activities`.
    pub async fn create_activity(
        &self,
        activity: &NewActivity,
    ) -> Result<CreateOutcome, LedgerError> {
        let script = &SCRIPTS.create;
        let keys = ActivityKeys::new(&activity.id);
        let (code,): (i64,) = self
            .eval(
                script,
                &[keys.meta.as_str(), &keys.stock, &keys.reserved, &keys.sold],
                (
                    activity.name.as_str(),
                    activity.price_cents,
                    activity.stock_total,
                    activity.per_user_limit,
                    activity.starts_at_ms,
                    activity.ends_at_ms,
                ),
            )
            .await?;
        match code {
            0 => {
                // A separate key (another slot on a cluster); the activity itself is complete
                // without it, the list only helps operators find it.
                self.connection()
                    .sadd::<_, _, ()>(keys::ACTIVITIES, activity.id.as_str())
                    .await?;
                self.publish(&LedgerEvent::Changed(activity.id.clone()))
                    .await?;
                Ok(CreateOutcome::Created)
            }
            1 => Ok(CreateOutcome::Exists),
            other => Err(contract(script, format!("unknown code {other}"))),
        }
    }

    /// Sets the total stock; refuses to go below what is already won or sold.
    pub async fn restock(
        &self,
        keys: &ActivityKeys,
        stock_total: i64,
    ) -> Result<RestockOutcome, LedgerError> {
        let script = &SCRIPTS.restock;
        if !(0..=crate::activity::MAX_STOCK).contains(&stock_total) {
            return Ok(RestockOutcome::OutOfRange);
        }
        let (code, value): (i64, i64) = self
            .eval(
                script,
                &[keys.meta.as_str(), &keys.stock, &keys.reserved, &keys.sold],
                stock_total,
            )
            .await?;
        let outcome = match code {
            0 => RestockOutcome::Restocked { stock_left: value },
            1 => return Ok(RestockOutcome::BelowTaken { taken: value }),
            2 => return Ok(RestockOutcome::NotFound),
            other => return Err(contract(script, format!("unknown code {other}"))),
        };
        self.publish(&LedgerEvent::Changed(keys.id.clone())).await?;
        if value > 0 {
            self.publish(&LedgerEvent::StockBack(keys.id.clone()))
                .await?;
        } else {
            self.publish(&LedgerEvent::SoldOut(keys.id.clone())).await?;
        }
        Ok(outcome)
    }

    /// Replaces an activity's ledger, atomically (MULTI/EXEC), by the one `meta` and `orders`
    /// imply: every order recorded with its status; reserved = units of queued and
    /// pending-payment orders, sold = units of paid, refunding and refunded ones, stock = total −
    /// both; buyers hold their orders' units but those whose stock went back (cancelled, and
    /// those in `stock_returned`: cancelled, then paid late), which are released;
    /// each buyer's latest order; `outbox` (order id, score) re-queued for the relay; every
    /// order findable by its id. The recovery after Redis lost data (`seckillctl activity
    /// rebuild`). Refused, writing nothing, when the orders hold more units than the total.
    pub async fn rebuild(
        &self,
        meta: &ActivityMeta,
        orders: &[OrderRecord],
        stock_returned: &std::collections::HashSet<OrderId>,
        outbox: &[(OrderId, i64)],
    ) -> Result<Counters, LedgerError> {
        use OrderStatus::*;
        let keys = ActivityKeys::new(&meta.id);
        let (mut reserved, mut sold) = (0i64, 0i64);
        let mut buyers: HashMap<&str, i64> = HashMap::new();
        let mut latest: HashMap<&str, &OrderRecord> = HashMap::new();
        let mut released = Vec::new();
        for order in orders {
            let units = i64::from(order.quantity);
            // Cancelled — and cancelled then paid late (refunding, refunded): stock went back.
            let returned = order.status == Cancelled || stock_returned.contains(&order.order_id);
            if returned {
                released.push(order.order_id.0);
            } else {
                match order.status {
                    Queued | PendingPayment => reserved += units,
                    Paid | Refunding | Refunded => sold += units,
                    Cancelled => {}
                }
                *buyers.entry(&order.user_id).or_default() += units;
            }
            let newer = latest
                .get(order.user_id.as_str())
                .is_none_or(|l| (l.created_at, l.order_id) < (order.created_at, order.order_id));
            if newer {
                latest.insert(&order.user_id, order);
            }
        }
        let stock = meta.stock_total - reserved - sold;
        if stock < 0 {
            return Err(LedgerError::Corrupt {
                key: keys.meta.clone(),
                detail: format!(
                    "the orders hold {} units, more than the total of {}: oversold",
                    reserved + sold,
                    meta.stock_total
                ),
            });
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Everything but the payment notices (not derived from the orders; kept if still there).
        let derived: Vec<&str> = keys
            .all()
            .into_iter()
            .filter(|k| *k != keys.payments)
            .collect();
        pipe.del(&derived).ignore();
        pipe.hset_multiple(
            &keys.meta,
            &[
                ("name", meta.name.clone()),
                ("price_cents", meta.price_cents.to_string()),
                ("stock_total", meta.stock_total.to_string()),
                ("per_user_limit", meta.per_user_limit.to_string()),
                ("starts_at", meta.starts_at_ms.to_string()),
                ("ends_at", meta.ends_at_ms.to_string()),
                ("closed", if meta.closed { "1" } else { "0" }.to_owned()),
            ],
        )
        .ignore();
        pipe.set(&keys.stock, stock).ignore();
        pipe.set(&keys.reserved, reserved).ignore();
        pipe.set(&keys.sold, sold).ignore();
        // On a single node the order-id index goes into the same MULTI; on a cluster its keys
        // lie in other slots and are written right after it.
        let cluster = self.topology.is_cluster();
        for chunk in orders.chunks(1000) {
            let mut records = Vec::with_capacity(chunk.len());
            let mut index = Vec::with_capacity(chunk.len());
            for order in chunk {
                let text = serde_json::to_string(order).map_err(|e| LedgerError::Record {
                    key: keys.orders.clone(),
                    source: e,
                })?;
                records.push((order.order_id.0, text));
                index.push((keys::order_index(order.order_id.0), meta.id.as_str()));
            }
            pipe.hset_multiple(&keys.orders, &records).ignore();
            if !cluster {
                pipe.mset(&index).ignore();
            }
        }
        let buyers: Vec<(&str, i64)> = buyers.into_iter().filter(|(_, u)| *u > 0).collect();
        for chunk in buyers.chunks(1000) {
            pipe.hset_multiple(&keys.buyers, chunk).ignore();
        }
        let latest: Vec<(&str, u64)> = latest
            .into_iter()
            .map(|(user, order)| (user, order.order_id.0))
            .collect();
        for chunk in latest.chunks(1000) {
            pipe.hset_multiple(&keys.user_order, chunk).ignore();
        }
        for chunk in released.chunks(1000) {
            pipe.sadd(&keys.released, chunk).ignore();
        }
        for chunk in outbox.chunks(1000) {
            let entries: Vec<(i64, u64)> = chunk.iter().map(|(id, at)| (*at, id.0)).collect();
            pipe.zadd_multiple(&keys.outbox, &entries).ignore();
        }
        if !cluster {
            pipe.sadd(keys::ACTIVITIES, meta.id.as_str()).ignore();
        }
        pipe.query_async::<()>(&mut self.connection()).await?;
        if cluster {
            let index: Vec<(OrderId, &str)> = orders
                .iter()
                .map(|order| (order.order_id, meta.id.as_str()))
                .collect();
            self.write_index(&index).await?;
            self.connection()
                .sadd::<_, _, ()>(keys::ACTIVITIES, meta.id.as_str())
                .await?;
        }
        self.publish(&LedgerEvent::Changed(meta.id.clone())).await?;
        self.publish(&if stock > 0 {
            LedgerEvent::StockBack(meta.id.clone())
        } else {
            LedgerEvent::SoldOut(meta.id.clone())
        })
        .await?;
        Ok(Counters {
            stock,
            reserved,
            sold,
            orders: orders.len() as i64,
            outbox: outbox.len() as i64,
        })
    }

    /// The outbox of an activity: (order id, ms when won or last claimed).
    pub async fn outbox(&self, keys: &ActivityKeys) -> Result<Vec<(OrderId, i64)>, LedgerError> {
        let entries: Vec<(u64, i64)> = self
            .connection()
            .zrange_withscores(&keys.outbox, 0, -1)
            .await?;
        Ok(entries
            .into_iter()
            .map(|(id, at)| (OrderId(id), at))
            .collect())
    }

    /// Ends an activity now.
    pub async fn close(&self, keys: &ActivityKeys) -> Result<CloseOutcome, LedgerError> {
        let script = &SCRIPTS.close;
        let (code,): (i64,) = self.eval(script, &[keys.meta.as_str()], NO_ARGS).await?;
        let outcome = match code {
            0 => CloseOutcome::Closed,
            1 => CloseOutcome::AlreadyClosed,
            2 => CloseOutcome::NotFound,
            other => return Err(contract(script, format!("unknown code {other}"))),
        };
        if outcome == CloseOutcome::Closed {
            self.publish(&LedgerEvent::Changed(keys.id.clone())).await?;
        }
        Ok(outcome)
    }

    /// The exact ledger audit of one activity; `None` if it does not exist.
    pub async fn audit(&self, keys: &ActivityKeys) -> Result<Option<Audit>, LedgerError> {
        let script = &SCRIPTS.audit;
        let (numbers, over): (Vec<i64>, Vec<String>) = self
            .eval(
                script,
                &[
                    keys.meta.as_str(),
                    &keys.stock,
                    &keys.reserved,
                    &keys.sold,
                    &keys.buyers,
                    &keys.orders,
                    &keys.outbox,
                    &keys.released,
                ],
                NO_ARGS,
            )
            .await?;
        let [found, stock_total, stock, reserved, sold, per_user_limit, buyers, units_held, orders, live, outbox, released] =
            numbers[..]
        else {
            return match numbers.first() {
                Some(0) => Ok(None),
                _ => Err(contract(
                    script,
                    format!("expected 12 numbers, got {numbers:?}"),
                )),
            };
        };
        if found != 1 {
            return Err(contract(script, format!("found flag {found}")));
        }
        let over_limit = over
            .chunks(2)
            .map(|pair| match pair {
                [user, units] => Ok((user.clone(), units.parse().unwrap_or(i64::MAX))),
                _ => Err(contract(script, "odd over-limit list")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Audit {
            stock_total,
            stock,
            reserved,
            sold,
            per_user_limit,
            buyers,
            units_held,
            orders,
            units_in_live_orders: live,
            outbox,
            released,
            over_limit,
        }))
    }

    /// An activity's metadata; `None` if it does not exist.
    pub async fn meta(&self, id: &ActivityId) -> Result<Option<ActivityMeta>, LedgerError> {
        let keys = ActivityKeys::new(id);
        let fields: HashMap<String, String> = self.connection().hgetall(&keys.meta).await?;
        ActivityMeta::from_hash(id, &fields)
    }

    /// Metadata and live counters, read in one MULTI (one slot, so fine on a cluster too).
    pub async fn snapshot(
        &self,
        id: &ActivityId,
    ) -> Result<Option<(ActivityMeta, Counters)>, LedgerError> {
        let keys = ActivityKeys::new(id);
        #[allow(clippy::type_complexity)]
        let (fields, stock, reserved, sold, orders, outbox): (
            HashMap<String, String>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            i64,
            i64,
        ) = redis::pipe()
            .atomic()
            .hgetall(&keys.meta)
            .get(&keys.stock)
            .get(&keys.reserved)
            .get(&keys.sold)
            .hlen(&keys.orders)
            .zcard(&keys.outbox)
            .query_async(&mut self.connection())
            .await?;
        Ok(ActivityMeta::from_hash(id, &fields)?.map(|meta| {
            (
                meta,
                Counters {
                    stock: stock.unwrap_or(0),
                    reserved: reserved.unwrap_or(0),
                    sold: sold.unwrap_or(0),
                    orders,
                    outbox,
                },
            )
        }))
    }

    /// Available units (0 for an unknown activity).
    pub async fn stock_left(&self, keys: &ActivityKeys) -> Result<i64, LedgerError> {
        let stock: Option<i64> = self.connection().get(&keys.stock).await?;
        Ok(stock.unwrap_or(0))
    }

    /// Every activity id ever created, sorted.
    pub async fn list_activities(&self) -> Result<Vec<ActivityId>, LedgerError> {
        let mut ids: Vec<String> = self.connection().smembers(keys::ACTIVITIES).await?;
        ids.sort();
        Ok(ids
            .iter()
            .filter_map(|id| ActivityId::parse(id).ok())
            .collect())
    }

    /// Looks an order up by id alone.
    pub async fn order(&self, order_id: OrderId) -> Result<Option<OrderRecord>, LedgerError> {
        let mut conn = self.connection();
        let activity: Option<String> = conn.get(keys::order_index(order_id.0)).await?;
        let Some(activity) = activity.and_then(|a| ActivityId::parse(&a).ok()) else {
            return Ok(None);
        };
        self.order_in(&ActivityKeys::new(&activity), order_id).await
    }

    /// Looks an order up in a known activity.
    pub async fn order_in(
        &self,
        keys: &ActivityKeys,
        order_id: OrderId,
    ) -> Result<Option<OrderRecord>, LedgerError> {
        let raw: Option<String> = self.connection().hget(&keys.orders, order_id.0).await?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|e| LedgerError::Record {
                key: format!("{}[{order_id}]", keys.orders),
                source: e,
            })
        })
        .transpose()
    }

    /// What `user` holds in an activity and their latest order there (`buyer.lua`, read only):
    /// the order is kept after a release, so a buyer whose order was cancelled learns that too.
    pub async fn buyer(&self, keys: &ActivityKeys, user: &UserId) -> Result<Buyer, LedgerError> {
        let script = &SCRIPTS.buyer;
        let (held, order_id, raw): (u32, String, String) = self
            .eval(
                script,
                &[keys.buyers.as_str(), &keys.user_order, &keys.orders],
                user.as_str(),
            )
            .await?;
        let order = if order_id.is_empty() {
            None
        } else if raw.is_empty() {
            return Err(contract(script, format!("order {order_id} has no record")));
        } else {
            Some(serde_json::from_str(&raw).map_err(|e| LedgerError::Record {
                key: format!("{}[{order_id}]", keys.orders),
                source: e,
            })?)
        };
        Ok(Buyer { held, order })
    }

    /// Every buyer holding units in an activity, with their units (`HSCAN` in pages: a big
    /// sale's buyers are read without blocking Redis; `on_call` runs before each page).
    pub async fn holders(
        &self,
        keys: &ActivityKeys,
        on_call: impl Fn(),
    ) -> Result<HashMap<String, u32>, LedgerError> {
        let mut conn = self.connection();
        let mut holders = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            on_call();
            let (next, page): (u64, Vec<(String, u32)>) = redis::cmd("HSCAN")
                .arg(&keys.buyers)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            holders.extend(page);
            if next == 0 {
                return Ok(holders);
            }
            cursor = next;
        }
    }

    /// Records the first payment notice accepted for an order (later ones change nothing).
    /// True when this one was the first.
    pub async fn note_payment(
        &self,
        keys: &ActivityKeys,
        notice: &PaymentNotice,
    ) -> Result<bool, LedgerError> {
        let text = serde_json::to_string(notice).map_err(|e| LedgerError::Record {
            key: keys.payments.clone(),
            source: e,
        })?;
        Ok(self
            .connection()
            .hset_nx(&keys.payments, notice.order_id.0, text)
            .await?)
    }

    /// The first payment notice accepted for an order, found by its id alone.
    pub async fn payment_notice(
        &self,
        order_id: OrderId,
    ) -> Result<Option<PaymentNotice>, LedgerError> {
        let mut conn = self.connection();
        let activity: Option<String> = conn.get(keys::order_index(order_id.0)).await?;
        let Some(activity) = activity.and_then(|a| ActivityId::parse(&a).ok()) else {
            return Ok(None);
        };
        let keys = ActivityKeys::new(&activity);
        let raw: Option<String> = conn.hget(&keys.payments, order_id.0).await?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|e| LedgerError::Record {
                key: format!("{}[{order_id}]", keys.payments),
                source: e,
            })
        })
        .transpose()
    }

    /// Publishes an event to every gateway.
    pub async fn publish(&self, event: &LedgerEvent) -> Result<(), LedgerError> {
        self.connection()
            .publish::<_, _, ()>(keys::EVENTS_CHANNEL, event.encode())
            .await?;
        Ok(())
    }

    /// Takes or renews the lease `key` for `holder` (a lock with expiry: whoever holds it must
    /// renew it within `ttl`). True when `holder` holds it afterwards.
    pub async fn hold_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LedgerError> {
        let held: i64 = self
            .eval(&SCRIPTS.lease, &[key], (holder, ttl.as_millis() as u64))
            .await?;
        Ok(held == 1)
    }

    /// Who holds lease `key` now, if anyone.
    pub async fn lease_holder(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(self.connection().get(key).await?)
    }

    /// Takes or renews id-generator worker lease `worker` for `instance`.
    pub async fn lease_worker(
        &self,
        worker: u16,
        instance: &str,
        ttl: Duration,
    ) -> Result<bool, LedgerError> {
        self.hold_lease(&keys::worker_lease(worker), instance, ttl)
            .await
    }

    /// Finds a free worker id, starting the search at `start`.
    pub async fn acquire_worker(
        &self,
        start: u16,
        instance: &str,
        ttl: Duration,
    ) -> Result<u16, LedgerError> {
        for offset in 0..crate::id::WORKERS {
            let worker = (start.wrapping_add(offset)) % crate::id::WORKERS;
            if self.lease_worker(worker, instance, ttl).await? {
                return Ok(worker);
            }
        }
        Err(LedgerError::Contract {
            script: SCRIPTS.lease.name,
            detail: "all 1024 id-generator worker ids are leased".into(),
        })
    }

    /// Takes outbox entries older than `min_age` for republishing (see `claim.lua`).
    pub async fn claim_outbox(
        &self,
        keys: &ActivityKeys,
        min_age: Duration,
        limit: usize,
    ) -> Result<Vec<OrderText>, LedgerError> {
        let raw: Vec<String> = self
            .eval(
                &SCRIPTS.claim,
                &[keys.outbox.as_str(), &keys.orders],
                (min_age.as_millis() as u64, limit),
            )
            .await?;
        // Decoded only to check that each is a readable record; sent as stored.
        let claimed: Vec<OrderText> = raw
            .into_iter()
            .map(|json| {
                let record: OrderRecord =
                    serde_json::from_str(&json).map_err(|e| LedgerError::Record {
                        key: keys.orders.clone(),
                        source: e,
                    })?;
                Ok(OrderText {
                    order_id: record.order_id,
                    activity_id: record.activity_id,
                    json,
                })
            })
            .collect::<Result<_, LedgerError>>()?;
        if self.topology.is_cluster() {
            // A gateway may have died between a deduct and its index write (see
            // `deduct_batch`): whatever the relay picks up is made findable again.
            let entries: Vec<(OrderId, &str)> = claimed
                .iter()
                .map(|order| (order.order_id, keys.id.as_str()))
                .collect();
            self.write_index(&entries).await?;
        }
        Ok(claimed)
    }

    /// Removes orders from their activities' outboxes once the broker confirmed them.
    pub async fn mark_published(
        &self,
        orders: &[(&ActivityKeys, OrderId)],
    ) -> Result<(), LedgerError> {
        if orders.is_empty() {
            return Ok(());
        }
        // One ZREM per activity (one slot each, so fine on a cluster too), sent together.
        let mut by_outbox: HashMap<&str, Vec<u64>> = HashMap::new();
        for (keys, order_id) in orders {
            by_outbox.entry(&keys.outbox).or_default().push(order_id.0);
        }
        let conn = self.connection();
        futures_util::future::try_join_all(by_outbox.into_iter().map(|(outbox, ids)| {
            let mut conn = conn.clone();
            async move { conn.zrem::<_, _, ()>(outbox, ids).await }
        }))
        .await?;
        Ok(())
    }

    /// Mirrors a status into the ledger, only from one of `from`.
    pub async fn set_status(
        &self,
        keys: &ActivityKeys,
        order_id: OrderId,
        to: OrderStatus,
        from: &[OrderStatus],
    ) -> Result<SetStatusOutcome, LedgerError> {
        let script = &SCRIPTS.set_status;
        let mut args = vec![order_id.0.to_string(), to.as_str().to_owned()];
        args.extend(from.iter().map(|s| s.as_str().to_owned()));
        let (code, current): (i64, String) =
            self.eval(script, &[keys.orders.as_str()], args).await?;
        Ok(match code {
            0 => SetStatusOutcome::Changed,
            1 => SetStatusOutcome::Already,
            2 => SetStatusOutcome::UnknownOrder,
            3 => SetStatusOutcome::NotAllowed(
                serde_json::from_value(serde_json::Value::String(current)).ok(),
            ),
            other => return Err(contract(script, format!("unknown code {other}"))),
        })
    }

    /// Mirrors `from → to` for many orders of one activity in one call (the writer, after a
    /// batch committed); each order moves only if it is in `from`.
    pub async fn mirror(
        &self,
        keys: &ActivityKeys,
        order_ids: &[OrderId],
        to: OrderStatus,
        from: OrderStatus,
    ) -> Result<MirrorCounts, LedgerError> {
        if order_ids.is_empty() {
            return Ok(MirrorCounts::default());
        }
        let script = &SCRIPTS.mirror;
        // Redis runs one script at a time: a call over a whole batch (up to 1024 orders, a few
        // ms) would hold up every deduct queued behind it. In chunks, sent together (the
        // connection pipelines them), the deducts get in between.
        let key = [keys.orders.as_str()];
        let calls = order_ids.chunks(MIRROR_CHUNK).map(|chunk| {
            let mut args = Vec::with_capacity(chunk.len() + 2);
            args.push(to.as_str().to_owned());
            args.push(from.as_str().to_owned());
            args.extend(chunk.iter().map(|id| id.0.to_string()));
            self.eval::<Vec<u64>>(script, &key, args)
        });
        let mut total = MirrorCounts::default();
        for counts in futures_util::future::try_join_all(calls).await? {
            let [changed, already, unknown, not_allowed] = counts[..] else {
                return Err(contract(
                    script,
                    format!("expected 4 counts, got {counts:?}"),
                ));
            };
            total.changed += changed;
            total.already += already;
            total.unknown += unknown;
            total.not_allowed += not_allowed;
        }
        Ok(total)
    }

    /// Every order recorded for an activity (operators: verify, reconcile).
    pub async fn orders(&self, keys: &ActivityKeys) -> Result<Vec<OrderRecord>, LedgerError> {
        let mut conn = self.connection();
        let mut records = Vec::new();
        let mut cursor = 0u64;
        loop {
            // HSCAN, not HVALS: a big activity must not block Redis with one huge reply.
            let (next, pairs): (u64, Vec<String>) = redis::cmd("HSCAN")
                .arg(&keys.orders)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            for raw in pairs.iter().skip(1).step_by(2) {
                records.push(serde_json::from_str(raw).map_err(|e| LedgerError::Record {
                    key: keys.orders.clone(),
                    source: e,
                })?);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(records)
    }
}
