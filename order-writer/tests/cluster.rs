//! The cluster topology, all of it the test's own: a 3-master Redis Cluster, a name server with
//! two brokers, two gateways and two writers (one consumer group), and three activities, one on
//! each master (checked with CLUSTER KEYSLOT against CLUSTER NODES). Buyers alternate between the
//! gateways. Afterwards each activity sold exactly its stock, no buyer holds more than the limit,
//! every won order is one row, and `seckillctl verify` (on the cluster) is clean — also when a
//! gateway, a writer and a broker are SIGKILLed mid-sale and never come back.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use seckill_ledger::{ActivityId, ActivityKeys, OrderId};

const STOCK: i64 = 40;
/// Buyers per activity: twice the stock.
const BUYERS: usize = 80;
/// Bound on everything the sale must reach (answers, rows, a clean verify).
const DEADLINE: Duration = Duration::from_secs(150);

/// How old a stranded order must be before the sweeper adopts it (`CLUSTER_ADOPT_AFTER`
/// overrides: a long one shows the kill test failing without adoption).
fn adopt_after() -> String {
    std::env::var("CLUSTER_ADOPT_AFTER").unwrap_or_else(|_| "3s".to_owned())
}

struct Topology {
    cluster: PrivateRedisCluster,
    mq: PrivateRocketMq,
    database: String,
    store: seckill_store::Store,
    ledger: seckill_ledger::Ledger,
    activities: Vec<ActivityId>,
    gateways: Vec<Option<GatewayProcess>>,
    writers: Vec<Option<WriterProcess>>,
}

