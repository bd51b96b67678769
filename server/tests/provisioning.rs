//! Dedicated node provisioning against the real local cluster (KWOK makes the Nodes Ready).
//! Each test runs its own controller with its own catalogue, scoped by a unique label so that
//! tests (and other test binaries, and a dev server) sharing the cluster never touch each
//! other's orders.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use server::catalogue::Catalogue;
use server::crd::{DedicatedNode, DedicatedNodeSpec, NodePhase, StepName, StepState};
use server::engine::{Scope, SCOPE_LABEL};
use server::provisioning::{self, steps::StatusExt, Config, Context};
use server::store::Store;
use support::cluster;

const WORKSPACE: &str = "acme-production";
const WAIT: Duration = Duration::from_secs(60);

/// Tokyo has room; Osaka has none of the small size and one of the medium.
const CATALOGUE: &str = r#"
version: 1
sizes:
  - { id: d2.large, vcpu: 2, memory_gib: 8, storage_gib: 100, network_gbps: 5, hourly_usd: 0.096, description: small }
  - { id: d4.xlarge, vcpu: 4, memory_gib: 16, storage_gib: 200, network_gbps: 10, hourly_usd: 0.192, description: medium }
regions:
  - { id: ap-northeast-1, name: Tokyo, capacity: { d2.large: 5, d4.xlarge: 5 } }
  - { id: ap-northeast-3, name: Osaka, capacity: { d2.large: 0, d4.xlarge: 1 } }
"#;

/// One test's world: a store, a catalogue, a scope, and a controller that can be stopped and
/// started again. Orders it made are deleted when it is dropped, also when the test fails.
struct World {
    client: Client,
    store: Store,
    catalogue: Arc<Catalogue>,
    scope: String,
    controller: Option<tokio::task::JoinHandle<()>>,
    orders: Vec<String>,
}

impl World {
    async fn new() -> World {
        let client = cluster::client().await;
        server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
        let db = std::env::temp_dir().join(format!("hexabase-prov-{}.db", server::db::new_id()));
        let store = Store::new(server::db::connect(&format!("sqlite://{}?mode=rwc", db.display())).await.expect("database"));
        server::seed::seed_demo(&store).await.expect("seed");
        let path = std::env::temp_dir().join(format!("hexabase-catalogue-{}.yaml", server::db::new_id()));
        std::fs::write(&path, CATALOGUE).unwrap();
        let catalogue = Arc::new(Catalogue::load(&path).expect("test catalogue"));
        World { client, store, catalogue, scope: cluster::name("scope"), controller: None, orders: vec![] }
    }

    fn start(&mut self, step_delay: Duration) {
        let config = Config { step_delay, scope: Scope::labelled(&self.scope) };
        let ctx = Arc::new(Context::new(self.client.clone(), self.store.clone(), self.catalogue.clone(), config));
        self.controller = Some(tokio::spawn(provisioning::run(self.client.clone(), ctx)));
    }

    /// Kills the controller at whatever it was doing, like a crashed server.
    async fn kill(&mut self) {
        if let Some(task) = self.controller.take() {
            task.abort();
            let _ = task.await;
        }
    }

