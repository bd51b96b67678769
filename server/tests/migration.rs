//! Workload migration against the real local cluster: the real scheduler enforces taints,
//! tolerations and resources; KWOK runs the pods. Each test has its own workspace label,
//! dedicated node, namespace and controller (scoped by a unique label), so tests here and in
//! other binaries share the cluster without touching each other's objects.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use server::cache::ClusterCache;
use server::crd::{MigrationState, WorkloadMigration, WorkloadState};
use server::engine::Scope;
use server::migration::latency::{MetricsError, MetricsSource, PrometheusSource, DEFAULT_QUERY_TEMPLATE};
use server::migration::{self, patch, Config, Context, FINALIZER};
use server::store::Store;
use support::cluster::{self, Cleanup};
use support::prometheus::{expected_p95_ms, PromHarness};

const WAIT: Duration = Duration::from_secs(90);
const REPLICAS: i32 = 3;

/// One test's world: a workspace with a dedicated node, a shared-like node, a namespace, and
/// a migration controller that can be killed and started again.
struct World {
    client: Client,
    store: Store,
    scope: String,
    ws: String,
    ns: String,
    dedicated: String,
    shared: String,
    controller: Option<tokio::task::JoinHandle<()>>,
    _cleanup: Cleanup,
}

fn fake_node(name: &str, cpu: &str, labels: Value, taint: Option<(&str, &str)>) -> Node {
    cluster::kwok_node(name, cpu, "16Gi", labels, taint)
}

use cluster::node_ready;
use support::availability::AvailabilityProbe;
use support::scenario::scoped_migration;

impl World {
    /// `dedicated_cpu`: the dedicated node's allocatable CPU.
    async fn new(dedicated_cpu: &str) -> World {
        let client = cluster::client().await;
        server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
        let db = std::env::temp_dir().join(format!("hexabase-migr-{}.db", server::db::new_id()));
        let store = Store::new(server::db::connect(&format!("sqlite://{}?mode=rwc", db.display())).await.expect("database"));
        let ws = cluster::name("ws");
        store.ensure_workspace(&ws, &ws, app::model::Plan::Pro).await.expect("workspace");
        let mut cleanup = Cleanup::new(&client);
        let nodes: Api<Node> = Api::all(client.clone());
        let dedicated = cluster::name("t-dedicated");
        let labels = json!({ "hexabase.ai/node-pool": "dedicated", "hexabase.ai/workspace": ws });
        nodes
            .create(&PostParams::default(), &fake_node(&dedicated, dedicated_cpu, labels, Some(("hexabase.ai/dedicated", &ws))))
            .await
            .expect("dedicated node");
        cleanup.track_node(&dedicated);
        let shared = cluster::name("t-shared");
        // Tainted so that only this test's pods (which tolerate it) land there, not other
        // tests' pods that happen to fit.
        let spot = Some(("example.com/spot", ws.as_str()));
        let shared_labels = json!({ "hexabase.ai/test-node": shared, "hexabase.ai/node-pool": "shared" });
        nodes.create(&PostParams::default(), &fake_node(&shared, "16", shared_labels, spot)).await.expect("shared node");
        cleanup.track_node(&shared);
        for n in [&dedicated, &shared] {
            cluster::wait_until(&nodes, n, WAIT, "node Ready", node_ready).await;
        }
        let ns = cleanup.namespace("t-migr", &[("hexabase.ai/workspace", &ws)]).await;
        World { client, store, scope: cluster::name("scope"), ws, ns, dedicated, shared, controller: None, _cleanup: cleanup }
    }

    fn start(&mut self) {
        self.start_with(None);
    }

    fn start_with(&mut self, metrics: Option<Arc<dyn MetricsSource>>) {
        // The poll the engine ships with (30 s): every move here has to be driven by the
        // watches of the moved workloads and pods, or it would take far longer.
        let config = Config { scope: Scope::labelled(&self.scope), ..Config::default() };
        let ctx = Arc::new(Context::new(self.client.clone(), self.store.clone(), config, metrics));
        self.controller = Some(tokio::spawn(migration::run(self.client.clone(), ctx)));
    }

