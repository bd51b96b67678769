//! The `DedicatedNode` controller: walks each order through its steps, level-triggered.
//! Every reconcile starts from what the cluster says (the order's status and its Node), does
//! the next steps that can be done now, and writes the status once. A server killed at any
//! instant repeats at most the step it was in, and every step is safe to repeat.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use time::OffsetDateTime;

use super::provider::{NodeRequest, Progress, ProviderError};
use super::steps::{self, StatusExt};
use super::{Context, Error, Result};
use crate::cluster::labels;
use crate::crd::{DedicatedNode, DedicatedNodeStatus, NodePhase, ProvisioningError, StepName};
use crate::engine::retry::Retry;
use crate::engine::time::sooner;

/// Held on every order until its Node is gone, so deleting an order never leaks a machine.
pub const FINALIZER: &str = "hexabase.ai/dedicated-node";
pub const FIELD_MANAGER: &str = "hexabase-provisioning";
/// A registered Node that is not Ready yet is looked at again this often if no event comes.
const READY_POLL: Duration = Duration::from_secs(5);
/// A settled order is looked at again now and then, in case a watch event was missed.
const RESYNC: Duration = Duration::from_secs(300);
/// The watch event that refreshes a stale cache is normally milliseconds away.
const STALE_CACHE_RETRY: Duration = Duration::from_millis(200);

/// Runs the controller until the returned future is dropped (or the watch streams end).
pub async fn run(client: Client, ctx: Arc<Context>) {
    let orders = Api::<DedicatedNode>::all(client.clone());
    let nodes = Api::<Node>::all(client);
    let dedicated = format!("{}={}", labels::NODE_POOL, labels::POOL_DEDICATED);
    Controller::new(orders, watcher::Config::default().labels(&ctx.config.scope.selector()))
        // A Node event (KWOK marking it Ready) wakes its owner at once instead of at the next poll.
        .owns(nodes, watcher::Config::default().labels(&dedicated))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(order = %obj.name, "reconciled"),
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => tracing::debug!(order = %obj.name, "gone before reconcile"),
                Err(e) => tracing::warn!(error = %e, "provisioning reconcile failed"),
            }
        })
        .await;
}

