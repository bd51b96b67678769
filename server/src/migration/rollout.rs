//! Reading a rollout: from a Deployment or StatefulSet and its pods, is the move done, still
//! going, or failed, and why. Pure: the controller reads the objects, this file judges them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use time::OffsetDateTime;

use crate::cluster::labels::HOSTNAME as HOSTNAME_LABEL;

/// A new pod the scheduler rejected is given this long to find room (the scheduler retries,
/// and a node that just turned Ready may still be settling) before the move is called off.
pub const UNSCHEDULABLE_GRACE: Duration = Duration::from_secs(5);

/// Container waiting reasons that do not fix themselves: the move fails at once.
const STUCK_REASONS: [&str; 7] =
    ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"];

/// The replica counts of a workload, whatever its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub desired: i32,
    /// All pods the controller counts (old and new, not terminating).
    pub total: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// The workload controller has seen the latest spec.
    pub observed: bool,
    /// Every pod runs the latest template (a StatefulSet's current revision is its update
    /// revision; for a Deployment the same as updated == total).
    pub revision_complete: bool,
    /// The Deployment itself gave up (`ProgressDeadlineExceeded`).
    pub stalled: bool,
}

impl Counts {
    pub fn of_deployment(d: &Deployment) -> Self {
        let desired = d.spec.replicas.unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        let total = s.replicas.unwrap_or(0);
        let updated = s.updated_replicas.unwrap_or(0);
        let stalled = s
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_.as_deref() == Some("Progressing") && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        Counts {
            desired,
            total,
            updated,
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            observed: s.observed_generation >= d.metadata.generation,
            revision_complete: updated == total,
            stalled,
        }
    }

    pub fn of_stateful_set(set: &StatefulSet) -> Self {
        let desired = set.spec.replicas.unwrap_or(1);
        let s = set.status.clone().unwrap_or_default();
        Counts {
            desired,
            total: s.replicas,
            updated: s.updated_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            observed: s.observed_generation >= set.metadata.generation,
            revision_complete: s.update_revision.is_some() && s.current_revision == s.update_revision,
            stalled: false,
        }
    }

    /// Every replica runs the latest template and is available, and no other pod is left.
    pub fn complete(&self) -> bool {
        self.observed && self.revision_complete && self.updated == self.desired && self.total == self.desired && self.available == self.desired
    }

    pub fn summary(&self) -> String {
        format!("{} of {} replicas updated, {} available", self.updated, self.desired, self.available)
    }
}

/// Why a move failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The scheduler's own message, e.g. "0/6 nodes are available: 1 Insufficient cpu, …".
    Unschedulable(String),
    /// A new pod cannot start or get ready: the pod and its container's reason and message.
    NotReady(String),
    /// The rollout did not finish in time: how far it got.
    DeadlineExceeded(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Progressing(String),
    Done,
    Failed(Cause),
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn pod_name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("?")
}

/// Where a move goes: the Node's name (where pods run, `spec.nodeName`) and its hostname label
/// (what the moved template selects; see `cluster::hostname`).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub node: &'a str,
    pub hostname: &'a str,
}

/// Whether a pod was made from the moved template (it selects the target node by hostname).
fn selects(p: &Pod, hostname: &str) -> bool {
    p.spec.as_ref().and_then(|s| s.node_selector.as_ref()).and_then(|s| s.get(HOSTNAME_LABEL)).is_some_and(|n| n == hostname)
}

/// Since when the scheduler has found no node for the pod (if it says), and its message;
/// `None` while the pod is not unschedulable.
fn unschedulable_condition(p: &Pod) -> Option<(Option<OffsetDateTime>, String)> {
    let cond = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))?;
    let since = cond.last_transition_time.as_ref().and_then(|t| OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok());
    Some((since, cond.message.clone().unwrap_or_else(|| "the scheduler found no node for the pod".into())))
}

/// The scheduler's message if the pod has been unschedulable for at least `grace`.
fn unschedulable(p: &Pod, grace: Duration, now: OffsetDateTime) -> Option<String> {
    let (since, message) = unschedulable_condition(p)?;
    (now - since.unwrap_or(now) >= grace).then_some(message)
}

