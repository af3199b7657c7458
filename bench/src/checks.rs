//! The invariants a finished sale must satisfy, checked from the outside: the ledger in Redis,
//! the rows in PostgreSQL, what the gateway told the buyers, and `seckillctl verify`.
//!
//! Every check reads the real stores; nothing here trusts the gateway's or the writer's word.
//! The database is read through `seckill_store::Store`, the one crate that spells the schema.

use std::path::Path;

use anyhow::Context;
use seckill_ledger::{ActivityId, ActivityKeys, Ledger};
use serde::Serialize;

/// What the buyers were told during the run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Told {
    /// Attempts answered `202 won`.
    pub wins: u64,
    /// True when more units were asked for than the activity had: then every unit must be won.
    pub demand_exceeded_stock: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &'static str, ok: bool, detail: String) -> Self {
        Self { name, ok, detail }
    }
}

/// The outcome of every check of one activity (serialized with `ok`: all of them passed).
#[derive(Clone, Debug)]
pub struct Verdict {
    pub activity: String,
    pub checks: Vec<Check>,
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            activity: &'a str,
            ok: bool,
            checks: &'a [Check],
        }
        Shown {
            activity: &self.activity,
            ok: self.ok(),
            checks: &self.checks,
        }
        .serialize(serializer)
    }
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn violations(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    pub fn failed(&self, name: &str) -> bool {
        self.checks.iter().any(|c| c.name == name && !c.ok)
    }

    pub fn print(&self) {
        println!("checks for {}", self.activity);
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            println!("  {mark} {:<20} {}", check.name, check.detail);
        }
    }
}

/// Where the checks read from.
pub struct Sources<'a> {
    pub ledger: &'a Ledger,
    pub database: &'a seckill_store::Store,
    /// `seckillctl`, run as `seckillctl verify ID` with the environment given.
    pub seckillctl: &'a Path,
    pub env: &'a [(&'a str, &'a str)],
}

/// Runs every check of `activity` against what the buyers were `told`.
pub async fn check_sale(
    sources: &Sources<'_>,
    activity: &ActivityId,
    told: Told,
) -> anyhow::Result<Verdict> {
    let audit = sources
        .ledger
        .audit(&ActivityKeys::new(activity))
        .await?
        .with_context(|| format!("activity {activity} is not in the ledger"))?;
    let taken = audit.taken();
    let mut checks = Vec::new();

    checks.push(if told.demand_exceeded_stock {
        Check::new(
            "wins_equal_stock",
            told.wins == audit.stock_total as u64,
            format!(
                "{} wins for {} units (demand exceeded stock)",
                told.wins, audit.stock_total
            ),
        )
    } else {
        Check::new(
            "wins_equal_stock",
            true,
            format!(
                "not applicable: demand below stock ({} wins of {} units)",
                told.wins, audit.stock_total
            ),
        )
    });

    checks.push(Check::new(
        "no_oversell",
        audit.stock >= 0 && taken <= audit.stock_total && told.wins <= audit.stock_total as u64,
        format!(
            "stock {} ≥ 0; reserved + sold {taken} ≤ total {}; wins {} ≤ total",
            audit.stock, audit.stock_total, told.wins
        ),
    ));

    checks.push(Check::new(
        "ledger_balanced",
        audit.balanced(),
        audit.balance_line(),
    ));

    let over_in_database = sources
        .database
        .users_over_limit(activity.as_str(), audit.per_user_limit)
        .await?;
    checks.push(Check::new(
        "no_user_over_limit",
        audit.over_limit.is_empty() && over_in_database.is_empty(),
        if audit.over_limit.is_empty() && over_in_database.is_empty() {
            format!(
                "no buyer above {} in the ledger or the database",
                audit.per_user_limit
            )
        } else {
            format!(
                "above the limit of {}: ledger {:?}, database {:?}",
                audit.per_user_limit,
                first(&audit.over_limit),
                first(&over_in_database)
            )
        },
    ));

    checks.push(Check::new(
        "buyers_hold_wins",
        audit.units_held == taken && audit.units_in_live_orders == taken,
        format!(
            "buyers hold {} units, live orders {}, reserved + sold {taken}",
            audit.units_held, audit.units_in_live_orders
        ),
    ));

    let rows = sources.database.order_count(activity.as_str()).await?;
    checks.push(Check::new(
        "rows_equal_wins",
        rows as u64 == told.wins && rows == audit.orders,
        format!(
            "{rows} rows, {} wins told, {} ledger orders",
            told.wins, audit.orders
        ),
    ));

    checks.push(Check::new(
        "outbox_empty",
        audit.outbox == 0,
        format!("{} orders not yet confirmed published", audit.outbox),
    ));

    checks.push(seckillctl_verify(sources, activity).await?);

    Ok(Verdict {
        activity: activity.to_string(),
        checks,
    })
}

fn first<T: std::fmt::Debug>(items: &[T]) -> &[T] {
    &items[..items.len().min(3)]
}

/// `seckillctl verify ID`: the operators' own check must agree.
async fn seckillctl_verify(sources: &Sources<'_>, activity: &ActivityId) -> anyhow::Result<Check> {
    let output = tokio::process::Command::new(sources.seckillctl)
        .args(["verify", activity.as_str()])
        .envs(sources.env.iter().copied())
        .output()
        .await
        .with_context(|| format!("running {}", sources.seckillctl.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("FAIL"))
        .map(str::trim)
        .collect();
    let detail = match (output.status.code(), failures.is_empty()) {
        (Some(0), _) => "clean".to_owned(),
        (Some(1), false) => failures.join("; "),
        (code, _) => format!(
            "exit {code:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    };
    Ok(Check::new(
        "seckillctl_verify",
        output.status.success(),
        detail,
    ))
}