    fn orders(&self) -> Api<DedicatedNode> {
        Api::all(self.client.clone())
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    async fn order(&mut self, prefix: &str, size: &str, region: &str) -> String {
        let name = cluster::name(prefix);
        let mut dn = DedicatedNode::new(
            &name,
            DedicatedNodeSpec { workspace: WORKSPACE.into(), size: size.into(), region: region.into(), requested_by: "dev@example.com".into() },
        );
        dn.metadata.labels = Some([(SCOPE_LABEL.to_string(), self.scope.clone())].into());
        self.orders().create(&PostParams::default(), &dn).await.expect("create order");
        self.orders.push(name.clone());
        name
    }

    async fn wait_for(&self, name: &str, what: &str, cond: impl Fn(&DedicatedNode) -> bool) -> DedicatedNode {
        let found = tokio::time::timeout(WAIT, await_condition(self.orders(), name, move |dn: Option<&DedicatedNode>| dn.is_some_and(&cond))).await;
        match found {
            Ok(Ok(Some(dn))) => dn,
            _ => {
                let now = self.orders().get_opt(name).await.ok().flatten();
                panic!("{name} did not become {what} within {WAIT:?}; status now: {:#?}", now.and_then(|d| d.status));
            }
        }
    }

    async fn wait_phase(&self, name: &str, phase: NodePhase) -> DedicatedNode {
        self.wait_for(name, phase.as_str(), |dn| dn.status.as_ref().is_some_and(|s| s.phase == phase)).await
    }

    async fn wait_gone(&self, name: &str) {
        let gone = tokio::time::timeout(WAIT, await_condition(self.orders(), name, |dn: Option<&DedicatedNode>| dn.is_none())).await;
        assert!(matches!(gone, Ok(Ok(_))), "{name} was not deleted within {WAIT:?}");
    }

    /// Nodes made for this order, by the order label a provider puts on them, however they
    /// are named: a second Node under another name would be counted.
    async fn nodes_of(&self, dn: &DedicatedNode) -> Vec<Node> {
        let selector = format!("hexabase.ai/dedicated-node={}", dn.name_any());
        self.nodes().list(&ListParams::default().labels(&selector)).await.unwrap().items
    }

    async fn workspace_id(&self) -> String {
        self.store.workspace_id(WORKSPACE).await.unwrap().expect("seeded workspace")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(task) = self.controller.take() {
            task.abort();
        }
        let orders = std::mem::take(&mut self.orders);
        // Drop cannot await: clean up on a thread with its own runtime and client. With the
        // controller gone, the finalizer is removed here and the Node deleted directly.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let client = cluster::client().await;
                let api: Api<DedicatedNode> = Api::all(client.clone());
                for name in orders {
                    let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}))).await;
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                    let _ = Api::<Node>::all(client.clone()).delete(&name, &DeleteParams::default()).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// The Kubernetes Events about an order (`kubectl describe dedicatednode NAME`), oldest first,
/// once `reason` is among them (the controller publishes right after its status write).
async fn events_until(client: &Client, name: &str, reason: &str) -> Vec<k8s_openapi::api::core::v1::Event> {
    let api = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), "default");
    let params = ListParams::default().fields(&format!("involvedObject.name={name},involvedObject.kind=DedicatedNode"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut events = api.list(&params).await.expect("list events").items;
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        if events.iter().any(|e| e.reason.as_deref() == Some(reason)) || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn reasons(events: &[k8s_openapi::api::core::v1::Event]) -> Vec<(&str, &str)> {
    events.iter().map(|e| (e.type_.as_deref().unwrap_or_default(), e.reason.as_deref().unwrap_or_default())).collect()
}

fn steps_all_done(dn: &DedicatedNode) {
    let status = dn.status.as_ref().unwrap();
    assert_eq!(status.steps.iter().map(|s| s.name).collect::<Vec<_>>(), StepName::ALL.to_vec());
    for step in &status.steps {
        assert_eq!(step.state, StepState::Done, "{step:?}");
        let started = step.started_at.as_deref().and_then(server::engine::time::parse_rfc3339).expect("started_at is RFC 3339");
        let finished = step.finished_at.as_deref().and_then(server::engine::time::parse_rfc3339).expect("finished_at is RFC 3339");
        assert!(started <= finished, "{step:?}");
    }
    assert_eq!(status.progress, 100);
}

#[tokio::test]
async fn a_dedicated_node_becomes_ready_with_labels_taint_and_capacity_and_the_user_is_told() {
    let mut w = World::new().await;
    w.start(Duration::ZERO);
    let t0 = Instant::now();
    let name = w.order("dn-ready", "d2.large", "ap-northeast-1").await;
    let dn = w.wait_phase(&name, NodePhase::Ready).await;
    eprintln!("measured: {name} Ready {} ms after creation (step delay 0)", t0.elapsed().as_millis());
    for step in &dn.status.as_ref().unwrap().steps {
        eprintln!("  {:?}: {:?} .. {:?}", step.name, step.started_at, step.finished_at);
    }

    steps_all_done(&dn);
    let status = dn.status.as_ref().unwrap();
    assert_eq!(status.node_name.as_deref(), Some(name.as_str()));
    assert!(status.error.is_none() && status.alternatives.is_empty());
    assert_eq!(status.observed_generation, dn.metadata.generation);
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready condition");
    assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", dn.metadata.generation));
    assert!(dn.finalizers().iter().any(|f| f == provisioning::FINALIZER));

    let node = w.nodes().get(&name).await.expect("the Node exists under the order's name");
    let labels = node.labels();
    for (k, v) in [
        ("hexabase.ai/node-pool", "dedicated"),
        ("hexabase.ai/workspace", WORKSPACE),
        ("hexabase.ai/size", "d2.large"),
        ("topology.kubernetes.io/region", "ap-northeast-1"),
        ("type", "kwok"),
        ("kubernetes.io/hostname", name.as_str()),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
    }
    assert_eq!(node.annotations().get("kwok.x-k8s.io/node").map(String::as_str), Some("fake"));
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    assert!(taints.iter().any(|t| t.key == "hexabase.ai/dedicated" && t.value.as_deref() == Some(WORKSPACE) && t.effect == "NoSchedule"), "{taints:?}");
    let node_status = node.status.clone().unwrap();
    let cap = node_status.capacity.unwrap();
    let alloc = node_status.allocatable.unwrap();
    assert_eq!((cap["cpu"].0.as_str(), cap["memory"].0.as_str(), cap["pods"].0.as_str()), ("2", "8Gi", "110"));
    assert_eq!(cap["ephemeral-storage"].0, "100Gi");
    assert_eq!(alloc["cpu"].0, "1900m");
    assert!(server::capacity::quantity(&alloc["memory"]).unwrap() < 8.0 * server::capacity::GIB);
    assert_eq!(w.nodes_of(&dn).await.len(), 1);

    // Every step done is a Kubernetes Event on the order, in order, as Karpenter does.
    let events = events_until(&w.client, &name, "Ready").await;
    assert_eq!(reasons(&events), [("Normal", "CapacityReserved"), ("Normal", "Launched"), ("Normal", "Registered"), ("Normal", "Ready")]);
    let ready = events.last().unwrap();
    assert_eq!(ready.message.as_deref(), Some(format!("Node {name} is Ready for workloads.").as_str()));
    assert_eq!(ready.reporting_component.as_deref(), Some(provisioning::kube_events::REPORTER));

    // The notification is sent once the Ready status is stored, and only once.
    let ws = w.workspace_id().await;
    let dn = w.wait_for(&name, "notified", |dn| dn.status.as_ref().is_some_and(|s| s.is_notified())).await;
    let notes = w.store.notifications(&ws).await.unwrap();
    let mine: Vec<_> = notes.iter().filter(|n| n.body.contains(&name)).collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].title, "Dedicated node ready");
    assert_eq!(mine[0].body, format!("{name} (d2.large, ap-northeast-1) is ready for workloads."));
    assert_eq!(mine[0].link.as_deref(), Some(format!("/w/{WORKSPACE}/nodes/{name}").as_str()));
    let audit = w.store.audit_entries(Some(&ws)).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "provision-dedicated-node"
        && e.outcome == "succeeded"
        && e.target.as_deref() == Some(name.as_str())
        && e.actor == "dev@example.com"));

    // A restarted controller re-reads a Ready order and neither notifies again nor changes it.
    // A second order reaching Ready shows the restarted controller has done its first pass.
    w.kill().await;
    w.start(Duration::ZERO);
    let second = w.order("dn-after-restart", "d2.large", "ap-northeast-1").await;
    w.wait_phase(&second, NodePhase::Ready).await;
    let again = w.orders().get(&name).await.unwrap();
    assert_eq!(again.resource_version(), dn.resource_version(), "nothing to write for a settled order");
    assert_eq!(w.store.notifications(&ws).await.unwrap().iter().filter(|n| n.body.contains(&name)).count(), 1);
}

