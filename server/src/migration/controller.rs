//! The `WorkloadMigration` controller: moves each migration's workloads, level-triggered.
//!
//! Every reconcile starts from the API server's copy of the migration (not the watch cache:
//! an action taken on a stale status could not be taken back) and the workloads as they are,
//! makes the moves that can be made now, and writes the status. A status that announces an
//! action ("web is Moving", "web is RollingBack") is written BEFORE the action, and every
//! action is safe to repeat: a server killed at any instant finds the workload's state in the
//! status and the record of what to restore on the workload itself (the
//! `hexabase.ai/original-scheduling` annotation), and finishes the move or the rollback.
//! A finalizer makes deleting a migration mid-move a cancel: the moving workload is restored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use app::model::{SharedPoolSnapshot, WorkloadKey};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::core::SelectorExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};

use super::events::Told;
use super::kube_events;
use super::latency::{observe, GuardDecision, GuardSettings};
use super::patch::{self, Scheduling, MIGRATION_ANNOTATION, ORIGINAL_ANNOTATION};
use super::rollout::{self, Cause, Counts, Verdict};
use super::steps::{self, MigrationStatusExt, Next};
use super::troubleshooting::{self, Fit, NodeCheck};
use super::{record_available, Context, Error, Result};
use crate::capacity::{self, Demand};
use crate::cluster::{labels, usage, workloads};
use crate::crd::{MigrationError, MigrationState, WorkloadKind, WorkloadMigration, WorkloadMigrationStatus, WorkloadState};
use crate::engine::retry::Retry;
use crate::engine::time::{now, parse_rfc3339, rfc3339, sooner};

pub const FIELD_MANAGER: &str = "hexabase-migration";
/// Held on every migration, so deleting one mid-move restores the workload it was moving.
pub const FINALIZER: &str = "hexabase.ai/workload-migration";
/// A settled migration is looked at again now and then, in case a watch event was missed.
const RESYNC: Duration = Duration::from_secs(300);
/// State changes one reconcile may make before it lets others run.
const MAX_STEPS: usize = 32;

/// Runs the controller until the returned future is dropped (or the watch streams end).
pub async fn run(client: Client, ctx: Arc<Context>) {
    let migrations = Api::<WorkloadMigration>::all(client.clone());
    let seen_deployments = ctx.lowest_available.clone();
    let seen_sets = ctx.lowest_available.clone();
    Controller::new(migrations, watcher::Config::default().labels(&ctx.config.scope.selector()))
        // A workload's events wake the migration moving it, and every one of them counts
        // towards the lowest availability seen: a dip between two reconciles is not missed.
        // Only the workloads a migration moves (labelled in the same patch that moves them).
        .watches(Api::<Deployment>::all(client.clone()), watcher::Config::default().labels(patch::MOVED_LABEL), move |d: Deployment| {
            let available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            mover(&d.metadata, WorkloadKind::Deployment).map(|(migration, key)| {
                record_available(&seen_deployments, key, available);
                migration
            })
        })
        .watches(Api::<StatefulSet>::all(client.clone()), watcher::Config::default().labels(patch::MOVED_LABEL), move |s: StatefulSet| {
            let available = s.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            mover(&s.metadata, WorkloadKind::StatefulSet).map(|(migration, key)| {
                record_available(&seen_sets, key, available);
                migration
            })
        })
        // The moved pods (marked in the same patch): one that cannot be scheduled, starts or
        // becomes Ready wakes its migration at once; no timer lists them.
        .watches(Api::<Pod>::all(client), watcher::Config::default().labels(patch::MOVED_LABEL), |pod: Pod| migration_of(&pod.metadata))
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(migration = %obj.name, "reconciled"),
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => tracing::debug!(migration = %obj.name, "not ours or gone"),
                Err(e) => tracing::warn!(error = %e, "migration reconcile failed"),
            }
        })
        .await;
}

/// The migration that moved (or is moving) a workload or pod, from its annotation.
fn migration_of(meta: &ObjectMeta) -> Option<ObjectRef<WorkloadMigration>> {
    let (ns, name) = meta.annotations.as_ref()?.get(MIGRATION_ANNOTATION)?.split_once('/')?;
    Some(ObjectRef::new(name).within(ns))
}

