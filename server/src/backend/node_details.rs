//! The dedicated node page's monitoring beside usage: the Node's conditions and the pods on it
//! by workload (from the watch caches), the Kubernetes Events of the Node and of its order
//! (read from the API server: Events are not cached, and a page asks for one node's), and
//! the month's cost. Membership and ownership are checked by the caller (`mod.rs`).

use app::error::AppError;
use app::model::{NodeConditionView, NodeCost, NodeDetails, NodeEventView, NodePhase, WorkloadOnNode};
use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use time::OffsetDateTime;

use super::{cluster_error, views, DashboardBackend};
use crate::cache::Snapshot;
use crate::capacity::Resources;
use crate::crd::DedicatedNode;

/// Events for cluster-scoped objects live here (kube's recorders and client-go's alike).
const CLUSTER_EVENTS_NAMESPACE: &str = "default";
/// The kinds whose Events are the node's: the order, its Node, and Karpenter's NodeClaim.
const NODE_EVENT_KINDS: [&str; 3] = ["DedicatedNode", "Node", "NodeClaim"];
/// The page shows the newest this many.
const MAX_EVENTS: usize = 50;

impl DashboardBackend {
    pub(super) async fn details_of(&self, ws: &str, dn: &DedicatedNode) -> Result<NodeDetails, AppError> {
        let node = dn.status.as_ref().and_then(|s| s.node_name.clone());
        // The kwok provider names the Node after its order; Karpenter's Node has its own name.
        let mut names: Vec<String> = std::iter::once(dn.name_any()).chain(node.clone()).collect();
        names.dedup();
        let (snapshot, events) = futures::join!(self.snapshot(), self.events_about(&names));
        let mut unavailable = None;
        let (conditions, (workloads, other_pods)) = match (&snapshot, &node) {
            (Ok(s), Some(node)) => (conditions(s.node(node)), pods_by_workload(s, ws, node)),
            (Ok(_), None) => Default::default(),
            (Err(e), _) => {
                unavailable = Some(e.clone());
                Default::default()
            }
        };
        let events = events.unwrap_or_else(|e| {
            unavailable.get_or_insert(e);
            vec![]
        });
        Ok(NodeDetails { conditions, events, workloads, other_pods, cost: self.cost_of(dn, OffsetDateTime::now_utc()), unavailable })
    }

    /// The Events about any of `names` of the node's kinds, newest first.
    async fn events_about(&self, names: &[String]) -> Result<Vec<NodeEventView>, String> {
        let api = Api::<Event>::namespaced(self.kube()?.clone(), CLUSTER_EVENTS_NAMESPACE);
        let about = |name: &String| {
            let (api, params) = (api.clone(), ListParams::default().fields(&format!("involvedObject.name={name}")));
            async move { api.list(&params).await }
        };
        let lists = futures::future::try_join_all(names.iter().map(about)).await.map_err(cluster_error)?;
        let mut seen = std::collections::BTreeSet::new();
        let events = lists.into_iter().flat_map(|l| l.items).filter(|e| seen.insert(e.metadata.uid.clone()));
        Ok(newest_first(events.filter(|e| e.involved_object.kind.as_deref().is_some_and(|k| NODE_EVENT_KINDS.contains(&k)))))
    }

    /// This month's cost at the catalogue's price; none for a failed order (no machine ran).
    fn cost_of(&self, dn: &DedicatedNode, now: OffsetDateTime) -> Option<NodeCost> {
        if views::effective_phase(dn) == NodePhase::Failed {
            return None;
        }
        let size = self.catalogue.size(&dn.spec.size)?;
        let ordered = dn.metadata.creation_timestamp.as_ref().map_or(now.unix_timestamp(), |t| t.0.as_second());
        Some(NodeCost::of(size.hourly_usd, ordered, now.unix_timestamp(), month_of(now)))
    }
}

/// The calendar month (UTC) around `now`, as unix seconds `[start, end)`.
fn month_of(now: OffsetDateTime) -> (i64, i64) {
    let start = now.date().replace_day(1).expect("day 1 exists").midnight().assume_utc();
    let next = match start.month() {
        time::Month::December => start.replace_year(start.year() + 1).and_then(|s| s.replace_month(time::Month::January)),
        m => start.replace_month(m.next()),
    }
    .expect("the first of a month exists");
    (start.unix_timestamp(), next.unix_timestamp())
}

