//! What the cache keeps of each object: the fields the dashboard reads, nothing else. A pod
//! as the API server sends it is mostly container images, commands, env, volumes and status
//! the screens never show; at 20,000 pods that is most of the server's memory. Every field a
//! pure read in `cluster` or `backend` looks at must survive here: `tests/cache.rs` compares
//! cached reads with direct ones on a seeded cluster.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodStatus, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The last-applied configuration `kubectl apply` keeps: a second copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// A container reduced to what capacity counts: its name, requests (limits are not
/// scheduling), and whether an init container is a sidecar.
fn slim_container(c: &mut Container) {
    let keep = Container {
        name: std::mem::take(&mut c.name),
        resources: c.resources.take().map(|r| ResourceRequirements { requests: r.requests, ..Default::default() }),
        restart_policy: c.restart_policy.take(),
        ..Default::default()
    };
    *c = keep;
}

/// A pod: where it runs, what it requests, whose it is, and whether it is still running;
/// nothing more (kept by name, not by dropping what is known to be big: a field the API adds
/// later costs nothing here). The reads that look at pods: `capacity::requested` (containers,
/// init containers, overhead, phase), workload selectors (namespace, labels), the report
/// (node, phase, deletion), the cache's own bookkeeping (uid, resourceVersion).
pub fn pod(p: &mut Pod) {
    let meta = std::mem::take(&mut p.metadata);
    p.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        labels: meta.labels,
        uid: meta.uid,
        resource_version: meta.resource_version,
        deletion_timestamp: meta.deletion_timestamp,
        ..Default::default()
    };
    p.spec = p.spec.take().map(|mut spec| {
        spec.containers.iter_mut().for_each(slim_container);
        spec.init_containers.iter_mut().flatten().for_each(slim_container);
        PodSpec { node_name: spec.node_name, containers: spec.containers, init_containers: spec.init_containers, overhead: spec.overhead, ..Default::default() }
    });
    p.status = p.status.take().map(|status| PodStatus { phase: status.phase, ..Default::default() });
}

/// A node: its labels, taints and allocatable; not the list of every image it holds.
pub fn node(n: &mut Node) {
    slim_meta(&mut n.metadata);
    if let Some(status) = n.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
    }
}

/// A Deployment or StatefulSet keeps its whole spec (the template is what a move patches and
/// the dry run shows) without the server's bookkeeping.
pub fn deployment(d: &mut Deployment) {
    slim_meta(&mut d.metadata);
}

pub fn stateful_set(s: &mut StatefulSet) {
    slim_meta(&mut s.metadata);
}

/// Anything else: only the server's bookkeeping goes.
pub fn meta<K: kube::Resource>(k: &mut K) {
    slim_meta(k.meta_mut());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity;
    use serde_json::json;

    #[test]
    fn a_slim_pod_requests_what_the_full_one_does() {
        let full: Pod = serde_json::from_value(json!({
            "metadata": { "name": "web-1", "namespace": "a", "labels": { "app": "web" }, "annotations": { "big": "x" },
                          "managedFields": [{ "manager": "kubectl" }], "resourceVersion": "7", "uid": "u-1",
                          "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "u-2" }] },
            "spec": {
                "nodeName": "n1",
                "tolerations": [{ "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute" }],
                "serviceAccountName": "default",
                "containers": [{ "name": "web", "image": "nginx", "env": [{ "name": "A", "value": "1" }],
                                 "resources": { "requests": { "cpu": "250m", "memory": "256Mi" }, "limits": { "cpu": "1" } } }],
                "initContainers": [
                    { "name": "sidecar", "image": "envoy", "restartPolicy": "Always", "resources": { "requests": { "cpu": "100m" } } },
                    { "name": "setup", "image": "busybox", "resources": { "requests": { "cpu": "2" } } }
                ],
                "overhead": { "cpu": "10m" },
                "volumes": [{ "name": "v", "emptyDir": {} }]
            },
            "status": { "phase": "Running", "containerStatuses": [{ "name": "web", "ready": true, "restartCount": 0, "image": "nginx", "imageID": "" }],
                        "conditions": [{ "type": "Ready", "status": "True" }], "qosClass": "Burstable" }
        }))
        .unwrap();
        let mut slim = full.clone();
        pod(&mut slim);
        assert_eq!(capacity::requested([&slim]), capacity::requested([&full]));
        assert_eq!(slim.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert_eq!(slim.metadata.labels, full.metadata.labels, "workload selectors read the labels");
        assert!(capacity::holds_requests(&slim));
        let text = serde_json::to_string(&slim).unwrap();
        assert_eq!((slim.metadata.resource_version.as_deref(), slim.metadata.uid.as_deref()), (Some("7"), Some("u-1")), "the cache's bookkeeping");
        for gone in [
            "nginx",
            "envoy",
            "emptyDir",
            "managedFields",
            "big",
            "limits",
            "containerStatuses",
            "not-ready",
            "serviceAccount",
            "ReplicaSet",
            "conditions",
            "qosClass",
        ] {
            assert!(!text.contains(gone), "{gone} is kept: {text}");
        }
    }
}
