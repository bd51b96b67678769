//! The `kwok` provider: a "cloud" whose machines are Node objects that KWOK (a fake kubelet)
//! keeps Ready. Regions and their capacity come from the catalogue; what is taken is read
//! back from the `DedicatedNode` statuses, so the count survives a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::provider::{NodeProvider, NodeRequest, Offering, Progress, ProviderError};
use super::steps::StatusExt;
use crate::catalogue::{Catalogue, Size};
use crate::cluster::labels;
use crate::crd::DedicatedNode;

/// KWOK manages Nodes carrying this annotation (its `--manage-nodes-with-annotation-selector`).
pub const KWOK_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// The kubelet's default pod limit.
const MAX_PODS: &str = "110";

/// A slot taken by a reservation whose status may not be written yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    region: String,
    size: String,
}

pub struct KwokProvider {
    client: Client,
    catalogue: Arc<Catalogue>,
    boot_delay: Duration,
    /// The label selector of the orders this controller owns (its scope).
    selector: String,
    /// Reservations made by this process, by order name. Held across the list-count-decide of
    /// `reserve`, so two reconciles cannot both take a region's last slot while the first's
    /// status is not yet written. (One process acts at a time; see ARCHITECTURE.md.)
    ledger: Mutex<HashMap<String, Slot>>,
}

impl KwokProvider {
    pub fn new(client: Client, catalogue: Arc<Catalogue>, boot_delay: Duration, selector: String) -> Self {
        Self { client, catalogue, boot_delay, selector, ledger: Mutex::new(HashMap::new()) }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Who holds each slot now: orders whose status says so, plus this process's reservations
    /// for orders that still exist and have not failed.
    async fn holders(&self, ledger: &HashMap<String, Slot>) -> Result<HashMap<Slot, HashSet<String>>, ProviderError> {
        let orders = Api::<DedicatedNode>::all(self.client.clone()).list(&ListParams::default().labels(&self.selector)).await?;
        let mut live = HashSet::new();
        let mut held: HashMap<Slot, HashSet<String>> = HashMap::new();
        for dn in &orders {
            let failed = dn.status.as_ref().is_some_and(|s| s.phase == crate::crd::NodePhase::Failed);
            if !failed {
                live.insert(dn.name_any());
            }
            if dn.status.as_ref().is_some_and(|s| s.holds_capacity()) {
                held.entry(Slot { region: dn.spec.region.clone(), size: dn.spec.size.clone() }).or_default().insert(dn.name_any());
            }
        }
        for (name, slot) in ledger {
            if live.contains(name) {
                held.entry(slot.clone()).or_default().insert(name.clone());
            }
        }
        Ok(held)
    }
}

#[async_trait]
impl NodeProvider for KwokProvider {
    fn name(&self) -> &'static str {
        "kwok"
    }

    async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError> {
        let mut ledger = self.ledger.lock().await;
        let slot = Slot { region: req.region.clone(), size: req.size.id.clone() };
        let held = self.holders(&ledger).await?;
        let holders = held.get(&slot);
        if holders.is_some_and(|h| h.contains(&req.name)) {
            return Ok(());
        }
        let taken = holders.map_or(0, |h| h.len());
        if taken >= self.catalogue.capacity(&req.region, &req.size.id) as usize {
            return Err(ProviderError::InsufficientCapacity { region: req.region.clone(), size: req.size.id.clone() });
        }
        ledger.insert(req.name.clone(), slot);
        Ok(())
    }

    async fn launch(&self, _req: &NodeRequest, since: OffsetDateTime) -> Result<Progress, ProviderError> {
        // Nothing boots; the wait makes the steps visible in the UI as they would be on a cloud.
        let elapsed = (OffsetDateTime::now_utc() - since).try_into().unwrap_or(Duration::ZERO);
        Ok(match self.boot_delay.checked_sub(elapsed) {
            Some(left) if !left.is_zero() => Progress::InProgress { retry_after: left },
            _ => Progress::Done,
        })
    }

    async fn register(&self, req: &NodeRequest) -> Result<Progress, ProviderError> {
        let nodes = self.nodes();
        match nodes.create(&PostParams::default(), &node_manifest(req)).await {
            Ok(_) => Ok(Progress::Done),
            // A restart after the create: the Node is ours if it names this order as owner.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = nodes.get(&req.name).await?;
                let ours = match &req.owner {
                    Some(owner) => existing.owner_references().iter().any(|o| o.uid == owner.uid),
                    None => existing.labels().get(labels::WORKSPACE) == Some(&req.workspace),
                };
                if ours {
                    Ok(Progress::Done)
                } else {
                    Err(ProviderError::NameTaken(req.name.clone()))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        let ledger = self.ledger.lock().await;
        let held = self.holders(&ledger).await?;
        let mut out = Vec::new();
        for region in self.catalogue.regions() {
            for size in self.catalogue.sizes() {
                let slot = Slot { region: region.id.clone(), size: size.id.clone() };
                let taken = held.get(&slot).map_or(0, |h| h.len()) as u32;
                out.push(Offering { region: region.id.clone(), size: size.id.clone(), available: region.capacity_of(&size.id).saturating_sub(taken) });
            }
        }
        Ok(out)
    }

    async fn release(&self, name: &str) -> Result<Progress, ProviderError> {
        let gone = match self.nodes().delete(name, &DeleteParams::default()).await {
            // Right: deleted now; Left: deletion started but something (a finalizer) holds it.
            Ok(either) => either.is_right(),
            Err(kube::Error::Api(e)) if e.code == 404 => true,
            Err(e) => return Err(e.into()),
        };
        if !gone {
            return Ok(Progress::InProgress { retry_after: Duration::from_secs(2) });
        }
        self.ledger.lock().await.remove(name);
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
            size: Size { id: "d2.large".into(), vcpu: 2, memory_gib: 8, storage_gib: 100, network_gbps: 5.0, hourly_usd: 0.1, description: String::new() },
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