/// The migration that moved (or is moving) a workload, and the workload.
fn mover(meta: &ObjectMeta, kind: WorkloadKind) -> Option<(ObjectRef<WorkloadMigration>, WorkloadKey)> {
    Some((migration_of(meta)?, WorkloadKey::new(meta.namespace.clone()?, kind, meta.name.clone()?)))
}

/// Namespaces of Kubernetes itself: never a tenant's, whatever their labels say.
fn is_system_namespace(name: &str) -> bool {
    name.starts_with("kube-") || name == "default"
}

/// How a migration signs the workloads it moves: `<namespace>/<name>`.
fn migration_id(wm: &WorkloadMigration) -> String {
    format!("{}/{}", wm.namespace().unwrap_or_default(), wm.name_any())
}

fn error_policy(wm: Arc<WorkloadMigration>, error: &Error, _ctx: Arc<Context>) -> Action {
    let after = error.retry_after();
    tracing::warn!(migration = %wm.name_any(), error = %error, retry_in_ms = after.as_millis() as u64, "migration step will be retried");
    Action::requeue(after)
}

async fn reconcile(cached: Arc<WorkloadMigration>, ctx: Arc<Context>) -> Result<Action> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let api = Api::<WorkloadMigration>::namespaced(ctx.client.clone(), &ns);
    let Some(wm) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    // The finalizer helper adds the finalizer (and returns) before any Apply runs.
    finalizer(&api, FINALIZER, Arc::new(wm), |event| async {
        match event {
            Event::Apply(wm) => {
                let wm = Arc::unwrap_or_clone(wm);
                let rv = wm.resource_version().unwrap_or_default();
                Run { ctx: &ctx, api: api.clone(), ns: ns.clone(), rv, wm, written: None, hostname: None }.apply().await
            }
            Event::Cleanup(wm) => cancel(&wm, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// A migration deleted while it moves a workload restores that workload: cancelling rolls
/// back what is in flight. Workloads already moved stay on the node.
async fn cancel(wm: &WorkloadMigration, ctx: &Context) -> Result<Action> {
    let in_flight = wm.status.iter().flat_map(|s| &s.workloads).filter(|w| matches!(w.state, WorkloadState::Moving | WorkloadState::RollingBack));
    for w in in_flight {
        let key = &w.workload;
        let Some(workload) = Workload::get(&ctx.client, key).await? else { continue };
        let annotations = workload.annotations();
        if annotations.get(MIGRATION_ANNOTATION) != Some(&migration_id(wm)) {
            continue;
        }
        let Some(saved) = annotations.get(ORIGINAL_ANNOTATION) else { continue };
        match patch::restore_patch(key.kind, saved, &workload.json()) {
            Ok(mut patch) => {
                patch["metadata"]["resourceVersion"] = json!(workload.resource_version());
                tracing::info!(migration = %wm.name_any(), workload = %key, "migration deleted mid-move: restoring the original scheduling");
                workload.patch(&ctx.client, &patch).await?;
            }
            Err(e) => tracing::warn!(migration = %wm.name_any(), workload = %key, error = %e, "the saved scheduling cannot be read; left as is"),
        }
    }
    Ok(Action::await_change())
}

/// One reconcile of one migration.
struct Run<'a> {
    ctx: &'a Context,
    api: Api<WorkloadMigration>,
    ns: String,
    wm: WorkloadMigration,
    /// The resourceVersion our next write is conditional on.
    rv: String,
    /// The status last written by this reconcile.
    written: Option<WorkloadMigrationStatus>,
    /// The target's hostname label (`cluster::hostname`), read by `validate` with the Node.
    hostname: Option<String>,
}

/// Where this reconcile starts: the stored status, or a fresh one for a new migration or for
/// a rolled-back or failed one whose `spec.retry` was raised.
fn starting_status(wm: &WorkloadMigration) -> WorkloadMigrationStatus {
    match &wm.status {
        // A retry starts over, but "before" stays what it was before the first attempt.
        Some(s) if matches!(s.phase, MigrationState::RolledBack | MigrationState::Failed) && s.attempt != wm.spec.retry => {
            WorkloadMigrationStatus { before: s.before.clone(), ..steps::fresh(&wm.spec) }
        }
        Some(s) if !s.workloads.is_empty() || s.error.is_some() => s.clone(),
        _ => steps::fresh(&wm.spec),
    }
}

/// What following one workload came to.
enum Step {
    /// The status changed; `announce`: write it before anything else happens.
    Changed { announce: bool },
    /// Nothing to do until this much later (or a watch event).
    Wait(Duration),
}

impl Run<'_> {
    async fn apply(mut self) -> Result<Action> {
        let mut status = starting_status(&self.wm);
        let approved = self.wm.spec.approved_phases;
        let mut requeue = None;
        let mut paused = self.paused(&mut requeue).await?;
        // The user hears about an outcome once it is stored (it was written by an earlier
        // reconcile and read back from the API server above), and the fact is stored at once:
        // a message cannot be taken back, so the window for telling twice stays small.
        if steps::is_newsworthy(status.phase) && !status.is_notified() {
            self.tell_user(&status).await?;
            status.mark_notified(self.wm.metadata.generation, now());
            self.write_status(&mut status, paused).await?;
        }
        // Settling first ends a pause the user lifted (and resets the guard) before sampling.
        status.settle(approved, paused, self.wm.metadata.generation, now());
        // Ownership is checked on every reconcile, not only before the first move: a
        // namespace or a node that stops belonging to the workspace stops the migration, and
        // a workload in flight goes back where it was.
        if !status.phase.is_final() && status.error.is_none() {
            if let Some(invalid) = self.validate().await? {
                tracing::info!(migration = %self.wm.name_any(), reason = %invalid.message, "rejected");
                match status.workloads.iter().position(|w| w.state == WorkloadState::Moving) {
                    Some(i) => status.roll_back(i, now(), invalid)?,
                    None => status.reject(invalid),
                }
            } else if status.started_at.is_none() && status.before.is_none() {
                status.before = Some(self.snapshot(&status).await?);
            }
        }
        if !status.phase.is_final() && status.error.is_none() {
            if let Some(reason) = self.sample_latency(&mut status, &mut requeue).await? {
                // The guard pauses the way the user does, so that one switch resumes.
                if !self.wm.spec.paused {
                    self.set_paused(true, None).await?;
                }
                status.pause_reason = Some(reason);
                paused = true;
            }
        }
        for _ in 0..MAX_STEPS {
            let step = match status.next(approved, paused) {
                Next::Start(i) => {
                    status.start(i, now())?;
                    // Readings from before this move do not count towards it.
                    self.ctx.take_lowest_available(&status.workloads[i].workload);
                    Step::Changed { announce: true }
                }
                Next::Follow(i) => self.follow(&mut status, i).await?,
                Next::RollBack(i) => self.roll_back(&mut status, i).await?,
                Next::AwaitApproval | Next::Paused | Next::Finished => break,
            };
            match step {
                Step::Changed { announce: true } => self.write_status(&mut status, paused).await?,
                Step::Changed { announce: false } => {}
                Step::Wait(after) => {
                    requeue = sooner(requeue, after);
                    break;
                }
            }
        }
        status.settle(approved, paused, self.wm.metadata.generation, now());
        let last = self.written.as_ref().or(self.wm.status.as_ref());
        if last != Some(&status) {
            self.write_status(&mut status, paused).await?;
        }
        if steps::is_newsworthy(status.phase) && !status.is_notified() {
            // Our own status event brings the next reconcile; this is only the fallback.
            requeue = sooner(requeue, Duration::from_secs(1));
        }
        Ok(Action::requeue(requeue.unwrap_or(RESYNC)))
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(u64::from(self.wm.spec.progress_deadline_seconds.max(1)))
    }

    /// Whether the user's pause holds now. A `resumeAt` that has come clears the pause in the
    /// spec (so every reader sees it lifted); one still ahead brings a reconcile then.
    async fn paused(&mut self, requeue: &mut Option<Duration>) -> Result<bool> {
        if !self.wm.spec.paused {
            return Ok(false);
        }
        let Some(at) = self.wm.spec.resume_at.as_deref().and_then(parse_rfc3339) else {
            return Ok(true);
        };
        let wait = at - now();
        if wait.is_positive() {
            *requeue = sooner(*requeue, Duration::try_from(wait).unwrap_or(RESYNC).min(RESYNC));
            return Ok(true);
        }
        tracing::info!(migration = %self.wm.name_any(), "resuming at the set time");
        self.set_paused(false, Some(Value::Null)).await?;
        Ok(false)
    }

    /// Writes `spec.paused` (and `resumeAt` if given) and keeps our copy current.
    async fn set_paused(&mut self, paused: bool, resume_at: Option<Value>) -> Result<()> {
        let mut spec = json!({ "paused": paused });
        if let Some(at) = resume_at {
            spec["resumeAt"] = at;
        }
        let patch = json!({ "metadata": { "resourceVersion": self.rv }, "spec": spec });
        self.wm = self.api.patch(&self.wm.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        self.rv = self.wm.resource_version().unwrap_or_default();
        Ok(())
    }

    /// Checks, before anything moves, that the plan can run at all and stays inside its
    /// workspace: the namespace and the node must both belong to it.
    async fn validate(&mut self) -> Result<Option<MigrationError>> {
        let spec = &self.wm.spec;
        let invalid = |message: String| Some(MigrationError { reason: steps::REASON_INVALID_SPEC.into(), message, troubleshooting: vec![] });
        if spec.phases.iter().all(|p| p.workloads.is_empty()) {
            return Ok(invalid("The migration lists no workloads.".into()));
        }
        if let Some(metric) = spec.latency_guard.as_ref().and_then(|g| g.metric.as_deref()) {
            if !super::latency::is_metric_name(metric) {
                return Ok(invalid(format!("The latency guard's metric \"{metric}\" is not a metric name.")));
            }
        }
        let namespaces: BTreeSet<&str> =
            std::iter::once(self.ns.as_str()).chain(spec.phases.iter().flat_map(|p| &p.workloads).map(|w| w.namespace.as_str())).collect();
        for name in namespaces {
            if is_system_namespace(name) {
                return Ok(invalid(format!("Namespace {name} is the platform's own: no migration moves workloads there.")));
            }
            let ns = Api::<Namespace>::all(self.ctx.client.clone()).get_opt(name).await?;
            if ns.as_ref().and_then(|n| n.labels().get(labels::WORKSPACE)) != Some(&spec.workspace) {
                return Ok(invalid(format!("Namespace {name} does not belong to workspace {}.", spec.workspace)));
            }
        }
        let Some(node) = Api::<Node>::all(self.ctx.client.clone()).get_opt(&spec.target_node).await? else {
            return Ok(invalid(format!("Node {} does not exist.", spec.target_node)));
        };
        if node.labels().get(labels::WORKSPACE) != Some(&spec.workspace) {
            return Ok(invalid(format!("Node {} is not dedicated to workspace {}.", spec.target_node, spec.workspace)));
        }
        self.hostname = Some(crate::cluster::hostname(&node));
        Ok(None)
    }

    /// The workspace on the shared pool before anything moves: the report's "before". From
    /// the watch caches when they are usable (the same numbers Node Management shows), else
    /// from the API server.
    async fn snapshot(&self, status: &WorkloadMigrationStatus) -> Result<SharedPoolSnapshot> {
        let client = &self.ctx.client;
        let ws = &self.wm.spec.workspace;
        let cached = match &self.ctx.cache {
            Some(cache) => cache.snapshot().await.inspect_err(|e| tracing::debug!(error = %e, "the report's before from the API server")).ok(),
            None => None,
        };
        let (shared, pool) = match cached {
            Some(s) => (s.shared_pool_nodes().into_iter().map(str::to_string).collect(), s.shared_pool_usage(ws)),
            None => {
                let shared = usage::shared_pool_nodes(client).await?;
                let pool = usage::shared_pool_usage(client, ws, &shared).await?;
                (shared, pool)
            }
        };
        let mut pods_on_shared_pool = 0;
        for w in &status.workloads {
            let Some(workload) = Workload::get(client, &w.workload).await? else { continue };
            pods_on_shared_pool += pods_of(client, &workload)
                .await?
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| shared.contains(n)))
                .count() as u32;
        }
        Ok(SharedPoolSnapshot {
            quota_cpu: pool.cpu.hard,
            used_cpu: pool.cpu.used,
            pool_nodes: pool.pool_nodes,
            neighbour_workspaces: pool.neighbour_workspaces,
            pods_on_shared_pool,
            taken_at: rfc3339(now()),
        })
    }

    /// Samples the application's latency when an interval has passed; `Some(reason)` when the
    /// guard asks to pause. The first workload of the plan stands for the application. A
    /// source that has no data or cannot be reached does not stop the migration: the
    /// `LatencyGuard` condition says so.
    async fn sample_latency(&self, status: &mut WorkloadMigrationStatus, requeue: &mut Option<Duration>) -> Result<Option<String>> {
        let Some(guard) = &self.wm.spec.latency_guard else { return Ok(None) };
        let Some(source) = self.ctx.metrics_for(guard) else { return Ok(None) };
        let Some(app) = status.workloads.first().map(|w| w.workload.clone()) else { return Ok(None) };
        let interval = Duration::from_secs(u64::from(guard.interval_seconds.max(1)));
        let t = now();
        if let Some(last) = status.latency_sampled_at.as_deref().and_then(parse_rfc3339) {
            let since = Duration::try_from(t - last).unwrap_or_default();
            if since < interval {
                *requeue = sooner(*requeue, interval - since);
                return Ok(None);
            }
        }
        *requeue = sooner(*requeue, interval);
        status.latency_sampled_at = Some(rfc3339(t));
        let generation = self.wm.metadata.generation;
        let sample = match source.p95_latency_ms(&app.namespace, &app.name).await {
            Ok(Some(ms)) => ms,
            Ok(None) => {
                status.set_condition("LatencyGuard", false, "NoData", &format!("No latency data for {}.", app.name), generation, t);
                return Ok(None);
            }
            Err(e) => {
                status.set_condition("LatencyGuard", false, "SourceUnavailable", &e.to_string(), generation, t);
                return Ok(None);
            }
        };
        let settings = GuardSettings { margin_percent: guard.margin_percent, consecutive: guard.consecutive_intervals };
        let state = status.latency_guard.get_or_insert_with(Default::default);
        let decision = observe(settings, state, sample);
        status.baseline_latency_ms = state.baseline_ms;
        status.current_latency_ms = state.last_ms;
        status.set_condition("LatencyGuard", true, "Measuring", "", generation, t);
        Ok(match decision {
            GuardDecision::Continue => None,
            GuardDecision::Pause { baseline_ms, current_ms } => {
                let rise = if baseline_ms > 0.0 { (current_ms / baseline_ms - 1.0) * 100.0 } else { 100.0 };
                let reason = format!("p95 latency {current_ms:.0} ms is {rise:.0}% above the {baseline_ms:.0} ms baseline");
                tracing::info!(migration = %self.wm.name_any(), %reason, "latency guard pauses the migration");
                Some(reason)
            }
        })
    }

    /// Moves workload `i` (again, if a crash interrupted it) and reads how far it got.
    async fn follow(&self, status: &mut WorkloadMigrationStatus, i: usize) -> Result<Step> {
        let key = status.workloads[i].workload.clone();
        let (kind, name) = (key.kind, key.name.clone());
        let Some(mut workload) = Workload::get(&self.ctx.client, &key).await? else {
            let message = format!("{kind} {name} does not exist in namespace {}.", key.namespace);
            status.fail(i, now(), MigrationError { reason: steps::REASON_WORKLOAD_NOT_FOUND.into(), message, troubleshooting: vec![] })?;
            return Ok(Step::Changed { announce: false });
        };
        let (ws, node) = (&self.wm.spec.workspace, &self.wm.spec.target_node);
        // Moves run only after `validate` read the Node this reconcile.
        let hostname = match &self.hostname {
            Some(h) => h.clone(),
            None => crate::cluster::hostname_of(&self.ctx.client, node).await?,
        };
        let json = workload.json();
        let current = Scheduling::of_workload(kind, &json);
        let mut patch = patch::scheduling_patch(ws, &hostname, kind, &current);
        let annotations = workload.annotations();
        let id = migration_id(&self.wm);
        if patch != json!({}) {
            patch::mark_pods(&mut patch, &id);
        }
        // A workload an older version moved has the annotations but not yet the label.
        let labelled = workload.meta().labels.as_ref().is_some_and(|l| l.contains_key(patch::MOVED_LABEL));
        if annotations.get(MIGRATION_ANNOTATION) != Some(&id) || !annotations.contains_key(ORIGINAL_ANNOTATION) || !labelled {
            let template = json.pointer("/spec/template").cloned().unwrap_or(Value::Null);
            let strategy = json.pointer(&format!("/spec/{}", patch::strategy_field(kind))).cloned();
            patch["metadata"] = patch::move_metadata(&id, &annotations, &template, strategy.as_ref());
        }
        if patch != json!({}) {
            patch["metadata"]["resourceVersion"] = json!(workload.resource_version());
            tracing::info!(migration = %self.wm.name_any(), workload = %key, %node, "moving");
            workload = workload.patch(&self.ctx.client, &patch).await?;
        }
        let counts = workload.counts();
        let pods = pods_of(&self.ctx.client, &workload).await?;
        let on_target = on_node(&pods, node);
        let lowest = self.ctx.take_lowest_available(&key);
        let started = status.workloads[i].started_at.as_deref().and_then(parse_rfc3339).unwrap_or_else(now);
        match rollout::judge_move(&counts, &pods, rollout::Target { node, hostname: &hostname }, started, self.deadline(), now()) {
            Verdict::Done => {
                status.observe(i, &counts, on_target, lowest, None);
                status.moved(i, now())?;
                tracing::info!(migration = %self.wm.name_any(), workload = %name, min_available = ?status.workloads[i].min_available_seen, "moved");
                Ok(Step::Changed { announce: false })
            }
            Verdict::Progressing(message) => {
                status.observe(i, &counts, on_target, lowest, Some(message));
                let next = rollout::next_check(&pods, &hostname, started, self.deadline(), now());
                Ok(Step::Wait(self.ctx.config.poll.min(next)))
            }
            Verdict::Failed(cause) => {
                status.observe(i, &counts, on_target, lowest, None);
                let check = match &cause {
                    Cause::Unschedulable(_) => self.check_node(&workload).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot read the node for the troubleshooting text");
                        None
                    }),
                    _ => None,
                };
                let error = troubleshooting::failure(&cause, &name, ws, node, self.wm.spec.progress_deadline_seconds, check.as_ref());
                tracing::info!(migration = %self.wm.name_any(), workload = %name, reason = %error.reason, message = %error.message, "move failed; rolling back");
                status.roll_back(i, now(), error)?;
                Ok(Step::Changed { announce: true })
            }
        }
    }

    /// Restores workload `i`'s saved scheduling (once: the annotation goes with the restore)
    /// and follows the rollout back. Only the workload that failed is rolled back: those
    /// already moved are healthy on the node, and moving them back would be one more rollout
    /// each for nothing; a retry finds them in place and goes on from there.
    async fn roll_back(&self, status: &mut WorkloadMigrationStatus, i: usize) -> Result<Step> {
        let key = status.workloads[i].workload.clone();
        let (kind, name) = (key.kind, key.name.clone());
        let Some(mut workload) = Workload::get(&self.ctx.client, &key).await? else {
            status.rolled_back(i, now())?;
            status.workloads[i].message = Some(format!("{kind} {name} was deleted; nothing to restore."));
            return Ok(Step::Changed { announce: false });
        };
        if let Some(saved) = workload.annotations().get(ORIGINAL_ANNOTATION).cloned() {
            match patch::restore_patch(kind, &saved, &workload.json()) {
                Ok(mut patch) => {
                    patch["metadata"]["resourceVersion"] = json!(workload.resource_version());
                    tracing::info!(migration = %self.wm.name_any(), workload = %key, "restoring the original scheduling");
                    workload = workload.patch(&self.ctx.client, &patch).await?;
                }
                Err(e) => {
                    let message = format!("The saved scheduling of {name} (annotation {ORIGINAL_ANNOTATION}) cannot be read ({e}); restore it by hand.");
                    status.fail(i, now(), MigrationError { reason: steps::REASON_ROLLBACK_FAILED.into(), message, troubleshooting: vec![] })?;
                    return Ok(Step::Changed { announce: false });
                }
            }
        }
        let counts = workload.counts();
        let on_target = on_node(&pods_of(&self.ctx.client, &workload).await?, &self.wm.spec.target_node);
        let began = status.workloads[i].finished_at.as_deref().and_then(parse_rfc3339).unwrap_or_else(now);
        match rollout::judge_rollback(&counts, began, self.deadline(), now()) {
            Verdict::Done => {
                status.observe(i, &counts, on_target, None, status.workloads[i].message.clone());
                status.rolled_back(i, now())?;
                Ok(Step::Changed { announce: false })
            }
            Verdict::Progressing(_) => {
                status.observe(i, &counts, on_target, None, status.workloads[i].message.clone());
                let next = rollout::until_deadline(began, self.deadline(), now());
                Ok(Step::Wait(self.ctx.config.poll.min(next)))
            }
            Verdict::Failed(cause) => {
                let detail = match cause {
                    Cause::DeadlineExceeded(m) | Cause::Unschedulable(m) | Cause::NotReady(m) => m,
                };
                let message =
                    format!("{name} was restored but its original pods did not come back within {}s: {detail}.", self.wm.spec.progress_deadline_seconds);
                status.fail(i, now(), MigrationError { reason: steps::REASON_ROLLBACK_FAILED.into(), message, troubleshooting: vec![] })?;
                Ok(Step::Changed { announce: false })
            }
        }
    }

    /// The target node as it is, against what the workload asks: why the scheduler said no.
    async fn check_node(&self, workload: &Workload) -> Result<Option<NodeCheck>> {
        let node_name = &self.wm.spec.target_node;
        let Some(node) = Api::<Node>::all(self.ctx.client.clone()).get_opt(node_name).await? else { return Ok(Some(NodeCheck::Missing)) };
        let allocatable = capacity::allocatable(&node);
        let node_spec = node.spec.unwrap_or_default();
        let tolerations = workload.pod_spec().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        let untolerated = capacity::untolerated(&node_spec.taints.unwrap_or_default(), &tolerations);
        let on_node = Api::<Pod>::all(self.ctx.client.clone()).list(&ListParams::default().fields(&format!("spec.nodeName={node_name}"))).await?;
        let own = |pod: &Pod| pod.namespace() == workload.meta().namespace && workload.selects(pod);
        let others = capacity::requested(on_node.items.iter().filter(|p| !own(p)));
        let demand = Demand {
            replicas: workload.counts().desired,
            pod: workload.pod_spec().map(capacity::pod_requests).unwrap_or_default(),
            surge_pods: workload.surge(),
        };
        Ok(Some(NodeCheck::Found { cordoned: node_spec.unschedulable.unwrap_or(false), untolerated, fit: Fit { allocatable, others, demand } }))
    }

    /// Tells the workspace that owns the migration's namespace (by its label), never the one
    /// the spec names: a migration naming another workspace must not reach that workspace's
    /// bell or audit log.
    async fn tell_user(&self, status: &WorkloadMigrationStatus) -> Result<()> {
        let owner = Api::<Namespace>::all(self.ctx.client.clone()).get_opt(&self.ns).await?.and_then(|n| n.labels().get(labels::WORKSPACE).cloned());
        let told = Told { wm: &self.wm, owner: owner.as_deref() };
        let events = &self.ctx.events;
        let unknown = || MigrationError { reason: "Failed".into(), message: "The migration failed.".into(), troubleshooting: vec![] };
        match status.phase {
            MigrationState::Succeeded => events.completed(&told, status).await?,
            MigrationState::RolledBack => events.rolled_back(&told, &status.error.clone().unwrap_or_else(unknown)).await?,
            MigrationState::Failed => events.failed(&told, &status.error.clone().unwrap_or_else(unknown)).await?,
            MigrationState::Paused => events.paused(&told, status.pause_reason.as_deref().unwrap_or(steps::PAUSED_BY_USER)).await?,
            _ => {}
        }
        Ok(())
    }

    /// Writes the whole status (server-side apply), conditional on the resourceVersion we
    /// read: a user's edit since (say a pause) makes it fail and the reconcile run again on
    /// fresh data, instead of acting on an outdated view.
    async fn write_status(&mut self, status: &mut WorkloadMigrationStatus, paused: bool) -> Result<()> {
        status.settle(self.wm.spec.approved_phases, paused, self.wm.metadata.generation, now());
        let patch = json!({
            "apiVersion": WorkloadMigration::api_version(&()),
            "kind": WorkloadMigration::kind(&()),
            "metadata": { "resourceVersion": self.rv },
            "status": status,
        });
        let written = self.api.patch_status(&self.wm.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
        self.rv = written.resource_version().unwrap_or_default();
        let before = self.written.as_ref().or(self.wm.status.as_ref());
        let events = kube_events::changes(before, status, &self.wm.spec.target_node);
        self.ctx.kube_events.publish(&self.wm.object_ref(&()), &events).await;
        self.written = Some(status.clone());
        Ok(())
    }
}

