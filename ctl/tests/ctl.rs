//! `seckillctl`, verb by verb, including every error case, run as the real binary against Redis.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use redis::AsyncCommands;
use seckill_auth::TokenKey;
use seckill_ledger::ledger::DeductOutcome;
use seckill_ledger::{ActivityKeys, OrderStatus};
use seckill_service::now_unix;
use seckill_testkit::*;

fn ctl(args: &[&str]) -> Output {
    ctl_env(args, &[])
}

fn ctl_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seckillctl"));
    command
        .args(args)
        .env("SECKILL_REDIS_URL", redis_url())
        .env("SECKILL_AUTH_SECRET", SECRET);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run seckillctl")
}

/// `seckillctl` with the test's own database (activities are recorded there).
fn ctl_db(database: &str, args: &[&str]) -> Output {
    ctl_env(args, &[("SECKILL_DATABASE_URL", database)])
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_fails(output: &Output, needle: &str) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    assert!(
        stderr(output).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(output)
    );
}

#[tokio::test]
async fn create_show_and_the_ways_create_refuses() {
    let db = fresh_database().await;
    let id = fresh_id("create");
    let ledger = ledger_at(&redis_url()).await;
    let base = [
        "activity",
        "create",
        "--id",
        id.as_str(),
        "--name",
        "Phone",
        "--stock",
        "10",
        "--price-cents",
        "19900",
    ];
    let ok = ctl_db(
        &db,
        &[
            &base[..],
            &[
                "--per-user-limit",
                "2",
                "--starts-at",
                "now",
                "--duration",
                "30m",
            ],
        ]
        .concat(),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("created activity"));
    let meta = ledger.meta(&id).await.unwrap().unwrap();
    assert_eq!(
        (meta.stock_total, meta.per_user_limit, meta.price_cents),
        (10, 2, 19900)
    );
    assert_eq!(meta.ends_at_ms - meta.starts_at_ms, 30 * 60 * 1000);

    let again = ctl_db(
        &db,
        &[&base[..], &["--starts-at", "now", "--duration", "5m"]].concat(),
    );
    assert_fails(&again, "already exists");
    assert_eq!(
        ledger.meta(&id).await.unwrap().unwrap(),
        meta,
        "Redis untouched"
    );

    let other = fresh_id("create-bad");
    let bad = |extra: &[&str]| {
        let mut args = vec![
            "activity",
            "create",
            "--id",
            other.as_str(),
            "--name",
            "X",
            "--price-cents",
            "1",
        ];
        args.extend_from_slice(extra);
        ctl(&args)
    };
    assert_fails(
        &bad(&[
            "--stock",
            "1",
            "--starts-at",
            "yesterday",
            "--duration",
            "1m",
        ]),
        "RFC 3339",
    );
    assert_fails(
        &bad(&[
            "--stock",
            "1",
            "--starts-at",
            "2026-12-01T10:00:00Z",
            "--ends-at",
            "2026-12-01T09:00:00Z",
        ]),
        "must end after it starts",
    );
    assert_fails(
        &bad(&["--stock", "-1", "--starts-at", "now", "--duration", "1m"]),
        "stock must not be negative",
    );
    assert_fails(
        &bad(&["--stock", "1", "--starts-at", "now", "--duration", "soon"]),
        "bad duration",
    );
    let both = bad(&["--stock", "1", "--starts-at", "now"]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "clap: one of --ends-at/--duration is required"
    );
    assert!(
        ledger.meta(&other).await.unwrap().is_none(),
        "nothing written"
    );
    let bad_id = ctl_db(
        &db,
        &[
            "activity",
            "create",
            "--id",
            "a{b}",
            "--name",
            "X",
            "--stock",
            "1",
            "--price-cents",
            "1",
            "--starts-at",
            "now",
            "--duration",
            "1m",
        ],
    );
    assert_fails(&bad_id, "invalid activity id");

    let shown = ctl_db(&db, &["activity", "show", id.as_str()]);
    assert!(shown.status.success());
    assert!(
        stdout(&shown).contains("total 10 · available 10"),
        "{}",
        stdout(&shown)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&ctl_db(&db, &["activity", "show", id.as_str(), "--json"]).stdout)
            .unwrap();
    assert_eq!(
        (json["stock_left"].as_i64(), json["state"].as_str()),
        (Some(10), Some("open"))
    );
    assert_fails(
        &ctl_db(&db, &["activity", "show", fresh_id("ghost").as_str()]),
        "unknown activity",
    );
}

