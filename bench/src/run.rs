//! One harness run: start the gateway and the order writer (release builds), measure the
//! machine's ceilings, run each scenario, wait for the writer to drain, check every invariant,
//! report.
//!
//! Everything runs on 127.0.0.1 and every load is bounded by its duration.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;
use seckill_core::ledger::LedgerConfig;
use seckill_core::scripts::SCRIPTS;
use seckill_core::time::{now_ms, now_unix};
use seckill_core::{ActivityId, ActivityKeys, Ledger, NewActivity};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::checks::{check_sale, Check, Sources, Told};
use crate::cpu::CpuTimes;
use crate::report::{
    thousands, Ceilings, Machine, OutcomeLatency, Persistence, Report, Sample, ScenarioReport,
};
use crate::scrape::{http_get, scrape, Scrape};
use crate::tools::{parse_redis_benchmark, run_tool, Oha, RedisBench, Wrk};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Small stock, far more users: a real flash sale.
    Sale,
    /// Huge stock: every attempt goes through Redis and wins.
    Hot,
    /// Stock 0: answered from the gateway's local sold-out flag.
    Soldout,
    /// The same few users again and again: the idempotent repeat path.
    Repeat,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Soldout,
        Scenario::Repeat,
        Scenario::Sale,
        Scenario::Hot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Sale => "sale",
            Scenario::Hot => "hot",
            Scenario::Soldout => "soldout",
            Scenario::Repeat => "repeat",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scenario::Sale => "small stock, far more users: a real flash sale",
            Scenario::Hot => "huge stock: every attempt goes through Redis and wins",
            Scenario::Soldout => "stock 0: answered from the local sold-out flag",
            Scenario::Repeat => "the same users again and again: their existing order",
        }
    }

    /// (users, stock, per-user limit)
    fn shape(self) -> (u64, i64, u32) {
        match self {
            Scenario::Sale => (200_000, 10_000, 1),
            Scenario::Hot => (200_000, 100_000_000, 1),
            Scenario::Soldout => (200_000, 0, 1),
            Scenario::Repeat => (1_000, 1_000_000, 1),
        }
    }
}

pub struct Options {
    pub scenarios: Vec<Scenario>,
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
    /// 0: no oha pass.
    pub oha_duration: Duration,
    pub drain_timeout: Duration,
    /// Overrides every scenario's user count.
    pub users: Option<u64>,
    /// Release binaries: seckill-gateway, seckill-order-writer, seckillctl.
    pub bin: PathBuf,
    /// bench/wrk, with attempt.lua and report.lua.
    pub wrk_scripts: PathBuf,
    /// Logs and token files of this run.
    pub work: PathBuf,
    pub port: u16,
    pub redis_url: String,
    pub database_url: String,
    pub namesrv: String,
    pub writer_group: String,
    pub command: String,
}

