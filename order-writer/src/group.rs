//! The activities a writer group handles are the group's, not one writer's: a lease in Redis
//! (`sk:writer_group:<group>`, holder = the sorted activity list or `*`) is held while any
//! writer of the group runs. A writer started in that group with another list is refused: it
//! would acknowledge, unpersisted, orders its group-mates would have persisted. Once every
//! writer of the group stopped, the lease expires and the group may be started with a new list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seckill_ledger::{keys, Ledger};
use seckill_service::ConfigError;

use crate::config::WriterConfig;
use crate::StartError;

/// How long the lease outlives the last renewal of the group's last writer.
pub const GROUP_LEASE: Duration = Duration::from_secs(10);

pub struct GroupFilter {
    key: String,
    group: String,
    /// The holder: the sorted activity ids, comma-separated, or `*` for every activity.
    filter: String,
}

impl GroupFilter {
    pub fn new(config: &WriterConfig) -> Self {
        let mut activities = config.activities.clone();
        activities.sort();
        GroupFilter {
            key: keys::writer_group(&config.consumer_group),
            group: config.consumer_group.clone(),
            filter: if activities.is_empty() {
                "*".to_owned()
            } else {
                activities.join(",")
            },
        }
    }

    /// Takes (or joins) the group's lease; refused when the group runs with another list.
    pub async fn hold(&self, ledger: &Ledger) -> Result<(), StartError> {
        if ledger
            .hold_lease(&self.key, &self.filter, GROUP_LEASE)
            .await?
        {
            return Ok(());
        }
        let current = ledger.lease_holder(&self.key).await?;
        Err(ConfigError::new(format!(
            "writer group {} runs with SECKILL_WRITER_ACTIVITIES={:?}, this writer with {:?}: \
             use a SECKILL_WRITER_GROUP of its own (or stop the group's writers first)",
            self.group,
            current.unwrap_or_default(),
            self.filter
        ))
        .into())
    }

    /// Lets the lease go now if this group's list holds it (a writer stopping gracefully): the
    /// group's other writers take it back at their next renewal, and once none runs the group
    /// may start with another list at once rather than after [`GROUP_LEASE`].
    pub async fn release(&self, ledger: &Ledger) {
        if let Err(e) = ledger
            .hold_lease(&self.key, &self.filter, Duration::from_millis(1))
            .await
        {
            tracing::warn!(error = %e, "releasing the group's activity lease");
        }
    }

    /// Renews the lease every third of its length until `stopping`.
    pub async fn keep(self: Arc<Self>, ledger: Ledger, stopping: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(GROUP_LEASE / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stopping.load(Ordering::Acquire) {
            tick.tick().await;
            match ledger
                .hold_lease(&self.key, &self.filter, GROUP_LEASE)
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::error!(
                    group = %self.group,
                    "the group's activity lease was taken by writers with another list"
                ),
                Err(e) => tracing::warn!(error = %e, "renewing the group's activity lease"),
            }
        }
    }
}
