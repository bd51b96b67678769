//! Every link in every notification the engine writes leads to a page that renders: a
//! dedicated node that became Ready, one that failed for lack of capacity, a migration that
//! succeeded and one that rolled back. The engine writes into the same database the dashboard
//! reads, and the test follows each link as the signed-in user would.

mod support;

use std::sync::Arc;
use std::time::Duration;

use app::model::Plan;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use reqwest::StatusCode;
use serde_json::json;
use server::catalogue::Catalogue;
use server::crd::{DedicatedNode, DedicatedNodeSpec, MigrationState, NodePhase, WorkloadMigration};
use server::engine::{Scope, SCOPE_LABEL};
use server::{migration, provisioning};
use support::cluster::{self, Cleanup};
use support::{backends, TestServer};

const WAIT: Duration = Duration::from_secs(90);

/// A Deployment of two 1.5-CPU pods on the shared pool: it moves to nothing smaller than a
/// d4.xlarge, so onto a d2.large it rolls back.
fn deployment(name: &str, cpu: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": { "hexabase.ai/node-pool": "shared" },
                    "containers": [{ "name": "app", "image": "nginx:1.27", "resources": { "requests": { "cpu": cpu, "memory": "64Mi" } } }]
                }
            }
        }
    }))
    .unwrap()
}

async fn order(client: &Client, ws: &str, scope: &str, region: &str) -> String {
    let name = cluster::name(ws);
    let mut dn = DedicatedNode::new(
        &name,
        DedicatedNodeSpec { workspace: ws.into(), size: "d2.large".into(), region: region.into(), requested_by: "dev@example.com".into() },
    );
    dn.metadata.labels = Some([(SCOPE_LABEL.to_string(), scope.to_string()), ("hexabase.ai/workspace".to_string(), ws.to_string())].into());
    Api::<DedicatedNode>::all(client.clone()).create(&PostParams::default(), &dn).await.expect("create order");
    name
}

async fn migrate(client: &Client, ws: &str, ns: &str, scope: &str, node: &str, workload: &str) -> String {
    let name = cluster::name("wm");
    let wm: WorkloadMigration = serde_json::from_value(json!({
        "apiVersion": "hexabase.ai/v1alpha1",
        "kind": "WorkloadMigration",
        "metadata": { "name": name, "labels": { SCOPE_LABEL: scope } },
        "spec": {
            "workspace": ws, "targetNode": node, "progressDeadlineSeconds": 30, "requestedBy": "dev@example.com",
            "phases": [{ "workloads": [{ "namespace": ns, "kind": "Deployment", "name": workload }] }]
        }
    }))
    .unwrap();
    Api::<WorkloadMigration>::namespaced(client.clone(), ns).create(&PostParams::default(), &wm).await.expect("create migration");
    name
}

