//! Domain types that cross the wire between the server and the browser. They live here once;
//! the server maps cluster and database state into them. The vocabulary (phases, states,
//! kinds, actions) is in [`vocabulary`], shared with the custom resources.

mod format;
mod names;
mod node_details;
mod performance;
mod usage;
mod vocabulary;
mod workload_key;

pub use format::*;
pub use names::*;
pub use node_details::{NodeConditionView, NodeCost, NodeDetails, NodeEventView, WorkloadOnNode};
pub use performance::{MigrationPerformance, Trend, Verdict, WorkloadPerformance, CLEAR_CHANGE};
pub use usage::{NodeUsage, UsageRange, UsageSeries};
pub use vocabulary::*;
pub use workload_key::WorkloadKey;

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
    /// The signed-in person's role in it.
    pub role: Role,
}

/// One resource against its limit, e.g. CPU requests: used vs hard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageBar {
    pub label: String,
    pub used: f64,
    pub hard: f64,
    /// Unit shown after the numbers, e.g. "vCPU", "GiB", "pods".
    pub unit: String,
}

impl UsageBar {
    /// Share of the limit in use, 0-100, clamped (a quota can be over-used after it is lowered).
    pub fn percent(&self) -> f64 {
        if self.hard <= 0.0 {
            return 0.0;
        }
        (self.used / self.hard * 100.0).clamp(0.0, 100.0)
    }
}

/// What the workspace runs on the shared node pool, against its plan's shared-pool quota.
/// The quota is scoped to the shared pool: pods on the workspace's dedicated nodes do not
/// count against it (ARCHITECTURE.md, "Shared-pool quota").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPoolUsage {
    pub cpu: UsageBar,
    pub memory: UsageBar,
    pub pods: UsageBar,
    /// Nodes in the shared pool.
    pub pool_nodes: u32,
    /// Other workspaces whose pods run on the shared pool's nodes now.
    pub neighbour_workspaces: u32,
}

/// A dedicated node of the workspace as the Node Management list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedicatedNodeSummary {
    pub name: String,
    pub size: String,
    pub region: String,
    pub phase: NodePhase,
    /// Seconds since the node was requested.
    pub age_seconds: i64,
    /// Requested by pods on the node against its allocatable.
    pub cpu: UsageBar,
    pub memory: UsageBar,
    /// Why a failed request failed.
    pub error_message: Option<String>,
}

/// Everything the Node Management page shows (use case steps 1-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeOverview {
    pub workspace: WorkspaceSummary,
    /// `None` with `cluster_error` set when the cluster cannot be reached.
    pub shared_pool: Option<SharedPoolUsage>,
    pub cluster_error: Option<String>,
    /// Nodes that exist or are on their way.
    pub dedicated_nodes: Vec<DedicatedNodeSummary>,
    /// Requests that failed and were neither retried nor dismissed.
    pub failed_requests: Vec<DedicatedNodeSummary>,
}

/// A notification shown under the bell and as a toast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub title: String,
    pub body: String,
    /// Relative link in the dashboard, if the notification points somewhere.
    pub link: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub read: bool,
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
    /// The smallest size that holds the need with the headroom.
    pub recommended_size: Option<String>,
    /// The fit check's headroom over requests plus surge, in percent.
    pub headroom_percent: u32,
}

/// Price and fit of one size for the workspace (steps 6 and 5c).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub size: String,
    pub monthly_usd: f64,
    pub hourly_usd: f64,
    /// False when the size cannot hold the workloads plus surge with the headroom.
    pub fits: bool,
    pub warning: Option<String>,
    /// The smallest size that fits, offered as a one-click switch when this one does not.
    pub recommended_size: Option<String>,
    /// What the size changes, each sentence from the workspace's own numbers.
    pub improvements: Vec<String>,
}

/// One step of provisioning as the progress screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub name: StepName,
    pub state: StepState,
    /// Unix milliseconds.
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub message: Option<String>,
}

impl StepView {
    /// How long the step took, once it finished.
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.finished_at_ms? - self.started_at_ms?)
    }
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
    pub phase: NodePhase,
    /// 0-100; 100 exactly when Ready.
    pub progress: u8,
    pub steps: Vec<StepView>,
    pub error_reason: Option<String>,
    pub error_message: Option<String>,
    pub alternatives: Vec<AlternativeView>,
    pub node_name: Option<String>,
    /// The workspace has been told how provisioning ended (the notification exists).
    pub told: bool,
}

impl NodeProgress {
    /// Ready or Failed, and told: nothing more will change on its own, and the bell already
    /// has the notification, so the live stream ends here.
    pub fn is_settled(&self) -> bool {
        self.phase.is_settled() && self.told
    }
}

/// A Deployment or StatefulSet of the workspace, as the Workload Migration screen lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigratableWorkload {
    pub key: WorkloadKey,
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
    /// One page of the workloads `listing` describes.
    pub workloads: Vec<MigratableWorkload>,
    pub listing: WorkloadListing,
    pub cluster_error: Option<String>,
}

