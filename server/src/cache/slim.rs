//! What the cache keeps of each object other than pods (those become a `cluster::pods::PodRecord`):
//! the objects without the server's bookkeeping. Every field a pure read in `cluster` or
//! `backend` looks at must survive here: `tests/cache.rs` compares cached reads with direct
//! ones on a seeded cluster.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The last-applied configuration `kubectl apply` keeps: a second copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
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
