//! The migration status as a state machine, without I/O: which workload acts next, the moves
//! each workload may make, what the migration's phase is, and what the user is told when a
//! move fails. The controller does the work; this file decides what the status says.

use time::OffsetDateTime;

use super::rollout::Counts;
use crate::crd::{MigrationError, MigrationState, WorkloadMigrationSpec, WorkloadMigrationStatus, WorkloadState, WorkloadStatus};
use crate::engine::time::rfc3339;

/// Condition recording that the user was told about the current phase (reason: the phase),
/// so a re-run after a restart does not tell them twice.
pub const NOTIFIED: &str = "UserNotified";
/// Summary condition: True once every workload moved; otherwise False with the phase as reason.
pub const COMPLETE: &str = "Complete";
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
pub const REASON_NOT_READY: &str = "PodsNotReady";
pub const REASON_DEADLINE: &str = "ProgressDeadlineExceeded";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_WORKLOAD_NOT_FOUND: &str = "WorkloadNotFound";
pub const REASON_ROLLBACK_FAILED: &str = "RollbackFailed";
pub const PAUSED_BY_USER: &str = "Paused by the user";

/// A status before anything happened: every workload of every phase pending, in order.
pub fn fresh(spec: &WorkloadMigrationSpec) -> WorkloadMigrationStatus {
    let workloads = spec
        .phases
        .iter()
        .enumerate()
        .flat_map(|(i, phase)| {
            phase.workloads.iter().map(move |w| WorkloadStatus {
                workload: w.clone(),
                phase_index: i as u32 + 1,
                state: WorkloadState::Pending,
                desired_replicas: 0,
                updated_replicas: 0,
                ready_replicas: 0,
                available_replicas: 0,
                on_target: 0,
                min_available_seen: None,
                started_at: None,
                finished_at: None,
                message: None,
            })
        })
        .collect();
    WorkloadMigrationStatus { workloads, attempt: spec.retry, ..Default::default() }
}

/// What the controller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start moving workload `i` (save, patch).
    Start(usize),
    /// Follow workload `i`'s move.
    Follow(usize),
    /// Restore workload `i` and follow its rollback.
    RollBack(usize),
    /// The next workload's phase is not approved yet.
    AwaitApproval,
    /// Paused (by the user or the latency guard) before the next workload.
    Paused,
    /// Nothing left to do in this attempt.
    Finished,
}

/// A workload move that is not allowed (a bug in the caller, never a user error).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("workload {workload} cannot go from {from:?} to {to:?}")]
pub struct InvalidTransition {
    pub workload: String,
    pub from: WorkloadState,
    pub to: WorkloadState,
}

/// Pending → Moving → Moved | RollingBack → RolledBack | Failed; Pending or Moving → Failed
/// (the workload is gone). Moving → Moving is a no-op.
fn transition(w: &WorkloadStatus, to: WorkloadState) -> Result<WorkloadState, InvalidTransition> {
    use WorkloadState::*;
    match (w.state, to) {
        (Pending, Moving)
        | (Moving, Moving)
        | (Moving, Moved)
        | (Moving, RollingBack)
        | (RollingBack, RolledBack)
        | (RollingBack, Failed)
        | (Pending, Failed)
        | (Moving, Failed) => Ok(to),
        (from, to) => Err(InvalidTransition { workload: w.workload.to_string(), from, to }),
    }
}

