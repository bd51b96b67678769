//! The provisioning status as a state machine, without I/O: which step runs next, the moves
//! each step may make, and what phase, progress and conditions follow from the steps. The
//! controller does the work; this file decides what the status says about it.

use time::OffsetDateTime;

use super::provider::Offering;
use crate::catalogue::Catalogue;
use crate::crd::{Alternative, DedicatedNodeStatus, NodePhase, ProvisioningError, ProvisioningStep, StepName, StepState};
use crate::engine::time::{parse_rfc3339, rfc3339};

/// Condition recording what the user was last told (its reason: `Ready`, `Failed` or
/// `NodeLost`), so a re-run of the reconcile after a restart does not tell them twice.
pub const NOTIFIED: &str = "UserNotified";
/// Condition: the order holds one of its region's slots for its size (the catalogue's count),
/// from the platform's check until the order fails or is gone.
pub const CAPACITY_HELD: &str = "CapacityHeld";
/// Condition: True while a Ready order's machine was lost and a replacement is being made;
/// False (reason `Replaced`) once the replacement is Ready and the user was told.
pub const NODE_LOST: &str = "NodeLost";
pub const REASON_INSUFFICIENT_CAPACITY: &str = "InsufficientCapacity";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_TIMEOUT: &str = "StepTimedOut";
pub const REASON_NODE_LOST: &str = "NodeLost";
pub const REASON_REPLACED: &str = "Replaced";

/// Something the user hears about, once each time it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    Ready,
    /// Ready again on a new machine after a loss.
    Replaced,
    Failed,
    /// A Ready order's machine is gone; a replacement is under way.
    NodeLost,
}

impl News {
    /// The reason the `UserNotified` condition records once told.
    fn reason(self) -> &'static str {
        match self {
            News::Ready | News::Replaced => "Ready",
            News::Failed => "Failed",
            News::NodeLost => REASON_NODE_LOST,
        }
    }
}

/// The condition type that mirrors a step being done (Karpenter style: one condition a step).
pub fn condition_type(step: StepName) -> &'static str {
    match step {
        StepName::CapacityReserved => "CapacityReserved",
        StepName::Booting => "Booted",
        StepName::Registering => "Registered",
        StepName::Ready => "Ready",
    }
}

/// A status before anything happened: every step pending.
pub fn fresh() -> DedicatedNodeStatus {
    DedicatedNodeStatus {
        steps: StepName::ALL
            .iter()
            .map(|&name| ProvisioningStep { name, state: StepState::Pending, started_at: None, finished_at: None, message: None })
            .collect(),
        ..Default::default()
    }
}

/// A step move that is not allowed (a bug in the caller, never a user error).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("step {step:?} cannot go from {from:?} to {to:?}")]
pub struct InvalidTransition {
    pub step: StepName,
    pub from: StepState,
    pub to: StepState,
}

/// The allowed moves: Pending → Running → Done | Failed. Done and Failed are final.
fn transition(step: StepName, from: StepState, to: StepState) -> Result<StepState, InvalidTransition> {
    use StepState::*;
    match (from, to) {
        (Pending, Running) | (Running, Done) | (Running, Failed) => Ok(to),
        (Running, Running) => Ok(Running),
        _ => Err(InvalidTransition { step, from, to }),
    }
}

