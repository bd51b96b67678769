//! Domain types that cross the wire between the server and the browser.
//! They live here once; the server maps cluster and database state into them.

use serde::{Deserialize, Serialize};

/// A workspace's subscription plan. Plans gate dedicated nodes (use case precondition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plan {
    Hobby,
    Pro,
    Team,
}

impl Plan {
    pub fn label(self) -> &'static str {
        match self {
            Plan::Hobby => "Hobby",
            Plan::Pro => "Pro",
            Plan::Team => "Team",
        }
    }

    /// Dedicated nodes are a Pro (or higher) feature.
    pub fn allows_dedicated_nodes(self) -> bool {
        matches!(self, Plan::Pro | Plan::Team)
    }

    /// The database stores plans as their lowercase names.
    pub fn as_db(self) -> &'static str {
        match self {
            Plan::Hobby => "hobby",
            Plan::Pro => "pro",
            Plan::Team => "team",
        }
    }

    pub fn from_db(s: &str) -> Option<Plan> {
        match s {
            "hobby" => Some(Plan::Hobby),
            "pro" => Some(Plan::Pro),
            "team" => Some(Plan::Team),
            _ => None,
        }
    }
}

/// The signed-in person, resolved from the session cookie by the server for every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSummary {
    /// URL-safe identifier, also the value of the `hexabase.ai/workspace` label.
    pub slug: String,
    pub name: String,
    pub plan: Plan,
}

/// One resource of the shared-pool quota, e.g. CPU requests: used vs hard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageBar {
    pub label: String,
    pub used: f64,
    pub hard: f64,
    /// Unit shown after the numbers, e.g. "vCPU", "GiB", "pods".
    pub unit: String,
}

impl UsageBar {
    /// Share of the quota in use, 0-100, clamped (a quota can be over-used after it is lowered).
    pub fn percent(&self) -> f64 {
        if self.hard <= 0.0 {
            return 0.0;
        }
        (self.used / self.hard * 100.0).clamp(0.0, 100.0)
    }
}

/// Formats a resource amount for people: at most one decimal, no trailing ".0".
pub fn format_amount(v: f64) -> String {
    let rounded = (v * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}

/// The workspace's share of the shared node pool, read live from its ResourceQuotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPoolUsage {
    pub cpu: UsageBar,
    pub memory: UsageBar,
    pub pods: UsageBar,
    /// Nodes in the shared pool, and how many other workspaces run pods there.
    pub pool_nodes: u32,
    pub neighbour_workspaces: u32,
}

/// A dedicated node of the workspace as the Node Management list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedicatedNodeSummary {
    pub name: String,
    pub size: String,
    pub region: String,
    pub phase: String,
    /// Seconds since the node was requested.
    pub age_seconds: i64,
    pub cpu: UsageBar,
    pub memory: UsageBar,
}

/// Everything the Node Management page shows (use case steps 1-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeOverview {
    pub workspace: WorkspaceSummary,
    /// `None` with `cluster_error` set when the cluster cannot be reached.
    pub shared_pool: Option<SharedPoolUsage>,
    pub cluster_error: Option<String>,
    pub dedicated_nodes: Vec<DedicatedNodeSummary>,
}

/// A notification shown under the bell and as a toast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub title: String,
    pub body: String,
    /// Relative link in the dashboard, if the notification points somewhere.
    pub link: Option<String>,
    pub created_at: i64,
    pub read: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_clamped_and_safe_for_zero_quota() {
        let bar = |used, hard| UsageBar { label: "CPU".into(), used, hard, unit: "vCPU".into() };
        assert_eq!(bar(2.0, 8.0).percent(), 25.0);
        assert_eq!(bar(9.0, 8.0).percent(), 100.0);
        assert_eq!(bar(1.0, 0.0).percent(), 0.0);
    }

    #[test]
    fn amounts_drop_needless_decimals() {
        assert_eq!(format_amount(2.0), "2");
        assert_eq!(format_amount(2.25), "2.3");
        assert_eq!(format_amount(0.5), "0.5");
    }

    #[test]
    fn only_paid_plans_get_dedicated_nodes() {
        assert!(!Plan::Hobby.allows_dedicated_nodes());
        assert!(Plan::Pro.allows_dedicated_nodes());
        assert!(Plan::Team.allows_dedicated_nodes());
        for p in [Plan::Hobby, Plan::Pro, Plan::Team] {
            assert_eq!(Plan::from_db(p.as_db()), Some(p));
        }
    }
}

