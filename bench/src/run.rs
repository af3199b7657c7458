//! One harness run: start the gateway and the order writer (release builds), measure the
//! machine's ceilings, run each scenario, wait for the writer to drain, check every invariant,
//! report.
//!
//! Everything runs on 127.0.0.1 and every load is bounded by its duration.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;
use seckill_ledger::ledger::LedgerConfig;
use seckill_ledger::{ActivityId, ActivityKeys, Ledger};
use seckill_service::{now_unix, redact_url};
use seckill_store::Store;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::ceiling::{redis_ceiling, CEILING_BATCH};
use crate::checks::{check_sale, Check, Sources, Told, Verdict};
use crate::cpu::{busy_share, CpuTimes};
use crate::crowd::{self, Crowd, Shape};
use crate::machine::machine;
use crate::report::{
    thousands, Ceilings, CrowdReport, Drain, OutcomeLatency, Persistence, Report, Sample,
    ScenarioReport,
};
use crate::scrape::{http_get, quantile, scrape, scrape_all, Buckets, Scrape};
use crate::tools::{Load, Oha, Wrk};

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
    /// 200,000 orders won with the writer stopped, then the writer started: how fast it drains.
    Drain,
    /// `hot` with the stack's Redis switched to `appendfsync everysec` for the scenario.
    HotEverysec,
    /// `hot` with the stack's Redis switched to `appendfsync always` for the scenario.
    HotAlways,
    /// `sale` while a hostile crowd (never-reading and slowloris connections, a flood of made-up
    /// ids and forged tokens) hits the same gateway.
    Crowd,
    /// `sale` on the cluster topology: Redis Cluster (`SECKILL_REDIS_URL` naming its nodes), two
    /// brokers, two gateways (the load split between them) and two writers in one group. Runs
    /// alone: the whole stack differs.
    Cluster,
}

impl Scenario {
    /// What `--scenario` defaults to (`drain` runs only when asked: it takes a minute more).
    pub const ALL: [Scenario; 5] = [
        Scenario::Soldout,
        Scenario::Repeat,
        Scenario::Sale,
        Scenario::Hot,
        Scenario::Crowd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Sale => "sale",
            Scenario::Hot => "hot",
            Scenario::Soldout => "soldout",
            Scenario::Repeat => "repeat",
            Scenario::Drain => "drain",
            Scenario::HotEverysec => "hot-everysec",
            Scenario::HotAlways => "hot-always",
            Scenario::Crowd => "crowd",
            Scenario::Cluster => "cluster",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scenario::Sale => "small stock, far more users: a real flash sale",
            Scenario::Hot => "huge stock: every attempt goes through Redis and wins",
            Scenario::Soldout => "stock 0: answered from the local sold-out flag",
            Scenario::Repeat => "the same users again and again: their existing order",
            Scenario::Drain => {
                "every unit won with the writer stopped, then the writer started: its drain rate"
            }
            Scenario::HotEverysec => "`hot` with Redis fsyncing its AOF once a second",
            Scenario::HotAlways => "`hot` with Redis fsyncing its AOF before every reply",
            Scenario::Crowd => {
                "`sale` while 6,000 hostile connections and a flood of made-up ids and forged \
                 tokens hit the same gateway"
            }
            Scenario::Cluster => {
                "`sale` on Redis Cluster, two brokers, two gateways (the load split between them) \
                 and two writers"
            }
        }
    }

    /// (users, stock, per-user limit)
    fn shape(self) -> (u64, i64, u32) {
        match self {
            Scenario::Sale | Scenario::Crowd | Scenario::Cluster => (200_000, 10_000, 1),
            // Enough users that none buys twice within the run at 50k wins/s (10 s).
            Scenario::Hot => (500_000, 100_000_000, 1),
            Scenario::Soldout => (200_000, 0, 1),
            Scenario::Repeat => (1_000, 1_000_000, 1),
            Scenario::Drain => (250_000, DRAIN_ORDERS, 1),
            Scenario::HotEverysec | Scenario::HotAlways => Scenario::Hot.shape(),
        }
    }

    /// Whether every attempt of the load generator must be a new winner (`hot` and its fsync
    /// variants).
    fn every_attempt_wins(self) -> bool {
        matches!(
            self,
            Scenario::Hot | Scenario::HotEverysec | Scenario::HotAlways
        )
    }

    /// The `appendfsync` mode the scenario runs the stack's Redis with (`None`: as it is).
    fn appendfsync(self) -> Option<&'static str> {
        match self {
            Scenario::HotEverysec => Some("everysec"),
            Scenario::HotAlways => Some("always"),
            _ => None,
        }
    }
}

