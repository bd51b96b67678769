//! The cluster at one moment, as the dashboard reads it, and every read of it (pure). A
//! snapshot comes from the watch caches (`ClusterCache::snapshot`, microseconds) or straight
//! from the API server (`Snapshot::list`, one LIST per kind: the direct path the benchmark and
//! `tests/cache.rs` compare against).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use app::model::{SharedPoolUsage, WorkloadKey, WorkloadKind};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::core::{PartialObjectMeta, SelectorExt};
use kube::{Client, ResourceExt};

use crate::capacity::{self, Resources};
use crate::cluster::pods::{PodRecord, Pods};
use crate::cluster::workloads::{self, Workload};
use crate::cluster::{self as cluster, labels, usage};
use crate::crd::DedicatedNode;

#[derive(Default, Clone)]
pub struct Snapshot {
    /// Only the namespaces that belong to a workspace, metadata only.
    pub namespaces: Vec<Arc<PartialObjectMeta<Namespace>>>,
    pub nodes: Vec<Arc<Node>>,
    pub pods: Pods,
    pub quotas: Vec<Arc<ResourceQuota>>,
    pub deployments: Vec<Arc<Deployment>>,
    pub stateful_sets: Vec<Arc<StatefulSet>>,
    pub budgets: Vec<Arc<PodDisruptionBudget>>,
    pub dedicated_nodes: Vec<Arc<DedicatedNode>>,
}

async fn list_all<K>(client: &Client, params: ListParams) -> Result<Vec<Arc<K>>, kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(Api::<K>::all(client.clone()).list(&params).await?.items.into_iter().map(Arc::new).collect())
}

impl Snapshot {
    /// Every kind read straight from the API server, at once.
    pub async fn list(client: &Client) -> Result<Self, kube::Error> {
        let all = ListParams::default;
        let namespaces = async {
            let list = Api::<Namespace>::all(client.clone()).list_metadata(&ListParams::default().labels(labels::WORKSPACE)).await?;
            Ok::<_, kube::Error>(list.items.into_iter().map(Arc::new).collect())
        };
        let pods = async { Ok(Pods::of(&Api::<Pod>::all(client.clone()).list(&all()).await?.items)) };
        let (namespaces, nodes, pods, quotas, deployments, stateful_sets, budgets, dedicated_nodes) = futures::try_join!(
            namespaces,
            list_all::<Node>(client, all()),
            pods,
            list_all::<ResourceQuota>(client, all()),
            list_all::<Deployment>(client, all()),
            list_all::<StatefulSet>(client, all()),
            list_all::<PodDisruptionBudget>(client, all()),
            list_all::<DedicatedNode>(client, all()),
        )?;
        Ok(Self { namespaces, nodes, pods, quotas, deployments, stateful_sets, budgets, dedicated_nodes })
    }

    /// Namespace → workspace, for every workspace namespace.
    pub fn namespace_workspaces(&self) -> BTreeMap<String, String> {
        usage::workspaces_of(self.namespaces.iter().map(|n| &n.metadata))
    }

