//! The command line: flags, subcommands and their help text (clap derive). Nothing here talks to
//! Redis, the database or the broker; `run` in the crate root dispatches on these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
        default_value = seckill_ledger::DEFAULT_REDIS_URL
    )]
    pub redis_url: String,
    /// PostgreSQL holding the persisted orders (verify, reconcile, order).
    #[arg(
        long,
        global = true,
        env = "SECKILL_DATABASE_URL",
        default_value = seckill_store::DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    /// RocketMQ name server (reconcile).
    #[arg(
        long,
        global = true,
        env = "SECKILL_ROCKETMQ_NAMESRV",
        default_value = seckill_messages::DEFAULT_NAMESRV
    )]
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
    /// List an activity's persisted orders, inspect or refund one order.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Republish the activity's ledger orders that are missing from the database.
    Reconcile {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Messages the order writer parked instead of applying (a limit-1 buyer's second live
    /// order, …), newest first, each with its reason and body.
    Parked {
        /// At most this many (1 to 10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
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
    /// Replace an activity's ledger by the one its database record and order rows imply (plus
    /// the orders the ledger holds that are on their way to the database): the recovery after
    /// Redis lost data. Refused while the sale is open unless --force.
    Rebuild {
        id: String,
        #[arg(long)]
        force: bool,
    },
}

impl ActivityCommand {
    /// Whether the command writes the `activities` table (so needs the database).
    pub fn needs_database(&self) -> bool {
        !matches!(
            self,
            ActivityCommand::Show { .. } | ActivityCommand::List { .. }
        )
    }
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
    /// Every order of an activity persisted in the database, by order id: user, status, amount
    /// and how long the win took to become a row.
    List {
        /// The activity.
        id: String,
        #[arg(long)]
        json: bool,
    },
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