/// A child process killed when dropped.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    fn spawn(
        name: &'static str,
        program: &Path,
        env: &[(&str, String)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(program)
            .envs(env.iter().map(|(k, v)| (k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it: bench/run.sh does)",
                    program.display()
                )
            })?;
        Ok(Self { name, child, log })
    }

    /// An error if it has exited, with the end of its log.
    fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rfc3339_now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| now_unix().to_string())
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.work)?;
    let started_at = rfc3339_now();
    let run_id = format!("bench-{}", now_unix());
    let addr = format!("127.0.0.1:{}", opts.port);
    let auth_secret = format!("{run_id}-auth-{}-0123456789", std::process::id());
    let env: Vec<(&str, String)> = vec![
        ("SECKILL_REDIS_URL", opts.redis_url.clone()),
        ("SECKILL_DATABASE_URL", opts.database_url.clone()),
        ("SECKILL_ROCKETMQ_NAMESRV", opts.namesrv.clone()),
        ("SECKILL_AUTH_SECRET", auth_secret),
        (
            "SECKILL_PAYMENT_SECRET",
            format!("{run_id}-payment-0123456789"),
        ),
    ];
    let activities: Vec<(Scenario, ActivityId)> = opts
        .scenarios
        .iter()
        .map(|s| Ok((*s, ActivityId::parse(&format!("{run_id}-{}", s.name()))?)))
        .collect::<Result<_, String>>()
        .map_err(anyhow::Error::msg)?;

    say(&format!(
        "run {run_id}: logs and tokens in {}",
        opts.work.display()
    ));
    let ledger = Ledger::connect(&LedgerConfig::new(opts.redis_url.clone()))
        .await
        .context("connecting to Redis")?;
    let (database, connection) = tokio_postgres::connect(&opts.database_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", opts.database_url))?;
    tokio::spawn(connection);
    forget_earlier_runs(&ledger, &database).await?;

    // The writer handles this run's activities only.
    let mut writer_env = env.clone();
    // One consumer group for every bench run on this machine: a new group starts from the
    // topic's first message and reads (and skips) the whole history; this one resumes.
    writer_env.push(("SECKILL_WRITER_GROUP", opts.writer_group.clone()));
    writer_env.push((
        "SECKILL_WRITER_ACTIVITIES",
        activities
            .iter()
            .map(|(_, id)| id.as_str())
            .collect::<Vec<_>>()
            .join(","),
    ));
    writer_env.push(("SECKILL_WRITER_START_AT", rfc3339_now()));
    let mut writer = Service::spawn(
        "seckill-order-writer",
        &opts.bin.join("seckill-order-writer"),
        &writer_env,
        opts.work.join("writer.log"),
    )?;
    let mut gateway_env = env.clone();
    gateway_env.extend([
        ("SECKILL_LISTEN", addr.clone()),
        // The limits are not what is measured: open them wide.
        ("SECKILL_RATE_GLOBAL", "1000000000".to_owned()),
        ("SECKILL_RATE_PER_USER", "1000000".to_owned()),
    ]);
    let mut gateway = Service::spawn(
        "seckill-gateway",
        &opts.bin.join("seckill-gateway"),
        &gateway_env,
        opts.work.join("gateway.log"),
    )?;
    wait_ready(&addr, &mut gateway).await?;
    say("gateway ready (Redis and RocketMQ reachable); writer joining its consumer group");

    settle().await?;
    let machine = machine(&database).await;
    say(&format!(
        "machine: {} cores, {}, {}",
        machine.cores,
        machine.cpu,
        machine
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    say(&format!(
        "ceiling 1/2: GET /healthz with wrk for {} s",
        opts.duration.as_secs()
    ));
    let healthz = Wrk {
        threads: opts.threads,
        connections: opts.connections,
        duration: opts.duration,
        script: &opts.wrk_scripts.join("report.lua"),
        url: &format!("http://{addr}/healthz"),
        script_args: Vec::new(),
    }
    .run()
    .await?;
    say(&format!(
        "  healthz: {} req/s, p99 {:.2} ms",
        thousands(healthz.per_second),
        healthz.latency_ms.p99
    ));
    say("ceiling 2/2: redis-benchmark EVALSHA of the deduct script, on a private redis-server");
    let redis_evalsha = redis_ceiling(opts).await?;
    say(&format!(
        "  EVALSHA deduct: {} calls/s, p99 {:.2} ms",
        thousands(redis_evalsha.per_second),
        redis_evalsha.latency_ms.p99
    ));
    let ceilings = Ceilings {
        healthz,
        redis_evalsha,
    };

    let mut scenarios = Vec::new();
    for (scenario, id) in &activities {
        writer.alive()?;
        gateway.alive()?;
        settle().await?;
        let report = run_scenario(
            opts, &env, &addr, &ledger, &database, &ceilings, *scenario, id,
        )
        .await
        .with_context(|| format!("scenario {}", scenario.name()))?;
        scenarios.push(report);
    }
    let ok = scenarios.iter().all(|s| s.verdict.ok);
    Ok(Report {
        started_at,
        command: opts.command.clone(),
        machine,
        threads: opts.threads,
        connections: opts.connections,
        duration_s: opts.duration.as_secs(),
        ceilings,
        scenarios,
        ok,
    })
}

/// Prefix of the activities the harness creates (`bench-<unix time>-<scenario>`).
const RUN_PREFIX: &str = "bench-";

/// Removes the activities (ledger keys, order index, rows) of earlier harness runs: they were
/// kept for inspection until now, and a `hot` run leaves a hundred thousand orders behind.
async fn forget_earlier_runs(
    ledger: &Ledger,
    database: &tokio_postgres::Client,
) -> anyhow::Result<()> {
    let earlier: Vec<ActivityId> = ledger
        .list_activities()
        .await?
        .into_iter()
        .filter(|id| id.as_str().starts_with(RUN_PREFIX))
        .collect();
    let mut redis = ledger.connection();
    for id in &earlier {
        let keys = ActivityKeys::new(id);
        let orders: Vec<String> = redis::cmd("HKEYS")
            .arg(&keys.orders)
            .query_async(&mut redis)
            .await?;
        for chunk in orders.chunks(1000) {
            let index: Vec<String> = chunk
                .iter()
                .filter_map(|o| o.parse().ok())
                .map(seckill_core::keys::order_index)
                .collect();
            if !index.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&index)
                    .query_async(&mut redis)
                    .await?;
            }
        }
        let _: i64 = redis::cmd("DEL")
            .arg(&keys.all()[..])
            .query_async(&mut redis)
            .await?;
        let _: i64 = redis::cmd("SREM")
            .arg(seckill_core::keys::ACTIVITIES)
            .arg(id.as_str())
            .query_async(&mut redis)
            .await?;
    }
    let pattern = format!("{RUN_PREFIX}%");
    let mut rows = 0;
    // Children first (foreign keys); an interrupted clean-up is finished by the next run.
    for statement in [
        "DELETE FROM order_items WHERE order_id IN (SELECT order_id FROM orders WHERE activity_id LIKE $1)",
        "DELETE FROM payments WHERE order_id IN (SELECT order_id FROM orders WHERE activity_id LIKE $1)",
        "DELETE FROM orders WHERE activity_id LIKE $1",
    ] {
        rows = match database.execute(statement, &[&pattern]).await {
            Ok(n) => n,
            // A machine where no writer ever ran has no tables yet: nothing to forget.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
            Err(e) => return Err(e.into()),
        };
    }
    if !earlier.is_empty() || rows > 0 {
        say(&format!(
            "removed {} activities and {} order rows of earlier runs",
            earlier.len(),
            thousands(rows as f64)
        ));
    }
    Ok(())
}

