//! The `kwok` provider: a "cloud" whose machines are Node objects that KWOK (a fake kubelet)
//! keeps Ready. The Node is named after the order and owned by it. Regions and their capacity
//! come from the catalogue (`quota`); the fast integration tests run on this provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use time::OffsetDateTime;

use super::provider::{delete_exactly, made_for, Machine, NodeProvider, NodeRequest, Observation, Offering, Progress, ProviderError, Stage};
use super::quota::Quota;
use crate::catalogue::{Catalogue, Size};
use crate::cluster::labels;

/// KWOK manages Nodes carrying this annotation (its `--manage-nodes-with-annotation-selector`).
pub const KWOK_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// The kubelet's default pod limit.
const MAX_PODS: &str = "110";
/// A created Node that is not Ready yet is looked at again this often if no event comes.
const READY_POLL: Duration = Duration::from_secs(5);

pub struct KwokProvider {
    client: Client,
    quota: Quota,
    boot_delay: Duration,
}

impl KwokProvider {
    /// `selector`: the label selector of the orders this controller owns (its scope).
    pub fn new(client: Client, catalogue: Arc<Catalogue>, boot_delay: Duration, selector: String) -> Self {
        Self { quota: Quota::new(client.clone(), catalogue, selector), client, boot_delay }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Where an existing Node named after the order stands.
    fn judge(&self, req: &NodeRequest, node: &Node) -> Result<Observation, ProviderError> {
        let ours = match &req.owner {
            Some(owner) => node.owner_references().iter().any(|o| o.uid == owner.uid),
            None => node.labels().get(labels::WORKSPACE) == Some(&req.workspace),
        };
        if !ours {
            return Err(ProviderError::NameTaken(req.name.clone()));
        }
        if node.metadata.deletion_timestamp.is_some() {
            return Ok(Observation::new(Machine::Terminating).note(format!("Node {} is being deleted", req.name)).retry_after(Duration::from_secs(1)));
        }
        let ready = node.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let stage = if ready { Stage::Ready } else { Stage::Initialized };
        let obs = Observation::new(Machine::Up { stage, node: Some(req.name.clone()) });
        Ok(if ready { obs } else { obs.note(format!("waiting for KWOK to report Node {} Ready", req.name)).retry_after(READY_POLL) })
    }
}

#[async_trait]
impl NodeProvider for KwokProvider {
    fn name(&self) -> &'static str {
        "kwok"
    }

    fn machine_kind(&self) -> ApiResource {
        ApiResource::erase::<Node>(&())
    }

    async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError> {
        self.quota.reserve(req).await
    }

    async fn ensure(&self, req: &NodeRequest, since: OffsetDateTime) -> Result<Observation, ProviderError> {
        let nodes = self.nodes();
        if let Some(node) = nodes.get_opt(&req.name).await? {
            return self.judge(req, &node);
        }
        // Nothing boots; the wait makes the steps visible in the UI as they would be on a cloud.
        let elapsed: Duration = (OffsetDateTime::now_utc() - since).try_into().unwrap_or(Duration::ZERO);
        if let Some(left) = self.boot_delay.checked_sub(elapsed).filter(|d| !d.is_zero()) {
            return Ok(Observation::new(Machine::Up { stage: Stage::Launched, node: None }).note("booting").retry_after(left));
        }
        match nodes.create(&PostParams::default(), &node_manifest(req)).await {
            Ok(node) => self.judge(req, &node),
            // A restart after the create, or a race: judge what is there.
            Err(kube::Error::Api(e)) if e.code == 409 => self.judge(req, &nodes.get(&req.name).await?),
            Err(e) => Err(e.into()),
        }
    }

    async fn observe(&self, req: &NodeRequest) -> Result<Observation, ProviderError> {
        match self.nodes().get_opt(&req.name).await? {
            // The Node's own events wake the order; a Ready order is not polled.
            Some(node) => Ok(Observation { retry_after: None, ..self.judge(req, &node)? }),
            None => Ok(Observation::new(Machine::Absent).note(format!("Node {} was deleted", req.name))),
        }
    }

    async fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        self.quota.offerings().await
    }

    async fn release(&self, name: &str) -> Result<Progress, ProviderError> {
        let nodes = self.nodes();
        let gone = match nodes.get_opt(name).await? {
            None => true,
            Some(node) if !made_for(&node, name) => {
                tracing::warn!(order = %name, "a Node of this name exists but was not made for this order; it is left alone");
                true
            }
            Some(node) => match nodes.delete(name, &delete_exactly(&node)).await {
                // Right: deleted now; Left: deletion started but something (a finalizer) holds it.
                Ok(either) => either.is_right(),
                // Gone meanwhile, or replaced by another Node of the name (the uid precondition):
                // either way nothing of this order is left under the name.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => true,
                Err(e) => return Err(e.into()),
            },
        };
        if !gone {
            return Ok(Progress::InProgress { retry_after: Duration::from_secs(2) });
        }
        self.quota.forget(name).await;
        Ok(Progress::Done)
    }
}

