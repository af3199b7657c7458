//! The order lifecycle with real services: payment, payment timeout, cancellation, sweep,
//! refund. Each test has its own database, writer group, activities, and short payment window.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use seckill_auth::SignatureKey;
use seckill_ledger::{ActivityId, ActivityKeys, Ledger, OrderId, OrderStatus};
use seckill_lifecycle::Lifecycle;
use seckill_messages::MqRuntime;
use seckill_order_writer::config::WriterConfig;
use seckill_order_writer::timing::Timing;
use seckill_order_writer::Writer;
use seckill_store::Store;

const WAIT: Duration = Duration::from_secs(90);

async fn writer_with_window(
    redis: &str,
    database: &str,
    namesrv: &str,
    activities: &[&ActivityId],
    window: Duration,
    sweep: Duration,
) -> Writer {
    let mut config = writer_config(redis, database, namesrv, activities);
    config.timing = Timing {
        payment_window: window,
        ..config.timing
    }
    .with_sweep_every(sweep);
    Writer::start(&config).await.unwrap()
}

/// A writer setting: this payment window, and a sweep rare enough not to take part.
fn payment_window(secs: u64) -> impl FnOnce(&mut WriterConfig) {
    move |config| {
        config.timing = Timing {
            payment_window: Duration::from_secs(secs),
            ..config.timing.clone()
        }
        .with_sweep_every(Duration::from_secs(60));
    }
}

fn signed(body: &str, secret: &str) -> String {
    SignatureKey::new(secret.as_bytes()).sign(body.as_bytes())
}

async fn notify(
    gw: &Http,
    order_id: &str,
    payment_id: &str,
    amount: impl std::fmt::Display,
    secret: &str,
) -> Reply {
    let body = format!(
        r#"{{"order_id":"{order_id}","payment_id":"{payment_id}","amount_cents":{amount}}}"#
    );
    let signature = signed(&body, secret);
    gw.send_with(
        Method::POST,
        "/v1/payments/notify",
        &[("x-signature", &signature)],
        body.as_bytes(),
    )
    .await
}

