//! The cluster as the dashboard reads it: one watch per kind, each kept in a kube-rs reflector
//! store (pods in an index of small records by node and namespace, `pods`), started with the
//! server. Pages read a [`Snapshot`] of the stores (pure functions
//! over it, no API call); live streams wait on the kinds' change counters, so a thousand open
//! pages share these few watches; writes still go to the API server, and the writer then
//! waits for its write to come back through the watch ([`Reflected::caught_up`]) so the next
//! read sees it. ARCHITECTURE.md, "Watch caches", has the decisions.

pub mod pods;
pub mod reflected;
pub mod slim;
pub mod snapshot;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;

pub use pods::ReflectedPods;
pub use reflected::Reflected;
pub use snapshot::Snapshot;

use crate::cluster::labels;
use crate::crd::{DedicatedNode, WorkloadMigration};

/// Why the cache cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("the cluster has not answered yet (the first list of {0} is still loading)")]
    NotSynced(&'static str),
    #[error("the cluster does not answer: {0}")]
    Unreachable(String),
}

/// The watches' last failure and last success, to tell a cluster that is down from a quiet one.
struct WatchHealth {
    started: Instant,
    /// Milliseconds since `started` of the last event, -1 before any.
    last_ok_ms: AtomicI64,
    last_error: Mutex<Option<(Instant, String)>>,
}

impl reflected::Health for WatchHealth {
    fn watch_failed(&self, kind: &'static str, error: &watcher::Error) {
        tracing::warn!(kind, error = %error, "a watch of the cluster failed; it is retried with backoff");
        *self.last_error.lock().expect("health lock") = Some((Instant::now(), format!("watching {kind}: {error}")));
    }

    fn watch_answered(&self) {
        self.last_ok_ms.store(self.started.elapsed().as_millis() as i64, Ordering::Relaxed);
    }
}

pub struct ClusterCache {
    client: Client,
    pub namespaces: Reflected<PartialObjectMeta<Namespace>>,
    pub nodes: Reflected<Node>,
    pub pods: ReflectedPods,
    pub quotas: Reflected<ResourceQuota>,
    pub deployments: Reflected<Deployment>,
    pub stateful_sets: Reflected<StatefulSet>,
    pub budgets: Reflected<PodDisruptionBudget>,
    pub dedicated_nodes: Reflected<DedicatedNode>,
    pub migrations: Reflected<WorkloadMigration>,
    health: Arc<WatchHealth>,
    /// When the API server last answered a health probe, to ask at most once per interval.
    probed: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

/// A watch of every `K` in the cluster, slimmed to what the dashboard reads, retried with
/// backoff when it breaks.
fn watch_all<K>(client: &Client, config: watcher::Config, slim: fn(&mut K)) -> impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(Api::<K>::all(client.clone()), config).default_backoff().modify(slim)
}

impl ClusterCache {
    /// Starts one watch per kind in the background; reads answer once each has listed.
    pub fn start(client: Client) -> Arc<Self> {
        let health = Arc::new(WatchHealth { started: Instant::now(), last_ok_ms: AtomicI64::new(-1), last_error: Mutex::new(None) });
        let h = || health.clone() as Arc<dyn reflected::Health>;
        let all = watcher::Config::default;
        let mut tasks: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
        macro_rules! reflect {
            ($kind:literal, $events:expr) => {{
                let (reflected, task) = Reflected::start($kind, $events, h());
                tasks.push(Box::pin(task));
                reflected
            }};
        }
        // Namespaces: only the workspaces', and only their metadata (the label is all we read).
        let namespaces = reflect!("namespaces", watch_all(&client, all().labels(labels::WORKSPACE), slim::meta::<PartialObjectMeta<Namespace>>));
        let nodes = reflect!("nodes", watch_all(&client, all(), slim::node));
        // Pods: a record each, indexed by node and namespace (`pods`), never the whole Pod.
        let (pods, task) = ReflectedPods::start(watcher(Api::<Pod>::all(client.clone()), all()).default_backoff(), h());
        tasks.push(Box::pin(task));
        let quotas = reflect!("resourcequotas", watch_all(&client, all(), slim::meta::<ResourceQuota>));
        let deployments = reflect!("deployments", watch_all(&client, all(), slim::deployment));
        let stateful_sets = reflect!("statefulsets", watch_all(&client, all(), slim::stateful_set));
        let budgets = reflect!("poddisruptionbudgets", watch_all(&client, all(), slim::meta::<PodDisruptionBudget>));
        let dedicated_nodes = reflect!("dedicatednodes", watch_all(&client, all(), slim::meta::<DedicatedNode>));
        let migrations = reflect!("workloadmigrations", watch_all(&client, all(), slim::meta::<WorkloadMigration>));
        for task in tasks {
            tokio::spawn(task);
        }
        Arc::new(Self {
            client,
            namespaces,
            nodes,
            pods,
            quotas,
            deployments,
            stateful_sets,
            budgets,
            dedicated_nodes,
            migrations,
            health,
            probed: tokio::sync::Mutex::new(None),
        })
    }

