//! The Kubernetes Events a provisioning status change owes (pure): one on the DedicatedNode
//! for every step done, every failure, a provider retry, a lost machine and the release, as
//! Karpenter does for its NodeClaims. Published by the controller after its status write
//! (`engine::kube_events`), beside the Node's own Events on the node page.

use kube::runtime::events::Event;

use super::steps::NODE_LOST;
use crate::crd::{DedicatedNode, DedicatedNodeStatus, NodePhase, StepName, StepState};
use crate::engine::kube_events::{normal, warning};

/// The `reportingController` of every Event this controller publishes.
pub const REPORTER: &str = "hexabase.ai/provisioning";

/// The order is being deleted: its machine is released.
pub fn releasing(dn: &DedicatedNode) -> Event {
    let node = dn.status.as_ref().and_then(|s| s.node_name.as_deref());
    let note = match node {
        Some(node) => format!("Releasing node {node} and its capacity."),
        None => "Releasing the order's capacity.".to_string(),
    };
    normal("Releasing", "Release", note)
}

/// The Events a status change owes, in the order things happened (pure).
pub fn changes(before: Option<&DedicatedNodeStatus>, after: &DedicatedNodeStatus) -> Vec<Event> {
    let mut out = vec![];
    let state_before = |name: StepName| before.and_then(|b| b.steps.iter().find(|s| s.name == name)).map(|s| (s.state, s.message.as_deref()));
    let lost_before = before.is_some_and(|b| lost(b).is_some());
    if let Some(why) = lost(after).filter(|_| !lost_before) {
        out.push(warning("NodeLost", "Replace", format!("The node was lost ({why}); provisioning a replacement.")));
    }
    for step in &after.steps {
        let was = state_before(step.name);
        // A step that ran before and runs again (a replacement) is news once more.
        let changed = was.map(|(s, _)| s) != Some(step.state);
        match step.state {
            StepState::Done if changed => out.push(done(step.name, after)),
            StepState::Failed if changed => {
                let (reason, note) = match &after.error {
                    Some(e) => (e.reason.as_str(), e.message.clone()),
                    None => ("Failed", format!("{} failed.", step.name.label())),
                };
                out.push(warning(reason, action(step.name), note));
            }
            // The provider refused a call: the step shows it and retries. Said once for each
            // new message, not on every retry.
            StepState::Running => {
                if let Some(message) = step.message.as_deref().filter(|m| m.starts_with("Retrying")) {
                    if was.and_then(|(_, m)| m) != Some(message) {
                        out.push(warning("ProviderError", action(step.name), message.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Why the node was lost, while it is.
fn lost(status: &DedicatedNodeStatus) -> Option<&str> {
    status.conditions.iter().find(|c| c.type_ == NODE_LOST && c.status == "True").map(|c| c.message.as_str())
}

/// The verb of each step (an Event's `action`).
fn action(step: StepName) -> &'static str {
    match step {
        StepName::CapacityReserved => "Reserve",
        StepName::Booting => "Launch",
        StepName::Registering => "Register",
        StepName::Ready => "Initialize",
    }
}

fn done(step: StepName, status: &DedicatedNodeStatus) -> Event {
    let node = status.node_name.as_deref().unwrap_or("the node");
    match step {
        StepName::CapacityReserved => normal("CapacityReserved", action(step), "Reserved a slot of the region's capacity for this size.".into()),
        StepName::Booting => normal("Launched", action(step), "The machine was launched and booted.".into()),
        StepName::Registering => normal("Registered", action(step), format!("Node {node} joined the cluster.")),
        StepName::Ready if status.phase == NodePhase::Ready => normal("Ready", action(step), format!("Node {node} is Ready for workloads.")),
        StepName::Ready => normal("Ready", action(step), format!("Node {node} reported Ready.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, ProvisioningError};
    use crate::provisioning::steps::{self, StatusExt};
    use kube::runtime::events::EventType;
    use time::OffsetDateTime;

    fn reasons(events: &[Event]) -> Vec<(&str, bool)> {
        events.iter().map(|e| (e.reason.as_str(), e.type_ == EventType::Warning)).collect()
    }

    #[test]
    fn each_step_done_is_told_once_in_order() {
        let now = OffsetDateTime::now_utc();
        let fresh = steps::fresh();
        let mut s = fresh.clone();
        s.start(StepName::CapacityReserved, now).unwrap();
        s.complete(StepName::CapacityReserved, now).unwrap();
        s.start(StepName::Booting, now).unwrap();
        assert_eq!(reasons(&changes(Some(&fresh), &s)), vec![("CapacityReserved", false)]);
        assert!(changes(Some(&s), &s).is_empty(), "nothing changed, nothing said");

        let mut t = s.clone();
        t.complete(StepName::Booting, now).unwrap();
        t.start(StepName::Registering, now).unwrap();
        t.complete(StepName::Registering, now).unwrap();
        t.node_name = Some("acme-1".into());
        t.start(StepName::Ready, now).unwrap();
        t.complete(StepName::Ready, now).unwrap();
        t.settle(None, now);
        let events = changes(Some(&s), &t);
        assert_eq!(reasons(&events), vec![("Launched", false), ("Registered", false), ("Ready", false)]);
        assert_eq!(events[2].note.as_deref(), Some("Node acme-1 is Ready for workloads."));
        // A status never stored before (the first write) says everything done so far.
        assert_eq!(changes(None, &s).len(), 1);
    }

    #[test]
    fn a_failure_is_a_warning_with_the_users_message() {
        let now = OffsetDateTime::now_utc();
        let fresh = steps::fresh();
        let mut s = fresh.clone();
        s.start(StepName::CapacityReserved, now).unwrap();
        s.fail(StepName::CapacityReserved, now, steps::insufficient_capacity("ap-northeast-3", "d2.large"), vec![]).unwrap();
        let events = changes(Some(&fresh), &s);
        assert_eq!(reasons(&events), vec![("InsufficientCapacity", true)]);
        assert!(events[0].note.as_deref().unwrap().contains("ap-northeast-3"));
        assert_eq!(events[0].action, "Reserve");

        let mut r = fresh.clone();
        r.start(StepName::CapacityReserved, now).unwrap();
        r.complete(StepName::CapacityReserved, now).unwrap();
        r.start(StepName::Booting, now).unwrap();
        let mut retrying = r.clone();
        retrying.note(StepName::Booting, Some("Retrying: connection refused".into()));
        assert_eq!(reasons(&changes(Some(&r), &retrying)), vec![("ProviderError", true)]);
        assert!(changes(Some(&retrying), &retrying).is_empty(), "the same retry message is not repeated");
        let e = ProvisioningError { reason: "StepTimedOut".into(), message: "Booting took over 5m.".into() };
        let mut timed_out = r.clone();
        timed_out.fail(StepName::Booting, now, e, vec![]).unwrap();
        assert_eq!(reasons(&changes(Some(&r), &timed_out)), vec![("StepTimedOut", true)]);
    }

    #[test]
    fn a_lost_node_is_a_warning_and_its_replacement_steps_are_told_again() {
        let now = OffsetDateTime::now_utc();
        let mut ready = steps::fresh();
        for step in StepName::ALL.iter().copied() {
            ready.start(step, now).unwrap();
            ready.complete(step, now).unwrap();
        }
        ready.settle(None, now);
        let mut lost = ready.clone();
        lost.node_lost("its machine is gone", None, now);
        lost.settle(None, now);
        let events = changes(Some(&ready), &lost);
        assert_eq!(reasons(&events)[0], ("NodeLost", true));
        assert!(events[0].note.as_deref().unwrap().contains("its machine is gone"));
        assert!(!lost.conditions.is_empty() && lost.conditions.iter().any(|c: &Condition| c.type_ == NODE_LOST));
        assert!(changes(Some(&lost), &lost).is_empty());
    }
}