/// The Node a dedicated order becomes: labelled and tainted for its workspace only, sized
/// from the catalogue, and annotated so KWOK acts as its kubelet.
pub fn node_manifest(req: &NodeRequest) -> Node {
    let ws = req.workspace.as_str();
    let node_labels: BTreeMap<String, String> = [
        (labels::NODE_POOL, labels::POOL_DEDICATED),
        (labels::WORKSPACE, ws),
        (labels::ORDER, req.name.as_str()),
        (labels::SIZE, req.size.id.as_str()),
        (labels::REGION, req.region.as_str()),
        ("node.kubernetes.io/instance-type", req.size.id.as_str()),
        ("kubernetes.io/hostname", req.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("type", "kwok"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (capacity, allocatable) = resources(&req.size);
    Node {
        metadata: ObjectMeta {
            name: Some(req.name.clone()),
            labels: Some(node_labels),
            annotations: Some([(KWOK_ANNOTATION.0.to_string(), KWOK_ANNOTATION.1.to_string())].into()),
            owner_references: req.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![Taint { key: labels::DEDICATED_TAINT.into(), value: Some(ws.into()), effect: "NoSchedule".into(), time_added: None }]),
            ..Default::default()
        }),
        // A kubelet registers with its status; the API server keeps it on create, and KWOK
        // keeps these numbers while it heartbeats.
        status: Some(NodeStatus {
            capacity: Some(capacity),
            allocatable: Some(allocatable),
            addresses: Some(vec![NodeAddress { type_: "Hostname".into(), address: req.name.clone() }]),
            ..Default::default()
        }),
    }
}

type Resources = BTreeMap<String, Quantity>;

/// Capacity and allocatable as the kubelet would report them for a machine of this size.
fn resources(size: &Size) -> (Resources, Resources) {
    let alloc = size.allocatable();
    let q = |s: String| Quantity(s);
    let capacity = [
        ("cpu", q(size.vcpu.to_string())),
        ("memory", q(format!("{}Gi", size.memory_gib))),
        ("ephemeral-storage", q(format!("{}Gi", size.storage_gib))),
        ("pods", q(MAX_PODS.into())),
    ];
    let allocatable = [
        ("cpu", q(format!("{}m", (alloc.cpu_cores * 1000.0).floor() as u64))),
        ("memory", q(format!("{}Ki", (alloc.memory_bytes / 1024.0).floor() as u64))),
        ("ephemeral-storage", q(format!("{}Ki", (alloc.storage_bytes / 1024.0).floor() as u64))),
        ("pods", q(MAX_PODS.into())),
    ];
    let to_map = |items: [(&str, Quantity); 4]| items.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    (to_map(capacity), to_map(allocatable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NodeRequest {
        NodeRequest {
            name: "dn-1".into(),
            workspace: "acme-production".into(),
            region: "ap-northeast-1".into(),
            size: Size {
                id: "d2.large".into(),
                vcpu: 2,
                memory_gib: 8,
                storage_gib: 100,
                network_gbps: 5.0,
                hourly_usd: 0.1,
                description: String::new(),
                instance_types: Default::default(),
            },
            owner: None,
        }
    }

    #[test]
    fn the_node_is_dedicated_to_its_workspace() {
        let node = node_manifest(&request());
        let l = node.metadata.labels.clone().unwrap();
        assert_eq!(l["hexabase.ai/node-pool"], "dedicated");
        assert_eq!(l["hexabase.ai/workspace"], "acme-production");
        assert_eq!(l["hexabase.ai/dedicated-node"], "dn-1", "which order made it, whatever its name");
        assert_eq!(l["hexabase.ai/size"], "d2.large");
        assert_eq!(l["topology.kubernetes.io/region"], "ap-northeast-1");
        assert_eq!(l["kubernetes.io/hostname"], "dn-1");
        assert_eq!(l["type"], "kwok");
        assert_eq!(node.metadata.annotations.unwrap()["kwok.x-k8s.io/node"], "fake");
        let taints = node.spec.unwrap().taints.unwrap();
        assert_eq!(
            (taints[0].key.as_str(), taints[0].value.as_deref(), taints[0].effect.as_str()),
            ("hexabase.ai/dedicated", Some("acme-production"), "NoSchedule")
        );
    }

    #[test]
    fn capacity_and_allocatable_come_from_the_size() {
        let status = node_manifest(&request()).status.unwrap();
        let cap = status.capacity.unwrap();
        let alloc = status.allocatable.unwrap();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "8Gi");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cap["ephemeral-storage"].0, "100Gi");
        assert_eq!(alloc["cpu"].0, "1900m");
        assert_eq!(alloc["memory"].0, format!("{}Ki", (8.0 * 1024.0 * 1024.0 * 0.94f64).floor() as u64));
        assert_eq!(alloc["pods"].0, "110");
    }
}
