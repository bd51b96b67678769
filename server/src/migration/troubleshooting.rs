//! What the user is told when a move fails (use case 5b): the cause in the scheduler's or the
//! pod's own words, and what to do about it, checked against the target node itself.

use app::model::count;

use super::rollout::Cause;
use super::steps::{REASON_DEADLINE, REASON_NOT_READY, REASON_UNSCHEDULABLE};
use crate::capacity::{Demand, Resources};
use crate::crd::MigrationError;

/// What the dedicated node offers and a moving workload asks of it: the numbers that explain
/// an "Insufficient cpu" (use case 5c's warning, after the fact).
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub allocatable: Resources,
    /// Requested by pods already on the node that are not this workload's.
    pub others: Resources,
    pub demand: Demand,
}

impl Fit {
    /// The workload at the busiest moment of its move: every replica plus its surge.
    fn need(&self) -> Resources {
        self.demand.steady() + self.demand.surge()
    }
}

/// The target node as the controller sees it when a new pod cannot be scheduled. The
/// scheduler's message sums up every node of the cluster ("3 node(s) had untolerated
/// taint(s)" are other tenants' nodes, rightly refused); this is about the one node that
/// matters.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeCheck {
    Missing,
    Found {
        /// `spec.unschedulable` (cordoned).
        cordoned: bool,
        /// Taints (`key=value:Effect`) the pods do not tolerate.
        untolerated: Vec<String>,
        fit: Fit,
    },
}

