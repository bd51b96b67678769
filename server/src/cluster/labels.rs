//! The labels, taint and priority class that make up the platform's Kubernetes model
//! (DESIGN.md, ARCHITECTURE.md "Shared-pool quota").

pub const WORKSPACE: &str = "hexabase.ai/workspace";
pub const NODE_POOL: &str = "hexabase.ai/node-pool";
pub const POOL_SHARED: &str = "shared";
pub const POOL_DEDICATED: &str = "dedicated";
pub const SIZE: &str = "hexabase.ai/size";
pub const REGION: &str = "topology.kubernetes.io/region";
pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const DEDICATED_TAINT: &str = "hexabase.ai/dedicated";
/// On a Node: the `DedicatedNode` order it was made for, whatever the Node is named.
pub const ORDER: &str = "hexabase.ai/dedicated-node";
/// Pods on a dedicated node run in this priority class (same priority as the default, never
/// preempts); the workspaces' shared-pool quotas are scoped to pods outside it, so what runs
/// on a dedicated node does not count against the shared pool.
pub const DEDICATED_PRIORITY_CLASS: &str = "hexabase-dedicated";

pub fn workspace_selector(ws: &str) -> String {
    format!("{WORKSPACE}={ws}")
}

pub fn pool_selector(pool: &str) -> String {
    format!("{NODE_POOL}={pool}")
}
