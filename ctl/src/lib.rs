//! `seckillctl`, the operators' CLI: preload and inspect activities, verify the ledger, mint
//! tokens. Human output by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 1 `verify` found a violation; 2 anything went wrong (bad input, unknown
//! activity, Redis unreachable) — and then Redis was not written.
//!
//! Where things live:
//!
//! - [`cli`]: the flags and subcommands (clap types only).
//! - [`error`]: [`CtlError`], every failure with the message the operator reads.
//! - `activity`: `activity create | load | show | list | close | restock`, the load-file format
//!   and the activity report.
//! - `verify`: `verify`, the ledger invariants and the ledger-vs-database checks.
//! - `reconcile`: `reconcile`, republishing ledger orders missing from the database.
//! - `order`: `order list | show | refund`.
//! - `token`: `token mint`.
//! - this file: [`run`], which connects to what a command needs and dispatches to its module.

#![recursion_limit = "256"]

pub mod cli;
pub mod error;

mod activity;
mod order;
mod reconcile;
mod token;
mod verify;

use std::process::ExitCode;

use seckill_ledger::{Ledger, LedgerConfig};
use seckill_service::redact_url;
use seckill_store::Store;

pub use cli::Cli;
use cli::{Command, TokenCommand};
pub use error::CtlError;

/// Runs one command; prints its output; returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("seckillctl: {e}");
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
            token::mint(user, users, &prefix, &ttl, out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Activity(command) => {
            let ledger = connect_ledger(&cli.redis_url).await?;
            // Activities are recorded in the database first (the ledger can be rebuilt from it).
            let store = if command.needs_database() {
                let store = connect_store(&cli.database_url).await?;
                store.migrate().await?;
                Some(store)
            } else {
                None
            };
            activity::run(&ledger, store.as_ref(), command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            id,
            json,
            ledger_only,
        } => {
            let id = activity::parse_activity_id(&id)?;
            let ledger = connect_ledger(&cli.redis_url).await?;
            let store = if ledger_only {
                None
            } else {
                Some(connect_store(&cli.database_url).await?)
            };
            verify::verify(&ledger, store.as_ref(), &id, json).await
        }
        Command::Order(command) => {
            let ledger = connect_ledger(&cli.redis_url).await?;
            let store = connect_store(&cli.database_url).await?;
            order::run(&ledger, &store, &cli.rocketmq_namesrv, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile { id, json } => {
            let id = activity::parse_activity_id(&id)?;
            let ledger = connect_ledger(&cli.redis_url).await?;
            let store = connect_store(&cli.database_url).await?;
            reconcile::reconcile(&ledger, &store, &cli.rocketmq_namesrv, &id, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Parked { limit, json } => {
            let store = connect_store(&cli.database_url).await?;
            // The writer creates the table; a database it never ran on has nothing parked.
            store.migrate().await?;
            let parked = store.parked(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&parked)?);
            } else if parked.is_empty() {
                println!("nothing parked");
            } else {
                for p in &parked {
                    println!(
                        "{}  {}  {}  {}: {}\n    {}",
                        seckill_service::clock::rfc3339(p.parked_at_ms),
                        p.key,
                        p.topic,
                        p.reason,
                        p.detail,
                        p.body
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How long one Redis command of `seckillctl` may take.
pub const OPERATOR_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn connect_ledger(url: &str) -> Result<Ledger, CtlError> {
    let mut config = LedgerConfig::new(url);
    // One command at a time: a pool would only add connections to open.
    config.connections = 1;
    // An operator's command may wait: `verify` walks every order of a sale (seconds on a big
    // one), and a busy Redis answers late. The servers' 2 s bound is for requests, not this.
    config.response_timeout = OPERATOR_REPLY_TIMEOUT;
    Ledger::connect(&config)
        .await
        .map_err(|source| CtlError::RedisUnreachable {
            url: redact_url(url),
            source,
        })
}

async fn connect_store(url: &str) -> Result<Store, CtlError> {
    Store::connect(url, 2)
        .await
        .map_err(|source| CtlError::DatabaseUnreachable {
            url: redact_url(url),
            source,
        })
}