/// Orders waiting in the topic when the `drain` scenario starts the writer.
const DRAIN_ORDERS: i64 = 200_000;

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
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
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
            // `SECKILL_BENCH_LOG` (a RUST_LOG filter) for a diagnosis; warnings otherwise.
            .env(
                "RUST_LOG",
                std::env::var("SECKILL_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
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
    pub(crate) fn alive(&mut self) -> anyhow::Result<()> {
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

/// The order writer, which the `drain` scenario stops and starts again (same consumer group,
/// so it resumes where it stopped).
struct WriterProcess {
    program: PathBuf,
    env: Vec<(&'static str, String)>,
    work: PathBuf,
    starts: u32,
    running: Option<Service>,
}

impl WriterProcess {
    fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = match self.starts {
            1 => self.work.join("writer.log"),
            n => self.work.join(format!("writer-{n}.log")),
        };
        self.running = Some(Service::spawn(
            "seckill-order-writer",
            &self.program,
            &self.env,
            log,
        )?);
        Ok(())
    }

    /// SIGTERM, then waits (at most 60 s) for its graceful exit: in-flight batches commit.
    async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut service) = self.running.take() else {
            return Ok(());
        };
        let pid = service.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while service.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("the order writer did not stop within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn alive(&mut self) -> anyhow::Result<()> {
        self.running.as_mut().map_or(Ok(()), Service::alive)
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
        .collect::<Result<_, seckill_ledger::InvalidId>>()?;

    say(&format!(
        "run {run_id}: logs and tokens in {}",
        opts.work.display()
    ));
    // The checks audit every order of a sale (200,000 in `drain`): seconds, not the servers' 2 s.
    let mut ledger_config = LedgerConfig::new(opts.redis_url.clone());
    ledger_config.response_timeout = Duration::from_secs(60);
    let ledger = Ledger::connect(&ledger_config)
        .await
        .context("connecting to Redis")?;
    let database = Store::connect(&opts.database_url, 2)
        .await
        .with_context(|| format!("connecting to {}", redact_url(&opts.database_url)))?;
    forget_earlier_runs(&ledger).await?;
    let cluster = opts.scenarios.contains(&Scenario::Cluster);
    if cluster && opts.scenarios.len() > 1 {
        bail!("--scenario cluster runs alone: its whole stack differs");
    }
    if cluster != ledger.topology().is_cluster() {
        bail!(
            "SECKILL_REDIS_URL {}: the cluster scenario needs the Redis Cluster's nodes \
             (comma-separated), every other scenario one node (bench/run.sh sets it)",
            redact_url(&opts.redis_url)
        );
    }

    // What each scenario sells in: its activity, or (`cluster`) one activity per master.
    let mut sold_in: Vec<Vec<(ActivityId, Option<u16>)>> = Vec::new();
    for (scenario, id) in &activities {
        sold_in.push(if *scenario == Scenario::Cluster {
            one_per_master(&ledger, id).await?
        } else {
            vec![(id.clone(), None)]
        });
    }
    // The writer handles this run's activities only.
    let mut writer_env = env.clone();
    // One consumer group for every bench run on this machine: a new group starts from the
    // topic's first message and reads (and skips) the whole history; this one resumes.
    writer_env.push(("SECKILL_WRITER_GROUP", opts.writer_group.clone()));
    writer_env.push((
        "SECKILL_WRITER_ACTIVITIES",
        sold_in
            .iter()
            .flatten()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
            .join(","),
    ));
    writer_env.push(("SECKILL_WRITER_START_AT", rfc3339_now()));
    let mut writer = WriterProcess {
        program: opts.bin.join("seckill-order-writer"),
        env: writer_env,
        work: opts.work.clone(),
        starts: 0,
        running: None,
    };
    writer.start()?;
    // `cluster`: a second writer in the same group (the queues of both brokers split between
    // them), logging under writer-b/.
    let mut second_writer = if cluster {
        let work = opts.work.join("writer-b");
        std::fs::create_dir_all(&work)?;
        let mut second = WriterProcess {
            program: writer.program.clone(),
            env: writer.env.clone(),
            work,
            starts: 0,
            running: None,
        };
        second.start()?;
        Some(second)
    } else {
        None
    };
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
    let mut addrs = vec![addr.clone()];
    // `cluster`: a second gateway on the next port; the load is split between the two.
    let mut second_gateway = if cluster {
        let second_addr = format!("127.0.0.1:{}", opts.port + 1);
        let mut env = gateway_env.clone();
        env.retain(|(k, _)| *k != "SECKILL_LISTEN");
        env.push(("SECKILL_LISTEN", second_addr.clone()));
        let mut second = Service::spawn(
            "seckill-gateway (second)",
            &opts.bin.join("seckill-gateway"),
            &env,
            opts.work.join("gateway-b.log"),
        )?;
        wait_ready(&second_addr, &mut second).await?;
        addrs.push(second_addr);
        Some(second)
    } else {
        None
    };
    say(&format!(
        "{} ready (Redis and RocketMQ reachable); {} joining the consumer group",
        if cluster { "gateways" } else { "gateway" },
        if cluster { "writers" } else { "writer" }
    ));

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
        "ceiling: GET /healthz with wrk for {} s",
        opts.duration.as_secs()
    ));
    let healthz = Wrk {
        threads: opts.threads,
        connections: opts.connections,
        duration: opts.duration,
        script: &opts.wrk_scripts.join("healthz.lua"),
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
    let stack_appendfsync = appendfsync(&ledger).await?;
    let mut redis_deduct = Vec::new();
    for (attempts, fsync) in [
        (1, "everysec"),
        (CEILING_BATCH, "everysec"),
        (CEILING_BATCH, "always"),
    ] {
        say(&format!(
            "ceiling: redis-benchmark EVALSHA of deduct.lua, {attempts} attempt(s) per call, \
             appendfsync {fsync}, on a private redis-server"
        ));
        let ceiling = redis_ceiling(opts, attempts, fsync).await?;
        say(&format!(
            "  {} wins/s, {} calls/s, p99 {:.2} ms per call",
            thousands(ceiling.wins_per_second),
            thousands(ceiling.calls.per_second),
            ceiling.calls.latency_ms.p99
        ));
        redis_deduct.push(ceiling);
        settle().await?;
    }
    let ceilings = Ceilings {
        healthz,
        redis_deduct,
        stack_appendfsync,
    };

    let mut scenarios = Vec::new();
    for ((scenario, id), ids) in activities.iter().zip(sold_in) {
        writer.alive()?;
        gateway.alive()?;
        if let Some(second) = second_writer.as_mut() {
            second.alive()?;
        }
        if let Some(second) = second_gateway.as_mut() {
            second.alive()?;
        }
        settle().await?;
        if let Some(mode) = scenario.appendfsync() {
            set_appendfsync(&ledger, mode).await?;
        }
        let report = run_scenario(
            opts,
            &env,
            &addrs,
            &ledger,
            &database,
            &mut writer,
            &ceilings,
            *scenario,
            id,
            ids,
            gateway.child.id(),
        )
        .await
        .with_context(|| format!("scenario {}", scenario.name()));
        // Back to the stack's own setting, whatever happened.
        set_appendfsync(&ledger, &ceilings.stack_appendfsync).await?;
        let report = report?;
        scenarios.push(report);
    }
    // Gracefully: its in-flight batches commit, and the consumer group's activity lease is
    // released for the next run's list.
    writer.stop().await?;
    if let Some(mut second) = second_writer {
        second.stop().await?;
    }
    let ok = scenarios.iter().all(|s| s.verdict.ok());
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

/// The database a run uses: `seckill_bench` on the server of `url`, dropped and created empty.
/// Deleting an earlier run's rows instead left the tables full of holes that the next sale's
/// inserts paid for: PostgreSQL at 84 µs per win in the `hot` that followed such a clean-up,
/// 15 µs otherwise (`auto_explain` showed the batch inserts taking 20–64 ms each).
pub async fn database_of_its_own(url: &str) -> anyhow::Result<String> {
    const NAME: &str = "seckill_bench";
    let (server, _) = url
        .rsplit_once('/')
        .with_context(|| format!("{} names no database", redact_url(url)))?;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    tokio::spawn(connection);
    // Two statements: neither may run inside the transaction a multi-statement query is.
    for statement in [
        format!("DROP DATABASE IF EXISTS {NAME} WITH (FORCE)"),
        format!("CREATE DATABASE {NAME}"),
    ] {
        client
            .batch_execute(&statement)
            .await
            .with_context(|| format!("{statement} (the role must be allowed to)"))?;
    }
    Ok(format!("{server}/{NAME}"))
}

/// The stack's Redis `appendfsync` setting.
async fn appendfsync(ledger: &Ledger) -> anyhow::Result<String> {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut ledger.connection())
        .await?;
    Ok(reply.get(1).cloned().unwrap_or_else(|| "unknown".into()))
}

async fn set_appendfsync(ledger: &Ledger, mode: &str) -> anyhow::Result<()> {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg(mode)
        .query_async(&mut ledger.connection())
        .await?;
    Ok(())
}

/// Prefix of the activities the harness creates (`bench-<unix time>-<scenario>`).
const RUN_PREFIX: &str = "bench-";

/// Removes the activities (ledger keys, order index) of earlier harness runs: they were
/// kept for inspection until now, and a `hot` run leaves a hundred thousand orders behind.
async fn forget_earlier_runs(ledger: &Ledger) -> anyhow::Result<()> {
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
                .map(seckill_ledger::keys::order_index)
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
            .arg(seckill_ledger::keys::ACTIVITIES)
            .arg(id.as_str())
            .query_async(&mut redis)
            .await?;
    }
    // The database is the run's own, created empty (`database_of_its_own`).
    if !earlier.is_empty() {
        say(&format!(
            "removed {} activities of earlier runs from the ledger",
            earlier.len()
        ));
    }
    Ok(())
}

/// Waits (at most 3 minutes) until the machine is quiet — below 15 % busy for two seconds in a
/// row — so that one phase's leftovers (the writer catching up on the topic, mirroring statuses,
/// PostgreSQL checkpointing) do not eat into the next phase's figures.
async fn settle() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet = 0;
    let mut said = false;
    while quiet < 2 {
        let share = busy_share(Duration::from_secs(1)).await;
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

/// Runs `seckillctl ARGS` with the run's environment; an error with its message if it fails.
async fn run_seckillctl(
    seckillctl: &Path,
    env: &[(&str, String)],
    args: &[&str],
) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(seckillctl)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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

pub fn say(line: &str) {
    println!("[bench] {line}");
}

/// Says `line()` when `period` has passed since `*last` (progress while waiting).
fn say_every(last: &mut Instant, period: Duration, line: impl FnOnce() -> String) {
    if last.elapsed() > period {
        say(&line());
        *last = Instant::now();
    }
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
    addrs: &[String],
    ledger: &Ledger,
    database: &Store,
    writer: &mut WriterProcess,
    ceilings: &Ceilings,
    scenario: Scenario,
    id: &ActivityId,
    ids: Vec<(ActivityId, Option<u16>)>,
    gateway_pid: u32,
) -> anyhow::Result<ScenarioReport> {
    let addr = addrs[0].as_str();
    let name = scenario.name();
    let (default_users, stock, limit) = scenario.shape();
    let redis_appendfsync = appendfsync(ledger).await?;
    let users = opts.users.unwrap_or(default_users);
    say(&format!(
        "scenario {name}: {} — {} users, stock {}, limit {limit}",
        scenario.what(),
        thousands(users as f64),
        thousands(stock as f64)
    ));
    let seckillctl = opts.bin.join("seckillctl");
    // `cluster`: one activity per master, the stock split between them (each user buys in one).
    let parts = ids.len() as i64;
    for (k, (id, _)) in ids.iter().enumerate() {
        let part = stock / parts + i64::from((k as i64) < stock % parts);
        let (stock_arg, limit_arg) = (part.to_string(), limit.to_string());
        run_seckillctl(
            &seckillctl,
            env,
            &[
                "activity",
                "create",
                "--id",
                id.as_str(),
                "--name",
                &format!("bench {name}"),
                "--stock",
                &stock_arg,
                "--price-cents",
                "100",
                "--per-user-limit",
                &limit_arg,
                "--starts-at",
                "now",
                "--duration",
                "2h",
            ],
        )
        .await?;
    }
    // One token file per gateway, the users split between them.
    let gateways = addrs.len() as u64;
    let mut token_files = Vec::new();
    for g in 0..gateways {
        let (first, last) = (1 + g * users / gateways, (g + 1) * users / gateways);
        let tokens = match g {
            0 => opts.work.join(format!("{name}-tokens.txt")),
            g => opts.work.join(format!("{name}-tokens-{g}.txt")),
        };
        run_seckillctl(
            &seckillctl,
            env,
            &[
                "token",
                "mint",
                "--users",
                &format!("{first}..{last}"),
                "--prefix",
                &format!("{name}u"),
                "--ttl",
                "3h",
                "--out",
                &tokens.display().to_string(),
            ],
        )
        .await?;
        token_files.push(tokens);
    }
    let one_token = std::fs::read_to_string(&token_files[0])?
        .lines()
        .next()
        .context("no token minted")?
        .to_owned();
    say(&format!(
        "  {} created, {} tokens minted",
        ids.iter()
            .map(|(id, port)| match port {
                Some(port) => format!("activity {id} (master :{port})"),
                None => format!("activity {id}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        thousands(users as f64)
    ));
    let activity_arg = ids
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<Vec<_>>()
        .join(",");

    let draining = scenario == Scenario::Drain;
    if draining {
        writer.stop().await?;
        say("  writer stopped: the won orders wait in the topic");
    }
    // `drain` must sell every unit before the writer starts again.
    let duration = if draining {
        opts.duration.max(Duration::from_secs(10)) * 3
    } else {
        opts.duration
    };

    // `crowd`: the crowd comes first and stays while the buyers buy.
    let crowd = if scenario == Scenario::Crowd {
        Some(crowd_arrives(addr, id, gateway_pid, duration).await?)
    } else {
        None
    };
    let before = scrape_all(addrs).await?;
    let (stop, stopped) = oneshot::channel();
    let sampler = tokio::spawn(sample(addrs.to_vec(), name, before.clone(), stopped));
    let url = format!("http://{addr}");
    let cpu_before = CpuTimes::now();
    // One wrk per gateway, the threads and connections split between them.
    let script = opts.wrk_scripts.join("attempt.lua");
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let wrks: Vec<Wrk> = urls
        .iter()
        .zip(&token_files)
        .map(|(url, tokens)| Wrk {
            threads: (opts.threads / gateways as u32).max(1),
            connections: (opts.connections / gateways as u32).max(1),
            duration,
            script: &script,
            url,
            script_args: vec![tokens.display().to_string(), activity_arg.clone()],
        })
        .collect();
    let loads = futures_util::future::join_all(wrks.iter().map(Wrk::run)).await;
    let cpu_after = CpuTimes::now();
    let cpu_cores = cpu_after.cores_since(&cpu_before);
    let redis_masters: BTreeMap<String, f64> = cpu_after
        .redis_nodes_since(&cpu_before)
        .into_iter()
        .filter(|(port, _)| ids.iter().any(|(_, p)| *p == Some(*port)))
        .map(|(port, cores)| (port.to_string(), cores))
        .collect();
    let _ = stop.send(());
    let timeline = sampler.await?;
    let wrk = Load::combine(loads.into_iter().collect::<anyhow::Result<Vec<_>>>()?);
    say(&format!(
        "  wrk: {} attempts/s, p50 {:.2} ms, p99 {:.2} ms, answers {:?}",
        thousands(wrk.per_second),
        wrk.latency_ms.p50,
        wrk.latency_ms.p99,
        wrk.statuses
    ));
    let crowd = match crowd {
        Some(arrived) => Some(crowd_leaves(addr, id, gateway_pid, arrived, &wrk).await?),
        None => None,
    };
    let oha = if opts.oha_duration.is_zero() || draining || crowd.is_some() || gateways > 1 {
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
    let window = settled_scrape(addrs).await?.since(&before);
    let wins = window.count("won");
    // Each activity's wins, from the ledger (the gateways count them all together).
    let mut ledger_wins = Vec::new();
    for (id, _) in &ids {
        let orders = ledger
            .audit(&ActivityKeys::new(id))
            .await?
            .map_or(0, |a| a.orders);
        ledger_wins.push(if ids.len() == 1 { wins } else { orders as u64 });
    }

    let mut persistence: Option<Persistence> = None;
    for ((id, _), wins) in ids.iter().zip(&ledger_wins) {
        let one = if draining {
            drain_from_start(opts, ledger, database, writer, id, *wins).await?
        } else {
            drain(opts, ledger, database, id, *wins, load_ended).await?
        };
        // Several activities: the report keeps the slowest one's figures.
        let slower = persistence.as_ref().is_none_or(|p| {
            one.win_to_row_p99_ms.unwrap_or(0.0) > p.win_to_row_p99_ms.unwrap_or(0.0)
        });
        if slower {
            persistence = Some(one);
        }
    }
    // The rows of every activity; the latencies and rate of the slowest one.
    let mut persistence = persistence.context("no activity")?;
    if ids.len() > 1 {
        let mut rows = 0;
        for (id, _) in &ids {
            rows += database.order_count(id.as_str()).await?;
        }
        persistence.rows = rows;
    }
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
    let mut verdict = Verdict {
        activity: activity_arg.clone(),
        checks: Vec::new(),
    };
    for (k, ((id, port), wins)) in ids.iter().zip(&ledger_wins).enumerate() {
        let part = stock / parts + i64::from((k as i64) < stock % parts);
        let told = Told {
            wins: *wins,
            demand_exceeded_stock: users / parts as u64 * u64::from(limit) > part as u64,
        };
        let mut one = check_sale(&sources, id, told).await?;
        if let Some(port) = port {
            for check in &mut one.checks {
                check.detail = format!("{id} (master :{port}): {}", check.detail);
            }
        }
        verdict.checks.extend(one.checks);
    }
    if ids.len() > 1 {
        let in_ledger: u64 = ledger_wins.iter().sum();
        verdict.checks.push(Check::new(
            "gateways_agree_with_ledger",
            in_ledger == wins,
            format!("the gateways answered {wins} wins, the ledger holds {in_ledger} orders"),
        ));
        let busiest = redis_masters.values().copied().fold(0.0, f64::max);
        let spread = redis_masters.len() == ids.len()
            && redis_masters
                .values()
                .all(|c| *c >= busiest / 5.0 && *c > 0.0);
        verdict.checks.push(Check::new(
            "load_spread",
            spread,
            format!(
                "Redis cores per master during the load: {} (bar: every master at least a fifth \
                 of the busiest)",
                redis_masters
                    .iter()
                    .map(|(port, cores)| format!(":{port} {cores:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
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
    if scenario.every_attempt_wins() {
        // `hot` measures new winners only: a user the load generator reached twice would make
        // it measure the cheap repeat path instead.
        let won = wrk.status(202);
        verdict.checks.push(Check::new(
            "every_attempt_won",
            won > 0 && won == wrk.requests,
            format!(
                "{won} of the load generator's {} answers were wins ({} users)",
                wrk.requests,
                thousands(users as f64)
            ),
        ));
    }
    if let Some(crowd) = &crowd {
        verdict.checks.extend(crowd_checks(crowd));
    }
    verdict.print();

    Ok(ScenarioReport {
        name: name.to_owned(),
        what: scenario.what().to_owned(),
        activity: activity_arg.clone(),
        users,
        stock,
        per_user_limit: limit,
        ratio_to_healthz: wrk.per_second / ceilings.healthz.per_second.max(1e-9),
        ratio_to_redis: wrk.per_second / ceilings.redis_wins_per_second().max(1e-9),
        redis_appendfsync,
        attempts_per_deduct_call: (window.deduct_calls > 0)
            .then(|| window.deduct_attempts as f64 / window.deduct_calls as f64),
        wrk,
        oha,
        outcomes: latencies(&window.attempts),
        deduct_stages: latencies(&window.deduct_stages),
        wins,
        redis_calls: window.redis_calls,
        sold_out_short_circuits: window.sold_out_short_circuits,
        persistence,
        cpu_cores,
        redis_masters,
        timeline,
        crowd,
        verdict,
    })
}

/// p50, p99 and p99.9 of each histogram that counted anything (outcomes, or deduct stages).
fn latencies(histograms: &BTreeMap<String, Buckets>) -> BTreeMap<String, OutcomeLatency> {
    histograms
        .iter()
        .filter_map(|(name, buckets)| {
            let count = buckets.last().map_or(0, |(_, n)| *n);
            let q = |q| quantile(buckets, q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
            (count > 0).then(|| {
                let latency = OutcomeLatency {
                    count,
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    p999_ms: q(0.999),
                };
                (name.clone(), latency)
            })
        })
        .collect()
}

/// `cluster`: activity ids `<id>-<n>`, one on each master of the Redis Cluster, with the
/// master's port (CLUSTER KEYSLOT of the activity's hash tag, against CLUSTER NODES' ranges).
async fn one_per_master(
    ledger: &Ledger,
    id: &ActivityId,
) -> anyhow::Result<Vec<(ActivityId, Option<u16>)>> {
    let mut conn = ledger.connection();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges…>
    let mut masters: Vec<(u16, Vec<(u16, u16)>)> = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 || !fields[2].contains("master") {
            continue;
        }
        let port = fields[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("odd CLUSTER NODES line {line:?}"))?;
        let ranges = fields[8..]
            .iter()
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|n| (n, n)),
            })
            .collect();
        masters.push((port, ranges));
    }
    masters.sort();
    let mut found: Vec<Option<ActivityId>> = vec![None; masters.len()];
    for n in 0..1000 {
        let candidate = ActivityId::parse(&format!("{id}-{n}"))?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&ActivityKeys::new(&candidate).meta)
            .query_async(&mut conn)
            .await?;
        if let Some(i) = masters
            .iter()
            .position(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
        {
            found[i].get_or_insert(candidate);
        }
        if found.iter().all(Option::is_some) {
            return Ok(found
                .into_iter()
                .flatten()
                .zip(masters.iter().map(|(port, _)| Some(*port)))
                .collect());
        }
    }
    bail!(
        "1000 candidate ids did not cover the {} masters",
        masters.len()
    )
}

/// The crowd of the `crowd` scenario: 6,000 hostile connections plus a flood of 4,000
/// requests/s (16 connections × 250/s).
const CROWD: Shape = Shape {
    never_reading: 3_000,
    slowloris: 3_000,
    flood_connections: 16,
    flood_rate_per_connection: 250,
};
/// How long the crowd is alone with the gateway before the buyers come (its Redis calls).
const CROWD_ALONE: Duration = Duration::from_secs(5);

struct Arrived {
    crowd: Crowd,
    connections_open: i64,
    alone_s: f64,
    flood_requests_alone: u64,
    redis_calls_alone: u64,
}

fn flood_total(counts: &crowd::Counts) -> u64 {
    counts.flood_answered.load(Ordering::Relaxed) + counts.flood_failed.load(Ordering::Relaxed)
}

async fn crowd_arrives(
    addr: &str,
    id: &ActivityId,
    gateway_pid: u32,
    duration: Duration,
) -> anyhow::Result<Arrived> {
    if let Err(e) = crowd::reset_peak_rss(gateway_pid) {
        say(&format!("  (could not reset the gateway's peak RSS: {e})"));
    }
    let hostile = (CROWD.never_reading + CROWD.slowloris) as i64;
    // Bounded whatever happens: the sale, the wait for the connections, some slack.
    let crowd = Crowd::arrive(
        addr,
        id.as_str(),
        CROWD,
        duration + Duration::from_secs(180),
    );
    say(&format!(
        "  crowd: {} never-reading and {} slowloris connections, a flood of {}/s (made-up ids, \
         forged tokens)",
        CROWD.never_reading,
        CROWD.slowloris,
        CROWD.flood_connections as u32 * CROWD.flood_rate_per_connection
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = 0;
    while Instant::now() < deadline {
        open = scrape(addr).await?.connections_open;
        if open >= hostile {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    say(&format!("  crowd in: the gateway holds {open} connections"));
    let before = scrape(addr).await?;
    let flood_before = flood_total(&crowd.counts);
    let alone = Instant::now();
    tokio::time::sleep(CROWD_ALONE).await;
    let after = scrape(addr).await?;
    let arrived = Arrived {
        connections_open: open.max(after.connections_open),
        alone_s: alone.elapsed().as_secs_f64(),
        flood_requests_alone: flood_total(&crowd.counts) - flood_before,
        redis_calls_alone: after.redis_calls.saturating_sub(before.redis_calls),
        crowd,
    };
    say(&format!(
        "  crowd alone for {:.1} s: {} flood requests, {} Redis calls",
        arrived.alone_s, arrived.flood_requests_alone, arrived.redis_calls_alone
    ));
    Ok(arrived)
}

async fn crowd_leaves(
    addr: &str,
    id: &ActivityId,
    gateway_pid: u32,
    arrived: Arrived,
    honest: &Load,
) -> anyhow::Result<CrowdReport> {
    let during = scrape(addr).await?.connections_open;
    let peak_rss = crowd::rss(gateway_pid).map_or(0, |(_, peak)| peak);
    let counts = arrived.crowd.counts.clone();
    arrived.crowd.leave().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = during;
    while Instant::now() < deadline {
        after = scrape(addr).await?.connections_open;
        if after <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served_after = http_get(addr, "/healthz").await.is_ok()
        && http_get(addr, &format!("/v1/activities/{id}"))
            .await
            .is_ok();
    let report = CrowdReport {
        never_reading: CROWD.never_reading,
        slowloris: CROWD.slowloris,
        flood_per_second: u64::from(CROWD.flood_rate_per_connection)
            * CROWD.flood_connections as u64,
        connections_open: arrived.connections_open,
        connections_open_during_sale: during,
        connects: counts.connects.load(Ordering::Relaxed),
        dropped: counts.dropped.load(Ordering::Relaxed),
        alone_s: arrived.alone_s,
        flood_requests_alone: arrived.flood_requests_alone,
        redis_calls_alone: arrived.redis_calls_alone,
        flood_requests: flood_total(&counts),
        flood_failed: counts.flood_failed.load(Ordering::Relaxed),
        honest_p99_ms: honest.latency_ms.p99,
        gateway_peak_rss_mib: peak_rss as f64 / (1024.0 * 1024.0),
        connections_after: after,
        served_after,
    };
    say(&format!(
        "  crowd left: peak RSS {:.1} MiB, {} connections during the sale, {} after; honest p99 \
         {:.2} ms",
        report.gateway_peak_rss_mib,
        report.connections_open_during_sale,
        report.connections_after,
        report.honest_p99_ms
    ));
    Ok(report)
}

/// The crowd scenario's own bars (issue 11): the sale's checks apply as for `sale`.
fn crowd_checks(crowd: &CrowdReport) -> Vec<Check> {
    let hostile = (crowd.never_reading + crowd.slowloris) as i64;
    vec![
        Check::new(
            "crowd_held",
            crowd.connections_open >= hostile,
            format!(
                "{} connections open with the crowd in ({hostile} hostile)",
                crowd.connections_open
            ),
        ),
        Check::new(
            "crowd_honest_p99",
            crowd.honest_p99_ms < 50.0,
            format!(
                "honest buyers' p99 {:.2} ms (bar: < 50 ms)",
                crowd.honest_p99_ms
            ),
        ),
        Check::new(
            "crowd_rss",
            crowd.gateway_peak_rss_mib < 128.0,
            format!(
                "gateway peak RSS {:.1} MiB (bar: < 128 MiB)",
                crowd.gateway_peak_rss_mib
            ),
        ),
        Check::new(
            "crowd_redis_calls",
            crowd.flood_requests_alone > 0
                && crowd.redis_calls_alone * 100 < crowd.flood_requests_alone,
            format!(
                "{} Redis calls for {} flood requests (bar: < 1 per 100)",
                crowd.redis_calls_alone, crowd.flood_requests_alone
            ),
        ),
        Check::new(
            "crowd_served_after",
            crowd.served_after && crowd.connections_after <= 2,
            format!(
                "{} connections left once the crowd went; /healthz and the activity answered: {}",
                crowd.connections_after, crowd.served_after
            ),
        ),
    ]
}

/// Reads the metrics every second until told to stop; prints progress.
async fn sample(
    addrs: Vec<String>,
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
        let Ok(now) = scrape_all(&addrs).await else {
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
async fn settled_scrape(addrs: &[String]) -> anyhow::Result<Scrape> {
    for _ in 0..100 {
        let now = scrape_all(addrs).await?;
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
    database: &Store,
    id: &ActivityId,
    wins: u64,
    load_ended: Instant,
) -> anyhow::Result<Persistence> {
    let keys = ActivityKeys::new(id);
    let deadline = load_ended + opts.drain_timeout;
    let mut last_said = Instant::now();
    loop {
        let rows = database.order_count(id.as_str()).await?;
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
        say_every(&mut last_said, Duration::from_secs(5), || {
            format!(
                "  waiting for the writer: {} of {} rows, outbox {outbox}",
                thousands(rows as f64),
                thousands(wins as f64)
            )
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_s = load_ended.elapsed().as_secs_f64();
    let figures = database.win_to_row(id.as_str()).await?;
    let persistence = Persistence {
        rows: figures.rows,
        win_to_row_p50_ms: figures.p50_ms,
        win_to_row_p99_ms: figures.p99_ms,
        writer_orders_per_s: figures.rows_per_s,
        drain_s,
        drain: None,
    };
    say(&format!(
        "  persisted {} rows in {drain_s:.1} s after the load; win→row p50 {:?} ms, p99 {:?} ms",
        thousands(persistence.rows as f64),
        persistence.win_to_row_p50_ms.map(f64::round),
        persistence.win_to_row_p99_ms.map(f64::round)
    ));
    Ok(persistence)
}

/// `drain`: waits until every won order is in the topic (outbox empty), starts the writer, and
/// times it until every order has its row and its `pending_payment` mirrored into the ledger
/// (the writer sends an order's timer before it mirrors it, so that covers the timers too).
async fn drain_from_start(
    opts: &Options,
    ledger: &Ledger,
    database: &Store,
    writer: &mut WriterProcess,
    id: &ActivityId,
    wins: u64,
) -> anyhow::Result<Persistence> {
    let keys = ActivityKeys::new(id);
    let deadline = Instant::now() + opts.drain_timeout;
    while ledger.audit(&keys).await?.map_or(0, |a| a.outbox) > 0 {
        if Instant::now() > deadline {
            bail!("the gateway did not publish every won order");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle().await?;
    say(&format!(
        "  {} orders wait in the topic; starting the writer",
        thousands(wins as f64)
    ));
    let cpu_before = CpuTimes::now();
    let started = Instant::now();
    let started_unix = unix_seconds();
    writer.start()?;
    let mut last_said = Instant::now();
    // Polled once a second, lightly: the figures come from the rows' own insert times.
    loop {
        writer.alive()?;
        let rows = database.order_count(id.as_str()).await? as u64;
        if rows >= wins && queued_in_ledger(ledger, &keys).await? == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the writer persisted {rows} of {wins} orders within {} s",
                opts.drain_timeout.as_secs()
            );
        }
        say_every(&mut last_said, Duration::from_secs(2), || {
            format!(
                "  draining: {} of {} rows",
                thousands(rows as f64),
                thousands(wins as f64)
            )
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seen_done = started.elapsed().as_secs_f64();
    let cores = CpuTimes::now().cores_since(&cpu_before);
    let figures = database.win_to_row(id.as_str()).await?;
    let since_start = |at: Option<f64>| at.map_or(seen_done, |t| (t - started_unix).max(0.0));
    let first_row = since_start(figures.first_row_unix_s);
    let done = since_start(figures.last_row_unix_s);
    let drained = figures.rows as f64 / (done - first_row).max(1e-3);
    say(&format!(
        "  drained: first row {first_row:.1} s after the writer started, the last {:.1} s later \
         (every status mirrored {seen_done:.1} s after the start, polled): {} orders/s",
        done - first_row,
        thousands(drained)
    ));
    Ok(Persistence {
        rows: figures.rows,
        win_to_row_p50_ms: None,
        win_to_row_p99_ms: None,
        writer_orders_per_s: figures.rows_per_s,
        drain_s: seen_done,
        drain: Some(Drain {
            first_row_s: first_row,
            done_s: done,
            orders_per_s: drained,
            cpu_cores: cores,
        }),
    })
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Orders of the activity still `queued` in the ledger (not yet mirrored as persisted).
async fn queued_in_ledger(ledger: &Ledger, keys: &ActivityKeys) -> anyhow::Result<usize> {
    let records: Vec<Vec<u8>> = redis::cmd("HVALS")
        .arg(&keys.orders)
        .query_async(&mut ledger.connection())
        .await?;
    const QUEUED: &[u8] = br#""status":"queued""#;
    Ok(records
        .iter()
        .filter(|r| r.windows(QUEUED.len()).any(|w| w == QUEUED))
        .count())
}