/// A node size of the catalogue, with its price (use case step 5-6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeOption {
    pub id: String,
    pub vcpu: f64,
    pub memory_gib: f64,
    pub storage_gib: f64,
    pub network_gbps: f64,
    pub hourly_usd: f64,
    /// hourly × 730 hours.
    pub monthly_usd: f64,
    pub description: String,
    /// What workloads can request once the system reserve is taken.
    pub allocatable_cpu: f64,
    pub allocatable_memory_gib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionOption {
    pub id: String,
    pub name: String,
}

/// What the workspace's workloads on the shared pool request, plus the rolling-update surge a
/// move needs (the largest single workload's extra pods).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadNeed {
    pub workloads: u32,
    pub pods: u32,
    pub cpu: f64,
    pub memory_gib: f64,
    pub surge_cpu: f64,
    pub surge_memory_gib: f64,
}

/// Everything the Add Dedicated Node wizard needs to open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WizardData {
    pub workspace: WorkspaceSummary,
    pub sizes: Vec<SizeOption>,
    pub regions: Vec<RegionOption>,
    /// `None` when the cluster cannot be read; the wizard then cannot check fit.
    pub need: Option<WorkloadNeed>,
    /// The smallest size that holds the need with 20% headroom.
    pub recommended_size: Option<String>,
    pub quota_cpu: f64,
    pub quota_memory_gib: f64,
}

/// Price and fit of one size for the workspace (steps 6 and 5c).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub size: String,
    pub monthly_usd: f64,
    pub hourly_usd: f64,
    /// False when the size cannot hold the workloads plus surge with 20% headroom.
    pub fits: bool,
    pub warning: Option<String>,
    /// The smallest size that fits, offered as a one-click switch when this one does not.
    pub recommended_size: Option<String>,
    pub improvements: Vec<String>,
}

/// One step of provisioning as the progress screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub name: String,
    /// "Pending", "Running", "Done" or "Failed".
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlternativeView {
    pub region: String,
    pub size: String,
    pub monthly_usd: f64,
}

/// A dedicated node's provisioning state, for the progress screen and its live stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeProgress {
    pub name: String,
    pub workspace: String,
    pub size: String,
    pub region: String,
    /// "Pending", "Provisioning", "Ready", "Failed" or "Deleting".
    pub phase: String,
    pub progress: u8,
    pub steps: Vec<StepView>,
    pub error_reason: Option<String>,
    pub error_message: Option<String>,
    pub alternatives: Vec<AlternativeView>,
    pub node_name: Option<String>,
}

impl NodeProgress {
    /// Ready and Failed end the live stream; nothing more will change on its own.
    pub fn is_settled(&self) -> bool {
        matches!(self.phase.as_str(), "Ready" | "Failed")
    }
}

/// US dollars for people: "$1,234.56".
pub fn format_usd(v: f64) -> String {
    let cents = (v * 100.0).round() as i64;
    let (whole, frac) = (cents / 100, (cents % 100).abs());
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}${grouped}.{frac:02}", if whole < 0 { "-" } else { "" })
}

#[cfg(test)]
mod money_tests {
    #[test]
    fn dollars_are_grouped_with_cents() {
        assert_eq!(super::format_usd(1234.5), "$1,234.50");
        assert_eq!(super::format_usd(73.0), "$73.00");
        assert_eq!(super::format_usd(1_000_000.0), "$1,000,000.00");
    }
}

