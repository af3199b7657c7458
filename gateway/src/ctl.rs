//! `seckillctl`, the operators' CLI: preload and inspect activities, verify the ledger, mint
//! tokens. Human output by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 1 `verify` found a violation; 2 anything went wrong (bad input, unknown
//! activity, Redis unreachable) — and then Redis was not written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use seckill_core::ledger::{
    Audit, CloseOutcome, Counters, CreateOutcome, LedgerConfig, RestockOutcome,
};
use seckill_core::time::{now_ms, now_unix, parse_duration};
use seckill_core::{token, ActivityId, ActivityKeys, ActivityMeta, Ledger, NewActivity, UserId};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::query::rfc3339;
use seckill_core::{OrderId, OrderRecord};
use seckill_order_writer::store::{Store, StoredOrder};
use std::collections::HashMap;

#[derive(Parser, Debug)]
#[command(
    name = "seckillctl",
    version,
    about = "Operate seckill flash sales: activities, tokens, ledger checks"
)]
pub struct Cli {
    /// Redis holding the ledger.
    #[arg(
        long,
        global = true,
        env = "SECKILL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// PostgreSQL holding the persisted orders (verify, reconcile).
    #[arg(long, global = true, env = "SECKILL_DATABASE_URL", default_value = seckill_order_writer::store::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// RocketMQ name server (reconcile).
    #[arg(long, global = true, env = "SECKILL_ROCKETMQ_NAMESRV", default_value = seckill_core::mq::DEFAULT_NAMESRV)]
    pub rocketmq_namesrv: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, load, inspect, close and restock activities.
    #[command(subcommand)]
    Activity(ActivityCommand),
    /// Mint user bearer tokens (needs SECKILL_AUTH_SECRET).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check an activity: the ledger balances, no buyer over the limit, and the ledger and the
    /// database agree (every won order is a row with its item, no row without a ledger order).
    Verify {
        id: String,
        #[arg(long)]
        json: bool,
        /// Skip the database comparison (ledger checks only).
        #[arg(long)]
        ledger_only: bool,
    },
    /// Inspect or refund one order.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Republish the activity's ledger orders that are missing from the database.
    Reconcile {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActivityCommand {
    /// Create one activity.
    Create(CreateArgs),
    /// Create every activity of a TOML or JSON file (all or nothing if any already exists).
    Load { file: PathBuf },
    /// Show one activity with its live counters.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List every activity.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End an activity now.
    Close { id: String },
    /// Set an activity's total stock to N (not below what is already won or sold).
    Restock {
        id: String,
        #[arg(allow_negative_numbers = true)]
        stock_total: i64,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    /// Units on sale.
    #[arg(long, allow_negative_numbers = true)]
    pub stock: i64,
    #[arg(long, allow_negative_numbers = true)]
    pub price_cents: i64,
    #[arg(long, default_value_t = 1)]
    pub per_user_limit: u32,
    /// RFC 3339 time or `now`.
    #[arg(long)]
    pub starts_at: String,
    /// RFC 3339 time.
    #[arg(
        long,
        conflicts_with = "duration",
        required_unless_present = "duration"
    )]
    pub ends_at: Option<String>,
    /// Length of the sale, e.g. 30m, 2h.
    #[arg(long)]
    pub duration: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum OrderCommand {
    /// The order as the ledger and the database hold it, with its payments.
    Show {
        order_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Refund a paid order (or one paid after its cancellation): → refunding → refunded.
    Refund { order_id: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// One token for --user, or one per line for --users 1..N (users <prefix>1 … <prefix>N).
    Mint {
        #[arg(long, conflicts_with = "users", required_unless_present = "users")]
        user: Option<String>,
        /// A range `FIRST..LAST` (inclusive) of numbered users.
        #[arg(long)]
        users: Option<String>,
        /// Prefix of numbered users.
        #[arg(long, default_value = "user")]
        prefix: String,
        /// How long the tokens stay valid.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A failure, phrased for the operator.
#[derive(Debug)]
pub struct CtlError(String);

impl<E: std::fmt::Display> From<E> for CtlError {
    fn from(e: E) -> Self {
        CtlError(e.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, CtlError> {
    Err(CtlError(message.into()))
}

/// Runs one command; prints its output; returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(CtlError(message)) => {
            eprintln!("seckillctl: {message}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CtlError> {
    match cli.command {
        Command::Token(TokenCommand::Mint {
            user,
            users,
            prefix,
            ttl,
            out,
        }) => {
            mint(user, users, &prefix, &ttl, out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Activity(command) => {
            let ledger = connect(&cli.redis_url).await?;
            activity(&ledger, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            id,
            json,
            ledger_only,
        } => {
            let id = parse_id(&id)?;
            let ledger = connect(&cli.redis_url).await?;
            let store = if ledger_only {
                None
            } else {
                Some(connect_store(&cli.database_url).await?)
            };
            verify(&ledger, store.as_ref(), &id, json).await
        }
        Command::Order(command) => {
            let ledger = connect(&cli.redis_url).await?;
            let store = connect_store(&cli.database_url).await?;
            order(&ledger, &store, &cli.rocketmq_namesrv, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile { id, json } => {
            let id = parse_id(&id)?;
            let ledger = connect(&cli.redis_url).await?;
            let store = connect_store(&cli.database_url).await?;
            reconcile(&ledger, &store, &cli.rocketmq_namesrv, &id, json).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(url: &str) -> Result<Ledger, CtlError> {
    let mut config = LedgerConfig::new(url);
    config.connections = 1;
    Ledger::connect(&config)
        .await
        .map_err(|e| CtlError(format!("cannot reach Redis at {url}: {e}")))
}

async fn connect_store(url: &str) -> Result<Store, CtlError> {
    Store::connect(url, 2)
        .await
        .map_err(|e| CtlError(format!("cannot reach the database at {}: {e}", redact(url))))
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn parse_id(id: &str) -> Result<ActivityId, CtlError> {
    Ok(ActivityId::parse(id)?)
}

/// `now` or RFC 3339, as unix milliseconds.
fn parse_time(text: &str, what: &str) -> Result<i64, CtlError> {
    if text == "now" {
        return Ok(now_ms());
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            CtlError(format!(
                "{what} {text:?} is not RFC 3339 (e.g. 2026-11-22T10:00:00Z) or `now`: {e}"
            ))
        })
}

/// One activity as written in `activity load` files and `create` flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivitySpec {
    id: String,
    name: String,
    stock: i64,
    price_cents: i64,
    #[serde(default = "one")]
    per_user_limit: u32,
    starts_at: String,
    ends_at: Option<String>,
    duration: Option<String>,
}

fn one() -> u32 {
    1
}

impl ActivitySpec {
    fn validate(self) -> Result<NewActivity, CtlError> {
        let id = parse_id(&self.id)?;
        let starts_at_ms = parse_time(&self.starts_at, "starts_at")?;
        let ends_at_ms = match (&self.ends_at, &self.duration) {
            (Some(end), None) => parse_time(end, "ends_at")?,
            (None, Some(duration)) => {
                let duration = parse_duration(duration).map_err(CtlError)?;
                if duration.is_zero() {
                    return fail(format!("activity {id}: duration must be positive"));
                }
                starts_at_ms.saturating_add(duration.as_millis() as i64)
            }
            _ => {
                return fail(format!(
                    "activity {id}: give exactly one of ends_at or duration"
                ))
            }
        };
        let activity = NewActivity {
            id,
            name: self.name,
            price_cents: self.price_cents,
            stock_total: self.stock,
            per_user_limit: self.per_user_limit,
            starts_at_ms,
            ends_at_ms,
        };
        activity.validate().map_err(CtlError)?;
        Ok(activity)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LoadFile {
    Table { activity: Vec<ActivitySpec> },
    List(Vec<ActivitySpec>),
}

fn read_load_file(path: &Path) -> Result<Vec<NewActivity>, CtlError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CtlError(format!("cannot read {}: {e}", path.display())))?;
    let invalid = |e: &dyn std::fmt::Display| {
        CtlError(format!(
            "{}: not a valid activity file: {e}",
            path.display()
        ))
    };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let parsed: LoadFile = match extension {
        "json" => serde_json::from_str(&text).map_err(|e| invalid(&e))?,
        "toml" => toml::from_str(&text).map_err(|e| invalid(&e))?,
        // No telling extension: TOML first, then JSON; report the TOML error if both fail.
        _ => match toml::from_str(&text) {
            Ok(parsed) => parsed,
            Err(toml_error) => serde_json::from_str(&text).map_err(|_| invalid(&toml_error))?,
        },
    };
    let specs = match parsed {
        LoadFile::Table { activity } | LoadFile::List(activity) => activity,
    };
    if specs.is_empty() {
        return fail(format!("{}: no activities in the file", path.display()));
    }
    let activities = specs
        .into_iter()
        .map(ActivitySpec::validate)
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    for activity in &activities {
        if !seen.insert(&activity.id) {
            return fail(format!(
                "{}: activity {} appears twice",
                path.display(),
                activity.id
            ));
        }
    }
    Ok(activities)
}

async fn activity(ledger: &Ledger, command: ActivityCommand) -> Result<(), CtlError> {
    match command {
        ActivityCommand::Create(args) => {
            let activity = ActivitySpec {
                id: args.id,
                name: args.name,
                stock: args.stock,
                price_cents: args.price_cents,
                per_user_limit: args.per_user_limit,
                starts_at: args.starts_at,
                ends_at: args.ends_at,
                duration: args.duration,
            }
            .validate()?;
            match ledger.create_activity(&activity).await? {
                CreateOutcome::Created => {
                    println!(
                        "created activity {} ({} units, {} → {})",
                        activity.id,
                        activity.stock_total,
                        rfc3339(activity.starts_at_ms),
                        rfc3339(activity.ends_at_ms)
                    );
                    Ok(())
                }
                CreateOutcome::Exists => fail(format!(
                    "activity {} already exists; nothing changed",
                    activity.id
                )),
            }
        }
        ActivityCommand::Load { file } => {
            let activities = read_load_file(&file)?;
            for activity in &activities {
                if ledger.meta(&activity.id).await?.is_some() {
                    return fail(format!(
                        "activity {} already exists; nothing loaded",
                        activity.id
                    ));
                }
            }
            let bar = indicatif::ProgressBar::new(activities.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            for activity in &activities {
                bar.set_message(activity.id.to_string());
                if ledger.create_activity(activity).await? == CreateOutcome::Exists {
                    bar.abandon();
                    return fail(format!(
                        "activity {} was created by someone else meanwhile; stopped after {} of {}",
                        activity.id,
                        bar.position(),
                        activities.len()
                    ));
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!(
                "loaded {} activities from {}",
                activities.len(),
                file.display()
            );
            Ok(())
        }
        ActivityCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            let Some((meta, counters)) = ledger.snapshot(&id).await? else {
                return fail(format!("unknown activity {id}"));
            };
            let view = ActivityReport::new(&meta, &counters);
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", view.human());
            }
            Ok(())
        }
        ActivityCommand::List { json } => {
            let mut reports = Vec::new();
            for id in ledger.list_activities().await? {
                if let Some((meta, counters)) = ledger.snapshot(&id).await? {
                    reports.push(ActivityReport::new(&meta, &counters));
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if reports.is_empty() {
                println!("no activities");
            } else {
                println!(
                    "{:<24} {:<9} {:>10} {:>10}  window",
                    "id", "state", "available", "total"
                );
                for r in &reports {
                    println!(
                        "{:<24} {:<9} {:>10} {:>10}  {} → {}",
                        r.id, r.state, r.stock_left, r.stock_total, r.starts_at, r.ends_at
                    );
                }
            }
            Ok(())
        }
        ActivityCommand::Close { id } => {
            let id = parse_id(&id)?;
            match ledger.close(&ActivityKeys::new(&id)).await? {
                CloseOutcome::Closed => println!("closed activity {id}"),
                CloseOutcome::AlreadyClosed => println!("activity {id} was already closed"),
                CloseOutcome::NotFound => return fail(format!("unknown activity {id}")),
            }
            Ok(())
        }
        ActivityCommand::Restock { id, stock_total } => {
            let id = parse_id(&id)?;
            if stock_total < 0 {
                return fail("stock must not be negative");
            }
            match ledger.restock(&ActivityKeys::new(&id), stock_total).await? {
                RestockOutcome::Restocked { stock_left } => {
                    println!("activity {id}: total stock {stock_total}, {stock_left} available");
                    Ok(())
                }
                RestockOutcome::BelowTaken { taken } => fail(format!(
                    "activity {id}: {taken} units are already won or sold; the total cannot go below that; nothing changed"
                )),
                RestockOutcome::NotFound => fail(format!("unknown activity {id}")),
            }
        }
    }
}

/// `activity show` / `list` output.
#[derive(Debug, Serialize)]
struct ActivityReport {
    id: String,
    name: String,
    state: &'static str,
    price_cents: i64,
    per_user_limit: u32,
    starts_at: String,
    ends_at: String,
    closed: bool,
    stock_total: i64,
    stock_left: i64,
    reserved: i64,
    sold: i64,
    orders: i64,
    outbox: i64,
}

impl ActivityReport {
    fn new(meta: &ActivityMeta, counters: &Counters) -> Self {
        ActivityReport {
            id: meta.id.to_string(),
            name: meta.name.clone(),
            state: meta.state(now_ms(), counters.stock).as_str(),
            price_cents: meta.price_cents,
            per_user_limit: meta.per_user_limit,
            starts_at: rfc3339(meta.starts_at_ms),
            ends_at: rfc3339(meta.ends_at_ms),
            closed: meta.closed,
            stock_total: meta.stock_total,
            stock_left: counters.stock,
            reserved: counters.reserved,
            sold: counters.sold,
            orders: counters.orders,
            outbox: counters.outbox,
        }
    }

    fn human(&self) -> String {
        format!(
            "activity  {}\nname      {}\nstate     {}{}\nprice     {}.{:02} ({} cents)\nwindow    {} → {}\nlimit     {} per user\nstock     total {} · available {} · reserved {} · sold {}\norders    {} (not yet published: {})\n",
            self.id,
            self.name,
            self.state,
            if self.closed { " (closed)" } else { "" },
            self.price_cents / 100,
            self.price_cents % 100,
            self.price_cents,
            self.starts_at,
            self.ends_at,
            self.per_user_limit,
            self.stock_total,
            self.stock_left,
            self.reserved,
            self.sold,
            self.orders,
            self.outbox
        )
    }
}

/// One invariant and whether it held.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

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

async fn verify(
    ledger: &Ledger,
    store: Option<&Store>,
    id: &ActivityId,
    json: bool,
) -> Result<ExitCode, CtlError> {
    let keys = ActivityKeys::new(id);
    let Some(audit) = ledger.audit(&keys).await? else {
        return fail(format!("unknown activity {id}"));
    };
    let mut checks = checks(&audit);
    let mut database_rows = None;
    if let Some(store) = store {
        let orders = ledger.orders(&keys).await?;
        let rows = store.activity_orders(id.as_str()).await?;
        database_rows = Some(rows.len());
        checks.extend(database_checks(&orders, &rows, audit.outbox));
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

fn mint(
    user: Option<String>,
    users: Option<String>,
    prefix: &str,
    ttl: &str,
    out: Option<&Path>,
) -> Result<(), CtlError> {
    let secret = std::env::var("SECKILL_AUTH_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            CtlError("SECKILL_AUTH_SECRET is required to mint tokens (the gateway's secret)".into())
        })?;
    let ttl: Duration = parse_duration(ttl).map_err(CtlError)?;
    if ttl.is_zero() {
        return fail("--ttl must be positive");
    }
    let expires = now_unix() + ttl.as_secs().max(1);
    let ids: Vec<UserId> = match (user, users) {
        (Some(user), None) => vec![UserId::parse(&user)?],
        (None, Some(range)) => {
            let (first, last) = range
                .split_once("..")
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                .filter(|(a, b)| a <= b)
                .ok_or_else(|| {
                    CtlError(format!(
                        "--users {range:?}: expected FIRST..LAST, e.g. 1..10000"
                    ))
                })?;
            if last - first >= 10_000_000 {
                return fail("--users: at most 10 million tokens at once");
            }
            (first..=last)
                .map(|n| UserId::parse(&format!("{prefix}{n}")))
                .collect::<Result<_, _>>()?
        }
        _ => return fail("give --user U or --users FIRST..LAST"),
    };
    let mut text = String::with_capacity(ids.len() * 96);
    for id in &ids {
        text.push_str(&token::mint(secret.as_bytes(), id, expires));
        text.push('\n');
    }
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| CtlError(format!("cannot write {}: {e}", path.display())))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

/// Ledger vs database: every won order is a row with its item, no row without a ledger order,
/// statuses mirrored.
fn database_checks(
    orders: &[OrderRecord],
    rows: &HashMap<OrderId, StoredOrder>,
    outbox: i64,
) -> Vec<Check> {
    let sample = |ids: &[OrderId]| {
        let shown: Vec<String> = ids.iter().take(5).map(|id| id.to_string()).collect();
        let more = if ids.len() > 5 { ", …" } else { "" };
        format!("{}{more}", shown.join(", "))
    };
    let in_ledger: HashMap<OrderId, &OrderRecord> =
        orders.iter().map(|o| (o.order_id, o)).collect();
    let missing: Vec<OrderId> = orders
        .iter()
        .filter(|o| !rows.contains_key(&o.order_id))
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
                format!("{} ledger orders, all in the database", orders.len())
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
                    "{} rows without a ledger order: {}",
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

#[derive(Debug, Serialize)]
struct ReconcileReport {
    activity: String,
    ledger_orders: usize,
    missing: usize,
    republished: usize,
}

/// Republishes ledger orders with no database row; the writer persists them idempotently.
async fn reconcile(
    ledger: &Ledger,
    store: &Store,
    namesrv: &str,
    id: &ActivityId,
    json: bool,
) -> Result<(), CtlError> {
    let keys = ActivityKeys::new(id);
    if ledger.meta(id).await?.is_none() {
        return fail(format!("unknown activity {id}"));
    }
    let orders = ledger.orders(&keys).await?;
    let rows = store.activity_orders(id.as_str()).await?;
    let missing: Vec<OrderRecord> = orders
        .iter()
        .filter(|o| !rows.contains_key(&o.order_id))
        .cloned()
        .collect();
    let mut republished = 0;
    if !missing.is_empty() {
        let runtime = seckill_core::mq::MqRuntime::start("seckillctl")?;
        let mut producer =
            rocketmq_client_rust::DefaultMQProducer::builder(runtime.client_runtime())
                .producer_group("seckillctl_reconcile")
                .name_server_addr(namesrv.to_owned())
                .build();
        producer.start().await.map_err(|e| {
            CtlError(format!(
                "cannot start a RocketMQ producer on {namesrv}: {e}"
            ))
        })?;
        let bar = indicatif::ProgressBar::new(missing.len() as u64);
        for chunk in missing.chunks(seckill_core::mq::MAX_BATCH) {
            let messages: Vec<_> = chunk.iter().map(seckill_core::mq::order_message).collect();
            if let Err(e) = producer.send_batch_with_timeout(messages, 5_000).await {
                bar.abandon();
                producer.shutdown().await;
                return fail(format!(
                    "republished {republished} of {} missing orders, then the broker failed: {e}",
                    missing.len()
                ));
            }
            republished += chunk.len();
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        producer.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), runtime.shutdown()).await;
    }
    let report = ReconcileReport {
        activity: id.to_string(),
        ledger_orders: orders.len(),
        missing: missing.len(),
        republished,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "reconcile {id}: {} ledger orders, {} missing from the database, {} republished",
            report.ledger_orders, report.missing, report.republished
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct OrderReport {
    order_id: String,
    activity_id: String,
    user_id: String,
    quantity: u32,
    amount_cents: i64,
    ledger_status: &'static str,
    database_status: Option<&'static str>,
    payments: Vec<seckill_order_writer::store::Payment>,
}

async fn order(
    ledger: &Ledger,
    store: &Store,
    namesrv: &str,
    command: OrderCommand,
) -> Result<(), CtlError> {
    let parse = |id: &str| OrderId::parse(id).map_err(CtlError);
    match command {
        OrderCommand::Show { order_id, json } => {
            let order_id = parse(&order_id)?;
            let Some(record) = ledger.order(order_id).await? else {
                return fail(format!("unknown order {order_id}"));
            };
            let report = OrderReport {
                order_id: order_id.to_string(),
                activity_id: record.activity_id.clone(),
                user_id: record.user_id.clone(),
                quantity: record.quantity,
                amount_cents: record.amount_cents,
                ledger_status: record.status.as_str(),
                database_status: store.status(order_id).await?.map(|(_, s)| s.as_str()),
                payments: store.payments(order_id).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "order     {}\nactivity  {}\nuser      {}\nquantity  {}\namount    {} cents\nstatus    {} (ledger), {} (database)",
                    report.order_id,
                    report.activity_id,
                    report.user_id,
                    report.quantity,
                    report.amount_cents,
                    report.ledger_status,
                    report.database_status.unwrap_or("no row yet"),
                );
                for payment in &report.payments {
                    println!(
                        "payment   {} · {} cents",
                        payment.payment_id, payment.amount_cents
                    );
                }
            }
            Ok(())
        }
        OrderCommand::Refund { order_id } => {
            let order_id = parse(&order_id)?;
            if ledger.order(order_id).await?.is_none() {
                return fail(format!("unknown order {order_id}"));
            }
            let runtime = seckill_core::mq::MqRuntime::start("seckillctl")?;
            let lifecycle = seckill_order_writer::lifecycle::Lifecycle::start(
                &runtime,
                namesrv,
                store.clone(),
                ledger.clone(),
                Duration::from_secs(1800),
            )
            .await?;
            let result = lifecycle.refund(order_id).await;
            lifecycle.shutdown().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), runtime.shutdown()).await;
            match result.map_err(|e| CtlError(e.to_string()))? {
                seckill_core::OrderStatus::Refunded => {
                    println!("order {order_id} refunded");
                    Ok(())
                }
                other => fail(format!(
                    "order {order_id} is {}: only paid orders (or orders paid after cancellation) can be refunded",
                    other.as_str()
                )),
            }
        }
    }
}
