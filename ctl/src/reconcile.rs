//! `reconcile`: republishes the activity's ledger orders that have no database row. The order
//! writer persists idempotently, so republishing an order that arrives meanwhile is harmless and
//! running `reconcile` again after a failure only sends what is still missing.

use std::time::Duration;

use seckill_ledger::{ActivityId, ActivityKeys, Ledger, OrderRecord, OrderText};
use seckill_messages::order::order_messages;
use seckill_messages::{Message, MqRuntime, MAX_BATCH};
use seckill_service::redact_url;
use seckill_store::Store;
use serde::Serialize;

use crate::error::CtlError;

/// The broker's deadline for one batch. Longer than the services' deadline: an operator waits
/// at the terminal anyway, and a batch carries up to `MAX_BATCH` orders.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Producer group of this command, distinct from the gateway's so its sends are told apart.
const PRODUCER_GROUP: &str = "seckillctl_reconcile";

/// `reconcile --json` output.
#[derive(Debug, Serialize)]
struct ReconcileReport {
    activity: String,
    ledger_orders: usize,
    missing: usize,
    republished: usize,
}

pub(crate) async fn reconcile(
    ledger: &Ledger,
    store: &Store,
    namesrv: &str,
    id: &ActivityId,
    json: bool,
) -> Result<(), CtlError> {
    let keys = ActivityKeys::new(id);
    if ledger.meta(id).await?.is_none() {
        return Err(CtlError::UnknownActivity(id.clone()));
    }
    let orders = ledger.orders(&keys).await?;
    let rows = store.activity_orders(id.as_str()).await?;
    let missing: Vec<OrderRecord> = orders
        .iter()
        .filter(|o| !rows.contains_key(&o.order_id))
        .cloned()
        .collect();
    let republished = if missing.is_empty() {
        0
    } else {
        republish(&missing, namesrv).await?
    };
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

/// Sends `orders` to the order topic in batches; returns how many were sent.
async fn republish(orders: &[OrderRecord], namesrv: &str) -> Result<usize, CtlError> {
    // Encoded before connecting: a record that cannot be encoded stops us before any send.
    // Each batch: how many orders it holds, and their messages.
    let mut batches: Vec<(usize, Vec<Message>)> = Vec::new();
    for chunk in orders.chunks(MAX_BATCH) {
        let texts = chunk
            .iter()
            .map(OrderText::from_record)
            .collect::<Result<Vec<_>, _>>()?;
        batches.push((chunk.len(), order_messages(&texts)));
    }
    let runtime = MqRuntime::start("seckillctl")?;
    let mut producer = seckill_messages::producer(&runtime, PRODUCER_GROUP, namesrv, SEND_TIMEOUT)
        .await
        .map_err(|source| CtlError::Producer {
            namesrv: redact_url(namesrv),
            source,
        })?;
    let bar = indicatif::ProgressBar::new(orders.len() as u64);
    let mut republished = 0;
    let mut failure = None;
    for (size, batch) in batches {
        // Only a batch the broker stored (SEND_OK) counts as republished.
        if let Err(e) = seckill_messages::send_batch(&producer, batch, SEND_TIMEOUT).await {
            failure = Some(e);
            break;
        }
        republished += size;
        bar.inc(size as u64);
    }
    producer.shutdown().await;
    // The runtime's shutdown can hang on a broker that went away; the sends are done by now.
    let _ = tokio::time::timeout(Duration::from_secs(5), runtime.shutdown()).await;
    match failure {
        None => {
            bar.finish_and_clear();
            Ok(republished)
        }
        Some(e) => {
            bar.abandon();
            Err(CtlError::Republish {
                republished,
                missing: orders.len(),
                source: e,
            })
        }
    }
}
