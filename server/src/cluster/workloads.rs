//! The workspace's Deployments and StatefulSets and what they request: the input to the
//! wizard's fit check (use case 5c), the migration plan and the Workload Migration screen.

use std::collections::{BTreeMap, BTreeSet};

use app::model::{WorkloadKey, WorkloadKind};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::core::{Selector, SelectorExt};
use kube::Client;

use super::labels;
use crate::capacity::{self, Demand};
use crate::scheduling::Scheduling;

/// One workload as the engine reasons about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub key: WorkloadKey,
    /// Its replicas, their requests and its surge during a move.
    pub demand: Demand,
    /// Every container has a readiness probe: without one, "available" means only "started".
    pub has_readiness_probe: bool,
    /// A PodDisruptionBudget selects the workload's pods.
    pub has_pdb: bool,
    /// The scheduling fields a move changes, as the API server returned them (for the dry run,
    /// which shows the engine's exact patch).
    pub scheduling: Scheduling,
}

impl Workload {
    pub fn replicas(&self) -> i32 {
        self.demand.replicas
    }

    /// Why zero downtime cannot be guaranteed for this workload, in the user's terms.
    pub fn risks(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.replicas() <= 1 {
            out.push("One replica: its pod is replaced, so requests may fail for a moment. Scale to 2 or more first.".into());
        }
        if !self.has_readiness_probe {
            out.push("No readiness probe: new pods take traffic as soon as they start, possibly before they are ready.".into());
        }
        if self.key.kind == WorkloadKind::StatefulSet {
            out.push("StatefulSet: pods are replaced one by one (delete, then create), so one replica is down at a time.".into());
        }
        if !self.has_pdb && self.replicas() > 1 {
            out.push("No PodDisruptionBudget: other disruptions during the move are not limited.".into());
        }
        out
    }

    /// The dedicated node its pods are pinned to (a migration moved it there), if any.
    pub fn pinned_node(&self) -> Option<String> {
        self.scheduling.node_selector_map().get(labels::HOSTNAME).cloned()
    }

    /// Its pods still run on the shared pool (not pinned to a dedicated node).
    pub fn on_shared_pool(&self) -> bool {
        self.pinned_node().is_none()
    }
}

fn all_have_readiness(spec: Option<&PodSpec>) -> bool {
    spec.is_some_and(|s| !s.containers.is_empty() && s.containers.iter().all(|c| c.readiness_probe.is_some()))
}

/// Whether a budget selects pods with these labels (a budget with an empty or unreadable
/// selector protects nothing).
fn selects(pdb: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    pdb.spec.as_ref().and_then(|s| s.selector.as_ref()).and_then(pod_selector).is_some_and(|s| s.matches(labels))
}

/// A workload's pod selector as a query (matchLabels and matchExpressions); `None` for one
/// that selects nothing or cannot be read.
pub fn pod_selector(selector: &LabelSelector) -> Option<Selector> {
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty()) && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty());
    if empty {
        return None;
    }
    Selector::try_from(selector.clone()).ok()
}

/// The pods a workload's selector picks in its namespace.
pub async fn pods_selected(client: &Client, namespace: &str, selector: &LabelSelector) -> Result<Vec<Pod>, kube::Error> {
    let Some(selector) = pod_selector(selector) else { return Ok(vec![]) };
    Ok(Api::<Pod>::namespaced(client.clone(), namespace).list(&ListParams::default().labels_from(&selector)).await?.items)
}

/// A workload from its pod template and what differs between the kinds.
fn from_template(
    key: WorkloadKey,
    replicas: i32,
    template: &PodTemplateSpec,
    surge_pods: i32,
    scheduling: Scheduling,
    pdbs: &[&PodDisruptionBudget],
) -> Workload {
    let spec = template.spec.as_ref();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    Workload {
        key,
        demand: Demand { replicas, pod: spec.map(capacity::pod_requests).unwrap_or_default(), surge_pods },
        has_readiness_probe: all_have_readiness(spec),
        has_pdb: pdbs.iter().any(|p| selects(p, &labels)),
        scheduling,
    }
}