#[tokio::test]
async fn load_toml_and_json_all_or_nothing() {
    let db = fresh_database().await;
    let dir = std::env::temp_dir().join(format!("seckillctl-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, c) = (fresh_id("load-a"), fresh_id("load-b"), fresh_id("load-c"));
    let toml_path = dir.join(format!("{a}.toml"));
    std::fs::write(
        &toml_path,
        format!(
            "[[activity]]\nid = \"{a}\"\nname = \"A\"\nstock = 5\nprice_cents = 100\nstarts_at = \"now\"\nduration = \"1h\"\n\n\
             [[activity]]\nid = \"{b}\"\nname = \"B\"\nstock = 7\nprice_cents = 200\nper_user_limit = 3\n\
             starts_at = \"2030-01-01T00:00:00Z\"\nends_at = \"2030-01-01T09:00:00+08:00\"\n"
        ),
    )
    .unwrap();
    let loaded = ctl_db(&db, &["activity", "load", toml_path.to_str().unwrap()]);
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    assert!(stdout(&loaded).contains("loaded 2 activities"));
    let ledger = ledger_at(&redis_url()).await;
    let b_meta = ledger.meta(&b).await.unwrap().unwrap();
    assert_eq!(b_meta.per_user_limit, 3);
    assert_eq!(
        b_meta.ends_at_ms - b_meta.starts_at_ms,
        3_600_000,
        "offsets are honoured"
    );

    // A file that names an existing activity loads nothing at all.
    let json_path = dir.join(format!("{c}.json"));
    std::fs::write(
        &json_path,
        format!(
            r#"[{{"id":"{c}","name":"C","stock":1,"price_cents":1,"starts_at":"now","duration":"1m"}},
               {{"id":"{a}","name":"A again","stock":1,"price_cents":1,"starts_at":"now","duration":"1m"}}]"#
        ),
    )
    .unwrap();
    assert_fails(
        &ctl_db(&db, &["activity", "load", json_path.to_str().unwrap()]),
        "already exists",
    );
    assert!(ledger.meta(&c).await.unwrap().is_none());

    std::fs::write(
        &json_path,
        format!(r#"{{"activity":[{{"id":"{c}","name":"C","stock":1,"price_cents":1,"starts_at":"now","duration":"1m"}}]}}"#),
    )
    .unwrap();
    assert!(
        ctl_db(&db, &["activity", "load", json_path.to_str().unwrap()])
            .status
            .success()
    );
    assert!(ledger.meta(&c).await.unwrap().is_some());

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[activity]]\nid = \"x\"\nstock = \"many\"\n").unwrap();
    assert_fails(
        &ctl_db(&db, &["activity", "load", bad.to_str().unwrap()]),
        "not a valid activity file",
    );
    let d = fresh_id("load-dup");
    std::fs::write(
        &bad,
        format!("[[activity]]\nid = \"{d}\"\nname = \"D\"\nstock = 1\nprice_cents = 1\nstarts_at = \"now\"\nduration = \"1m\"\n").repeat(2),
    )
    .unwrap();
    assert_fails(
        &ctl_db(&db, &["activity", "load", bad.to_str().unwrap()]),
        "appears twice",
    );
    assert_fails(
        &ctl_db(&db, &["activity", "load", "/nonexistent/file.toml"]),
        "cannot read",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn list_close_and_restock() {
    let db = fresh_database().await;
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "ops", 5, 2).await;
    let list = ctl_db(&db, &["activity", "list"]);
    assert!(list.status.success());
    assert!(stdout(&list).contains(id.as_str()));
    let json: serde_json::Value =
        serde_json::from_slice(&ctl_db(&db, &["activity", "list", "--json"]).stdout).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id.as_str()));

    let keys = ActivityKeys::new(&id);
    let ids = leased_ids(&ledger).await;
    let won = buy(&ledger, &keys, &ids, "holder", 2).await;
    assert!(matches!(won, DeductOutcome::Won { .. }));

    assert_fails(
        &ctl_db(&db, &["activity", "restock", id.as_str(), "1"]),
        "already won or sold",
    );
    assert_eq!(ledger.stock_left(&keys).await.unwrap(), 3, "untouched");
    assert_fails(
        &ctl_db(&db, &["activity", "restock", id.as_str(), "-4"]),
        "must not be negative",
    );
    // Past 2^53 the scripts' arithmetic is inexact: refused, the sale untouched.
    assert_fails(
        &ctl_db(
            &db,
            &["activity", "restock", id.as_str(), "9007199254740993"],
        ),
        "at most 9007199254740992",
    );
    assert_eq!(ledger.stock_left(&keys).await.unwrap(), 3, "untouched");
    let up = ctl_db(&db, &["activity", "restock", id.as_str(), "20"]);
    assert!(up.status.success(), "{}", stderr(&up));
    assert_eq!(ledger.stock_left(&keys).await.unwrap(), 18);
    assert_fails(
        &ctl_db(
            &db,
            &["activity", "restock", fresh_id("ghost").as_str(), "3"],
        ),
        "unknown activity",
    );

    let closed = ctl_db(&db, &["activity", "close", id.as_str()]);
    assert!(closed.status.success());
    assert!(ledger.meta(&id).await.unwrap().unwrap().closed);
    assert_eq!(
        buy(&ledger, &keys, &ids, "late", 1).await,
        DeductOutcome::Ended
    );
    assert!(stdout(&ctl_db(&db, &["activity", "close", id.as_str()])).contains("already closed"));
    assert_fails(
        &ctl_db(&db, &["activity", "close", fresh_id("ghost").as_str()]),
        "unknown activity",
    );
}

