//! Kubernetes Events from the controllers, as Karpenter publishes them on its NodeClaims: what
//! `kubectl describe` shows under the object, and what the node page lists. Each controller
//! decides which Events a status change owes (a pure diff of the status it read and the one
//! it wrote: `provisioning::kube_events`, `migration::kube_events`) and publishes them here
//! only after that write succeeded, so a reconcile that lost a race says nothing.
//!
//! Best effort, as in Kubernetes itself: an Event that cannot be published is logged, never a
//! reason to retry a step. The API server keeps Events for its `--event-ttl` (an hour by
//! default); the notifications and the audit log are the lasting record.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

/// Publishes the Events of one controller of this process.
#[derive(Clone)]
pub struct KubeEvents {
    recorder: Recorder,
}

impl KubeEvents {
    /// `controller` is the Events' `reportingController` (e.g. `hexabase.ai/provisioning`).
    pub fn new(client: Client, controller: &str) -> Self {
        // The instance tells replicas apart (the chart's pods are named by their hostname).
        let instance = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
        Self { recorder: Recorder::new(client, Reporter { controller: controller.into(), instance }) }
    }

    /// Publishes `events` about the object `regarding`, in order. Kube's recorder turns a
    /// repeat (same reason and action on the same object, within its cache's lifetime) into a
    /// series with a count instead of a new Event.
    pub async fn publish(&self, regarding: &ObjectReference, events: &[Event]) {
        for event in events {
            if let Err(e) = self.recorder.publish(event, regarding).await {
                tracing::warn!(object = ?regarding.name, reason = %event.reason, error = %e, "could not publish a Kubernetes Event");
            }
        }
    }
}

pub fn normal(reason: &str, action: &str, note: String) -> Event {
    Event { type_: EventType::Normal, reason: reason.into(), note: Some(note), action: action.into(), secondary: None }
}

pub fn warning(reason: &str, action: &str, note: String) -> Event {
    Event { type_: EventType::Warning, reason: reason.into(), note: Some(note), action: action.into(), secondary: None }
}
