//! What the product tells people about a migration: a notification for the workspace (use
//! case steps 16, 5b and 5d) and an audit entry. The controller calls these once per outcome,
//! guarded by the `UserNotified` condition.

use kube::ResourceExt;

use crate::crd::{MigrationError, WorkloadMigration, WorkloadMigrationStatus, WorkloadState};
use crate::engine::notify::{outcome_key, Message, Notifier, Outcome};
use crate::store::{Store, StoreResult};

pub const ACTION_MIGRATE: &str = "migrate-workloads";
/// The actor when the migration does not say who asked for it.
const ENGINE: &str = "hexabase-migration";

#[derive(Clone)]
pub struct MigrationEvents {
    notifier: Notifier,
}

/// A migration and the workspace that owns its namespace (`None`: no workspace does; the
/// outcome is audited without a workspace and nobody is notified).
pub struct Told<'a> {
    pub wm: &'a WorkloadMigration,
    pub owner: Option<&'a str>,
}

/// The migration page a notification links to (the dashboard's route
/// `/w/:ws/migrations/:namespace/:name`).
pub fn migration_link(workspace: &str, namespace: &str, name: &str) -> String {
    format!("/w/{workspace}/migrations/{namespace}/{name}")
}

/// "web (3 of 3 available at the lowest), api (…)": zero downtime, as measured.
fn availability(status: &WorkloadMigrationStatus) -> String {
    status
        .workloads
        .iter()
        .filter(|w| w.state == WorkloadState::Moved)
        .map(|w| match w.min_available_seen {
            Some(min) => format!("{} ({min} of {} replicas available at the lowest)", w.workload.name, w.desired_replicas),
            None => format!("{} (availability not measured)", w.workload.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl MigrationEvents {
    pub fn new(store: Store) -> Self {
        Self { notifier: Notifier::new(store) }
    }

    pub async fn completed(&self, t: &Told<'_>, status: &WorkloadMigrationStatus) -> StoreResult<()> {
        let body = format!("Moved to {}: {}.", t.wm.spec.target_node, availability(status));
        self.record(t, "Migration complete", body, "succeeded").await
    }

    pub async fn rolled_back(&self, t: &Told<'_>, error: &MigrationError) -> StoreResult<()> {
        let body = format!("{} The workload was restored automatically. {}", error.message, error.troubleshooting.join(" "));
        self.record(t, "Migration rolled back", body.trim_end().to_string(), "rolled-back").await
    }

    pub async fn failed(&self, t: &Told<'_>, error: &MigrationError) -> StoreResult<()> {
        let body = format!("{} {}", error.message, error.troubleshooting.join(" "));
        self.record(t, "Migration failed", body.trim_end().to_string(), "failed").await
    }

    pub async fn paused(&self, t: &Told<'_>, reason: &str) -> StoreResult<()> {
        let body = format!("Migration to {} paused before the next workload: {reason}. Resume it now or at a set time.", t.wm.spec.target_node);
        self.record(t, "Migration paused", body, "paused").await
    }

    async fn record(&self, t: &Told<'_>, title: &str, body: String, outcome: &'static str) -> StoreResult<()> {
        let wm = t.wm;
        let namespace = wm.namespace().unwrap_or_default();
        let owner = t.owner.unwrap_or_default();
        self.notifier
            .record(&Outcome {
                key: outcome_key(wm.uid().as_deref(), &format!("{ACTION_MIGRATE}/{outcome}/{}", wm.status.as_ref().map_or(0, |s| s.attempt)), stored_times(wm)),
                workspace: owner.to_string(),
                actor: if wm.spec.requested_by.is_empty() { ENGINE.to_string() } else { wm.spec.requested_by.clone() },
                action: ACTION_MIGRATE,
                target: format!("{namespace}/{}", wm.name_any()),
                outcome,
                notification: t.owner.map(|ws| Message { title: title.into(), body: body.clone(), link: migration_link(ws, &namespace, &wm.name_any()) }),
                detail: Some(body),
            })
            .await
    }
}

/// Every time the migration's stored status records (see `outcome_key`).
fn stored_times(wm: &WorkloadMigration) -> Vec<&str> {
    let Some(s) = wm.status.as_ref() else { return vec![] };
    let run = [s.started_at.as_deref(), s.finished_at.as_deref()].into_iter().flatten();
    run.chain(s.conditions.iter().map(|c| c.last_transition_time.as_str())).collect()
}