#[tokio::test]
async fn no_capacity_fails_with_alternatives_and_creates_nothing_then_an_alternative_succeeds() {
    let mut w = World::new().await;
    w.start(Duration::ZERO);
    let name = w.order("dn-full", "d2.large", "ap-northeast-3").await;
    let dn = w.wait_phase(&name, NodePhase::Failed).await;
    let status = dn.status.clone().unwrap();
    let error = status.error.clone().expect("an error");
    assert_eq!(error.reason, "InsufficientCapacity");
    assert!(error.message.contains("ap-northeast-3") && error.message.contains("d2.large"), "{}", error.message);
    let alts: Vec<(&str, &str, f64)> = status.alternatives.iter().map(|a| (a.region.as_str(), a.size.as_str(), a.monthly_cost_usd)).collect();
    assert_eq!(alts, vec![("ap-northeast-1", "d2.large", 70.08), ("ap-northeast-3", "d4.xlarge", 140.16)]);
    assert_eq!(status.steps[0].state, StepState::Failed);
    assert!(status.steps[1..].iter().all(|s| s.state == StepState::Pending));
    assert!(w.nodes().get_opt(&name).await.unwrap().is_none(), "no Node for a failed order");
    assert!(w.nodes_of(&dn).await.is_empty());
    let events = events_until(&w.client, &name, "InsufficientCapacity").await;
    assert_eq!(reasons(&events), [("Warning", "InsufficientCapacity")], "the failure, said once");
    assert_eq!(events[0].message.as_deref(), Some(error.message.as_str()));

    let ws = w.workspace_id().await;
    w.wait_for(&name, "notified", |dn| dn.status.as_ref().is_some_and(|s| s.is_notified())).await;
    let notes = w.store.notifications(&ws).await.unwrap();
    assert!(notes.iter().any(|n| n.title == "Dedicated node provisioning failed" && n.body.contains(&name) && n.body.contains("ap-northeast-3")), "{notes:?}");

    // The user picks the first alternative (use case 8d): the changed spec is tried afresh.
    let pick = &status.alternatives[0];
    w.orders().patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"region": pick.region}}))).await.unwrap();
    let dn = w.wait_phase(&name, NodePhase::Ready).await;
    steps_all_done(&dn);
    assert!(dn.status.as_ref().unwrap().error.is_none() && dn.status.as_ref().unwrap().alternatives.is_empty());
    let node = w.nodes().get(&name).await.unwrap();
    assert_eq!(node.labels().get("topology.kubernetes.io/region").map(String::as_str), Some("ap-northeast-1"));
}