#[tokio::test]
async fn every_notification_link_renders_its_page() {
    let srv = TestServer::start(backends()[0]).await;
    let store = srv.store().await;
    let client = cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");

    // A workspace of the test's own, the demo user a member of it.
    let ws = cluster::name("links");
    let ws_id = store.ensure_workspace(&ws, &ws, Plan::Pro).await.unwrap();
    let dev = store.user_by_email("dev@example.com").await.unwrap().expect("demo user").id;
    store.ensure_membership(&dev, &ws_id, app::model::Role::Owner).await.unwrap();
    let mut cleanup = Cleanup::new(&client);
    let ns = cleanup.namespace("t-links", &[("hexabase.ai/workspace", &ws)]).await;

    let scope = cluster::name("scope");
    let catalogue = Arc::new(Catalogue::load_default().expect("the shipped catalogue"));
    let prov = provisioning::Context::new(
        client.clone(),
        store.clone(),
        catalogue,
        provisioning::Config { step_delay: Duration::ZERO, scope: Scope::labelled(&scope) },
    );
    let migr = migration::Context::new(
        client.clone(),
        store.clone(),
        migration::Config { scope: Scope::labelled(&scope), poll: Duration::from_millis(500), ..Default::default() },
        None,
    );
    let engine = tokio::spawn({
        let client = client.clone();
        async move {
            tokio::join!(provisioning::run(client.clone(), Arc::new(prov)), migration::run(client, Arc::new(migr)));
        }
    });

    // Node outcomes: Ready in Tokyo, Failed in sold-out Osaka.
    let orders: Api<DedicatedNode> = Api::all(client.clone());
    let ready = order(&client, &ws, &scope, "ap-northeast-1").await;
    let failed = order(&client, &ws, &scope, "ap-northeast-3").await;
    let phase_is = |p: NodePhase| move |dn: &DedicatedNode| dn.status.as_ref().is_some_and(|s| s.phase == p);
    cluster::wait_until(&orders, &ready, WAIT, "node Ready", phase_is(NodePhase::Ready)).await;
    cluster::wait_until(&orders, &failed, WAIT, "node Failed", phase_is(NodePhase::Failed)).await;

    // Migration outcomes onto the Ready node: a small app moves, a large one rolls back.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments.create(&PostParams::default(), &deployment("small", "100m")).await.unwrap();
    deployments.create(&PostParams::default(), &deployment("large", "1500m")).await.unwrap();
    for d in ["small", "large"] {
        cluster::wait_until(&deployments, d, WAIT, "rolled out", |d: &Deployment| d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)).await;
    }
    let migrations: Api<WorkloadMigration> = Api::namespaced(client.clone(), &ns);
    let moved = migrate(&client, &ws, &ns, &scope, &ready, "small").await;
    cluster::wait_until(&migrations, &moved, WAIT, "migration Succeeded", |m: &WorkloadMigration| {
        m.status.as_ref().is_some_and(|s| s.phase == MigrationState::Succeeded)
    })
    .await;
    let rolled = migrate(&client, &ws, &ns, &scope, &ready, "large").await;
    cluster::wait_until(&migrations, &rolled, WAIT, "migration RolledBack", |m: &WorkloadMigration| {
        m.status.as_ref().is_some_and(|s| s.phase == MigrationState::RolledBack)
    })
    .await;

    // Four outcomes, four notifications (each written once its outcome is stored).
    let deadline = tokio::time::Instant::now() + WAIT;
    let notes = loop {
        let notes = store.notifications(&ws_id).await.unwrap();
        if notes.len() >= 4 || tokio::time::Instant::now() > deadline {
            break notes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let titles: Vec<&str> = notes.iter().map(|n| n.title.as_str()).collect();
    for expected in ["Dedicated node ready", "Dedicated node provisioning failed", "Migration complete", "Migration rolled back"] {
        assert!(titles.contains(&expected), "{expected} missing from {titles:?}");
    }

    let http = srv.demo_client().await;
    for n in &notes {
        let link = n.link.as_deref().unwrap_or_else(|| panic!("{} has no link", n.title));
        let page = http.get(format!("{}{link}", srv.base)).send().await.unwrap();
        let status = page.status();
        let body = page.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{}: {link}", n.title);
        assert!(!body.contains("Page not found"), "{}: {link} renders the not-found page", n.title);
        let object = link.rsplit('/').next().unwrap();
        let heading = if link.contains("/migrations/") { format!("Migration to {ready}") } else { format!("Dedicated node {object}") };
        assert!(body.contains(&heading), "{}: {link} does not show {heading:?}", n.title);
    }

    engine.abort();
    let _ = engine.await;
    for m in [&moved, &rolled] {
        let _ = migrations.patch(m, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": null } }))).await;
    }
    for o in [&ready, &failed] {
        let _ = orders.patch(o, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": null } }))).await;
        let _ = orders.delete(o, &DeleteParams::default()).await;
    }
    cleanup.track_node(&ready);
    srv.stop().await;
}
