//! The platform's own count of nodes per region and size (the catalogue's `capacity`), shared
//! by every provider: a slot is taken before anything is created, and what is taken is read
//! back from the `DedicatedNode` statuses, so the count survives a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tokio::sync::Mutex;

use super::provider::{NodeRequest, Offering, ProviderError};
use super::steps::StatusExt;
use crate::catalogue::Catalogue;
use crate::crd::{DedicatedNode, NodePhase};

/// A slot taken by a reservation whose status may not be written yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    region: String,
    size: String,
}

pub struct Quota {
    client: Client,
    catalogue: Arc<Catalogue>,
    /// The label selector of the orders this controller owns (its scope).
    selector: String,
    /// Reservations made by this process, by order name. Held across the list-count-decide of
    /// `reserve`, so two reconciles cannot both take a region's last slot while the first's
    /// status is not yet written. (One process acts at a time; see ARCHITECTURE.md.)
    ledger: Mutex<HashMap<String, Slot>>,
}

impl Quota {
    pub fn new(client: Client, catalogue: Arc<Catalogue>, selector: String) -> Self {
        Self { client, catalogue, selector, ledger: Mutex::new(HashMap::new()) }
    }

    /// Who holds each slot now: orders whose status says so, plus this process's reservations
    /// for orders that still exist and have not failed.
    async fn holders(&self, ledger: &HashMap<String, Slot>) -> Result<HashMap<Slot, HashSet<String>>, ProviderError> {
        let orders = Api::<DedicatedNode>::all(self.client.clone()).list(&ListParams::default().labels(&self.selector)).await?;
        let mut live = HashSet::new();
        let mut held: HashMap<Slot, HashSet<String>> = HashMap::new();
        for dn in &orders {
            let failed = dn.status.as_ref().is_some_and(|s| s.phase == NodePhase::Failed);
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

    /// Takes a slot for the request (see `NodeProvider::reserve` for the contract).
    pub async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError> {
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

    /// Room left for every size in every region of the catalogue.
    pub async fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
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

    /// Forgets this process's reservation of a released order.
    pub async fn forget(&self, name: &str) {
        self.ledger.lock().await.remove(name);
    }
}