    /// The first kind still waiting for its first list, if any.
    fn unsynced(&self) -> Option<&'static str> {
        [
            ("namespaces", self.namespaces.is_synced()),
            ("nodes", self.nodes.is_synced()),
            ("pods", self.pods.is_synced()),
            ("resourcequotas", self.quotas.is_synced()),
            ("deployments", self.deployments.is_synced()),
            ("statefulsets", self.stateful_sets.is_synced()),
            ("poddisruptionbudgets", self.budgets.is_synced()),
            ("dedicatednodes", self.dedicated_nodes.is_synced()),
            ("workloadmigrations", self.migrations.is_synced()),
        ]
        .into_iter()
        .find_map(|(kind, synced)| (!synced).then_some(kind))
    }

    /// Every kind has listed once: `/readyz` waits for this.
    pub fn is_synced(&self) -> bool {
        self.unsynced().is_none()
    }

    /// Whether the cache can answer for the cluster now: synced, and, when a watch failed
    /// since the last event, the API server answers a probe (a quiet watch after an error looks
    /// the same as a dead one; asked at most every 2 s).
    pub async fn usable(&self) -> Result<(), CacheError> {
        if let Some(kind) = self.unsynced() {
            return Err(CacheError::NotSynced(kind));
        }
        let failed_at = match self.health.last_error.lock().expect("health lock").as_ref() {
            Some((at, _)) => *at,
            None => return Ok(()),
        };
        let last_ok = self.health.last_ok_ms.load(Ordering::Relaxed);
        if last_ok >= 0 && self.health.started + Duration::from_millis(last_ok as u64) > failed_at {
            return Ok(());
        }
        let mut probed = self.probed.lock().await;
        if let Some((at, result)) = probed.as_ref() {
            if at.elapsed() < Duration::from_secs(2) {
                return result.clone().map_err(CacheError::Unreachable);
            }
        }
        let result = match tokio::time::timeout(Duration::from_secs(3), self.client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 3 s".to_string()),
        };
        *probed = Some((Instant::now(), result.clone()));
        result.map_err(CacheError::Unreachable)
    }

    /// The cluster as the caches hold it now.
    pub async fn snapshot(&self) -> Result<Snapshot, CacheError> {
        self.usable().await?;
        Ok(Snapshot {
            namespaces: self.namespaces.state(),
            nodes: self.nodes.state(),
            pods: self.pods.state(),
            quotas: self.quotas.state(),
            deployments: self.deployments.state(),
            stateful_sets: self.stateful_sets.state(),
            budgets: self.budgets.state(),
            dedicated_nodes: self.dedicated_nodes.state(),
        })
    }

    /// The kinds Node Management shows, as one change signal: it moves when any of them does.
    pub fn node_management_changes(&self) -> Vec<tokio::sync::watch::Receiver<u64>> {
        vec![self.dedicated_nodes.changes(), self.nodes.changes(), self.pods.changes(), self.quotas.changes(), self.namespaces.changes()]
    }
}

/// Waits until any of `signals` moves (a change of one of the kinds); false when the cache's
/// tasks are gone.
pub async fn any_change(signals: &mut [tokio::sync::watch::Receiver<u64>]) -> bool {
    if signals.is_empty() {
        return false;
    }
    let changed = futures::future::select_all(signals.iter_mut().map(|s| Box::pin(s.changed()))).await;
    changed.0.is_ok()
}

