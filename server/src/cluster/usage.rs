//! A workspace's use of the shared pool (its namespaces' shared-pool ResourceQuotas, and the
//! neighbours it shares the pool's nodes with), and what is requested on a node.

use std::collections::{BTreeMap, BTreeSet};

use app::model::{SharedPoolUsage, UsageBar};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::Client;

use super::labels;
use super::pods::Pods;
use crate::capacity::{self, GIB};

/// Sums of one quota resource across the workspace's namespaces.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    pub used: f64,
    pub hard: f64,
}

/// Adds a ResourceQuota's `status.used`/`status.hard` for `keys` (the first key present wins,
/// so `requests.cpu` is preferred over the older bare `cpu`).
pub fn add_quota(totals: &mut Totals, quota: &ResourceQuota, keys: &[&str]) {
    let Some(status) = &quota.status else { return };
    let pick =
        |m: &Option<BTreeMap<String, Quantity>>| m.as_ref().and_then(|m| keys.iter().find_map(|k| m.get(*k))).and_then(capacity::quantity).unwrap_or(0.0);
    totals.used += pick(&status.used);
    totals.hard += pick(&status.hard);
}

/// The names of the shared pool's nodes.
pub async fn shared_pool_nodes(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    let nodes = Api::<Node>::all(client.clone()).list_metadata(&ListParams::default().labels(&labels::pool_selector(labels::POOL_SHARED))).await?;
    Ok(nodes.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// The workspace of every namespace that has one, from the namespaces' metadata.
pub fn workspaces_of<'a>(namespaces: impl IntoIterator<Item = &'a ObjectMeta>) -> BTreeMap<String, String> {
    namespaces.into_iter().filter_map(|m| Some((m.name.clone()?, m.labels.as_ref()?.get(labels::WORKSPACE)?.clone()))).collect()
}

async fn namespace_workspaces(client: &Client) -> Result<BTreeMap<String, String>, kube::Error> {
    let labelled = Api::<Namespace>::all(client.clone()).list_metadata(&ListParams::default().labels(labels::WORKSPACE)).await?;
    Ok(workspaces_of(labelled.items.iter().map(|n| &n.metadata)))
}

/// The workspaces, other than `ws`, with a pod that holds resources on a node `on_pool` says
/// is the pool's. Only the workspaces' namespaces are looked at, and each only until its first
/// such pod: a cluster's pods are mostly in neither.
pub fn neighbours(pods: &Pods, namespace_workspace: &BTreeMap<String, String>, ws: &str, on_pool: impl Fn(&str) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (ns, w) in namespace_workspace.iter().filter(|(_, w)| w.as_str() != ws) {
        if !found.contains(w) && pods.in_namespace(ns).iter().any(|p| !p.finished && p.node.as_deref().is_some_and(&on_pool)) {
            found.insert(w.clone());
        }
    }
    found
}

/// The workspace's shared-pool quota, the pool's size and its neighbours there, from the
/// cluster's objects (pure): `workspaces` maps namespaces to their workspace, `pool` names the
/// shared pool's nodes and `pods` may be every pod of the cluster.
pub fn pool_usage<'a>(
    workspaces: &BTreeMap<String, String>,
    quotas: impl IntoIterator<Item = &'a ResourceQuota>,
    pool: &BTreeSet<&str>,
    pods: &Pods,
    ws: &str,
) -> SharedPoolUsage {
    let (mut cpu, mut memory, mut count) = (Totals::default(), Totals::default(), Totals::default());
    let in_workspace = |q: &&ResourceQuota| q.metadata.namespace.as_ref().and_then(|ns| workspaces.get(ns)).is_some_and(|w| w == ws);
    for q in quotas.into_iter().filter(in_workspace) {
        add_quota(&mut cpu, q, &["requests.cpu", "cpu"]);
        add_quota(&mut memory, q, &["requests.memory", "memory"]);
        add_quota(&mut count, q, &["pods", "count/pods"]);
    }
    SharedPoolUsage {
        cpu: UsageBar { label: "CPU requests".into(), used: cpu.used, hard: cpu.hard, unit: "vCPU".into() },
        memory: UsageBar { label: "Memory requests".into(), used: memory.used / GIB, hard: memory.hard / GIB, unit: "GiB".into() },
        pods: UsageBar { label: "Pods".into(), used: count.used, hard: count.hard, unit: "pods".into() },
        pool_nodes: pool.len() as u32,
        neighbour_workspaces: neighbours(pods, workspaces, ws, |n| pool.contains(n)).len() as u32,
    }
}

