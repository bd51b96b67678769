//! The Kubernetes Events a migration's status change owes (pure): one on the WorkloadMigration
//! for each workload that starts moving, has moved, rolls back or fails, and for each phase the
//! migration enters (paused, waiting for approval, succeeded, rolled back, failed). Published
//! by the controller after its status write (`engine::kube_events`).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::Event;

use crate::crd::{MigrationState, WorkloadMigrationStatus, WorkloadState, WorkloadStatus};
use crate::engine::kube_events::{normal, warning};

/// The `reportingController` of every Event this controller publishes.
pub const REPORTER: &str = "hexabase.ai/migration";

/// What changed between the stored status `before` and the one just written, to `target` (the
/// node the workloads move to), in the order it happened: the workloads first, then the phase.
pub fn changes(before: Option<&WorkloadMigrationStatus>, after: &WorkloadMigrationStatus, target: &str) -> Vec<Event> {
    let was =
        |w: &WorkloadStatus| before.and_then(|b| b.workloads.iter().find(|o| o.workload == w.workload && o.phase_index == w.phase_index)).map(|o| o.state);
    let mut out: Vec<Event> = after.workloads.iter().filter(|w| was(w).unwrap_or_default() != w.state).filter_map(|w| workload_event(w, target)).collect();
    if before.map(|b| b.phase).unwrap_or_default() != after.phase {
        out.extend(phase_event(after));
    }
    out
}

/// An Event about one workload's move: `related` names the workload, so two workloads' moves
/// are two Events (the recorder folds Events alike in reason, action and objects into one).
fn workload_event(w: &WorkloadStatus, target: &str) -> Option<Event> {
    let name = format!("{} {} in {}", w.workload.kind.as_str(), w.workload.name, w.workload.namespace);
    let why = || w.message.clone().unwrap_or_default();
    let related = ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some(w.workload.kind.as_str().into()),
        namespace: Some(w.workload.namespace.clone()),
        name: Some(w.workload.name.clone()),
        ..Default::default()
    };
    let event = match w.state {
        WorkloadState::Pending => return None,
        WorkloadState::Moving => normal("Moving", "Move", format!("{name}: moving to node {target} with a rolling update.")),
        WorkloadState::Moved => {
            let lowest = w.min_available_seen.map(|m| format!(", lowest available {m} of {}", w.desired_replicas)).unwrap_or_default();
            normal("Moved", "Move", format!("{name}: {} of {} pods on {target}{lowest}.", w.on_target, w.desired_replicas))
        }
        WorkloadState::RollingBack => warning("RollingBack", "RollBack", format!("{name}: restoring its scheduling. {}", why())),
        WorkloadState::RolledBack => warning("RolledBack", "RollBack", format!("{name}: back where it ran before.")),
        WorkloadState::Failed => warning("WorkloadFailed", "Move", format!("{name}: {}", why())),
    };
    Some(Event { secondary: Some(related), ..event })
}

fn phase_event(s: &WorkloadMigrationStatus) -> Option<Event> {
    let error = || s.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
    Some(match s.phase {
        MigrationState::Pending | MigrationState::Running => return None,
        MigrationState::Paused => warning("Paused", "Pause", s.pause_reason.clone().unwrap_or_else(|| "Paused.".into())),
        MigrationState::WaitingForApproval => {
            normal("WaitingForApproval", "Approve", format!("Phase {} is done; the next one waits for approval.", s.current_phase.saturating_sub(1).max(1)))
        }
        MigrationState::Succeeded => normal("Succeeded", "Complete", format!("Every workload moved ({}).", s.workloads.len())),
        MigrationState::RolledBack => warning("RolledBack", "Complete", format!("Rolled back: {}", error())),
        MigrationState::Failed => warning("Failed", "Complete", error()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MigrationError, WorkloadKey, WorkloadKind};
    use crate::migration::steps::{self, MigrationStatusExt};
    use time::OffsetDateTime;

    fn spec(n: usize) -> crate::crd::WorkloadMigrationSpec {
        serde_json::from_value(serde_json::json!({
            "workspace": "acme", "targetNode": "n1",
            "phases": [{ "workloads": (0..n).map(|i| WorkloadKey::new("acme", WorkloadKind::Deployment, format!("w{i}"))).collect::<Vec<_>>() }]
        }))
        .unwrap()
    }

    fn reasons(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    #[test]
    fn each_move_and_the_outcome_are_told_once() {
        let now = OffsetDateTime::now_utc();
        let fresh = steps::fresh(&spec(2));
        let mut s = fresh.clone();
        s.start(0, now).unwrap();
        s.settle(1, false, None, now);
        assert_eq!(reasons(&changes(Some(&fresh), &s, "n1")), ["Moving"]);
        assert!(changes(Some(&s), &s, "n1").is_empty(), "nothing changed, nothing said");

        let mut t = s.clone();
        t.workloads[0].on_target = 3;
        t.workloads[0].desired_replicas = 3;
        t.workloads[0].min_available_seen = Some(3);
        t.moved(0, now).unwrap();
        t.start(1, now).unwrap();
        t.moved(1, now).unwrap();
        t.settle(1, false, None, now);
        let events = changes(Some(&s), &t, "n1");
        // w1 started and finished between two writes (the controller writes at each start,
        // so this is rare): it is said where it is now.
        assert_eq!(reasons(&events), ["Moved", "Moved", "Succeeded"]);
        assert_eq!(events[0].note.as_deref(), Some("Deployment w0 in acme: 3 of 3 pods on n1, lowest available 3 of 3."));
        let related: Vec<_> = events.iter().map(|e| e.secondary.as_ref().and_then(|r| r.name.as_deref())).collect();
        assert_eq!(related, [Some("w0"), Some("w1"), None], "each workload's Events name it; the outcome is the migration's");
    }

    #[test]
    fn a_rollback_is_a_warning_with_the_reason() {
        let now = OffsetDateTime::now_utc();
        let fresh = steps::fresh(&spec(1));
        let mut s = fresh.clone();
        s.start(0, now).unwrap();
        s.settle(1, false, None, now);
        let mut r = s.clone();
        let error = MigrationError { reason: "Unschedulable".into(), message: "0/4 nodes are available.".into(), troubleshooting: vec![] };
        r.roll_back(0, now, error).unwrap();
        r.settle(1, false, None, now);
        let events = changes(Some(&s), &r, "n1");
        assert_eq!(reasons(&events)[0], "RollingBack");
        assert!(events.iter().all(|e| e.type_ == kube::runtime::events::EventType::Warning));
        assert!(events[0].note.as_deref().unwrap().contains("0/4 nodes are available."));
    }
}
