//! The `karpenter` provider: one standalone NodeClaim per order, named after the order and
//! owned by it, launched by the real Karpenter controller. Locally that is Karpenter's `kwok`
//! cloud provider (hack/karpenter); on AWS or Azure it is the same code with an `EC2NodeClass`
//! or `AKSNodeClass` (README "Node providers").
//!
//! Why a standalone NodeClaim (not a static NodePool per order): no alpha feature gate; its
//! name is ours, so creating it again after a restart finds the same one (never two); a
//! refused launch happens to our own object (an `InsufficientCapacityError` Event names it and
//! Karpenter deletes it), where a NodePool would only retry under new names; and Karpenter never
//! disrupts it (no `karpenter.sh/nodepool` label), so replacing a lost node is ours to do and
//! to tell the user about.
//!
//! The steps follow the claim's own conditions, in Karpenter's order: Launched ends "Capacity
//! reserved", Registered "Booting", Initialized "Registering with the cluster", Ready "Ready".
//! The Node is found only through the claim (`status.nodeName`, checked against its
//! `providerID`), never by labels: a Karpenter killed at the wrong moment leaves a second,
//! never-registered Node with the claim's labels (docs/karpenter.md (d)); those are deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Node, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::provider::{delete_exactly, made_for, Machine, NodeProvider, NodeRequest, Observation, Offering, Progress, ProviderError, Stage};
use super::quota::Quota;
use crate::catalogue::Catalogue;
use crate::cluster::labels;
use crate::crd::StepName;

/// The provider's name, and its key in the catalogue's per-provider mappings.
pub const PROVIDER: &str = "karpenter";
/// Karpenter's taint on a Node it has not registered (synced labels and taints onto) yet.
const UNREGISTERED_TAINT: &str = "karpenter.sh/unregistered";
const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
const ZONE: &str = "topology.kubernetes.io/zone";
const CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
/// The Event reason Karpenter publishes when a cloud refuses a launch (then it deletes the claim).
const INSUFFICIENT_CAPACITY_EVENT: &str = "InsufficientCapacityError";
/// A claim of ours that vanished is given this long for Karpenter's Event to say why, before
/// it is created again (Karpenter publishes the Event and deletes the claim at about the same time).
const EVENT_GRACE: Duration = Duration::from_secs(5);
/// Karpenter sleeps a second after each NodeClaim status write; a watch event usually comes first.
const POLL: Duration = Duration::from_secs(2);

/// Karpenter's `NodeClaim` (`karpenter.sh/v1`), only the fields this provider writes or reads.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(group = "karpenter.sh", version = "v1", kind = "NodeClaim", status = "NodeClaimStatus", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ClaimResources>,
    pub node_class_ref: NodeClassRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ClaimResources {
    #[serde(default)]
    pub requests: BTreeMap<String, Quantity>,
}

/// Which node class launches the machine: `KWOKNodeClass` locally, `EC2NodeClass` on AWS,
/// `AKSNodeClass` on Azure.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeClassRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, rename = "providerID", skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClaimCondition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ClaimCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

/// The NodeClaim conditions the steps wait for, in Karpenter's order.
const CONDITIONS: [(&str, Stage); 4] =
    [("Launched", Stage::Launched), ("Registered", Stage::Registered), ("Initialized", Stage::Initialized), ("Ready", Stage::Ready)];

/// How long each step may take before the order fails naming it. Shorter than Karpenter's own
/// limits (launch 5 minutes, registration 15), so the user hears it from us, with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTimeouts {
    pub launched: Duration,
    pub registered: Duration,
    pub initialized: Duration,
    pub ready: Duration,
}

