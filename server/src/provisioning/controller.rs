//! The `DedicatedNode` controller: walks each order through its steps, level-triggered.
//! Every reconcile starts from what the cluster says (the order's status and its Node), does
//! the next steps that can be done now, and writes the status once. A server killed at any
//! instant repeats at most the step it was in, and every step is safe to repeat.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use time::OffsetDateTime;

use super::kube_events;
use super::provider::{Machine, NodeRequest, Observation, Progress, ProviderError, Stage};
use super::steps::{self, News, StatusExt};
use super::{Context, Error, Result};
use crate::cluster::labels;
use crate::crd::{DedicatedNode, DedicatedNodeStatus, NodePhase, ProvisioningError, StepName, StepState};
use crate::engine::retry::Retry;
use crate::engine::time::sooner;

/// Held on every order until its machine is gone, so deleting an order never leaks a machine.
pub const FINALIZER: &str = "hexabase.ai/dedicated-node";
pub const FIELD_MANAGER: &str = "hexabase-provisioning";
/// A step waiting on its provider is looked at again this often if no event comes.
const STEP_POLL: Duration = Duration::from_secs(5);
/// A settled order is looked at again now and then, in case a watch event was missed.
const RESYNC: Duration = Duration::from_secs(300);
/// The watch event that refreshes a stale cache is normally milliseconds away.
const STALE_CACHE_RETRY: Duration = Duration::from_millis(200);

/// Runs the controller until the returned future is dropped (or the watch streams end).
pub async fn run(client: Client, ctx: Arc<Context>) {
    let orders = Api::<DedicatedNode>::all(client.clone());
    // What the provider makes for each order (a Node, a NodeClaim), owned by the order: its
    // changes (KWOK marking a Node Ready, Karpenter setting a condition or deleting a claim)
    // wake the order at once instead of at the next poll.
    let kind = ctx.provider.machine_kind();
    let machines = Api::<DynamicObject>::all_with(client, &kind);
    let dedicated = format!("{}={}", labels::NODE_POOL, labels::POOL_DEDICATED);
    Controller::new(orders, watcher::Config::default().labels(&ctx.config.scope.selector()))
        .owns_with(machines, kind, watcher::Config::default().labels(&dedicated))
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
    if let Some(news) = status.news() {
        // A message cannot be taken back, so check the cache against the API server first:
        // a reconcile woken (say by a Node event) before our own last write reached the cache
        // would otherwise tell the user a second time.
        let current = Api::<DedicatedNode>::all(ctx.client.clone()).get(&dn.name_any()).await?;
        if current.resource_version() != dn.resource_version() {
            return Ok(Action::requeue(STALE_CACHE_RETRY));
        }
        tell_user(dn, &status, news, ctx).await?;
        status.told(news, generation, OffsetDateTime::now_utc());
    }
    let outcome = match ctx.request_for(dn) {
        Ok(req) => provision(&req, &mut status, generation, ctx).await,
        Err(invalid) => reject(&mut status, invalid).map(|_| None),
    };
    status.settle(generation, OffsetDateTime::now_utc());
    if dn.status.as_ref() != Some(&status) {
        write_status(ctx, dn, &status).await?;
        ctx.kube_events.publish(&dn.object_ref(&()), &kube_events::changes(dn.status.as_ref(), &status)).await;
    }
    if status.news().is_some() {
        // Our own status event brings the next reconcile; this is only the fallback.
        requeue = sooner(requeue, Duration::from_secs(1));
    }
    let waits = outcome?;
    Ok(Action::requeue(sooner(requeue, waits.unwrap_or(RESYNC)).unwrap_or(RESYNC)))
}

