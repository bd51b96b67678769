//! The platform's own count of nodes per region and size (the catalogue's `capacity`), shared
//! by every provider: a slot is taken before anything is created, and what is taken is read
//! back from the `DedicatedNode` statuses, so the count survives a restart. The statuses come
//! from a watch of the orders (no LIST of every order per reservation); a refusal is decided
//! on a fresh LIST, since the watch may be a moment behind a slot just released.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio::sync::{Mutex, OnceCell};

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
    /// The orders in scope, kept by a watch started on first use: counting them costs no LIST.
    orders: OnceCell<Watched>,
}

/// A store of the orders and the task that feeds it, stopped with the `Quota`.
struct Watched {
    store: Store<DedicatedNode>,
    task: tokio::task::AbortHandle,
}

/// How long a count waits for the watch's first list before it lists the orders itself.
const FIRST_LIST: Duration = Duration::from_secs(5);

impl Drop for Quota {
    fn drop(&mut self) {
        if let Some(w) = self.orders.get() {
            w.task.abort();
        }
    }
}

/// Who holds each slot now: orders whose status says so, plus this process's reservations
/// for orders that still exist and have not failed.
fn holders<'a>(orders: impl IntoIterator<Item = &'a DedicatedNode>, ledger: &HashMap<String, Slot>) -> HashMap<Slot, HashSet<String>> {
    let mut live = HashSet::new();
    let mut held: HashMap<Slot, HashSet<String>> = HashMap::new();
    for dn in orders {
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
    held
}

/// Which read a count uses.
#[derive(Clone, Copy, PartialEq)]
enum Read {
    /// The watch's store (a moment behind the API server at most).
    Watched,
    /// A LIST: what a refusal is decided on, since the watch may not have seen a release yet.
    Fresh,
}

impl Quota {
    pub fn new(client: Client, catalogue: Arc<Catalogue>, selector: String) -> Self {
        Self { client, catalogue, selector, ledger: Mutex::new(HashMap::new()), orders: OnceCell::new() }
    }

    /// The orders in scope from the watch, once it has listed them (`None` until then).
    async fn watched(&self) -> Option<Vec<Arc<DedicatedNode>>> {
        let watched = self
            .orders
            .get_or_init(|| async {
                let (store, writer) = reflector::store();
                let api = Api::<DedicatedNode>::all(self.client.clone());
                let events = reflector::reflector(writer, watcher(api, watcher::Config::default().labels(&self.selector)).default_backoff());
                let task = tokio::spawn(events.for_each(|_| std::future::ready(()))).abort_handle();
                Watched { store, task }
            })
            .await;
        match tokio::time::timeout(FIRST_LIST, watched.store.wait_until_ready()).await {
            Ok(Ok(())) => Some(watched.store.state()),
            _ => None,
        }
    }

    async fn held(&self, ledger: &HashMap<String, Slot>, read: Read) -> Result<HashMap<Slot, HashSet<String>>, ProviderError> {
        if read == Read::Watched {
            if let Some(orders) = self.watched().await {
                return Ok(holders(orders.iter().map(|o| &**o), ledger));
            }
        }
        let orders = Api::<DedicatedNode>::all(self.client.clone()).list(&ListParams::default().labels(&self.selector)).await?;
        Ok(holders(&orders.items, ledger))
    }

    /// Takes a slot for the request (see `NodeProvider::reserve` for the contract).
    pub async fn reserve(&self, req: &NodeRequest) -> Result<(), ProviderError> {
        let mut ledger = self.ledger.lock().await;
        let slot = Slot { region: req.region.clone(), size: req.size.id.clone() };
        let capacity = self.catalogue.capacity(&req.region, &req.size.id) as usize;
        for read in [Read::Watched, Read::Fresh] {
            let held = self.held(&ledger, read).await?;
            let holders = held.get(&slot);
            if holders.is_some_and(|h| h.contains(&req.name)) {
                return Ok(());
            }
            if holders.map_or(0, |h| h.len()) < capacity {
                ledger.insert(req.name.clone(), slot);
                return Ok(());
            }
        }
        Err(ProviderError::InsufficientCapacity { region: req.region.clone(), size: req.size.id.clone() })
    }

    /// Room left for every size in every region of the catalogue.
    pub async fn offerings(&self) -> Result<Vec<Offering>, ProviderError> {
        let ledger = self.ledger.lock().await;
        let held = self.held(&ledger, Read::Watched).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DedicatedNodeSpec, DedicatedNodeStatus};

    fn order(name: &str, region: &str, phase: NodePhase, holds: bool) -> DedicatedNode {
        let spec = DedicatedNodeSpec { workspace: "w".into(), size: "d2.large".into(), region: region.into(), requested_by: "a@b".into() };
        let mut dn = DedicatedNode::new(name, spec);
        let mut status = DedicatedNodeStatus { phase, ..Default::default() };
        if holds {
            status.hold_capacity(None, time::OffsetDateTime::UNIX_EPOCH);
        }
        dn.status = Some(status);
        dn
    }

    #[test]
    fn a_slot_is_held_by_its_orders_status_or_by_this_process_until_the_order_fails_or_goes() {
        let slot = |region: &str| Slot { region: region.into(), size: "d2.large".into() };
        let ready = order("ready", "tokyo", NodePhase::Ready, true);
        assert!(ready.status.as_ref().unwrap().holds_capacity(), "the fixture holds capacity");
        let orders = [ready, order("reserving", "tokyo", NodePhase::Pending, false), order("failed", "osaka", NodePhase::Failed, false)];
        let ledger = HashMap::from([("reserving".to_string(), slot("tokyo")), ("failed".to_string(), slot("osaka")), ("deleted".to_string(), slot("osaka"))]);
        let held = holders(&orders, &ledger);
        assert_eq!(held[&slot("tokyo")], HashSet::from(["ready".to_string(), "reserving".to_string()]));
        assert!(!held.contains_key(&slot("osaka")), "a failed order and a gone one hold nothing: {held:?}");
    }
}
