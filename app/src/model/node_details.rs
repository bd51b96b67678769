//! What the dedicated node page shows beside usage and progress (use case step 17, "dedicated
//! node monitoring"): the Node's conditions, the Kubernetes Events of the Node and of its
//! order, the pods on it by workload, and what it costs this month.

use serde::{Deserialize, Serialize};

use super::WorkloadKey;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDetails {
    /// Empty until the Node exists.
    pub conditions: Vec<NodeConditionView>,
    /// Newest first.
    pub events: Vec<NodeEventView>,
    pub workloads: Vec<WorkloadOnNode>,
    /// Pods on the node that belong to none of the workspace's workloads (DaemonSets, bare pods).
    pub other_pods: u32,
    /// None for an order that failed (nothing runs, nothing is billed).
    pub cost: Option<NodeCost>,
    /// Why part of the page could not be read (the cluster did not answer).
    pub unavailable: Option<String>,
}

/// One of the Node's conditions, as the kubelet (or KWOK) reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConditionView {
    /// `Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`, `NetworkUnavailable`, …
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// Whether this status is the good one (`Ready` True, a pressure False).
    pub healthy: bool,
    pub reason: String,
    pub message: String,
    pub since_ms: Option<i64>,
}

impl NodeConditionView {
    /// `Ready` is good when True; every other standard condition (the pressures,
    /// `NetworkUnavailable`) is good when False.
    pub fn is_healthy(type_: &str, status: &str) -> bool {
        if type_ == "Ready" {
            status == "True"
        } else {
            status == "False"
        }
    }
}

/// A Kubernetes Event about the Node or its DedicatedNode order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEventView {
    /// `Node` or `DedicatedNode`.
    pub object_kind: String,
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// Who reported it (`hexabase.ai/provisioning`, `node-controller`, …).
    pub source: String,
    /// When it last happened.
    pub at_ms: Option<i64>,
    /// How many times it happened (a series).
    pub count: u32,
}

/// The pods of one workload on the node and what they request there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadOnNode {
    pub key: WorkloadKey,
    pub pods: u32,
    /// Of those, running and not being deleted.
    pub running: u32,
    pub cpu: f64,
    pub memory_gib: f64,
}

/// What the node costs this calendar month (UTC), at the catalogue's hourly price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCost {
    pub hourly_usd: f64,
    /// Billed from when it was ordered, or the month's start if earlier.
    pub since_ms: i64,
    pub so_far_usd: f64,
    /// So far plus the rest of the month if it keeps running.
    pub projected_usd: f64,
}

impl NodeCost {
    /// The month's cost of a node billed from `ordered` (unix seconds) at `hourly_usd`, at
    /// `now`, for the month `[month_start, month_end)`.
    pub fn of(hourly_usd: f64, ordered: i64, now: i64, (month_start, month_end): (i64, i64)) -> Self {
        let since = ordered.clamp(month_start, now.max(month_start));
        let hours = |from: i64, to: i64| (to - from).max(0) as f64 / 3600.0;
        let so_far = hourly_usd * hours(since, now);
        Self { hourly_usd, since_ms: since * 1000, so_far_usd: so_far, projected_usd: so_far + hourly_usd * hours(now.max(since), month_end) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_runs_from_the_order_or_the_months_start_to_now_and_projects_to_the_months_end() {
        let month = (0, 30 * 24 * 3600);
        // Ordered 10 h into the month, now at 20 h: 10 h so far, 700 h to come.
        let c = NodeCost::of(0.1, 10 * 3600, 20 * 3600, month);
        assert!((c.so_far_usd - 1.0).abs() < 1e-9, "{c:?}");
        assert!((c.projected_usd - 71.0).abs() < 1e-9, "{c:?}");
        assert_eq!(c.since_ms, 10 * 3600 * 1000);
        // Ordered last month: billed this month from its first second.
        let c = NodeCost::of(0.1, -5 * 3600, 2 * 3600, month);
        assert!((c.so_far_usd - 0.2).abs() < 1e-9 && c.since_ms == 0, "{c:?}");
        // A clock behind the order's timestamp never bills a negative amount.
        let c = NodeCost::of(0.1, 20 * 3600, 19 * 3600, month);
        assert!(c.so_far_usd == 0.0 && (c.projected_usd - 0.1 * 701.0).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn ready_is_healthy_when_true_and_pressures_when_false() {
        assert!(NodeConditionView::is_healthy("Ready", "True"));
        assert!(!NodeConditionView::is_healthy("Ready", "Unknown"));
        assert!(NodeConditionView::is_healthy("MemoryPressure", "False"));
        assert!(!NodeConditionView::is_healthy("DiskPressure", "True"));
    }
}
