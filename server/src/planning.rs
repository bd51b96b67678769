//! Migration planning, pure: does a selection fit the node's free allocatable (requests plus the
//! largest rolling-update surge, as workloads move one at a time), and if not, which phases do
//! (use case 5c4). The production-grade workloads go first.

use app::model::PlanPhase;

use crate::cluster::quantity::GIB;
use crate::cluster::workloads::{Workload, WorkloadKind};

/// CPU cores and memory bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Room {
    pub cpu: f64,
    pub memory: f64,
}

/// What moving `workloads` needs on the node: all their requests, plus the largest surge.
pub fn need(workloads: &[&Workload]) -> Room {
    let mut total = Room::default();
    let (mut surge_cpu, mut surge_mem) = (0.0f64, 0.0f64);
    for w in workloads {
        let r = w.replicas.max(0) as f64;
        total.cpu += r * w.pod_cpu;
        total.memory += r * w.pod_memory;
        surge_cpu = surge_cpu.max(w.surge_pods as f64 * w.pod_cpu);
        surge_mem = surge_mem.max(w.surge_pods as f64 * w.pod_memory);
    }
    Room { cpu: total.cpu + surge_cpu, memory: total.memory + surge_mem }
}

pub fn fits(need: Room, free: Room) -> bool {
    need.cpu <= free.cpu + 1e-9 && need.memory <= free.memory + 1e-9
}

/// Production first: Deployments with a budget and several replicas, then by CPU, largest first.
pub fn production_first(workloads: &mut [&Workload]) {
    workloads.sort_by(|a, b| {
        let grade = |w: &Workload| (w.kind == WorkloadKind::Deployment && w.has_pdb && w.replicas > 1) as u8;
        grade(b).cmp(&grade(a)).then((b.replicas as f64 * b.pod_cpu).total_cmp(&(a.replicas as f64 * a.pod_cpu))).then(a.name.cmp(&b.name))
    });
}

/// Splits the selection into phases: phase 1 takes workloads in production-first order while
/// they fit the free room; the rest form later phases, each as large as would fit the whole
/// node, marked as not fitting now (the user adds room before running them).
pub fn phases(mut workloads: Vec<&Workload>, free: Room, node_total: Room) -> Vec<PlanPhase> {
    production_first(&mut workloads);
    let mut out = Vec::new();
    let mut rest = workloads;
    let mut budget = free;
    let mut first = true;
    while !rest.is_empty() {
        let mut phase: Vec<&Workload> = Vec::new();
        let mut later = Vec::new();
        for w in rest {
            let mut trial = phase.clone();
            trial.push(w);
            if fits(need(&trial), budget) {
                phase = trial;
            } else {
                later.push(w);
            }
        }
        if phase.is_empty() {
            // Not even alone does the next workload fit: it becomes a phase of its own.
            phase.push(later.remove(0));
        }
        let n = need(&phase);
        out.push(PlanPhase {
            workloads: phase.iter().map(|w| key(w)).collect(),
            cpu: n.cpu,
            memory_gib: n.memory / GIB,
            fits_now: first && fits(n, free),
        });
        first = false;
        budget = node_total;
        rest = later;
    }
    out
}

pub fn key(w: &Workload) -> String {
    let kind = match w.kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
    };
    format!("{kind}/{}", w.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, replicas: i32, cpu: f64, pdb: bool) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: name.into(),
            replicas,
            pod_cpu: cpu,
            pod_memory: 0.25 * GIB,
            surge_pods: 1,
            has_readiness_probe: true,
            has_pdb: pdb,
            pod_labels: Default::default(),
            node_selector: Default::default(),
            scheduling: Default::default(),
        }
    }

    #[test]
    fn need_counts_the_largest_surge_once() {
        let (a, b) = (w("web", 3, 0.5, true), w("api", 2, 0.25, false));
        let n = need(&[&a, &b]);
        assert!((n.cpu - (1.5 + 0.5 + 0.5)).abs() < 1e-9);
    }

    #[test]
    fn a_selection_that_does_not_fit_is_split_with_production_first() {
        let (web, api, worker) = (w("web", 3, 0.5, true), w("api", 2, 0.5, false), w("worker", 1, 1.0, false));
        let free = Room { cpu: 2.5, memory: 8.0 * GIB };
        let plan = phases(vec![&worker, &api, &web], free, free);
        assert_eq!(plan[0].workloads, vec!["Deployment/web"], "the production deployment goes first");
        assert!(plan[0].fits_now);
        assert!(plan.len() >= 2);
        assert!(plan[1..].iter().all(|p| !p.fits_now), "later phases need room added first");
        let all: Vec<String> = plan.iter().flat_map(|p| p.workloads.clone()).collect();
        assert_eq!(all.len(), 3, "every workload is in exactly one phase");
    }

    #[test]
    fn a_selection_that_fits_is_one_phase() {
        let (web, api) = (w("web", 3, 0.5, true), w("api", 2, 0.25, false));
        let plan = phases(vec![&api, &web], Room { cpu: 8.0, memory: 8.0 * GIB }, Room { cpu: 8.0, memory: 8.0 * GIB });
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].workloads, vec!["Deployment/web", "Deployment/api"]);
    }
}
