//! `activity create | load | show | list | close | restock`: the activity spec shared by `create`
//! flags and `load` files, the load-file parser, and the `show` / `list` report.

use std::collections::HashSet;
use std::path::Path;

use seckill_ledger::activity::MAX_STOCK;
use seckill_ledger::ledger::{CloseOutcome, Counters, CreateOutcome, RestockOutcome};
use seckill_ledger::{ActivityId, ActivityKeys, ActivityMeta, Ledger, NewActivity, OrderId};
use seckill_service::clock::rfc3339;
use seckill_service::{now_ms, parse_duration};
use seckill_store::{Recorded, Store};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::{ActivityCommand, CreateArgs};
use crate::error::CtlError;

pub(crate) fn parse_activity_id(id: &str) -> Result<ActivityId, CtlError> {
    ActivityId::parse(id).map_err(|e| CtlError::Input(e.to_string()))
}

/// `now` or RFC 3339, as unix milliseconds.
fn parse_time(text: &str, what: &str) -> Result<i64, CtlError> {
    if text == "now" {
        return Ok(now_ms());
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            CtlError::input(format!(
                "{what} {text:?} is not RFC 3339 (e.g. 2026-11-22T10:00:00Z) or `now`: {e}"
            ))
        })
}

/// One activity as written in `activity load` files and `create` flags, before validation: the
/// two go through the same checks so a file cannot create what the flags would refuse.
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

impl From<CreateArgs> for ActivitySpec {
    fn from(args: CreateArgs) -> Self {
        ActivitySpec {
            id: args.id,
            name: args.name,
            stock: args.stock,
            price_cents: args.price_cents,
            per_user_limit: args.per_user_limit,
            starts_at: args.starts_at,
            ends_at: args.ends_at,
            duration: args.duration,
        }
    }
}