/// Workloads listed on one page of the migration screen: enough to scan, few enough that a
/// workspace of a thousand workloads renders as fast as one of ten.
pub const WORKLOADS_PER_PAGE: u32 = 50;

/// The longest filter the migration screen takes.
pub const MAX_FILTER_CHARS: usize = 100;

/// Which workloads the migration screen lists: those whose name or namespace contains
/// `filter` (any case), page `page` of them (from 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadQuery {
    pub filter: String,
    pub page: u32,
}

impl Default for WorkloadQuery {
    fn default() -> Self {
        Self { filter: String::new(), page: 1 }
    }
}

impl WorkloadQuery {
    /// The query as the user gave it (a URL's `?filter=&page=`), checked: the filter trimmed
    /// and bounded, the page from 1.
    pub fn new(filter: Option<String>, page: Option<u32>) -> Result<Self, String> {
        let filter = filter.unwrap_or_default().trim().to_string();
        if filter.chars().count() > MAX_FILTER_CHARS {
            return Err(format!("A filter is at most {MAX_FILTER_CHARS} characters."));
        }
        Ok(Self { filter, page: page.unwrap_or(1).max(1) })
    }

    /// Whether a workload's name or namespace contains the filter, in any case.
    pub fn matches(&self, key: &WorkloadKey) -> bool {
        let contains = |text: &str| text.to_lowercase().contains(&self.filter.to_lowercase());
        self.filter.is_empty() || contains(&key.name) || contains(&key.namespace)
    }
}

/// Which page of which workloads the screen shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadListing {
    pub filter: String,
    /// The page shown, from 1 (the last one when the query asked past it).
    pub page: u32,
    pub pages: u32,
    /// Workloads the filter matches, and all of the workspace's.
    pub matching: u32,
    pub total: u32,
}

/// One phase of a (possibly phased) migration plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPhase {
    pub workloads: Vec<WorkloadKey>,
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
    pub workload: WorkloadKey,
    pub changes: Vec<String>,
    /// The JSON merge patch applied to the workload.
    pub patch: String,
}

/// The fit check, phases and dry run for a selection of workloads on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub node: String,
    pub fits: bool,
    /// Requests plus the largest surge, before the headroom.
    pub need_cpu: f64,
    pub need_memory_gib: f64,
    pub free_cpu: f64,
    pub free_memory_gib: f64,
    /// The fit check's headroom over requests plus surge, in percent.
    pub headroom_percent: u32,
    pub warning: Option<String>,
    pub phases: Vec<PlanPhase>,
    pub steps: Vec<DryRunStep>,
}

/// One workload's move, as the migration screen follows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadProgress {
    pub key: WorkloadKey,
    /// 1 for the first phase.
    pub phase_index: u32,
    pub state: WorkloadState,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// Pods running on the target node at the last reading.
    pub on_target: i32,
    /// The lowest available-replica count seen during the move: zero downtime, measured.
    /// `None`: nothing was measured (the move did not start, or no reading came).
    pub min_available_seen: Option<i32>,
    pub message: Option<String>,
}

impl WorkloadProgress {
    /// Where the workload's pods are now, in the state's own terms.
    pub fn whereabouts(&self, node: &str) -> String {
        match self.state {
            WorkloadState::Pending => format!("On the shared pool; {} of {} available.", self.available, self.desired),
            WorkloadState::Moving => format!("{} of {} on {node}; {} available.", self.on_target, self.desired, self.available),
            WorkloadState::Moved => format!("{} of {} on {node}; {} available.", self.on_target, self.desired, self.available),
            WorkloadState::RollingBack => format!("Returning to the shared pool; {} on {node}, {} available.", self.on_target, self.available),
            WorkloadState::RolledBack => format!("Back on the shared pool; {} of {} available.", self.available, self.desired),
            WorkloadState::Failed => format!("{} on {node}, {} of {} available: check the workload.", self.on_target, self.available, self.desired),
        }
    }

    /// "lowest available 3 of 3" when measured; says so when it was not.
    pub fn availability(&self) -> String {
        match self.min_available_seen {
            Some(min) => format!("lowest available {min} of {} desired", self.desired),
            None => "availability not measured".to_string(),
        }
    }

    /// Zero downtime, as measured: `None` when nothing was measured.
    pub fn kept_availability(&self) -> Option<bool> {
        self.min_available_seen.map(|min| min >= self.desired)
    }
}

/// The workspace on the shared pool, taken when a migration starts: the "before" of its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SharedPoolSnapshot {
    /// The workspace's shared-pool CPU quota and what its pods request there.
    pub quota_cpu: f64,
    pub used_cpu: f64,
    /// Nodes in the shared pool, and other workspaces with pods on them.
    pub pool_nodes: u32,
    pub neighbour_workspaces: u32,
    /// Pods of the workloads to move that ran on the shared pool.
    pub pods_on_shared_pool: u32,
    /// RFC 3339.
    pub taken_at: String,
}