fn conditions(node: Option<&Node>) -> Vec<NodeConditionView> {
    let list = node.and_then(|n| n.status.as_ref()).and_then(|s| s.conditions.as_ref());
    list.into_iter()
        .flatten()
        .map(|c| NodeConditionView {
            healthy: NodeConditionView::is_healthy(&c.type_, &c.status),
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
            since_ms: c.last_transition_time.as_ref().map(|t| t.0.as_millisecond()),
        })
        .collect()
}

fn pods_by_workload(snapshot: &Snapshot, ws: &str, node: &str) -> (Vec<WorkloadOnNode>, u32) {
    let (groups, others) = snapshot.pods_on_node_by_workload(ws, node);
    let workloads = groups
        .into_iter()
        .map(|(key, pods)| {
            let held: Resources = pods.iter().map(|p| p.holds()).sum();
            WorkloadOnNode {
                key,
                pods: pods.len() as u32,
                running: pods.iter().filter(|p| p.running).count() as u32,
                cpu: held.cpu,
                memory_gib: held.memory_gib(),
            }
        })
        .collect();
    (workloads, others.len() as u32)
}

/// Events as the page lists them, newest first, at most [`MAX_EVENTS`].
fn newest_first(events: impl Iterator<Item = Event>) -> Vec<NodeEventView> {
    let mut list: Vec<NodeEventView> = events.map(view).collect();
    list.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
    list.truncate(MAX_EVENTS);
    list
}

/// One Event as the page shows it, whichever API (core or events.k8s.io) wrote it.
fn view(e: Event) -> NodeEventView {
    let at = e
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.first_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let count = e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1).max(1);
    let source = e.reporting_component.clone().filter(|c| !c.is_empty()).or_else(|| e.source.as_ref().and_then(|s| s.component.clone())).unwrap_or_default();
    NodeEventView {
        object_kind: e.involved_object.kind.clone().unwrap_or_default(),
        warning: e.type_.as_deref() == Some("Warning"),
        reason: e.reason.unwrap_or_default(),
        message: e.message.unwrap_or_default(),
        source,
        at_ms: at.map(|t| t.as_millisecond()),
        count: count as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_month_runs_from_its_first_midnight_to_the_next_months() {
        let at = |s: &str| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        let (start, end) = month_of(at("2026-11-28T10:00:00Z"));
        assert_eq!((start, end), (at("2026-11-01T00:00:00Z").unix_timestamp(), at("2026-12-01T00:00:00Z").unix_timestamp()));
        let (start, end) = month_of(at("2026-12-31T23:59:59Z"));
        assert_eq!((start, end), (at("2026-12-01T00:00:00Z").unix_timestamp(), at("2027-01-01T00:00:00Z").unix_timestamp()));
    }

    #[test]
    fn events_of_either_api_read_alike_newest_first() {
        let core: Event = serde_json::from_value(json!({
            "metadata": { "name": "a", "namespace": "default", "uid": "1" },
            "involvedObject": { "kind": "Node", "name": "n" },
            "type": "Normal", "reason": "RegisteredNode", "message": "Node n event: Registered",
            "source": { "component": "node-controller" }, "count": 1,
            "lastTimestamp": "2026-11-28T10:00:00Z"
        }))
        .unwrap();
        // What kube's Recorder writes through events.k8s.io, read back through core/v1.
        let series: Event = serde_json::from_value(json!({
            "metadata": { "name": "b", "namespace": "default", "uid": "2" },
            "involvedObject": { "kind": "DedicatedNode", "name": "n" },
            "type": "Warning", "reason": "ProviderError", "message": "Retrying: refused",
            "reportingComponent": "hexabase.ai/provisioning", "eventTime": "2026-11-28T09:00:00.000000Z",
            "series": { "count": 3, "lastObservedTime": "2026-11-28T11:00:00.000000Z" }
        }))
        .unwrap();
        let list = newest_first(vec![core, series].into_iter());
        let got: Vec<(&str, bool, &str, u32)> = list.iter().map(|e| (e.reason.as_str(), e.warning, e.source.as_str(), e.count)).collect();
        assert_eq!(got, vec![("ProviderError", true, "hexabase.ai/provisioning", 3), ("RegisteredNode", false, "node-controller", 1)]);
        assert_eq!(list[0].object_kind, "DedicatedNode");
    }
}
