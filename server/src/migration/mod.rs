//! Zero-downtime migration of workloads onto a dedicated node.
//!
//! A `WorkloadMigration` lists Deployments and StatefulSets in phases; a kube-runtime
//! controller moves them one at a time: it records each workload's original scheduling in an
//! annotation, patches the pod template to select the dedicated node and tolerate its taint
//! (with `maxUnavailable: 0`, `maxSurge >= 1`), follows the rollout against a deadline, and
//! restores the original fields exactly when the move fails (use case 5b). Pausing, by the
//! user or by the latency guard (5d), and phased plans (5c) stop it between workloads.
//!
//! Files: `patch` (the template changes and their undo), `rollout` (reading a rollout),
//! `steps` (the status as a state machine), `troubleshooting` (what a failure tells the user),
//! `events` (notifications), `kube_events` (the Kubernetes Events a status change owes),
//! `latency` (the guard), `controller` (the loop that does the work).

mod controller;
pub mod events;
pub mod kube_events;
pub mod latency;
pub mod patch;
pub mod rollout;
pub mod steps;
pub mod troubleshooting;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::WorkloadKey;
use kube::Client;

pub use controller::{run, FIELD_MANAGER, FINALIZER};
pub use events::MigrationEvents;
pub use latency::{MetricsSource, PrometheusSource};

use crate::cache::ClusterCache;
use crate::crd::LatencyGuardSpec;
use crate::engine::kube_events::KubeEvents;
use crate::engine::retry::{self, Retry};
use crate::engine::Scope;
use crate::store::Store;

/// While a workload moves, its rollout is read again at least this often even when no watch
/// event comes: the engine is driven by the events of the moved workloads and their pods (and
/// by the moments no event marks, `rollout::next_check`); this only bounds what a missed
/// event costs.
const DEFAULT_POLL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub scope: Scope,
    /// How often a moving workload is looked at at least, when no watch event comes.
    pub poll: Duration,
    /// Prometheus' base URL: lets a migration's own `latencyGuard.metric` be used.
    pub prometheus_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self { scope: Scope::default(), poll: DEFAULT_POLL, prometheus_url: None }
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub events: MigrationEvents,
    /// Kubernetes Events on the migrations (what `kubectl describe` shows).
    pub kube_events: KubeEvents,
    pub config: Config,
    /// The latency guard's source; `None` turns the guard off.
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// The lowest available-replica count the workload watch saw for each moving workload,
    /// since the reconcile last took it: every watch event counts, also those that arrive
    /// while a reconcile runs.
    pub(crate) lowest_available: Arc<Mutex<HashMap<WorkloadKey, i32>>>,
    /// The server's watch caches, when the engine runs beside the dashboard: the report's
    /// "before" is read there instead of LISTing every other workspace's pods (20,000 on a
    /// platform's cluster: a second and more before anything could move).
    pub(crate) cache: Option<Arc<ClusterCache>>,
}

impl Context {
    pub fn new(client: Client, store: Store, config: Config, metrics: Option<Arc<dyn MetricsSource>>) -> Self {
        Self {
            kube_events: KubeEvents::new(client.clone(), kube_events::REPORTER),
            client,
            events: MigrationEvents::new(store),
            config,
            metrics,
            lowest_available: Arc::default(),
            cache: None,
        }
    }

    /// Reads what the watch caches hold from them (see `cache`).
    pub fn with_cache(mut self, cache: Option<Arc<ClusterCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// The source for one migration's guard: its own metric against the configured
    /// Prometheus, else the context's source.
    pub fn metrics_for(&self, guard: &LatencyGuardSpec) -> Option<Arc<dyn MetricsSource>> {
        match (guard.metric.as_deref().and_then(latency::query_template_for), &self.config.prometheus_url) {
            (Some(template), Some(url)) => Some(Arc::new(PrometheusSource::new(url, Some(&template)))),
            _ => self.metrics.clone(),
        }
    }

    /// Takes (and forgets) the lowest count seen for a workload since the last call.
    pub(crate) fn take_lowest_available(&self, key: &WorkloadKey) -> Option<i32> {
        self.lowest_available.lock().ok().and_then(|mut m| m.remove(key))
    }
}

/// Records a watched count (called from the workload watch).
pub(crate) fn record_available(map: &Mutex<HashMap<WorkloadKey, i32>>, key: WorkloadKey, available: i32) {
    if let Ok(mut m) = map.lock() {
        m.entry(key).and_modify(|v| *v = (*v).min(available)).or_insert(available);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Transition(#[from] steps::InvalidTransition),
    #[error("the migration has no namespace")]
    NoNamespace,
    #[error("encoding a patch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Retry for Error {
    fn retry_after(&self) -> Duration {
        match self {
            Error::Kube(e) => retry::after_kube(e),
            Error::Finalizer(f) => retry::after_finalizer(f),
            Error::Store(_) => retry::DATABASE_OUTAGE,
            Error::Transition(_) | Error::NoNamespace | Error::Json(_) => retry::DEFECT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::WorkloadKind;

    #[test]
    fn the_watch_keeps_the_lowest_count_until_taken() {
        let map = Mutex::new(HashMap::new());
        let key = WorkloadKey::new("ns", WorkloadKind::Deployment, "web");
        for n in [3, 4, 3, 2, 3] {
            record_available(&map, key.clone(), n);
        }
        assert_eq!(map.lock().unwrap().get(&key), Some(&2));
    }

    #[test]
    fn lost_races_retry_at_once_and_outages_later() {
        let conflict = || kube::Error::Api(Box::new(kube::core::Status { code: 409, ..Default::default() }));
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(Error::Kube(conflict()))));
        assert_eq!(wrapped.retry_after(), retry::LOST_RACE);
        assert_eq!(Error::Store(sqlx::Error::PoolTimedOut).retry_after(), retry::DATABASE_OUTAGE);
    }
}