impl Default for StepTimeouts {
    fn default() -> Self {
        Self {
            launched: Duration::from_secs(120),
            registered: Duration::from_secs(600),
            initialized: Duration::from_secs(300),
            ready: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KarpenterConfig {
    /// The node class every NodeClaim names (`--karpenter-node-class-*`); a region's
    /// `node_classes: { karpenter: <name> }` in the catalogue replaces the name.
    pub node_class: NodeClassRef,
    pub timeouts: StepTimeouts,
    /// A stray Node (never registered, not the claim's machine) older than this is deleted.
    pub stray_grace: Duration,
    /// How long Karpenter may drain a deleted order's Node before it forces the pods off
    /// (`spec.terminationGracePeriod`; a PodDisruptionBudget could hold it forever otherwise).
    pub termination_grace: Duration,
}

impl Default for KarpenterConfig {
    fn default() -> Self {
        Self {
            node_class: NodeClassRef { group: "karpenter.kwok.sh".into(), kind: "KWOKNodeClass".into(), name: "default".into() },
            timeouts: StepTimeouts::default(),
            stray_grace: Duration::from_secs(30),
            termination_grace: Duration::from_secs(900),
        }
    }
}

pub struct KarpenterProvider {
    client: Client,
    catalogue: Arc<Catalogue>,
    quota: Quota,
    config: KarpenterConfig,
    /// Claims this process created, by order: their UID and when, so Karpenter's refusal of
    /// exactly that claim is recognised, and a claim that just vanished gets its Event a moment.
    created: Mutex<HashMap<String, (String, Instant)>>,
    /// The node class's API resource, found once by discovery.
    node_class_api: OnceCell<ApiResource>,
    /// UIDs of claims whose refusal was reported (an order's next attempt must not meet it).
    reported: Mutex<HashSet<String>>,
}

/// Karpenter refused to launch a claim.
struct Refusal {
    claim_uid: String,
    message: String,
}

impl KarpenterProvider {
    /// `selector`: the label selector of the orders this controller owns (its scope).
    pub fn new(client: Client, catalogue: Arc<Catalogue>, selector: String, config: KarpenterConfig) -> Self {
        Self {
            quota: Quota::new(client.clone(), catalogue.clone(), selector),
            client,
            catalogue,
            config,
            created: Mutex::new(HashMap::new()),
            node_class_api: OnceCell::new(),
            reported: Mutex::new(HashSet::new()),
        }
    }

    fn claims(&self) -> Api<NodeClaim> {
        Api::all(self.client.clone())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn ours(req: &NodeRequest, claim: &NodeClaim) -> bool {
        match &req.owner {
            Some(owner) => claim.owner_references().iter().any(|o| o.uid == owner.uid),
            None => claim.labels().get(labels::ORDER) == Some(&req.name),
        }
    }

    /// A claim made for an earlier attempt of the order (another size or region).
    fn stale(req: &NodeRequest, claim: &NodeClaim) -> bool {
        let region = claim.spec.requirements.iter().find(|r| r.key == labels::REGION).map(|r| r.values.clone());
        claim.labels().get(labels::SIZE) != Some(&req.size.id) || region != Some(vec![req.region.clone()])
    }

    /// Karpenter's refusal of the order's claim in this attempt, if it published one: an
    /// `InsufficientCapacityError` Event about the claim this process created, or, when it does
    /// not know one (a restart of ours), one no older than the attempt. A refusal already
    /// reported is never reported again (a retry right after it starts a new attempt).
    async fn refusal(&self, name: &str, since: OffsetDateTime) -> Result<Option<Refusal>, ProviderError> {
        let fields = format!("involvedObject.kind=NodeClaim,involvedObject.name={name},reason={INSUFFICIENT_CAPACITY_EVENT}");
        let events = Api::<KubeEvent>::all(self.client.clone()).list(&ListParams::default().fields(&fields)).await?;
        let created = self.created.lock().unwrap_or_else(|e| e.into_inner()).get(name).map(|(uid, _)| uid.clone());
        let reported = self.reported.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let found = events.items.into_iter().find(|e| {
            let uid = e.involved_object.uid.clone().unwrap_or_default();
            // Event times have whole seconds: one in the attempt's first second counts.
            let recent = event_time(e).is_some_and(|t| t.unix_timestamp() >= since.unix_timestamp());
            !reported.contains(&uid) && (created.as_deref() == Some(uid.as_str()) || (created.is_none() && recent))
        });
        Ok(found.map(|e| Refusal { claim_uid: e.involved_object.uid.unwrap_or_default(), message: e.message.unwrap_or_default() }))
    }

    fn forget(&self, name: &str) {
        self.created.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    /// How long ago this process created the order's claim, if it did.
    fn created_ago(&self, name: &str) -> Option<Duration> {
        self.created.lock().unwrap_or_else(|e| e.into_inner()).get(name).map(|(_, at)| at.elapsed())
    }

    fn refused(&self, req: &NodeRequest, refusal: Refusal) -> ProviderError {
        tracing::info!(order = %req.name, region = %req.region, size = %req.size.id, why = %refusal.message, "Karpenter refused the launch");
        self.forget(&req.name);
        self.reported.lock().unwrap_or_else(|e| e.into_inner()).insert(refusal.claim_uid);
        ProviderError::InsufficientCapacity { region: req.region.clone(), size: req.size.id.clone() }
    }

    /// Where a live claim stands, from its conditions; from `Initialized` on, with its Node.
    async fn judge(&self, claim: &NodeClaim) -> Result<Observation, ProviderError> {
        let name = claim.name_any();
        let status = claim.status.clone().unwrap_or_default();
        let condition = |t: &str| status.conditions.iter().find(|c| c.type_ == t);
        let mut reached = Stage::Requested;
        for (type_, stage) in CONDITIONS {
            match condition(type_) {
                Some(c) if c.status == "True" => reached = stage,
                other => {
                    let why = other.map(|c| format!("{}={}{}", c.type_, c.status, reason_text(c))).unwrap_or_else(|| format!("{type_} not reported yet"));
                    let note = format!("waiting for Karpenter: NodeClaim {name} {why}");
                    // Until Initialized the Node's name is not needed (and may be unknown).
                    if stage <= Stage::Initialized {
                        return Ok(Observation::new(Machine::Up { stage: reached, node: None }).note(note).retry_after(POLL));
                    }
                    return self.with_node(&status, reached, Some(note)).await;
                }
            }
        }
        self.with_node(&status, reached, None).await
    }

    /// An initialized claim's Node: the one `status.nodeName` names, with the claim's
    /// `providerID` (never found by labels). Its `kubernetes.io/hostname` label is left as Karpenter set it (`cluster::hostname`).
    async fn with_node(&self, status: &NodeClaimStatus, reached: Stage, note: Option<String>) -> Result<Observation, ProviderError> {
        let below = |note: String| Ok(Observation::new(Machine::Up { stage: Stage::Registered, node: None }).note(note).retry_after(POLL));
        let Some(node_name) = status.node_name.clone() else { return below("waiting for Karpenter to name the NodeClaim's Node".into()) };
        let Some(node) = self.nodes().get_opt(&node_name).await? else { return below(format!("waiting for Node {node_name}")) };
        let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
        if provider_id.is_none() || provider_id != status.provider_id {
            return below(format!("Node {node_name} is not the NodeClaim's machine ({provider_id:?})"));
        }
        let node_ready = node.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let (stage, note) = match (reached, node_ready) {
            (Stage::Ready, true) => (Stage::Ready, None),
            (Stage::Ready, false) => (Stage::Initialized, Some(format!("waiting for Node {node_name} to be Ready"))),
            (stage, _) => (stage, note),
        };
        let obs = Observation::new(Machine::Up { stage, node: Some(node_name) });
        Ok(match note {
            Some(note) => obs.note(note).retry_after(POLL),
            None => obs,
        })
    }

    /// Deletes the order's stray Nodes: carrying its label, never registered (Karpenter's
    /// `unregistered` taint), not the claim's machine (name and providerID), and older than
    /// the grace. Returns how soon a younger one is old enough.
    async fn sweep_strays(&self, order: &str, claim: Option<&NodeClaimStatus>) -> Result<Option<Duration>, ProviderError> {
        let nodes = self.nodes().list(&ListParams::default().labels(&format!("{}={order}", labels::ORDER))).await?;
        let mut next = None;
        for node in nodes.items {
            let name = node.name_any();
            let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
            let claimed = claim.is_some_and(|c| c.node_name.as_deref() == Some(name.as_str()) || (provider_id.is_some() && c.provider_id == provider_id));
            let unregistered = node.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|ts| ts.iter().any(|t| t.key == UNREGISTERED_TAINT));
            if claimed || !unregistered || node.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let age = node
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok())
                .map(|t| (OffsetDateTime::now_utc() - t).try_into().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::ZERO);
            match self.config.stray_grace.checked_sub(age).filter(|d| !d.is_zero()) {
                Some(left) => next = Some(next.map_or(left, |n: Duration| n.min(left))),
                None => {
                    tracing::warn!(%order, node = %name, ?provider_id, "deleting a stray Node (never registered, not the NodeClaim's machine; left by a Karpenter restart)");
                    match self.nodes().delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(next)
    }

    /// Regions whose node class is missing or not Ready: Karpenter cannot launch there.
    async fn regions_without_class(&self) -> Vec<String> {
        let api = match self.node_class_api.get_or_try_init(|| discover(&self.client, &self.config.node_class)).await {
            Ok(api) => api.clone(),
            Err(e) => {
                tracing::warn!(error = %e, class = ?self.config.node_class, "cannot find the node class's API; offering every region");
                return vec![];
            }
        };
        let classes: Api<DynamicObject> = Api::all_with(self.client.clone(), &api);
        let mut out = Vec::new();
        for region in self.catalogue.regions() {
            let class = node_class(&self.catalogue, &self.config, &region.id).name;
            let usable = match classes.get_opt(&class).await {
                Ok(Some(obj)) => class_ready(&obj),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, %class, "cannot read the node class; offering its region");
                    true
                }
            };
            if !usable {
                out.push(region.id.clone());
            }
        }
        out
    }
}

/// The node class a region's machines launch with.
fn node_class(catalogue: &Catalogue, config: &KarpenterConfig, region: &str) -> NodeClassRef {
    let mut class = config.node_class.clone();
    if let Some(name) = catalogue.region(region).and_then(|r| r.node_class(PROVIDER)) {
        class.name = name.to_string();
    }
    class
}

/// The NodeClaim an order becomes.
pub fn claim_for(catalogue: &Catalogue, config: &KarpenterConfig, req: &NodeRequest) -> Result<NodeClaim, ProviderError> {
    let types = req.size.instance_types(PROVIDER);
    if types.is_empty() {
        return Err(ProviderError::NotFound(format!("a Karpenter instance type for size {}", req.size.id)));
    }
    let zones = catalogue.region(&req.region).map(|r| r.zones.clone()).unwrap_or_default();
    let requirement = |key: &str, values: Vec<String>| Requirement { key: key.into(), operator: "In".into(), values };
    let mut requirements = vec![
        requirement(INSTANCE_TYPE, types.to_vec()),
        requirement(labels::REGION, vec![req.region.clone()]),
        requirement(CAPACITY_TYPE, vec!["on-demand".into()]),
    ];
    if !zones.is_empty() {
        requirements.push(requirement(ZONE, zones));
    }
    // What workloads may use is what the catalogue promises (its allocatable): Karpenter
    // launches an instance type whose allocatable holds it.
    let alloc = req.size.allocatable();
    let requests = BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{}m", (alloc.cpu_cores * 1000.0).floor() as u64))),
        ("memory".to_string(), Quantity(format!("{}Ki", (alloc.memory_bytes / 1024.0).floor() as u64))),
    ]);
    let claim_labels = BTreeMap::from([
        (labels::NODE_POOL.to_string(), labels::POOL_DEDICATED.to_string()),
        (labels::WORKSPACE.to_string(), req.workspace.clone()),
        (labels::ORDER.to_string(), req.name.clone()),
        (labels::SIZE.to_string(), req.size.id.clone()),
    ]);
    let mut claim = NodeClaim::new(
        &req.name,
        NodeClaimSpec {
            taints: vec![Taint { key: labels::DEDICATED_TAINT.into(), value: Some(req.workspace.clone()), effect: "NoSchedule".into(), time_added: None }],
            requirements,
            resources: Some(ClaimResources { requests }),
            node_class_ref: node_class(catalogue, config, &req.region),
            // The default is 720h: a dedicated node is the user's until they delete it.
            expire_after: Some("Never".into()),
            termination_grace_period: Some(format!("{}s", config.termination_grace.as_secs())),
        },
    );
    claim.metadata.labels = Some(claim_labels);
    claim.metadata.owner_references = req.owner.clone().map(|o| vec![o]);
    Ok(claim)
}

async fn discover(client: &Client, class: &NodeClassRef) -> Result<ApiResource, ProviderError> {
    let group = kube::discovery::group(client, &class.group).await?;
    group.recommended_kind(&class.kind).map(|(api, _)| api).ok_or_else(|| ProviderError::NotFound(format!("{} in API group {}", class.kind, class.group)))
}

/// A node class is usable unless its status says `Ready=False` (KWOKNodeClass defaults to Ready).
fn class_ready(obj: &DynamicObject) -> bool {
    let conditions = obj.data.pointer("/status/conditions").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    !conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "False")
}

fn reason_text(c: &ClaimCondition) -> String {
    match (c.reason.is_empty(), c.message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({})", c.reason),
        (true, false) => format!(": {}", c.message),
        (false, false) => format!(" ({}): {}", c.reason, c.message),
    }
}

/// When an Event last happened, whichever API wrote it.
fn event_time(e: &KubeEvent) -> Option<OffsetDateTime> {
    let seconds = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| e.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0.as_second()))
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()))?;
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