/// A container stuck in a state that does not fix itself.
fn stuck(p: &Pod) -> Option<String> {
    let statuses = p.status.as_ref()?;
    let all = statuses.init_container_statuses.iter().flatten().chain(statuses.container_statuses.iter().flatten());
    all.filter_map(|c| c.state.as_ref()?.waiting.as_ref().map(|w| (c, w))).find(|(_, w)| w.reason.as_deref().is_some_and(|r| STUCK_REASONS.contains(&r))).map(
        |(c, w)| format!("pod {} container {}: {}: {}", pod_name(p), c.name, w.reason.as_deref().unwrap_or(""), w.message.as_deref().unwrap_or("no message")),
    )
}

/// Judges a move to `node` that started at `started`: done when every replica of the moved
/// template is available and no pod is left anywhere else; failed when a new pod cannot be
/// scheduled (after a short grace) or cannot start, or when the deadline has passed.
pub fn judge_move(counts: &Counts, pods: &[Pod], target: Target, started: OffsetDateTime, deadline: Duration, now: OffsetDateTime) -> Verdict {
    let (node, hostname) = (target.node, target.hostname);
    let grace = UNSCHEDULABLE_GRACE.min(deadline / 2);
    let new_pods = || pods.iter().filter(|p| !is_terminating(p) && selects(p, hostname));
    if let Some(message) = new_pods().find_map(|p| unschedulable(p, grace, now)) {
        return Verdict::Failed(Cause::Unschedulable(message));
    }
    if let Some(message) = new_pods().find_map(stuck) {
        return Verdict::Failed(Cause::NotReady(message));
    }
    let elsewhere = pods.iter().filter(|p| !is_terminating(p) && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node)).count();
    if counts.complete() && elsewhere == 0 {
        return Verdict::Done;
    }
    let progress = format!("{}; {} pod(s) not on {node} yet", counts.summary(), elsewhere);
    if counts.stalled || now - started > deadline {
        let not_ready = new_pods().find(|p| !pod_ready(p)).map(|p| format!("; pod {} is not ready", pod_name(p))).unwrap_or_default();
        return Verdict::Failed(Cause::DeadlineExceeded(format!("{progress}{not_ready}")));
    }
    Verdict::Progressing(progress)
}

/// How long a move judged Progressing can wait for the next watch event before it must be
/// looked at again anyway: until a new pod's scheduling grace runs out (no event marks that
/// moment), or the deadline.
pub fn next_check(pods: &[Pod], hostname: &str, started: OffsetDateTime, deadline: Duration, now: OffsetDateTime) -> Duration {
    let grace = UNSCHEDULABLE_GRACE.min(deadline / 2);
    let graces = pods
        .iter()
        .filter(|p| !is_terminating(p) && selects(p, hostname))
        .filter_map(unschedulable_condition)
        .map(|(since, _)| remaining(since.unwrap_or(now), grace, now));
    graces.fold(until_deadline(started, deadline, now), Duration::min)
}

/// Time left until `started + deadline` (at least a moment, so a wait is never zero).
pub fn until_deadline(started: OffsetDateTime, deadline: Duration, now: OffsetDateTime) -> Duration {
    remaining(started, deadline, now)
}

fn remaining(since: OffsetDateTime, span: Duration, now: OffsetDateTime) -> Duration {
    let left = (since + span) - now;
    Duration::try_from(left).unwrap_or_default().max(Duration::from_millis(100))
}