#[tokio::test]
async fn two_orders_racing_for_the_last_slot_get_one_node() {
    let mut w = World::new().await;
    w.start(Duration::ZERO);
    // Osaka has room for exactly one d4.xlarge.
    let a = w.order("dn-race-a", "d4.xlarge", "ap-northeast-3").await;
    let b = w.order("dn-race-b", "d4.xlarge", "ap-northeast-3").await;
    let settled = |dn: &DedicatedNode| dn.status.as_ref().is_some_and(|s| matches!(s.phase, NodePhase::Ready | NodePhase::Failed));
    let da = w.wait_for(&a, "settled", settled).await;
    let db = w.wait_for(&b, "settled", settled).await;
    let phases = [da.status.unwrap().phase, db.status.unwrap().phase];
    assert_eq!(phases.iter().filter(|p| **p == NodePhase::Ready).count(), 1, "{phases:?}");
    assert_eq!(phases.iter().filter(|p| **p == NodePhase::Failed).count(), 1, "{phases:?}");
}

#[tokio::test]
async fn a_controller_killed_mid_provisioning_finishes_with_exactly_one_node_after_restart() {
    let mut w = World::new().await;

    // Killed while booting: capacity is reserved, no Node yet.
    w.start(Duration::from_secs(3));
    let booting = w.order("dn-crash-boot", "d2.large", "ap-northeast-1").await;
    let reserved = |dn: &DedicatedNode| dn.status.as_ref().is_some_and(|s| s.holds_capacity());
    let before = w.wait_for(&booting, "capacity reserved", reserved).await;
    let boot_started = before.status.as_ref().and_then(|s| s.steps.iter().find(|st| st.name == StepName::Booting)).and_then(|st| st.started_at.clone());
    assert!(boot_started.is_some(), "booting had begun when the controller was killed");
    w.kill().await;
    assert!(w.nodes().get_opt(&booting).await.unwrap().is_none(), "killed before the Node was created");

    // Killed right after the Node was created, before the status could say so.
    w.start(Duration::ZERO);
    let registering = w.order("dn-crash-reg", "d2.large", "ap-northeast-1").await;
    let deadline = Instant::now() + WAIT;
    while w.nodes().get_opt(&registering).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the Node was never created");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    w.kill().await;

    w.start(Duration::ZERO);
    for name in [&booting, &registering] {
        let dn = w.wait_phase(name, NodePhase::Ready).await;
        steps_all_done(&dn);
        assert_eq!(w.nodes_of(&dn).await.len(), 1, "{name}: exactly one Node");
        if name == &booting {
            let boot = dn.status.as_ref().unwrap().steps.iter().find(|s| s.name == StepName::Booting).cloned().unwrap();
            assert_eq!(boot.started_at, boot_started, "the restart continued the same boot rather than starting another");
        }
    }
    let ws = w.workspace_id().await;
    for name in [&booting, &registering] {
        w.wait_for(name, "notified", |dn| dn.status.as_ref().is_some_and(|s| s.is_notified())).await;
        let n = w.store.notifications(&ws).await.unwrap().iter().filter(|n| n.body.contains(name.as_str())).count();
        assert_eq!(n, 1, "{name}: notified once");
    }
}