async fn reconcile(dn: Arc<DedicatedNode>, ctx: Arc<Context>) -> Result<Action> {
    let api = Api::<DedicatedNode>::all(ctx.client.clone());
    // The finalizer helper adds the finalizer (and returns) before any Apply runs: nothing
    // with a side effect happens to an order that could be deleted without cleanup.
    finalizer(&api, FINALIZER, dn, move |event| async move {
        match event {
            Event::Apply(dn) => apply(&dn, &ctx).await,
            Event::Cleanup(dn) => cleanup(&dn, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(dn: Arc<DedicatedNode>, error: &Error, _ctx: Arc<Context>) -> Action {
    let after = error.retry_after();
    tracing::warn!(order = %dn.name_any(), error = %error, retry_in_ms = after.as_millis() as u64, "provisioning step will be retried");
    Action::requeue(after)
}

/// Where this reconcile starts: the stored status, or a fresh one for a new order or for a
/// failed order whose spec was changed since (the user picked an alternative: try again).
fn starting_status(dn: &DedicatedNode) -> DedicatedNodeStatus {
    match &dn.status {
        Some(s) if s.phase == NodePhase::Failed && s.observed_generation != dn.metadata.generation => steps::fresh(),
        Some(s) if !s.steps.is_empty() => s.clone(),
        _ => steps::fresh(),
    }
}

async fn apply(dn: &DedicatedNode, ctx: &Context) -> Result<Action> {
    let generation = dn.metadata.generation;
    let mut status = starting_status(dn);
    let mut requeue = None;
    // The user hears about an outcome only once it is stored (written by an earlier
    // reconcile), so a message never runs ahead of the status it describes.
    if matches!(status.phase, NodePhase::Ready | NodePhase::Failed) && !status.is_notified() {
        // A message cannot be taken back, so check the cache against the API server first:
        // a reconcile woken (say by a Node event) before our own last write reached the cache
        // would otherwise tell the user a second time.
        let current = Api::<DedicatedNode>::all(ctx.client.clone()).get(&dn.name_any()).await?;
        if current.resource_version() != dn.resource_version() {
            return Ok(Action::requeue(STALE_CACHE_RETRY));
        }
        tell_user(dn, &status, ctx).await?;
        let reason = status.phase.as_str();
        status.set_condition(steps::NOTIFIED, true, reason, "", generation, OffsetDateTime::now_utc());
    }
    let outcome = match ctx.request_for(dn) {
        Ok(req) => run_steps(dn, &req, &mut status, ctx).await,
        Err(invalid) => reject(&mut status, invalid).map(|_| None),
    };
    status.settle(generation, OffsetDateTime::now_utc());
    if dn.status.as_ref() != Some(&status) {
        write_status(ctx, dn, &status).await?;
    }
    if matches!(status.phase, NodePhase::Ready | NodePhase::Failed) && !status.is_notified() {
        // Our own status event brings the next reconcile; this is only the fallback.
        requeue = sooner(requeue, Duration::from_secs(1));
    }
    let waits = outcome?;
    Ok(Action::requeue(sooner(requeue, waits.unwrap_or(RESYNC)).unwrap_or(RESYNC)))
}

/// Runs the steps that can finish now. Returns how soon to look again if one is waiting; an
/// error leaves the step running with the error as its message, to be retried.
async fn run_steps(dn: &DedicatedNode, req: &NodeRequest, status: &mut DedicatedNodeStatus, ctx: &Context) -> Result<Option<Duration>> {
    while let Some(step) = status.next_step() {
        let now = OffsetDateTime::now_utc();
        status.start(step, now)?;
        let result = match step {
            StepName::CapacityReserved => ctx.provider.reserve(req).await.map(|()| Progress::Done),
            StepName::Booting => ctx.provider.launch(req, status.started_at(step).unwrap_or(now)).await,
            StepName::Registering => ctx.provider.register(req).await,
            StepName::Ready => node_ready(ctx, req).await,
        };
        match result {
            Ok(Progress::Done) => {
                status.complete(step, OffsetDateTime::now_utc())?;
                if step == StepName::Registering {
                    status.node_name = Some(req.name.clone());
                }
            }
            Ok(Progress::InProgress { retry_after }) => {
                status.note(step, None);
                return Ok(Some(retry_after));
            }
            Err(ProviderError::InsufficientCapacity { region, size }) => {
                let offerings = ctx.provider.offerings().await?;
                let alternatives = steps::alternatives(&ctx.catalogue, &offerings, &region, &size);
                tracing::info!(order = %dn.name_any(), %region, %size, offered = alternatives.len(), "no capacity");
                status.fail(step, OffsetDateTime::now_utc(), steps::insufficient_capacity(&region, &size), alternatives)?;
                return Ok(None);
            }
            Err(e) => {
                status.note(step, Some(format!("Retrying: {e}")));
                return Err(e.into());
            }
        }
    }
    Ok(None)
}

/// An order the catalogue cannot fill fails at its first step; nothing is created.
fn reject(status: &mut DedicatedNodeStatus, invalid: ProvisioningError) -> Result<()> {
    if status.next_step() == Some(StepName::CapacityReserved) {
        let now = OffsetDateTime::now_utc();
        status.start(StepName::CapacityReserved, now)?;
        status.fail(StepName::CapacityReserved, now, invalid, vec![])?;
    }
    Ok(())
}

/// The last step: KWOK (or a real kubelet) reports the Node Ready. A Node that vanished after
/// registering is registered again rather than waited for forever.
async fn node_ready(ctx: &Context, req: &NodeRequest) -> std::result::Result<Progress, ProviderError> {
    let wait = Progress::InProgress { retry_after: READY_POLL };
    let Some(node) = Api::<Node>::all(ctx.client.clone()).get_opt(&req.name).await? else {
        ctx.provider.register(req).await?;
        return Ok(wait);
    };
    let ready = node.status.and_then(|s| s.conditions).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Ok(if ready { Progress::Done } else { wait })
}

async fn tell_user(dn: &DedicatedNode, status: &DedicatedNodeStatus, ctx: &Context) -> Result<()> {
    match (&status.phase, &status.error) {
        (NodePhase::Ready, _) => ctx.events.node_ready(dn).await?,
        (_, Some(error)) => ctx.events.node_failed(dn, error).await?,
        (_, None) => ctx.events.node_failed(dn, &ProvisioningError { reason: "Failed".into(), message: "provisioning failed".into() }).await?,
    }
    Ok(())
}

async fn cleanup(dn: &DedicatedNode, ctx: &Context) -> Result<Action> {
    let mut status = dn.status.clone().unwrap_or_else(steps::fresh);
    status.phase = NodePhase::Deleting;
    if dn.status.as_ref() != Some(&status) {
        write_status(ctx, dn, &status).await?;
    }
    match ctx.provider.release(&dn.name_any()).await? {
        Progress::Done => {
            // The audit row must not keep a deleted order alive: log and go on.
            if let Err(e) = ctx.events.node_released(dn).await {
                tracing::warn!(order = %dn.name_any(), error = %e, "could not audit the release");
            }
            Ok(Action::await_change())
        }
        Progress::InProgress { .. } => Err(Error::NodeStillExists(dn.name_any())),
    }
}

/// The one status write of a reconcile: server-side apply of the whole status, conditional on
/// the resourceVersion we read, so a reconcile working from a stale cache cannot undo a newer
/// status (it gets a conflict and runs again on fresh data).
async fn write_status(ctx: &Context, dn: &DedicatedNode, status: &DedicatedNodeStatus) -> Result<()> {
    let patch = serde_json::json!({
        "apiVersion": DedicatedNode::api_version(&()),
        "kind": DedicatedNode::kind(&()),
        "metadata": { "resourceVersion": dn.resource_version() },
        "status": status,
    });
    Api::<DedicatedNode>::all(ctx.client.clone()).patch_status(&dn.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}
