//! Cluster objects mapped into the wire types the screens show.

use app::model::{AlternativeView, NodeProgress, StepView};

use crate::crd::{DedicatedNode, Phase, StepName, StepState};

pub fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "Pending",
        Phase::Provisioning => "Provisioning",
        Phase::Ready => "Ready",
        Phase::Failed => "Failed",
        Phase::Deleting => "Deleting",
    }
}

fn step_word(s: StepName) -> &'static str {
    match s {
        StepName::CapacityReserved => "CapacityReserved",
        StepName::Booting => "Booting",
        StepName::Registering => "Registering",
        StepName::Ready => "Ready",
    }
}

fn state_word(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "Pending",
        StepState::Running => "Running",
        StepState::Done => "Done",
        StepState::Failed => "Failed",
    }
}

/// A node being deleted shows as Deleting whatever its last phase.
pub fn effective_phase(dn: &DedicatedNode) -> Phase {
    if dn.metadata.deletion_timestamp.is_some() {
        return Phase::Deleting;
    }
    dn.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

pub fn progress(dn: &DedicatedNode) -> NodeProgress {
    let status = dn.status.clone().unwrap_or_default();
    // Before the controller's first status write, show every step waiting.
    let steps = if status.steps.is_empty() {
        StepName::ALL
            .iter()
            .map(|s| StepView { name: step_word(*s).into(), state: "Pending".into(), started_at: None, finished_at: None, message: None })
            .collect()
    } else {
        status
            .steps
            .iter()
            .map(|s| StepView {
                name: step_word(s.name).into(),
                state: state_word(s.state).into(),
                started_at: s.started_at.clone(),
                finished_at: s.finished_at.clone(),
                message: s.message.clone(),
            })
            .collect()
    };
    NodeProgress {
        name: dn.metadata.name.clone().unwrap_or_default(),
        workspace: dn.spec.workspace.clone(),
        size: dn.spec.size.clone(),
        region: dn.spec.region.clone(),
        phase: phase_word(effective_phase(dn)).into(),
        progress: status.progress,
        steps,
        error_reason: status.error.as_ref().map(|e| e.reason.clone()),
        error_message: status.error.as_ref().map(|e| e.message.clone()),
        alternatives: status
            .alternatives
            .iter()
            .map(|a| AlternativeView { region: a.region.clone(), size: a.size.clone(), monthly_usd: a.monthly_cost_usd })
            .collect(),
        node_name: status.node_name.clone(),
    }
}
