//! The workspace's Deployments and StatefulSets and what they request: the input to the
//! wizard's fit check (use case 5c) and to migration planning.

use app::model::WorkloadNeed;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, PodSpec, PodTemplateSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::Client;

use super::labels;
use super::quantity::{bytes, cpu_cores, GIB};
use crate::migration::patch::Scheduling;

pub use crate::crd::WorkloadKind;

/// One workload as the engine reasons about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    /// Requests of one pod (sum of its containers).
    pub pod_cpu: f64,
    pub pod_memory: f64,
    /// Extra pods a rolling update creates at once.
    pub surge_pods: i32,
    /// Every container has a readiness probe: without one, "available" means only "started".
    pub has_readiness_probe: bool,
    /// A PodDisruptionBudget selects the workload's pods.
    pub has_pdb: bool,
    /// The pod template's labels (to match budgets) and node selector (to tell where it runs).
    pub pod_labels: BTreeMap<String, String>,
    pub node_selector: BTreeMap<String, String>,
    /// The scheduling fields a move changes, as the API server returned them (for the dry run,
    /// which shows the engine's exact patch).
    pub scheduling: Scheduling,
}

impl Workload {
    /// Why zero downtime cannot be guaranteed for this workload, in the user's terms.
    pub fn risks(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.replicas <= 1 {
            out.push("One replica: its pod is replaced, so requests may fail for a moment. Scale to 2 or more first.".into());
        }
        if !self.has_readiness_probe {
            out.push("No readiness probe: new pods take traffic as soon as they start, possibly before they are ready.".into());
        }
        if self.kind == WorkloadKind::StatefulSet {
            out.push("StatefulSet: pods are replaced one by one (delete, then create), so one replica is down at a time.".into());
        }
        if !self.has_pdb && self.replicas > 1 {
            out.push("No PodDisruptionBudget: other disruptions during the move are not limited.".into());
        }
        out
    }

    /// Its pods are pinned to one dedicated node (a migration moved it there).
    pub fn on_dedicated_node(&self) -> bool {
        self.node_selector.contains_key("kubernetes.io/hostname")
    }

    /// Its pods are pinned to the given dedicated node already.
    pub fn runs_on(&self, node: &str) -> bool {
        self.node_selector.get("kubernetes.io/hostname").is_some_and(|n| n == node)
    }
}

fn all_have_readiness(spec: Option<&PodSpec>) -> bool {
    spec.is_some_and(|s| !s.containers.is_empty() && s.containers.iter().all(|c| c.readiness_probe.is_some()))
}

fn selects(pdb: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else { return false };
    let by_labels = selector.match_labels.as_ref().is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    // Only `In` expressions are common for budgets; anything else is treated as not matching.
    let by_expr = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| e.operator == "In" && labels.get(&e.key).is_some_and(|v| e.values.as_ref().is_some_and(|vs| vs.contains(v))))
    });
    by_labels && by_expr && (selector.match_labels.is_some() || selector.match_expressions.is_some())
}

/// CPU cores and memory bytes one pod requests.
pub fn pod_requests(spec: Option<&PodSpec>) -> (f64, f64) {
    let Some(spec) = spec else { return (0.0, 0.0) };
    spec.containers.iter().fold((0.0, 0.0), |(cpu, mem), c| {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        (
            cpu + req.and_then(|r| r.get("cpu")).and_then(|q| cpu_cores(&q.0)).unwrap_or(0.0),
            mem + req.and_then(|r| r.get("memory")).and_then(|q| bytes(&q.0)).unwrap_or(0.0),
        )
    })
}

/// Pods a rolling update may add: `maxSurge` resolved against replicas (25% by default, rounded
/// up, as Kubernetes does), and at least one because the migration always surges.
pub fn surge_pods(max_surge: Option<&IntOrString>, replicas: i32) -> i32 {
    let n = match max_surge {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            (replicas as f64 * pct / 100.0).ceil() as i32
        }
        None => (replicas as f64 * 0.25).ceil() as i32,
    };
    n.max(1)
}

fn scheduling_of<K: serde::Serialize>(kind: WorkloadKind, obj: &K) -> Scheduling {
    Scheduling::of_workload(kind, &serde_json::to_value(obj).unwrap_or_default())
}

