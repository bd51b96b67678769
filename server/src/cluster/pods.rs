//! Pods as the dashboard reads them: one small record per pod (whose it is, where it runs,
//! what it holds there), indexed by node and by namespace, so a read touches only the pods of
//! the nodes and namespaces it shows, never the whole cluster's (pure; `cache::pods` keeps one
//! up to date from a watch).
//!
//! Why not `Pod`s: a `Pod` is ~2.4 KB as a struct and each `Container` ~2 KB even with every
//! optional field empty, and a read had to walk all of them (profiled at 20,000 pods: most of
//! a page's time and the server's memory, docs/BENCHMARKS.md). A record is computed once per
//! watch event; the index is shared copy-on-write (read-copy-update): a snapshot clones two
//! `Arc`s, and the writer copies a map or a bucket only when a snapshot still holds the old one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::capacity::{self, Resources};

/// What the dashboard knows of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRecord {
    pub namespace: Arc<str>,
    pub name: Box<str>,
    /// What workload selectors match.
    pub labels: BTreeMap<String, String>,
    /// The node it is bound to, if scheduled.
    pub node: Option<Arc<str>>,
    /// Its requests, by the scheduler's rule ([`capacity::pod_requests`]).
    pub requests: Resources,
    /// Succeeded or Failed: it holds nothing on its node any more.
    pub finished: bool,
    /// Running and not being deleted: serving.
    pub running: bool,
}

impl PodRecord {
    pub fn of(pod: &Pod) -> Self {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        Self {
            namespace: pod.metadata.namespace.as_deref().unwrap_or_default().into(),
            name: pod.metadata.name.as_deref().unwrap_or_default().into(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).map(Into::into),
            requests: pod.spec.as_ref().map(capacity::pod_requests).unwrap_or_default(),
            finished: !capacity::holds_requests(pod),
            running: phase == Some("Running") && pod.metadata.deletion_timestamp.is_none(),
        }
    }

    /// What it holds on its node: its requests until it has finished.
    pub fn holds(&self) -> Resources {
        if self.finished {
            Resources::default()
        } else {
            self.requests
        }
    }
}

/// Pods of one node (few) or one namespace (sorted by name, to find one by binary search).
type Bucket = Arc<Vec<Arc<PodRecord>>>;

/// Every pod of the cluster at one moment, by node and by namespace. Cloning is two `Arc`s.
#[derive(Clone, Default)]
pub struct Pods {
    by_node: Arc<HashMap<Arc<str>, Bucket>>,
    by_namespace: Arc<HashMap<Arc<str>, Bucket>>,
    count: usize,
}

impl Pods {
    /// The index of `pods` (a list from the API server, or a test's pods).
    pub fn of<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Self {
        Self::of_records(pods.into_iter().map(PodRecord::of).collect())
    }

    /// The index of `records` (a relist, all at once).
    pub fn of_records(mut records: Vec<PodRecord>) -> Self {
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        records.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        let (mut by_node, mut by_namespace) = (HashMap::<Arc<str>, Vec<_>>::new(), HashMap::<Arc<str>, Vec<_>>::new());
        let count = records.len();
        for record in records {
            let record = Arc::new(record);
            if let Some(node) = &record.node {
                by_node.entry(node.clone()).or_default().push(record.clone());
            }
            by_namespace.entry(record.namespace.clone()).or_default().push(record);
        }
        let buckets = |m: HashMap<Arc<str>, Vec<_>>| Arc::new(m.into_iter().map(|(k, v)| (k, Arc::new(v))).collect());
        Self { by_node: buckets(by_node), by_namespace: buckets(by_namespace), count }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The pods bound to the node `name`.
    pub fn on_node(&self, name: &str) -> &[Arc<PodRecord>] {
        self.by_node.get(name).map_or(&[], |b| b.as_slice())
    }

    /// The pods of the namespace `name`, by name.
    pub fn in_namespace(&self, name: &str) -> &[Arc<PodRecord>] {
        self.by_namespace.get(name).map_or(&[], |b| b.as_slice())
    }

    /// What the pods on node `name` hold there together.
    pub fn requested_on(&self, name: &str) -> Resources {
        self.on_node(name).iter().map(|p| p.holds()).sum()
    }

    /// Adds or replaces the pod (by namespace and name).
    pub fn upsert(&mut self, record: PodRecord) {
        self.remove(&record.namespace, &record.name);
        // The map's own key, so a namespace's or node's name is stored once, not per pod.
        let namespace = self.by_namespace.get_key_value(&*record.namespace).map_or_else(|| record.namespace.clone(), |(k, _)| k.clone());
        let node = record.node.as_ref().map(|n| self.by_node.get_key_value(&**n).map_or_else(|| n.clone(), |(k, _)| k.clone()));
        let record = Arc::new(PodRecord { namespace: namespace.clone(), node: node.clone(), ..record });
        if let Some(node) = node {
            Arc::make_mut(Arc::make_mut(&mut self.by_node).entry(node).or_default()).push(record.clone());
        }
        let bucket = Arc::make_mut(Arc::make_mut(&mut self.by_namespace).entry(namespace).or_default());
        let at = bucket.partition_point(|p| p.name < record.name);
        bucket.insert(at, record);
        self.count += 1;
    }

    /// Removes the pod `namespace/name`, if held.
    pub fn remove(&mut self, namespace: &str, name: &str) {
        let Some(bucket) = self.by_namespace.get(namespace) else { return };
        let Ok(at) = bucket.binary_search_by(|p| (*p.name).cmp(name)) else { return };
        let by_namespace = Arc::make_mut(&mut self.by_namespace);
        let bucket = by_namespace.get_mut(namespace).expect("just found");
        let gone = Arc::make_mut(bucket).remove(at);
        if bucket.is_empty() {
            by_namespace.remove(namespace);
        }
        if let Some(node) = gone.node.as_deref() {
            let by_node = Arc::make_mut(&mut self.by_node);
            if let Some(bucket) = by_node.get_mut(node) {
                Arc::make_mut(bucket).retain(|p| !Arc::ptr_eq(p, &gone));
                if bucket.is_empty() {
                    by_node.remove(node);
                }
            }
        }
        self.count -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, node: Option<&str>, cpu: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({ "metadata": { "namespace": ns, "name": name, "labels": { "app": "web" } },
                                       "spec": { "nodeName": node, "containers": [{ "name": "c", "resources": { "requests": { "cpu": cpu } } }] },
                                       "status": { "phase": phase } }))
        .unwrap()
    }

