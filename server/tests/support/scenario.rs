//! What the use case does, for tests that drive a running engine from outside (the two-replica
//! and the fault tests): a workspace of the demo user with a namespace, a shared-like node and
//! a Deployment on it, a DedicatedNode order and a WorkloadMigration onto the node it makes,
//! all labelled with the engine's scope; and the checks every such run ends with.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use server::crd::{DedicatedNode, DedicatedNodeSpec, MigrationState, NodePhase, WorkloadMigration};
use server::engine::SCOPE_LABEL;
use server::store::Store;

use super::cluster::{self, Cleanup};

/// Replicas of the tenant's Deployment.
pub const REPLICAS: i32 = 4;

/// A workspace of the demo user, its namespace, and a shared-like node its pods run on.
pub struct Tenant {
    pub client: Client,
    pub scope: String,
    pub ws: String,
    pub ws_id: String,
    pub ns: String,
    pub shared: String,
    orders: Vec<String>,
    _cleanup: Cleanup,
}

impl Tenant {
    pub async fn new(client: &Client, store: &Store, scope: &str) -> Tenant {
        let ws = cluster::name("ws");
        let ws_id = store.ensure_workspace(&ws, &ws, app::model::Plan::Pro).await.expect("workspace");
        let user = store.user_by_email(server::seed::DEMO_EMAIL).await.unwrap().expect("the demo user (seeded)");
        store.ensure_membership(&user.id, &ws_id, app::model::Role::Owner).await.expect("membership");
        let mut cleanup = Cleanup::new(client);
        let nodes: Api<Node> = Api::all(client.clone());
        let shared = cluster::name("t-shared");
        // Tainted so that only this tenant's pods (which tolerate it) land there.
        let labels = json!({ "hexabase.ai/test-node": shared, "hexabase.ai/node-pool": "shared" });
        nodes.create(&PostParams::default(), &cluster::kwok_node(&shared, "16", "32Gi", labels, Some(("example.com/spot", &ws)))).await.expect("shared node");
        cleanup.track_node(&shared);
        cluster::wait_until(&nodes, &shared, Duration::from_secs(60), "node Ready", cluster::node_ready).await;
        let ns = cleanup.namespace("t-ws", &[("hexabase.ai/workspace", &ws)]).await;
        Tenant { client: client.clone(), scope: scope.to_string(), ws, ws_id, ns, shared, orders: vec![], _cleanup: cleanup }
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn orders(&self) -> Api<DedicatedNode> {
        Api::all(self.client.clone())
    }

    pub fn migrations(&self) -> Api<WorkloadMigration> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A Deployment of `REPLICAS` on the shared-like node whose own strategy would take a
    /// replica down (maxUnavailable 1) and whose new pods take 2 s to get Ready: a move that
    /// did not hold availability would show in an independent watch. Returned rolled out.
    pub async fn deployment(&self, name: &str) -> Deployment {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name },
            "spec": {
                "replicas": REPLICAS,
                "selector": { "matchLabels": { "app": name } },
                "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 1 } },
                "template": {
                    "metadata": { "labels": { "app": name }, "annotations": { "pod-ready.stage.kwok.x-k8s.io/delay": "2s" } },
                    "spec": {
                        "nodeSelector": { "hexabase.ai/test-node": self.shared },
                        "tolerations": [{ "key": "example.com/spot", "operator": "Exists", "effect": "NoSchedule" }],
                        "containers": [{
                            "name": "app",
                            "image": "nginx:1.27",
                            "resources": { "requests": { "cpu": "200m", "memory": "64Mi" } }
                        }]
                    }
                }
            }
        }))
        .unwrap();
        self.deployments().create(&PostParams::default(), &d).await.expect("create deployment");
        cluster::wait_until(&self.deployments(), name, Duration::from_secs(90), "rollout complete", |d: &Deployment| {
            let s = d.status.clone().unwrap_or_default();
            s.observed_generation >= d.metadata.generation
                && s.updated_replicas == Some(REPLICAS)
                && s.available_replicas == Some(REPLICAS)
                && s.replicas == Some(REPLICAS)
        })
        .await
    }

    /// Orders a dedicated node for the workspace (what "Start Provisioning" creates), in scope.
    pub async fn order(&mut self, size: &str, region: &str) -> String {
        let name = cluster::name("dn");
        let mut dn = DedicatedNode::new(
            &name,
            DedicatedNodeSpec { workspace: self.ws.clone(), size: size.into(), region: region.into(), requested_by: server::seed::DEMO_EMAIL.into() },
        );
        dn.metadata.labels = Some([(SCOPE_LABEL.to_string(), self.scope.clone())].into());
        self.orders().create(&PostParams::default(), &dn).await.expect("create order");
        self.orders.push(name.clone());
        name
    }

    /// A migration of the tenant's Deployments onto `node`, one phase per slice, in scope.
    pub async fn migrate(&self, node: &str, phases: &[&[&str]], extra: Value) -> String {
        let name = cluster::name("wm");
        let phases: Vec<Value> = phases
            .iter()
            .map(|p| json!({ "workloads": p.iter().map(|w| json!({ "namespace": self.ns, "kind": "Deployment", "name": w })).collect::<Vec<_>>() }))
            .collect();
        let spec = json!({
            "workspace": self.ws,
            "targetNode": node,
            "approvedPhases": phases.len(),
            "phases": phases,
            "progressDeadlineSeconds": 120,
            "requestedBy": server::seed::DEMO_EMAIL
        });
        let wm = scoped_migration(&name, &self.scope, spec, &extra);
        self.migrations().create(&PostParams::default(), &wm).await.expect("create migration");
        name
    }

    pub async fn order_status(&self, name: &str) -> Option<server::crd::DedicatedNodeStatus> {
        self.orders().get_opt(name).await.ok().flatten().and_then(|d| d.status)
    }

    pub async fn migration_status(&self, name: &str) -> Option<server::crd::WorkloadMigrationStatus> {
        self.migrations().get_opt(name).await.ok().flatten().and_then(|w| w.status)
    }

    /// Waits until the order is Ready (or Failed) and the user was told.
    pub async fn wait_order_settled(&self, name: &str, timeout: Duration) -> DedicatedNode {
        cluster::wait_until(&self.orders(), name, timeout, "order settled and told", |dn: &DedicatedNode| {
            dn.status.as_ref().is_some_and(|s| {
                matches!(s.phase, NodePhase::Ready | NodePhase::Failed) && s.conditions.iter().any(|c| c.type_ == "UserNotified" && c.status == "True")
            })
        })
        .await
    }

    /// Waits until the migration is final (Succeeded, RolledBack, Failed) and the user was told.
    pub async fn wait_migration_settled(&self, name: &str, timeout: Duration) -> WorkloadMigration {
        cluster::wait_until(&self.migrations(), name, timeout, "migration final and told", |wm: &WorkloadMigration| {
            wm.status.as_ref().is_some_and(|s| {
                s.phase.is_final() && s.conditions.iter().any(|c| c.type_ == "UserNotified" && c.status == "True" && c.reason == s.phase.as_str())
            })
        })
        .await
    }

    /// Nodes made for an order, by the label a provider puts on them, however named.
    pub async fn nodes_of(&self, order: &str) -> Vec<Node> {
        let selector = format!("hexabase.ai/dedicated-node={order}");
        Api::<Node>::all(self.client.clone()).list(&ListParams::default().labels(&selector)).await.unwrap().items
    }

    /// Nodes the Deployment's live pods run on.
    pub async fn pod_nodes(&self, app: &str) -> Vec<Option<String>> {
        let pods = self.pods().list(&ListParams::default().labels(&format!("app={app}"))).await.unwrap();
        pods.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone())).collect()
    }

    pub async fn wait_pods_on(&self, app: &str, node: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes = self.pod_nodes(app).await;
            if nodes.len() == REPLICAS as usize && nodes.iter().all(|n| n.as_deref() == Some(node)) {
                return;
            }
            assert!(Instant::now() < deadline, "{app}'s pods did not all end on {node}: {nodes:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The workspace's notifications (`title: body`), newest first, from the database.
    pub async fn notifications(&self, store: &Store) -> Vec<String> {
        store.notifications(&self.ws_id).await.unwrap().into_iter().map(|n| format!("{}: {}", n.title, n.body)).collect()
    }

    /// Deletes the order through the engine (which deletes its Node) and waits until it is gone.
    pub async fn release(&self, order: &str, timeout: Duration) {
        let _ = self.orders().delete(order, &DeleteParams::default()).await;
        let deadline = Instant::now() + timeout;
        while self.orders().get_opt(order).await.ok().flatten().is_some() {
            assert!(Instant::now() < deadline, "order {order} was not released within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        // Without an engine nobody removes the finalizers: drop them here, then the orders and
        // their Nodes (Cleanup then deletes the namespace and the shared node).
        let (ns, orders) = (self.ns.clone(), std::mem::take(&mut self.orders));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let client = cluster::client().await;
                let no_finalizers = Patch::Merge(json!({ "metadata": { "finalizers": null } }));
                let wms: Api<WorkloadMigration> = Api::namespaced(client.clone(), &ns);
                for wm in wms.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                    let _ = wms.patch(&wm.name_any(), &PatchParams::default(), &no_finalizers).await;
                }
                let dns: Api<DedicatedNode> = Api::all(client.clone());
                for name in orders {
                    let _ = dns.patch(&name, &PatchParams::default(), &no_finalizers).await;
                    let _ = dns.delete(&name, &DeleteParams::default()).await;
                    let _ = Api::<Node>::all(client.clone()).delete(&name, &DeleteParams::default()).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// How a migration of the tenant's Deployment `app` ended, checked against the rules:
/// Succeeded with every pod on the node and the template moved, or RolledBack with the
/// template exactly the original.
pub async fn check_workload_end(t: &Tenant, app: &str, original: &Deployment, node: &str, phase: MigrationState) {
    let d = t.deployments().get(app).await.unwrap();
    let pod = serde_json::to_value(d.spec.template.spec.as_ref().unwrap()).unwrap();
    match phase {
        MigrationState::Succeeded => {
            t.wait_pods_on(app, node, Duration::from_secs(60)).await;
            assert_eq!(pod["nodeSelector"]["kubernetes.io/hostname"], json!(node), "moved: selects the node");
            assert!(
                pod["tolerations"].as_array().unwrap().iter().any(|x| x["key"] == "hexabase.ai/dedicated" && x["value"] == t.ws.as_str()),
                "moved: tolerates the node's taint"
            );
        }
        MigrationState::RolledBack => {
            assert_eq!(d.spec.template, original.spec.template, "rolled back: the original template exactly");
        }
        other => panic!("the migration ended {other:?}"),
    }
}

/// A WorkloadMigration in a test's scope: `spec` with the fields of `extra` set over it.
pub fn scoped_migration(name: &str, scope: &str, mut spec: Value, extra: &Value) -> WorkloadMigration {
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    serde_json::from_value(json!({
        "apiVersion": "hexabase.ai/v1alpha1",
        "kind": "WorkloadMigration",
        "metadata": { "name": name, "labels": { SCOPE_LABEL: scope } },
        "spec": spec
    }))
    .unwrap()
}
