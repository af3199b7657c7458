//! Won orders reach PostgreSQL through RocketMQ, and none is ever lost: real Redis, RocketMQ
//! and PostgreSQL; each test has its own database, consumer group and activity ids.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use http::StatusCode;
use rocketmq_client_rust::LocalTransactionState;
use seckill_ledger::{ActivityKeys, OrderId, OrderRecord, OrderStatus, OrderText};
use seckill_messages::{MqRuntime, OrderEvent, ORDER_CREATED};
use seckill_order_writer::consume::persist_and_mirror;
use seckill_order_writer::persist::LocalTransaction;

/// Verify passes now (nothing left to settle).
#[track_caller]
fn assert_verified(output: &std::process::Output) {
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "verify failed:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("database agrees"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn winners_become_rows_with_items_and_their_status_is_mirrored() {
    let (
        Sale {
            mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        },
        writer,
    ) = sale_with_writer("e2e", 40, 1, |_| {}).await;

    let won = crowd(&gw, &activity, "buyer", 150).await;
    assert_eq!(won.len(), 40, "exactly the stock wins");

    assert_eq!(
        wait_for_rows(&store, activity.as_str(), 40, DRAIN).await,
        40
    );
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    let ids: HashSet<String> = rows.keys().map(|id| id.to_string()).collect();
    assert_eq!(
        ids,
        won.iter().cloned().collect::<HashSet<_>>(),
        "the rows are exactly the winners"
    );
    assert!(rows
        .values()
        .all(|row| row.items == 1 && row.status == "pending_payment"));

    // The status is mirrored into the ledger, so polling never touches PostgreSQL.
    let keys = ActivityKeys::new(&activity);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let orders = ledger.orders(&keys).await.unwrap();
        if orders
            .iter()
            .all(|o| o.status == OrderStatus::PendingPayment)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status not mirrored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = gw.get(&format!("/v1/orders/{}", won[0]), None).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let owner = rows
        .values()
        .find(|r| r.order_id.to_string() == won[0])
        .unwrap()
        .user_id
        .clone();
    let view = gw
        .get(&format!("/v1/orders/{}", won[0]), Some(&token_for(&owner)))
        .await;
    assert_eq!(view.json["status"], "pending_payment", "{}", view.text);

    assert_verified(&seckillctl(
        &["verify", activity.as_str()],
        &redis.url,
        &database,
        &mq.namesrv,
    ));
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecodable_order_message_is_parked_not_dropped_and_the_sale_goes_on() {
    let metrics_port = Ports::reserve(1);
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{}", metrics_port.port(0))
        .parse()
        .unwrap();
    let (
        Sale {
            mq,
            redis,
            database,
            ledger: _,
            activity,
            gw,
            store,
        },
        writer,
    ) = sale_with_writer("garbage", 5, 1, |config| {
        config.metrics_listen = Some(metrics_addr);
    })
    .await;
    // A message on the order topic, tagged with the activity, that is no order.
    let runtime = MqRuntime::start("test-garbage").unwrap();
    let producer = seckill_messages::producer(
        &runtime,
        &unique("garbage_producer"),
        &mq.namesrv,
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let garbage = seckill_messages::Message::builder()
        .topic(seckill_messages::ORDER_TOPIC)
        .tags(activity.as_str())
        .body_slice(b"{\"order_id\": \"not an order\"")
        .build_unchecked();
    seckill_messages::send_batch(&producer, vec![garbage], Duration::from_secs(3))
        .await
        .unwrap();

    let won = crowd(&gw, &activity, "g", 20).await;
    assert_eq!(won.len(), 5);
    assert_eq!(wait_for_rows(&store, activity.as_str(), 5, DRAIN).await, 5);
    let deadline = tokio::time::Instant::now() + DRAIN;
    let parked = loop {
        let parked = store.parked(10).await.unwrap();
        if !parked.is_empty() || tokio::time::Instant::now() > deadline {
            break parked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        (parked[0].reason.as_str(), parked[0].topic.as_str()),
        ("undecodable", "seckill_order")
    );
    assert!(parked[0].body.contains("not an order"));
    assert!(parked[0].key.starts_with("message:"));
    // The operator sees it.
    let listed = seckillctl(&["parked"], &redis.url, &database, &mq.namesrv);
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("undecodable") && text.contains("not an order"),
        "{text}"
    );
    // And counted where monitoring looks.
    let mut stream = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut scraped = String::new();
    stream.read_to_string(&mut scraped).await.unwrap();
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(
        scraped.contains("seckill_parked_messages{reason=\"undecodable\"} 1"),
        "{scraped}"
    );
    assert!(scraped.contains("seckill_unsettled_orders 0"), "{scraped}");
    writer.shutdown().await;
}

/// Orders travel packed, one message per activity and batch (`seckill_messages::order`). A line
/// that is no order must cost neither the orders beside it (their outbox entries are gone once
/// the broker took the message, so only adoption, much later, would persist them) nor the
/// message itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_packed_message_with_a_bad_line_persists_its_orders_and_is_parked() {
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("packed", 10, 1).await;
    let orders = won_in_ledger(&ledger, &activity, &["p1", "p2", "p3"]).await;
    let texts: Vec<OrderText> = orders
        .iter()
        .map(|o| OrderText::from_record(o).unwrap())
        .collect();
    // As the gateway does once the broker confirmed: the message is now their only carrier.
    let keys = ActivityKeys::new(&activity);
    let published: Vec<(&ActivityKeys, OrderId)> =
        orders.iter().map(|o| (&keys, o.order_id)).collect();
    ledger.mark_published(&published).await.unwrap();

    // What the gateway would send (`order_messages`), with a bad line slipped in.
    let body = format!(
        "{}\nnot an order\n{}\n{}",
        texts[0].json, texts[1].json, texts[2].json
    );
    let message = seckill_messages::Message::builder()
        .topic(seckill_messages::ORDER_TOPIC)
        .tags(activity.as_str())
        .keys(orders.iter().map(|o| o.order_id.0.to_string()).collect())
        .body(body.into_bytes())
        .build_unchecked();
    let runtime = MqRuntime::start("test-packed").unwrap();
    let producer = seckill_messages::producer(
        &runtime,
        &unique("packed_producer"),
        &mq.namesrv,
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    seckill_messages::send_batch(&producer, vec![message], Duration::from_secs(3))
        .await
        .unwrap();

    // Adoption (`adopt.rs`) would persist such orders from the ledger in the end; put it past
    // the test, so the rows can only come from the message.
    let mut config = writer_config(&redis.url, &database, &mq.namesrv, &[&activity]);
    config.timing.adopt_after = Duration::from_secs(3600);
    let writer = seckill_order_writer::Writer::start(&config).await.unwrap();
    assert_eq!(wait_for_rows(&store, activity.as_str(), 3, DRAIN).await, 3);
    let deadline = tokio::time::Instant::now() + DRAIN;
    let parked = loop {
        let parked = store.parked(10).await.unwrap();
        if !parked.is_empty() || tokio::time::Instant::now() > deadline {
            break parked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].reason, "undecodable");
    // The message's tag names its activity, so an operator looking at this sale finds it.
    assert_eq!(parked[0].activity_id.as_deref(), Some(activity.as_str()));
    assert!(
        parked[0].detail.starts_with("line 2:"),
        "{}",
        parked[0].detail
    );
    assert!(parked[0].body.contains(&texts[2].json));
    // Each order is mirrored `pending_payment` like any other, and the ledger agrees.
    assert_verified_within(&activity, &redis.url, &database, &mq.namesrv, DRAIN).await;
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redelivered_and_duplicated_orders_make_one_row_each_and_check_back_reads_the_database() {
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("dup", 10, 1).await;
    let orders = won_in_ledger(&ledger, &activity, &["d1", "d2", "d3"]).await;

    // The same batch persisted three times through the real transactional path: one row each.
    let (_runtime, persister) = persister_on(&mq.namesrv, &store).await;
    // Only the first time announces the orders (ORDER_CREATED); repeats announce nothing.
    let ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
    for time in 0..3 {
        let announced = persist_and_mirror(&persister, &ledger, None, orders.clone(), time > 0)
            .await
            .unwrap();
        assert_eq!(
            announced.announced,
            if time == 0 { ids.clone() } else { Vec::new() }
        );
    }
    // A batch that repeats an order inside itself, too.
    let announced = persist_and_mirror(
        &persister,
        &ledger,
        None,
        vec![orders[0].clone(), orders[0].clone()],
        true,
    )
    .await
    .unwrap();
    assert!(announced.announced.is_empty());
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.values().all(|r| r.items == 1));
    assert!(store
        .insert_orders(&orders, OrderStatus::PendingPayment)
        .await
        .unwrap()
        .is_empty());

    // Check-back: committed orders commit, absent ones roll back.
    let check = LocalTransaction::new(store.clone(), tokio::runtime::Handle::current());
    let event = |orders: Vec<seckill_ledger::OrderRecord>| {
        serde_json::to_vec(&OrderEvent {
            event: ORDER_CREATED.to_owned(),
            orders,
        })
        .unwrap()
    };
    let present = event(orders.clone());
    let mut ghost = orders[0].clone();
    ghost.order_id = seckill_ledger::OrderId(ghost.order_id.0 + 1_000_000);
    let absent = event(vec![ghost]);
    let (committed, rolled_back) =
        tokio::task::spawn_blocking(move || (check.check(&present), check.check(&absent)))
            .await
            .unwrap();
    assert_eq!(committed, LocalTransactionState::CommitMessage);
    assert_eq!(rolled_back, LocalTransactionState::RollbackMessage);
    assert_verified(&seckillctl(
        &["verify", activity.as_str()],
        &redis.url,
        &database,
        &mq.namesrv,
    ));
}

/// A merged persist can hold more orders than one `ORDER_CREATED` event may announce (the
/// event's keys are its order ids, and the broker refuses a message whose properties pass
/// 32 KiB): it is persisted as several events, every order announced once, and its payment
/// timeouts scheduled as several timers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_bigger_than_one_event_is_persisted_as_several() {
    const ORDERS: usize = 2 * seckill_messages::MAX_KEYED_ORDERS + 1;
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("big", ORDERS as i64, 1).await;
    let users: Vec<String> = (0..ORDERS).map(|i| format!("big{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let orders = won_in_ledger(&ledger, &activity, &users).await;

    let (_runtime, persister) = persister_on(&mq.namesrv, &store).await;
    let persisted = persist_and_mirror(&persister, &ledger, None, orders.clone(), false)
        .await
        .unwrap();
    // Their payment timeouts too: the broker takes a timer for every order (one message per
    // 1,024, their ids its keys).
    let (_lifecycle_runtime, lifecycle) =
        lifecycle_on(&mq.namesrv, &store, &ledger, Duration::from_secs(600)).await;
    assert_eq!(lifecycle.schedule_timeouts(&orders).await, ORDERS);
    let mut announced = persisted.announced;
    announced.sort();
    let mut ids: Vec<OrderId> = orders.iter().map(|o| o.order_id).collect();
    ids.sort();
    assert_eq!(announced, ids);
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    assert_eq!(rows.len(), ORDERS);
    assert_verified(&seckillctl(
        &["verify", activity.as_str()],
        &redis.url,
        &database,
        &mq.namesrv,
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_one_buyers_second_live_order_is_parked_and_its_stock_given_back() {
    let Stack {
        mq,
        redis: _redis,
        database: _,
        store,
        ledger,
        activity,
    } = Stack::start("twice", 10, 1).await;
    let keys = ActivityKeys::new(&activity);
    let ids = leased_ids(&ledger).await;
    let won = |outcome| match outcome {
        seckill_ledger::ledger::DeductOutcome::Won { record, .. } => record.decode().unwrap(),
        other => panic!("expected a win, got {other:?}"),
    };
    let (_runtime, persister) = persister_on(&mq.namesrv, &store).await;
    let first = won(buy(&ledger, &keys, &ids, "twice", 1).await);
    let persisted = persist_and_mirror(&persister, &ledger, None, vec![first.clone()], false)
        .await
        .unwrap();
    assert_eq!(persisted.announced, vec![first.order_id]);

    // The ledger forgets the buyer (as after Redis lost its last second): they win again.
    let _: i64 = redis::cmd("HDEL")
        .arg(&keys.buyers)
        .arg("twice")
        .query_async(&mut ledger.connection())
        .await
        .unwrap();
    let second = won(buy(&ledger, &keys, &ids, "twice", 1).await);
    let other = won(buy(&ledger, &keys, &ids, "other", 1).await);
    assert_eq!(ledger.stock_left(&keys).await.unwrap(), 7);

    // The batch persists the other buyer's order; the second live order is parked, not
    // swallowed, and its unit goes back on sale.
    let persisted = persist_and_mirror(
        &persister,
        &ledger,
        None,
        vec![second.clone(), other.clone()],
        false,
    )
    .await
    .unwrap();
    assert_eq!(persisted.announced, vec![other.order_id]);
    assert_eq!(
        persisted.parked,
        vec![OrderRecord {
            status: OrderStatus::PendingPayment,
            ..second.clone()
        }]
    );
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    assert_eq!(
        rows.keys().copied().collect::<HashSet<_>>(),
        HashSet::from([first.order_id, other.order_id])
    );
    let parked = store.parked(100).await.unwrap();
    let row = parked
        .iter()
        .find(|p| p.order_id == Some(second.order_id))
        .expect("the second order is parked");
    assert_eq!(
        (row.reason.as_str(), row.activity_id.as_deref()),
        ("duplicate_buyer", Some(activity.as_str()))
    );
    assert_eq!(
        ledger.stock_left(&keys).await.unwrap(),
        8,
        "its unit is back"
    );
    let record = ledger
        .order_in(&keys, second.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, OrderStatus::Cancelled);
    let mirrored = ledger
        .order_in(&keys, other.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mirrored.status, OrderStatus::PendingPayment);

    // Redelivered: parked once, given back once.
    let again = persist_and_mirror(&persister, &ledger, None, vec![second.clone()], true)
        .await
        .unwrap();
    assert!(again.announced.is_empty());
    assert_eq!(ledger.stock_left(&keys).await.unwrap(), 8);
    let parked_again = store.parked(100).await.unwrap();
    assert_eq!(
        parked_again
            .iter()
            .filter(|p| p.order_id == Some(second.order_id))
            .count(),
        1
    );

    // The buyer's first order is cancelled; the parked one arrives yet again (a relay's
    // republication, a first delivery): it no longer conflicts, and must still not become a row.
    store
        .transition(
            first.order_id,
            &[OrderStatus::PendingPayment],
            OrderStatus::Cancelled,
        )
        .await
        .unwrap();
    ledger
        .release(&keys, first.order_id, OrderStatus::Cancelled)
        .await
        .unwrap();
    let third = persist_and_mirror(&persister, &ledger, None, vec![second.clone()], false)
        .await
        .unwrap();
    assert!(third.announced.is_empty());
    assert!(!store
        .activity_orders(activity.as_str())
        .await
        .unwrap()
        .contains_key(&second.order_id));
    assert_eq!(ledger.stock_left(&keys).await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_of_one_group_never_split_it_by_different_activities() {
    let Stack {
        mq,
        redis,
        database,
        store: _,
        ledger: _,
        activity,
    } = Stack::start("groups", 5, 1).await;
    let config = writer_config(&redis.url, &database, &mq.namesrv, &[&activity]);
    let first = seckill_order_writer::Writer::start(&config).await.unwrap();
    // Another list in the same group would acknowledge, unpersisted, this activity's orders.
    let mut other = config.clone();
    other.activities = vec![fresh_id("elsewhere").to_string()];
    let refused = seckill_order_writer::Writer::start(&other)
        .await
        .err()
        .expect("a writer with another list is refused");
    assert!(refused.to_string().contains("runs with"), "{refused}");
    let mut everything = config.clone();
    everything.activities.clear();
    assert!(seckill_order_writer::Writer::start(&everything)
        .await
        .is_err());
    // The same list joins the group.
    let second = seckill_order_writer::Writer::start(&config).await.unwrap();
    second.shutdown().await;
    first.shutdown().await;
    // Every writer of the group stopped gracefully: the group may run another list at once.
    let next = seckill_order_writer::Writer::start(&other).await.unwrap();
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_killed_mid_stream_then_restarted_persists_every_order_exactly_once() {
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger: _,
        activity,
    } = Stack::start("kill", 400, 1).await;
    // The same settings (group, start time) for the writer and its restart.
    let settings = writer_settings(&redis.url, &database, &mq.namesrv, &[&activity]);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let writer = WriterProcess::spawn(&settings);
    let gw = GatewayProcess::start(&redis.url, &[("SECKILL_ROCKETMQ_NAMESRV", &mq.namesrv)]).await;

    // A stream of orders: waves of buyers while the writer works.
    let mut won = Vec::new();
    for wave in 0..4 {
        won.extend(crowd(&gw, &activity, &format!("k{wave}x"), 50).await);
    }
    // Kill it in the middle of the stream (once it has started persisting, if it has yet).
    wait_for_rows(&store, activity.as_str(), 1, DRAIN).await;
    writer.kill();
    let mut after_kill = Vec::new();
    for wave in 4..8 {
        after_kill.extend(crowd(&gw, &activity, &format!("k{wave}x"), 50).await);
    }
    assert_eq!(won.len() + after_kill.len(), 400);
    // It was killed mid-stream: it had persisted some orders, and the orders won after the kill
    // wait for the restart (`kill` checked that the writer died of SIGKILL).
    let before_restart = store.activity_orders(activity.as_str()).await.unwrap();
    assert!(!before_restart.is_empty());
    let stranded = after_kill
        .iter()
        .filter(|id| before_restart.keys().any(|row| row.to_string() == **id))
        .count();
    assert_eq!(stranded, 0, "orders won after the kill were persisted");

    let _writer = WriterProcess::spawn(&settings);
    assert_eq!(
        wait_for_rows(&store, activity.as_str(), 400, DRAIN).await,
        400
    );
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    let ids: HashSet<String> = rows.keys().map(|id| id.to_string()).collect();
    assert_eq!(ids.len(), 400);
    won.extend(after_kill);
    assert_eq!(ids, won.into_iter().collect::<HashSet<_>>());
    assert_verified_within(&activity, &redis.url, &database, &mq.namesrv, DRAIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_stopped_while_answering_at_the_broker_then_restarted_loses_nothing() {
    let (
        Sale {
            mut mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        },
        writer,
    ) = gateway_sale_with_writer("broker", 60, 1, &[("SECKILL_CONFIRM", "broker")], |_| {}).await;

    let before = crowd(&gw, &activity, "pre", 20).await;
    assert_eq!(before.len(), 20, "broker up: every winner confirmed");

    mq.stop_broker().await;
    // The broker is down: winners cannot be confirmed; they get 503 within a bounded time, and
    // their orders wait in the outbox.
    let started = std::time::Instant::now();
    let mut unconfirmed = 0;
    for i in 0..20 {
        let reply = gw.attempt(&activity, &format!("down{i}")).await;
        match reply.status {
            StatusCode::ACCEPTED => {}
            StatusCode::SERVICE_UNAVAILABLE => unconfirmed += 1,
            other => panic!("unexpected {other}: {}", reply.text),
        }
        let again = gw.attempt(&activity, &format!("down{i}")).await;
        assert_eq!(
            again.status,
            StatusCode::OK,
            "the retry finds the order: {}",
            again.text
        );
    }
    assert!(
        unconfirmed > 0,
        "with the broker down, sends cannot be confirmed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20 * 2 * 4),
        "answers were bounded in time"
    );
    let audit = ledger
        .audit(&ActivityKeys::new(&activity))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.orders, 40);
    assert!(
        audit.outbox >= unconfirmed,
        "unconfirmed orders wait in the outbox"
    );

    mq.start_broker().await;
    // The relay republishes the outbox; the writer persists everything.
    assert_eq!(
        wait_for_rows(&store, activity.as_str(), 40, DRAIN).await,
        40
    );
    assert_verified_within(&activity, &redis.url, &database, &mq.namesrv, DRAIN).await;
    writer.shutdown().await;
}

/// The default (`SECKILL_CONFIRM=ledger`): a winner is answered at the ledger's commit, so a
/// broker that is down costs buyers nothing; its orders wait in the outbox and reach the database
/// once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_stopped_while_answering_at_the_ledger_then_restarted_loses_nothing() {
    let (
        Sale {
            mut mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        },
        writer,
    ) = sale_with_writer("ledger", 60, 1, |_| {}).await;

    let before = crowd(&gw, &activity, "pre", 20).await;
    assert_eq!(before.len(), 20);
    mq.stop_broker().await;
    let during = crowd(&gw, &activity, "down", 20).await;
    assert_eq!(
        during.len(),
        20,
        "every winner answered 202 with the broker down"
    );
    // Each buyer's retry finds their order, and so does the owner's look-up by id.
    for i in 0..20 {
        let buyer = format!("down{i}");
        let again = gw.attempt(&activity, &buyer).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        let order = again.json["order_id"].as_str().unwrap();
        assert!(during.iter().any(|won| won == order));
        let view = gw
            .get(&format!("/v1/orders/{order}"), Some(&token_for(&buyer)))
            .await;
        assert_eq!(view.json["status"], "queued", "{}", view.text);
    }
    let audit = ledger
        .audit(&ActivityKeys::new(&activity))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.orders, 40);
    assert!(
        audit.outbox >= 20,
        "unsent orders wait in the outbox: {audit:?}"
    );

    mq.start_broker().await;
    assert_eq!(
        wait_for_rows(&store, activity.as_str(), 40, DRAIN).await,
        40
    );
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    let ids: HashSet<String> = rows.keys().map(|id| id.to_string()).collect();
    assert_eq!(
        ids,
        before.into_iter().chain(during).collect::<HashSet<_>>()
    );
    assert_verified_within(&activity, &redis.url, &database, &mq.namesrv, DRAIN).await;
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_republishes_what_the_database_lacks() {
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("reconcile", 10, 1).await;
    let keys = ActivityKeys::new(&activity);
    let ids = leased_ids(&ledger).await;
    // Orders won in the ledger but never published (a gateway that died right after the deduct).
    for user in ["r1", "r2", "r3", "r4"] {
        buy(&ledger, &keys, &ids, user, 1).await;
    }
    let writer = start_writer(&redis.url, &database, &mq.namesrv, &[&activity]).await;
    let out = seckillctl(
        &["verify", activity.as_str()],
        &redis.url,
        &database,
        &mq.namesrv,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL every_order_persisted"));

    let out = seckillctl(
        &["reconcile", activity.as_str()],
        &redis.url,
        &database,
        &mq.namesrv,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 missing from the database, 4 republished")
    );
    assert_eq!(wait_for_rows(&store, activity.as_str(), 4, DRAIN).await, 4);
    // The orders stay in the outbox (nobody confirmed their original publish): verify reports
    // them but they are persisted, once their status is mirrored.
    assert_verified_within(&activity, &redis.url, &database, &mq.namesrv, DRAIN).await;
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn won_orders_whose_messages_are_gone_are_adopted_by_the_sweeper() {
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("adopt", 5, 1).await;
    let keys = ActivityKeys::new(&activity);
    // Three wins whose messages the broker confirmed and then lost (as a broker that died
    // unread does): out of the outbox, in no topic.
    let won: Vec<OrderId> = won_in_ledger(&ledger, &activity, &["a", "b", "c"])
        .await
        .iter()
        .map(|o| o.order_id)
        .collect();
    let published: Vec<(&ActivityKeys, OrderId)> = won.iter().map(|o| (&keys, *o)).collect();
    ledger.mark_published(&published).await.unwrap();

    let mut config = writer_config(&redis.url, &database, &mq.namesrv, &[&activity]);
    config.timing = config
        .timing
        .clone()
        .with_sweep_every(Duration::from_secs(1));
    config.timing.adopt_after = Duration::from_secs(1);
    let writer = seckill_order_writer::Writer::start(&config).await.unwrap();

    assert_eq!(
        wait_for_rows(&store, activity.as_str(), won.len(), DRAIN).await,
        won.len()
    );
    let rows = store.activity_orders(activity.as_str()).await.unwrap();
    let persisted: HashSet<OrderId> = rows.keys().copied().collect();
    assert_eq!(persisted, won.iter().copied().collect::<HashSet<_>>());
    assert!(rows.values().all(|r| r.status == "pending_payment"));
    assert_verified_within(&activity, &redis.url, &database, &mq.namesrv, DRAIN).await;
    for order in &won {
        assert_eq!(
            ledger
                .order_in(&keys, *order)
                .await
                .unwrap()
                .unwrap()
                .status,
            OrderStatus::PendingPayment
        );
    }
    writer.shutdown().await;
}
