//! Migration planning, pure: which phases a selection moves in when it does not fit the
//! node's free room at once (use case 5c4). The production-grade workloads go first. The fit
//! itself (requests plus the largest surge, with the headroom) is `capacity`'s one rule.

use app::model::{PlanPhase, WorkloadKind};

use crate::capacity::{Need, Resources};
use crate::cluster::workloads::Workload;

/// What moving `workloads` needs on the node.
pub fn need(workloads: &[&Workload]) -> Need {
    Need::of(workloads.iter().map(|w| &w.demand))
}

/// Production first: Deployments with a budget and several replicas, then by CPU, largest first.
pub fn production_first(workloads: &mut [&Workload]) {
    workloads.sort_by(|a, b| {
        let grade = |w: &Workload| (w.key.kind == WorkloadKind::Deployment && w.has_pdb && w.replicas() > 1) as u8;
        grade(b).cmp(&grade(a)).then(b.demand.steady().cpu.total_cmp(&a.demand.steady().cpu)).then(a.key.cmp(&b.key))
    });
}

/// Splits the selection into phases: phase 1 takes workloads in production-first order while
/// they fit the free room; the rest form later phases, each as large as would fit the whole
/// node, marked as not fitting now (the user adds room before running them).
pub fn phases(mut workloads: Vec<&Workload>, free: Resources, node_total: Resources) -> Vec<PlanPhase> {
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
            if need(&trial).fits(budget) {
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
            workloads: phase.iter().map(|w| w.key.clone()).collect(),
            cpu: n.total().cpu,
            memory_gib: n.total().memory_gib(),
            fits_now: first && n.fits(free),
        });
        first = false;
        budget = node_total;
        rest = later;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{Demand, GIB};
    use app::model::WorkloadKey;

    fn w(name: &str, replicas: i32, cpu: f64, pdb: bool) -> Workload {
        Workload {
            key: WorkloadKey::new("ns", WorkloadKind::Deployment, name),
            demand: Demand { replicas, pod: Resources::new(cpu, 0.25 * GIB), surge_pods: 1 },
            has_readiness_probe: true,
            has_pdb: pdb,
            scheduling: Default::default(),
        }
    }

    fn names(p: &PlanPhase) -> Vec<&str> {
        p.workloads.iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn a_selection_that_does_not_fit_is_split_with_production_first() {
        let (web, api, worker) = (w("web", 3, 0.5, true), w("api", 2, 0.5, false), w("worker", 1, 1.0, false));
        // web alone needs (1.5 + 0.5) × 1.2 = 2.4 vCPU.
        let free = Resources::new(2.5, 8.0 * GIB);
        let plan = phases(vec![&worker, &api, &web], free, free);
        assert_eq!(names(&plan[0]), vec!["web"], "the production deployment goes first");
        assert!(plan[0].fits_now);
        assert!(plan.len() >= 2);
        assert!(plan[1..].iter().all(|p| !p.fits_now), "later phases need room added first");
        let all: Vec<&str> = plan.iter().flat_map(names).collect();
        assert_eq!(all.len(), 3, "every workload is in exactly one phase");
    }

    #[test]
    fn a_selection_that_fits_is_one_phase_and_the_headroom_counts() {
        let (web, api) = (w("web", 3, 0.5, true), w("api", 2, 0.25, false));
        let roomy = Resources::new(8.0, 8.0 * GIB);
        let plan = phases(vec![&api, &web], roomy, roomy);
        assert_eq!(plan.len(), 1);
        assert_eq!(names(&plan[0]), vec!["web", "api"]);
        // Requests 2.0 + surge 0.5 = 2.5 fit 2.6 exactly, but not with 20% headroom.
        let tight = Resources::new(2.6, 8.0 * GIB);
        assert!(!need(&[&web, &api]).fits(tight));
        assert_eq!(phases(vec![&api, &web], tight, tight).len(), 2);
    }
}
