//! What both controllers share: which objects a controller takes (its scope), times in the
//! status, how soon a failed reconcile runs again, telling people (notification and audit,
//! Kubernetes Events),
//! and installing the platform's own objects in the cluster. Below `provisioning` and
//! `migration`; it knows neither.

pub mod install;
pub mod kube_events;
pub mod notify;
pub mod retry;
pub mod scope;
pub mod time;

pub use scope::{Scope, SCOPE_LABEL};