/// A Deployment or a StatefulSet, read and patched alike.
enum Workload {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
}

impl Workload {
    async fn get(client: &Client, key: &WorkloadKey) -> Result<Option<Self>> {
        let ns = &key.namespace;
        Ok(match key.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns).get_opt(&key.name).await?.map(Workload::Deployment),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(&key.name).await?.map(Workload::StatefulSet),
        })
    }

    /// A JSON merge patch, answered with the object as it is now.
    async fn patch(&self, client: &Client, patch: &Value) -> Result<Self> {
        let params = PatchParams::default();
        let ns = self.meta().namespace.clone().unwrap_or_default();
        Ok(match self {
            Workload::Deployment(d) => {
                Workload::Deployment(Api::<Deployment>::namespaced(client.clone(), &ns).patch(&d.name_any(), &params, &Patch::Merge(patch)).await?)
            }
            Workload::StatefulSet(s) => {
                Workload::StatefulSet(Api::<StatefulSet>::namespaced(client.clone(), &ns).patch(&s.name_any(), &params, &Patch::Merge(patch)).await?)
            }
        })
    }

    fn json(&self) -> Value {
        match self {
            Workload::Deployment(d) => serde_json::to_value(d),
            Workload::StatefulSet(s) => serde_json::to_value(s),
        }
        .unwrap_or(Value::Null)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::StatefulSet(s) => &s.metadata,
        }
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        self.meta().annotations.clone().unwrap_or_default()
    }

    fn resource_version(&self) -> String {
        self.meta().resource_version.clone().unwrap_or_default()
    }

    fn counts(&self) -> Counts {
        match self {
            Workload::Deployment(d) => Counts::of_deployment(d),
            Workload::StatefulSet(s) => Counts::of_stateful_set(s),
        }
    }

    fn pod_spec(&self) -> Option<&PodSpec> {
        match self {
            Workload::Deployment(d) => d.spec.template.spec.as_ref(),
            Workload::StatefulSet(s) => s.spec.template.spec.as_ref(),
        }
    }

    /// Extra pods its rolling update runs at once (a StatefulSet replaces pods in place).
    fn surge(&self) -> i32 {
        match self {
            Workload::Deployment(d) => {
                let max_surge = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_surge.as_ref());
                capacity::surge_pods(max_surge, d.spec.replicas.unwrap_or(1))
            }
            Workload::StatefulSet(_) => 0,
        }
    }

    fn label_selector(&self) -> &LabelSelector {
        match self {
            Workload::Deployment(d) => &d.spec.selector,
            Workload::StatefulSet(s) => &s.spec.selector,
        }
    }

    fn selects(&self, pod: &Pod) -> bool {
        workloads::pod_selector(self.label_selector()).is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
    }
}

/// The workload's pods, by its whole selector.
async fn pods_of(client: &Client, workload: &Workload) -> Result<Vec<Pod>> {
    let ns = workload.meta().namespace.clone().unwrap_or_default();
    Ok(workloads::pods_selected(client, &ns, workload.label_selector()).await?)
}

/// How many of the pods run on `node` (terminating ones not counted).
fn on_node(pods: &[Pod], node: &str) -> i32 {
    pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)).count() as i32
}
