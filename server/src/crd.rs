//! Custom resources of the platform.
//!
//! Desired state and progress live in the cluster; these types are their only definition.
//! The CRD YAML in `deploy/crds/` is generated from them (`cargo run -p server --bin crdgen -- deploy/crds`)
//! and a test fails when a committed file is stale.

// kube's `printcolumn(...)` attributes repeat the same keys by design, one set a column.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The vocabulary is defined once, in the wire types: the custom resources store these enums.
pub use app::model::{MigrationState, NodePhase, SharedPoolSnapshot, StepName, StepState, WorkloadKey, WorkloadKind, WorkloadState};

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
    /// The workspace slug the node is dedicated to (label and taint value). Immutable: a node
    /// never changes hands.
    #[schemars(extend("x-kubernetes-validations" = [{ "rule": "self == oldSelf", "message": "the workspace of a dedicated node cannot change" }]))]
    pub workspace: String,
    /// A size id from the catalogue, e.g. `d2.large`.
    pub size: String,
    /// A region id from the catalogue, e.g. `ap-northeast-1`.
    pub region: String,
    /// Email of the person who ordered it (the audit log's actor).
    pub requested_by: String,
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

/// Sets the condition `type_` in `conditions` (adding it if missing). The transition time moves
/// only when the status does, as Kubernetes expects; `now` is RFC 3339.
pub fn set_condition(conditions: &mut Vec<Condition>, type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>, now: &str) {
    let status = if ok { "True" } else { "False" };
    let next = |last_transition_time: String| Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => *c = next(c.last_transition_time.clone()),
        Some(c) => *c = next(now.to_string()),
        None => conditions.push(next(now.to_string())),
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedicatedNodeStatus {
    #[serde(default)]
    pub phase: NodePhase,
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

/// Moves a workspace's Deployments and StatefulSets onto its dedicated node without downtime
/// ("Migrate to Dedicated Node"): what to move, in which phases, under which guard (spec), and
/// how far it got (status). Lives in a namespace of the workspace (the dashboard uses the
/// first workload's); the workloads may be in any of the workspace's namespaces.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "hexabase.ai",
    version = "v1alpha1",
    kind = "WorkloadMigration",
    namespaced,
    status = "WorkloadMigrationStatus",
    shortname = "wm",
    derive = "PartialEq",
    doc = "A zero-downtime move of workloads onto a dedicated node, with automatic rollback: the plan (spec) and its progress (status).",
    printcolumn(name = "Workspace", type_ = "string", json_path = ".spec.workspace"),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetNode"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "integer", json_path = ".status.currentPhase"),
    printcolumn(name = "Approved", type_ = "integer", json_path = ".spec.approvedPhases"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused", priority = "1"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.error.reason", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadMigrationSpec {
    /// The workspace slug; the namespaces and the target node must all belong to it.
    /// Immutable, like the target: the engine checks ownership before and during the move.
    #[schemars(extend("x-kubernetes-validations" = [{ "rule": "self == oldSelf", "message": "the workspace of a migration cannot change" }]))]
    pub workspace: String,
    /// The Node (a `DedicatedNode`'s name) the workloads move to.
    #[schemars(extend("x-kubernetes-validations" = [{ "rule": "self == oldSelf", "message": "the target node of a migration cannot change" }]))]
    pub target_node: String,
    /// Groups of workloads, moved one phase after another (the first phase first), one
    /// workload at a time. Each names its namespace; every namespace must belong to the
    /// workspace.
    pub phases: Vec<MigrationPhase>,
    /// How many phases may run. Saving a phased plan is creating the migration with 1; the
    /// user raises it to let the next phase run.
    #[serde(default = "default_approved_phases")]
    pub approved_phases: u32,
    /// How long one workload's rollout may take before it is rolled back.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: u32,
    /// While true no further workload starts (one already moving finishes its move).
    #[serde(default)]
    pub paused: bool,
    /// RFC 3339: when set and reached, a paused migration resumes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<String>,
    /// Pause when the application's p95 latency rises above its baseline (use case 5d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_guard: Option<LatencyGuardSpec>,
    /// Raise it to try again after the migration rolled back or failed: the controller starts
    /// over from a fresh status (workloads already on the node stay there and finish at once).
    #[serde(default)]
    pub retry: u32,
    /// Email of the person who asked for the move (the audit log's actor).
    #[serde(default)]
    pub requested_by: String,
}

fn default_approved_phases() -> u32 {
    1
}

fn default_progress_deadline_seconds() -> u32 {
    120
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationPhase {
    /// Workloads of the migration's workspace, in any of its namespaces.
    pub workloads: Vec<WorkloadKey>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyGuardSpec {
    /// A p95 more than this many percent above the baseline is a breach.
    pub margin_percent: f64,
    /// This many breaches in a row pause the migration.
    pub consecutive_intervals: u32,
    /// How often latency is sampled while the migration runs.
    #[schemars(range(min = 1))]
    pub interval_seconds: u32,
    /// The name of a latency histogram the workload exports, instead of the server's
    /// `http_request_duration_seconds`. Only a metric name: the engine writes the PromQL
    /// itself, with the workload's namespace and name, so a migration cannot run arbitrary
    /// queries against the platform's Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$"))]
    pub metric: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub workload: WorkloadKey,
    /// 1 for the first phase.
    pub phase_index: u32,
    pub state: WorkloadState,
    #[serde(default)]
    pub desired_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    /// Pods running on the target node at the last reading: where the workload is now.
    #[serde(default)]
    pub on_target: i32,
    /// The lowest available replica count seen while the workload moved: zero downtime is
    /// measured, not assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available_seen: Option<i32>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why a migration rolled back or failed, for the user (`reason` is a fixed CamelCase word),
/// with what to do about it (use case 5b).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationError {
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub troubleshooting: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadMigrationStatus {
    #[serde(default)]
    pub phase: MigrationState,
    #[serde(default)]
    pub workloads: Vec<WorkloadStatus>,
    /// The phase (1-based) of the workload moving or next to move; 0 before anything started.
    #[serde(default)]
    pub current_phase: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// The latency guard's memory, so a restarted server keeps its baseline and breach count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_guard: Option<GuardState>,
    /// The workspace on the shared pool when the migration started: the report's "before".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<SharedPoolSnapshot>,
    /// RFC 3339: when latency was last sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_sampled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MigrationError>,
    /// The `spec.retry` this status belongs to.
    #[serde(default)]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What the latency guard remembers between samples (see `migration::latency::observe`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardState {
    pub baseline_ms: Option<f64>,
    pub breaches: u32,
    pub last_ms: Option<f64>,
}

/// The generated CRD files: (file name under `deploy/crds/`, YAML), exactly as `crdgen`
/// writes them.
pub fn crd_files() -> Vec<(&'static str, String)> {
    use kube::CustomResourceExt;
    let render = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        let yaml = serde_yaml::to_string(&crd).expect("a CRD always serialises");
        format!("# Generated by `cargo run -p server --bin crdgen -- deploy/crds`; do not edit.\n{yaml}")
    };
    vec![("dedicatednode.yaml", render(DedicatedNode::crd())), ("workloadmigration.yaml", render(WorkloadMigration::crd()))]
}

/// The `DedicatedNode` CRD manifest, as `deploy/crds/dedicatednode.yaml` holds it.
pub fn crd_yaml() -> String {
    crd_files().swap_remove(0).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_the_rust_types() {
        for (file, yaml) in crd_files() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds").join(file);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(committed == yaml, "{} is stale: run `cargo run -p server --bin crdgen -- deploy/crds`", path.display());
        }
    }

    #[test]
    fn the_migration_crd_is_namespaced_with_status_and_short_name() {
        use kube::CustomResourceExt;
        let crd = WorkloadMigration::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("workloadmigrations.hexabase.ai"));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["wm".to_string()]));
        assert!(crd.spec.versions[0].subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    }

    #[test]
    fn a_minimal_migration_gets_the_defaults_and_is_camel_case() {
        let spec: WorkloadMigrationSpec = serde_json::from_value(serde_json::json!({
            "workspace": "w", "targetNode": "n1",
            "phases": [{ "workloads": [{ "namespace": "shop", "kind": "Deployment", "name": "web" }] }]
        }))
        .unwrap();
        assert_eq!((spec.approved_phases, spec.progress_deadline_seconds, spec.paused, spec.retry), (1, 120, false, 0));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["targetNode"], "n1");
        assert_eq!(json["approvedPhases"], 1);
        assert_eq!(json["phases"][0]["workloads"][0]["kind"], "Deployment");
        assert_eq!(json["phases"][0]["workloads"][0]["namespace"], "shop");
        let status = WorkloadMigrationStatus { current_phase: 1, pause_reason: Some("p".into()), ..Default::default() };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!((json["phase"].as_str(), json["currentPhase"].as_u64(), json["pauseReason"].as_str()), (Some("Pending"), Some(1), Some("p")));
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
        let dn = DedicatedNode::new("n1", DedicatedNodeSpec { workspace: "w".into(), size: "d2.large".into(), region: "r".into(), requested_by: "a@b".into() });
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
