//! The cluster's pods kept up to date by one watch, as the index `cluster::pods` defines: a
//! snapshot takes the index as it is (two `Arc`s), the watch task applies each event to it.

use std::sync::{Arc, RwLock};

use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::reflected::{self, Health, Signals};
use crate::cluster::pods::{PodRecord, Pods};

/// The cluster's pods kept by one watch: what [`Pods`] a snapshot takes, whether the first
/// list has arrived, and the change counter live streams share.
#[derive(Clone)]
pub struct ReflectedPods {
    pods: Arc<RwLock<Pods>>,
    signals: Signals,
}

impl ReflectedPods {
    /// The index fed by `events` (a watcher of pods) and the task that drives it.
    pub fn start<S>(events: S, health: Arc<dyn Health>) -> (Self, impl std::future::Future<Output = ()> + Send)
    where
        S: Stream<Item = watcher::Result<watcher::Event<Pod>>> + Send + 'static,
    {
        let pods = Arc::new(RwLock::new(Pods::default()));
        let index = pods.clone();
        // A relist builds a new index aside and swaps it in whole when it is done, as kube's
        // store does: until then, reads see the last complete state.
        let mut relisting: Vec<PodRecord> = Vec::new();
        let apply = move |event: &watcher::Event<Pod>| match event {
            watcher::Event::Init => relisting.clear(),
            watcher::Event::InitApply(pod) => relisting.push(PodRecord::of(pod)),
            watcher::Event::InitDone => *index.write().expect("pods lock") = Pods::of_records(std::mem::take(&mut relisting)),
            watcher::Event::Apply(pod) => index.write().expect("pods lock").upsert(PodRecord::of(pod)),
            watcher::Event::Delete(pod) => index
                .write()
                .expect("pods lock")
                .remove(pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default()),
        };
        let (signals, driver) = reflected::drive("pods", events, health, apply);
        (Self { pods, signals }, driver)
    }

    pub fn is_synced(&self) -> bool {
        self.signals.is_synced()
    }

    /// Every pod, as of now.
    pub fn state(&self) -> Pods {
        self.pods.read().expect("pods lock").clone()
    }

    /// A counter that moves on every change of a pod (only changes after this call count).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.signals.changes()
    }
}