/// The user-facing error for a failed move, with what to do about it (use case 5b). The
/// message carries the scheduler's or the pod's own words; the steps come from the target
/// node itself when it could be read.
pub fn failure(cause: &Cause, workload: &str, ws: &str, node: &str, deadline_seconds: u32, check: Option<&NodeCheck>) -> MigrationError {
    let mut steps = Vec::new();
    let (reason, message) = match cause {
        Cause::Unschedulable(msg) => {
            let lower = msg.to_lowercase();
            match check {
                Some(NodeCheck::Missing) => steps.push(format!("Node {node} no longer exists: pick another dedicated node of workspace {ws} and retry.")),
                Some(NodeCheck::Found { cordoned, untolerated, fit }) => {
                    if *cordoned {
                        steps.push(format!("Node {node} is cordoned (unschedulable): uncordon it, then retry."));
                    }
                    if !untolerated.is_empty() {
                        steps.push(format!(
                            "Node {node} has taints the pods do not tolerate ({}): a dedicated node of workspace {ws} should carry only hexabase.ai/dedicated={ws}:NoSchedule.",
                            untolerated.join(", ")
                        ));
                    }
                    let (need, d) = (fit.need(), &fit.demand);
                    if lower.contains("insufficient cpu") || fit.others.cpu + need.cpu > fit.allocatable.cpu {
                        steps.push(format!(
                            "The dedicated node {node} has {:.1} vCPU allocatable ({:.1} already requested by other pods); {workload} requests {:.1} vCPU while it moves ({} + {} surge × {:.2} vCPU): pick a larger node size, or move fewer workloads with a phased plan.",
                            fit.allocatable.cpu, fit.others.cpu, need.cpu, count(d.replicas, "replica", "replicas"), d.surge_pods, d.pod.cpu
                        ));
                    }
                    if lower.contains("insufficient memory") || fit.others.memory + need.memory > fit.allocatable.memory {
                        steps.push(format!(
                            "The dedicated node {node} has {:.1} GiB memory allocatable ({:.1} GiB already requested by other pods); {workload} requests {:.1} GiB while it moves ({} + {} surge × {:.2} GiB): pick a larger node size, or move fewer workloads with a phased plan.",
                            fit.allocatable.memory_gib(), fit.others.memory_gib(), need.memory_gib(), count(d.replicas, "replica", "replicas"), d.surge_pods, d.pod.memory_gib()
                        ));
                    }
                }
                None if lower.contains("insufficient") => steps.push(format!(
                    "The dedicated node {node} looks too small for {workload}'s pods plus one surge pod: pick a larger node size, or move fewer workloads with a phased plan."
                )),
                None => {}
            }
            if lower.contains("anti-affinity") {
                steps.push(format!("A required pod anti-affinity rule keeps {workload}'s replicas on different nodes, which one dedicated node cannot offer: make the rule preferred instead of required, or spread over more nodes."));
            }
            if lower.contains("too many pods") {
                steps.push(format!("The dedicated node {node} has reached its pod limit: move fewer workloads or pick a larger node size."));
            }
            if steps.is_empty() {
                steps.push(format!("The scheduler's message names the reason; `kubectl describe node {node}` shows the node's taints, labels and room."));
            }
            (REASON_UNSCHEDULABLE, format!("The new pods of {workload} cannot be scheduled on {node}: {msg}"))
        }
        Cause::NotReady(msg) => {
            steps.push(format!(
                "Check {workload}'s image, configuration and readiness probe (kubectl logs, kubectl describe pod), fix the application, then retry."
            ));
            (REASON_NOT_READY, format!("The new pods of {workload} do not start on {node}: {msg}"))
        }
        Cause::DeadlineExceeded(msg) => {
            steps.push(format!("If {workload} is slow to start, raise progressDeadlineSeconds (now {deadline_seconds}s) and retry."));
            (REASON_DEADLINE, format!("{workload} did not finish moving to {node} within {deadline_seconds}s: {msg}"))
        }
    };
    steps.push(format!("{workload} was restored to its original scheduling and keeps running where it was. After fixing the cause, retry the migration."));
    MigrationError { reason: reason.into(), message, troubleshooting: steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::GIB;

    #[test]
    fn troubleshooting_explains_a_node_that_is_too_small() {
        let fit = Fit {
            allocatable: Resources::new(3.9, 15.0 * GIB),
            others: Resources::default(),
            demand: Demand { replicas: 3, surge_pods: 1, pod: Resources::new(1.5, 0.5 * GIB) },
        };
        let check = NodeCheck::Found { cordoned: false, untolerated: vec![], fit };
        let msg = "0/10 nodes are available: 1 Insufficient cpu, 3 node(s) had untolerated taint(s), 6 node(s) didn't match Pod's node affinity/selector.";
        let e = failure(&Cause::Unschedulable(msg.into()), "web", "acme", "n1", 60, Some(&check));
        assert_eq!(e.reason, REASON_UNSCHEDULABLE);
        assert!(e.message.ends_with(msg), "the scheduler's own words: {}", e.message);
        assert_eq!(
            e.troubleshooting,
            vec![
                "The dedicated node n1 has 3.9 vCPU allocatable (0.0 already requested by other pods); web requests 6.0 vCPU while it moves (3 replicas + 1 surge × 1.50 vCPU): pick a larger node size, or move fewer workloads with a phased plan.".to_string(),
                "web was restored to its original scheduling and keeps running where it was. After fixing the cause, retry the migration.".to_string(),
            ],
            "other tenants' tainted nodes in the message are not the user's problem"
        );
    }

    #[test]
    fn troubleshooting_names_the_target_nodes_own_trouble() {
        let fit = Fit {
            allocatable: Resources::new(4.0, 16.0 * GIB),
            others: Resources::default(),
            demand: Demand { replicas: 3, surge_pods: 1, pod: Resources::new(0.1, 0.1 * GIB) },
        };
        let check = NodeCheck::Found { cordoned: true, untolerated: vec!["example.com/gpu=:NoSchedule".into()], fit };
        let e = failure(&Cause::Unschedulable("0/3 nodes are available: 1 node(s) had untolerated taint(s)".into()), "web", "acme", "n1", 60, Some(&check));
        assert!(e.troubleshooting[0].contains("cordoned"));
        assert!(e.troubleshooting[1].contains("example.com/gpu=:NoSchedule") && e.troubleshooting[1].contains("hexabase.ai/dedicated=acme:NoSchedule"));
        assert_eq!(e.troubleshooting.len(), 3);
        let gone = failure(&Cause::Unschedulable("x".into()), "web", "acme", "n1", 60, Some(&NodeCheck::Missing));
        assert!(gone.troubleshooting[0].contains("no longer exists"));
        let unknown = failure(&Cause::Unschedulable("something new".into()), "web", "acme", "n1", 60, None);
        assert!(unknown.troubleshooting[0].contains("kubectl describe node n1"));
        let slow = failure(&Cause::DeadlineExceeded("1 of 3 replicas updated".into()), "web", "acme", "n1", 30, None);
        assert_eq!(slow.reason, REASON_DEADLINE);
        assert!(slow.troubleshooting[0].contains("progressDeadlineSeconds (now 30s)"));
    }
}