/// Polls the ledger until `order` has `status` (bounded).
async fn ledger_status_becomes(ledger: &Ledger, order: OrderId, status: OrderStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = ledger.order(order).await.unwrap().map(|o| o.status);
        if current == Some(status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order}: {current:?}, expected {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn db_status(store: &Store, order: OrderId) -> Option<OrderStatus> {
    store.status(order).await.unwrap().map(|(_, s)| s)
}

fn verify(activity: &ActivityId, redis: &str, database: &str) -> std::process::Output {
    std::process::Command::new(binary("seckillctl"))
        .args(["verify", activity.as_str()])
        .env("SECKILL_REDIS_URL", redis)
        .env("SECKILL_DATABASE_URL", database)
        .output()
        .unwrap()
}

#[track_caller]
fn assert_clean(output: &std::process::Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

async fn won(gw: &Http, activity: &ActivityId, user: &str) -> OrderId {
    let reply = gw.attempt(activity, user).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    OrderId::parse(reply.json["order_id"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpaid_order_is_cancelled_after_the_window_and_its_stock_sold_again() {
    let (
        Sale {
            mq: _mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        },
        writer,
    ) = sale_with_writer("timeout", 1, 1, payment_window(4)).await;

    let first = won(&gw, &activity, "slowpoke").await;
    assert_eq!(gw.attempt(&activity, "eager").await.error(), "sold_out");
    ledger_status_becomes(&ledger, first, OrderStatus::Cancelled).await;
    // The stock is back and every gateway has cleared its sold-out flag.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        let reply = gw.attempt(&activity, "eager").await;
        if reply.status == StatusCode::ACCEPTED {
            break OrderId::parse(reply.json["order_id"].as_str().unwrap()).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stock never came back: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ledger_status_becomes(&ledger, second, OrderStatus::PendingPayment).await;
    assert_eq!(db_status(&store, first).await, Some(OrderStatus::Cancelled));
    let view = gw
        .get(&format!("/v1/orders/{first}"), Some(&token_for("slowpoke")))
        .await;
    assert_eq!(view.json["status"], "cancelled");
    assert_clean(&verify(&activity, &redis.url, &database));
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_before_the_window_closes_wins_and_a_late_one_is_refunded_never_both() {
    let (
        Sale {
            mq: _mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        },
        writer,
    ) = sale_with_writer("race", 3, 1, payment_window(6)).await;
    let keys = ActivityKeys::new(&activity);

    // The window runs from the win: start the clock only once this fresh writer's consumers
    // (orders, payments) are live; a first rebalance can take longer than the window.
    let warm_up = won(&gw, &activity, "warmup").await;
    ledger_status_becomes(&ledger, warm_up, OrderStatus::PendingPayment).await;
    let reply = notify(
        &gw,
        &warm_up.to_string(),
        "pay-warm-up",
        4999,
        PAYMENT_SECRET,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    ledger_status_becomes(&ledger, warm_up, OrderStatus::Paid).await;

    // Paid inside the window: the timeout that fires later finds it paid and does nothing.
    let paid = won(&gw, &activity, "payer").await;
    ledger_status_becomes(&ledger, paid, OrderStatus::PendingPayment).await;
    let reply = notify(&gw, &paid.to_string(), "pay-in-time", 4999, PAYMENT_SECRET).await;
    assert_eq!(
        (reply.status, reply.json["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{}",
        reply.text
    );
    ledger_status_becomes(&ledger, paid, OrderStatus::Paid).await;

    // Not paid in time: cancelled first, then the money arrives and goes back (refunding).
    let late = won(&gw, &activity, "latecomer").await;
    ledger_status_becomes(&ledger, late, OrderStatus::Cancelled).await;
    let reply = notify(&gw, &late.to_string(), "pay-too-late", 4999, PAYMENT_SECRET).await;
    assert_eq!(reply.status, StatusCode::OK);
    ledger_status_becomes(&ledger, late, OrderStatus::Refunding).await;

    // The late order was won after the paid one, so its timeout (now handled: it was
    // cancelled) was due after the paid one's: both windows are over, and the paid order
    // stayed paid.
    assert_eq!(db_status(&store, paid).await, Some(OrderStatus::Paid));
    assert_eq!(db_status(&store, late).await, Some(OrderStatus::Refunding));
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (audit.sold, audit.reserved, audit.stock),
        (2, 0, 1),
        "two sold (warm-up, paid in time), the late one's unit back on sale"
    );
    assert_eq!(store.payments(paid).await.unwrap().len(), 1);
    assert_eq!(store.payments(late).await.unwrap().len(), 1);
    assert_clean(&verify(&activity, &redis.url, &database));
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_follow_up_is_dropped_a_second_payment_is_refunded_a_reused_payment_id_parked() {
    let Stack {
        mut mq,
        redis: _redis,
        database: _,
        store,
        ledger,
        activity,
    } = Stack::start("settle", 5, 1).await;
    let keys = ActivityKeys::new(&activity);
    let orders = persisted_wins(&ledger, &store, &activity, &["s1", "s2", "s3"]).await;
    let (a, b, c) = (orders[0].order_id, orders[1].order_id, orders[2].order_id);
    let (_runtime, lifecycle) =
        lifecycle_on(&mq.namesrv, &store, &ledger, Duration::from_secs(1800)).await;
    let payment = |order: OrderId, id: &str| seckill_messages::Payment {
        order_id: order,
        payment_id: id.to_owned(),
        amount_cents: orders[0].amount_cents,
    };

    // Paid, then paid again with another payment: the second is kept and its refund announced.
    assert_eq!(
        lifecycle.pay(&payment(a, "p1")).await.unwrap(),
        OrderStatus::Paid
    );
    assert_eq!(
        lifecycle.pay(&payment(a, "p2")).await.unwrap(),
        OrderStatus::Paid
    );
    assert_eq!(store.payments(a).await.unwrap().len(), 2);
    assert!(store
        .pending_refunds(Duration::ZERO, 10)
        .await
        .unwrap()
        .is_empty());

    // A payment id already recorded for order a, now for order b: parked, b untouched.
    assert_eq!(
        lifecycle.pay(&payment(b, "p1")).await.unwrap(),
        OrderStatus::PendingPayment
    );
    assert!(store.payments(b).await.unwrap().is_empty());
    let parked = store.parked(10).await.unwrap();
    assert!(
        parked
            .iter()
            .any(|p| p.reason == "payment_id_reused" && p.order_id == Some(b)),
        "{parked:?}"
    );

    // The broker is down: the cancel commits and gives the stock back, but its event cannot
    // go out — the step fails (it was logged and dropped before) and the row stays unsettled.
    mq.stop_broker().await;
    assert!(lifecycle.cancel(c).await.is_err());
    assert_eq!(
        store.status(c).await.unwrap().map(|(_, s)| s),
        Some(OrderStatus::Cancelled)
    );
    let unsettled = store.unsettled(Duration::ZERO, 10).await.unwrap();
    assert_eq!(
        unsettled.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        vec![c]
    );
    // Back up: the sweep completes it (the release again, idempotent; the event).
    mq.start_broker().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let swept = lifecycle.sweep(100).await;
        let left = store.unsettled(Duration::ZERO, 10).await.unwrap();
        if swept.is_ok() && left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {swept:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!((audit.sold, audit.reserved, audit.stock), (1, 1, 3));

    // b's window ends with a payment notice whose id belongs to a: it cannot be applied, so b
    // is cancelled like any unpaid order (it used to stay pending for ever).
    ledger
        .note_payment(
            &keys,
            &seckill_ledger::ledger::PaymentNotice {
                order_id: b,
                payment_id: "p1".to_owned(),
                amount_cents: orders[0].amount_cents,
                accepted_at: seckill_service::now_ms(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        lifecycle.expire(b).await.unwrap(),
        seckill_lifecycle::CancelOutcome::Cancelled
    );
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!((audit.sold, audit.reserved, audit.stock), (1, 0, 4));
    lifecycle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transition_never_discards_the_stock_step_of_the_one_before() {
    let Stack {
        mq,
        redis: _redis,
        database: _,
        store,
        ledger,
        activity,
    } = Stack::start("unsettled", 3, 1).await;
    let keys = ActivityKeys::new(&activity);
    let order = persisted_wins(&ledger, &store, &activity, &["late-payer"])
        .await
        .remove(0);
    // A cancel committed whose release never ran (the writer died, or Redis failed, right after
    // the commit): the row is cancelled and unsettled, the ledger still holds the unit.
    store
        .transition(
            order.order_id,
            &[OrderStatus::PendingPayment],
            OrderStatus::Cancelled,
        )
        .await
        .unwrap();
    assert_eq!(ledger.audit(&keys).await.unwrap().unwrap().reserved, 1);

    // The payment arrives (after the cancellation: refunding). Its transition first completes
    // the cancel's release — otherwise the unit would stay reserved for ever.
    let (_runtime, lifecycle) =
        lifecycle_on(&mq.namesrv, &store, &ledger, Duration::from_secs(1800)).await;
    let status = lifecycle
        .pay(&seckill_messages::Payment {
            order_id: order.order_id,
            payment_id: "late".to_owned(),
            amount_cents: order.amount_cents,
        })
        .await
        .unwrap();
    assert_eq!(status, OrderStatus::Refunding);
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (audit.stock, audit.reserved, audit.sold),
        (3, 0, 0),
        "the unit is back"
    );
    assert_eq!(
        ledger
            .order_in(&keys, order.order_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OrderStatus::Refunding
    );
    assert!(store
        .unsettled(Duration::ZERO, 10)
        .await
        .unwrap()
        .is_empty());
    lifecycle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_notified_in_time_wins_over_the_timeout_while_its_message_waits() {
    // No writer consumes: the accepted payment's message waits in the broker, as it does
    // while PostgreSQL is down and every delivery fails.
    let Sale {
        mq,
        redis,
        database,
        ledger,
        activity,
        gw,
        store,
    } = Sale::start("intime", 3, 1).await;
    let order = won(&gw, &activity, "payer").await;
    let record = ledger.order(order).await.unwrap().unwrap();
    store
        .insert_orders(std::slice::from_ref(&record), OrderStatus::PendingPayment)
        .await
        .unwrap();
    ledger
        .mirror(
            &ActivityKeys::new(&activity),
            &[order],
            OrderStatus::PendingPayment,
            OrderStatus::Queued,
        )
        .await
        .unwrap();
    let reply = notify(
        &gw,
        &order.to_string(),
        "pay-in-time",
        record.amount_cents,
        PAYMENT_SECRET,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The window (1 s) ends; the database is back; the sweep runs before the payment's
    // redelivery: the payment wins, the order is paid, not cancelled then refunded.
    let (_runtime, lifecycle) =
        lifecycle_on(&mq.namesrv, &store, &ledger, Duration::from_secs(1)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while store
        .overdue(Duration::from_secs(1), 10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never overdue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lifecycle.sweep(10).await.unwrap();
    assert_eq!(db_status(&store, order).await, Some(OrderStatus::Paid));
    let payments = store.payments(order).await.unwrap();
    assert_eq!(
        payments
            .iter()
            .map(|p| p.payment_id.as_str())
            .collect::<Vec<_>>(),
        ["pay-in-time"]
    );
    ledger_status_becomes(&ledger, order, OrderStatus::Paid).await;
    // The timer's own cancel, arriving later, changes nothing.
    assert_eq!(
        lifecycle.expire(order).await.unwrap(),
        seckill_lifecycle::CancelOutcome::NotCancellable(OrderStatus::Paid)
    );
    assert_clean(&verify(&activity, &redis.url, &database));
    lifecycle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_duplicate_mismatched_and_unknown_notifications() {
    let (
        Sale {
            mq: _mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store,
        },
        writer,
    ) = sale_with_writer("notify", 5, 1, payment_window(1800)).await;
    let order = won(&gw, &activity, "buyer").await;
    ledger_status_becomes(&ledger, order, OrderStatus::PendingPayment).await;

    let forged = notify(
        &gw,
        &order.to_string(),
        "p-forged",
        4999,
        "not-the-payment-secret-at-all",
    )
    .await;
    assert_eq!(
        (forged.status, forged.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );
    let unsigned = gw
        .send_with(
            Method::POST,
            "/v1/payments/notify",
            &[],
            br#"{"order_id":"1","payment_id":"x","amount_cents":1}"#,
        )
        .await;
    assert_eq!(unsigned.error(), "bad_signature");
    let mismatch = notify(&gw, &order.to_string(), "p-wrong", 1, PAYMENT_SECRET).await;
    assert_eq!(
        (mismatch.status, mismatch.error()),
        (StatusCode::CONFLICT, "amount_mismatch")
    );
    let unknown = notify(&gw, "424242", "p-unknown", 4999, PAYMENT_SECRET).await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (StatusCode::NOT_FOUND, "order_not_found")
    );
    let garbage = gw
        .send_with(
            Method::POST,
            "/v1/payments/notify",
            &[("x-signature", &signed("{", PAYMENT_SECRET))],
            b"{",
        )
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    // None of that reached the writer. Nothing to wait for can show an absence: give a stray
    // message a bounded chance to arrive (the real payment below is then the only one).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(store.payments(order).await.unwrap().is_empty());
    assert_eq!(
        db_status(&store, order).await,
        Some(OrderStatus::PendingPayment)
    );

    // `4999.0` is the integer 4999 to JSON Schema (schemathesis sent one; it was a 400).
    for amount in ["4999", "4999.0", "4999"] {
        let reply = notify(&gw, &order.to_string(), "p-real", amount, PAYMENT_SECRET).await;
        assert_eq!(
            (reply.status, reply.json["status"].as_str()),
            (StatusCode::OK, Some("accepted"))
        );
    }
    ledger_status_becomes(&ledger, order, OrderStatus::Paid).await;
    // The two repeats change nothing observable: a bounded window for them to be handled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store.payments(order).await.unwrap().len(),
        1,
        "a repeated notification is a no-op"
    );
    let audit = ledger
        .audit(&ActivityKeys::new(&activity))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((audit.sold, audit.reserved), (1, 0));
    assert_clean(&verify(&activity, &redis.url, &database));
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_cancels_an_unpaid_order_but_not_a_paid_one_and_operators_refund() {
    let (
        Sale {
            mq,
            redis,
            database,
            ledger,
            activity,
            gw,
            store: _,
        },
        writer,
    ) = sale_with_writer("owner", 3, 1, payment_window(1800)).await;

    let mine = won(&gw, &activity, "owner1").await;
    // The owner cancels the order once it shows as pending_payment (a cancel that reaches the
    // writer before the order does is retried for ~3 s, then with the broker's back-off).
    ledger_status_becomes(&ledger, mine, OrderStatus::PendingPayment).await;
    let path = format!("/v1/orders/{mine}");
    let stranger = gw
        .send(Method::DELETE, &path, Some(&token_for("stranger")), b"")
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let cancel = gw
        .send(Method::DELETE, &path, Some(&token_for("owner1")), b"")
        .await;
    assert_eq!(
        (cancel.status, cancel.json["status"].as_str()),
        (StatusCode::ACCEPTED, Some("cancelling")),
        "{}",
        cancel.text
    );
    ledger_status_becomes(&ledger, mine, OrderStatus::Cancelled).await;
    let again = gw
        .send(Method::DELETE, &path, Some(&token_for("owner1")), b"")
        .await;
    assert_eq!(
        (again.status, again.json["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(
        ledger
            .stock_left(&ActivityKeys::new(&activity))
            .await
            .unwrap(),
        3
    );

    let paid = won(&gw, &activity, "owner2").await;
    ledger_status_becomes(&ledger, paid, OrderStatus::PendingPayment).await;
    assert_eq!(
        notify(&gw, &paid.to_string(), "p-owner2", 4999, PAYMENT_SECRET)
            .await
            .status,
        StatusCode::OK
    );
    ledger_status_becomes(&ledger, paid, OrderStatus::Paid).await;
    let refused = gw
        .send(
            Method::DELETE,
            &format!("/v1/orders/{paid}"),
            Some(&token_for("owner2")),
            b"",
        )
        .await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::CONFLICT, "not_cancellable")
    );

    let ctl = |args: &[&str]| {
        std::process::Command::new(binary("seckillctl"))
            .args(args)
            .env("SECKILL_REDIS_URL", &redis.url)
            .env("SECKILL_DATABASE_URL", &database)
            .env("SECKILL_ROCKETMQ_NAMESRV", &mq.namesrv)
            .output()
            .unwrap()
    };
    let show = ctl(&["order", "show", &paid.to_string()]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success()
            && text.contains("paid (ledger), paid (database)")
            && text.contains("p-owner2"),
        "{text}"
    );
    let refund = ctl(&["order", "refund", &paid.to_string()]);
    assert!(
        refund.status.success(),
        "{}",
        String::from_utf8_lossy(&refund.stderr)
    );
    ledger_status_becomes(&ledger, paid, OrderStatus::Refunded).await;
    let twice = ctl(&["order", "refund", &mine.to_string()]);
    assert_eq!(
        twice.status.code(),
        Some(2),
        "a cancelled, unpaid order cannot be refunded"
    );
    assert_eq!(ctl(&["order", "show", "99"]).status.code(), Some(2));
    assert_clean(&verify(&activity, &redis.url, &database));
    writer.shutdown().await;
}

/// Orders persisted as the writer would, but whose timeout message never went out.
async fn overdue_orders(
    ledger: &Ledger,
    store: &Store,
    activity: &ActivityId,
    users: usize,
) -> Vec<OrderId> {
    let keys = ActivityKeys::new(activity);
    let ids = leased_ids(ledger).await;
    let mut orders = Vec::new();
    for i in 0..users {
        let user = seckill_ledger::UserId::parse(&format!("lost{i}")).unwrap();
        let attempt = seckill_ledger::ledger::Attempt {
            user: &user,
            quantity: 1,
            channel: "app",
        };
        let seckill_ledger::ledger::DeductOutcome::Won { record, .. } =
            ledger.deduct(&keys, attempt, &ids).await.unwrap()
        else {
            panic!()
        };
        orders.push(record.decode().unwrap());
    }
    store
        .insert_orders(&orders, OrderStatus::PendingPayment)
        .await
        .unwrap();
    for order in &orders {
        ledger
            .set_status(
                &keys,
                order.order_id,
                OrderStatus::PendingPayment,
                &[OrderStatus::Queued],
            )
            .await
            .unwrap();
    }
    orders.iter().map(|o| o.order_id).collect()
}

/// Waits until the database counts every one of `orders` as overdue for a 1 s window.
async fn wait_overdue(store: &Store, orders: &[OrderId]) {
    let all_overdue = eventually_async(WAIT, || async {
        let overdue = store.overdue(Duration::from_secs(1), 500).await.unwrap();
        orders.iter().all(|order| overdue.contains(order))
    })
    .await;
    assert!(all_overdue, "orders never became overdue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_cancels_orders_whose_timeout_was_lost() {
    // A stack of this test's own: no other test's traffic, no history to replay.
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("sweep", 5, 1).await;
    let lost = overdue_orders(&ledger, &store, &activity, 3).await;
    // A writer whose window (1 s) is over for these orders and that sweeps every second.
    wait_overdue(&store, &lost).await;
    let writer = writer_with_window(
        &redis.url,
        &database,
        &mq.namesrv,
        &[&activity],
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .await;
    for order in &lost {
        ledger_status_becomes(&ledger, *order, OrderStatus::Cancelled).await;
        assert_eq!(
            db_status(&store, *order).await,
            Some(OrderStatus::Cancelled)
        );
    }
    assert_eq!(
        ledger
            .stock_left(&ActivityKeys::new(&activity))
            .await
            .unwrap(),
        5
    );
    assert_clean(&verify(&activity, &redis.url, &database));
    writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_sweeping_at_once_cancel_each_order_once() {
    // A stack of this test's own: no other test's traffic, no history to replay.
    let Stack {
        mq,
        redis,
        database,
        store,
        ledger,
        activity,
    } = Stack::start("sweep2", 40, 1).await;
    let lost = overdue_orders(&ledger, &store, &activity, 30).await;
    wait_overdue(&store, &lost).await;

    // Two writers' lifecycles sweep the same database at the same moment.
    let runtime = MqRuntime::start("test-sweep").unwrap();
    let a = Lifecycle::start(
        &runtime,
        &mq.namesrv,
        store.clone(),
        ledger.clone(),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let b = Lifecycle::start(
        &runtime,
        &mq.namesrv,
        store.clone(),
        ledger.clone(),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let (ra, rb) = tokio::join!(a.sweep(500), b.sweep(500));
    assert_eq!(
        ra.unwrap() + rb.unwrap(),
        lost.len(),
        "each order cancelled exactly once"
    );
    let audit = ledger
        .audit(&ActivityKeys::new(&activity))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((audit.released, audit.stock, audit.reserved), (30, 40, 0));
    assert_clean(&verify(&activity, &redis.url, &database));

    // And the lease lets one writer of a group sweep at a time.
    let lease = seckill_order_writer::sweep::lease_key(&format!("{activity}-group"));
    assert!(ledger
        .hold_lease(&lease, "writer-a", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(!ledger
        .hold_lease(&lease, "writer-b", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(ledger
        .hold_lease(&lease, "writer-a", Duration::from_secs(5))
        .await
        .unwrap());
}