/// Operations on a status; each keeps phase and progress consistent with the steps.
pub trait StatusExt {
    /// The first step not yet done, unless provisioning failed (then nothing runs).
    fn next_step(&self) -> Option<StepName>;
    fn step(&self, name: StepName) -> Option<&ProvisioningStep>;
    fn started_at(&self, name: StepName) -> Option<OffsetDateTime>;
    fn start(&mut self, name: StepName, now: OffsetDateTime) -> Result<(), InvalidTransition>;
    fn complete(&mut self, name: StepName, now: OffsetDateTime) -> Result<(), InvalidTransition>;
    /// Ends provisioning: the step fails, with the reason and what the user could pick instead.
    fn fail(&mut self, name: StepName, now: OffsetDateTime, error: ProvisioningError, alternatives: Vec<Alternative>) -> Result<(), InvalidTransition>;
    /// A note on the running step (e.g. the error a retry is waiting out).
    fn note(&mut self, name: StepName, message: Option<String>);
    /// Whether this order holds one of its region's slots for its size.
    fn holds_capacity(&self) -> bool;
    /// Records that the platform's check passed: the order holds a slot from now on.
    fn hold_capacity(&mut self, generation: Option<i64>, now: OffsetDateTime);
    /// What the user has yet to hear about, oldest first (a loss before the Ready after it).
    fn news(&self) -> Option<News>;
    /// Records that the user heard `news`.
    fn told(&mut self, news: News, generation: Option<i64>, now: OffsetDateTime);
    /// Nothing left to tell about the order as it stands (and something was told).
    fn is_notified(&self) -> bool;
    /// A Ready order's machine is gone: every step runs again for a replacement (the slot
    /// stays held), and the user will hear why.
    fn node_lost(&mut self, why: &str, generation: Option<i64>, now: OffsetDateTime);
    /// Phase, progress and the step conditions, recomputed from the steps.
    fn settle(&mut self, generation: Option<i64>, now: OffsetDateTime);
    fn set_condition(&mut self, type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>, now: OffsetDateTime);
}

impl StatusExt for DedicatedNodeStatus {
    fn next_step(&self) -> Option<StepName> {
        if self.steps.iter().any(|s| s.state == StepState::Failed) {
            return None;
        }
        StepName::ALL.iter().copied().find(|&n| self.step(n).is_none_or(|s| s.state != StepState::Done))
    }

    fn step(&self, name: StepName) -> Option<&ProvisioningStep> {
        self.steps.iter().find(|s| s.name == name)
    }

    fn started_at(&self, name: StepName) -> Option<OffsetDateTime> {
        self.step(name).and_then(|s| s.started_at.as_deref()).and_then(parse_rfc3339)
    }

    fn start(&mut self, name: StepName, now: OffsetDateTime) -> Result<(), InvalidTransition> {
        let step = step_mut(self, name);
        if step.state == StepState::Pending {
            step.started_at = Some(rfc3339(now));
        }
        step.state = transition(name, step.state, StepState::Running)?;
        Ok(())
    }

    fn complete(&mut self, name: StepName, now: OffsetDateTime) -> Result<(), InvalidTransition> {
        let step = step_mut(self, name);
        step.state = transition(name, step.state, StepState::Done)?;
        step.finished_at = Some(rfc3339(now));
        step.message = None;
        Ok(())
    }

    fn fail(&mut self, name: StepName, now: OffsetDateTime, error: ProvisioningError, alternatives: Vec<Alternative>) -> Result<(), InvalidTransition> {
        let step = step_mut(self, name);
        step.state = transition(name, step.state, StepState::Failed)?;
        step.finished_at = Some(rfc3339(now));
        step.message = Some(error.message.clone());
        self.error = Some(error);
        self.alternatives = alternatives;
        Ok(())
    }

    fn note(&mut self, name: StepName, message: Option<String>) {
        step_mut(self, name).message = message;
    }

    fn holds_capacity(&self) -> bool {
        self.phase != NodePhase::Failed
            && !self.steps.iter().any(|s| s.state == StepState::Failed)
            && (condition_true(self, CAPACITY_HELD) || self.step(StepName::CapacityReserved).is_some_and(|s| s.state == StepState::Done))
    }

    fn hold_capacity(&mut self, generation: Option<i64>, now: OffsetDateTime) {
        self.set_condition(CAPACITY_HELD, true, "Reserved", "", generation, now);
    }

