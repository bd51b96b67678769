//! What the product tells people when provisioning ends: a notification for the workspace
//! (use case step 10, and 5a's error) and an audit entry. The controller calls these once per
//! outcome, guarded by the `UserNotified` condition.

use kube::ResourceExt;

use crate::crd::{DedicatedNode, ProvisioningError};
use crate::engine::notify::{Message, Notifier, Outcome};
use crate::store::{Store, StoreResult};

pub const ACTION_PROVISION: &str = "provision-dedicated-node";
pub const ACTION_RELEASE: &str = "release-dedicated-node";
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

    /// Deletion is audited but not notified: the user asked for it and sees it go.
    pub async fn node_released(&self, dn: &DedicatedNode) -> StoreResult<()> {
        self.record(dn, ACTION_RELEASE, "succeeded", None).await
    }

    async fn record(&self, dn: &DedicatedNode, action: &'static str, outcome: &'static str, message: Option<(&str, String)>) -> StoreResult<()> {
        let ws = &dn.spec.workspace;
        self.notifier
            .record(&Outcome {
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