fn launched_refused(claim: &NodeClaim) -> Option<String> {
    let status = claim.status.as_ref()?;
    let launched = status.conditions.iter().find(|c| c.type_ == "Launched")?;
    (launched.status == "False" && (launched.reason.contains("InsufficientCapacity") || launched.message.contains("insufficient capacity")))
        .then(|| launched.message.clone())
}

fn is_launched(claim: &NodeClaim) -> bool {
    claim.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Launched" && c.status == "True"))
}

#[async_trait]
impl NodeProvider for KarpenterProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn machine_kind(&self) -> ApiResource {
        ApiResource::erase::<NodeClaim>(&())
    }

    fn step_timeout(&self, step: StepName) -> Option<Duration> {
        let t = &self.config.timeouts;
        Some(match step {
            StepName::CapacityReserved => t.launched,
            StepName::Booting => t.registered,
            StepName::Registering => t.initialized,
            StepName::Ready => t.ready,
        })
    }

    async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError> {
        self.quota.reserve(req).await
    }

    async fn ensure(&self, req: &NodeRequest, since: OffsetDateTime) -> Result<Observation, ProviderError> {
        let claims = self.claims();
        if let Some(claim) = claims.get_opt(&req.name).await? {
            if !Self::ours(req, &claim) {
                return Err(ProviderError::NameTaken(req.name.clone()));
            }
            if claim.metadata.deletion_timestamp.is_some() {
                if !is_launched(&claim) {
                    if let Some(refusal) = self.refusal(&req.name, since).await? {
                        return Err(self.refused(req, refusal));
                    }
                }
                return Ok(Observation::new(Machine::Terminating).note(format!("NodeClaim {} is being deleted", req.name)).retry_after(Duration::from_secs(1)));
            }
            if let Some(message) = launched_refused(&claim) {
                let _ = claims.delete(&req.name, &DeleteParams::background()).await;
                return Err(self.refused(req, Refusal { claim_uid: claim.uid().unwrap_or_default(), message }));
            }
            if Self::stale(req, &claim) {
                tracing::info!(order = %req.name, "deleting the NodeClaim of an earlier attempt (other size or region)");
                claims.delete(&req.name, &DeleteParams::background()).await?;
                return Ok(Observation::new(Machine::Terminating).note("replacing the NodeClaim of an earlier attempt").retry_after(Duration::from_secs(1)));
            }
            return self.judge(&claim).await;
        }
        if let Some(refusal) = self.refusal(&req.name, since).await? {
            return Err(self.refused(req, refusal));
        }
        if self.created_ago(&req.name).is_some_and(|ago| ago < EVENT_GRACE) {
            return Ok(Observation::new(Machine::Absent)
                .note(format!("NodeClaim {} disappeared; looking for Karpenter's reason", req.name))
                .retry_after(Duration::from_millis(500)));
        }
        let claim = match claims.create(&PostParams::default(), &claim_for(&self.catalogue, &self.config, req)?).await {
            Ok(claim) => claim,
            // A race with another create: the one that is there is judged on the next look.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Observation::new(Machine::Up { stage: Stage::Requested, node: None }).retry_after(Duration::from_millis(200)))
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(order = %req.name, class = ?claim.spec.node_class_ref, "NodeClaim created");
        self.created.lock().unwrap_or_else(|e| e.into_inner()).insert(req.name.clone(), (claim.uid().unwrap_or_default(), Instant::now()));
        Ok(Observation::new(Machine::Up { stage: Stage::Requested, node: None })
            .note(format!("waiting for Karpenter to launch NodeClaim {}", req.name))
            .retry_after(POLL))
    }

    async fn observe(&self, req: &NodeRequest) -> Result<Observation, ProviderError> {
        let Some(claim) = self.claims().get_opt(&req.name).await? else {
            return Ok(Observation::new(Machine::Absent).note(format!("NodeClaim {} is gone", req.name)));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            let node = claim.status.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            let node_gone = !node.is_empty() && self.nodes().get_opt(&node).await?.is_none_or(|n| n.metadata.deletion_timestamp.is_some());
            let why = if node_gone {
                format!("Node {node} was deleted, so Karpenter is terminating NodeClaim {}", req.name)
            } else {
                format!("Karpenter is terminating NodeClaim {}", req.name)
            };
            return Ok(Observation::new(Machine::Terminating).note(why));
        }
        // A Ready order is looked at again only for a stray not old enough to go yet; its
        // claim's changes wake it anyway.
        let strays = self.sweep_strays(&req.name, claim.status.as_ref()).await?;
        Ok(Observation { retry_after: strays, ..self.judge(&claim).await? })
    }

    async fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        let mut offerings = self.quota.offerings().await?;
        let closed = self.regions_without_class().await;
        for o in offerings.iter_mut().filter(|o| closed.contains(&o.region)) {
            o.available = 0;
        }
        Ok(offerings)
    }

    async fn release(&self, name: &str) -> Result<Progress, ProviderError> {
        let wait = Progress::InProgress { retry_after: Duration::from_secs(2) };
        let claims = self.claims();
        if let Some(claim) = claims.get_opt(name).await?.filter(|c| made_for(c, name)) {
            if claim.metadata.deletion_timestamp.is_none() {
                match claims.delete(name, &delete_exactly(&claim)).await {
                    Ok(_) => tracing::info!(order = %name, "NodeClaim deleted; Karpenter drains and terminates its Node"),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Karpenter's finalizer holds the claim until its Node is drained and gone.
            return Ok(wait);
        }
        // The claim is gone: strays of the order go too (at once: nothing uses them).
        let left = self.nodes().list(&ListParams::default().labels(&format!("{}={name}", labels::ORDER))).await?;
        for node in left.items.iter().filter(|n| n.metadata.deletion_timestamp.is_none()) {
            let unregistered = node.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|ts| ts.iter().any(|t| t.key == UNREGISTERED_TAINT));
            if unregistered {
                tracing::warn!(order = %name, node = %node.name_any(), "deleting a stray Node of a released order");
                match self.nodes().delete(&node.name_any(), &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if !left.items.is_empty() {
            return Ok(wait);
        }
        self.quota.forget(name).await;
        self.forget(name);
        Ok(Progress::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Size;

    const CATALOGUE: &str = r#"
version: 2
sizes:
  - { id: d2.large, vcpu: 2, memory_gib: 8, storage_gib: 100, network_gbps: 5, hourly_usd: 0.096, description: small, instance_types: { karpenter: [d2.large, m7i.large] } }
regions:
  - { id: ap-northeast-1, name: Tokyo, zones: [ap-northeast-1a, ap-northeast-1c], node_classes: { karpenter: tokyo }, capacity: { d2.large: 1 } }
  - { id: ap-southeast-1, name: Singapore, capacity: { d2.large: 1 } }
"#;

    fn size(c: &Catalogue) -> Size {
        c.size("d2.large").unwrap().clone()
    }

    fn request(c: &Catalogue, region: &str) -> NodeRequest {
        NodeRequest { name: "acme-1".into(), workspace: "acme".into(), region: region.into(), size: size(c), owner: None }
    }

    fn claim(region: &str) -> NodeClaim {
        let catalogue = Catalogue::parse(CATALOGUE).unwrap();
        claim_for(&catalogue, &KarpenterConfig::default(), &request(&catalogue, region)).unwrap()
    }

    fn requirement<'a>(c: &'a NodeClaim, key: &str) -> Option<&'a Vec<String>> {
        c.spec.requirements.iter().find(|r| r.key == key && r.operator == "In").map(|r| &r.values)
    }

    #[test]
    fn the_claim_is_named_labelled_and_tainted_for_its_order_and_never_expires() {
        let c = claim("ap-northeast-1");
        assert_eq!(c.name_any(), "acme-1");
        let l = c.labels();
        assert_eq!(l["hexabase.ai/node-pool"], "dedicated");
        assert_eq!(l["hexabase.ai/workspace"], "acme");
        assert_eq!(l["hexabase.ai/dedicated-node"], "acme-1", "Nodes are counted per order by this label");
        assert!(!l.contains_key("kubernetes.io/hostname"), "Karpenter restricts it");
        let t = &c.spec.taints[0];
        assert_eq!((t.key.as_str(), t.value.as_deref(), t.effect.as_str()), ("hexabase.ai/dedicated", Some("acme"), "NoSchedule"));
        assert_eq!(c.spec.expire_after.as_deref(), Some("Never"));
        assert_eq!(c.spec.termination_grace_period.as_deref(), Some("900s"));
    }

    #[test]
    fn the_claim_asks_for_the_sizes_instance_types_in_the_regions_zones_with_its_node_class() {
        let c = claim("ap-northeast-1");
        assert_eq!(requirement(&c, "node.kubernetes.io/instance-type").unwrap(), &["d2.large", "m7i.large"]);
        assert_eq!(requirement(&c, "topology.kubernetes.io/region").unwrap(), &["ap-northeast-1"]);
        assert_eq!(requirement(&c, "topology.kubernetes.io/zone").unwrap(), &["ap-northeast-1a", "ap-northeast-1c"]);
        assert_eq!(requirement(&c, "karpenter.sh/capacity-type").unwrap(), &["on-demand"]);
        assert_eq!(c.spec.node_class_ref, NodeClassRef { group: "karpenter.kwok.sh".into(), kind: "KWOKNodeClass".into(), name: "tokyo".into() });
        // What the catalogue promises workloads (its allocatable), not the raw size: a cloud
        // launches an instance type whose allocatable holds the requests.
        let requests = &c.spec.resources.as_ref().unwrap().requests;
        assert_eq!(requests["cpu"].0, "1900m");
        assert_eq!(requests["memory"].0, format!("{}Ki", (8.0 * 1024.0 * 1024.0 * 0.94f64).floor() as u64));
        assert!(!requests.contains_key("pods"), "a real instance type may hold fewer pods than 110");
    }

    #[test]
    fn a_region_without_zones_or_class_uses_any_zone_and_the_configured_class() {
        let c = claim("ap-southeast-1");
        assert!(requirement(&c, "topology.kubernetes.io/zone").is_none());
        assert_eq!(c.spec.node_class_ref.name, "default");
    }

    #[test]
    fn a_size_without_an_instance_type_cannot_become_a_claim() {
        let catalogue = Catalogue::parse(&CATALOGUE.replace(", instance_types: { karpenter: [d2.large, m7i.large] }", "")).unwrap();
        let err = claim_for(&catalogue, &KarpenterConfig::default(), &request(&catalogue, "ap-northeast-1")).unwrap_err();
        assert!(err.to_string().contains("instance type for size d2.large"), "{err}");
    }

    #[test]
    fn a_claim_for_another_region_or_size_is_stale() {
        let catalogue = Catalogue::parse(CATALOGUE).unwrap();
        let tokyo = claim("ap-northeast-1");
        assert!(!KarpenterProvider::stale(&request(&catalogue, "ap-northeast-1"), &tokyo));
        assert!(KarpenterProvider::stale(&request(&catalogue, "ap-southeast-1"), &tokyo));
    }

    #[test]
    fn the_claim_round_trips_as_karpenter_writes_it() {
        let json = serde_json::json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": { "name": "acme-1" },
            "spec": {
                "nodeClassRef": { "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default" },
                "requirements": [{ "key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["d2.large"], "minValues": 1 }],
                "expireAfter": "Never"
            },
            "status": {
                "nodeName": "kwok-acme-1-x-1", "providerID": "kwok://kwok-acme-1-x-1",
                "conditions": [
                    { "type": "Launched", "status": "True", "reason": "Launched", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" },
                    { "type": "Registered", "status": "Unknown", "reason": "NodeNotFound", "message": "Node not registered with cluster", "lastTransitionTime": "2026-01-01T00:00:00Z" }
                ]
            }
        });
        let c: NodeClaim = serde_json::from_value(json).unwrap();
        let s = c.status.unwrap();
        assert_eq!((s.node_name.as_deref(), s.provider_id.as_deref()), (Some("kwok-acme-1-x-1"), Some("kwok://kwok-acme-1-x-1")));
        assert_eq!(reason_text(&s.conditions[1]), " (NodeNotFound): Node not registered with cluster");
    }

    #[test]
    fn a_launch_refused_for_capacity_is_recognised_on_the_claim_too() {
        let mut c = claim("ap-northeast-1");
        let cond = |status: &str, reason: &str| ClaimCondition {
            type_: "Launched".into(),
            status: status.into(),
            reason: reason.into(),
            message: "insufficient capacity".into(),
        };
        c.status = Some(NodeClaimStatus { conditions: vec![cond("False", "InsufficientCapacity")], ..Default::default() });
        assert!(launched_refused(&c).is_some());
        c.status = Some(NodeClaimStatus {
            conditions: vec![ClaimCondition { message: "translating nodeclaim to node".into(), ..cond("Unknown", "LaunchFailed") }],
            ..Default::default()
        });
        assert!(launched_refused(&c).is_none() && !is_launched(&c));
    }
}