    pub fn workspace_namespaces(&self, ws: &str) -> BTreeSet<String> {
        self.namespace_workspaces().into_iter().filter(|(_, w)| w == ws).map(|(ns, _)| ns).collect()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(name)).map(|n| &**n)
    }

    pub fn shared_pool_usage(&self, ws: &str) -> SharedPoolUsage {
        usage::pool_usage(&self.namespace_workspaces(), self.quotas.iter().map(|q| &**q), &self.shared_pool_nodes(), &self.pods, ws)
    }

    /// The names of the shared pool's nodes.
    pub fn shared_pool_nodes(&self) -> BTreeSet<&str> {
        self.nodes
            .iter()
            .filter(|n| n.labels().get(labels::NODE_POOL).map(String::as_str) == Some(labels::POOL_SHARED))
            .filter_map(|n| n.metadata.name.as_deref())
            .collect()
    }

    /// What is requested on a node and what it can give (zeros for a node that does not
    /// exist yet).
    pub fn allocation(&self, node: &str) -> (Resources, Resources) {
        match self.node(node) {
            Some(n) => (self.pods.requested_on(node), capacity::allocatable(n)),
            None => Default::default(),
        }
    }

    /// [`cluster::hostname`] of the Node `name` (the name itself when there is no such Node).
    pub fn hostname_of(&self, name: &str) -> String {
        self.node(name).map_or_else(|| name.to_string(), cluster::hostname)
    }

    /// The workspace's Deployments and StatefulSets.
    pub fn workloads(&self, ws: &str) -> Vec<Workload> {
        self.workloads_where(ws, |_| true)
    }

    /// The workspace's workloads that `keep` keeps by key (the others are not read further).
    pub fn workloads_where(&self, ws: &str, keep: impl Fn(&WorkloadKey) -> bool) -> Vec<Workload> {
        workloads::workloads_in(
            &self.workspace_namespaces(ws),
            self.deployments.iter().map(|d| &**d),
            self.stateful_sets.iter().map(|s| &**s),
            self.budgets.iter().map(|b| &**b),
            keep,
        )
    }

    /// The keys of the workspace's workloads, in the order the lists show them.
    pub fn workload_keys(&self, ws: &str) -> Vec<WorkloadKey> {
        workloads::workload_keys_in(&self.workspace_namespaces(ws), self.deployments.iter().map(|d| &**d), self.stateful_sets.iter().map(|s| &**s))
    }

    /// The pods of a workload, by its whole selector; none when the workload is gone.
    pub fn pods_of(&self, key: &WorkloadKey) -> Vec<&PodRecord> {
        let Some(selector) = self.selector_of(key) else { return vec![] };
        self.pods.in_namespace(&key.namespace).iter().filter(|p| selector.matches(&p.labels)).map(|p| &**p).collect()
    }

    /// The pod selector of a workload; none when it is gone or selects nothing.
    fn selector_of(&self, key: &WorkloadKey) -> Option<kube::core::Selector> {
        let named = |m: &kube::core::ObjectMeta| m.namespace.as_deref() == Some(key.namespace.as_str()) && m.name.as_deref() == Some(key.name.as_str());
        let selector = match key.kind {
            WorkloadKind::Deployment => self.deployments.iter().find(|d| named(&d.metadata)).map(|d| &d.spec.selector),
            WorkloadKind::StatefulSet => self.stateful_sets.iter().find(|s| named(&s.metadata)).map(|s| &s.spec.selector),
        };
        selector.and_then(workloads::pod_selector)
    }

    /// The pods on `node`, by which of the workspace's workloads selects them (in the order
    /// the lists show workloads), and the pods none of them selects.
    pub fn pods_on_node_by_workload(&self, ws: &str, node: &str) -> (Vec<(WorkloadKey, Vec<&PodRecord>)>, Vec<&PodRecord>) {
        let on_node = self.pods.on_node(node);
        let namespaces: BTreeSet<&str> = on_node.iter().map(|p| &*p.namespace).collect();
        let selectors: Vec<(WorkloadKey, kube::core::Selector)> = self
            .workload_keys(ws)
            .into_iter()
            .filter(|k| namespaces.contains(k.namespace.as_str()))
            .filter_map(|k| self.selector_of(&k).map(|selector| (k, selector)))
            .collect();
        let mut groups: Vec<(WorkloadKey, Vec<&PodRecord>)> = vec![];
        let mut others = vec![];
        for pod in on_node.iter().map(|p| &**p) {
            let owner = selectors.iter().find(|(k, sel)| k.namespace == *pod.namespace && sel.matches(&pod.labels)).map(|(k, _)| k);
            match owner {
                Some(key) => match groups.iter_mut().find(|(k, _)| k == key) {
                    Some((_, pods)) => pods.push(pod),
                    None => groups.push((key.clone(), vec![pod])),
                },
                None => others.push(pod),
            }
        }
        groups.sort_by_key(|(k, _)| selectors.iter().position(|(s, _)| s == k));
        (groups, others)
    }

    /// The workspace's dedicated node orders, oldest first. The label is ours to set, the spec
    /// is the truth: never another workspace's node.
    pub fn dedicated_nodes(&self, ws: &str) -> Vec<Arc<DedicatedNode>> {
        let mut list: Vec<_> = self.dedicated_nodes.iter().filter(|dn| dn.spec.workspace == ws).cloned().collect();
        list.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp).then_with(|| a.name_any().cmp(&b.name_any())));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DedicatedNodeSpec;
    use serde_json::json;

    fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<K> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pod(ns: &str, name: &str, node: &str, cpu: &str, app: &str) -> Pod {
        serde_json::from_value(json!({ "metadata": { "namespace": ns, "name": name, "labels": { "app": app } },
                    "spec": { "nodeName": node, "containers": [{ "name": "c", "resources": { "requests": { "cpu": cpu } } }] },
                    "status": { "phase": "Running" } }))
        .unwrap()
    }

    fn snapshot() -> Snapshot {
        let ns = |name: &str, ws: &str| obj::<PartialObjectMeta<Namespace>>(json!({ "metadata": { "name": name, "labels": { labels::WORKSPACE: ws } } }));
        let node = |name: &str, pool: &str, cpu: &str| {
            obj::<Node>(json!({ "metadata": { "name": name, "labels": { labels::NODE_POOL: pool, labels::HOSTNAME: format!("host-{name}") } },
                                "status": { "allocatable": { "cpu": cpu, "memory": "8Gi" } } }))
        };
        let order = |name: &str, ws: &str, created: &str| {
            let mut dn =
                DedicatedNode::new(name, DedicatedNodeSpec { workspace: ws.into(), size: "d2.large".into(), region: "r".into(), requested_by: "a@b".into() });
            dn.metadata.creation_timestamp = Some(serde_json::from_value(json!(created)).unwrap());
            Arc::new(dn)
        };
        Snapshot {
            namespaces: vec![ns("a-prod", "a"), ns("a-jobs", "a"), ns("b-prod", "b")],
            nodes: vec![node("s1", labels::POOL_SHARED, "4"), node("s2", labels::POOL_SHARED, "4"), node("d1", labels::POOL_DEDICATED, "2")],
            pods: Pods::of(&[
                pod("a-prod", "web-1", "s1", "500m", "web"),
                pod("b-prod", "shop-1", "s2", "1", "shop"),
                pod("kube-system", "dns", "s1", "100m", "dns"),
                pod("a-prod", "web-2", "d1", "500m", "web"),
                pod("a-jobs", "batch", "d1", "250m", "batch"),
            ]),
            quotas: vec![
                obj(
                    json!({ "metadata": { "namespace": "a-prod", "name": "q" }, "status": { "hard": { "requests.cpu": "4" }, "used": { "requests.cpu": "500m" } } }),
                ),
                obj(
                    json!({ "metadata": { "namespace": "b-prod", "name": "q" }, "status": { "hard": { "requests.cpu": "9" }, "used": { "requests.cpu": "1" } } }),
                ),
            ],
            deployments: vec![obj(json!({ "metadata": { "namespace": "a-prod", "name": "web" },
                                          "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
                                                    "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "c" }] } } } }))],
            stateful_sets: vec![],
            budgets: vec![],
            dedicated_nodes: vec![
                order("a-2", "a", "2026-01-02T00:00:00Z"),
                order("b-1", "b", "2026-01-01T00:00:00Z"),
                order("a-1", "a", "2026-01-01T00:00:00Z"),
            ],
        }
    }

    #[test]
    fn the_shared_pool_counts_the_workspaces_quota_and_its_neighbours_there() {
        let pool = snapshot().shared_pool_usage("a");
        assert_eq!((pool.cpu.used, pool.cpu.hard), (0.5, 4.0), "only a's namespaces' quotas");
        assert_eq!(pool.pool_nodes, 2);
        assert_eq!(pool.neighbour_workspaces, 1, "b runs on the pool; kube-system is no workspace; d1 is not the pool");
    }

    #[test]
    fn a_node_gives_what_its_pods_request_against_its_allocatable() {
        let s = snapshot();
        let (requested, allocatable) = s.allocation("d1");
        assert_eq!((requested.cpu, allocatable.cpu), (0.75, 2.0));
        assert_eq!(s.allocation("not-yet").1.cpu, 0.0);
        assert_eq!(s.hostname_of("d1"), "host-d1");
        assert_eq!(s.hostname_of("not-yet"), "not-yet");
    }

    #[test]
    fn workloads_orders_and_pods_are_the_workspaces_own() {
        let s = snapshot();
        let names: Vec<String> = s.dedicated_nodes("a").iter().map(|d| d.name_any()).collect();
        assert_eq!(names, ["a-1", "a-2"], "oldest first, never b's");
        let workloads = s.workloads("a");
        assert_eq!(workloads.len(), 1);
        assert!(s.workloads("b").is_empty());
        let pods: Vec<&str> = s.pods_of(&workloads[0].key).iter().map(|p| &*p.name).collect();
        assert_eq!(pods, ["web-1", "web-2"], "by the selector, in its namespace");
        assert_eq!(s.workspace_namespaces("a"), BTreeSet::from(["a-jobs".to_string(), "a-prod".to_string()]));
    }

    #[test]
    fn the_pods_on_a_node_are_grouped_by_the_workload_that_selects_them() {
        let s = snapshot();
        let (groups, others) = s.pods_on_node_by_workload("a", "d1");
        let groups: Vec<(String, Vec<&str>)> = groups.iter().map(|(k, pods)| (k.to_string(), pods.iter().map(|p| &*p.name).collect())).collect();
        assert_eq!(groups, vec![(WorkloadKey::new("a-prod", WorkloadKind::Deployment, "web").to_string(), vec!["web-2"])], "web-1 runs elsewhere");
        assert_eq!(others.iter().map(|p| &*p.name).collect::<Vec<_>>(), ["batch"], "no workload selects it");
        let (groups, others) = s.pods_on_node_by_workload("b", "d1");
        assert!(groups.is_empty() && others.len() == 2, "another workspace's workloads never claim them");
    }
}