/// Where the dashboard reads the cluster from: the watch caches (the server's default), or
/// the API server on every read (`--cluster-reads direct`: the path the benchmark compares
/// against, and a way to rule the cache out when something looks wrong).
#[derive(Clone)]
pub enum ClusterReads {
    Cached(Arc<ClusterCache>),
    Direct(Client),
}

impl ClusterReads {
    /// The client writes go through.
    pub fn client(&self) -> &Client {
        match self {
            Self::Cached(cache) => &cache.client,
            Self::Direct(client) => client,
        }
    }

    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        match self {
            Self::Cached(cache) => cache.snapshot().await.map_err(|e| e.to_string()),
            Self::Direct(client) => Snapshot::list(client).await.map_err(crate::cluster::error_text),
        }
    }

    /// The namespaces of workspace `ws`.
    pub async fn workspace_namespaces(&self, ws: &str) -> Result<std::collections::BTreeSet<String>, String> {
        let metas = match self {
            Self::Cached(cache) => {
                cache.usable().await.map_err(|e| e.to_string())?;
                cache.namespaces.state()
            }
            Self::Direct(client) => Api::<Namespace>::all(client.clone())
                .list_metadata(&kube::api::ListParams::default().labels(&labels::workspace_selector(ws)))
                .await
                .map_err(crate::cluster::error_text)?
                .items
                .into_iter()
                .map(Arc::new)
                .collect(),
        };
        Ok(crate::cluster::usage::workspaces_of(metas.iter().map(|m| &m.metadata)).into_iter().filter(|(_, w)| w == ws).map(|(ns, _)| ns).collect())
    }

    /// One order by name. A miss in the cache is read through once: an order created a moment
    /// ago through another replica (or kubectl) is not in this replica's watch yet, and its
    /// page must not answer "not found".
    pub async fn dedicated_node(&self, name: &str) -> Result<Option<Arc<DedicatedNode>>, String> {
        let api = || Api::<DedicatedNode>::all(self.client().clone());
        if let Self::Cached(cache) = self {
            cache.usable().await.map_err(|e| e.to_string())?;
            if let Some(found) = cache.dedicated_nodes.get(name, None) {
                return Ok(Some(found));
            }
        }
        api().get_opt(name).await.map(|o| o.map(Arc::new)).map_err(crate::cluster::error_text)
    }

    /// One migration, read through on a miss like [`Self::dedicated_node`].
    pub async fn migration(&self, namespace: &str, name: &str) -> Result<Option<Arc<WorkloadMigration>>, String> {
        let api = || Api::<WorkloadMigration>::namespaced(self.client().clone(), namespace);
        if let Self::Cached(cache) = self {
            cache.usable().await.map_err(|e| e.to_string())?;
            if let Some(found) = cache.migrations.get(name, Some(namespace)) {
                return Ok(Some(found));
            }
        }
        api().get_opt(name).await.map(|o| o.map(Arc::new)).map_err(crate::cluster::error_text)
    }

    /// After a write of a dedicated node: the next read sees it.
    pub async fn wrote_dedicated_node(&self, written: &DedicatedNode) {
        if let Self::Cached(cache) = self {
            if !cache.dedicated_nodes.caught_up(written).await {
                tracing::warn!(order = ?written.metadata.name, "the watch did not bring a write back in time; the page may show it a moment late");
            }
        }
    }

    /// After a delete of a dedicated node: the next read sees it deleting, or gone.
    pub async fn deleted_dedicated_node(&self, name: &str, answer: &either::Either<DedicatedNode, kube::core::Status>) {
        if let Self::Cached(cache) = self {
            let seen = match answer {
                either::Either::Left(deleting) => cache.dedicated_nodes.caught_up(deleting).await,
                either::Either::Right(_) => cache.dedicated_nodes.gone(name, None).await,
            };
            if !seen {
                tracing::warn!(order = name, "the watch did not bring a delete back in time");
            }
        }
    }

    /// After a write of a migration (created, paused, resumed...): the next read sees it.
    pub async fn wrote_migration(&self, written: &WorkloadMigration) {
        if let Self::Cached(cache) = self {
            if !cache.migrations.caught_up(written).await {
                tracing::warn!(migration = ?written.metadata.name, "the watch did not bring a write back in time");
            }
        }
    }
}
