//! Requests for dedicated nodes through the dashboard against the real API server: a retry
//! with an alternative creates the new order before the failed one goes, so a create the
//! cluster refuses leaves the user with the failed order and its alternatives, never with
//! nothing.

mod support;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use reqwest::StatusCode;
use serde_json::json;
use server::crd::{DedicatedNode, DedicatedNodeSpec};
use server::engine::SCOPE_LABEL;
use support::cluster;
use support::{backends, TestServer};

const BLOCKED: &str = "blocked@example.com";

/// An admission policy that refuses dedicated node orders placed by `BLOCKED`: the API server
/// itself says no, as it would for a quota or a policy of the platform team.
async fn refuse_orders_by_blocked(client: &kube::Client, name: &str) {
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": { "resourceRules": [{ "apiGroups": ["hexabase.ai"], "apiVersions": ["v1alpha1"], "operations": ["CREATE"], "resources": ["dedicatednodes"] }] },
            "validations": [{ "expression": format!("object.spec.requestedBy != '{BLOCKED}'"), "message": "orders from this account are suspended" }]
        }
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "policyName": name, "validationActions": ["Deny"] }
    }))
    .unwrap();
    Api::<ValidatingAdmissionPolicy>::all(client.clone()).create(&PostParams::default(), &policy).await.expect("policy");
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()).create(&PostParams::default(), &binding).await.expect("binding");
    // A policy takes a moment to be enforced: wait until a dry-run order is refused.
    let probe = DedicatedNode::new(
        &cluster::name("probe"),
        DedicatedNodeSpec { workspace: "x".into(), size: "d2.large".into(), region: "r".into(), requested_by: BLOCKED.into() },
    );
    let dry = PostParams { dry_run: true, ..Default::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Api::<DedicatedNode>::all(client.clone()).create(&dry, &probe).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the admission policy was never enforced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_retry_whose_create_is_refused_keeps_the_failed_request() {
    let srv = TestServer::start(backends()[0]).await;
    let client = cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    let store = srv.store().await;
    let hash = server::auth::password::hash("blocked-password").unwrap();
    let user = store.ensure_user(BLOCKED, "Blocked", &hash).await.unwrap();
    let ws_id = store.workspace_id("acme-production").await.unwrap().expect("seeded workspace");
    store.ensure_membership(&user, &ws_id, app::model::Role::Owner).await.unwrap();

    // A failed order of the workspace, as the engine leaves one (no engine runs here).
    let orders: Api<DedicatedNode> = Api::all(client.clone());
    let failed = cluster::name("acme-production");
    let mut dn = DedicatedNode::new(
        &failed,
        DedicatedNodeSpec {
            workspace: "acme-production".into(),
            size: "d2.large".into(),
            region: "ap-northeast-3".into(),
            requested_by: "dev@example.com".into(),
        },
    );
    dn.metadata.labels =
        Some([("hexabase.ai/workspace".to_string(), "acme-production".to_string()), (SCOPE_LABEL.to_string(), cluster::name("nobody"))].into());
    orders.create(&PostParams::default(), &dn).await.unwrap();
    let status = json!({ "status": { "phase": "Failed", "error": { "reason": "InsufficientCapacity", "message": "No capacity left for d2.large nodes in ap-northeast-3." },
        "alternatives": [{ "region": "ap-northeast-1", "size": "d2.large", "monthlyCostUsd": 70.08 }] } });
    orders.patch_status(&failed, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();

    let policy = cluster::name("refuse-blocked");
    refuse_orders_by_blocked(&client, &policy).await;

    let http = srv.new_client();
    let r = srv.sign_in(&http, BLOCKED, "blocked-password").await;
    assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
    let form = [("workspace", "acme-production"), ("size", "d2.large"), ("region", "ap-northeast-1"), ("replaces", failed.as_str())];
    let r = srv.call(&http, "start_provisioning", &form).await;
    let (code, body) = (r.status(), r.text().await.unwrap());

    let still_there = orders.get_opt(&failed).await.unwrap();
    let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()).delete(&policy, &DeleteParams::default()).await;
    let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone()).delete(&policy, &DeleteParams::default()).await;
    let _ = orders.delete(&failed, &DeleteParams::default()).await;

    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("orders from this account are suspended"), "the cluster's own reason: {body}");
    let kept = still_there.expect("the failed order is still there after a refused retry");
    assert_eq!(kept.status.unwrap().alternatives.len(), 1, "with its alternatives");
    srv.stop().await;
}

/// The plan's bound (the catalogue's `plans`): a Pro workspace holding its limit of dedicated
/// nodes is refused another with a plain reason, and nothing is created; failed orders hold no
/// machine and do not count.
#[tokio::test]
async fn a_workspace_at_its_plans_limit_cannot_order_another_dedicated_node() {
    let srv = TestServer::start(backends()[0]).await;
    let client = cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    let store = srv.store().await;
    let ws = cluster::name("plan");
    let ws_id = store.ensure_workspace(&ws, &ws, app::model::Plan::Pro).await.unwrap();
    let dev = store.user_by_email(server::seed::DEMO_EMAIL).await.unwrap().expect("the demo user").id;
    store.ensure_membership(&dev, &ws_id, app::model::Role::Owner).await.unwrap();
    let limit = server::catalogue::Catalogue::load_default().unwrap().dedicated_node_limit(app::model::Plan::Pro).expect("Pro has a limit");

    // All but one of the plan's nodes held, and one failed order; no engine acts on them.
    let orders: Api<DedicatedNode> = Api::all(client.clone());
    for i in 0..limit {
        let mut dn = DedicatedNode::new(
            &cluster::name("plan-order"),
            DedicatedNodeSpec { workspace: ws.clone(), size: "d2.large".into(), region: "ap-northeast-1".into(), requested_by: "dev@example.com".into() },
        );
        dn.metadata.labels = Some([("hexabase.ai/workspace".to_string(), ws.clone()), (SCOPE_LABEL.to_string(), cluster::name("nobody"))].into());
        let dn = orders.create(&PostParams::default(), &dn).await.unwrap();
        if i == 0 {
            let failed = json!({ "status": { "phase": "Failed", "error": { "reason": "InsufficientCapacity", "message": "No capacity left." } } });
            orders.patch_status(&dn.metadata.name.unwrap(), &PatchParams::default(), &Patch::Merge(&failed)).await.unwrap();
        }
    }

    let http = srv.demo_client().await;
    let form = [("workspace", ws.as_str()), ("size", "d2.large"), ("region", "ap-northeast-1")];
    let last = srv.call(&http, "start_provisioning", &form).await;
    let (last_code, last_body) = (last.status(), last.text().await.unwrap());
    let over = srv.call(&http, "start_provisioning", &form).await;
    let (over_code, over_body) = (over.status(), over.text().await.unwrap());
    let held = orders.list(&kube::api::ListParams::default().labels(&format!("hexabase.ai/workspace={ws}"))).await.unwrap().items.len();
    let _ = orders.delete_collection(&DeleteParams::default(), &kube::api::ListParams::default().labels(&format!("hexabase.ai/workspace={ws}"))).await;

    assert!(last_code.is_success(), "the plan's last node may be ordered: {last_code} {last_body}");
    assert_eq!(over_code, StatusCode::FORBIDDEN, "{over_body}");
    assert!(over_body.contains(&format!("The Pro plan allows {limit} dedicated nodes per workspace")), "a plain reason: {over_body}");
    assert_eq!(held, limit as usize + 1, "the refused order was not created (the failed one stays listed)");
    srv.stop().await;
}