#[tokio::test]
async fn token_mint_single_and_ranges() {
    let one = ctl(&["token", "mint", "--user", "alice", "--ttl", "2h"]);
    assert!(one.status.success(), "{}", stderr(&one));
    let line = stdout(&one).trim().to_owned();
    let now = now_unix();
    assert_eq!(
        TokenKey::new(SECRET.as_bytes())
            .verify(&line, now)
            .unwrap()
            .as_str(),
        "alice"
    );
    assert!(
        TokenKey::new(SECRET.as_bytes())
            .verify(&line, now + 7300)
            .is_err(),
        "ttl respected"
    );

    let many = ctl(&["token", "mint", "--users", "3..7", "--prefix", "bench"]);
    let lines: Vec<String> = stdout(&many).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5);
    for (n, line) in (3..=7).zip(&lines) {
        assert_eq!(
            TokenKey::new(SECRET.as_bytes())
                .verify(line, now)
                .unwrap()
                .as_str(),
            format!("bench{n}")
        );
    }

    assert_fails(&ctl(&["token", "mint", "--users", "9..2"]), "FIRST..LAST");
    assert_fails(
        &ctl(&["token", "mint", "--user", "bad.user"]),
        "invalid user id",
    );
    assert_fails(
        &ctl(&["token", "mint", "--user", "a", "--ttl", "forever"]),
        "bad duration",
    );
    assert_fails(
        &ctl_env(
            &["token", "mint", "--user", "a"],
            &[("SECKILL_AUTH_SECRET", "")],
        ),
        "SECKILL_AUTH_SECRET",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_command_waits_for_a_busy_redis_instead_of_timing_out() {
    // verify's audit walks every order of a sale: on a big one, or behind another long command,
    // Redis answers only after seconds. A Redis of our own, made to hold every command for 3 s.
    let redis = PrivateRedis::start().await;
    let ledger = ledger_at(&redis.url).await;
    let id = open(&ledger, "busy", 10, 1).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query_async(&mut ledger.connection())
        .await
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_seckillctl"))
        .args(["verify", id.as_str(), "--ledger-only"])
        .env("SECKILL_REDIS_URL", &redis.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "verify behind a busy Redis: {} {}",
        stdout(&output),
        stderr(&output)
    );
}

#[tokio::test]
async fn verify_passes_a_clean_ledger_and_fails_a_doctored_one() {
    let ledger = ledger_at(&redis_url()).await;
    let id = open(&ledger, "verify", 10, 1).await;
    let keys = ActivityKeys::new(&id);
    let ids = leased_ids(&ledger).await;
    for u in ["v1", "v2", "v3"] {
        buy(&ledger, &keys, &ids, u, 1).await;
    }
    let clean = ctl(&["verify", "--ledger-only", id.as_str()]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("ledger OK"));
    let json: serde_json::Value =
        serde_json::from_slice(&ctl(&["verify", "--ledger-only", id.as_str(), "--json"]).stdout)
            .unwrap();
    assert_eq!(
        (
            json["ok"].as_bool(),
            json["reserved"].as_i64(),
            json["outbox"].as_i64()
        ),
        (Some(true), Some(3), Some(3))
    );

    // A buyer over the limit, written behind the ledger's back.
    let mut conn = ledger.connection();
    let _: () = conn.hincr(&keys.buyers, "v1", 1).await.unwrap();
    let doctored = ctl(&["verify", "--ledger-only", id.as_str()]);
    assert_eq!(doctored.status.code(), Some(1));
    assert!(
        stdout(&doctored).contains("FAIL per_user_limit"),
        "{}",
        stdout(&doctored)
    );
    let _: () = conn.hincr(&keys.buyers, "v1", -1).await.unwrap();
    assert_eq!(
        ctl(&["verify", "--ledger-only", id.as_str()]).status.code(),
        Some(0)
    );

    // The stock key altered: the ledger no longer balances.
    let _: () = conn.incr(&keys.stock, 5).await.unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&ctl(&["verify", "--ledger-only", id.as_str(), "--json"]).stdout)
            .unwrap();
    assert_eq!(json["ok"], false);
    assert!(json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "balanced" && c["ok"] == false));
    assert_eq!(
        ctl(&["verify", "--ledger-only", id.as_str()]).status.code(),
        Some(1)
    );

    assert_fails(
        &ctl(&["verify", "--ledger-only", fresh_id("ghost").as_str()]),
        "unknown activity",
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let out = ctl_env(
        &["activity", "list"],
        &[("SECKILL_REDIS_URL", "redis://127.0.0.1:1")],
    );
    assert_fails(&out, "cannot reach Redis at redis://127.0.0.1:1");
    let out = ctl_env(&["verify", "x"], &[("SECKILL_REDIS_URL", "not-a-url")]);
    assert_fails(&out, "cannot reach Redis");
}