/// Operations on a migration status; `settle` derives the phase and conditions afterwards.
pub trait MigrationStatusExt {
    fn next(&self, approved_phases: u32, paused: bool) -> Next;
    fn start(&mut self, i: usize, now: OffsetDateTime) -> Result<(), InvalidTransition>;
    /// Records a reading of the rollout and of how many pods run on the target node;
    /// `lowest` is the lowest available count seen since the last reading (from the watch),
    /// folded into `minAvailableSeen` while moving.
    fn observe(&mut self, i: usize, counts: &Counts, on_target: i32, lowest: Option<i32>, message: Option<String>);
    fn moved(&mut self, i: usize, now: OffsetDateTime) -> Result<(), InvalidTransition>;
    /// A move failed: the workload is restored next, and the migration carries the error.
    fn roll_back(&mut self, i: usize, now: OffsetDateTime, error: MigrationError) -> Result<(), InvalidTransition>;
    fn rolled_back(&mut self, i: usize, now: OffsetDateTime) -> Result<(), InvalidTransition>;
    /// The workload cannot be moved or restored any more (gone, or its rollback stuck).
    fn fail(&mut self, i: usize, now: OffsetDateTime, error: MigrationError) -> Result<(), InvalidTransition>;
    /// The spec cannot be run at all; nothing was touched.
    fn reject(&mut self, error: MigrationError);
    fn is_notified(&self) -> bool;
    fn mark_notified(&mut self, generation: Option<i64>, now: OffsetDateTime);
    /// Phase, current phase, pause reason, finish time and conditions, from the workloads.
    fn settle(&mut self, approved_phases: u32, paused: bool, generation: Option<i64>, now: OffsetDateTime);
    fn set_condition(&mut self, type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>, now: OffsetDateTime);
}

fn position(s: &WorkloadMigrationStatus, state: WorkloadState) -> Option<usize> {
    s.workloads.iter().position(|w| w.state == state)
}

fn set_state(s: &mut WorkloadMigrationStatus, i: usize, to: WorkloadState) -> Result<&mut WorkloadStatus, InvalidTransition> {
    let w = &mut s.workloads[i];
    w.state = transition(w, to)?;
    Ok(w)
}

impl MigrationStatusExt for WorkloadMigrationStatus {
    fn next(&self, approved_phases: u32, paused: bool) -> Next {
        use WorkloadState::*;
        if self.phase == MigrationState::Failed
            || position(self, Failed).is_some()
            || (self.error.is_some() && position(self, RollingBack).is_none() && position(self, RolledBack).is_none())
        {
            return Next::Finished;
        }
        if let Some(i) = position(self, RollingBack) {
            return Next::RollBack(i);
        }
        if let Some(i) = position(self, Moving) {
            return Next::Follow(i);
        }
        if position(self, RolledBack).is_some() {
            return Next::Finished;
        }
        match position(self, Pending) {
            None => Next::Finished,
            Some(i) if self.workloads[i].phase_index > approved_phases => Next::AwaitApproval,
            Some(_) if paused => Next::Paused,
            Some(i) => Next::Start(i),
        }
    }

    fn start(&mut self, i: usize, now: OffsetDateTime) -> Result<(), InvalidTransition> {
        let w = set_state(self, i, WorkloadState::Moving)?;
        w.started_at.get_or_insert_with(|| rfc3339(now));
        w.message = None;
        self.started_at.get_or_insert_with(|| rfc3339(now));
        Ok(())
    }

    fn observe(&mut self, i: usize, counts: &Counts, on_target: i32, lowest: Option<i32>, message: Option<String>) {
        let w = &mut self.workloads[i];
        w.on_target = on_target;
        w.desired_replicas = counts.desired;
        w.updated_replicas = counts.updated;
        w.ready_replicas = counts.ready;
        w.available_replicas = counts.available;
        if w.state == WorkloadState::Moving {
            let seen = lowest.map_or(counts.available, |l| l.min(counts.available));
            w.min_available_seen = Some(w.min_available_seen.map_or(seen, |m| m.min(seen)));
        }
        w.message = message;
    }

    fn moved(&mut self, i: usize, now: OffsetDateTime) -> Result<(), InvalidTransition> {
        let w = set_state(self, i, WorkloadState::Moved)?;
        w.finished_at = Some(rfc3339(now));
        w.message = None;
        Ok(())
    }

    fn roll_back(&mut self, i: usize, now: OffsetDateTime, error: MigrationError) -> Result<(), InvalidTransition> {
        let w = set_state(self, i, WorkloadState::RollingBack)?;
        w.finished_at = Some(rfc3339(now));
        w.message = Some(error.message.clone());
        self.error = Some(error);
        Ok(())
    }

    fn rolled_back(&mut self, i: usize, now: OffsetDateTime) -> Result<(), InvalidTransition> {
        let w = set_state(self, i, WorkloadState::RolledBack)?;
        w.finished_at = Some(rfc3339(now));
        Ok(())
    }