/// Judges a rollback (the original template rolling out again).
pub fn judge_rollback(counts: &Counts, started: OffsetDateTime, deadline: Duration, now: OffsetDateTime) -> Verdict {
    if counts.complete() {
        Verdict::Done
    } else if now - started > deadline {
        Verdict::Failed(Cause::DeadlineExceeded(counts.summary()))
    } else {
        Verdict::Progressing(counts.summary())
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
    const DEADLINE: Duration = Duration::from_secs(60);

    fn at(secs: i64) -> OffsetDateTime {
        T0 + time::Duration::seconds(secs)
    }

    fn pod(name: &str, selects_node: Option<&str>, on: Option<&str>, extra_status: serde_json::Value) -> Pod {
        let mut p = json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "app" }] },
            "status": extra_status,
        });
        if let Some(n) = selects_node {
            p["spec"]["nodeSelector"] = json!({ "kubernetes.io/hostname": n });
        }
        if let Some(n) = on {
            p["spec"]["nodeName"] = json!(n);
        }
        serde_json::from_value(p).unwrap()
    }

    fn counts(updated: i32, total: i32, available: i32) -> Counts {
        Counts { desired: 3, total, updated, ready: available, available, observed: true, revision_complete: updated == total, stalled: false }
    }

    const N1: Target<'static> = Target { node: "n1", hostname: "n1" };

    #[test]
    fn new_pods_are_known_by_the_hostname_and_placed_by_the_node_name() {
        // Karpenter's kwok provider: the hostname label is the NodeClaim's name, not the Node's.
        let target = Target { node: "kwok-claim-a-1234", hostname: "claim-a" };
        let moved: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), Some("claim-a"), Some("kwok-claim-a-1234"), json!({}))).collect();
        assert_eq!(judge_move(&counts(3, 3, 3), &moved, target, T0, DEADLINE, at(5)), Verdict::Done);
        let pending = vec![pod(
            "p0",
            Some("claim-a"),
            None,
            json!({ "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no", "lastTransitionTime": "2026-01-01T00:00:00Z" }] }),
        )];
        assert!(
            matches!(judge_move(&counts(1, 1, 0), &pending, target, T0, DEADLINE, at(120)), Verdict::Failed(Cause::Unschedulable(_))),
            "a new pod is recognised by its selector"
        );
    }

    #[test]
    fn done_only_when_all_replicas_are_new_available_and_on_the_node() {
        let on_node: Vec<Pod> = (0..3).map(|i| pod(&format!("p{i}"), Some("n1"), Some("n1"), json!({}))).collect();
        assert_eq!(judge_move(&counts(3, 3, 3), &on_node, N1, T0, DEADLINE, at(5)), Verdict::Done);
        // Surge pod still around: not done.
        assert!(matches!(judge_move(&counts(3, 4, 3), &on_node, N1, T0, DEADLINE, at(5)), Verdict::Progressing(_)));
        // A leftover old pod on the shared pool: not done.
        let mut mixed = on_node.clone();
        mixed.push(pod("old", None, Some("shared-1"), json!({})));
        assert!(matches!(judge_move(&counts(3, 3, 3), &mixed, N1, T0, DEADLINE, at(5)), Verdict::Progressing(m) if m.contains("1 pod(s) not on n1")));
        // …unless it is already terminating.
        mixed[3] = serde_json::from_value(
            json!({ "metadata": { "name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z" }, "spec": { "containers": [], "nodeName": "shared-1" } }),
        )
        .unwrap();
        assert_eq!(judge_move(&counts(3, 3, 3), &mixed, N1, T0, DEADLINE, at(5)), Verdict::Done);
        let stale = Counts { observed: false, ..counts(3, 3, 3) };
        assert!(matches!(judge_move(&stale, &on_node, N1, T0, DEADLINE, at(5)), Verdict::Progressing(_)));
    }

    #[test]
    fn an_unschedulable_new_pod_fails_the_move_with_the_schedulers_message_after_a_grace() {
        let msg = "0/5 nodes are available: 1 Insufficient cpu, 4 node(s) didn't match Pod's node affinity/selector.";
        let pending = pod(
            "new",
            Some("n1"),
            None,
            json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": "2026-01-01T00:00:01Z" }] }),
        );
        let pods = vec![pending, pod("old", None, Some("shared-1"), json!({}))];
        assert!(matches!(judge_move(&counts(1, 4, 3), &pods, N1, T0, DEADLINE, at(2)), Verdict::Progressing(_)), "within the grace");
        assert_eq!(judge_move(&counts(1, 4, 3), &pods, N1, T0, DEADLINE, at(7)), Verdict::Failed(Cause::Unschedulable(msg.into())));
        // No event marks the end of the grace: the engine looks again right then, not later.
        assert_eq!(next_check(&pods, "n1", T0, DEADLINE, at(2)), Duration::from_secs(4), "unschedulable since 1 s, grace 5 s");
        assert_eq!(next_check(&pods[1..], "n1", T0, DEADLINE, at(2)), Duration::from_secs(58), "else at the deadline");
        assert_eq!(next_check(&pods[1..], "n1", T0, DEADLINE, at(90)), Duration::from_millis(100), "never a zero wait");
    }

    #[test]
    fn an_old_pods_trouble_is_not_the_moves() {
        let stuck_old = pod(
            "old",
            None,
            Some("shared-1"),
            json!({ "containerStatuses": [{ "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 3, "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] }),
        );
        assert!(matches!(judge_move(&counts(0, 3, 2), &[stuck_old], N1, T0, DEADLINE, at(5)), Verdict::Progressing(_)));
    }

    #[test]
    fn a_new_pod_that_cannot_start_fails_the_move_at_once() {
        let crash = pod(
            "new",
            Some("n1"),
            Some("n1"),
            json!({ "containerStatuses": [{ "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 3, "state": { "waiting": { "reason": "ImagePullBackOff", "message": "pull access denied" } } }] }),
        );
        match judge_move(&counts(1, 4, 3), &[crash], N1, T0, DEADLINE, at(1)) {
            Verdict::Failed(Cause::NotReady(m)) => assert_eq!(m, "pod new container app: ImagePullBackOff: pull access denied"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_deadline_ends_a_slow_move_and_says_how_far_it_got() {
        let slow = pod("new", Some("n1"), Some("n1"), json!({ "conditions": [{ "type": "Ready", "status": "False" }] }));
        assert!(matches!(judge_move(&counts(1, 4, 3), std::slice::from_ref(&slow), N1, T0, DEADLINE, at(59)), Verdict::Progressing(_)));
        match judge_move(&counts(1, 4, 3), &[slow], N1, T0, DEADLINE, at(61)) {
            Verdict::Failed(Cause::DeadlineExceeded(m)) => {
                assert!(m.contains("1 of 3 replicas updated, 3 available") && m.contains("pod new is not ready"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let stalled = Counts { stalled: true, ..counts(1, 4, 3) };
        assert!(matches!(judge_move(&stalled, &[], N1, T0, DEADLINE, at(1)), Verdict::Failed(Cause::DeadlineExceeded(_))));
    }

    #[test]
    fn a_rollback_is_done_when_the_original_template_is_back_everywhere() {
        assert_eq!(judge_rollback(&counts(3, 3, 3), T0, DEADLINE, at(1)), Verdict::Done);
        assert!(matches!(judge_rollback(&counts(2, 4, 3), T0, DEADLINE, at(1)), Verdict::Progressing(_)));
        assert!(matches!(judge_rollback(&counts(2, 4, 3), T0, DEADLINE, at(61)), Verdict::Failed(_)));
    }

    #[test]
    fn counts_read_a_deployment_and_a_stateful_set() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": { "name": "web", "generation": 2 },
            "spec": { "replicas": 3, "selector": {}, "template": {} },
            "status": { "observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 4, "availableReplicas": 3 }
        }))
        .unwrap();
        let c = Counts::of_deployment(&d);
        assert_eq!((c.desired, c.total, c.updated, c.available, c.observed, c.complete()), (3, 4, 1, 3, true, false));
        let s: StatefulSet = serde_json::from_value(json!({
            "metadata": { "name": "db", "generation": 3 },
            "spec": { "replicas": 2, "selector": {}, "serviceName": "db", "template": {} },
            "status": { "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2, "currentRevision": "db-2", "updateRevision": "db-2" }
        }))
        .unwrap();
        assert!(Counts::of_stateful_set(&s).complete());
    }
}