#[tokio::test]
async fn rebuild_recovers_a_wiped_ledger_from_the_database_and_the_sale_goes_on() {
    let db = fresh_database().await;
    let store = seckill_store::Store::connect(&db, 2).await.unwrap();
    let ledger = ledger_at(&redis_url()).await;
    let id = fresh_id("rebuild");
    let created = ctl_db(
        &db,
        &[
            "activity",
            "create",
            "--id",
            id.as_str(),
            "--name",
            "Rebuilt",
            "--stock",
            "5",
            "--price-cents",
            "100",
            "--per-user-limit",
            "1",
            "--starts-at",
            "now",
            "--duration",
            "1h",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    // Recorded in the database first.
    let recorded = store.activity(&id).await.unwrap().expect("recorded");
    assert_eq!((recorded.stock_total, recorded.per_user_limit), (5, 1));

    // A sale: a paid, b cancelled (its unit back), c won and not persisted yet (in the outbox).
    let keys = ActivityKeys::new(&id);
    let ids = leased_ids(&ledger).await;
    let mut won = Vec::new();
    for user in ["ra", "rb", "rc", "rd"] {
        let DeductOutcome::Won { record, .. } = buy(&ledger, &keys, &ids, user, 1).await else {
            panic!("expected a win")
        };
        won.push(record.decode().unwrap());
    }
    let (a, b, c, d) = (
        won[0].order_id,
        won[1].order_id,
        won[2].order_id,
        won[3].order_id,
    );
    store
        .insert_orders(
            &[won[0].clone(), won[1].clone(), won[3].clone()],
            OrderStatus::PendingPayment,
        )
        .await
        .unwrap();
    ledger
        .mirror(
            &keys,
            &[a, b, d],
            OrderStatus::PendingPayment,
            OrderStatus::Queued,
        )
        .await
        .unwrap();
    // d: cancelled (its unit back), then paid late: refunding — its unit stays back on sale.
    store
        .transition(d, &[OrderStatus::PendingPayment], OrderStatus::Cancelled)
        .await
        .unwrap();
    ledger
        .release(&keys, d, OrderStatus::Cancelled)
        .await
        .unwrap();
    store.mark_settled(d, OrderStatus::Cancelled).await.unwrap();
    store
        .record_payment(&seckill_store::Payment {
            payment_id: "late-d".into(),
            order_id: d,
            amount_cents: won[3].amount_cents,
        })
        .await
        .unwrap();
    ledger
        .set_status(
            &keys,
            d,
            OrderStatus::Refunding,
            &OrderStatus::sources(OrderStatus::Refunding),
        )
        .await
        .unwrap();
    store
        .transition(a, &[OrderStatus::PendingPayment], OrderStatus::Paid)
        .await
        .unwrap();
    ledger.confirm(&keys, a).await.unwrap();
    store
        .transition(b, &[OrderStatus::PendingPayment], OrderStatus::Cancelled)
        .await
        .unwrap();
    ledger
        .release(&keys, b, OrderStatus::Cancelled)
        .await
        .unwrap();
    let before = ledger.audit(&keys).await.unwrap().unwrap();

    // Redis loses the activity.
    let mut conn = ledger.connection();
    let _: i64 = conn.del(&keys.all()[..]).await.unwrap();
    for order in [a, b, c, d] {
        let _: i64 = conn
            .del(seckill_ledger::keys::order_index(order.0))
            .await
            .unwrap();
    }
    assert_eq!(
        ctl_db(&db, &["verify", id.as_str(), "--ledger-only"])
            .status
            .code(),
        Some(2),
        "a wiped activity is unknown"
    );
    // Not while the sale is open, unless forced.
    assert_fails(
        &ctl_db(&db, &["activity", "rebuild", id.as_str()]),
        "on sale now",
    );
    assert_fails(
        &ctl_db(&db, &["activity", "rebuild", fresh_id("never").as_str()]),
        "not recorded in the database",
    );
    // c is lost with the ledger (its row never came): the rebuild keeps what the database knows.
    let rebuilt = ctl_db(&db, &["activity", "rebuild", id.as_str(), "--force"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    let after = ledger.audit(&keys).await.unwrap().unwrap();
    assert_eq!(
        (after.stock_total, after.stock, after.reserved, after.sold),
        (5, 4, 0, 1),
        "a sold, b and d released (d cancelled before its late payment), c unknown to the database"
    );
    let verified = ctl_db(&db, &["verify", id.as_str()]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    // Every persisted order is findable by its id again, with its status.
    assert_eq!(
        ledger.order(a).await.unwrap().map(|o| o.status),
        Some(OrderStatus::Paid)
    );
    assert_eq!(
        ledger.order(b).await.unwrap().map(|o| o.status),
        Some(OrderStatus::Cancelled)
    );
    assert!(before.sold == 1 && before.reserved == 1);

    // The sale goes on and sells exactly what is left: 4 units; ra still holds theirs.
    assert!(matches!(
        buy(&ledger, &keys, &ids, "ra", 1).await,
        DeductOutcome::Repeat { .. }
    ));
    for user in ["n1", "n2", "n3", "n4"] {
        assert!(matches!(
            buy(&ledger, &keys, &ids, user, 1).await,
            DeductOutcome::Won { .. }
        ));
    }
    assert!(matches!(
        buy(&ledger, &keys, &ids, "n5", 1).await,
        DeductOutcome::SoldOut { .. }
    ));
}
