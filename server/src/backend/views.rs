//! Cluster objects mapped into the wire types the screens show. Pure.

use app::model::{AlternativeView, MigrationProgress, NodePhase, NodeProgress, StepState, StepView, WorkloadProgress};

use crate::crd::{DedicatedNode, StepName, WorkloadMigration};
use crate::engine::time::unix_ms;
use crate::migration::steps::{self, MigrationStatusExt};
use crate::provisioning::steps::StatusExt;

/// A node being deleted shows as Deleting whatever its last phase.
pub fn effective_phase(dn: &DedicatedNode) -> NodePhase {
    if dn.metadata.deletion_timestamp.is_some() {
        return NodePhase::Deleting;
    }
    dn.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

pub fn node_progress(dn: &DedicatedNode) -> NodeProgress {
    let status = dn.status.clone().unwrap_or_default();
    // Before the controller's first status write, show every step waiting.
    let steps = if status.steps.is_empty() {
        StepName::ALL.iter().map(|&name| StepView { name, state: StepState::Pending, started_at_ms: None, finished_at_ms: None, message: None }).collect()
    } else {
        status
            .steps
            .iter()
            .map(|s| StepView {
                name: s.name,
                state: s.state,
                started_at_ms: s.started_at.as_deref().and_then(unix_ms),
                finished_at_ms: s.finished_at.as_deref().and_then(unix_ms),
                message: s.message.clone(),
            })
            .collect()
    };
    let phase = effective_phase(dn);
    NodeProgress {
        name: dn.metadata.name.clone().unwrap_or_default(),
        workspace: dn.spec.workspace.clone(),
        size: dn.spec.size.clone(),
        region: dn.spec.region.clone(),
        phase,
        progress: if phase == NodePhase::Ready { 100 } else { status.progress.min(99) },
        steps,
        error_reason: status.error.as_ref().map(|e| e.reason.clone()),
        error_message: status.error.as_ref().map(|e| e.message.clone()),
        alternatives: status
            .alternatives
            .iter()
            .map(|a| AlternativeView { region: a.region.clone(), size: a.size.clone(), monthly_usd: a.monthly_cost_usd })
            .collect(),
        node_name: status.node_name.clone(),
        told: status.is_notified(),
    }
}

/// A migration's progress (without the report, which needs the cluster's current numbers).
pub fn migration_progress(m: &WorkloadMigration) -> MigrationProgress {
    let status = match &m.status {
        Some(s) if !s.workloads.is_empty() => s.clone(),
        // Before the controller's first status write, show every workload waiting.
        other => {
            let fresh = steps::fresh(&m.spec);
            crate::crd::WorkloadMigrationStatus {
                error: other.as_ref().and_then(|s| s.error.clone()),
                phase: other.as_ref().map(|s| s.phase).unwrap_or_default(),
                ..fresh
            }
        }
    };
    let workloads = status
        .workloads
        .iter()
        .map(|w| WorkloadProgress {
            key: w.workload.clone(),
            phase_index: w.phase_index,
            state: w.state,
            desired: w.desired_replicas,
            updated: w.updated_replicas,
            ready: w.ready_replicas,
            available: w.available_replicas,
            on_target: w.on_target,
            min_available_seen: w.min_available_seen,
            message: w.message.clone(),
        })
        .collect();
    MigrationProgress {
        name: m.metadata.name.clone().unwrap_or_default(),
        workspace: m.spec.workspace.clone(),
        namespace: m.metadata.namespace.clone().unwrap_or_default(),
        node: m.spec.target_node.clone(),
        phase: status.phase,
        total_phases: m.spec.phases.len() as u32,
        approved_phases: m.spec.approved_phases,
        attempt: m.spec.retry,
        workloads,
        baseline_latency_ms: status.baseline_latency_ms,
        current_latency_ms: status.current_latency_ms,
        pause_reason: status.pause_reason.clone().or_else(|| m.spec.paused.then(|| steps::PAUSED_BY_USER.to_string())),
        error_reason: status.error.as_ref().map(|e| e.reason.clone()),
        error_message: status.error.as_ref().map(|e| e.message.clone()),
        troubleshooting: status.error.as_ref().map(|e| e.troubleshooting.clone()).unwrap_or_default(),
        resume_at_ms: m.spec.resume_at.as_deref().and_then(unix_ms),
        report: None,
        told: !steps::is_newsworthy(status.phase) || status.is_notified(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DedicatedNodeSpec, DedicatedNodeStatus};

    fn order(status: DedicatedNodeStatus) -> DedicatedNode {
        let mut dn =
            DedicatedNode::new("n1", DedicatedNodeSpec { workspace: "w".into(), size: "d2.large".into(), region: "r".into(), requested_by: "a@b".into() });
        dn.status = Some(status);
        dn
    }

    #[test]
    fn the_bar_is_full_exactly_when_the_node_is_ready() {
        let ready = node_progress(&order(DedicatedNodeStatus { phase: NodePhase::Ready, progress: 75, ..Default::default() }));
        assert_eq!((ready.phase, ready.progress), (NodePhase::Ready, 100));
        let going = node_progress(&order(DedicatedNodeStatus { phase: NodePhase::Provisioning, progress: 100, ..Default::default() }));
        assert_eq!(going.progress, 99, "never full before Ready");
        assert_eq!(going.steps.len(), 4, "every step shown before the first status write");
    }
}
