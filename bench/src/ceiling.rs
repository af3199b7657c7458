//! The ceilings of this machine beside the gateway's figures: what Redis itself does running
//! the deduct script (the `/healthz` ceiling is a plain wrk run, in [`crate::run`]).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use seckill_ledger::ledger::LedgerConfig;
use seckill_ledger::scripts::SCRIPTS;
use seckill_ledger::{ActivityId, ActivityKeys, Ledger, NewActivity};
use seckill_service::now_ms;

use crate::report::DeductCeiling;
use crate::run::{Options, Service};
use crate::tools::{parse_redis_benchmark, run_tool};

/// Attempts per `deduct.lua` call in the batched ceiling (the gateway's batches vary with the
/// load; the report shows their mean beside this).
pub const CEILING_BATCH: usize = 16;

/// redis-benchmark running EVALSHA of the deduct script against a private redis-server with
/// an append-only file fsynced as `appendfsync` says, each call carrying `attempts` attempts,
/// each by a new random user with a new random order id: every attempt a winner, the gateway's
/// hot path in Redis.
pub async fn redis_ceiling(
    opts: &Options,
    attempts: usize,
    appendfsync: &'static str,
) -> anyhow::Result<DeductCeiling> {
    let (_server, port, ledger) = private_redis(opts, appendfsync).await?;
    let id = ActivityId::parse("ceiling").map_err(anyhow::Error::msg)?;
    let now = now_ms() as i64;
    ledger
        .create_activity(&NewActivity {
            id: id.clone(),
            name: "ceiling".into(),
            price_cents: 100,
            stock_total: 1_000_000_000_000,
            per_user_limit: 1,
            starts_at_ms: now - 1000,
            ends_at_ms: now + 3_600_000,
        })
        .await?;
    let keys = ActivityKeys::new(&id);
    // About as long as a scenario at the single-attempt rate, whatever the batch.
    let requests = ((opts.duration.as_secs() * 30_000) as usize / attempts).max(20_000);
    let (port, connections, requests_arg) = (
        port.to_string(),
        opts.connections.to_string(),
        requests.to_string(),
    );
    let mut script_keys: Vec<String> = keys.deduct_keys().map(String::from).to_vec();
    // The order-id index key of each attempt's random order id (redis-benchmark draws each
    // placeholder anew).
    script_keys.extend(
        (0..attempts).map(|_| format!("{}__rand_int__", seckill_ledger::keys::ORDER_INDEX_PREFIX)),
    );
    let key_count = script_keys.len().to_string();
    let mut args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-c",
        &connections,
        "-n",
        &requests_arg,
        "-r",
        "1000000000",
        "--csv",
        "EVALSHA",
        &SCRIPTS.deduct.sha,
        &key_count,
    ]
    .map(String::from)
    .to_vec();
    args.extend(script_keys);
    // ARGV: the activity, then per attempt a new random user and a new random order id.
    args.push("ceiling".into());
    for _ in 0..attempts {
        args.extend(["u__rand_int__", "1", "__rand_int__", "bench"].map(String::from));
    }
    let stdout = run_tool("redis-benchmark", &args).await?;
    let mut calls = parse_redis_benchmark(&stdout)?;
    calls.command = format!(
        "redis-benchmark -c{} -n{requests} -r 1e9 EVALSHA <deduct> {} <keys> ceiling \
         {attempts}×(u__rand_int__ 1 __rand_int__ bench), appendfsync {appendfsync}",
        opts.connections,
        7 + attempts
    );
    // Every attempt must have been a win: otherwise the figure is not the hot path's.
    // (HLEN, not the audit script: that one reads every order, too slow for a response timeout.)
    let orders: i64 = redis::cmd("HLEN")
        .arg(&keys.orders)
        .query_async(&mut ledger.connection())
        .await?;
    let wanted = (requests * attempts) as i64;
    if orders < wanted * 99 / 100 {
        bail!(
            "redis-benchmark made {orders} orders of {wanted} attempts: the calls did not run the deduct path"
        );
    }
    Ok(DeductCeiling {
        attempts_per_call: attempts,
        appendfsync,
        wins_per_second: calls.per_second * attempts as f64,
        calls,
    })
}

/// A fresh redis-server configured like the stack's (AOF, fsync as asked) on a free port.
/// A port found free can be taken before the server binds it: the server then exits at once,
/// and another port is tried.
async fn private_redis(
    opts: &Options,
    appendfsync: &str,
) -> anyhow::Result<(Service, u16, Ledger)> {
    // Empty every time: an earlier run's append-only file would be replayed first.
    let dir = opts.work.join("redis-ceiling");
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let mut server = Service {
            name: "redis-server (ceiling)",
            child: Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    appendfsync,
                ])
                .arg("--dir")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server")?,
            log: opts.work.join("redis-ceiling.log"),
        };
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..200 {
            if server.alive().is_err() {
                break; // the port was taken meanwhile: try another
            }
            if let Ok(ledger) = Ledger::connect(&LedgerConfig::new(url.clone())).await {
                return Ok((server, port, ledger));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    bail!(
        "no private redis-server would start (see {})",
        opts.work.join("redis-ceiling.log").display()
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
