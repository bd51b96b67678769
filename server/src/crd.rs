//! Custom resources of the platform (owned by the provisioning work).
//!
//! Desired state and progress live in the cluster; these types are their only definition.
//! The CRD YAML in `deploy/crds/` is generated from them (`cargo run -p server --bin crdgen`)
//! and a test fails when the committed file is stale. `WorkloadMigration` joins this module
//! with the migration work.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every platform resource.
pub const GROUP: &str = "hexabase.ai";

/// A node reserved for one workspace: what the user ordered in the "Add Dedicated Node"
/// wizard. The object's name is also the Node's name.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "hexabase.ai",
    version = "v1alpha1",
    kind = "DedicatedNode",
    status = "DedicatedNodeStatus",
    shortname = "dn",
    derive = "PartialEq",
    doc = "A dedicated node for one workspace: the order (spec) and its provisioning progress (status).",
    printcolumn(name = "Workspace", type_ = "string", json_path = ".spec.workspace"),
    printcolumn(name = "Size", type_ = "string", json_path = ".spec.size"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "integer", json_path = ".status.progress"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DedicatedNodeSpec {
    /// The workspace slug the node is dedicated to (label and taint value).
    pub workspace: String,
    /// A size id from the catalogue, e.g. `d2.large`.
    pub size: String,
    /// A region id from the catalogue, e.g. `ap-northeast-1`.
    pub region: String,
    /// Email of the person who ordered it (the audit log's actor).
    pub requested_by: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Provisioning,
    Ready,
    Failed,
    Deleting,
}

/// The provisioning steps, in the order they run.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema)]
pub enum StepName {
    CapacityReserved,
    Booting,
    Registering,
    Ready,
}

impl StepName {
    pub const ALL: [StepName; 4] = [StepName::CapacityReserved, StepName::Booting, StepName::Registering, StepName::Ready];
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum StepState {
    #[default]
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningStep {
    pub name: StepName,
    pub state: StepState,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why provisioning failed, for the user (`reason` is a fixed CamelCase word).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningError {
    pub reason: String,
    pub message: String,
}

/// A configuration that has room now: what the user is offered after a failure (use case 5a).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alternative {
    pub region: String,
    pub size: String,
    pub monthly_cost_usd: f64,
}

/// A status condition, the same shape as `metav1.Condition` (times as RFC 3339 strings).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedicatedNodeStatus {
    #[serde(default)]
    pub phase: Phase,
    #[serde(default)]
    pub steps: Vec<ProvisioningStep>,
    /// 0 to 100: 25 for each step done.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProvisioningError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CRD manifests as one YAML stream, exactly as `crdgen` prints and `deploy/crds/` holds.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let yaml = serde_yaml::to_string(&DedicatedNode::crd()).expect("a CRD always serialises");
    format!("# Generated by `cargo run -p server --bin crdgen`; do not edit.\n{yaml}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_matches_the_rust_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/dedicatednode.yaml");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{} is stale: run `cargo run -p server --bin crdgen > deploy/crds/dedicatednode.yaml`",
            path.display()
        );
    }

    #[test]
    fn the_crd_is_cluster_scoped_with_status_and_short_name() {
        use kube::CustomResourceExt;
        let crd = DedicatedNode::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("dedicatednodes.hexabase.ai"));
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["dn".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    }

    #[test]
    fn spec_and_status_are_camel_case_on_the_wire() {
        let dn = DedicatedNode::new(
            "n1",
            DedicatedNodeSpec { workspace: "w".into(), size: "d2.large".into(), region: "r".into(), requested_by: "a@b".into() },
        );
        let json = serde_json::to_value(&dn).unwrap();
        assert_eq!(json["spec"]["requestedBy"], "a@b");
        let status = DedicatedNodeStatus {
            node_name: Some("n1".into()),
            alternatives: vec![Alternative { region: "r".into(), size: "s".into(), monthly_cost_usd: 1.0 }],
            ..Default::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["nodeName"], "n1");
        assert_eq!(json["phase"], "Pending");
        assert_eq!(json["alternatives"][0]["monthlyCostUsd"], 1.0);
    }
}