/// Busy share of all cores over `window`, from /proc/stat.
async fn busy(window: Duration) -> anyhow::Result<f64> {
    fn read() -> anyhow::Result<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .context("no cpu line in /proc/stat")?
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Ok((total, idle))
    }
    let (total0, idle0) = read()?;
    tokio::time::sleep(window).await;
    let (total1, idle1) = read()?;
    let total = total1.saturating_sub(total0).max(1);
    Ok(1.0 - idle1.saturating_sub(idle0) as f64 / total as f64)
}

/// Waits (at most 3 minutes) until the machine is quiet — below 15 % busy for two seconds in a
/// row — so that one phase's leftovers (the writer catching up on the topic, mirroring statuses,
/// PostgreSQL checkpointing) do not eat into the next phase's figures.
async fn settle() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet = 0;
    let mut said = false;
    while quiet < 2 {
        let share = busy(Duration::from_secs(1)).await?;
        quiet = if share < 0.15 { quiet + 1 } else { 0 };
        if quiet == 0 && !said {
            say(&format!(
                "  waiting for the machine to settle ({:.0} % busy)",
                share * 100.0
            ));
            said = true;
        }
        if Instant::now() > deadline {
            say(&format!(
                "  the machine is still {:.0} % busy after 3 minutes; going on",
                share * 100.0
            ));
            break;
        }
    }
    Ok(())
}

pub fn say(line: &str) {
    println!("[bench] {line}");
}

