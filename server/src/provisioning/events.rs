//! What the product tells people when provisioning ends: a notification for the workspace
//! (use case step 10, and 5a's error) and an audit entry. The controller calls these once per
//! outcome, guarded by the `UserNotified` condition.

use kube::ResourceExt;

use crate::crd::{DedicatedNode, ProvisioningError};
use crate::store::{AuditEntry, Store, StoreResult};

pub const ACTION_PROVISION: &str = "provision-dedicated-node";
pub const ACTION_RELEASE: &str = "release-dedicated-node";
/// The actor when the order does not say who placed it.
const ENGINE: &str = "hexabase-provisioning";

#[derive(Clone)]
pub struct ProvisioningEvents {
    store: Store,
}

/// The node page a notification links to.
pub fn node_link(workspace: &str, name: &str) -> String {
    format!("/w/{workspace}/nodes/{name}")
}

impl ProvisioningEvents {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn node_ready(&self, dn: &DedicatedNode) -> StoreResult<()> {
        let body = format!("{} ({}, {}) is ready for workloads.", dn.name_any(), dn.spec.size, dn.spec.region);
        self.record(dn, "Dedicated node ready", &body, ACTION_PROVISION, "succeeded").await
    }

    pub async fn node_failed(&self, dn: &DedicatedNode, error: &ProvisioningError) -> StoreResult<()> {
        let body = format!("{} ({}, {}) could not be provisioned: {}", dn.name_any(), dn.spec.size, dn.spec.region, error.message);
        self.record(dn, "Dedicated node provisioning failed", &body, ACTION_PROVISION, "failed").await
    }

    /// Deletion is audited but not notified: the user asked for it and sees it go.
    pub async fn node_released(&self, dn: &DedicatedNode) -> StoreResult<()> {
        let workspace_id = self.store.workspace_id(&dn.spec.workspace).await?;
        self.store.audit(&entry(dn, workspace_id, ACTION_RELEASE, "succeeded", None)).await
    }

    async fn record(&self, dn: &DedicatedNode, title: &str, body: &str, action: &str, outcome: &str) -> StoreResult<()> {
        let workspace_id = self.store.workspace_id(&dn.spec.workspace).await?;
        match &workspace_id {
            Some(id) => {
                let link = node_link(&dn.spec.workspace, &dn.name_any());
                self.store.notify(id, title, body, Some(&link)).await?;
            }
            // An order for a workspace the database does not know (made with kubectl): the audit
            // log still records it; there is nobody to notify.
            None => tracing::warn!(workspace = %dn.spec.workspace, node = %dn.name_any(), "no such workspace; not notified"),
        }
        self.store.audit(&entry(dn, workspace_id, action, outcome, Some(body.to_string()))).await
    }
}

fn entry(dn: &DedicatedNode, workspace_id: Option<String>, action: &str, outcome: &str, detail: Option<String>) -> AuditEntry {
    let actor = if dn.spec.requested_by.is_empty() { ENGINE.to_string() } else { dn.spec.requested_by.clone() };
    AuditEntry { actor, workspace_id, action: action.into(), target: Some(dn.name_any()), outcome: outcome.into(), detail }
}