#[tokio::test]
async fn deleting_the_order_removes_its_node() {
    let mut w = World::new().await;
    w.start(Duration::ZERO);
    let name = w.order("dn-delete", "d2.large", "ap-northeast-1").await;
    w.wait_phase(&name, NodePhase::Ready).await;
    assert!(w.nodes().get_opt(&name).await.unwrap().is_some());

    w.orders().delete(&name, &DeleteParams::default()).await.unwrap();
    w.wait_gone(&name).await;
    assert!(w.nodes().get_opt(&name).await.unwrap().is_none(), "the finalizer deleted the Node first");
    let ws = w.workspace_id().await;
    let audit = w.store.audit_entries(Some(&ws)).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "release-dedicated-node" && e.target.as_deref() == Some(name.as_str())));
}

/// The kwok provider, except that the second and third `ensure` fail with a server error (an
/// API server restarting, say), and every call is recorded. (Two, since a reconcile woken by
/// the Node's creation may run on the order as it was before, and its status write then loses
/// the race with our own newer one.)
struct FlakyProvider {
    inner: provisioning::kwok::KwokProvider,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl FlakyProvider {
    fn record(&self, call: &'static str) -> usize {
        let mut calls = self.calls.lock().unwrap();
        calls.push(call);
        calls.iter().filter(|c| **c == call).count()
    }
}

#[async_trait::async_trait]
impl provisioning::NodeProvider for FlakyProvider {
    fn name(&self) -> &'static str {
        "flaky-kwok"
    }
    fn machine_kind(&self) -> kube::core::ApiResource {
        self.inner.machine_kind()
    }
    async fn reserve(&self, req: &provisioning::NodeRequest) -> Result<(), provisioning::ProviderError> {
        self.record("reserve");
        self.inner.reserve(req).await
    }
    async fn ensure(&self, req: &provisioning::NodeRequest, since: time::OffsetDateTime) -> Result<provisioning::Observation, provisioning::ProviderError> {
        if matches!(self.record("ensure"), 2 | 3) {
            let status = kube::core::Status { code: 503, message: "the cloud API is unavailable".into(), ..Default::default() };
            return Err(provisioning::ProviderError::Kube(kube::Error::Api(Box::new(status))));
        }
        self.inner.ensure(req, since).await
    }
    async fn observe(&self, req: &provisioning::NodeRequest) -> Result<provisioning::Observation, provisioning::ProviderError> {
        self.record("observe");
        self.inner.observe(req).await
    }
    async fn offerings(&self) -> Result<Vec<provisioning::Offering>, provisioning::ProviderError> {
        self.inner.offerings().await
    }
    async fn release(&self, name: &str) -> Result<provisioning::Progress, provisioning::ProviderError> {
        self.record("release");
        self.inner.release(name).await
    }
}

#[tokio::test]
async fn a_failing_provider_call_is_shown_on_its_step_and_retried() {
    let mut w = World::new().await;
    let config = Config { step_delay: Duration::ZERO, scope: Scope::labelled(&w.scope) };
    let flaky = Arc::new(FlakyProvider {
        inner: provisioning::kwok::KwokProvider::new(w.client.clone(), w.catalogue.clone(), Duration::ZERO, config.scope.selector()),
        calls: Default::default(),
    });
    let ctx = Arc::new(Context::with_provider(w.client.clone(), w.store.clone(), w.catalogue.clone(), config, flaky.clone()));
    w.controller = Some(tokio::spawn(provisioning::run(w.client.clone(), ctx)));

    // The first `ensure` creates the Node (three steps done); the next ones fail while the
    // Ready step waits for KWOK.
    let name = w.order("dn-flaky", "d2.large", "ap-northeast-1").await;
    let waiting = w
        .wait_for(&name, "retrying", |dn| {
            dn.status
                .as_ref()
                .is_some_and(|s| s.steps.iter().any(|st| st.name == StepName::Ready && st.message.as_deref().is_some_and(|m| m.starts_with("Retrying:"))))
        })
        .await;
    let status = waiting.status.unwrap();
    assert_eq!((status.phase, status.progress), (NodePhase::Provisioning, 75), "the steps before the failure stay done");
    let dn = w.wait_phase(&name, NodePhase::Ready).await;
    steps_all_done(&dn);
    assert!(dn.status.as_ref().unwrap().steps.iter().all(|s| s.message.is_none()), "the retry message is cleared");
    let calls = flaky.calls.lock().unwrap().clone();
    // A failure, a success, and possibly repeats from reconciles woken before the cache saw
    // the newest status: ensuring again is harmless, and there is still one Node.
    assert!(calls.iter().filter(|c| **c == "ensure").count() >= 4, "{calls:?}");
    assert_eq!(w.nodes_of(&dn).await.len(), 1);
    assert_eq!(calls.first(), Some(&"reserve"), "capacity first: {calls:?}");
}

