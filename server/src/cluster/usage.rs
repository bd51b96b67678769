//! A workspace's use of the shared pool, from its namespaces' ResourceQuotas, and its
//! dedicated nodes as Node objects.

use std::collections::{BTreeMap, BTreeSet};

use app::model::{SharedPoolUsage, UsageBar};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};
use kube::Client;

use super::labels;
use super::quantity::{bytes, cpu_cores, GIB};

/// Sums of one quota resource across the workspace's namespaces.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    pub used: f64,
    pub hard: f64,
}

/// Adds a ResourceQuota's `status.used`/`status.hard` for `keys` (the first key present wins,
/// so `requests.cpu` is preferred over the older bare `cpu`).
pub fn add_quota(totals: &mut Totals, quota: &ResourceQuota, keys: &[&str], parse: fn(&str) -> Option<f64>) {
    let Some(status) = &quota.status else { return };
    let pick = |m: &Option<BTreeMap<String, Quantity>>| {
        m.as_ref().and_then(|m| keys.iter().find_map(|k| m.get(*k))).and_then(|q| parse(&q.0)).unwrap_or(0.0)
    };
    totals.used += pick(&status.used);
    totals.hard += pick(&status.hard);
}

pub async fn shared_pool_usage(client: &Client, ws: &str) -> Result<SharedPoolUsage, kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = namespaces.list(&ListParams::default().labels(labels::WORKSPACE)).await?;
    let mut ours = Vec::new();
    let mut others = BTreeSet::new();
    for ns in labelled.items {
        let owner = ns.metadata.labels.as_ref().and_then(|l| l.get(labels::WORKSPACE)).cloned().unwrap_or_default();
        let name = ns.metadata.name.unwrap_or_default();
        if owner == ws {
            ours.push(name);
        } else {
            others.insert(owner);
        }
    }

    let (mut cpu, mut memory, mut pods) = (Totals::default(), Totals::default(), Totals::default());
    for ns in &ours {
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
        for q in quotas.list(&ListParams::default()).await?.items {
            add_quota(&mut cpu, &q, &["requests.cpu", "cpu"], cpu_cores);
            add_quota(&mut memory, &q, &["requests.memory", "memory"], bytes);
            add_quota(&mut pods, &q, &["pods", "count/pods"], bytes);
        }
    }

    let nodes: Api<Node> = Api::all(client.clone());
    let pool = nodes
        .list_metadata(&ListParams::default().labels(&format!("{}={}", labels::NODE_POOL, labels::POOL_SHARED)))
        .await?;

    Ok(SharedPoolUsage {
        cpu: UsageBar { label: "CPU requests".into(), used: cpu.used, hard: cpu.hard, unit: "vCPU".into() },
        memory: UsageBar { label: "Memory requests".into(), used: memory.used / GIB, hard: memory.hard / GIB, unit: "GiB".into() },
        pods: UsageBar { label: "Pods".into(), used: pods.used, hard: pods.hard, unit: "pods".into() },
        pool_nodes: pool.items.len() as u32,
        neighbour_workspaces: others.len() as u32,
    })
}

/// What is requested on a node and what it can give: (requested, allocatable) for CPU cores
/// and memory bytes. A node that does not exist (yet) gives zeros.
pub async fn node_allocation(client: &Client, node: &str) -> Result<(Totals, Totals), kube::Error> {
    let Some(n) = Api::<Node>::all(client.clone()).get_opt(node).await? else {
        return Ok((Totals::default(), Totals::default()));
    };
    let allocatable = n.status.and_then(|s| s.allocatable).unwrap_or_default();
    let pods = Api::<Pod>::all(client.clone()).list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await?;
    let (mut cpu, mut mem) = (Totals::default(), Totals::default());
    for pod in pods.items {
        let done = pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
        if !done {
            let (c, m) = super::workloads::pod_requests(pod.spec.as_ref());
            cpu.used += c;
            mem.used += m;
        }
    }
    cpu.hard = allocatable.get("cpu").and_then(|q| cpu_cores(&q.0)).unwrap_or(0.0);
    mem.hard = allocatable.get("memory").and_then(|q| bytes(&q.0)).unwrap_or(0.0);
    Ok((cpu, mem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceQuotaStatus;

    fn quota(used: &[(&str, &str)], hard: &[(&str, &str)]) -> ResourceQuota {
        let m = |p: &[(&str, &str)]| Some(p.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect());
        ResourceQuota { status: Some(ResourceQuotaStatus { used: m(used), hard: m(hard) }), ..Default::default() }
    }

    #[test]
    fn sums_quotas_preferring_requests_keys() {
        let mut t = Totals::default();
        add_quota(&mut t, &quota(&[("requests.cpu", "1500m"), ("cpu", "9")], &[("requests.cpu", "8")]), &["requests.cpu", "cpu"], cpu_cores);
        add_quota(&mut t, &quota(&[("cpu", "500m")], &[("cpu", "2")]), &["requests.cpu", "cpu"], cpu_cores);
        assert_eq!(t, Totals { used: 2.0, hard: 10.0 });
    }
}