    fn fail(&mut self, i: usize, now: OffsetDateTime, error: MigrationError) -> Result<(), InvalidTransition> {
        let w = set_state(self, i, WorkloadState::Failed)?;
        w.finished_at = Some(rfc3339(now));
        w.message = Some(error.message.clone());
        // A failed rollback keeps the move's cause first: it is what the user has to fix.
        match &mut self.error {
            Some(cause) => cause.troubleshooting.insert(0, error.message),
            None => self.error = Some(error),
        }
        Ok(())
    }

    fn reject(&mut self, error: MigrationError) {
        self.error = Some(error);
    }

    fn is_notified(&self) -> bool {
        self.conditions.iter().any(|c| c.type_ == NOTIFIED && c.status == "True" && c.reason == self.phase.as_str())
    }

    fn mark_notified(&mut self, generation: Option<i64>, now: OffsetDateTime) {
        self.set_condition(NOTIFIED, true, self.phase.as_str(), "", generation, now);
    }

    fn settle(&mut self, approved_phases: u32, paused: bool, generation: Option<i64>, now: OffsetDateTime) {
        use WorkloadState::*;
        let any = |st| position(self, st).is_some();
        let was_paused = self.pause_reason.is_some();
        self.phase = if any(Failed) || (self.error.is_some() && !any(RollingBack) && !any(RolledBack)) {
            MigrationState::Failed
        } else if any(RollingBack) || any(Moving) {
            MigrationState::Running
        } else if any(RolledBack) {
            MigrationState::RolledBack
        } else if !self.workloads.is_empty() && self.workloads.iter().all(|w| w.state == Moved) {
            MigrationState::Succeeded
        } else {
            match self.next(approved_phases, paused) {
                Next::AwaitApproval => MigrationState::WaitingForApproval,
                Next::Paused => MigrationState::Paused,
                _ if self.started_at.is_some() => MigrationState::Running,
                _ => MigrationState::Pending,
            }
        };
        let focus = [RollingBack, Moving, Pending].into_iter().find_map(|st| position(self, st)).or(self.workloads.len().checked_sub(1));
        self.current_phase =
            if self.started_at.is_none() && self.phase == MigrationState::Pending { 0 } else { focus.map_or(0, |i| self.workloads[i].phase_index) };
        // The pause reason lives as long as the pause; resuming also gives the latency guard a
        // fresh count of breaches.
        if paused && !self.phase.is_final() {
            self.pause_reason.get_or_insert_with(|| PAUSED_BY_USER.to_string());
        } else {
            if was_paused {
                if let Some(g) = self.latency_guard.as_mut() {
                    g.breaches = 0;
                }
            }
            self.pause_reason = None;
        }
        if self.phase.is_final() {
            self.finished_at.get_or_insert_with(|| rfc3339(now));
        } else {
            self.finished_at = None;
        }
        let phase = self.phase.as_str();
        let message = match (&self.error, &self.pause_reason) {
            (Some(e), _) => e.message.clone(),
            (None, Some(p)) => p.clone(),
            _ => String::new(),
        };
        self.set_condition(COMPLETE, self.phase == MigrationState::Succeeded, phase, &message, generation, now);
        if self.conditions.iter().any(|c| c.type_ == NOTIFIED && c.status == "True" && c.reason != phase) {
            self.set_condition(NOTIFIED, false, phase, "", generation, now);
        }
        self.observed_generation = generation;
    }

    fn set_condition(&mut self, type_: &str, ok: bool, reason: &str, message: &str, generation: Option<i64>, now: OffsetDateTime) {
        crate::crd::set_condition(&mut self.conditions, type_, ok, reason, message, generation, &rfc3339(now));
    }
}