async fn wait_ready(addr: &str, gateway: &mut Service) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        gateway.alive()?;
        if http_get(addr, "/readyz").await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the gateway on {addr} was not ready within 90 s (see its log)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_scenario(
    opts: &Options,
    env: &[(&str, String)],
    addr: &str,
    ledger: &Ledger,
    database: &tokio_postgres::Client,
    ceilings: &Ceilings,
    scenario: Scenario,
    id: &ActivityId,
) -> anyhow::Result<ScenarioReport> {
    let name = scenario.name();
    let (default_users, stock, limit) = scenario.shape();
    let users = opts.users.unwrap_or(default_users);
    say(&format!(
        "scenario {name}: {} — {} users, stock {}, limit {limit}",
        scenario.what(),
        thousands(users as f64),
        thousands(stock as f64)
    ));
    let seckillctl = opts.bin.join("seckillctl");
    let ctl_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ctl = |args: Vec<String>| {
        let seckillctl = seckillctl.clone();
        let ctl_env = ctl_env.clone();
        async move {
            let output = tokio::process::Command::new(&seckillctl)
                .args(&args)
                .envs(ctl_env)
                .output()
                .await
                .with_context(|| format!("running {}", seckillctl.display()))?;
            if !output.status.success() {
                bail!(
                    "seckillctl {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            Ok(())
        }
    };
    ctl(vec![
        "activity".into(),
        "create".into(),
        "--id".into(),
        id.to_string(),
        "--name".into(),
        format!("bench {name}"),
        "--stock".into(),
        stock.to_string(),
        "--price-cents".into(),
        "100".into(),
        "--per-user-limit".into(),
        limit.to_string(),
        "--starts-at".into(),
        "now".into(),
        "--duration".into(),
        "2h".into(),
    ])
    .await?;
    let tokens = opts.work.join(format!("{name}-tokens.txt"));
    ctl(vec![
        "token".into(),
        "mint".into(),
        "--users".into(),
        format!("1..{users}"),
        "--prefix".into(),
        format!("{name}u"),
        "--ttl".into(),
        "3h".into(),
        "--out".into(),
        tokens.display().to_string(),
    ])
    .await?;
    let one_token = std::fs::read_to_string(&tokens)?
        .lines()
        .next()
        .context("no token minted")?
        .to_owned();
    say(&format!(
        "  activity {id} created, {} tokens minted",
        thousands(users as f64)
    ));

    let before = scrape(addr).await?;
    let (stop, stopped) = oneshot::channel();
    let sampler = tokio::spawn(sample(addr.to_owned(), name, before.clone(), stopped));
    let url = format!("http://{addr}");
    let cpu_before = CpuTimes::now();
    let wrk = Wrk {
        threads: opts.threads,
        connections: opts.connections,
        duration: opts.duration,
        script: &opts.wrk_scripts.join("attempt.lua"),
        url: &url,
        script_args: vec![tokens.display().to_string(), id.to_string()],
    }
    .run()
    .await;
    let cpu_cores = CpuTimes::now().cores_since(&cpu_before);
    let _ = stop.send(());
    let timeline = sampler.await?;
    let wrk = wrk?;
    say(&format!(
        "  wrk: {} attempts/s, p50 {:.2} ms, p99 {:.2} ms, answers {:?}",
        thousands(wrk.per_second),
        wrk.latency_ms.p50,
        wrk.latency_ms.p99,
        wrk.statuses
    ));
    let oha = if opts.oha_duration.is_zero() {
        None
    } else {
        let oha = Oha {
            connections: opts.connections,
            duration: opts.oha_duration,
            method: "POST",
            headers: vec![format!("Authorization: Bearer {one_token}")],
            url: &format!("{url}/v1/activities/{id}/orders"),
        }
        .run()
        .await?;
        say(&format!(
            "  oha (one buyer): {} req/s, p99 {:.2} ms, answers {:?}",
            thousands(oha.per_second),
            oha.latency_ms.p99,
            oha.statuses
        ));
        Some(oha)
    };
    let load_ended = Instant::now();
    let window = settled_scrape(addr).await?.since(&before);
    let wins = window.count("won");

    let persistence = drain(opts, ledger, database, id, wins, load_ended).await?;
    let told = Told {
        wins,
        demand_exceeded_stock: users * u64::from(limit) > stock as u64,
    };
    let db_url = opts.database_url.as_str();
    let redis_url = opts.redis_url.as_str();
    let sources = Sources {
        ledger,
        database,
        seckillctl: &seckillctl,
        env: &[
            ("SECKILL_REDIS_URL", redis_url),
            ("SECKILL_DATABASE_URL", db_url),
        ],
    };
    let mut verdict = check_sale(&sources, id, told).await?;
    // What the clients saw must agree with what the gateway counted.
    let seen = wrk.status(202) + oha.as_ref().map_or(0, |o| o.status(202));
    verdict.checks.insert(
        0,
        Check::new(
            "answers_agree",
            seen <= wins,
            format!(
                "clients saw {seen} wins, the gateway answered {wins} (answers cut off at the end \
                 of a timed run are not seen)"
            ),
        ),
    );
    verdict.ok = verdict.checks.iter().all(|c| c.ok);
    verdict.print();

    let outcomes = window
        .outcomes()
        .map(|(outcome, count)| {
            let q = |q| {
                window
                    .quantile(Some(outcome), q)
                    .map_or(0.0, |d| d.as_secs_f64() * 1e3)
            };
            (
                outcome.to_owned(),
                OutcomeLatency {
                    count,
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    p999_ms: q(0.999),
                },
            )
        })
        .collect();
    Ok(ScenarioReport {
        name: name.to_owned(),
        what: scenario.what().to_owned(),
        activity: id.to_string(),
        users,
        stock,
        per_user_limit: limit,
        ratio_to_healthz: wrk.per_second / ceilings.healthz.per_second.max(1e-9),
        ratio_to_redis_evalsha: wrk.per_second / ceilings.redis_evalsha.per_second.max(1e-9),
        wrk,
        oha,
        outcomes,
        wins,
        redis_calls: window.redis_calls,
        sold_out_short_circuits: window.sold_out_short_circuits,
        persistence,
        cpu_cores,
        timeline,
        verdict,
    })
}

/// Reads the metrics every second until told to stop; prints progress.
async fn sample(
    addr: String,
    name: &'static str,
    first: Scrape,
    mut stop: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut previous = first.clone();
    let start = Instant::now();
    let mut last = start;
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let Ok(now) = scrape(&addr).await else {
            continue;
        };
        let elapsed = last.elapsed().as_secs_f64();
        last = Instant::now();
        let window = now.since(&previous);
        let point = Sample {
            t_s: start.elapsed().as_secs_f64(),
            attempts_per_s: window.total() as f64 / elapsed,
            p99_ms: window.quantile(None, 0.99).map(|d| d.as_secs_f64() * 1e3),
        };
        say(&format!(
            "  {name} {:>4.0} s  {:>8} attempts/s  p99 {:>7}  won so far {}",
            point.t_s,
            thousands(point.attempts_per_s),
            point
                .p99_ms
                .map_or("–".to_owned(), |p| format!("{p:.2} ms")),
            thousands(now.since(&first).count("won") as f64)
        ));
        samples.push(point);
        previous = now;
    }
    samples
}

/// The metrics once no attempt is in flight any more (the load tools have stopped).
async fn settled_scrape(addr: &str) -> anyhow::Result<Scrape> {
    for _ in 0..100 {
        let now = scrape(addr).await?;
        if now.inflight == 0 {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("attempts still in flight 10 s after the load stopped")
}

/// Waits until the database holds every won order and the outbox is empty (or the timeout);
/// then reads the persistence figures.
async fn drain(
    opts: &Options,
    ledger: &Ledger,
    database: &tokio_postgres::Client,
    id: &ActivityId,
    wins: u64,
    load_ended: Instant,
) -> anyhow::Result<Persistence> {
    let keys = ActivityKeys::new(id);
    let deadline = load_ended + opts.drain_timeout;
    let mut last_said = Instant::now();
    loop {
        let rows = rows(database, id).await?;
        let outbox = ledger.audit(&keys).await?.map_or(0, |a| a.outbox);
        if rows as u64 >= wins && outbox == 0 {
            break;
        }
        if Instant::now() > deadline {
            say(&format!(
                "  gave up waiting after {} s: {rows} rows of {wins} wins, outbox {outbox}",
                opts.drain_timeout.as_secs()
            ));
            break;
        }
        if last_said.elapsed() > Duration::from_secs(5) {
            say(&format!(
                "  waiting for the writer: {} of {} rows, outbox {outbox}",
                thousands(rows as f64),
                thousands(wins as f64)
            ));
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_s = load_ended.elapsed().as_secs_f64();
    let row = database
        .query_one(
            "SELECT count(*),
                    1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY persisted_at - created_at))::float8,
                    1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY persisted_at - created_at))::float8,
                    CASE WHEN count(*) > 1 THEN count(*) / greatest(extract(epoch FROM max(persisted_at) - min(persisted_at))::float8, 0.001) END
               FROM orders WHERE activity_id = $1",
            &[&id.as_str()],
        )
        .await?;
    let persistence = Persistence {
        rows: row.get(0),
        win_to_row_p50_ms: row.get(1),
        win_to_row_p99_ms: row.get(2),
        writer_orders_per_s: row.get(3),
        drain_s,
    };
    say(&format!(
        "  persisted {} rows in {drain_s:.1} s after the load; win→row p50 {:?} ms, p99 {:?} ms",
        thousands(persistence.rows as f64),
        persistence.win_to_row_p50_ms.map(f64::round),
        persistence.win_to_row_p99_ms.map(f64::round)
    ));
    Ok(persistence)
}

async fn rows(database: &tokio_postgres::Client, id: &ActivityId) -> anyhow::Result<i64> {
    Ok(database
        .query_one(
            "SELECT count(*) FROM orders WHERE activity_id = $1",
            &[&id.as_str()],
        )
        .await?
        .get(0))
}

/// redis-benchmark running EVALSHA of the deduct script against a private redis-server,
/// configured like the stack's (append-only file, fsync every second), each call by a new
/// random user with a new random order id: every call a winner, the gateway's hot path in Redis.
async fn redis_ceiling(opts: &Options) -> anyhow::Result<RedisBench> {
    let port = free_port()?;
    // Empty every time: an earlier run's append-only file would be replayed first.
    let dir = opts.work.join("redis-ceiling");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut server = Service {
        name: "redis-server (ceiling)",
        child: Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
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
    let mut ledger = None;
    for _ in 0..200 {
        server.alive()?;
        if let Ok(l) = Ledger::connect(&LedgerConfig::new(url.clone())).await {
            ledger = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ledger = ledger.context("the private redis-server did not answer")?;
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
    let requests = (opts.duration.as_secs() * 40_000).max(50_000);
    let mut args: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-c",
        &opts.connections.to_string(),
        "-n",
        &requests.to_string(),
        "-r",
        "1000000000",
        "--csv",
        "EVALSHA",
        &SCRIPTS.deduct.sha,
        "7",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(
        [
            &keys.meta,
            &keys.stock,
            &keys.reserved,
            &keys.buyers,
            &keys.user_order,
            &keys.orders,
            &keys.outbox,
        ]
        .iter()
        .map(|k| (*k).clone()),
    );
    args.extend(["u__rand_int__", "1", "__rand_int__", "bench", "ceiling"].map(String::from));
    let stdout = run_tool("redis-benchmark", &args).await?;
    let mut bench = parse_redis_benchmark(&stdout)?;
    bench.command = format!(
        "redis-benchmark -c{} -n{requests} -r 1e9 EVALSHA <deduct> 7 <keys> u__rand_int__ 1 __rand_int__ bench ceiling",
        opts.connections
    );
    // Every call must have been a win: otherwise the figure is not the hot path's.
    // (HLEN, not the audit script: that one reads every order, too slow for a response timeout.)
    let orders: i64 = redis::cmd("HLEN")
        .arg(&keys.orders)
        .query_async(&mut ledger.connection())
        .await?;
    if orders < requests as i64 * 99 / 100 {
        bail!(
            "redis-benchmark made {orders} orders of {requests} calls: the calls did not run the deduct path"
        );
    }
    Ok(bench)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn machine(database: &tokio_postgres::Client) -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let mut versions = BTreeMap::new();
    let first_line = |program: &str, args: &[&str]| -> Option<String> {
        let out = Command::new(program).args(args).output().ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines().next().map(|l| l.trim().to_owned())
    };
    if let Some(v) = first_line("redis-server", &["--version"]) {
        let v = v
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or(&v);
        versions.insert("redis".to_owned(), v.to_owned());
    }
    if let Ok(row) = database.query_one("SHOW server_version", &[]).await {
        let v: String = row.get(0);
        versions.insert(
            "postgresql".to_owned(),
            v.split_whitespace().next().unwrap_or("").to_owned(),
        );
    }
    if let Some(list) = first_line(
        "sh",
        &["-c", "cargo install --list | grep '^rocketmq-broker '"],
    ) {
        versions.insert(
            "rocketmq-broker".to_owned(),
            list.split_whitespace()
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(':')
                .to_owned(),
        );
    }
    for (name, args) in [
        ("wrk", ["-v"]),
        ("oha", ["--version"]),
        ("rustc", ["--version"]),
    ] {
        if let Some(v) = first_line(name, &args) {
            if let Some(v) = v.split_whitespace().nth(1) {
                versions.insert(name.to_owned(), v.to_owned());
            }
        }
    }
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = first_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        versions,
        commit: if dirty {
            format!("{commit}-dirty")
        } else {
            commit
        },
    }
}
