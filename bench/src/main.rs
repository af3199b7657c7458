//! `seckill-bench`: run a flash sale and prove its invariants (`run`), or check a finished
//! sale alone (`check`). `bench/run.sh` is the way in: it installs the tools, starts the
//! services and builds the release binaries first.
//!
//! Exit codes: 0 every check passed; 1 a check failed; 2 the harness could not do its job.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use seckill_bench::checks::{check_sale, Sources, Told};
use seckill_bench::plot;
use seckill_bench::run::{run, say, Options, Scenario};
use seckill_ledger::ledger::LedgerConfig;
use seckill_ledger::{ActivityId, Ledger};

#[derive(Parser)]
#[command(
    name = "seckill-bench",
    version,
    about = "Run a flash sale on this machine and prove every invariant"
)]
struct Cli {
    #[arg(
        long,
        global = true,
        env = "SECKILL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    #[arg(
        long,
        global = true,
        env = "SECKILL_DATABASE_URL",
        default_value = "postgres://seckill:seckill@127.0.0.1:5432/seckill"
    )]
    database_url: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the gateway and the writer, measure the ceilings, run the scenarios, check, report.
    Run {
        /// Scenarios to run, in order (comma-separated); default: all four.
        #[arg(long, value_enum, value_delimiter = ',')]
        scenario: Vec<Scenario>,
        /// wrk's run length per scenario (and for the /healthz ceiling).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 1)]
        threads: u32,
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// The oha pass (one buyer) per scenario; 0s skips it.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        oha_duration: Duration,
        /// How long to wait for the writer to persist every won order.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        drain_timeout: Duration,
        /// Users per scenario (default: each scenario's own, see the README).
        #[arg(long)]
        users: Option<u64>,
        /// Where the JSON, Markdown and SVG reports go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// Logs and token files of the run.
        #[arg(long, default_value = "bench/out")]
        work: PathBuf,
        /// Directory of the release binaries (default: this binary's).
        #[arg(long)]
        bin: Option<PathBuf>,
        #[arg(long, default_value = "bench/wrk")]
        wrk_scripts: PathBuf,
        #[arg(long, default_value_t = 18181)]
        port: u16,
        #[arg(
            long,
            env = "SECKILL_ROCKETMQ_NAMESRV",
            default_value = "127.0.0.1:9876"
        )]
        rocketmq_namesrv: String,
        /// The order writer's consumer group (kept across runs, so a run does not replay the
        /// topic's history).
        #[arg(long, default_value = "seckill_bench")]
        writer_group: String,
    },
    /// Check a finished sale: ledger, database, and what the buyers were told.
    Check {
        activity: String,
        /// Wins the buyers were told (202 answers).
        #[arg(long)]
        wins: u64,
        /// More units were asked for than the activity had: every unit must have been won.
        #[arg(long)]
        demand_exceeded_stock: bool,
        /// seckillctl to run `verify` with (default: next to this binary).
        #[arg(long)]
        seckillctl: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match go(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("seckill-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("binary without a directory")?
        .to_owned())
}

async fn go(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Cmd::Run {
            scenario,
            duration,
            threads,
            connections,
            oha_duration,
            drain_timeout,
            users,
            out,
            work,
            bin,
            wrk_scripts,
            port,
            rocketmq_namesrv,
            writer_group,
        } => {
            let scenarios = if scenario.is_empty() {
                Scenario::ALL.to_vec()
            } else {
                scenario
            };
            let opts = Options {
                command: std::env::args().collect::<Vec<_>>().join(" "),
                scenarios,
                threads,
                connections,
                duration,
                oha_duration,
                drain_timeout,
                users,
                bin: bin.map_or_else(own_dir, Ok)?,
                wrk_scripts,
                work,
                port,
                redis_url: cli.redis_url,
                database_url: seckill_bench::run::database_of_its_own(&cli.database_url).await?,
                namesrv: rocketmq_namesrv,
                writer_group,
            };
            let report = run(&opts).await?;
            std::fs::create_dir_all(&out)?;
            let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
            let label = if names.len() == Scenario::ALL.len() {
                "all".to_owned()
            } else {
                names.join("-")
            };
            let stem = out.join(format!("{}-{label}", &report.started_at[..10]));
            let markdown = report.markdown();
            std::fs::write(
                stem.with_extension("json"),
                serde_json::to_string_pretty(&report)?,
            )?;
            std::fs::write(stem.with_extension("md"), &markdown)?;
            std::fs::write(stem.with_extension("svg"), plot::svg(&report))?;
            println!("\n{markdown}");
            say(&format!("report: {}.{{json,md,svg}}", stem.display()));
            if !report.ok {
                say("FAILED: an invariant was violated (see the checks above)");
            }
            Ok(report.ok)
        }
        Cmd::Check {
            activity,
            wins,
            demand_exceeded_stock,
            seckillctl,
            json,
        } => {
            let id = ActivityId::parse(&activity).map_err(anyhow::Error::msg)?;
            // The checks audit every order of the sale: allow seconds per command.
            let mut config = LedgerConfig::new(cli.redis_url.clone());
            config.response_timeout = std::time::Duration::from_secs(60);
            let ledger = Ledger::connect(&config).await?;
            let database = seckill_store::Store::connect(&cli.database_url, 2)
                .await
                .with_context(|| {
                    format!(
                        "connecting to {}",
                        seckill_service::redact_url(&cli.database_url)
                    )
                })?;
            let seckillctl =
                seckillctl.map_or_else(|| own_dir().map(|d| d.join("seckillctl")), Ok)?;
            let sources = Sources {
                ledger: &ledger,
                database: &database,
                seckillctl: &seckillctl,
                env: &[
                    ("SECKILL_REDIS_URL", &cli.redis_url),
                    ("SECKILL_DATABASE_URL", &cli.database_url),
                ],
            };
            let told = Told {
                wins,
                demand_exceeded_stock,
            };
            let verdict = check_sale(&sources, &id, told).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&verdict)?);
            } else {
                verdict.print();
            }
            Ok(verdict.ok())
        }
    }
}
