//! Contract tests of every ledger script, against the real Redis at `SECKILL_REDIS_URL`
//! (default `redis://127.0.0.1:6379`). Each test works on its own activity ids.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use seckill_ledger::ledger::{
    Attempt, CloseOutcome, ConfirmOutcome, CreateOutcome, DeductOutcome, ReleaseOutcome,
    RestockOutcome,
};
use seckill_ledger::{ActivityId, ActivityKeys, Ledger, NewActivity, OrderId, OrderStatus, UserId};
use seckill_service::now_ms;
use seckill_testkit::{buy, fresh_id, leased_ids, ledger_at, open, redis_url, PrivateRedis};

async fn ledger() -> Ledger {
    ledger_at(&redis_url()).await
}

fn activity(
    id: &ActivityId,
    stock: i64,
    limit: u32,
    starts_in_ms: i64,
    ends_in_ms: i64,
) -> NewActivity {
    let now = now_ms();
    NewActivity {
        id: id.clone(),
        name: "test item".into(),
        price_cents: 1999,
        stock_total: stock,
        per_user_limit: limit,
        starts_at_ms: now + starts_in_ms,
        ends_at_ms: now + ends_in_ms,
    }
}

async fn open_activity(ledger: &Ledger, name: &str, stock: i64, limit: u32) -> ActivityKeys {
    let id = fresh_id(name);
    let created = ledger
        .create_activity(&activity(&id, stock, limit, -1_000, 3_600_000))
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created);
    ActivityKeys::new(&id)
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn attempt(user: &UserId, quantity: u32) -> Attempt<'_> {
    Attempt {
        user,
        quantity,
        channel: "app",
    }
}

async fn assert_balanced(ledger: &Ledger, keys: &ActivityKeys) {
    let audit = ledger.audit(keys).await.unwrap().expect("activity exists");
    assert_eq!(
        audit.stock + audit.reserved + audit.sold,
        audit.stock_total,
        "ledger unbalanced: {audit:?}"
    );
    assert!(audit.stock >= 0, "{audit:?}");
    assert!(audit.over_limit.is_empty(), "{audit:?}");
    assert_eq!(audit.units_held, audit.reserved + audit.sold, "{audit:?}");
    assert_eq!(
        audit.units_in_live_orders,
        audit.reserved + audit.sold,
        "{audit:?}"
    );
}

