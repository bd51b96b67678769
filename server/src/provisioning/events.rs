//! What the product tells people when provisioning ends: a notification for the workspace
//! (use case step 10, and 5a's error) and an audit entry; also when a Ready node is lost and
//! when its replacement is Ready. The controller calls these once per outcome, guarded by the
//! `UserNotified` condition.

use kube::ResourceExt;

use crate::crd::{DedicatedNode, ProvisioningError};
use crate::engine::notify::{outcome_key, Message, Notifier, Outcome};
use crate::store::{Store, StoreResult};

pub const ACTION_PROVISION: &str = "provision-dedicated-node";
pub const ACTION_RELEASE: &str = "release-dedicated-node";
pub const ACTION_REPLACE: &str = "replace-dedicated-node";
/// The actor when the order does not say who placed it.
const ENGINE: &str = "hexabase-provisioning";

#[derive(Clone)]
pub struct ProvisioningEvents {
    notifier: Notifier,
}

/// The node page a notification links to (the dashboard's route `/w/:ws/nodes/:name`).
pub fn node_link(workspace: &str, name: &str) -> String {
    format!("/w/{workspace}/nodes/{name}")
}

impl ProvisioningEvents {
    pub fn new(store: Store) -> Self {
        Self { notifier: Notifier::new(store) }
    }

    pub async fn node_ready(&self, dn: &DedicatedNode) -> StoreResult<()> {
        let body = format!("{} ({}, {}) is ready for workloads.", dn.name_any(), dn.spec.size, dn.spec.region);
        self.record(dn, ACTION_PROVISION, "succeeded", Some(("Dedicated node ready", body))).await
    }

    pub async fn node_failed(&self, dn: &DedicatedNode, error: &ProvisioningError) -> StoreResult<()> {
        let body = format!("{} ({}, {}) could not be provisioned: {}", dn.name_any(), dn.spec.size, dn.spec.region, error.message);
        self.record(dn, ACTION_PROVISION, "failed", Some(("Dedicated node provisioning failed", body))).await
    }

    /// A Ready node's machine is gone (deleted, or terminated by its provider): the user
    /// hears it at once, since workloads pinned to it wait until the replacement is Ready.
    pub async fn node_lost(&self, dn: &DedicatedNode, why: &str) -> StoreResult<()> {
        let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
        let body = format!(
            "{} ({}, {}) lost its node{why}. A replacement is being provisioned; pods pinned to the old node wait for it.",
            dn.name_any(),
            dn.spec.size,
            dn.spec.region
        );
        self.record(dn, ACTION_REPLACE, "node-lost", Some(("Dedicated node lost", body))).await
    }

    /// The replacement of a lost node is Ready.
    pub async fn node_replaced(&self, dn: &DedicatedNode, node: &str) -> StoreResult<()> {
        let body = format!("{} ({}, {}) is ready for workloads again, on node {node}.", dn.name_any(), dn.spec.size, dn.spec.region);
        self.record(dn, ACTION_REPLACE, "succeeded", Some(("Dedicated node replaced", body))).await
    }

    /// Deletion is audited but not notified: the user asked for it and sees it go.
    pub async fn node_released(&self, dn: &DedicatedNode) -> StoreResult<()> {
        self.record(dn, ACTION_RELEASE, "succeeded", None).await
    }

    async fn record(&self, dn: &DedicatedNode, action: &'static str, outcome: &'static str, message: Option<(&str, String)>) -> StoreResult<()> {
        let ws = &dn.spec.workspace;
        self.notifier
            .record(&Outcome {
                key: outcome_key(dn.uid().as_deref(), &format!("{action}/{outcome}"), stored_times(dn)),
                workspace: ws.clone(),
                actor: if dn.spec.requested_by.is_empty() { ENGINE.to_string() } else { dn.spec.requested_by.clone() },
                action,
                target: dn.name_any(),
                outcome,
                notification: message.map(|(title, body)| Message { title: title.into(), body, link: node_link(ws, &dn.name_any()) }),
                detail: None,
            })
            .await
    }
}

/// Every time the order's stored status records (see `outcome_key`).
fn stored_times(dn: &DedicatedNode) -> Vec<&str> {
    let Some(s) = dn.status.as_ref() else { return vec![] };
    let steps = s.steps.iter().flat_map(|st| [st.started_at.as_deref(), st.finished_at.as_deref()]).flatten();
    steps.chain(s.conditions.iter().map(|c| c.last_transition_time.as_str())).collect()
}
