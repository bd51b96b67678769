//! The labels and taint that make up the platform's Kubernetes model (DESIGN.md).

pub const WORKSPACE: &str = "hexabase.ai/workspace";
pub const NODE_POOL: &str = "hexabase.ai/node-pool";
pub const POOL_SHARED: &str = "shared";
pub const POOL_DEDICATED: &str = "dedicated";
pub const SIZE: &str = "hexabase.ai/size";
pub const REGION: &str = "topology.kubernetes.io/region";
pub const DEDICATED_TAINT: &str = "hexabase.ai/dedicated";

pub fn workspace_selector(ws: &str) -> String {
    format!("{WORKSPACE}={ws}")
}