#[tokio::test]
async fn deduct_wins_records_the_order_its_outbox_entry_and_its_index() {
    let ledger = ledger().await;
    let keys = open_activity(&ledger, "win", 3, 1).await;
    let ids = leased_ids(&ledger).await;
    let alice = user("alice");
    let DeductOutcome::Won { record, stock_left } = ledger
        .deduct(&keys, attempt(&alice, 1), &ids)
        .await
        .unwrap()
    else {
        panic!("expected a win")
    };
    assert_eq!(stock_left, 2);
    let order_id = record.order_id;
    assert_eq!(record.activity_id, keys.id.as_str());
    assert_eq!(record.decode().unwrap().per_user_limit, 1);
    // The text handed back is the text stored: the message body is the ledger's bytes.
    let stored: String = redis::cmd("HGET")
        .arg(&keys.orders)
        .arg(order_id.to_string())
        .query_async(&mut ledger.connection())
        .await
        .unwrap();
    assert_eq!(stored, record.json);
    let order = ledger
        .order_in(&keys, order_id)
        .await
        .unwrap()
        .expect("order recorded");
    assert_eq!(order.user_id, "alice");
    assert_eq!(order.quantity, 1);
    assert_eq!(order.amount_cents, 1999);
    assert_eq!(order.status, OrderStatus::Queued);
    assert_eq!(order.activity_id, keys.id.as_str());
    // Findable by its id alone, by the same script call: no later write can be missed.
    assert_eq!(ledger.order(order_id).await.unwrap(), Some(order));
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (audit.stock, audit.reserved, audit.outbox, audit.orders),
        (2, 1, 1, 1)
    );
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn a_batch_is_decided_in_order_as_if_its_attempts_came_one_by_one() {
    let ledger = ledger().await;
    // Stock 4, limit 2: alice wins 1, wins 1 more, then is at her limit (her latest order, from
    // this very batch); bob asks 3 (over the limit); carol wins 2, which sells out; dave finds
    // it sold out.
    let keys = open_activity(&ledger, "batch", 4, 2).await;
    let ids = leased_ids(&ledger).await;
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let batch: Vec<(Attempt<'_>, OrderId)> = [
        attempt(&alice, 1),
        attempt(&alice, 1),
        attempt(&alice, 1),
        attempt(&bob, 3),
        attempt(&carol, 2),
        attempt(&dave, 1),
    ]
    .into_iter()
    .map(|a| (a, ids.next_id()))
    .collect();
    let outcomes: Vec<DeductOutcome> = ledger
        .deduct_batch(&keys, &batch)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.expect("fresh ids are never taken"))
        .collect();
    let won = |i: usize| match &outcomes[i] {
        DeductOutcome::Won { record, stock_left } => {
            assert_eq!(record.order_id, batch[i].1, "wins under its own id");
            let record = record.decode().unwrap();
            (record.user_id, record.quantity, *stock_left)
        }
        other => panic!("attempt {i}: expected a win, got {other:?}"),
    };
    assert_eq!(won(0), ("alice".into(), 1, 3));
    assert_eq!(won(1), ("alice".into(), 1, 2));
    assert_eq!(
        outcomes[2],
        DeductOutcome::Repeat {
            order_id: Some(batch[1].1),
            status: Some(OrderStatus::Queued)
        }
    );
    assert_eq!(outcomes[3], DeductOutcome::LimitExceeded);
    assert_eq!(won(4), ("carol".into(), 2, 0));
    assert_eq!(outcomes[5], DeductOutcome::SoldOut { stock_left: 0 });

    // Everything a win writes, once per winner: buyers, latest order, outbox, index.
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (
            audit.stock,
            audit.reserved,
            audit.orders,
            audit.outbox,
            audit.buyers
        ),
        (0, 4, 3, 3, 2)
    );
    assert_eq!(audit.units_held, 4);
    for i in [0, 1, 4] {
        assert!(
            ledger.order(batch[i].1).await.unwrap().is_some(),
            "attempt {i} indexed"
        );
    }
    // Alice's latest order is the second; a later attempt of hers is told so.
    assert_eq!(
        ledger
            .deduct(&keys, attempt(&alice, 1), &ids)
            .await
            .unwrap(),
        DeductOutcome::Repeat {
            order_id: Some(batch[1].1),
            status: Some(OrderStatus::Queued)
        }
    );
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn a_taken_order_id_refuses_only_its_attempt_and_writes_nothing_for_it() {
    let ledger = ledger().await;
    let keys = open_activity(&ledger, "taken", 10, 1).await;
    let ids = leased_ids(&ledger).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let DeductOutcome::Won { record, .. } = ledger
        .deduct(&keys, attempt(&alice, 1), &ids)
        .await
        .unwrap()
    else {
        panic!("expected a win")
    };
    let fresh = ids.next_id();
    let outcomes = ledger
        .deduct_batch(
            &keys,
            &[
                (attempt(&bob, 1), record.order_id),
                (attempt(&bob, 1), fresh),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes[0], None, "the taken id is refused");
    assert!(
        matches!(&outcomes[1], Some(DeductOutcome::Won { record, stock_left: 8 }) if record.order_id == fresh),
        "{outcomes:?}"
    );
    // Alice's order is untouched; bob holds one unit.
    let alice_order = ledger
        .order_in(&keys, record.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice_order.user_id, "alice");
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!((audit.stock, audit.orders, audit.buyers), (8, 2, 2));
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn a_batch_too_big_for_the_script_is_refused_before_anything_is_written() {
    let ledger = ledger().await;
    // 4,001 winners: Lua cannot unpack the 8,002 values of their buyers and outbox entries, so
    // the script would fail after writing every record, with the stock still there to sell again.
    let keys = open_activity(&ledger, "toobig", 5_000, 1).await;
    let ids = leased_ids(&ledger).await;
    let users: Vec<UserId> = (0..4_001).map(|i| user(&format!("u{i}"))).collect();
    let batch: Vec<(Attempt<'_>, OrderId)> = users
        .iter()
        .map(|u| (attempt(u, 1), ids.next_id()))
        .collect();
    assert!(matches!(
        ledger.deduct_batch(&keys, &batch).await,
        Err(seckill_ledger::LedgerError::Contract { .. })
    ));
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!((audit.stock, audit.orders), (5_000, 0));
    // The largest batch allowed goes through whole.
    let allowed = &batch[..seckill_ledger::ledger::MAX_DEDUCT_BATCH];
    let outcomes = ledger.deduct_batch(&keys, allowed).await.unwrap();
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Some(DeductOutcome::Won { .. }))));
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (audit.stock, audit.orders, audit.outbox),
        (4_000, 1_000, 1_000)
    );
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn a_large_amount_stays_exact_through_win_payment_and_release() {
    // 10^14 cents: cjson writes it as 1e+14, which no reader could take for an integer; the
    // record must keep it exact however its status changes.
    let ledger = ledger().await;
    let id = fresh_id("large");
    let mut new = activity(&id, 10, 1, -1_000, 3_600_000);
    new.price_cents = 100_000_000_000_000;
    assert_eq!(
        ledger.create_activity(&new).await.unwrap(),
        CreateOutcome::Created
    );
    let keys = ActivityKeys::new(&id);
    let ids = leased_ids(&ledger).await;
    let (a, b) = (user("rich-a"), user("rich-b"));
    let mut orders = Vec::new();
    for buyer in [&a, &b] {
        let DeductOutcome::Won { record, .. } =
            ledger.deduct(&keys, attempt(buyer, 1), &ids).await.unwrap()
        else {
            panic!("expected a win")
        };
        assert_eq!(record.decode().unwrap().amount_cents, 100_000_000_000_000);
        orders.push(record.order_id);
    }
    assert_eq!(
        ledger.confirm(&keys, orders[0]).await.unwrap(),
        ConfirmOutcome::Confirmed
    );
    assert!(matches!(
        ledger
            .release(&keys, orders[1], OrderStatus::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::Released { .. }
    ));
    for (order, status) in [
        (orders[0], OrderStatus::Paid),
        (orders[1], OrderStatus::Cancelled),
    ] {
        let record = ledger
            .order_in(&keys, order)
            .await
            .unwrap()
            .expect("readable");
        assert_eq!(
            (record.amount_cents, record.status),
            (100_000_000_000_000, status)
        );
    }
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn repeat_limit_sold_out_window_and_unknown() {
    let ledger = ledger().await;
    let ids = leased_ids(&ledger).await;
    let keys = open_activity(&ledger, "codes", 2, 2).await;
    let (a, b, c) = (user("a"), user("b"), user("c"));

    assert_eq!(
        ledger.deduct(&keys, attempt(&a, 3), &ids).await.unwrap(),
        DeductOutcome::LimitExceeded,
        "more than the limit at once"
    );
    let DeductOutcome::Won { record, .. } =
        ledger.deduct(&keys, attempt(&a, 2), &ids).await.unwrap()
    else {
        panic!("a wins both units")
    };
    let order_id = record.order_id;
    assert_eq!(
        ledger.deduct(&keys, attempt(&a, 1), &ids).await.unwrap(),
        DeductOutcome::Repeat {
            order_id: Some(order_id),
            status: Some(OrderStatus::Queued)
        },
        "allowance used up: the existing order"
    );
    assert_eq!(
        ledger.deduct(&keys, attempt(&b, 1), &ids).await.unwrap(),
        DeductOutcome::SoldOut { stock_left: 0 }
    );

    // Partially used allowance + a quantity that would exceed it.
    let keys2 = open_activity(&ledger, "partial", 10, 2).await;
    assert!(matches!(
        ledger.deduct(&keys2, attempt(&c, 1), &ids).await.unwrap(),
        DeductOutcome::Won { .. }
    ));
    assert_eq!(
        ledger.deduct(&keys2, attempt(&c, 2), &ids).await.unwrap(),
        DeductOutcome::LimitExceeded
    );

    let upcoming = fresh_id("upcoming");
    ledger
        .create_activity(&activity(&upcoming, 5, 1, 3_600_000, 7_200_000))
        .await
        .unwrap();
    assert_eq!(
        ledger
            .deduct(&ActivityKeys::new(&upcoming), attempt(&a, 1), &ids)
            .await
            .unwrap(),
        DeductOutcome::NotStarted
    );

    let ended = fresh_id("ended");
    ledger
        .create_activity(&activity(&ended, 5, 1, -7_200_000, -3_600_000))
        .await
        .unwrap();
    assert_eq!(
        ledger
            .deduct(&ActivityKeys::new(&ended), attempt(&a, 1), &ids)
            .await
            .unwrap(),
        DeductOutcome::Ended
    );

    let missing = ActivityKeys::new(&fresh_id("missing"));
    assert_eq!(
        ledger.deduct(&missing, attempt(&a, 1), &ids).await.unwrap(),
        DeductOutcome::NotFound
    );
    assert_balanced(&ledger, &keys).await;
    assert_balanced(&ledger, &keys2).await;
}

#[tokio::test]
async fn race_of_600_distinct_users_over_100_units_has_exactly_100_winners() {
    let ledger = ledger().await;
    let keys = Arc::new(open_activity(&ledger, "race", 100, 1).await);
    let ids = Arc::new(leased_ids(&ledger).await);
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let (ledger, keys, ids) = (ledger.clone(), keys.clone(), ids.clone());
            tokio::spawn(async move {
                let u = user(&format!("racer{i}"));
                ledger.deduct(&keys, attempt(&u, 1), &ids).await.unwrap()
            })
        })
        .collect();
    let mut winners = HashSet::new();
    let mut sold_out = 0;
    for task in tasks {
        match task.await.unwrap() {
            DeductOutcome::Won { record, .. } => {
                assert!(winners.insert(record.order_id), "duplicate order id")
            }
            DeductOutcome::SoldOut { .. } => sold_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 100);
    assert_eq!(sold_out, 500);
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (audit.stock, audit.reserved, audit.buyers, audit.orders),
        (0, 100, 100, 100)
    );
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn one_user_racing_themself_wins_exactly_once() {
    let ledger = ledger().await;
    let keys = Arc::new(open_activity(&ledger, "self", 50, 1).await);
    let ids = Arc::new(leased_ids(&ledger).await);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (ledger, keys, ids) = (ledger.clone(), keys.clone(), ids.clone());
            tokio::spawn(async move {
                ledger
                    .deduct(&keys, attempt(&user("greedy"), 1), &ids)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut repeats = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            DeductOutcome::Won { record, .. } => won.push(record.order_id),
            DeductOutcome::Repeat { order_id, .. } => repeats.push(order_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won.len(), 1);
    assert!(
        repeats.iter().all(|r| *r == Some(won[0])),
        "every repeat names the one order"
    );
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!((audit.stock, audit.reserved, audit.orders), (49, 1, 1));
}

#[tokio::test]
async fn release_returns_stock_once_and_confirm_makes_it_final() {
    let ledger = ledger().await;
    let ids = leased_ids(&ledger).await;
    let keys = open_activity(&ledger, "release", 2, 1).await;
    let (a, b, c) = (user("a"), user("b"), user("c"));
    let DeductOutcome::Won { record: first, .. } =
        ledger.deduct(&keys, attempt(&a, 1), &ids).await.unwrap()
    else {
        panic!()
    };
    let DeductOutcome::Won { record: second, .. } =
        ledger.deduct(&keys, attempt(&b, 1), &ids).await.unwrap()
    else {
        panic!()
    };
    let (first, second) = (first.order_id, second.order_id);
    assert_eq!(
        ledger.deduct(&keys, attempt(&c, 1), &ids).await.unwrap(),
        DeductOutcome::SoldOut { stock_left: 0 }
    );

    assert_eq!(
        ledger
            .release(&keys, first, OrderStatus::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::Released { stock_left: 1 }
    );
    assert_eq!(
        ledger
            .release(&keys, first, OrderStatus::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::AlreadyReleased
    );
    assert_eq!(
        status_of(&ledger, &keys, first).await,
        OrderStatus::Cancelled
    );
    assert_eq!(
        ledger.confirm(&keys, first).await.unwrap(),
        ConfirmOutcome::NotConfirmable
    );
    assert_balanced(&ledger, &keys).await;

    // The returned unit is bought by someone else; the first buyer may try again too.
    assert!(matches!(
        ledger.deduct(&keys, attempt(&c, 1), &ids).await.unwrap(),
        DeductOutcome::Won { stock_left: 0, .. }
    ));

    assert_eq!(
        ledger.confirm(&keys, second).await.unwrap(),
        ConfirmOutcome::Confirmed
    );
    assert_eq!(
        ledger.confirm(&keys, second).await.unwrap(),
        ConfirmOutcome::AlreadyConfirmed
    );
    assert_eq!(
        ledger
            .release(&keys, second, OrderStatus::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::NotReleasable
    );
    let unknown = seckill_ledger::OrderId(12345);
    assert_eq!(
        ledger
            .release(&keys, unknown, OrderStatus::Cancelled)
            .await
            .unwrap(),
        ReleaseOutcome::UnknownOrder
    );
    assert_eq!(
        ledger.confirm(&keys, unknown).await.unwrap(),
        ConfirmOutcome::UnknownOrder
    );
    let audit = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (audit.stock, audit.reserved, audit.sold, audit.released),
        (0, 1, 1, 1)
    );
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn create_refuses_duplicates_restock_guards_what_is_taken_close_ends() {
    let ledger = ledger().await;
    let ids = leased_ids(&ledger).await;
    let keys = open_activity(&ledger, "admin", 5, 2).await;
    let again = activity(&keys.id, 99, 1, 0, 1_000);
    assert_eq!(
        ledger.create_activity(&again).await.unwrap(),
        CreateOutcome::Exists
    );
    assert_eq!(
        ledger.meta(&keys.id).await.unwrap().unwrap().stock_total,
        5,
        "untouched"
    );

    assert!(matches!(
        ledger
            .deduct(&keys, attempt(&user("a"), 2), &ids)
            .await
            .unwrap(),
        DeductOutcome::Won { .. }
    ));
    assert_eq!(
        ledger.restock(&keys, 1).await.unwrap(),
        RestockOutcome::BelowTaken { taken: 2 }
    );
    assert_eq!(
        ledger.restock(&keys, 10).await.unwrap(),
        RestockOutcome::Restocked { stock_left: 8 }
    );
    assert_eq!(
        ledger.restock(&keys, 2).await.unwrap(),
        RestockOutcome::Restocked { stock_left: 0 }
    );
    assert_balanced(&ledger, &keys).await;

    assert_eq!(ledger.close(&keys).await.unwrap(), CloseOutcome::Closed);
    assert_eq!(
        ledger.close(&keys).await.unwrap(),
        CloseOutcome::AlreadyClosed
    );
    assert_eq!(
        ledger
            .deduct(&keys, attempt(&user("b"), 1), &ids)
            .await
            .unwrap(),
        DeductOutcome::Ended
    );
    let missing = ActivityKeys::new(&fresh_id("nope"));
    assert_eq!(
        ledger.close(&missing).await.unwrap(),
        CloseOutcome::NotFound
    );
    assert_eq!(
        ledger.restock(&missing, 3).await.unwrap(),
        RestockOutcome::NotFound
    );
    assert_eq!(ledger.audit(&missing).await.unwrap(), None);
    assert!(ledger.list_activities().await.unwrap().contains(&keys.id));
}

#[tokio::test]
async fn worker_leases_are_exclusive() {
    let ledger = ledger().await;
    let ttl = std::time::Duration::from_secs(5);
    let start = (std::process::id() % 1000) as u16;
    let mine = format!("test-a-{}", std::process::id());
    let theirs = format!("test-b-{}", std::process::id());
    let worker = ledger.acquire_worker(start, &mine, ttl).await.unwrap();
    assert!(
        ledger.lease_worker(worker, &mine, ttl).await.unwrap(),
        "renewal"
    );
    assert!(
        !ledger.lease_worker(worker, &theirs, ttl).await.unwrap(),
        "taken"
    );
    let other = ledger.acquire_worker(worker, &theirs, ttl).await.unwrap();
    assert_ne!(other, worker);
}

#[tokio::test]
async fn outbox_claim_publish_and_status_mirror() {
    use seckill_ledger::ledger::SetStatusOutcome;
    use std::time::Duration;

    let ledger = ledger().await;
    let keys = open_activity(&ledger, "outbox", 5, 1).await;
    let won = win_each(&ledger, &keys, &["o1", "o2", "o3"]).await;
    // Nothing is old enough yet.
    assert!(ledger
        .claim_outbox(&keys, Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    // Once Redis's clock has moved past every entry, a claim of everything older than 0 ms takes
    // the two oldest and re-queues them: their scores move to the claim's "now", so another
    // relay leaves them alone; the entry not claimed keeps its score.
    let before = outbox_scores(&ledger, &keys).await;
    let newest = *before.values().max().unwrap();
    assert!(
        seckill_testkit::eventually_async(Duration::from_secs(5), || async {
            redis_ms(&ledger).await > newest
        })
        .await
    );
    let claimed = ledger.claim_outbox(&keys, Duration::ZERO, 2).await.unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.order_id).collect::<Vec<_>>(),
        won[..2],
        "oldest first"
    );
    let after = outbox_scores(&ledger, &keys).await;
    for id in &won[..2] {
        assert!(
            after[&id.0] > before[&id.0],
            "claimed order {id} was not re-queued: {before:?} -> {after:?}"
        );
    }
    assert_eq!(after[&won[2].0], before[&won[2].0], "unclaimed entry moved");
    // So a relay asking for entries a minute old finds none of them.
    assert!(ledger
        .claim_outbox(&keys, Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());

    ledger
        .mark_published(&[(&keys, won[0]), (&keys, won[1])])
        .await
        .unwrap();
    assert_eq!(ledger.audit(&keys).await.unwrap().unwrap().outbox, 1);
    assert_eq!(ledger.orders(&keys).await.unwrap().len(), 3);

    use OrderStatus::*;
    assert_eq!(
        ledger
            .set_status(&keys, won[0], PendingPayment, &[Queued])
            .await
            .unwrap(),
        SetStatusOutcome::Changed
    );
    assert_eq!(
        ledger
            .set_status(&keys, won[0], PendingPayment, &[Queued])
            .await
            .unwrap(),
        SetStatusOutcome::Already
    );
    assert_eq!(
        ledger
            .set_status(&keys, won[0], Queued, &[Paid])
            .await
            .unwrap(),
        SetStatusOutcome::NotAllowed(Some(PendingPayment)),
        "never backwards"
    );
    assert_eq!(
        ledger
            .set_status(
                &keys,
                seckill_ledger::OrderId(42),
                PendingPayment,
                &[Queued]
            )
            .await
            .unwrap(),
        SetStatusOutcome::UnknownOrder
    );
    assert_eq!(status_of(&ledger, &keys, won[0]).await, PendingPayment);
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn a_batch_mirror_moves_each_order_once_and_never_backwards() {
    use seckill_ledger::ledger::MirrorCounts;
    use seckill_ledger::OrderId;

    let ledger = ledger().await;
    let keys = open_activity(&ledger, "mirror", 5, 1).await;
    let won = win_each(&ledger, &keys, &["m1", "m2", "m3"]).await;
    let ghost = OrderId(42);
    let batch = [won[0], won[1], ghost];
    use OrderStatus::*;
    let counts = |changed, already, unknown, not_allowed| MirrorCounts {
        changed,
        already,
        unknown,
        not_allowed,
    };
    assert_eq!(
        ledger
            .mirror(&keys, &batch, PendingPayment, Queued)
            .await
            .unwrap(),
        counts(2, 0, 1, 0)
    );
    // Redelivered: nothing changes twice.
    assert_eq!(
        ledger
            .mirror(&keys, &batch, PendingPayment, Queued)
            .await
            .unwrap(),
        counts(0, 2, 1, 0)
    );
    // Never backwards: the mirrored orders are not in the source status any more.
    assert_eq!(
        ledger.mirror(&keys, &won, Queued, Paid).await.unwrap(),
        counts(0, 1, 0, 2)
    );
    for (order, status) in [
        (won[0], PendingPayment),
        (won[1], PendingPayment),
        (won[2], Queued),
    ] {
        assert_eq!(status_of(&ledger, &keys, order).await, status);
    }
    assert_balanced(&ledger, &keys).await;
}

#[tokio::test]
async fn a_mirror_bigger_than_one_chunk_moves_every_order_and_counts_them_all() {
    use seckill_ledger::ledger::{MirrorCounts, MIRROR_CHUNK};
    use seckill_ledger::OrderId;

    let ledger = ledger().await;
    let n = 2 * MIRROR_CHUNK + 44;
    let keys = open_activity(&ledger, "mirror-chunks", n as i64, 1).await;
    let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let users: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut batch = win_each(&ledger, &keys, &users).await;
    // Unknown ids in the first and the last chunk.
    batch.insert(0, OrderId(41));
    batch.push(OrderId(43));
    use OrderStatus::*;
    let counts = ledger
        .mirror(&keys, &batch, PendingPayment, Queued)
        .await
        .unwrap();
    assert_eq!(
        counts,
        MirrorCounts {
            changed: n as u64,
            already: 0,
            unknown: 2,
            not_allowed: 0
        }
    );
    for order in &batch[1..=n] {
        assert_eq!(status_of(&ledger, &keys, *order).await, PendingPayment);
    }
    assert_balanced(&ledger, &keys).await;
}

/// On a private Redis: on the shared one, any other test's start-up (SCRIPT LOAD) can land
/// between our SCRIPT FLUSH and our deduct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noscript_after_script_flush_reloads_and_retries_once() {
    let redis = PrivateRedis::start().await;
    let ledger = ledger_at(&redis.url).await;
    let ids = leased_ids(&ledger).await;
    let id = open(&ledger, "flush", 5, 1).await;
    let keys = ActivityKeys::new(&id);
    assert!(matches!(
        buy(&ledger, &keys, &ids, "a", 1).await,
        DeductOutcome::Won { .. }
    ));
    let before = ledger.script_reloads();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut ledger.connection())
        .await
        .unwrap();
    assert!(matches!(
        buy(&ledger, &keys, &ids, "b", 1).await,
        DeductOutcome::Won { .. }
    ));
    assert_eq!(ledger.script_reloads(), before + 1, "one reload, one retry");
    assert!(matches!(
        buy(&ledger, &keys, &ids, "c", 1).await,
        DeductOutcome::Won { .. }
    ));
    assert_eq!(ledger.script_reloads(), before + 1, "loaded again for good");
}

/// One unit won by each of `users`, in order; their order ids.
async fn win_each(
    ledger: &Ledger,
    keys: &ActivityKeys,
    users: &[&str],
) -> Vec<seckill_ledger::OrderId> {
    let ids = leased_ids(ledger).await;
    let mut won = Vec::new();
    for u in users {
        let DeductOutcome::Won { record, .. } = ledger
            .deduct(keys, attempt(&user(u), 1), &ids)
            .await
            .unwrap()
        else {
            panic!("{u} did not win")
        };
        won.push(record.order_id);
    }
    won
}

/// The stored status of an order that exists.
async fn status_of(ledger: &Ledger, keys: &ActivityKeys, order: OrderId) -> OrderStatus {
    ledger.order_in(keys, order).await.unwrap().unwrap().status
}

/// The outbox of an activity: order id → score (ms when last (re)queued).
async fn outbox_scores(ledger: &Ledger, keys: &ActivityKeys) -> HashMap<u64, i64> {
    let pairs: Vec<(u64, i64)> = redis::cmd("ZRANGE")
        .arg(&keys.outbox)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut ledger.connection())
        .await
        .unwrap();
    pairs.into_iter().collect()
}

/// Redis's own clock in ms (what the scripts stamp entries with).
async fn redis_ms(ledger: &Ledger) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut ledger.connection())
        .await
        .unwrap();
    secs * 1000 + micros / 1000
}
