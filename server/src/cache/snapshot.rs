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
use crate::cluster::workloads::{self, Workload};
use crate::cluster::{self as cluster, labels, usage};
use crate::crd::DedicatedNode;

#[derive(Default, Clone)]
pub struct Snapshot {
    /// Only the namespaces that belong to a workspace, metadata only.
    pub namespaces: Vec<Arc<PartialObjectMeta<Namespace>>>,
    pub nodes: Vec<Arc<Node>>,
    pub pods: Vec<Arc<Pod>>,
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
        let (namespaces, nodes, pods, quotas, deployments, stateful_sets, budgets, dedicated_nodes) = futures::try_join!(
            namespaces,
            list_all::<Node>(client, all()),
            list_all::<Pod>(client, all()),
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

    /// The pods bound to the node `name`.
    pub fn pods_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().map(|p| &**p).filter(move |p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
    }

    pub fn shared_pool_usage(&self, ws: &str) -> SharedPoolUsage {
        let pool: BTreeSet<String> =
            self.nodes.iter().filter(|n| n.labels().get(labels::NODE_POOL).map(String::as_str) == Some(labels::POOL_SHARED)).map(|n| n.name_any()).collect();
        usage::pool_usage(&self.namespace_workspaces(), self.quotas.iter().map(|q| &**q), &pool, self.pods.iter().map(|p| &**p), ws)
    }

    /// What is requested on a node and what it can give (zeros for a node that does not
    /// exist yet).
    pub fn allocation(&self, node: &str) -> (Resources, Resources) {
        match self.node(node) {
            Some(n) => (capacity::requested(self.pods_on(node)), capacity::allocatable(n)),
            None => Default::default(),
        }
    }

    /// [`cluster::hostname`] of the Node `name` (the name itself when there is no such Node).
    pub fn hostname_of(&self, name: &str) -> String {
        self.node(name).map_or_else(|| name.to_string(), cluster::hostname)
    }

    /// The workspace's Deployments and StatefulSets.
    pub fn workloads(&self, ws: &str) -> Vec<Workload> {
        workloads::workloads_in(
            &self.workspace_namespaces(ws),
            self.deployments.iter().map(|d| &**d),
            self.stateful_sets.iter().map(|s| &**s),
            self.budgets.iter().map(|b| &**b),
        )
    }

    /// The pods of a workload, by its whole selector; none when the workload is gone.
    pub fn pods_of(&self, key: &WorkloadKey) -> Vec<&Pod> {
        let named = |m: &kube::core::ObjectMeta| m.namespace.as_deref() == Some(key.namespace.as_str()) && m.name.as_deref() == Some(key.name.as_str());
        let selector = match key.kind {
            WorkloadKind::Deployment => self.deployments.iter().find(|d| named(&d.metadata)).map(|d| &d.spec.selector),
            WorkloadKind::StatefulSet => self.stateful_sets.iter().find(|s| named(&s.metadata)).map(|s| &s.spec.selector),
        };
        let Some(selector) = selector.and_then(workloads::pod_selector) else { return vec![] };
        self.pods
            .iter()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(key.namespace.as_str()) && selector.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
            })
            .map(|p| &**p)
            .collect()
    }

    /// The workspace's dedicated node orders, oldest first. The label is ours to set, the spec
    /// is the truth: never another workspace's node.
    pub fn dedicated_nodes(&self, ws: &str) -> Vec<Arc<DedicatedNode>> {
        let mut list: Vec<_> = self.dedicated_nodes.iter().filter(|dn| dn.spec.workspace == ws).cloned().collect();
        list.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp).then_with(|| a.name_any().cmp(&b.name_any())));
        list
    }
}