/// [`pool_usage`] read straight from the API server (the engine's record of "before"), given
/// the shared pool's node names (the caller needs them too, and on a platform's pool they are
/// one of the larger LISTs).
pub async fn shared_pool_usage(client: &Client, ws: &str, pool: &BTreeSet<String>) -> Result<SharedPoolUsage, kube::Error> {
    let workspaces = namespace_workspaces(client).await?;
    let own: Vec<_> = workspaces.iter().filter(|(_, w)| w.as_str() == ws).map(|(ns, _)| Api::<ResourceQuota>::namespaced(client.clone(), ns)).collect();
    // Only the other workspaces' pods can make a neighbour: a LIST per such namespace, never
    // one per pool node (2,000 LISTs, minutes, on a platform's pool). A few LISTs at once.
    let others: Vec<_> = workspaces.iter().filter(|(_, w)| w.as_str() != ws).map(|(ns, _)| Api::<Pod>::namespaced(client.clone(), ns)).collect();
    let (quotas, pods) = futures::try_join!(list_all(own), list_all(others))?;
    let pool: BTreeSet<&str> = pool.iter().map(String::as_str).collect();
    Ok(pool_usage(&workspaces, &quotas, &pool, &Pods::of(&pods), ws))
}

/// Every object of the given namespaced APIs, a few LISTs at a time.
async fn list_all<K>(apis: Vec<Api<K>>) -> Result<Vec<K>, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let lists: Vec<_> = futures::stream::iter(apis).map(|api| async move { api.list(&ListParams::default()).await }).buffer_unordered(8).collect().await;
    let mut items = Vec::new();
    for list in lists {
        items.extend(list?.items);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceQuotaStatus;
    use serde_json::json;

    fn quota(used: &[(&str, &str)], hard: &[(&str, &str)]) -> ResourceQuota {
        let m = |p: &[(&str, &str)]| Some(p.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect());
        ResourceQuota { status: Some(ResourceQuotaStatus { used: m(used), hard: m(hard) }), ..Default::default() }
    }

    #[test]
    fn sums_quotas_preferring_requests_keys() {
        let mut t = Totals::default();
        add_quota(&mut t, &quota(&[("requests.cpu", "1500m"), ("cpu", "9")], &[("requests.cpu", "8")]), &["requests.cpu", "cpu"]);
        add_quota(&mut t, &quota(&[("cpu", "500m")], &[("cpu", "2")]), &["requests.cpu", "cpu"]);
        assert_eq!(t, Totals { used: 2.0, hard: 10.0 });
    }

    #[test]
    fn neighbours_are_the_other_workspaces_running_pods_on_the_pool() {
        let pod = |ns: &str, node: &str, phase: &str| -> Pod {
            serde_json::from_value(json!({ "metadata": { "namespace": ns, "name": format!("{ns}-{node}") }, "spec": { "nodeName": node, "containers": [] }, "status": { "phase": phase } }))
                .unwrap()
        };
        let map: BTreeMap<String, String> =
            [("a-1", "a"), ("a-2", "a"), ("b-1", "b"), ("c-1", "c"), ("d-1", "d")].iter().map(|(n, w)| (n.to_string(), w.to_string())).collect();
        let pods = Pods::of(&[
            pod("a-1", "s1", "Running"),
            pod("a-2", "s1", "Running"),
            pod("b-1", "s1", "Pending"),
            pod("c-1", "s1", "Succeeded"),
            pod("d-1", "d1", "Running"),
            pod("kube-system", "s1", "Running"),
        ]);
        assert_eq!(
            neighbours(&pods, &map, "a", |n| n == "s1"),
            BTreeSet::from(["b".to_string()]),
            "c's pod finished; d runs off the pool; kube-system is no workspace"
        );
    }
}