/// Moves the order as far as it can go now. Returns how soon to look again if something is
/// waiting; an error leaves the running step with the error as its message, to be retried.
async fn provision(req: &NodeRequest, status: &mut DedicatedNodeStatus, generation: Option<i64>, ctx: &Context) -> Result<Option<Duration>> {
    let provider = &ctx.provider;
    if status.steps.iter().any(|s| s.state == StepState::Failed) {
        // A failed order keeps nothing running (a step that timed out may have left a machine).
        return Ok(match provider.release(&req.name).await? {
            Progress::Done => None,
            Progress::InProgress { retry_after } => Some(retry_after),
        });
    }
    if status.next_step().is_none() {
        // Ready: is its machine still there? A lost one is replaced, and the user told.
        let seen = provider.observe(req).await?;
        match lost(&seen, status.node_name.as_deref()) {
            None => return Ok(seen.retry_after),
            Some(why) => {
                tracing::warn!(order = %req.name, node = ?status.node_name, %why, "dedicated node lost; replacing it");
                status.node_lost(&why, generation, OffsetDateTime::now_utc());
            }
        }
    }
    // The platform's own count first, before anything is created; once per attempt.
    if !status.holds_capacity() {
        status.start(StepName::CapacityReserved, OffsetDateTime::now_utc())?;
        match provider.reserve(req).await {
            Ok(()) => status.hold_capacity(generation, OffsetDateTime::now_utc()),
            Err(e) => return refused(req, status, StepName::CapacityReserved, e, ctx).await,
        }
    }
    let Some(current) = status.next_step() else { return Ok(None) };
    status.start(current, OffsetDateTime::now_utc())?;
    let since = status.started_at(StepName::CapacityReserved).unwrap_or_else(OffsetDateTime::now_utc);
    let seen = match provider.ensure(req, since).await {
        Ok(seen) => seen,
        Err(e) => return refused(req, status, current, e, ctx).await,
    };
    // Every step the machine's stage has reached is done; the first one it has not is waiting.
    let (reached, node) = seen.reached();
    while let Some(step) = status.next_step() {
        let now = OffsetDateTime::now_utc();
        status.start(step, now)?;
        if reached >= Some(Stage::ending(step)) {
            status.complete(step, now)?;
            if step == StepName::Registering {
                status.node_name = node.map(String::from);
            }
            continue;
        }
        status.note(step, seen.note.clone());
        let running_for = status.started_at(step).map(|t| (now - t).try_into().unwrap_or(Duration::ZERO)).unwrap_or(Duration::ZERO);
        let limit = provider.step_timeout(step);
        if let Some(limit) = limit.filter(|l| running_for >= *l) {
            tracing::warn!(order = %req.name, step = step.as_str(), ?limit, note = ?seen.note, "step timed out");
            status.fail(step, now, steps::timed_out(step, limit, seen.note.as_deref()), vec![])?;
            // The failed order's next reconcile releases the machine.
            return Ok(Some(Duration::from_millis(500)));
        }
        let wait = seen.retry_after.unwrap_or(STEP_POLL);
        return Ok(Some(limit.map_or(wait, |l| wait.min(l.saturating_sub(running_for)).max(Duration::from_millis(100)))));
    }
    Ok(seen.retry_after)
}

/// Why a Ready order's machine no longer serves it, if it does not.
fn lost(seen: &Observation, recorded: Option<&str>) -> Option<String> {
    let why = |default: &str| seen.note.clone().unwrap_or_else(|| default.to_string());
    match &seen.machine {
        Machine::Absent => Some(why("its machine is gone")),
        Machine::Terminating => Some(why("its machine is being terminated")),
        Machine::Up { node: Some(node), .. } if recorded.is_some_and(|r| r != node) => Some(format!("it now runs as Node {node}")),
        Machine::Up { .. } => None,
    }
}

/// A provider call failed on `step`: no capacity fails the order with the alternatives (use
/// case 5a); anything else is shown on the step and retried.
async fn refused(req: &NodeRequest, status: &mut DedicatedNodeStatus, step: StepName, error: ProviderError, ctx: &Context) -> Result<Option<Duration>> {
    match error {
        ProviderError::InsufficientCapacity { region, size } => {
            let offerings = ctx.provider.offerings().await?;
            let alternatives = steps::alternatives(&ctx.catalogue, &offerings, &region, &size);
            tracing::info!(order = %req.name, %region, %size, step = step.as_str(), offered = alternatives.len(), "no capacity");
            status.start(step, OffsetDateTime::now_utc())?;
            status.fail(step, OffsetDateTime::now_utc(), steps::insufficient_capacity(&region, &size), alternatives)?;
            Ok(Some(Duration::from_millis(500)))
        }
        e => {
            status.note(step, Some(format!("Retrying: {e}")));
            Err(e.into())
        }
    }
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

async fn tell_user(dn: &DedicatedNode, status: &DedicatedNodeStatus, news: News, ctx: &Context) -> Result<()> {
    let lost_because = || status.conditions.iter().find(|c| c.type_ == steps::NODE_LOST).map(|c| c.message.clone()).unwrap_or_default();
    match news {
        News::Ready => ctx.events.node_ready(dn).await?,
        News::Replaced => ctx.events.node_replaced(dn, status.node_name.as_deref().unwrap_or("a new node")).await?,
        News::NodeLost => ctx.events.node_lost(dn, &lost_because()).await?,
        News::Failed => {
            let failed = ProvisioningError { reason: "Failed".into(), message: "provisioning failed".into() };
            ctx.events.node_failed(dn, status.error.as_ref().unwrap_or(&failed)).await?
        }
    }
    Ok(())
}

async fn cleanup(dn: &DedicatedNode, ctx: &Context) -> Result<Action> {
    let mut status = dn.status.clone().unwrap_or_else(steps::fresh);
    status.phase = NodePhase::Deleting;
    if dn.status.as_ref() != Some(&status) {
        write_status(ctx, dn, &status).await?;
        ctx.kube_events.publish(&dn.object_ref(&()), &[kube_events::releasing(dn)]).await;
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