    fn news(&self) -> Option<News> {
        let told = self.conditions.iter().find(|c| c.type_ == NOTIFIED && c.status == "True").map(|c| c.reason.as_str());
        let lost = condition_true(self, NODE_LOST);
        if lost && told != Some(REASON_NODE_LOST) {
            return Some(News::NodeLost);
        }
        let outcome = match self.phase {
            NodePhase::Ready if lost => News::Replaced,
            NodePhase::Ready => News::Ready,
            NodePhase::Failed => News::Failed,
            _ => return None,
        };
        (told != Some(outcome.reason())).then_some(outcome)
    }

    fn told(&mut self, news: News, generation: Option<i64>, now: OffsetDateTime) {
        self.set_condition(NOTIFIED, true, news.reason(), "", generation, now);
        if news == News::Replaced {
            self.set_condition(NODE_LOST, false, REASON_REPLACED, "", generation, now);
        }
    }

    fn is_notified(&self) -> bool {
        self.news().is_none() && condition_true(self, NOTIFIED)
    }

    fn node_lost(&mut self, why: &str, generation: Option<i64>, now: OffsetDateTime) {
        let steps = fresh().steps;
        self.steps = steps;
        self.node_name = None;
        self.set_condition(NODE_LOST, true, REASON_NODE_LOST, why, generation, now);
    }

    fn settle(&mut self, generation: Option<i64>, now: OffsetDateTime) {
        let done = self.steps.iter().filter(|s| s.state == StepState::Done).count();
        self.progress = u8::try_from(done * 100 / StepName::ALL.len()).unwrap_or(100);
        if self.phase != NodePhase::Deleting {
            self.phase = if self.steps.iter().any(|s| s.state == StepState::Failed) {
                NodePhase::Failed
            } else if done == StepName::ALL.len() {
                NodePhase::Ready
            } else if self.steps.iter().any(|s| s.state != StepState::Pending) {
                NodePhase::Provisioning
            } else {
                NodePhase::Pending
            };
        }
        let failure = self.error.clone().unwrap_or(ProvisioningError { reason: "Failed".into(), message: String::new() });
        for &name in StepName::ALL {
            let Some(step) = self.step(name).cloned() else { continue };
            let (ok, reason, message) = match step.state {
                StepState::Done => (true, "Done".to_string(), String::new()),
                StepState::Failed => (false, failure.reason.clone(), failure.message.clone()),
                // `Ready` is the summary condition (what `kubectl wait` and the UI read): after
                // a failure it carries the failure, not "Pending".
                _ if name == StepName::Ready && self.phase == NodePhase::Failed => (false, failure.reason.clone(), failure.message.clone()),
                StepState::Running => (false, "InProgress".to_string(), step.message.clone().unwrap_or_default()),
                StepState::Pending => (false, "Pending".to_string(), String::new()),
            };
            self.set_condition(condition_type(name), ok, &reason, &message, generation, now);
        }
        self.observed_generation = generation;
    }

    fn set_condition(&mut self, type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>, now: OffsetDateTime) {
        crate::crd::set_condition(&mut self.conditions, type_, ok, reason, message, generation, &rfc3339(now));
    }
}

