//! Provisioning of dedicated nodes.
//!
//! A `DedicatedNode` order is walked through its steps (capacity reserved, booting,
//! registering, ready) by a kube-runtime controller; a `NodeProvider` does each step's work
//! (`kwok` today). The server installs the platform (`engine::install`), then spawns `run`.

mod controller;
pub mod events;
pub mod kwok;
pub mod provider;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

pub use controller::{run, FINALIZER};
pub use events::ProvisioningEvents;
pub use provider::{NodeProvider, NodeRequest, Offering, Progress, ProviderError};

use crate::catalogue::Catalogue;
use crate::crd::{DedicatedNode, ProvisioningError};
use crate::engine::retry::{self, Retry};
use crate::engine::Scope;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How long the kwok provider's machines take to "boot" (`--provision-step-delay-ms`).
    pub step_delay: Duration,
    pub scope: Scope,
}

impl Default for Config {
    fn default() -> Self {
        Self { step_delay: Duration::from_millis(800), scope: Scope::default() }
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
        let provider = kwok::KwokProvider::new(client.clone(), catalogue.clone(), config.step_delay, config.scope.selector());
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Retry for Error {
    fn retry_after(&self) -> Duration {
        match self {
            Error::Kube(e) | Error::Provider(ProviderError::Kube(e)) => retry::after_kube(e),
            Error::Provider(_) => retry::OUTAGE,
            Error::Finalizer(f) => retry::after_finalizer(f),
            Error::NodeStillExists(_) => Duration::from_secs(2),
            Error::Store(_) => retry::DATABASE_OUTAGE,
            Error::Transition(_) => retry::DEFECT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_races_retry_at_once_and_outages_later() {
        let conflict = || kube::Error::Api(Box::new(kube::core::Status { code: 409, ..Default::default() }));
        assert_eq!(Error::Kube(conflict()).retry_after(), retry::LOST_RACE);
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(Error::Provider(ProviderError::Kube(conflict())))));
        assert_eq!(wrapped.retry_after(), retry::LOST_RACE);
        assert_eq!(Error::NodeStillExists("n".into()).retry_after(), Duration::from_secs(2));
        assert_eq!(Error::Store(sqlx::Error::PoolTimedOut).retry_after(), retry::DATABASE_OUTAGE);
    }
}