impl Topology {
    async fn start() -> Self {
        let cluster = PrivateRedisCluster::start(3).await;
        let mq = PrivateRocketMq::with_brokers(2).await;
        let database = fresh_database().await;
        let store = seckill_store::Store::connect(&database, 4).await.unwrap();
        store.migrate().await.unwrap();
        let ledger = ledger_at(&cluster.url).await;
        let activities = cluster.ids_on_every_master("cluster").await;
        for id in &activities {
            ledger
                .create_activity(&seckill_ledger::NewActivity {
                    id: id.clone(),
                    name: "cluster item".into(),
                    price_cents: 2500,
                    stock_total: STOCK,
                    per_user_limit: 1,
                    starts_at_ms: seckill_service::now_ms() - 1_000,
                    ends_at_ms: seckill_service::now_ms() + 3_600_000,
                })
                .await
                .unwrap();
        }
        let ids: Vec<&ActivityId> = activities.iter().collect();
        // One group for both writers: they share the queues of both brokers. The sweeper looks
        // every second and adopts what is 3 s old (orders a dead broker holds).
        let mut env = writer_settings(&cluster.url, &database, &mq.namesrv, &ids);
        env.push(("SECKILL_SWEEP_EVERY", "1s".to_owned()));
        env.push(("SECKILL_WRITER_ADOPT_AFTER", adopt_after().to_owned()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let writers = vec![
            Some(WriterProcess::spawn(&env)),
            Some(WriterProcess::spawn(&env)),
        ];
        let gateway_settings = [("SECKILL_ROCKETMQ_NAMESRV", mq.namesrv.as_str())];
        let mut gateways = Vec::new();
        for _ in 0..2 {
            gateways.push(Some(
                GatewayProcess::start(&cluster.url, &gateway_settings).await,
            ));
        }
        Topology {
            cluster,
            mq,
            database,
            store,
            ledger,
            activities,
            gateways,
            writers,
        }
    }

    fn live_gateways(&self) -> Vec<Http> {
        self.gateways
            .iter()
            .flatten()
            .map(|g| Http::clone(g))
            .collect()
    }
}

/// One buyer: attempts until a definite answer, on gateway `turn` of the live ones, moving to
/// the next one on anything a dead gateway causes (no connection, a timeout, 503).
async fn buyer(
    live: Arc<RwLock<Vec<Http>>>,
    activity: ActivityId,
    user: String,
    turn: usize,
) -> Option<OrderId> {
    let path = format!("/v1/activities/{activity}/orders");
    let bearer = format!("Bearer {}", token_for(&user));
    let deadline = tokio::time::Instant::now() + DEADLINE / 2;
    let mut turn = turn;
    while tokio::time::Instant::now() < deadline {
        let http = {
            let live = live.read().unwrap();
            live[turn % live.len()].clone()
        };
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            http.try_send_with(Method::POST, &path, &[("authorization", &bearer)], b""),
        )
        .await;
        if let Ok(Ok(reply)) = sent {
            match reply.status {
                StatusCode::ACCEPTED | StatusCode::OK => {
                    return Some(OrderId::parse(reply.json["order_id"].as_str().unwrap()).unwrap())
                }
                StatusCode::CONFLICT => return None,
                _ => {}
            }
        }
        turn += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{user} got no definite answer within {:?}", DEADLINE / 2);
}

/// The sale: `BUYERS` per activity, arriving over about 2.5 s, alternating between the live
/// gateways; `mid_sale` runs once the first buyers are in. Returns each activity's winners.
async fn sell(
    topology: &mut Topology,
    mid_sale: impl AsyncFnOnce(&mut Topology, &Arc<RwLock<Vec<Http>>>),
) -> Vec<Vec<(String, OrderId)>> {
    let live = Arc::new(RwLock::new(topology.live_gateways()));
    let mut buyers = Vec::new();
    for i in 0..BUYERS * topology.activities.len() {
        let activity = topology.activities[i % topology.activities.len()].clone();
        let (live, user) = (live.clone(), format!("c{i}"));
        buyers.push((
            i % topology.activities.len(),
            user.clone(),
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                buyer(live, activity, user, i).await
            }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    mid_sale(topology, &live).await;
    let mut won = vec![Vec::new(); topology.activities.len()];
    for (activity, user, task) in buyers {
        if let Some(order) = task.await.unwrap() {
            won[activity].push((user, order));
        }
    }
    won
}

/// Each activity sold exactly its stock, to distinct buyers; every won order becomes one row,
/// findable by id through a live gateway; `seckillctl verify` on the cluster is clean.
async fn assert_sold_exactly(topology: &Topology, won: &[Vec<(String, OrderId)>]) {
    let http = topology.live_gateways().remove(0);
    for (id, winners) in topology.activities.iter().zip(won) {
        assert_eq!(winners.len() as i64, STOCK, "{id}: wins");
        let users: HashSet<&str> = winners.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(users.len(), winners.len(), "{id}: a buyer won twice");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let rows = loop {
            let rows = topology.store.activity_orders(id.as_str()).await.unwrap();
            if winners.iter().all(|(_, o)| rows.contains_key(o)) {
                break rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id}: {} of {} won orders have rows",
                winners.iter().filter(|(_, o)| rows.contains_key(o)).count(),
                winners.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(rows.len(), winners.len(), "{id}: rows = wins");
        let mut per_user: HashMap<&str, i32> = HashMap::new();
        for row in rows.values() {
            *per_user.entry(row.user_id.as_str()).or_default() += row.quantity;
        }
        assert!(
            per_user.values().all(|units| *units == 1),
            "{id}: over the limit"
        );
        let audit = topology
            .ledger
            .audit(&ActivityKeys::new(id))
            .await
            .unwrap()
            .unwrap();
        assert!(audit.balanced(), "{id}: {}", audit.balance_line());
        assert_eq!((audit.stock, audit.reserved), (0, STOCK), "{id}");
        let (user, order) = &winners[0];
        let mine = http
            .get(&format!("/v1/orders/{order}"), Some(&token_for(user)))
            .await;
        assert_eq!(mine.status, StatusCode::OK, "{id}: order {order} by id");
        assert_verified_within(
            id,
            &topology.cluster.url,
            &topology.database,
            &topology.mq.namesrv,
            DEADLINE,
        )
        .await;
    }
}

/// Attempts answered from a gateway's local sold-out flag so far.
async fn short_circuits(gateway: &Http) -> u64 {
    let text = gateway.get("/metrics", None).await.text;
    text.lines()
        .find_map(|line| line.strip_prefix("seckill_sold_out_short_circuits_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_two_writers_two_brokers_on_three_masters_sell_exactly_the_stock() {
    let mut topology = Topology::start().await;
    let won = sell(&mut topology, async |_, _| {}).await;
    assert_sold_exactly(&topology, &won).await;

    // The winners' messages went through both brokers (each has queues of seckill_order that
    // hold messages), so both writers' share of the queues had work.
    for broker in 0..2 {
        assert!(
            topology.mq.queues_used(broker, "seckill_order") > 0,
            "broker {broker} stored no order"
        );
    }

    // Every gateway answers a sold-out activity from its own flag, whichever one sold the last
    // unit; a restock clears the flag on all of them.
    let gateways = topology.live_gateways();
    for id in &topology.activities {
        for (g, gateway) in gateways.iter().enumerate() {
            let flagged = eventually_async(Duration::from_secs(10), || async {
                let before = short_circuits(gateway).await;
                let answer = gateway.attempt(id, &format!("late-{g}")).await;
                answer.error() == "sold_out" && short_circuits(gateway).await == before + 1
            })
            .await;
            assert!(flagged, "gateway {g} never flagged {id} as sold out");
        }
    }
    let restocked = &topology.activities[1];
    topology
        .ledger
        .restock(&ActivityKeys::new(restocked), STOCK + 2)
        .await
        .unwrap();
    for (g, gateway) in gateways.iter().enumerate() {
        let sells = eventually_async(Duration::from_secs(10), || async {
            gateway
                .attempt(restocked, &format!("restock-{g}"))
                .await
                .status
                == StatusCode::ACCEPTED
        })
        .await;
        assert!(
            sells,
            "gateway {g} still refused {restocked} after the restock"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_a_writer_and_a_broker_killed_mid_sale_lose_nothing() {
    let mut topology = Topology::start().await;
    let won = sell(&mut topology, async |topology, live| {
        // New attempts go to the survivor first, then the gateway dies under those in flight.
        let doomed = topology.gateways[1].take().unwrap();
        live.write().unwrap().truncate(1);
        doomed.kill();
        topology.writers[1].take().unwrap().kill();
        topology.mq.kill_broker(1).await;
    })
    .await;
    // What the dead broker stored and no writer read yet is out of reach until it returns: the
    // surviving writer's sweeper adopts those orders from the ledger once the activity's rows
    // stop growing with its outbox empty (the surviving gateway's relay has sent the dead
    // gateway's unpublished orders by then). No operator step.
    assert_sold_exactly(&topology, &won).await;
}
