//! What the product tells people about a migration: a notification for the workspace (use
//! case steps 16, 5b and 5d) and an audit entry. The controller calls these once per outcome,
//! guarded by the `UserNotified` condition.

use kube::ResourceExt;

use crate::crd::{MigrationError, WorkloadMigration, WorkloadMigrationStatus, WorkloadState};
use crate::store::{AuditEntry, Store, StoreResult};

pub const ACTION_MIGRATE: &str = "migrate-workloads";
/// The actor when the migration does not say who asked for it.
const ENGINE: &str = "hexabase-migration";

#[derive(Clone)]
pub struct MigrationEvents {
    store: Store,
}

/// The migration page a notification links to.
pub fn migration_link(workspace: &str, namespace: &str, name: &str) -> String {
    format!("/w/{workspace}/migrations/{namespace}/{name}")
}

/// "web (3 of 3 available at the lowest), api (2 of 2 …)": zero downtime, as measured.
fn availability(status: &WorkloadMigrationStatus) -> String {
    status
        .workloads
        .iter()
        .filter(|w| w.state == WorkloadState::Moved)
        .map(|w| match w.min_available_seen {
            Some(min) => format!("{} ({min} of {} replicas available at the lowest)", w.name, w.desired_replicas),
            None => format!("{} ({} replicas)", w.name, w.desired_replicas),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl MigrationEvents {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn completed(&self, wm: &WorkloadMigration, status: &WorkloadMigrationStatus) -> StoreResult<()> {
        let body = format!("Moved to {}: {}.", wm.spec.target_node, availability(status));
        self.record(wm, "Migration complete", &body, "succeeded").await
    }

    pub async fn rolled_back(&self, wm: &WorkloadMigration, error: &MigrationError) -> StoreResult<()> {
        let body = format!("{} The workload was restored automatically. {}", error.message, error.troubleshooting.join(" "));
        self.record(wm, "Migration rolled back", body.trim_end(), "rolled-back").await
    }

    pub async fn failed(&self, wm: &WorkloadMigration, error: &MigrationError) -> StoreResult<()> {
        let body = format!("{} {}", error.message, error.troubleshooting.join(" "));
        self.record(wm, "Migration failed", body.trim_end(), "failed").await
    }

    pub async fn paused(&self, wm: &WorkloadMigration, reason: &str) -> StoreResult<()> {
        let body = format!("Migration to {} paused before the next workload: {reason}. Resume it now or at a set time.", wm.spec.target_node);
        self.record(wm, "Migration paused", &body, "paused").await
    }

    async fn record(&self, wm: &WorkloadMigration, title: &str, body: &str, outcome: &str) -> StoreResult<()> {
        let workspace_id = self.store.workspace_id(&wm.spec.workspace).await?;
        let namespace = wm.namespace().unwrap_or_default();
        match &workspace_id {
            Some(id) => {
                let link = migration_link(&wm.spec.workspace, &namespace, &wm.name_any());
                self.store.notify(id, title, body, Some(&link)).await?;
            }
            None => tracing::warn!(workspace = %wm.spec.workspace, migration = %wm.name_any(), "no such workspace; not notified"),
        }
        let actor = if wm.spec.requested_by.is_empty() { ENGINE.to_string() } else { wm.spec.requested_by.clone() };
        let entry = AuditEntry {
            actor,
            workspace_id,
            action: ACTION_MIGRATE.into(),
            target: Some(format!("{namespace}/{}", wm.name_any())),
            outcome: outcome.into(),
            detail: Some(body.to_string()),
        };
        self.store.audit(&entry).await
    }
}