/// The workloads of the given namespaces that `keep` keeps (by key: a page of a list, a
/// selection), from the cluster's Deployments, StatefulSets and budgets (pure; any of them may
/// hold objects of other namespaces too). Only the kept ones are read beyond their names.
pub fn workloads_in<'a>(
    namespaces: &BTreeSet<String>,
    deployments: impl IntoIterator<Item = &'a Deployment>,
    stateful_sets: impl IntoIterator<Item = &'a StatefulSet>,
    budgets: impl IntoIterator<Item = &'a PodDisruptionBudget>,
    keep: impl Fn(&WorkloadKey) -> bool,
) -> Vec<Workload> {
    let ours = |m: &kube::core::ObjectMeta| m.namespace.as_ref().is_some_and(|ns| namespaces.contains(ns));
    let mut pdbs: BTreeMap<&str, Vec<&PodDisruptionBudget>> = BTreeMap::new();
    for p in budgets.into_iter().filter(|p| ours(&p.metadata)) {
        pdbs.entry(p.metadata.namespace.as_deref().unwrap_or_default()).or_default().push(p);
    }
    let budgets_of = |ns: &str| pdbs.get(ns).map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::new();
    for d in deployments.into_iter().filter(|d| ours(&d.metadata)) {
        let key = key_of(&d.metadata, WorkloadKind::Deployment);
        if !keep(&key) {
            continue;
        }
        let spec = &d.spec;
        let replicas = spec.replicas.unwrap_or(1);
        let max_surge = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_surge.as_ref());
        let scheduling = Scheduling::of_deployment(d);
        let budgets = budgets_of(&key.namespace);
        out.push(from_template(key, replicas, &spec.template, capacity::surge_pods(max_surge, replicas), scheduling, budgets));
    }
    for s in stateful_sets.into_iter().filter(|s| ours(&s.metadata)) {
        let key = key_of(&s.metadata, WorkloadKind::StatefulSet);
        if !keep(&key) {
            continue;
        }
        let spec = &s.spec;
        let scheduling = Scheduling::of_stateful_set(s);
        let budgets = budgets_of(&key.namespace);
        // A StatefulSet replaces pods one by one: no extra pod at any time.
        out.push(from_template(key, spec.replicas.unwrap_or(1), &spec.template, 0, scheduling, budgets));
    }
    out.sort_by(|a, b| listing_order(&a.key).cmp(&listing_order(&b.key)));
    out
}

/// The keys of the workloads of the given namespaces, in [`listing_order`]: what a list of
/// them counts, filters and pages without reading any workload further.
pub fn workload_keys_in<'a>(
    namespaces: &BTreeSet<String>,
    deployments: impl IntoIterator<Item = &'a Deployment>,
    stateful_sets: impl IntoIterator<Item = &'a StatefulSet>,
) -> Vec<WorkloadKey> {
    let ours = |m: &&kube::core::ObjectMeta| m.namespace.as_ref().is_some_and(|ns| namespaces.contains(ns));
    let mut keys: Vec<WorkloadKey> = deployments
        .into_iter()
        .map(|d| &d.metadata)
        .filter(ours)
        .map(|m| key_of(m, WorkloadKind::Deployment))
        .chain(stateful_sets.into_iter().map(|s| &s.metadata).filter(ours).map(|m| key_of(m, WorkloadKind::StatefulSet)))
        .collect();
    keys.sort_by(|a, b| listing_order(a).cmp(&listing_order(b)));
    keys
}

fn key_of(meta: &kube::core::ObjectMeta, kind: WorkloadKind) -> WorkloadKey {
    WorkloadKey::new(meta.namespace.as_deref().unwrap_or_default(), kind, meta.name.clone().unwrap_or_default())
}

/// As the API server lists workloads: by namespace, Deployments first, then by name.
fn listing_order(key: &WorkloadKey) -> (&str, bool, &str) {
    (&key.namespace, key.kind == WorkloadKind::StatefulSet, &key.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{Resources, GIB};
    use serde_json::json;

    fn w(kind: WorkloadKind, replicas: i32) -> Workload {
        Workload {
            key: WorkloadKey::new("ns", kind, "w"),
            demand: Demand { replicas, pod: Resources::new(0.5, 0.5 * GIB), surge_pods: 1 },
            has_readiness_probe: true,
            has_pdb: true,
            scheduling: Default::default(),
        }
    }

    #[test]
    fn risks_name_what_breaks_zero_downtime() {
        assert!(w(WorkloadKind::Deployment, 3).risks().is_empty());
        let single = w(WorkloadKind::Deployment, 1).risks();
        assert!(single[0].starts_with("One replica"), "{single:?}");
        let mut sts = w(WorkloadKind::StatefulSet, 1);
        sts.has_readiness_probe = false;
        assert_eq!(sts.risks().len(), 3);
    }

    #[test]
    fn budgets_select_by_labels_and_expressions() {
        let pdb = |selector: serde_json::Value| -> PodDisruptionBudget { serde_json::from_value(json!({ "spec": { "selector": selector } })).unwrap() };
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string()), ("tier".to_string(), "front".to_string())].into();
        assert!(selects(&pdb(json!({ "matchLabels": { "app": "web" } })), &labels));
        assert!(selects(&pdb(json!({ "matchExpressions": [{ "key": "tier", "operator": "NotIn", "values": ["back"] }] })), &labels), "NotIn counts");
        assert!(selects(&pdb(json!({ "matchExpressions": [{ "key": "app", "operator": "Exists" }] })), &labels));
        assert!(!selects(&pdb(json!({ "matchLabels": { "app": "api" } })), &labels));
        assert!(!selects(&pdb(json!({})), &labels), "an empty selector protects nothing");
    }

    #[test]
    fn a_workload_pinned_to_a_node_is_off_the_shared_pool() {
        let mut moved = w(WorkloadKind::Deployment, 3);
        moved.scheduling.node_selector = Some(json!({ "kubernetes.io/hostname": "n1", "hexabase.ai/node-pool": "dedicated" }));
        assert_eq!(moved.pinned_node().as_deref(), Some("n1"));
        assert!(!moved.on_shared_pool());
        assert!(w(WorkloadKind::Deployment, 3).on_shared_pool());
    }
}