    fn names(pods: &[Arc<PodRecord>]) -> Vec<&str> {
        let mut names: Vec<&str> = pods.iter().map(|p| &*p.name).collect();
        names.sort();
        names
    }

    #[test]
    fn a_record_requests_what_the_scheduler_counts_for_the_whole_pod() {
        let full: Pod = serde_json::from_value(json!({
            "metadata": { "name": "web-1", "namespace": "a", "labels": { "app": "web" } },
            "spec": {
                "nodeName": "n1",
                "containers": [{ "name": "web", "image": "nginx", "resources": { "requests": { "cpu": "250m", "memory": "256Mi" }, "limits": { "cpu": "1" } } }],
                "initContainers": [
                    { "name": "sidecar", "image": "envoy", "restartPolicy": "Always", "resources": { "requests": { "cpu": "100m" } } },
                    { "name": "setup", "image": "busybox", "resources": { "requests": { "cpu": "2" } } }
                ],
                "overhead": { "cpu": "10m" }
            },
            "status": { "phase": "Running" }
        }))
        .unwrap();
        let record = PodRecord::of(&full);
        assert_eq!(record.holds(), capacity::requested([&full]));
        assert_eq!(record.holds().cpu, 2.01, "the init container's peak, plus the overhead");
        assert_eq!(record.labels, full.metadata.labels.unwrap(), "workload selectors read the labels");
    }

    #[test]
    fn a_record_holds_what_the_pod_requests_until_it_finishes() {
        let running = PodRecord::of(&pod("a", "web-1", Some("n1"), "250m", "Running"));
        assert_eq!((running.holds().cpu, running.running, running.node.as_deref()), (0.25, true, Some("n1")));
        let done = PodRecord::of(&pod("a", "job-1", Some("n1"), "2", "Succeeded"));
        assert_eq!((done.holds().cpu, done.running, done.finished), (0.0, false, true));
        let mut deleting = pod("a", "web-2", Some("n1"), "1", "Running");
        deleting.metadata.deletion_timestamp = Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap());
        let deleting = PodRecord::of(&deleting);
        assert!(!deleting.running && deleting.holds().cpu == 1.0, "a terminating pod still holds its node");
    }

    #[test]
    fn the_index_follows_every_event_and_a_snapshot_keeps_its_moment() {
        let mut pods = Pods::of(&[pod("a", "web-1", Some("n1"), "250m", "Running"), pod("b", "shop-1", Some("n1"), "1", "Running")]);
        let before = pods.clone();
        // The pod moves to n2 (a new version of the same pod), one is scheduled, one is deleted.
        pods.upsert(PodRecord::of(&pod("a", "web-1", Some("n2"), "250m", "Running")));
        pods.upsert(PodRecord::of(&pod("a", "web-0", None, "100m", "Pending")));
        pods.remove("b", "shop-1");
        pods.remove("b", "never-there");
        assert_eq!(names(pods.on_node("n1")), Vec::<&str>::new());
        assert_eq!(names(pods.on_node("n2")), ["web-1"]);
        assert_eq!(pods.in_namespace("a").iter().map(|p| &*p.name).collect::<Vec<_>>(), ["web-0", "web-1"], "by name");
        assert!(pods.in_namespace("b").is_empty());
        assert_eq!((pods.len(), pods.requested_on("n2").cpu), (2, 0.25));
        // The snapshot taken before the changes still sees its moment.
        assert_eq!(names(before.on_node("n1")), ["shop-1", "web-1"]);
        assert_eq!((before.len(), before.requested_on("n1").cpu), (2, 1.25));
    }

    #[test]
    fn a_list_with_the_same_pod_twice_keeps_one() {
        let pods = Pods::of(&[pod("a", "web-1", Some("n1"), "1", "Running"), pod("a", "web-1", Some("n1"), "1", "Running")]);
        assert_eq!((pods.len(), pods.requested_on("n1").cpu), (1, 1.0));
    }
}