impl ActivitySpec {
    fn validate(self) -> Result<NewActivity, CtlError> {
        let id = parse_activity_id(&self.id)?;
        let starts_at_ms = parse_time(&self.starts_at, "starts_at")?;
        let ends_at_ms = match (&self.ends_at, &self.duration) {
            (Some(end), None) => parse_time(end, "ends_at")?,
            (None, Some(duration)) => {
                let duration = parse_duration(duration)?;
                if duration.is_zero() {
                    return Err(CtlError::input(format!(
                        "activity {id}: duration must be positive"
                    )));
                }
                let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
                starts_at_ms.saturating_add(millis)
            }
            _ => {
                return Err(CtlError::input(format!(
                    "activity {id}: give exactly one of ends_at or duration"
                )))
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
        activity
            .validate()
            .map_err(|e| CtlError::Input(e.to_string()))?;
        Ok(activity)
    }
}

/// A load file holds either `[[activity]]` tables (TOML) or a plain list (JSON).
#[derive(Deserialize)]
#[serde(untagged)]
enum LoadFile {
    Table { activity: Vec<ActivitySpec> },
    List(Vec<ActivitySpec>),
}

/// Every activity of the file, validated, or the first problem: `load` writes nothing unless
/// the whole file is good.
fn read_load_file(path: &Path) -> Result<Vec<NewActivity>, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtlError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |source: Box<dyn std::error::Error + Send + Sync>| CtlError::ActivityFile {
        path: path.to_owned(),
        source,
    };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let parsed: LoadFile = match extension {
        "json" => serde_json::from_str(&text).map_err(|e| invalid(e.into()))?,
        "toml" => toml::from_str(&text).map_err(|e| invalid(e.into()))?,
        // No telling extension: TOML first, then JSON; report the TOML error if both fail.
        _ => match toml::from_str(&text) {
            Ok(parsed) => parsed,
            Err(toml_error) => {
                serde_json::from_str(&text).map_err(|_| invalid(toml_error.into()))?
            }
        },
    };
    let specs = match parsed {
        LoadFile::Table { activity } | LoadFile::List(activity) => activity,
    };
    if specs.is_empty() {
        return Err(CtlError::input(format!(
            "{}: no activities in the file",
            path.display()
        )));
    }
    let activities = specs
        .into_iter()
        .map(ActivitySpec::validate)
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    for activity in &activities {
        if !seen.insert(&activity.id) {
            return Err(CtlError::input(format!(
                "{}: activity {} appears twice",
                path.display(),
                activity.id
            )));
        }
    }
    Ok(activities)
}

pub(crate) async fn run(
    ledger: &Ledger,
    store: Option<&Store>,
    command: ActivityCommand,
) -> Result<(), CtlError> {
    let store = || store.ok_or_else(|| CtlError::input("this command needs the database"));
    match command {
        ActivityCommand::Create(args) => create(ledger, store()?, args).await,
        ActivityCommand::Load { file } => load(ledger, store()?, &file).await,
        ActivityCommand::Show { id, json } => show(ledger, &id, json).await,
        ActivityCommand::List { json } => list(ledger, json).await,
        ActivityCommand::Close { id } => {
            let id = parse_activity_id(&id)?;
            match ledger.close(&ActivityKeys::new(&id)).await? {
                CloseOutcome::Closed => println!("closed activity {id}"),
                CloseOutcome::AlreadyClosed => println!("activity {id} was already closed"),
                CloseOutcome::NotFound => return Err(CtlError::UnknownActivity(id)),
            }
            record_ledger_meta(ledger, store()?, &id).await
        }
        ActivityCommand::Restock { id, stock_total } => {
            restock(ledger, store()?, &id, stock_total).await
        }
        ActivityCommand::Rebuild { id, force } => rebuild(ledger, store()?, &id, force).await,
    }
}

/// After a change the ledger made (close, restock): the database records the activity as the
/// ledger now holds it (adopting one created before the `activities` table existed).
async fn record_ledger_meta(
    ledger: &Ledger,
    store: &Store,
    id: &ActivityId,
) -> Result<(), CtlError> {
    let meta = ledger
        .meta(id)
        .await?
        .ok_or_else(|| CtlError::UnknownActivity(id.clone()))?;
    store.save_activity(&meta).await.map_err(|e| {
        CtlError::input(format!(
            "activity {id}: the ledger changed but the database record did not ({e}); run the \
             same command again"
        ))
    })
}

/// Records `activity` in the database before the ledger hears of it; refused if the database
/// holds another definition under its id.
async fn record_new(store: &Store, activity: &NewActivity) -> Result<(), CtlError> {
    match store.record_activity(activity).await? {
        Recorded::New | Recorded::Same => Ok(()),
        Recorded::Different(_) => Err(CtlError::input(format!(
            "activity {} is recorded in the database with another definition; nothing changed",
            activity.id
        ))),
    }
}

async fn create(ledger: &Ledger, store: &Store, args: CreateArgs) -> Result<(), CtlError> {
    let activity = ActivitySpec::from(args).validate()?;
    if ledger.meta(&activity.id).await?.is_some() {
        return Err(CtlError::input(format!(
            "activity {} already exists; nothing changed",
            activity.id
        )));
    }
    record_new(store, &activity).await?;
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
        CreateOutcome::Exists => Err(CtlError::input(format!(
            "activity {} already exists; nothing changed",
            activity.id
        ))),
    }
}