pub async fn workspace_namespaces(client: &Client, ws: &str) -> Result<Vec<String>, kube::Error> {
    let list = Api::<Namespace>::all(client.clone()).list_metadata(&ListParams::default().labels(&labels::workspace_selector(ws))).await?;
    Ok(list.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// A workload from its pod template and what differs between the kinds.
fn from_template(kind: WorkloadKind, namespace: &str, name: Option<String>, replicas: i32, template: &PodTemplateSpec, surge_pods: i32, scheduling: Scheduling, has_pdb: bool) -> Workload {
    let (pod_cpu, pod_memory) = pod_requests(template.spec.as_ref());
    Workload {
        kind,
        namespace: namespace.to_string(),
        name: name.unwrap_or_default(),
        replicas,
        pod_cpu,
        pod_memory,
        surge_pods,
        has_readiness_probe: all_have_readiness(template.spec.as_ref()),
        has_pdb,
        pod_labels: template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default(),
        node_selector: template.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default(),
        scheduling,
    }
}

fn template_labels(template: &PodTemplateSpec) -> BTreeMap<String, String> {
    template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
}

pub async fn list_workloads(client: &Client, ws: &str) -> Result<Vec<Workload>, kube::Error> {
    let mut out = Vec::new();
    for ns in workspace_namespaces(client, ws).await? {
        let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns).list(&ListParams::default()).await?.items;
        let has_pdb = |t: &PodTemplateSpec| pdbs.iter().any(|p| selects(p, &template_labels(t)));
        for d in Api::<Deployment>::namespaced(client.clone(), &ns).list(&ListParams::default()).await?.items {
            let scheduling = scheduling_of(WorkloadKind::Deployment, &d);
            let replicas = d.spec.replicas.unwrap_or(1);
            let max_surge = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_surge.as_ref());
            let surge = surge_pods(max_surge, replicas);
            let t = &d.spec.template;
            out.push(from_template(WorkloadKind::Deployment, &ns, d.metadata.name.clone(), replicas, t, surge, scheduling, has_pdb(t)));
        }
        for s in Api::<StatefulSet>::namespaced(client.clone(), &ns).list(&ListParams::default()).await?.items {
            let scheduling = scheduling_of(WorkloadKind::StatefulSet, &s);
            let t = &s.spec.template;
            // A StatefulSet replaces pods one by one: no extra pod at any time.
            out.push(from_template(WorkloadKind::StatefulSet, &ns, s.metadata.name.clone(), s.spec.replicas.unwrap_or(1), t, 0, scheduling, has_pdb(t)));
        }
    }
    Ok(out)
}

/// Total requests of the workloads plus the largest single rolling-update surge (workloads
/// move one after another, so only one surges at a time).
pub fn need_of(workloads: &[Workload]) -> WorkloadNeed {
    let mut need = WorkloadNeed { workloads: workloads.len() as u32, ..Default::default() };
    let (mut surge_cpu, mut surge_mem) = (0.0f64, 0.0f64);
    for w in workloads {
        let r = w.replicas.max(0) as f64;
        need.pods += w.replicas.max(0) as u32;
        need.cpu += r * w.pod_cpu;
        need.memory_gib += r * w.pod_memory / GIB;
        surge_cpu = surge_cpu.max(w.surge_pods as f64 * w.pod_cpu);
        surge_mem = surge_mem.max(w.surge_pods as f64 * w.pod_memory / GIB);
    }
    need.surge_cpu = surge_cpu;
    need.surge_memory_gib = surge_mem;
    need
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(replicas: i32, cpu: f64, mem_gib: f64, surge: i32) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: "w".into(),
            replicas,
            pod_cpu: cpu,
            pod_memory: mem_gib * GIB,
            surge_pods: surge,
            has_readiness_probe: true,
            has_pdb: true,
            pod_labels: Default::default(),
            node_selector: Default::default(),
            scheduling: Default::default(),
        }
    }

    #[test]
    fn risks_name_what_breaks_zero_downtime() {
        assert!(w(3, 0.5, 0.5, 1).risks().is_empty());
        let single = w(1, 0.5, 0.5, 1).risks();
        assert!(single[0].starts_with("One replica"), "{single:?}");
        let mut sts = w(1, 0.5, 0.5, 0);
        sts.kind = WorkloadKind::StatefulSet;
        sts.has_readiness_probe = false;
        assert_eq!(sts.risks().len(), 3);
    }

    #[test]
    fn surge_follows_kubernetes_rounding_and_is_at_least_one() {
        assert_eq!(surge_pods(None, 3), 1);
        assert_eq!(surge_pods(None, 10), 3);
        assert_eq!(surge_pods(Some(&IntOrString::String("50%".into())), 3), 2);
        assert_eq!(surge_pods(Some(&IntOrString::Int(0)), 3), 1);
    }

    #[test]
    fn need_adds_requests_and_the_largest_surge() {
        let need = need_of(&[w(3, 0.5, 0.5, 1), w(2, 0.25, 0.25, 1), w(1, 0.25, 0.5, 0)]);
        assert_eq!(need.pods, 6);
        assert!((need.cpu - 2.25).abs() < 1e-9);
        assert!((need.memory_gib - 2.5).abs() < 1e-9);
        assert!((need.surge_cpu - 0.5).abs() < 1e-9);
    }
}