fn condition_true(status: &DedicatedNodeStatus, type_: &str) -> bool {
    status.conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The step entry, created if an older status lacks it.
fn step_mut(status: &mut DedicatedNodeStatus, name: StepName) -> &mut ProvisioningStep {
    if let Some(i) = status.steps.iter().position(|s| s.name == name) {
        return &mut status.steps[i];
    }
    status.steps.push(ProvisioningStep { name, state: StepState::Pending, started_at: None, finished_at: None, message: None });
    status.steps.sort_by_key(|s| StepName::ALL.iter().position(|&n| n == s.name));
    let i = status.steps.iter().position(|s| s.name == name).unwrap_or(0);
    &mut status.steps[i]
}

/// What to offer when `region` has no room for `size` (use case 5a): the same size in other
/// regions first (cheapest region order as in the catalogue), then other sizes in the same
/// region, cheapest first. Only configurations with room now.
pub fn alternatives(catalogue: &Catalogue, offerings: &[Offering], region: &str, size: &str) -> Vec<Alternative> {
    let has_room = |r: &str, s: &str| offerings.iter().any(|o| o.region == r && o.size == s && o.available > 0);
    let cost = |s: &str| catalogue.size(s).map(|s| (s.monthly_usd() * 100.0).round() / 100.0);
    let same_size_elsewhere = catalogue
        .regions()
        .iter()
        .filter(|r| r.id != region && has_room(&r.id, size))
        .filter_map(|r| cost(size).map(|c| Alternative { region: r.id.clone(), size: size.to_string(), monthly_cost_usd: c }));
    let mut other_sizes_here: Vec<Alternative> = catalogue
        .sizes()
        .iter()
        .filter(|s| s.id != size && has_room(region, &s.id))
        .filter_map(|s| cost(&s.id).map(|c| Alternative { region: region.to_string(), size: s.id.clone(), monthly_cost_usd: c }))
        .collect();
    other_sizes_here.sort_by(|a, b| a.monthly_cost_usd.total_cmp(&b.monthly_cost_usd));
    same_size_elsewhere.chain(other_sizes_here).collect()
}

/// The user-facing message for a step that ran past its limit; `waiting` is what the
/// provider was waiting for.
pub fn timed_out(step: StepName, limit: std::time::Duration, waiting: Option<&str>) -> ProvisioningError {
    let limit = match limit.as_secs() {
        s if s >= 120 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} s"),
    };
    let waiting = waiting.map(|w| format!(" ({w})")).unwrap_or_default();
    ProvisioningError {
        reason: REASON_TIMEOUT.into(),
        message: format!("{} did not finish within {limit}{waiting}. Its machine is released; order again, or pick another region or size.", step.label()),
    }
}