    /// The engine as the server runs it: beside the dashboard's watch caches, which it reads
    /// the report's "before" from. Returns once the caches have synced.
    async fn start_beside_the_caches(&mut self) {
        let cache = ClusterCache::start(self.client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        while cache.snapshot().await.is_err() {
            assert!(Instant::now() < deadline, "the watch caches did not sync");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let config = Config { scope: Scope::labelled(&self.scope), ..Config::default() };
        let ctx = Arc::new(Context::new(self.client.clone(), self.store.clone(), config, None).with_cache(Some(cache)));
        self.controller = Some(tokio::spawn(migration::run(self.client.clone(), ctx)));
    }

    /// Kills the controller at whatever it was doing, like a crashed server.
    async fn kill(&mut self) {
        if let Some(task) = self.controller.take() {
            task.abort();
            let _ = task.await;
        }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn migrations(&self) -> Api<WorkloadMigration> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A Deployment with a readiness probe and a PodDisruptionBudget (minAvailable 2) on the
    /// shared-like node (which it tolerates), rolled out and available.
    async fn deployment(&self, name: &str, cpu: &str) -> Deployment {
        self.deployment_in(&self.ns, name, cpu, REPLICAS, json!({}), json!({})).await
    }

    /// The same, in `ns`, with `replicas`, `spec` fields merged in (say an update strategy) and
    /// pod template annotations (say a KWOK readiness delay).
    async fn deployment_in(&self, ns: &str, name: &str, cpu: &str, replicas: i32, spec: Value, pod_annotations: Value) -> Deployment {
        let mut d = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": {
                    "metadata": { "labels": { "app": name }, "annotations": pod_annotations },
                    "spec": {
                        "nodeSelector": { "hexabase.ai/test-node": self.shared },
                        "tolerations": [{ "key": "example.com/spot", "operator": "Exists", "effect": "NoSchedule" }],
                        "affinity": { "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [
                            { "weight": 10, "podAffinityTerm": { "topologyKey": "kubernetes.io/hostname", "labelSelector": { "matchLabels": { "app": name } } } }
                        ] } },
                        "containers": [{
                            "name": "app",
                            "image": "nginx:1.27",
                            "resources": { "requests": { "cpu": cpu, "memory": "64Mi" } },
                            "readinessProbe": { "httpGet": { "path": "/healthz", "port": 80 }, "periodSeconds": 1 }
                        }]
                    }
                }
            }
        });
        for (k, v) in spec.as_object().cloned().unwrap_or_default() {
            d["spec"][k] = v;
        }
        let d: Deployment = serde_json::from_value(d).unwrap();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        deployments.create(&PostParams::default(), &d).await.expect("create deployment");
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": { "name": name },
            "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": name } } }
        }))
        .unwrap();
        Api::<PodDisruptionBudget>::namespaced(self.client.clone(), ns).create(&PostParams::default(), &pdb).await.expect("create PDB");
        wait_rolled_out(&deployments, name).await
    }

    async fn wait_rolled_out(&self, name: &str) -> Deployment {
        wait_rolled_out(&self.deployments(), name).await
    }

    /// A migration of Deployments of the test's namespace, one phase per slice.
    async fn migrate(&self, phases: &[&[&str]], extra: Value) -> String {
        self.migrate_phases(self.phases(phases), extra).await
    }

    fn phases(&self, phases: &[&[&str]]) -> Vec<Value> {
        let workload = |w: &&str| json!({ "namespace": self.ns, "kind": "Deployment", "name": w });
        phases.iter().map(|p| json!({ "workloads": p.iter().map(workload).collect::<Vec<_>>() })).collect()
    }

    async fn migrate_phases(&self, phases: Vec<Value>, extra: Value) -> String {
        self.try_migrate_phases(phases, extra).await.expect("create migration")
    }

    /// Creates the migration as a user would, the API server's refusal (if any) returned.
    async fn try_migrate_phases(&self, phases: Vec<Value>, extra: Value) -> Result<String, kube::Error> {
        let name = cluster::name("wm");
        let spec = json!({
            "workspace": self.ws,
            "targetNode": self.dedicated,
            "phases": phases,
            "approvedPhases": phases.len(),
            "progressDeadlineSeconds": 60,
            "requestedBy": "dev@example.com"
        });
        let wm = scoped_migration(&name, &self.scope, spec, &extra);
        self.migrations().create(&PostParams::default(), &wm).await?;
        Ok(name)
    }

    async fn wait_phase(&self, name: &str, phase: MigrationState) -> WorkloadMigration {
        cluster::wait_until(&self.migrations(), name, WAIT, &format!("migration {phase:?}"), |wm: &WorkloadMigration| {
            wm.status.as_ref().is_some_and(|s| s.phase == phase)
        })
        .await
    }

    async fn spec_patch(&self, name: &str, spec: Value) {
        self.migrations().patch(name, &PatchParams::default(), &Patch::Merge(json!({ "spec": spec }))).await.expect("patch migration");
    }

    /// Nodes the workload's live pods run on.
    async fn pod_nodes(&self, app: &str) -> Vec<Option<String>> {
        let pods = self.pods().list(&ListParams::default().labels(&format!("app={app}"))).await.unwrap();
        pods.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone())).collect()
    }

    async fn wait_all_pods_on(&self, app: &str, node: &str) {
        self.wait_pods_on(app, REPLICAS, node).await
    }

    async fn wait_pods_on(&self, app: &str, replicas: i32, node: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let nodes = self.pod_nodes(app).await;
            if nodes.len() == replicas as usize && nodes.iter().all(|n| n.as_deref() == Some(node)) {
                return;
            }
            assert!(Instant::now() < deadline, "{app}'s pods did not all end on {node}: {nodes:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the user was told about the migration's current phase (of `attempt`).
    async fn wait_notified(&self, name: &str, attempt: u32) -> WorkloadMigration {
        cluster::wait_until(&self.migrations(), name, WAIT, "user notified", |wm: &WorkloadMigration| {
            wm.status.as_ref().is_some_and(|s| {
                s.attempt == attempt && s.conditions.iter().any(|c| c.type_ == "UserNotified" && c.status == "True" && c.reason == s.phase.as_str())
            })
        })
        .await
    }

    /// The Kubernetes Events on a migration (`kubectl describe workloadmigration`), oldest
    /// first, once `last` is among them (the controller publishes right after its write).
    async fn kube_events(&self, name: &str, last: &str) -> Vec<(String, String, Option<String>)> {
        let api = Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.client.clone(), &self.ns);
        let params = ListParams::default().fields(&format!("involvedObject.name={name},involvedObject.kind=WorkloadMigration"));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut events = api.list(&params).await.expect("list events").items;
            events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
            let seen: Vec<_> =
                events.into_iter().map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.related.and_then(|r| r.name))).collect();
            if seen.iter().any(|(_, r, _)| r == last) || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn notifications(&self) -> Vec<String> {
        let id = self.store.workspace_id(&self.ws).await.unwrap().unwrap();
        self.store.notifications(&id).await.unwrap().into_iter().map(|n| format!("{}: {}", n.title, n.body)).collect()
    }
}

