//! The seam between the provisioning controller and whatever makes machines: `kwok` today,
//! Karpenter NodeClaims or Cluster API Machines later. The controller owns the order of the
//! steps and the status; a provider only does one step's work when asked, and must be safe to
//! ask again (a restarted controller repeats the step it was in).

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use time::OffsetDateTime;

use crate::catalogue::Size;

/// One machine the controller wants: everything a provider needs, resolved from the
/// `DedicatedNode` and the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRequest {
    /// The `DedicatedNode`'s name; the Node gets the same name, so a repeated request can
    /// never create a second machine.
    pub name: String,
    pub workspace: String,
    pub region: String,
    pub size: Size,
    /// Set on what the provider creates, so Kubernetes garbage-collects it with the order.
    pub owner: Option<OwnerReference>,
}

/// A step either finished or needs another look later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Done,
    InProgress { retry_after: Duration },
}

/// Room left for one size in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offering {
    pub region: String,
    pub size: String,
    pub available: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The region has no room for the size; nothing was created.
    #[error("no capacity left for {size} in {region}")]
    InsufficientCapacity { region: String, size: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The machine's name is taken by something this platform did not create for this order.
    #[error("node name {0} is already used by another node")]
    NameTaken(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ProviderError {
    pub fn is_insufficient_capacity(&self) -> bool {
        matches!(self, ProviderError::InsufficientCapacity { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::NotFound(_))
    }

    /// Errors that asking again later may fix (as opposed to a decision such as no capacity).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Kube(_) | ProviderError::NameTaken(_))
    }
}

#[async_trait]
pub trait NodeProvider: Send + Sync {
    /// A short name for logs ("kwok").
    fn name(&self) -> &'static str;

    /// Holds room in `req.region` for one node of `req.size`.
    /// Contract: idempotent per `req.name` (asking again for a request that already holds room
    /// succeeds and takes no second slot); two concurrent calls for different requests never
    /// both take the last slot; on `InsufficientCapacity` nothing is held or created.
    /// (Karpenter: the offering's availability; Cluster API: a quota check.)
    async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError>;

    /// Starts the machine and reports whether it has finished booting.
    /// Contract: idempotent; `since` is when the controller first asked (kept in the status),
    /// so a restarted controller waits for the same boot instead of starting another.
    /// (Karpenter: create the NodeClaim, Done when Launched; kwok: wait the boot delay.)
    async fn launch(&self, req: &NodeRequest, since: OffsetDateTime) -> Result<Progress, ProviderError>;

    /// Makes sure the machine is registered as the Node named `req.name`.
    /// Contract: idempotent; never creates a second Node; fails with `NameTaken` if a Node of
    /// that name exists that was not made for this request.
    /// (Karpenter: wait for the kubelet to register; kwok: create the Node object.)
    async fn register(&self, req: &NodeRequest) -> Result<Progress, ProviderError>;

    /// Room left now for every size in every region the provider knows; used to suggest
    /// alternatives after an `InsufficientCapacity` error.
    async fn offerings(&self) -> Result<Vec<Offering>, ProviderError>;

    /// Deletes the machine and its Node and frees the reservation of the order `name`.
    /// Contract: idempotent; `Done` once nothing is left (also when nothing ever existed).
    async fn release(&self, name: &str) -> Result<Progress, ProviderError>;
}