async fn load(ledger: &Ledger, store: &Store, file: &Path) -> Result<(), CtlError> {
    let activities = read_load_file(file)?;
    // Checked up front so that a file naming an existing activity loads nothing at all.
    for activity in &activities {
        if ledger.meta(&activity.id).await?.is_some() {
            return Err(CtlError::input(format!(
                "activity {} already exists; nothing loaded",
                activity.id
            )));
        }
        if let Some(recorded) = store.activity(&activity.id).await? {
            if recorded != activity.recorded() {
                return Err(CtlError::input(format!(
                    "activity {} is recorded in the database with another definition; nothing \
                     loaded",
                    activity.id
                )));
            }
        }
    }
    // Database first, then the ledger.
    for activity in &activities {
        record_new(store, activity).await?;
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
            return Err(CtlError::input(format!(
                "activity {} was created by someone else meanwhile; stopped after {} of {}",
                activity.id,
                bar.position(),
                activities.len()
            )));
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

async fn show(ledger: &Ledger, id: &str, json: bool) -> Result<(), CtlError> {
    let id = parse_activity_id(id)?;
    let Some((meta, counters)) = ledger.snapshot(&id).await? else {
        return Err(CtlError::UnknownActivity(id));
    };
    let view = ActivityReport::new(&meta, &counters);
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", view.human());
    }
    Ok(())
}

async fn list(ledger: &Ledger, json: bool) -> Result<(), CtlError> {
    let mut reports = Vec::new();
    for id in ledger.list_activities().await? {
        // An activity deleted between the listing and its snapshot is simply not shown.
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

async fn restock(
    ledger: &Ledger,
    store: &Store,
    id: &str,
    stock_total: i64,
) -> Result<(), CtlError> {
    let id = parse_activity_id(id)?;
    if stock_total < 0 {
        return Err(CtlError::input("stock must not be negative"));
    }
    match ledger.restock(&ActivityKeys::new(&id), stock_total).await? {
        RestockOutcome::OutOfRange => Err(CtlError::input(format!(
            "stock must be at most {MAX_STOCK} units (2^53); nothing changed"
        ))),
        RestockOutcome::Restocked { stock_left } => {
            println!("activity {id}: total stock {stock_total}, {stock_left} available");
            record_ledger_meta(ledger, store, &id).await
        }
        RestockOutcome::BelowTaken { taken } => Err(CtlError::input(format!(
            "activity {id}: {taken} units are already won or sold; the total cannot go below that; nothing changed"
        ))),
        RestockOutcome::NotFound => Err(CtlError::UnknownActivity(id)),
    }
}

/// `activity rebuild`: the ledger again from the database (definition and order rows) plus the
/// orders the ledger still holds that have no row yet (won, on their way to the writer; those
/// in the outbox stay there for the relay).
async fn rebuild(ledger: &Ledger, store: &Store, id: &str, force: bool) -> Result<(), CtlError> {
    let id = parse_activity_id(id)?;
    // Run it with the sale closed and its writers idle (or accept, with --force, that a
    // release or confirm running meanwhile may be overwritten: `verify` afterwards tells).
    let Some(meta) = store.activity(&id).await? else {
        return Err(CtlError::input(format!(
            "activity {id} is not recorded in the database (created before the activities table, \
             or never): nothing to rebuild it from"
        )));
    };
    let now = now_ms();
    if !meta.closed && now >= meta.starts_at_ms && now < meta.ends_at_ms && !force {
        return Err(CtlError::input(format!(
            "activity {id} is on sale now: buyers would meet a ledger being replaced; close it \
             first, or pass --force; nothing changed"
        )));
    }
    let keys = ActivityKeys::new(&id);
    let rows = store.activity_records(id.as_str()).await?;
    let stock_returned: HashSet<OrderId> = rows
        .iter()
        .filter(|(_, returned)| *returned)
        .map(|(o, _)| o.order_id)
        .collect();
    let mut orders: Vec<_> = rows.into_iter().map(|(o, _)| o).collect();
    let persisted: HashSet<OrderId> = orders.iter().map(|o| o.order_id).collect();
    let in_flight: Vec<_> = ledger
        .orders(&keys)
        .await?
        .into_iter()
        .filter(|o| !persisted.contains(&o.order_id))
        .collect();
    let in_flight_ids: HashSet<OrderId> = in_flight.iter().map(|o| o.order_id).collect();
    let outbox: Vec<(OrderId, i64)> = ledger
        .outbox(&keys)
        .await?
        .into_iter()
        .filter(|(order, _)| in_flight_ids.contains(order))
        .collect();
    let (rows, kept) = (orders.len(), in_flight.len());
    orders.extend(in_flight);
    let counters = ledger
        .rebuild(&meta, &orders, &stock_returned, &outbox)
        .await?;
    println!(
        "rebuilt activity {id}: {rows} orders from the database, {kept} on their way to it; \
         stock {}, reserved {}, sold {} (total {})",
        counters.stock, counters.reserved, counters.sold, meta.stock_total
    );
    Ok(())
}

/// `activity show` / `list` output; its field names are the `--json` contract.
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