async fn wait_rolled_out(deployments: &Api<Deployment>, name: &str) -> Deployment {
    cluster::wait_until(deployments, name, WAIT, "rollout complete", |d: &Deployment| {
        let s = d.status.clone().unwrap_or_default();
        let desired = d.spec.replicas.unwrap_or(1);
        s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(desired)
            && s.replicas == Some(desired)
            && s.available_replicas == Some(desired)
    })
    .await
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(task) = self.controller.take() {
            task.abort();
        }
        // With the controller gone, nobody would remove the finalizers and the namespace
        // would never go: drop them here (Cleanup then deletes the namespace).
        let ns = self.ns.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let api: Api<WorkloadMigration> = Api::namespaced(cluster::client().await, &ns);
                for wm in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                    let _ = api.patch(&wm.name_any(), &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": null } }))).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// A latency source the test turns up and down.
struct FakeLatency(AtomicU64);

impl FakeLatency {
    fn new(ms: f64) -> Arc<FakeLatency> {
        Arc::new(FakeLatency(AtomicU64::new(ms.to_bits())))
    }

    fn set(&self, ms: f64) {
        self.0.store(ms.to_bits(), Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl MetricsSource for FakeLatency {
    async fn p95_latency_ms(&self, _namespace: &str, _workload: &str) -> Result<Option<f64>, MetricsError> {
        Ok(Some(f64::from_bits(self.0.load(Ordering::SeqCst))))
    }
}

fn scheduling(d: &Deployment) -> (Value, Value, Value, Value) {
    let pod = serde_json::to_value(d.spec.template.spec.as_ref().unwrap()).unwrap();
    (pod["nodeSelector"].clone(), pod["tolerations"].clone(), pod["affinity"].clone(), serde_json::to_value(&d.spec.strategy).unwrap())
}

/// Four replicas whose own strategy would take one down at a time (maxUnavailable 1), and new
/// pods that take two seconds to get Ready: a move that kept the workload's strategy would
/// drop to three available, which the independent watch would see. Only the migration's
/// maxUnavailable 0 keeps four.
#[tokio::test]
async fn a_deployment_moves_to_the_dedicated_node_without_losing_a_replica() {
    const WEB: i32 = 4;
    let mut w = World::new("4").await;
    w.start_beside_the_caches().await;
    let strategy = json!({ "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 1 } } });
    let slow_ready = json!({ "pod-ready.stage.kwok.x-k8s.io/delay": "2s" });
    // The workspace's shared-pool quota, which the report's "before" reads (from the watch
    // caches here): 800m of 4 once the replicas run.
    let quotas: Api<ResourceQuota> = Api::namespaced(w.client.clone(), &w.ns);
    let quota: ResourceQuota =
        serde_json::from_value(json!({ "metadata": { "name": "workspace-quota" }, "spec": { "hard": { "requests.cpu": "4" } } })).unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    w.deployment_in(&w.ns, "web", "200m", WEB, strategy, slow_ready).await;
    let probe = AvailabilityProbe::start(w.pods(), "web", false).await;
    assert_eq!(probe.lowest(), WEB, "all replicas available before the move");
    cluster::wait_until(&quotas, "workspace-quota", WAIT, "the quota counts the replicas", |q| {
        q.status.as_ref().and_then(|s| s.used.as_ref()).and_then(|u| u.get("requests.cpu")).is_some_and(|c| c.0 == "800m")
    })
    .await;
    let name = w.migrate(&[&["web"]], json!({})).await;
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    w.wait_pods_on("web", WEB, &w.dedicated).await;

    assert_eq!(probe.lowest(), WEB, "an independent watch saw available pods drop below the desired count");
    let status = wm.status.unwrap();
    let web = &status.workloads[0];
    assert_eq!(web.state, WorkloadState::Moved);
    assert_eq!(web.min_available_seen, Some(WEB), "the controller's own measurement agrees");
    assert_eq!((web.desired_replicas, web.on_target), (WEB, WEB), "where the pods are now");
    let before = status.before.expect("the shared pool before the move, taken at the start");
    assert_eq!(before.pods_on_shared_pool, WEB as u32, "every replica ran on the shared pool before");
    assert_eq!((before.quota_cpu, before.used_cpu), (4.0, 0.8), "the quota as it was when the move started: {before:?}");
    assert!(before.pool_nodes >= 2, "the seeded pool and this test's shared node: {before:?}");
    let d = w.deployments().get("web").await.unwrap();
    let (selector, tolerations, _, strategy) = scheduling(&d);
    assert_eq!(selector["kubernetes.io/hostname"], json!(w.dedicated));
    assert_eq!(selector["hexabase.ai/workspace"], json!(w.ws));
    assert!(tolerations.as_array().unwrap().iter().any(|t| t["key"] == "example.com/spot"), "existing tolerations kept");
    assert!(tolerations.as_array().unwrap().iter().any(|t| t["key"] == "hexabase.ai/dedicated" && t["value"] == w.ws.as_str()));
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], json!(0));
    assert!(d.annotations().contains_key(patch::ORIGINAL_ANNOTATION), "the record of the original scheduling stays");
    assert_eq!(d.labels().get(patch::MOVED_LABEL).map(String::as_str), Some("true"), "the engine watches the workloads it moved");
    let marked = w.pods().list(&ListParams::default().labels(&format!("app=web,{}=true", patch::MOVED_LABEL))).await.unwrap().items;
    assert_eq!(marked.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count(), WEB as usize, "and their pods");

    // Told once, with the measured availability.
    let told = w.wait_notified(&name, 0).await;
    assert_eq!(told.status.unwrap().phase, MigrationState::Succeeded);
    let notes = w.notifications().await;
    assert_eq!(notes.iter().filter(|n| n.starts_with("Migration complete")).count(), 1, "{notes:?}");
    assert!(notes[0].contains("4 of 4 replicas available at the lowest"), "{notes:?}");
    let ev = |t: &str, r: &str, related: Option<&str>| (t.to_string(), r.to_string(), related.map(String::from));
    assert_eq!(
        w.kube_events(&name, "Succeeded").await,
        [ev("Normal", "Moving", Some("web")), ev("Normal", "Moved", Some("web")), ev("Normal", "Succeeded", None)],
        "each step of the move is a Kubernetes Event on the migration"
    );
}

#[tokio::test]
async fn a_move_that_cannot_schedule_rolls_back_to_exactly_the_original() {
    // Two 400m pods fit on the 1-CPU node, the third does not: the move fails half way.
    let mut w = World::new("1").await;
    let before = w.deployment("web", "400m").await;
    w.start();
    let name = w.migrate(&[&["web"]], json!({ "progressDeadlineSeconds": 60 })).await;
    let wm = w.wait_phase(&name, MigrationState::RolledBack).await;
    let status = wm.status.unwrap();
    assert_eq!(status.workloads[0].state, WorkloadState::RolledBack);
    assert_eq!(status.workloads[0].on_target, 0, "a rolled-back workload is back on the shared pool");
    // The pending pod's own events and the end of its 5 s scheduling grace end the move, not
    // the engine's 30 s poll (read from the migration's own timestamps).
    let at = |t: &Option<String>| time::OffsetDateTime::parse(t.as_deref().expect("a timestamp"), &time::format_description::well_known::Rfc3339).unwrap();
    let took = at(&status.workloads[0].finished_at) - at(&status.workloads[0].started_at);
    assert!(took < time::Duration::seconds(20), "the move failed {took} after it started");
    let error = status.error.expect("the cause");
    eprintln!("ROLLED BACK: {error:#?}");
    assert_eq!(error.reason, "Unschedulable");
    assert!(error.message.contains("Insufficient cpu"), "the scheduler's own message: {}", error.message);
    assert!(error.troubleshooting[0].contains("1.0 vCPU allocatable"), "{:?}", error.troubleshooting);
    assert_eq!(error.troubleshooting.len(), 2, "only the target node's trouble: {:?}", error.troubleshooting);
    w.wait_all_pods_on("web", &w.shared).await;
    let after = w.wait_rolled_out("web").await;
    assert_eq!(scheduling(&after), scheduling(&before), "nodeSelector, tolerations, affinity and strategy restored exactly");
    assert!(!after.annotations().contains_key(patch::ORIGINAL_ANNOTATION));
    assert!(!after.annotations().contains_key(patch::MIGRATION_ANNOTATION));
    assert!(!after.labels().contains_key(patch::MOVED_LABEL), "no longer watched once restored");
    assert_eq!(after.spec.template, before.spec.template, "the whole pod template is the original again");
    let reasons: Vec<(String, String)> = w.kube_events(&name, "RolledBack").await.into_iter().map(|(t, r, _)| (t, r)).collect();
    let warnings = |r: &str| reasons.iter().any(|(t, x)| t == "Warning" && x == r);
    assert!(warnings("RollingBack") && warnings("RolledBack"), "the rollback is said as Warnings: {reasons:?}");

    // Retrying (raising spec.retry) starts over from a fresh status and fails the same way.
    w.wait_notified(&name, 0).await;
    w.spec_patch(&name, json!({ "retry": 1 })).await;
    let retried = w.wait_notified(&name, 1).await;
    assert_eq!(retried.status.unwrap().phase, MigrationState::RolledBack);
    let notes = w.notifications().await;
    assert_eq!(notes.iter().filter(|n| n.starts_with("Migration rolled back")).count(), 2, "one notice an attempt: {notes:?}");
}

#[tokio::test]
async fn a_controller_killed_mid_move_is_finished_by_the_next_one() {
    let mut w = World::new("4").await;
    w.deployment("web", "200m").await;
    let probe = AvailabilityProbe::start(w.pods(), "web", false).await;
    w.start();
    let name = w.migrate(&[&["web"]], json!({})).await;
    cluster::wait_until(&w.deployments(), "web", WAIT, "first patch", |d: &Deployment| d.annotations().contains_key(patch::MIGRATION_ANNOTATION)).await;
    w.kill().await;
    let mid = w.migrations().get(&name).await.unwrap().status.unwrap();
    assert_eq!(mid.workloads[0].state, WorkloadState::Moving, "killed mid-move");
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.start();
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    w.wait_all_pods_on("web", &w.dedicated).await;
    assert_eq!(wm.status.unwrap().workloads[0].state, WorkloadState::Moved);
    assert_eq!(probe.lowest(), REPLICAS);
    let d = w.deployments().get("web").await.unwrap();
    let saved: patch::Scheduling = serde_json::from_str(&d.annotations()[patch::ORIGINAL_ANNOTATION]).unwrap();
    assert_eq!(saved.node_selector, Some(json!({ "hexabase.ai/test-node": w.shared })), "the record is the original, not the moved state");
}

#[tokio::test]
async fn a_phased_plan_stops_after_each_approved_phase() {
    let mut w = World::new("4").await;
    w.deployment("web", "100m").await;
    w.deployment("worker", "100m").await;
    w.start();
    let name = w.migrate(&[&["web"], &["worker"]], json!({ "approvedPhases": 1 })).await;
    let wm = w.wait_phase(&name, MigrationState::WaitingForApproval).await;
    let status = wm.status.unwrap();
    assert_eq!((status.workloads[0].state, status.workloads[1].state, status.current_phase), (WorkloadState::Moved, WorkloadState::Pending, 2));
    w.wait_all_pods_on("web", &w.dedicated).await;
    w.wait_all_pods_on("worker", &w.shared).await;
    assert!(!w.deployments().get("worker").await.unwrap().annotations().contains_key(patch::MIGRATION_ANNOTATION));

    w.spec_patch(&name, json!({ "approvedPhases": 2 })).await;
    w.wait_phase(&name, MigrationState::Succeeded).await;
    w.wait_all_pods_on("worker", &w.dedicated).await;
}

#[tokio::test]
async fn a_paused_migration_moves_nothing_until_resumed() {
    let mut w = World::new("4").await;
    w.deployment("web", "100m").await;
    w.start();
    let name = w.migrate(&[&["web"]], json!({ "paused": true })).await;
    let wm = w.wait_phase(&name, MigrationState::Paused).await;
    assert_eq!(wm.status.unwrap().pause_reason.as_deref(), Some("Paused by the user"));
    w.wait_notified(&name, 0).await;
    assert!(w.notifications().await.iter().any(|n| n.starts_with("Migration paused")));
    w.wait_all_pods_on("web", &w.shared).await;
    assert!(!w.deployments().get("web").await.unwrap().annotations().contains_key(patch::MIGRATION_ANNOTATION), "nothing touched");

    w.spec_patch(&name, json!({ "paused": false })).await;
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    assert_eq!(wm.status.unwrap().pause_reason, None);
    w.wait_all_pods_on("web", &w.dedicated).await;
}

#[tokio::test]
async fn another_workspaces_pod_stays_off_the_dedicated_node() {
    let mut w = World::new("4").await;
    w.deployment("web", "100m").await;
    w.start();
    let name = w.migrate(&[&["web"]], json!({})).await;
    w.wait_phase(&name, MigrationState::Succeeded).await;

    // A pod of another workspace that asks for the node by name but does not tolerate the taint.
    let mut cleanup = Cleanup::new(&w.client);
    let other_ns = cleanup.namespace("t-other", &[("hexabase.ai/workspace", "someone-else")]).await;
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &other_ns);
    let intruder: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "intruder" },
        "spec": {
            "nodeSelector": { "kubernetes.io/hostname": w.dedicated },
            "containers": [{ "name": "app", "image": "nginx:1.27", "resources": { "requests": { "cpu": "10m" } } }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &intruder).await.unwrap();
    let p = cluster::wait_until(&pods, "intruder", WAIT, "intruder unschedulable", |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")))
    })
    .await;
    assert!(p.spec.unwrap().node_name.is_none(), "never placed on the dedicated node");
    let message = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap().message.unwrap_or_default();
    assert!(message.contains("untolerated taint"), "{message}");

    // And a migration naming another workspace is refused before anything moves. The
    // refusal is told to the workspace that owns the namespace, never to the one the spec
    // names: a tenant cannot ring another workspace's bell.
    w.store.ensure_workspace("someone-else", "Someone Else", app::model::Plan::Pro).await.unwrap();
    let before = w.notifications().await.len();
    let foreign = w.migrate(&[&["web"]], json!({ "workspace": "someone-else" })).await;
    let wm = w.wait_phase(&foreign, MigrationState::Failed).await;
    assert_eq!(wm.status.unwrap().error.unwrap().reason, "InvalidSpec");
    w.wait_notified(&foreign, 0).await;
    let notes = w.notifications().await;
    assert_eq!(notes.len(), before + 1, "the namespace's owner is told: {notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("Migration failed") && n.contains("does not belong to workspace someone-else")), "{notes:?}");
    let victim = w.store.workspace_id("someone-else").await.unwrap().unwrap();
    assert!(w.store.notifications(&victim).await.unwrap().is_empty(), "the named workspace hears nothing");
}

/// What a migration is about cannot be swapped once it exists, and a latency guard names a
/// metric, not a PromQL query: the API server refuses both before the engine sees them.
#[tokio::test]
async fn a_migration_keeps_its_workspace_and_target_and_its_guard_is_only_a_metric_name() {
    let w = World::new("4").await;
    let name = w.migrate(&[&["web"]], json!({ "paused": true })).await;
    for (field, value) in [("workspace", "someone-else"), ("targetNode", "another-node")] {
        let err = w.migrations().patch(&name, &PatchParams::default(), &Patch::Merge(json!({ "spec": { field: value } }))).await.expect_err(field);
        let kube::Error::Api(status) = err else { panic!("{field}: {err}") };
        assert_eq!(status.code, 422, "{field}: {}", status.message);
        assert!(status.message.contains("cannot change"), "{field}: {}", status.message);
    }

    let guard = |metric: &str| json!({ "latencyGuard": { "marginPercent": 20.0, "consecutiveIntervals": 2, "intervalSeconds": 5, "metric": metric } });
    let injected = "up) or vector(1";
    let err = w.try_migrate_phases(w.phases(&[&["web"]]), guard(injected)).await.expect_err("a query is not a metric");
    let kube::Error::Api(status) = err else { panic!("{err}") };
    assert!(status.message.contains("latencyGuard.metric"), "{}", status.message);
    w.try_migrate_phases(w.phases(&[&["web"]]), guard("grpc_server_handling_seconds")).await.expect("a metric name is fine");
}

/// Kubernetes' own namespaces are never a tenant's, whatever labels someone put on them.
#[tokio::test]
async fn a_migration_of_a_system_namespace_is_refused() {
    let mut w = World::new("4").await;
    w.start();
    let phases = vec![json!({ "workloads": [{ "namespace": "kube-system", "kind": "Deployment", "name": "coredns" }] })];
    let name = w.migrate_phases(phases, json!({})).await;
    let wm = w.wait_phase(&name, MigrationState::Failed).await;
    let error = wm.status.unwrap().error.unwrap();
    assert_eq!(error.reason, "InvalidSpec");
    assert!(error.message.contains("Namespace kube-system is the platform's own"), "{}", error.message);
}

#[tokio::test]
async fn deleting_a_migration_mid_move_restores_the_workload() {
    // The third pod never fits, so the move is still in flight when the migration is deleted.
    let mut w = World::new("1").await;
    let before = w.deployment("web", "400m").await;
    w.start();
    let name = w.migrate(&[&["web"]], json!({})).await;
    cluster::wait_until(&w.deployments(), "web", WAIT, "first patch", |d: &Deployment| d.annotations().contains_key(patch::MIGRATION_ANNOTATION)).await;
    let wm = w.migrations().get(&name).await.unwrap();
    assert!(wm.finalizers().iter().any(|f| f == FINALIZER));
    w.migrations().delete(&name, &Default::default()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while w.migrations().get_opt(&name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the migration was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = w.wait_rolled_out("web").await;
    assert_eq!(after.spec.template, before.spec.template, "the original template is back");
    assert!(!after.annotations().contains_key(patch::ORIGINAL_ANNOTATION));
    w.wait_all_pods_on("web", &w.shared).await;
}

#[tokio::test]
async fn the_latency_guard_pauses_before_the_next_workload_and_the_user_resumes() {
    let mut w = World::new("4").await;
    w.deployment("web", "100m").await;
    w.deployment("api", "100m").await;
    let latency = FakeLatency::new(100.0);
    w.start_with(Some(latency.clone()));
    let guard = json!({ "marginPercent": 50.0, "consecutiveIntervals": 2, "intervalSeconds": 1 });
    let name = w.migrate(&[&["web"], &["api"]], json!({ "approvedPhases": 1, "latencyGuard": guard })).await;
    let wm = w.wait_phase(&name, MigrationState::WaitingForApproval).await;
    assert_eq!(wm.status.unwrap().baseline_latency_ms, Some(100.0), "measured before the first move");

    // Latency rises while phase 2 waits; once approved, it does not start.
    latency.set(180.0);
    cluster::wait_until(&w.migrations(), &name, WAIT, "guard trips", |wm: &WorkloadMigration| wm.spec.paused).await;
    w.spec_patch(&name, json!({ "approvedPhases": 2 })).await;
    let wm = w.wait_phase(&name, MigrationState::Paused).await;
    let status = wm.status.unwrap();
    assert_eq!(status.pause_reason.as_deref(), Some("p95 latency 180 ms is 80% above the 100 ms baseline"));
    assert_eq!(status.current_latency_ms, Some(180.0));
    assert_eq!(status.workloads[1].state, WorkloadState::Pending);
    w.wait_notified(&name, 0).await;
    let notes = w.notifications().await;
    assert!(notes.iter().any(|n| n.starts_with("Migration paused") && n.contains("80% above")), "{notes:?}");
    w.wait_all_pods_on("api", &w.shared).await;

    // The user resumes once latency is back to normal.
    latency.set(105.0);
    w.spec_patch(&name, json!({ "paused": false })).await;
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    let status = wm.status.unwrap();
    assert_eq!(status.latency_guard.unwrap().breaches, 0, "resuming resets the count");
    w.wait_all_pods_on("api", &w.dedicated).await;
}

/// The same guard end to end with a real Prometheus scraping an exporter whose latency the test
/// controls (a 5 s rate window so the rise shows within seconds).
#[tokio::test]
async fn a_latency_rise_seen_by_prometheus_pauses_the_migration_and_resume_finishes_it() {
    let prom = PromHarness::start().await;
    let mut w = World::new("4").await;
    w.deployment("web", "100m").await;
    w.deployment("api", "100m").await;
    prom.set_latency_ms(&w.ns, "web", 100.0);
    let template = DEFAULT_QUERY_TEMPLATE.replace("[1m]", "[5s]");
    let source = Arc::new(PrometheusSource::new(&prom.url, Some(&template)));
    let read = |source: Arc<PrometheusSource>, ns: String| async move { source.p95_latency_ms(&ns, "web").await.ok().flatten() };
    let deadline = Instant::now() + WAIT;
    while read(source.clone(), w.ns.clone()).await.is_none() {
        assert!(Instant::now() < deadline, "Prometheus never had the exporter's latency");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    w.start_with(Some(source.clone()));
    let guard = json!({ "marginPercent": 50.0, "consecutiveIntervals": 2, "intervalSeconds": 1 });
    let name = w.migrate(&[&["web"], &["api"]], json!({ "approvedPhases": 1, "latencyGuard": guard })).await;
    let wm = w.wait_phase(&name, MigrationState::WaitingForApproval).await;
    let baseline = wm.status.unwrap().baseline_latency_ms.expect("a baseline from Prometheus");
    assert!((baseline - expected_p95_ms(100.0)).abs() < 5.0, "baseline {baseline}");

    prom.set_latency_ms(&w.ns, "web", 300.0);
    cluster::wait_until(&w.migrations(), &name, WAIT, "guard trips on the Prometheus reading", |wm: &WorkloadMigration| wm.spec.paused).await;
    w.spec_patch(&name, json!({ "approvedPhases": 2 })).await;
    let status = w.wait_phase(&name, MigrationState::Paused).await.status.unwrap();
    assert!(status.pause_reason.as_deref().is_some_and(|r| r.contains("above the")), "{:?}", status.pause_reason);
    assert!(status.current_latency_ms.unwrap() > baseline * 1.5, "{:?}", status.current_latency_ms);
    assert_eq!(status.workloads[1].state, WorkloadState::Pending, "nothing moves while paused");

    // Latency recovers; the user resumes and the migration finishes.
    prom.set_latency_ms(&w.ns, "web", 100.0);
    let deadline = Instant::now() + WAIT;
    while read(source.clone(), w.ns.clone()).await.is_none_or(|ms| ms > baseline * 1.2) {
        assert!(Instant::now() < deadline, "latency never recovered in Prometheus");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    w.spec_patch(&name, json!({ "paused": false })).await;
    w.wait_phase(&name, MigrationState::Succeeded).await;
    w.wait_all_pods_on("api", &w.dedicated).await;
}

#[tokio::test]
async fn a_pause_with_a_resume_time_resumes_by_itself() {
    let mut w = World::new("4").await;
    w.deployment("web", "100m").await;
    w.start();
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let name = w.migrate(&[&["web"]], json!({ "paused": true, "resumeAt": server::engine::time::rfc3339(at) })).await;
    // Whenever the controller first looks (before or after the time), nothing moves before it.
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    assert!(!wm.spec.paused && wm.spec.resume_at.is_none(), "the pause was lifted in the spec");
    let started = wm.status.unwrap().workloads[0].started_at.as_deref().and_then(server::engine::time::parse_rfc3339).expect("a start time");
    assert!(started >= at, "the move started at {started}, before the resume time {at}");
    w.wait_all_pods_on("web", &w.dedicated).await;
}

#[tokio::test]
async fn a_stateful_set_moves_pod_by_pod() {
    let mut w = World::new("4").await;
    let sets: Api<StatefulSet> = Api::namespaced(w.client.clone(), &w.ns);
    let set: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": "db" },
        "spec": {
            "replicas": REPLICAS,
            "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" } },
            "template": {
                "metadata": { "labels": { "app": "db" } },
                "spec": {
                    "nodeSelector": { "hexabase.ai/test-node": w.shared },
                    "tolerations": [{ "key": "example.com/spot", "operator": "Exists", "effect": "NoSchedule" }],
                    "containers": [{ "name": "db", "image": "postgres:17", "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }]
                }
            }
        }
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    cluster::wait_until(&sets, "db", WAIT, "stateful set ready", |s: &StatefulSet| s.status.as_ref().and_then(|s| s.available_replicas) == Some(REPLICAS))
        .await;
    w.start();
    let name = w.migrate_phases(vec![json!({ "workloads": [{ "namespace": w.ns, "kind": "StatefulSet", "name": "db" }] })], json!({})).await;
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    w.wait_all_pods_on("db", &w.dedicated).await;
    let db = &wm.status.unwrap().workloads[0];
    assert_eq!(db.state, WorkloadState::Moved);
    // A StatefulSet cannot surge: one pod at a time is replaced, and the count says so.
    assert!(db.min_available_seen.is_some_and(|m| m >= REPLICAS - 1), "{:?}", db.min_available_seen);
    let s = sets.get("db").await.unwrap();
    assert_eq!(s.spec.update_strategy.unwrap().type_.as_deref(), Some("RollingUpdate"));
}

/// A workspace may own several namespaces: a workload is named by its namespace too, and a
/// migration moves exactly the one chosen, not its namesake next door.
#[tokio::test]
async fn of_two_same_named_deployments_only_the_chosen_one_moves() {
    let mut w = World::new("4").await;
    let mut cleanup = Cleanup::new(&w.client);
    let other = cleanup.namespace("t-migr-b", &[("hexabase.ai/workspace", &w.ws)]).await;
    w.deployment("web", "100m").await;
    w.deployment_in(&other, "web", "100m", REPLICAS, json!({}), json!({})).await;
    w.start();
    let phases = vec![json!({ "workloads": [{ "namespace": other, "kind": "Deployment", "name": "web" }] })];
    let name = w.migrate_phases(phases, json!({})).await;
    let wm = w.wait_phase(&name, MigrationState::Succeeded).await;
    assert_eq!(wm.status.unwrap().workloads[0].workload.namespace, other);
    let other_pods: Api<Pod> = Api::namespaced(w.client.clone(), &other);
    let on =
        |pods: Vec<Pod>| pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect::<Vec<_>>();
    let deadline = Instant::now() + WAIT;
    loop {
        let nodes = on(other_pods.list(&ListParams::default().labels("app=web")).await.unwrap().items);
        if nodes.len() == REPLICAS as usize && nodes.iter().all(|n| n == &w.dedicated) {
            break;
        }
        assert!(Instant::now() < deadline, "the chosen web did not move: {nodes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.wait_all_pods_on("web", &w.shared).await;
    assert!(!w.deployments().get("web").await.unwrap().annotations().contains_key(patch::MIGRATION_ANNOTATION), "its namesake was not touched");
}
