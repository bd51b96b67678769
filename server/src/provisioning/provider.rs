//! The seam between the provisioning controller and whatever makes machines: `kwok` (Node
//! objects that KWOK keeps Ready) and `karpenter` (one NodeClaim per order, launched by the
//! real Karpenter controller). The controller owns the steps, their order and the status; a
//! provider holds capacity, makes progress towards a Ready machine when asked, and says how far
//! the machine has come. Every call must be safe to repeat: a restarted controller asks again.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ApiResource;
use time::OffsetDateTime;

use crate::catalogue::Size;
use crate::cluster::labels;
use crate::crd::StepName;

/// Whether a machine (a Node, a NodeClaim) was made for the order `order`: it carries the
/// order's label. Release deletes only such objects, so an order named like a Node it did not
/// make (a shared-pool Node, another system's NodeClaim) never takes that Node down.
pub fn made_for(object: &impl kube::ResourceExt, order: &str) -> bool {
    object.labels().get(labels::ORDER).is_some_and(|o| o == order)
}

/// A delete of exactly the object that was judged: if it was replaced meanwhile (same name,
/// new uid), the API server refuses instead of deleting the newcomer.
pub fn delete_exactly(object: &impl kube::ResourceExt) -> kube::api::DeleteParams {
    kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: object.uid(), resource_version: None }),
        ..kube::api::DeleteParams::background()
    }
}

/// One machine the controller wants: everything a provider needs, resolved from the
/// `DedicatedNode` and the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRequest {
    /// The `DedicatedNode`'s name. What a provider creates for the order carries it (its name,
    /// or the `hexabase.ai/dedicated-node` label), so asking again never makes a second machine.
    pub name: String,
    pub workspace: String,
    pub region: String,
    pub size: Size,
    /// Set on what the provider creates, so Kubernetes garbage-collects it with the order.
    pub owner: Option<OwnerReference>,
}

/// Something that either finished or needs another look later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Done,
    InProgress { retry_after: Duration },
}

/// How far a machine has come; each stage implies the ones before. They are Karpenter's
/// NodeClaim conditions in Karpenter's own order, and each ends one provisioning step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Asked for; nothing launched yet.
    Requested,
    /// The cloud handed out the machine, so the capacity is really held (`Launched`).
    /// Ends "Capacity reserved".
    Launched,
    /// The machine booted and its kubelet registered a Node (`Registered`). Ends "Booting".
    Registered,
    /// The Node carries the order's labels and taint and reports its resources
    /// (`Initialized`). Ends "Registering with the cluster"; the Node's name is known from here.
    Initialized,
    /// The Node is Ready (`Ready`). Ends "Ready".
    Ready,
}

impl Stage {
    /// The stage that ends a step.
    pub fn ending(step: StepName) -> Stage {
        match step {
            StepName::CapacityReserved => Stage::Launched,
            StepName::Booting => Stage::Registered,
            StepName::Registering => Stage::Initialized,
            StepName::Ready => Stage::Ready,
        }
    }
}

/// The order's machine as the provider sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    /// Nothing exists for the order: never made, refused, or gone.
    Absent,
    /// Being torn down (by someone, or by its provider): not usable any more.
    Terminating,
    /// Exists, this far along; `node` is the Node's name, known from `Initialized` on.
    Up { stage: Stage, node: Option<String> },
}

/// What a provider reports about an order's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub machine: Machine,
    /// What the provider is waiting for, in its own words (shown on the running step, and the
    /// user's explanation when a Ready order's machine is lost).
    pub note: Option<String>,
    /// Look again this soon if no watch event comes first.
    pub retry_after: Option<Duration>,
}

impl Observation {
    pub fn new(machine: Machine) -> Self {
        Self { machine, note: None, retry_after: None }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The stage reached and the Node's name; a machine past `Initialized` without a Node name
    /// counts as `Registered` (the name is what the rest of the platform needs).
    pub fn reached(&self) -> (Option<Stage>, Option<&str>) {
        match &self.machine {
            Machine::Up { stage, node: Some(node) } => (Some(*stage), Some(node.as_str())),
            Machine::Up { stage, node: None } => (Some((*stage).min(Stage::Registered)), None),
            Machine::Absent | Machine::Terminating => (None, None),
        }
    }
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
    /// The region has no room for the size: the platform's count, or the cloud refused the
    /// launch. Nothing is left running for the order.
    #[error("no capacity left for {size} in {region}")]
    InsufficientCapacity { region: String, size: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The machine's name is taken by something this platform did not create for this order.
    #[error("the name {0} is already used by a machine this order did not make")]
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
    /// A short name for logs and the catalogue's per-provider mappings ("kwok", "karpenter").
    fn name(&self) -> &'static str;

    /// The kind of object the provider makes for an order, with the order as its controller
    /// owner and the label `hexabase.ai/node-pool=dedicated`: the controller watches it, so a
    /// change (a condition, a deletion) wakes the order at once.
    fn machine_kind(&self) -> ApiResource;

    /// How long a step may run before the order fails naming it; `None`: no limit.
    fn step_timeout(&self, _step: StepName) -> Option<Duration> {
        None
    }

    /// Holds one of the region's slots for the size (the catalogue's count) before anything is
    /// created. Contract: idempotent per `req.name` (asking again for a request that holds room
    /// succeeds and takes no second slot); two concurrent calls for different requests never
    /// both take the last slot; on `InsufficientCapacity` nothing is held or created.
    async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError>;

    /// Makes progress towards a Ready machine and says where it stands. Contract: creates what
    /// is missing and never a second machine for the same order; a machine left by an earlier
    /// attempt for another size or region is torn down first (`Terminating`); fails with
    /// `InsufficientCapacity` when the cloud refused the launch (nothing is left running).
    /// `since` is when this attempt began (kept in the status), so a restarted controller
    /// waits for the same boot instead of starting another.
    async fn ensure(&self, req: &NodeRequest, since: OffsetDateTime) -> Result<Observation, ProviderError>;

    /// Where the order's machine stands, creating nothing (the health check of a Ready order).
    /// May tidy up what the provider left behind for the order (Karpenter: stray Nodes).
    async fn observe(&self, req: &NodeRequest) -> Result<Observation, ProviderError>;

    /// Room left now for every size in every region the provider knows; used to suggest
    /// alternatives after an `InsufficientCapacity` error.
    async fn offerings(&self) -> Result<Vec<Offering>, ProviderError>;

    /// Deletes the order's machine and its Node and frees its slot. Contract: idempotent;
    /// `Done` once nothing is left (also when nothing ever existed).
    async fn release(&self, name: &str) -> Result<Progress, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_ends_at_its_own_stage_in_order() {
        let stages: Vec<Stage> = StepName::ALL.iter().map(|&s| Stage::ending(s)).collect();
        assert_eq!(stages, vec![Stage::Launched, Stage::Registered, Stage::Initialized, Stage::Ready]);
        assert!(stages.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_machine_counts_as_initialized_only_with_a_node_name() {
        let up = |stage, node: Option<&str>| Observation::new(Machine::Up { stage, node: node.map(String::from) });
        assert_eq!(up(Stage::Ready, Some("n")).reached(), (Some(Stage::Ready), Some("n")));
        assert_eq!(up(Stage::Ready, None).reached(), (Some(Stage::Registered), None));
        assert_eq!(up(Stage::Launched, None).reached(), (Some(Stage::Launched), None));
        assert_eq!(Observation::new(Machine::Terminating).reached(), (None, None));
    }
}
