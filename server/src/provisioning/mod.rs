//! Provisioning of dedicated nodes.
//!
//! A `DedicatedNode` order is walked through its steps (capacity reserved, booting,
//! registering, ready) by a kube-runtime controller; a `NodeProvider` makes the machine and
//! says how far it has come: `karpenter` (a NodeClaim per order, launched by Karpenter) or
//! `kwok` (Node objects KWOK keeps Ready). The server installs the platform
//! (`engine::install`), then spawns `run`.

mod controller;
pub mod events;
pub mod karpenter;
pub mod kube_events;
pub mod kwok;
pub mod provider;
mod quota;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

pub use controller::{run, FINALIZER};
pub use events::ProvisioningEvents;
pub use karpenter::{KarpenterConfig, KarpenterProvider};
pub use provider::{Machine, NodeProvider, NodeRequest, Observation, Offering, Progress, ProviderError, Stage};

use crate::catalogue::Catalogue;
use crate::crd::{DedicatedNode, ProvisioningError};
use crate::engine::kube_events::KubeEvents;
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

/// Which provider makes the machines (`--node-provider`), with its settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ProviderChoice {
    /// Node objects that KWOK keeps Ready (the fast tests; no cloud, no Karpenter).
    #[default]
    Kwok,
    /// A NodeClaim per order, launched by Karpenter (locally its kwok cloud provider).
    Karpenter(KarpenterConfig),
}

/// The provider a choice names, scoped like the controller (`config.scope`).
pub fn provider(choice: &ProviderChoice, client: Client, catalogue: Arc<Catalogue>, config: &Config) -> Arc<dyn NodeProvider> {
    let selector = config.scope.selector();
    match choice {
        ProviderChoice::Kwok => Arc::new(kwok::KwokProvider::new(client, catalogue, config.step_delay, selector)),
        ProviderChoice::Karpenter(k) => Arc::new(KarpenterProvider::new(client, catalogue, selector, k.clone())),
    }
}

/// Checked at start-up: the catalogue maps what the chosen provider needs (Karpenter: an
/// instance type for every size).
pub fn check_catalogue(choice: &ProviderChoice, catalogue: &Catalogue) -> std::result::Result<(), crate::catalogue::CatalogueError> {
    match choice {
        ProviderChoice::Kwok => Ok(()),
        ProviderChoice::Karpenter(_) => catalogue.require_instance_types(karpenter::PROVIDER),
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub catalogue: Arc<Catalogue>,
    pub provider: Arc<dyn NodeProvider>,
    pub events: ProvisioningEvents,
    /// Kubernetes Events on the orders (what `kubectl describe` and the node page show).
    pub kube_events: KubeEvents,
    pub config: Config,
}

impl Context {
    /// A context with the kwok provider.
    pub fn new(client: Client, store: Store, catalogue: Arc<Catalogue>, config: Config) -> Self {
        Self::for_choice(&ProviderChoice::Kwok, client, store, catalogue, config)
    }

    /// A context with the provider `choice` names.
    pub fn for_choice(choice: &ProviderChoice, client: Client, store: Store, catalogue: Arc<Catalogue>, config: Config) -> Self {
        let provider = provider(choice, client.clone(), catalogue.clone(), &config);
        Self::with_provider(client, store, catalogue, config, provider)
    }

    pub fn with_provider(client: Client, store: Store, catalogue: Arc<Catalogue>, config: Config, provider: Arc<dyn NodeProvider>) -> Self {
        Self {
            kube_events: KubeEvents::new(client.clone(), kube_events::REPORTER),
            client,
            catalogue,
            provider,
            events: ProvisioningEvents::new(store),
            config,
        }
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
    #[error("the machine of {0} is still being deleted")]
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