/// The user-facing message for no room.
pub fn insufficient_capacity(region: &str, size: &str) -> ProvisioningError {
    ProvisioningError {
        reason: REASON_INSUFFICIENT_CAPACITY.into(),
        message: format!("No capacity left for {size} nodes in {region}. Try another region or size."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-01-01 00:00:01 UTC);

    fn walk(status: &mut DedicatedNodeStatus, name: StepName) {
        status.start(name, T0).unwrap();
        status.complete(name, T1).unwrap();
    }

    #[test]
    fn steps_run_in_order_and_progress_by_quarters() {
        let mut s = fresh();
        s.settle(Some(1), T0);
        assert_eq!((s.phase, s.progress, s.next_step()), (NodePhase::Pending, 0, Some(StepName::CapacityReserved)));
        let expected = [(StepName::CapacityReserved, 25), (StepName::Booting, 50), (StepName::Registering, 75), (StepName::Ready, 100)];
        for (name, progress) in expected {
            assert_eq!(s.next_step(), Some(name));
            walk(&mut s, name);
            s.settle(Some(1), T1);
            assert_eq!(s.progress, progress);
        }
        assert_eq!(s.phase, NodePhase::Ready);
        assert_eq!(s.next_step(), None);
        assert!(s.steps.iter().all(|st| st.started_at.as_deref() == Some("2026-01-01T00:00:00Z") && st.finished_at.is_some()));
        assert!(s.conditions.iter().filter(|c| c.type_ != NOTIFIED).all(|c| c.status == "True" && c.observed_generation == Some(1)));
    }

    #[test]
    fn restarting_a_running_step_keeps_its_start_time() {
        let mut s = fresh();
        s.start(StepName::CapacityReserved, T0).unwrap();
        s.start(StepName::CapacityReserved, T1).unwrap();
        assert_eq!(s.started_at(StepName::CapacityReserved), Some(T0));
        s.settle(None, T1);
        assert_eq!(s.phase, NodePhase::Provisioning);
    }

    #[test]
    fn done_and_failed_are_final() {
        let mut s = fresh();
        walk(&mut s, StepName::CapacityReserved);
        assert!(s.start(StepName::CapacityReserved, T1).is_err());
        assert_eq!(s.complete(StepName::Booting, T1), Err(InvalidTransition { step: StepName::Booting, from: StepState::Pending, to: StepState::Done }));
    }

    #[test]
    fn failure_stops_everything_and_explains() {
        let mut s = fresh();
        s.start(StepName::CapacityReserved, T0).unwrap();
        let alts = vec![Alternative { region: "b".into(), size: "x".into(), monthly_cost_usd: 1.0 }];
        s.fail(StepName::CapacityReserved, T1, insufficient_capacity("a", "x"), alts.clone()).unwrap();
        s.settle(Some(2), T1);
        assert_eq!((s.phase, s.next_step(), s.progress), (NodePhase::Failed, None, 0));
        assert!(!s.holds_capacity());
        assert_eq!(s.alternatives, alts);
        for type_ in ["CapacityReserved", "Ready"] {
            let c = s.conditions.iter().find(|c| c.type_ == type_).unwrap();
            assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", REASON_INSUFFICIENT_CAPACITY), "{type_}");
            assert!(c.message.contains("x nodes in a"));
        }
    }

    #[test]
    fn condition_transition_time_moves_only_with_its_status() {
        let mut s = fresh();
        s.set_condition("Ready", false, "Pending", "", Some(1), T0);
        s.set_condition("Ready", false, "InProgress", "", Some(1), T1);
        assert_eq!(s.conditions[0].last_transition_time, rfc3339(T0));
        s.set_condition("Ready", true, "Done", "", Some(1), T1);
        assert_eq!(s.conditions[0].last_transition_time, rfc3339(T1));
        assert_eq!(s.conditions.len(), 1);
    }

    #[test]
    fn capacity_is_held_from_reservation_until_failure() {
        let mut s = fresh();
        assert!(!s.holds_capacity());
        walk(&mut s, StepName::CapacityReserved);
        s.settle(None, T1);
        assert!(s.holds_capacity());
        s.phase = NodePhase::Deleting;
        s.settle(None, T1);
        assert_eq!(s.phase, NodePhase::Deleting, "deleting is kept, and the slot stays held until the node is gone");
        assert!(s.holds_capacity());
    }

    fn ready(s: &mut DedicatedNodeStatus) {
        for &name in StepName::ALL {
            if s.next_step() == Some(name) {
                walk(s, name);
            }
        }
        s.settle(Some(1), T1);
    }

    #[test]
    fn the_slot_is_held_from_the_platforms_check_until_failure() {
        let mut s = fresh();
        s.start(StepName::CapacityReserved, T0).unwrap();
        s.settle(Some(1), T0);
        assert!(!s.holds_capacity(), "a step that started is not yet a slot");
        s.hold_capacity(Some(1), T0);
        assert!(s.holds_capacity(), "held while the provider launches");
        s.fail(StepName::CapacityReserved, T1, insufficient_capacity("a", "x"), vec![]).unwrap();
        assert!(!s.holds_capacity(), "a refused launch frees it at once");
        s.settle(Some(1), T1);
        assert!(!s.holds_capacity());
    }

    #[test]
    fn each_outcome_is_news_once_and_a_lost_node_is_told_before_its_replacement() {
        let mut s = fresh();
        s.settle(Some(1), T0);
        assert_eq!(s.news(), None, "nothing to tell while provisioning");
        ready(&mut s);
        s.node_name = Some("n-1".into());
        assert_eq!((s.news(), s.is_notified()), (Some(News::Ready), false));
        s.told(News::Ready, Some(1), T1);
        assert_eq!((s.news(), s.is_notified()), (None, true));

        s.node_lost("Node n-1 was deleted", Some(1), T1);
        s.settle(Some(1), T1);
        assert_eq!((s.phase, s.progress, s.node_name.as_deref()), (NodePhase::Pending, 0, None));
        assert!(s.steps.iter().all(|st| st.state == StepState::Pending && st.started_at.is_none()), "every step runs again");
        assert_eq!(s.news(), Some(News::NodeLost));
        // The replacement may be Ready before the loss was told: the loss still comes first.
        ready(&mut s);
        assert_eq!(s.news(), Some(News::NodeLost));
        s.told(News::NodeLost, Some(1), T1);
        assert_eq!(s.news(), Some(News::Replaced));
        s.told(News::Replaced, Some(1), T1);
        assert_eq!((s.news(), s.is_notified()), (None, true));
        let lost = s.conditions.iter().find(|c| c.type_ == NODE_LOST).unwrap();
        assert_eq!((lost.status.as_str(), lost.reason.as_str()), ("False", REASON_REPLACED));

        // A second loss is news again.
        s.node_lost("gone again", Some(1), T1);
        s.settle(Some(1), T1);
        assert_eq!(s.news(), Some(News::NodeLost));
    }

    #[test]
    fn a_failure_is_news_once() {
        let mut s = fresh();
        s.start(StepName::CapacityReserved, T0).unwrap();
        s.fail(StepName::CapacityReserved, T1, insufficient_capacity("a", "x"), vec![]).unwrap();
        s.settle(Some(1), T1);
        assert_eq!(s.news(), Some(News::Failed));
        s.told(News::Failed, Some(1), T1);
        assert!(s.is_notified());
    }

    #[test]
    fn a_timeout_names_the_step_and_what_it_waited_for() {
        let e = timed_out(StepName::Booting, std::time::Duration::from_secs(600), Some("waiting for Karpenter: NodeClaim x Registered=Unknown"));
        assert_eq!(e.reason, REASON_TIMEOUT);
        assert!(
            e.message.starts_with("Booting did not finish within 10 minutes (waiting for Karpenter: NodeClaim x Registered=Unknown). Its machine"),
            "{}",
            e.message
        );
        assert!(timed_out(StepName::Ready, std::time::Duration::from_secs(3), None).message.starts_with("Ready did not finish within 3 s. Its"));
    }

    #[test]
    fn alternatives_offer_other_regions_then_other_sizes_with_room() {
        let c = Catalogue::parse(
            r#"
version: 1
sizes:
  - { id: s.small, vcpu: 2, memory_gib: 8, storage_gib: 50, network_gbps: 5, hourly_usd: 0.1, description: small }
  - { id: s.mid, vcpu: 4, memory_gib: 16, storage_gib: 100, network_gbps: 5, hourly_usd: 0.2, description: mid }
  - { id: s.big, vcpu: 8, memory_gib: 32, storage_gib: 200, network_gbps: 10, hourly_usd: 0.4, description: big }
regions:
  - { id: r-1, name: One, capacity: { s.small: 0, s.big: 1, s.mid: 1 } }
  - { id: r-2, name: Two, capacity: { s.small: 3 } }
  - { id: r-3, name: Three, capacity: { s.small: 1 } }
"#,
        )
        .unwrap();
        let offer = |region: &str, size: &str, available| Offering { region: region.into(), size: size.into(), available };
        let offerings =
            vec![offer("r-1", "s.small", 0), offer("r-1", "s.big", 1), offer("r-1", "s.mid", 1), offer("r-2", "s.small", 3), offer("r-3", "s.small", 0)];
        let alts = alternatives(&c, &offerings, "r-1", "s.small");
        let got: Vec<(&str, &str, f64)> = alts.iter().map(|a| (a.region.as_str(), a.size.as_str(), a.monthly_cost_usd)).collect();
        assert_eq!(got, vec![("r-2", "s.small", 73.0), ("r-1", "s.mid", 146.0), ("r-1", "s.big", 292.0)]);
    }
}
