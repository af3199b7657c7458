//! `order list | show | refund`: an activity's persisted orders, one order as the ledger and the
//! database hold it, and the operator's refund (through the same lifecycle the payment service
//! uses, so ledger, database and events stay in step).

use std::time::Duration;

use seckill_ledger::{ActivityId, Ledger, OrderId, OrderStatus};
use seckill_lifecycle::Lifecycle;
use seckill_messages::MqRuntime;
use seckill_store::{Payment, Store};
use serde::Serialize;

use crate::cli::OrderCommand;
use crate::error::CtlError;

/// The lifecycle's payment window. A refund never schedules a timeout, so this only has to be a
/// valid window; it matches the services' default.
const PAYMENT_WINDOW: Duration = Duration::from_secs(1800);

/// `order show --json` output.
#[derive(Debug, Serialize)]
struct OrderReport {
    order_id: String,
    activity_id: String,
    user_id: String,
    quantity: u32,
    amount_cents: i64,
    ledger_status: &'static str,
    database_status: Option<&'static str>,
    payments: Vec<Payment>,
}

pub(crate) async fn run(
    ledger: &Ledger,
    store: &Store,
    namesrv: &str,
    command: OrderCommand,
) -> Result<(), CtlError> {
    match command {
        OrderCommand::List { id, json } => {
            list(store, &crate::activity::parse_activity_id(&id)?, json).await
        }
        OrderCommand::Show { order_id, json } => {
            show(ledger, store, parse_order_id(&order_id)?, json).await
        }
        OrderCommand::Refund { order_id } => {
            refund(ledger, store, namesrv, parse_order_id(&order_id)?).await
        }
    }
}

/// `order list`: the activity's rows, by order id (`--json`: an array of
/// `{order_id, user_id, status, amount_cents, win_to_row_ms}`). An activity without rows (or
/// unknown to the database) lists nothing.
async fn list(store: &Store, id: &ActivityId, json: bool) -> Result<(), CtlError> {
    let orders = store.persisted_orders(id.as_str()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&orders)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<24} {:<16} {:>12} {:>12}",
        "order", "user", "status", "amount", "win→row"
    );
    for order in &orders {
        println!(
            "{:<20} {:<24} {:<16} {:>12} {:>9.1} ms",
            order.order_id.to_string(),
            order.user_id,
            order.status,
            format!("{} cents", order.amount_cents),
            order.win_to_row_ms
        );
    }
    println!("{} orders persisted for {id}", orders.len());
    Ok(())
}

fn parse_order_id(text: &str) -> Result<OrderId, CtlError> {
    OrderId::parse(text).map_err(|e| CtlError::Input(e.to_string()))
}

async fn show(
    ledger: &Ledger,
    store: &Store,
    order_id: OrderId,
    json: bool,
) -> Result<(), CtlError> {
    let Some(record) = ledger.order(order_id).await? else {
        return Err(CtlError::UnknownOrder(order_id));
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

async fn refund(
    ledger: &Ledger,
    store: &Store,
    namesrv: &str,
    order_id: OrderId,
) -> Result<(), CtlError> {
    if ledger.order(order_id).await?.is_none() {
        return Err(CtlError::UnknownOrder(order_id));
    }
    let runtime = MqRuntime::start("seckillctl")?;
    let lifecycle = Lifecycle::start(
        &runtime,
        namesrv,
        store.clone(),
        ledger.clone(),
        PAYMENT_WINDOW,
    )
    .await?;
    let result = lifecycle.refund(order_id).await;
    lifecycle.shutdown().await;
    // The runtime's shutdown can hang on a broker that went away; the refund is decided by now.
    let _ = tokio::time::timeout(Duration::from_secs(5), runtime.shutdown()).await;
    match result? {
        OrderStatus::Refunded => {
            println!("order {order_id} refunded");
            Ok(())
        }
        other => Err(CtlError::input(format!(
            "order {order_id} is {}: only paid orders (or orders paid after cancellation) can be refunded",
            other.as_str()
        ))),
    }
}