/// Whether the migration's phase is one the user hears about.
pub fn is_newsworthy(phase: MigrationState) -> bool {
    matches!(phase, MigrationState::Succeeded | MigrationState::RolledBack | MigrationState::Failed | MigrationState::Paused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{GuardState, MigrationPhase, WorkloadKey, WorkloadKind};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-01-01 00:00:01 UTC);

    fn spec(phases: &[&[&str]]) -> WorkloadMigrationSpec {
        WorkloadMigrationSpec {
            workspace: "acme".into(),
            target_node: "n1".into(),
            phases: phases
                .iter()
                .map(|p| MigrationPhase { workloads: p.iter().map(|n| WorkloadKey::new("shop", WorkloadKind::Deployment, *n)).collect() })
                .collect(),
            approved_phases: 1,
            progress_deadline_seconds: 60,
            paused: false,
            resume_at: None,
            latency_guard: None,
            retry: 0,
            requested_by: "dev@example.com".into(),
        }
    }

    fn full(n: i32) -> Counts {
        Counts { desired: n, total: n, updated: n, ready: n, available: n, observed: true, revision_complete: true, stalled: false }
    }

    fn err(reason: &str) -> MigrationError {
        MigrationError { reason: reason.into(), message: format!("{reason} happened"), troubleshooting: vec![] }
    }

    #[test]
    fn workloads_move_one_at_a_time_in_phase_order() {
        let mut s = fresh(&spec(&[&["web", "api"], &["worker"]]));
        assert_eq!(s.workloads.iter().map(|w| (w.workload.name.as_str(), w.phase_index)).collect::<Vec<_>>(), vec![("web", 1), ("api", 1), ("worker", 2)]);
        s.settle(2, false, Some(1), T0);
        assert_eq!((s.phase, s.current_phase), (MigrationState::Pending, 0));
        for i in 0..3 {
            assert_eq!(s.next(2, false), Next::Start(i));
            s.start(i, T0).unwrap();
            s.settle(2, false, Some(1), T0);
            assert_eq!((s.phase, s.next(2, false)), (MigrationState::Running, Next::Follow(i)));
            assert_eq!(s.current_phase, s.workloads[i].phase_index);
            s.observe(i, &full(3), 3, Some(3), None);
            s.moved(i, T1).unwrap();
        }
        s.settle(2, false, Some(1), T1);
        assert_eq!((s.phase, s.next(2, false)), (MigrationState::Succeeded, Next::Finished));
        assert!(s.finished_at.is_some());
        let complete = s.conditions.iter().find(|c| c.type_ == COMPLETE).unwrap();
        assert_eq!((complete.status.as_str(), complete.reason.as_str()), ("True", "Succeeded"));
    }

    #[test]
    fn a_phased_plan_waits_for_approval_between_phases() {
        let mut s = fresh(&spec(&[&["web"], &["worker"]]));
        s.start(0, T0).unwrap();
        s.moved(0, T1).unwrap();
        s.settle(1, false, Some(1), T1);
        assert_eq!((s.phase, s.next(1, false), s.current_phase), (MigrationState::WaitingForApproval, Next::AwaitApproval, 2));
        assert_eq!(s.next(2, false), Next::Start(1), "approving phase 2 lets it run");
    }

    #[test]
    fn a_pause_stops_the_next_start_but_not_a_move_in_flight() {
        let mut s = fresh(&spec(&[&["web", "api"]]));
        s.settle(1, true, Some(1), T0);
        assert_eq!((s.phase, s.next(1, true)), (MigrationState::Paused, Next::Paused));
        assert_eq!(s.pause_reason.as_deref(), Some(PAUSED_BY_USER));
        s.settle(1, false, Some(2), T0);
        assert_eq!((s.phase, s.pause_reason.as_deref()), (MigrationState::Pending, None));
        s.start(0, T0).unwrap();
        assert_eq!(s.next(1, true), Next::Follow(0), "the moving workload finishes its move");
    }

    #[test]
    fn resuming_resets_the_latency_guard_count() {
        let mut s = fresh(&spec(&[&["web", "api"]]));
        s.latency_guard = Some(GuardState { baseline_ms: Some(100.0), breaches: 3, last_ms: Some(180.0) });
        s.pause_reason = Some("p95 latency 180 ms is 80% above the 100 ms baseline".into());
        s.settle(1, true, Some(1), T0);
        assert_eq!(s.pause_reason.as_deref(), Some("p95 latency 180 ms is 80% above the 100 ms baseline"), "the guard's reason is kept");
        s.settle(1, false, Some(2), T1);
        assert_eq!(s.latency_guard.as_ref().unwrap().breaches, 0);
        assert_eq!(s.latency_guard.as_ref().unwrap().baseline_ms, Some(100.0), "the baseline stays");
        assert_eq!(s.pause_reason, None);
    }

    #[test]
    fn the_lowest_available_count_is_kept_while_moving() {
        let mut s = fresh(&spec(&[&["web"]]));
        s.start(0, T0).unwrap();
        s.observe(0, &full(3), 1, None, None);
        s.observe(0, &Counts { available: 4, ..full(3) }, 2, Some(2), None);
        s.observe(0, &full(3), 3, Some(3), None);
        assert_eq!(s.workloads[0].min_available_seen, Some(2));
        assert_eq!(s.workloads[0].available_replicas, 3);
        assert_eq!(s.workloads[0].on_target, 3, "where the pods are now");
    }

    #[test]
    fn a_failed_move_rolls_back_and_stops_the_migration() {
        let mut s = fresh(&spec(&[&["web", "api", "worker"]]));
        s.start(0, T0).unwrap();
        s.moved(0, T0).unwrap();
        s.start(1, T0).unwrap();
        s.roll_back(1, T1, err(REASON_UNSCHEDULABLE)).unwrap();
        s.settle(1, false, Some(1), T1);
        assert_eq!((s.phase, s.next(1, false)), (MigrationState::Running, Next::RollBack(1)));
        s.rolled_back(1, T1).unwrap();
        s.settle(1, false, Some(1), T1);
        assert_eq!((s.phase, s.next(1, false)), (MigrationState::RolledBack, Next::Finished));
        assert_eq!(s.workloads[2].state, WorkloadState::Pending, "the rest never started");
        assert_eq!(s.error.as_ref().unwrap().reason, REASON_UNSCHEDULABLE);
        let complete = s.conditions.iter().find(|c| c.type_ == COMPLETE).unwrap();
        assert_eq!((complete.reason.as_str(), complete.message.as_str()), ("RolledBack", "Unschedulable happened"));
    }

    #[test]
    fn a_stuck_rollback_or_a_missing_workload_fails() {
        let mut s = fresh(&spec(&[&["web"]]));
        s.start(0, T0).unwrap();
        s.roll_back(0, T1, err(REASON_DEADLINE)).unwrap();
        s.fail(0, T1, err(REASON_ROLLBACK_FAILED)).unwrap();
        s.settle(1, false, None, T1);
        assert_eq!((s.phase, s.next(1, false)), (MigrationState::Failed, Next::Finished));
        assert_eq!(s.error.as_ref().unwrap().troubleshooting[0], "RollbackFailed happened");
        let mut s = fresh(&spec(&[&["gone"]]));
        s.fail(0, T0, err(REASON_WORKLOAD_NOT_FOUND)).unwrap();
        s.settle(1, false, None, T0);
        assert_eq!(s.phase, MigrationState::Failed);
        let mut s = fresh(&spec(&[]));
        s.reject(err(REASON_INVALID_SPEC));
        s.settle(1, false, None, T0);
        assert_eq!((s.phase, s.next(1, false)), (MigrationState::Failed, Next::Finished));
    }

    #[test]
    fn illegal_moves_are_refused() {
        let mut s = fresh(&spec(&[&["web"]]));
        assert_eq!(s.moved(0, T0), Err(InvalidTransition { workload: "shop/Deployment/web".into(), from: WorkloadState::Pending, to: WorkloadState::Moved }));
        s.start(0, T0).unwrap();
        s.start(0, T1).unwrap();
        assert_eq!(s.workloads[0].started_at.as_deref(), Some("2026-01-01T00:00:00Z"), "a re-run keeps the start time");
        s.moved(0, T1).unwrap();
        assert!(s.roll_back(0, T1, err("x")).is_err(), "a moved workload stays moved");
    }

    #[test]
    fn each_outcome_is_told_once_and_a_new_pause_again() {
        let mut s = fresh(&spec(&[&["web", "api"]]));
        s.settle(1, true, Some(1), T0);
        assert!(is_newsworthy(s.phase) && !s.is_notified());
        s.mark_notified(Some(1), T0);
        s.settle(1, true, Some(1), T0);
        assert!(s.is_notified());
        s.settle(1, false, Some(2), T1);
        assert!(!s.is_notified() && !is_newsworthy(s.phase));
        s.settle(1, true, Some(3), T1);
        assert!(!s.is_notified(), "a second pause is news again");
    }
}
