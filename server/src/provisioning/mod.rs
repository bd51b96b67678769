//! Provisioning of dedicated nodes (owned by the provisioning work).
//!
//! A `DedicatedNode` order is walked through its steps (capacity reserved, booting,
//! registering, ready) by a kube-runtime controller; a `NodeProvider` does each step's work
//! (`kwok` today). The server calls `ensure_crds` at start-up, then spawns `run`.

mod controller;
mod crds;
pub mod events;
pub mod kwok;
pub mod provider;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

pub use controller::{run, FINALIZER};
pub use crds::ensure_crds;
pub use events::ProvisioningEvents;
pub use provider::{NodeProvider, NodeRequest, Offering, Progress, ProviderError};

use crate::catalogue::Catalogue;
use crate::crd::{DedicatedNode, ProvisioningError};
use crate::store::Store;

/// Env var: the simulated boot time of a node, in milliseconds.
pub const STEP_DELAY_ENV: &str = "HEXA_PROVISION_STEP_DELAY_MS";
const DEFAULT_STEP_DELAY: Duration = Duration::from_millis(800);
/// Orders carrying this label belong to the controller started with the same scope (tests run
/// their own controller with their own catalogue on a shared cluster); the default controller
/// takes only orders without it.
pub const SCOPE_LABEL: &str = "hexabase.ai/controller-scope";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How long the kwok provider's machines take to "boot".
    pub step_delay: Duration,
    /// `None`: all orders without `SCOPE_LABEL`; `Some(s)`: only orders labelled with `s`.
    pub scope: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self { step_delay: DEFAULT_STEP_DELAY, scope: None }
    }
}

impl Config {
    /// The defaults, with `HEXA_PROVISION_STEP_DELAY_MS` if set (an unreadable value is
    /// reported and ignored rather than stopping the server).
    pub fn from_env() -> Self {
        let mut config = Self::default();
        if let Ok(v) = std::env::var(STEP_DELAY_ENV) {
            match v.trim().parse::<u64>() {
                Ok(ms) => config.step_delay = Duration::from_millis(ms),
                Err(_) => tracing::warn!(value = %v, "{STEP_DELAY_ENV} is not a number of milliseconds; using the default"),
            }
        }
        config
    }

    /// The label selector for this controller's orders.
    pub fn selector(&self) -> String {
        match &self.scope {
            Some(scope) => format!("{SCOPE_LABEL}={scope}"),
            None => format!("!{SCOPE_LABEL}"),
        }
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub catalogue: Arc<Catalogue>,
    pub provider: Arc<dyn NodeProvider>,
    pub events: ProvisioningEvents,
    pub config: Config,
}

impl Context {
    /// A context with the kwok provider.
    pub fn new(client: Client, store: Store, catalogue: Arc<Catalogue>, config: Config) -> Self {
        let provider = kwok::KwokProvider::new(client.clone(), catalogue.clone(), config.step_delay, config.selector());
        Self::with_provider(client, store, catalogue, config, Arc::new(provider))
    }

    pub fn with_provider(client: Client, store: Store, catalogue: Arc<Catalogue>, config: Config, provider: Arc<dyn NodeProvider>) -> Self {
        Self { client, catalogue, provider, events: ProvisioningEvents::new(store), config }
    }

    /// The machine an order asks for, or why the catalogue cannot provide it.
    pub fn request_for(&self, dn: &DedicatedNode) -> std::result::Result<NodeRequest, ProvisioningError> {
        use kube::{Resource, ResourceExt};
        let invalid = |message: String| ProvisioningError { reason: steps::REASON_INVALID_SPEC.into(), message };
        let size = self.catalogue.size(&dn.spec.size).ok_or_else(|| invalid(format!("Size {} is not in the catalogue.", dn.spec.size)))?;
        if self.catalogue.region(&dn.spec.region).is_none() {
            return Err(invalid(format!("Region {} is not in the catalogue.", dn.spec.region)));
        }
        if dn.spec.workspace.is_empty() {
            return Err(invalid("The order names no workspace.".into()));
        }
        Ok(NodeRequest {
            name: dn.name_any(),
            workspace: dn.spec.workspace.clone(),
            region: dn.spec.region.clone(),
            size: size.clone(),
            owner: dn.controller_owner_ref(&()),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("node provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Transition(#[from] steps::InvalidTransition),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("node {0} is still being deleted")]
    NodeStillExists(String),
    #[error("the CRD {0} was not established in time")]
    CrdNotEstablished(String),
    #[error("waiting for a CRD: {0}")]
    Wait(#[from] kube::runtime::wait::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// How soon a failed reconcile runs again: at once for a lost race, later for outages.
    pub fn retry_after(&self) -> Duration {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(kube::Error::Api(e)) | Error::Provider(ProviderError::Kube(kube::Error::Api(e))) if e.code == 409 => Duration::from_millis(200),
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner.retry_after(),
                F::AddFinalizer(kube::Error::Api(e)) | F::RemoveFinalizer(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => Duration::from_millis(200),
                _ => Duration::from_secs(5),
            },
            Error::NodeStillExists(_) => Duration::from_secs(2),
            Error::Store(_) => Duration::from_secs(10),
            Error::Transition(_) => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_controller_takes_unscoped_orders_and_a_scoped_one_only_its_own() {
        assert_eq!(Config::default().selector(), "!hexabase.ai/controller-scope");
        let scoped = Config { scope: Some("t-1".into()), ..Config::default() };
        assert_eq!(scoped.selector(), "hexabase.ai/controller-scope=t-1");
        assert_eq!(Config::default().step_delay, Duration::from_millis(800));
    }

    #[test]
    fn lost_races_retry_at_once_and_outages_later() {
        let conflict = || {
            kube::Error::Api(Box::new(kube::core::Status { code: 409, ..Default::default() }))
        };
        assert_eq!(Error::Kube(conflict()).retry_after(), Duration::from_millis(200));
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(Error::Provider(ProviderError::Kube(conflict())))));
        assert_eq!(wrapped.retry_after(), Duration::from_millis(200));
        assert_eq!(Error::NodeStillExists("n".into()).retry_after(), Duration::from_secs(2));
        assert_eq!(Error::Store(sqlx::Error::PoolTimedOut).retry_after(), Duration::from_secs(10));
    }
}
