//! Zero-downtime migration of workloads onto a dedicated node (owned by the migration work).
//!
//! A `WorkloadMigration` lists Deployments and StatefulSets in phases; a kube-runtime
//! controller moves them one at a time: it records each workload's original scheduling in an
//! annotation, patches the pod template to select the dedicated node and tolerate its taint
//! (with `maxUnavailable: 0`, `maxSurge >= 1`), follows the rollout against a deadline, and
//! restores the original fields exactly when the move fails (use case 5b). Pausing, by the
//! user or by the latency guard (5d), and phased plans (5c) stop it between workloads.
//!
//! The server calls `provisioning::ensure_crds` (which installs this CRD too), then spawns
//! `run`. Files: `patch` (the template changes and their undo), `rollout` (reading a rollout),
//! `steps` (the status as a state machine), `events` (what people are told), `latency` (the
//! guard), `controller` (the loop that does the work).

mod controller;
pub mod events;
pub mod latency;
pub mod patch;
pub mod rollout;
pub mod steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;

pub use controller::{run, FIELD_MANAGER, FINALIZER};
pub use events::MigrationEvents;
pub use latency::{MetricsSource, PrometheusSource};

use crate::crd::{LatencyGuardSpec, WorkloadKind};
use crate::store::Store;

/// Migrations carrying this label belong to the controller started with the same scope (the
/// same label as provisioning's: a test's scope covers both); the default controller takes
/// only migrations without it.
pub use crate::provisioning::SCOPE_LABEL;

/// Env var: Prometheus' base URL for the latency guard; unset, the guard is off.
pub const PROMETHEUS_URL_ENV: &str = "HEXA_PROMETHEUS_URL";
/// While a workload moves, its rollout is read again at least this often.
const DEFAULT_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `None`: all migrations without `SCOPE_LABEL`; `Some(s)`: only those labelled with `s`.
    pub scope: Option<String>,
    /// How often a moving workload is looked at when no watch event comes.
    pub poll: Duration,
    /// Prometheus' base URL: lets a migration's own `latencyGuard.query` be used.
    pub prometheus_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self { scope: None, poll: DEFAULT_POLL, prometheus_url: None }
    }
}

impl Config {
    /// The defaults, with `HEXA_PROMETHEUS_URL` if set.
    pub fn from_env() -> Self {
        let prometheus_url = std::env::var(PROMETHEUS_URL_ENV).ok().filter(|v| !v.trim().is_empty());
        Self { prometheus_url, ..Self::default() }
    }

    /// The label selector for this controller's migrations.
    pub fn selector(&self) -> String {
        match &self.scope {
            Some(scope) => format!("{SCOPE_LABEL}={scope}"),
            None => format!("!{SCOPE_LABEL}"),
        }
    }

    /// The metrics source for the configured Prometheus, if any (what `Context::new` is given
    /// in production).
    pub fn metrics(&self) -> Option<Arc<dyn MetricsSource>> {
        self.prometheus_url.as_deref().map(|url| Arc::new(PrometheusSource::new(url, None)) as Arc<dyn MetricsSource>)
    }
}

/// A workload the controller is following: namespace, kind, name.
pub type WorkloadKey = (String, WorkloadKind, String);

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub events: MigrationEvents,
    pub config: Config,
    /// The latency guard's source; `None` turns the guard off.
    pub metrics: Option<Arc<dyn MetricsSource>>,
    /// The lowest available-replica count the workload watch saw for each moving workload,
    /// since the reconcile last took it: every watch event counts, also those that arrive
    /// while a reconcile runs.
    pub(crate) lowest_available: Arc<Mutex<HashMap<WorkloadKey, i32>>>,
}

impl Context {
    pub fn new(client: Client, store: Store, config: Config, metrics: Option<Arc<dyn MetricsSource>>) -> Self {
        Self { client, events: MigrationEvents::new(store), config, metrics, lowest_available: Arc::default() }
    }

    /// The source for one migration's guard: its own query against the configured
    /// Prometheus, else the context's source.
    pub fn metrics_for(&self, guard: &LatencyGuardSpec) -> Option<Arc<dyn MetricsSource>> {
        match (&guard.query, &self.config.prometheus_url) {
            (Some(query), Some(url)) => Some(Arc::new(PrometheusSource::new(url, Some(query)))),
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

impl Error {
    /// How soon a failed reconcile runs again: at once for a lost race, later for outages.
    pub fn retry_after(&self) -> Duration {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => Duration::from_millis(200),
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner.retry_after(),
                F::AddFinalizer(kube::Error::Api(e)) | F::RemoveFinalizer(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => Duration::from_millis(200),
                _ => Duration::from_secs(5),
            },
            Error::Store(_) => Duration::from_secs(10),
            Error::Transition(_) | Error::NoNamespace | Error::Json(_) => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_controller_takes_unscoped_migrations_and_a_scoped_one_only_its_own() {
        assert_eq!(Config::default().selector(), "!hexabase.ai/controller-scope");
        let scoped = Config { scope: Some("t-1".into()), ..Config::default() };
        assert_eq!(scoped.selector(), "hexabase.ai/controller-scope=t-1");
        assert!(Config::default().metrics().is_none(), "no Prometheus, no guard");
    }

    #[test]
    fn the_watch_keeps_the_lowest_count_until_taken() {
        let map = Mutex::new(HashMap::new());
        let key: WorkloadKey = ("ns".into(), WorkloadKind::Deployment, "web".into());
        for n in [3, 4, 3, 2, 3] {
            record_available(&map, key.clone(), n);
        }
        assert_eq!(map.lock().unwrap().get(&key), Some(&2));
    }

    #[test]
    fn lost_races_retry_at_once_and_outages_later() {
        let conflict = || kube::Error::Api(Box::new(kube::core::Status { code: 409, ..Default::default() }));
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(Error::Kube(conflict()))));
        assert_eq!(wrapped.retry_after(), Duration::from_millis(200));
        assert_eq!(Error::Kube(conflict()).retry_after(), Duration::from_millis(200));
        assert_eq!(Error::Store(sqlx::Error::PoolTimedOut).retry_after(), Duration::from_secs(10));
    }
}
