//! `verify`: the invariants of one activity's ledger (balanced, nothing negative, no buyer over
//! the limit, buyers and orders matching the stock taken) and, unless `--ledger-only`, whether
//! the ledger and the database agree order by order. Exit code 1 when any check fails.

use std::collections::HashMap;
use std::process::ExitCode;

use seckill_ledger::ledger::Audit;
use seckill_ledger::{ActivityId, ActivityKeys, Ledger, OrderId, OrderRecord};
use seckill_store::{Store, StoredOrder};
use serde::Serialize;

use crate::error::CtlError;

/// One invariant and whether it held.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// `verify --json` output; scripts read its field names.
#[derive(Debug, Serialize)]
struct VerifyReport {
    activity: String,
    ok: bool,
    checks: Vec<Check>,
    stock_total: i64,
    stock: i64,
    reserved: i64,
    sold: i64,
    buyers: i64,
    orders: i64,
    released: i64,
    /// Orders not yet confirmed published to the order queue.
    outbox: i64,
    /// Rows in the database for this activity (absent with --ledger-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    database_rows: Option<usize>,
}

fn checks(audit: &Audit) -> Vec<Check> {
    let taken = audit.taken();
    vec![
        Check {
            name: "balanced",
            ok: audit.balanced(),
            detail: audit.balance_line(),
        },
        Check {
            name: "non_negative",
            ok: audit.stock >= 0 && audit.reserved >= 0 && audit.sold >= 0,
            detail: format!(
                "stock {}, reserved {}, sold {}",
                audit.stock, audit.reserved, audit.sold
            ),
        },
        Check {
            name: "per_user_limit",
            ok: audit.over_limit.is_empty(),
            detail: if audit.over_limit.is_empty() {
                format!("no buyer above {}", audit.per_user_limit)
            } else {
                let users: Vec<String> = audit
                    .over_limit
                    .iter()
                    .map(|(u, n)| format!("{u}={n}"))
                    .collect();
                format!("above {}: {}", audit.per_user_limit, users.join(", "))
            },
        },
        Check {
            name: "buyers_match_stock",
            ok: audit.units_held == taken,
            detail: format!(
                "buyers hold {} units, reserved + sold = {taken}",
                audit.units_held
            ),
        },
        Check {
            name: "orders_match_stock",
            ok: audit.units_in_live_orders == taken,
            detail: format!(
                "live orders hold {} units, reserved + sold = {taken}",
                audit.units_in_live_orders
            ),
        },
    ]
}

pub(crate) async fn verify(
    ledger: &Ledger,
    store: Option<&Store>,
    id: &ActivityId,
    json: bool,
) -> Result<ExitCode, CtlError> {
    let keys = ActivityKeys::new(id);
    let Some(audit) = ledger.audit(&keys).await? else {
        return Err(CtlError::UnknownActivity(id.clone()));
    };
    let mut checks = checks(&audit);
    let mut database_rows = None;
    if let Some(store) = store {
        let orders = ledger.orders(&keys).await?;
        let rows = store.activity_orders(id.as_str()).await?;
        let parked = store.parked_orders(id.as_str()).await?;
        database_rows = Some(rows.len());
        checks.extend(database_checks(&orders, &rows, &parked, audit.outbox));
    }
    let report = VerifyReport {
        activity: id.to_string(),
        ok: checks.iter().all(|c| c.ok),
        checks,
        stock_total: audit.stock_total,
        stock: audit.stock,
        reserved: audit.reserved,
        sold: audit.sold,
        buyers: audit.buyers,
        orders: audit.orders,
        released: audit.released,
        outbox: audit.outbox,
        database_rows,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("verify {id}");
        for check in &report.checks {
            println!(
                "  {} {:<22} {}",
                if check.ok { "ok  " } else { "FAIL" },
                check.name,
                check.detail
            );
        }
        println!(
            "  info {:<22} {} orders, {} buyers, {} released, {} not yet published",
            "counts", report.orders, report.buyers, report.released, report.outbox
        );
        println!(
            "{}",
            match (report.ok, store.is_some()) {
                (true, true) => "ledger OK, database agrees",
                (true, false) => "ledger OK (database not compared)",
                (false, _) => "LEDGER VIOLATION",
            }
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Ledger vs database: every won order is a row with its item, no row without a ledger order,
/// statuses mirrored.
fn database_checks(
    orders: &[OrderRecord],
    rows: &HashMap<OrderId, StoredOrder>,
    parked: &std::collections::HashSet<OrderId>,
    outbox: i64,
) -> Vec<Check> {
    let sample = |ids: &[OrderId]| {
        let shown: Vec<String> = ids.iter().take(5).map(|id| id.to_string()).collect();
        let more = if ids.len() > 5 { ", …" } else { "" };
        format!("{}{more}", shown.join(", "))
    };
    let in_ledger: HashMap<OrderId, &OrderRecord> =
        orders.iter().map(|o| (o.order_id, o)).collect();
    // A parked order (a limit-1 buyer's second live order) has no row by design; its stock
    // went back (the ledger shows it cancelled, `seckillctl parked` lists it).
    let missing: Vec<OrderId> = orders
        .iter()
        .filter(|o| !rows.contains_key(&o.order_id) && !parked.contains(&o.order_id))
        .map(|o| o.order_id)
        .collect();
    let orphans: Vec<OrderId> = rows
        .keys()
        .filter(|id| !in_ledger.contains_key(id))
        .copied()
        .collect();
    let mismatched: Vec<OrderId> = rows
        .values()
        .filter(|row| {
            in_ledger.get(&row.order_id).is_some_and(|o| {
                o.status.as_str() != row.status
                    || o.user_id != row.user_id
                    || o.quantity as i32 != row.quantity
            })
        })
        .map(|row| row.order_id)
        .collect();
    let itemless: Vec<OrderId> = rows
        .values()
        .filter(|row| row.items != 1)
        .map(|row| row.order_id)
        .collect();
    vec![
        Check {
            name: "every_order_persisted",
            ok: missing.is_empty(),
            detail: if missing.is_empty() {
                format!(
                    "{} ledger orders, all in the database{}",
                    orders.len(),
                    if parked.is_empty() {
                        String::new()
                    } else {
                        format!(" or parked ({})", parked.len())
                    }
                )
            } else {
                format!(
                    "{} of {} ledger orders have no row ({} still in the outbox): {}",
                    missing.len(),
                    orders.len(),
                    outbox,
                    sample(&missing)
                )
            },
        },
        Check {
            name: "no_orphan_rows",
            ok: orphans.is_empty(),
            detail: if orphans.is_empty() {
                format!("{} rows, each a ledger order", rows.len())
            } else {
                format!(
                    "{} rows without a ledger order (the ledger lost wins: their units may be \
                     sold again; `seckillctl activity rebuild`): {}",
                    orphans.len(),
                    sample(&orphans)
                )
            },
        },
        Check {
            name: "rows_match_ledger",
            ok: mismatched.is_empty() && itemless.is_empty(),
            detail: if mismatched.is_empty() && itemless.is_empty() {
                "user, quantity and status agree; one item each".to_owned()
            } else {
                format!(
                    "{} rows differ from the ledger ({}), {} rows without exactly one item ({})",
                    mismatched.len(),
                    sample(&mismatched),
                    itemless.len(),
                    sample(&itemless)
                )
            },
        },
    ]
}
