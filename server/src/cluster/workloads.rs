//! The workspace's Deployments and StatefulSets and what they request: the input to the
//! wizard's fit check (use case 5c) and to migration planning.

use app::model::WorkloadNeed;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::Client;

use super::labels;
use super::quantity::{bytes, cpu_cores, GIB};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

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

pub async fn workspace_namespaces(client: &Client, ws: &str) -> Result<Vec<String>, kube::Error> {
    let list = Api::<Namespace>::all(client.clone()).list_metadata(&ListParams::default().labels(&labels::workspace_selector(ws))).await?;
    Ok(list.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

pub async fn list_workloads(client: &Client, ws: &str) -> Result<Vec<Workload>, kube::Error> {
    let mut out = Vec::new();
    for ns in workspace_namespaces(client, ws).await? {
        for d in Api::<Deployment>::namespaced(client.clone(), &ns).list(&ListParams::default()).await?.items {
            let spec = d.spec;
            let replicas = spec.replicas.unwrap_or(1);
            let (pod_cpu, pod_memory) = pod_requests(spec.template.spec.as_ref());
            let max_surge = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_surge.as_ref());
            out.push(Workload {
                kind: WorkloadKind::Deployment,
                namespace: ns.clone(),
                name: d.metadata.name.unwrap_or_default(),
                replicas,
                pod_cpu,
                pod_memory,
                surge_pods: surge_pods(max_surge, replicas),
            });
        }
        for s in Api::<StatefulSet>::namespaced(client.clone(), &ns).list(&ListParams::default()).await?.items {
            let spec = s.spec;
            let (pod_cpu, pod_memory) = pod_requests(spec.template.spec.as_ref());
            out.push(Workload {
                kind: WorkloadKind::StatefulSet,
                namespace: ns.clone(),
                name: s.metadata.name.unwrap_or_default(),
                replicas: spec.replicas.unwrap_or(1),
                pod_cpu,
                pod_memory,
                // A StatefulSet replaces pods one by one: no extra pod at any time.
                surge_pods: 0,
            });
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
        Workload { kind: WorkloadKind::Deployment, namespace: "ns".into(), name: "w".into(), replicas, pod_cpu: cpu, pod_memory: mem_gib * GIB, surge_pods: surge }
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