/// A migration's state for its screen and live stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    pub name: String,
    pub workspace: String,
    pub namespace: String,
    pub node: String,
    pub phase: MigrationState,
    pub total_phases: u32,
    pub approved_phases: u32,
    /// The retry count this progress belongs to.
    pub attempt: u32,
    pub workloads: Vec<WorkloadProgress>,
    pub baseline_latency_ms: Option<f64>,
    pub current_latency_ms: Option<f64>,
    pub pause_reason: Option<String>,
    pub error_reason: Option<String>,
    pub error_message: Option<String>,
    pub troubleshooting: Vec<String>,
    /// When a paused migration resumes by itself, unix milliseconds.
    pub resume_at_ms: Option<i64>,
    /// Before (taken at the start) and after (now) numbers, once the migration succeeded.
    pub report: Option<ImprovementReport>,
    /// The workspace has been told about the current phase, or there is nothing to tell.
    pub told: bool,
}

impl MigrationProgress {
    /// Nothing more happens without the user (finished, rolled back, paused or awaiting
    /// approval), and what there was to tell is told: the live stream ends here.
    pub fn is_settled(&self) -> bool {
        self.phase.is_settled() && self.told
    }

    /// Zero downtime over the whole migration: `Some(true)` only when every moved workload was
    /// measured and never fell below its desired count.
    pub fn kept_availability(&self) -> Option<bool> {
        let moved: Vec<_> = self.workloads.iter().filter(|w| w.state == WorkloadState::Moved).collect();
        if moved.is_empty() {
            return None;
        }
        moved.iter().map(|w| w.kept_availability()).try_fold(true, |all, kept| kept.map(|k| all && k))
    }
}

/// A page's object together with what the viewer's role allows on it (the object alone is
/// what the live stream carries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithRole<T> {
    pub role: Role,
    pub item: T,
}

/// A request to steer a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationControl {
    pub action: ControlAction,
    /// What the user saw and asks for: the phase to approve (ApproveNext) or the attempt to
    /// start (Retry). A second identical request finds it done and is refused.
    pub target: Option<u32>,
    /// When to resume (ResumeAt): `2026-11-27T22:00` in UTC, or RFC 3339.
    pub at: Option<String>,
}

/// What the move changed, in the workspace's own numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImprovementReport {
    /// Taken when the migration started; `None` for a migration started before the engine
    /// recorded it.
    pub before: Option<SharedPoolSnapshot>,
    /// After: what the dedicated node guarantees, and what is requested on it now.
    pub node_cpu: f64,
    pub node_memory_gib: f64,
    pub requested_cpu: f64,
    pub requested_memory_gib: f64,
    /// Pods of the moved workloads on the dedicated node and elsewhere (the shared pool) now.
    pub pods_on_node: u32,
    pub pods_on_shared_pool: u32,
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
    fn only_paid_plans_get_dedicated_nodes() {
        assert!(!Plan::Hobby.allows_dedicated_nodes());
        assert!(Plan::Pro.allows_dedicated_nodes());
        assert!(Plan::Team.allows_dedicated_nodes());
        for p in [Plan::Hobby, Plan::Pro, Plan::Team] {
            assert_eq!(Plan::from_db(p.as_db()), Some(p));
        }
    }

    fn workload(state: WorkloadState, min: Option<i32>) -> WorkloadProgress {
        WorkloadProgress {
            key: "ns/Deployment/web".parse().unwrap(),
            phase_index: 1,
            state,
            desired: 3,
            updated: 3,
            ready: 3,
            available: 3,
            on_target: 0,
            min_available_seen: min,
            message: None,
        }
    }

    #[test]
    fn unmeasured_availability_is_never_reported_as_zero_downtime() {
        let mut m = MigrationProgress {
            name: "m".into(),
            workspace: "w".into(),
            namespace: "ns".into(),
            node: "n1".into(),
            phase: MigrationState::Succeeded,
            total_phases: 1,
            approved_phases: 1,
            attempt: 0,
            workloads: vec![workload(WorkloadState::Moved, None)],
            baseline_latency_ms: None,
            current_latency_ms: None,
            pause_reason: None,
            error_reason: None,
            error_message: None,
            troubleshooting: vec![],
            resume_at_ms: None,
            report: None,
            told: true,
        };
        assert_eq!(m.kept_availability(), None);
        assert_eq!(m.workloads[0].availability(), "availability not measured");
        m.workloads = vec![workload(WorkloadState::Moved, Some(3)), workload(WorkloadState::Moved, Some(2))];
        assert_eq!(m.kept_availability(), Some(false));
        m.workloads.pop();
        assert_eq!(m.kept_availability(), Some(true));
        assert_eq!(m.workloads[0].availability(), "lowest available 3 of 3 desired");
    }

    #[test]
    fn a_rolled_back_workload_says_it_is_back_on_the_shared_pool() {
        let mut w = workload(WorkloadState::RolledBack, Some(3));
        w.updated = 2;
        assert_eq!(w.whereabouts("n1"), "Back on the shared pool; 3 of 3 available.");
        w.state = WorkloadState::Moved;
        w.on_target = 3;
        assert_eq!(w.whereabouts("n1"), "3 of 3 on n1; 3 available.");
    }
}