/// A Deployment or StatefulSet of the workspace, as the Workload Migration screen lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigratableWorkload {
    /// "Deployment" or "StatefulSet".
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    /// Requests of all replicas.
    pub cpu: f64,
    pub memory_gib: f64,
    pub has_readiness_probe: bool,
    pub has_pdb: bool,
    /// Why zero downtime cannot be guaranteed; empty when it can.
    pub risks: Vec<String>,
    /// The dedicated node it already runs on, if any.
    pub on_node: Option<String>,
}

impl MigratableWorkload {
    /// "Deployment/web": how a workload is named in forms and plans.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// A Ready dedicated node a migration can target, with what is left on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetNode {
    pub name: String,
    pub size: String,
    pub region: String,
    pub allocatable_cpu: f64,
    pub allocatable_memory_gib: f64,
    pub used_cpu: f64,
    pub used_memory_gib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationScreen {
    pub workspace: WorkspaceSummary,
    /// A metrics source is configured, so the latency guard can be offered.
    pub latency_guard_available: bool,
    pub nodes: Vec<TargetNode>,
    pub workloads: Vec<MigratableWorkload>,
    pub cluster_error: Option<String>,
}

/// One phase of a (possibly phased) migration plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPhase {
    pub workloads: Vec<String>,
    /// Requests plus the phase's largest rolling-update surge.
    pub cpu: f64,
    pub memory_gib: f64,
    /// Whether it fits what the node has left now.
    pub fits_now: bool,
}

/// One change the migration will make, in order (the dry run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunStep {
    pub order: u32,
    pub workload: String,
    pub changes: Vec<String>,
    /// The JSON merge patch applied to the workload.
    pub patch: String,
}

/// The fit check, phases and dry run for a selection of workloads on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub node: String,
    pub fits: bool,
    pub need_cpu: f64,
    pub need_memory_gib: f64,
    pub free_cpu: f64,
    pub free_memory_gib: f64,
    pub warning: Option<String>,
    pub phases: Vec<PlanPhase>,
    pub steps: Vec<DryRunStep>,
}

/// One workload's move, as the migration screen follows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadProgress {
    pub key: String,
    /// 1 for the first phase.
    pub phase_index: u32,
    /// "Pending", "Moving", "Moved", "RollingBack", "RolledBack" or "Failed".
    pub state: String,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// The lowest available-replica count seen during the move: zero downtime, measured.
    pub min_available_seen: Option<i32>,
    pub message: Option<String>,
}

/// A migration's state for its screen and live stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    pub name: String,
    pub workspace: String,
    pub namespace: String,
    pub node: String,
    /// "Pending", "Running", "Paused", "WaitingForApproval", "Succeeded", "RolledBack" or "Failed".
    pub phase: String,
    pub total_phases: u32,
    pub approved_phases: u32,
    pub workloads: Vec<WorkloadProgress>,
    pub baseline_latency_ms: Option<f64>,
    pub current_latency_ms: Option<f64>,
    pub pause_reason: Option<String>,
    pub error_reason: Option<String>,
    pub error_message: Option<String>,
    pub troubleshooting: Vec<String>,
    pub resume_at: Option<String>,
    /// Before/after numbers, once the migration succeeded (step 16).
    pub report: Option<ImprovementReport>,
}

/// What the move changed, in the workspace's own numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImprovementReport {
    /// Before: the workspace's shared-pool CPU quota and how many tenants share those nodes.
    pub quota_cpu: f64,
    pub neighbour_workspaces: u32,
    /// After: what the dedicated node guarantees, and what is requested on it now.
    pub node_cpu: f64,
    pub node_memory_gib: f64,
    pub requested_cpu: f64,
    pub requested_memory_gib: f64,
    /// The namespace's pods on the dedicated node and elsewhere (the shared pool).
    pub pods_on_node: u32,
    pub pods_on_shared_pool: u32,
}

impl MigrationProgress {
    /// Nothing more happens without the user: finished, rolled back, paused or awaiting approval.
    pub fn is_settled(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "RolledBack" | "Failed" | "Paused" | "WaitingForApproval")
    }
}