#[tokio::test]
async fn a_ready_node_deleted_by_hand_is_replaced_and_the_user_told() {
    let mut w = World::new().await;
    w.start(Duration::ZERO);
    let name = w.order("dn-lost", "d2.large", "ap-northeast-1").await;
    w.wait_for(&name, "Ready and told", |dn| dn.status.as_ref().is_some_and(|s| s.phase == NodePhase::Ready && s.is_notified())).await;
    let first = w.nodes().get(&name).await.unwrap();

    w.nodes().delete(&name, &DeleteParams::default()).await.unwrap();
    let replaced = w
        .wait_for(&name, "Ready on a new Node, and told", |dn| {
            dn.status.as_ref().is_some_and(|s| {
                s.phase == NodePhase::Ready
                    && s.is_notified()
                    && s.conditions.iter().any(|c| c.type_ == "NodeLost" && c.status == "False" && c.reason == "Replaced")
            })
        })
        .await;
    steps_all_done(&replaced);
    let node = w.nodes().get(&name).await.expect("the Node is back under the order's name");
    assert_ne!(node.uid(), first.uid(), "a new Node, not the deleted one");
    assert_eq!(w.nodes_of(&replaced).await.len(), 1);
    assert_eq!(replaced.status.as_ref().unwrap().node_name.as_deref(), Some(name.as_str()));

    let ws = w.workspace_id().await;
    let titles: Vec<String> = w.store.notifications(&ws).await.unwrap().into_iter().filter(|n| n.body.contains(&name)).map(|n| n.title).collect();
    assert_eq!(titles.iter().filter(|t| *t == "Dedicated node lost").count(), 1, "{titles:?}");
    assert_eq!(titles.iter().filter(|t| *t == "Dedicated node replaced").count(), 1, "{titles:?}");
    assert_eq!(titles.iter().filter(|t| *t == "Dedicated node ready").count(), 1, "the first Ready only: {titles:?}");
}

/// An order named like a Node it did not make (here a shared-pool Node) cannot take it over,
/// and deleting the order leaves that Node alone: a provider deletes only what carries the
/// order's label.
#[tokio::test]
async fn an_order_named_like_a_shared_node_leaves_that_node_alone() {
    let mut w = World::new().await;
    w.start(Duration::ZERO);
    let name = cluster::name("dn-taken");
    let labels = serde_json::json!({ "hexabase.ai/node-pool": "shared", "hexabase.ai/test-node": name });
    w.nodes().create(&PostParams::default(), &cluster::kwok_node(&name, "4", "8Gi", labels, None)).await.expect("a shared-pool Node");
    let mut dn = DedicatedNode::new(
        &name,
        DedicatedNodeSpec { workspace: WORKSPACE.into(), size: "d2.large".into(), region: "ap-northeast-1".into(), requested_by: "dev@example.com".into() },
    );
    dn.metadata.labels = Some([(SCOPE_LABEL.to_string(), w.scope.clone())].into());
    w.orders().create(&PostParams::default(), &dn).await.expect("create order");
    w.orders.push(name.clone());

    w.wait_for(&name, "stopped at the taken name", |dn| format!("{:?}", dn.status).contains("already used by a machine this order did not make")).await;
    w.orders().delete(&name, &DeleteParams::default()).await.unwrap();
    w.wait_gone(&name).await;
    let node = w.nodes().get_opt(&name).await.unwrap();
    w.orders.clear();
    let _ = w.nodes().delete(&name, &DeleteParams::default()).await;

    let node = node.expect("the shared-pool Node is still there");
    assert!(node.metadata.deletion_timestamp.is_none(), "and not being deleted");
    assert_eq!(node.labels().get("hexabase.ai/node-pool").map(String::as_str), Some("shared"));
}
