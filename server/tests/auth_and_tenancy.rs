//! Sign-in, sessions, CSRF, rate limiting and workspace isolation, through real HTTP against
//! a real server, on SQLite and on PostgreSQL.

mod support;

use reqwest::StatusCode;
use support::{backends, TestServer};

type Form = &'static [(&'static str, &'static str)];

/// Every server function that works on a workspace, with the form fields it needs besides
/// `workspace`. A new one must be added here (the isolation tests below iterate over it).
const WORKSPACE_FUNCTIONS: &[(&str, Form)] = &[
    ("load_node_overview", &[]),
    ("notifications", &[]),
    ("mark_notifications_read", &[]),
    ("load_wizard", &[]),
    ("estimate_size", &[("size", "d4.xlarge")]),
    ("start_provisioning", &[("size", "d4.xlarge"), ("region", "ap-northeast-1")]),
    ("load_node_progress", &[("name", "globex-prod-000000")]),
    ("load_node_usage", &[("name", "globex-prod-000000"), ("range", "Hour")]),
    ("load_node_details", &[("name", "globex-prod-000000")]),
    ("delete_dedicated_node", &[("name", "globex-prod-000000")]),
    ("load_migration_screen", &[]),
    ("plan_migration", &[("node", "globex-prod-000000"), ("workloads", "globex-prod/Deployment/storefront")]),
    ("start_migration", &[("node", "globex-prod-000000"), ("workloads", "globex-prod/Deployment/storefront")]),
    ("load_migration_progress", &[("namespace", "globex-prod"), ("name", "mig-00000000")]),
    ("load_migration_performance", &[("namespace", "globex-prod"), ("name", "mig-00000000")]),
    ("control_migration", &[("namespace", "globex-prod"), ("name", "mig-00000000"), ("action", "Resume")]),
];

/// Every server function but sign-in: without a session each must answer 401.
fn all_functions() -> impl Iterator<Item = (&'static str, Form)> {
    [("my_workspaces", &[] as Form), ("sign_out", &[])].into_iter().chain(WORKSPACE_FUNCTIONS.iter().copied())
}

fn with_workspace(ws: &str, form: Form) -> Vec<(&str, &str)> {
    let mut v = vec![("workspace", ws)];
    v.extend_from_slice(form);
    v
}

async fn text(r: reqwest::Response) -> (StatusCode, String) {
    let s = r.status();
    (s, r.text().await.unwrap())
}

#[tokio::test]
async fn sign_in_opens_a_session_cookie_that_is_http_only_and_same_site() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let http = srv.new_client();
        let r = srv.sign_in(&http, "dev@example.com", "hexabase-demo").await;
        let cookie = r.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_string();
        assert!(cookie.starts_with("hx_session="), "{kind:?}: {cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{kind:?}: {cookie}");

        let (status, body) = text(http.get(format!("{}/w/acme-production/nodes", srv.base)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{kind:?}");
        assert!(body.contains("Node Management"), "{kind:?}: the page renders for the signed-in user");

        let (status, body) = text(srv.call(&http, "my_workspaces", &[]).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("acme-production") && body.contains("acme-sandbox"), "{body}");
        assert!(!body.contains("globex-prod"), "another tenant's workspace is never listed: {body}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn wrong_password_is_refused_with_a_plain_message_and_no_session() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let http = srv.new_client();
        let r = srv.sign_in(&http, "dev@example.com", "wrong-password").await;
        assert!(r.headers().get("set-cookie").is_none());
        let (status, body) = text(r).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{kind:?}");
        assert!(body.contains("The email or password is not right."), "{body}");

        let unknown = srv.sign_in(&http, "nobody@example.com", "whatever").await;
        assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY, "an unknown email looks the same as a wrong password");

        let audit = srv.store().await.audit_entries(None).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "sign-in" && e.outcome == "failed" && e.actor == "dev@example.com"));
        srv.stop().await;
    }
}

#[tokio::test]
async fn signed_out_page_visits_go_to_sign_in_and_api_calls_get_401() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.new_client();
    let r = http.get(format!("{}/w/acme-production/nodes", srv.base)).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/login?next=/w/acme-production/nodes");

    for (f, form) in all_functions() {
        let (status, body) = text(srv.call(&http, f, &with_workspace("acme-production", form)).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{f} without a session");
        assert!(body.contains("Please sign in"), "{f}: {body}");
    }
    // A forged cookie is no session either.
    let forged = srv.call(&srv.new_client(), "my_workspaces", &[]).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn a_foreign_workspace_is_not_found_through_every_server_function_and_nothing_changes() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let store = srv.store().await;
        let (globex_id, _) =
            store.member_workspace(&store.user_by_email("ops@globex.example").await.unwrap().unwrap().id, "globex-prod").await.unwrap().unwrap();
        store.notify(&globex_id, "Globex secret", "only for globex", None).await.unwrap();

        let http = srv.demo_client().await;
        for (f, form) in WORKSPACE_FUNCTIONS {
            for ws in ["globex-prod", "does-not-exist"] {
                let (status, body) = text(srv.call(&http, f, &with_workspace(ws, form)).await).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{kind:?} {f}({ws})");
                assert!(body.contains(&format!("No workspace \\\"{ws}\\\" among yours.")), "{f}: {body}");
                assert!(!body.contains("Globex secret"));
            }
        }
        let globex = store.notifications(&globex_id).await.unwrap();
        assert!(globex.iter().all(|n| !n.read), "{kind:?}: marking a foreign workspace read changed nothing");
        srv.stop().await;
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let http = srv.new_client();
        let long = "a".repeat(300) + "@example.com";
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("email", ""), ("password", "x")], "Enter your email and password."),
            (vec![("email", "dev@example.com"), ("password", "")], "Enter your email and password."),
            (vec![("email", long.as_str()), ("password", "x")], "Email or password is too long."),
            (vec![("password", "x")], "The request was malformed"),
        ];
        for (form, expected) in cases {
            let (status, body) = text(srv.call(&http, "sign_in", &form).await).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{kind:?} {form:?}: {body}");
            assert!(body.contains(expected), "{form:?}: {body}");
        }
        let garbage = http
            .post(format!("{}/api/sign_in", srv.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![0xff, 0xfe, b'%', b'z'])
            .send()
            .await
            .unwrap();
        assert_eq!(garbage.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let json = http.post(format!("{}/api/sign_in", srv.base)).header("content-type", "application/json").body("{not json").send().await.unwrap();
        assert!(json.status().is_client_error(), "malformed JSON: {}", json.status());

        // Nothing was signed in by any of it.
        let (status, _) = text(srv.call(&http, "my_workspaces", &[]).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        srv.stop().await;
    }
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let srv = TestServer::start(backends()[0]).await;
    let bare = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = format!("{}/api/sign_in", srv.base);
    let form = [("email", "dev@example.com"), ("password", "hexabase-demo")];
    let none = bare.post(&url).form(&form).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::FORBIDDEN, "no Origin, no Referer");
    let evil = bare.post(&url).header("origin", "http://evil.example").form(&form).send().await.unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert!(evil.text().await.unwrap().contains("Cross-site request refused"));
    srv.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_even_with_the_right_password_next() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.new_client();
    for _ in 0..5 {
        assert_eq!(srv.sign_in(&http, "dev@example.com", "nope").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = text(srv.sign_in(&http, "dev@example.com", "hexabase-demo").await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("try again in"), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let http = srv.demo_client().await;
        assert_eq!(srv.call(&http, "my_workspaces", &[]).await.status(), StatusCode::OK);
        let out = srv.call(&http, "sign_out", &[]).await;
        assert!(out.status().is_success() || out.status().is_redirection(), "{}", out.status());
        assert_eq!(srv.call(&http, "my_workspaces", &[]).await.status(), StatusCode::UNAUTHORIZED, "{kind:?}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.new_client();
    assert_eq!(http.get(format!("{}/healthz", srv.base)).send().await.unwrap().text().await.unwrap(), "ok");
    let ready = http.get(format!("{}/readyz", srv.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let anonymous: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(anonymous, serde_json::json!({ "status": "ready" }), "an anonymous caller learns ready or not, nothing else");
    let signed_in = srv.demo_client().await;
    let details: serde_json::Value = signed_in.get(format!("{}/readyz", srv.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(details["database"], "ok", "details for a signed-in person: {details}");
    let metrics = http.get(format!("{}/metrics", srv.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hexabase_http_requests_total"), "{metrics}");
    let css = http.get(format!("{}/site.css", srv.base)).send().await.unwrap().text().await.unwrap();
    assert!(css.contains(".bg-indigo-600"), "the stylesheet carries the app's utility classes");
    srv.stop().await;
}

#[tokio::test]
async fn provisioning_checks_the_plan_and_the_catalogue_and_changes_nothing_when_refused() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let http = srv.demo_client().await;
        let cases: &[(&str, Form, StatusCode, &str)] = &[
            ("acme-sandbox", &[("size", "d4.xlarge"), ("region", "ap-northeast-1")], StatusCode::FORBIDDEN, "Dedicated nodes are part of the Pro plan"),
            ("acme-production", &[("size", "d9.huge"), ("region", "ap-northeast-1")], StatusCode::UNPROCESSABLE_ENTITY, "Unknown node size \\\"d9.huge\\\""),
            ("acme-production", &[("size", "d4.xlarge"), ("region", "mars-1")], StatusCode::UNPROCESSABLE_ENTITY, "Unknown region \\\"mars-1\\\""),
            ("acme-production", &[("size", ""), ("region", "ap-northeast-1")], StatusCode::UNPROCESSABLE_ENTITY, "Unknown node size"),
        ];
        for (ws, form, status, message) in cases {
            let (got, body) = text(srv.call(&http, "start_provisioning", &with_workspace(ws, form)).await).await;
            assert_eq!(got, *status, "{kind:?} {ws} {form:?}: {body}");
            assert!(body.contains(message), "{form:?}: {body}");
        }
        let (got, body) = text(srv.call(&http, "load_wizard", &[("workspace", "acme-sandbox")]).await).await;
        assert_eq!(got, StatusCode::FORBIDDEN, "the Hobby wizard says why: {body}");
        let (got, _) = text(srv.call(&http, "estimate_size", &[("workspace", "acme-production"), ("size", "d9.huge")]).await).await;
        assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY);

        let audit = srv.store().await.audit_entries(None).await.unwrap();
        assert!(!audit.iter().any(|e| e.action == "provision-dedicated-node"), "{kind:?}: a refused request provisions nothing");
        srv.stop().await;
    }
}

#[tokio::test]
async fn migration_requests_name_real_nodes_and_workloads() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.demo_client().await;
    let (got, body) = text(
        srv.call(&http, "plan_migration", &[("workspace", "acme-production"), ("node", "shared-pool-1"), ("workloads", "acme-production/Deployment/web")])
            .await,
    )
    .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("is not a Ready dedicated node of acme-production"), "{body}");
    let (got, body) = text(srv.call(&http, "plan_migration", &[("workspace", "acme-production"), ("node", "n"), ("workloads", "Deployment/web")]).await).await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "a key without its namespace: {body}");
    assert!(body.contains("namespace/Kind/name"), "{body}");
    let (got, body) = text(
        srv.call(&http, "control_migration", &[("workspace", "acme-production"), ("namespace", "acme-production"), ("name", "mig-nope"), ("action", "Resume")])
            .await,
    )
    .await;
    assert_eq!(got, StatusCode::NOT_FOUND, "{body}");
    let (got, body) = text(
        srv.call(
            &http,
            "control_migration",
            &[("workspace", "acme-production"), ("namespace", "acme-production"), ("name", "mig-nope"), ("action", "Explode")],
        )
        .await,
    )
    .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "an unknown action: {body}");
    let (got, body) =
        text(srv.call(&http, "start_migration", &[("workspace", "acme-sandbox"), ("node", "x"), ("workloads", "acme-sandbox/Deployment/preview")]).await).await;
    assert_eq!(got, StatusCode::FORBIDDEN, "{body}");
    srv.stop().await;
}

/// Another tenant's objects, named from inside one's own workspace: every server function
/// that takes a name, and both live streams, answer as if they did not exist, and nothing of
/// them changes or leaks.
#[tokio::test]
async fn another_tenants_node_and_migration_are_not_found_from_ones_own_workspace() {
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use server::crd::{DedicatedNode, DedicatedNodeSpec, WorkloadMigration};
    use server::engine::SCOPE_LABEL;

    let srv = TestServer::start(backends()[0]).await;
    let client = support::cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    // Globex's own node (Ready) and migration, made as the engine would leave them; no engine
    // runs for them here (their scope belongs to nobody).
    let nobody = support::cluster::name("nobody");
    let node = support::cluster::name("globex-prod");
    let mut dn = DedicatedNode::new(
        &node,
        DedicatedNodeSpec {
            workspace: "globex-prod".into(),
            size: "d2.large".into(),
            region: "ap-northeast-1".into(),
            requested_by: "ops@globex.example".into(),
        },
    );
    dn.metadata.labels = Some([("hexabase.ai/workspace".to_string(), "globex-prod".to_string()), (SCOPE_LABEL.to_string(), nobody.clone())].into());
    let orders: Api<DedicatedNode> = Api::all(client.clone());
    orders.create(&PostParams::default(), &dn).await.unwrap();
    orders
        .patch_status(&node, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": { "phase": "Ready", "nodeName": node, "progress": 100 } })))
        .await
        .unwrap();
    let migration = support::cluster::name("mig");
    let wm: WorkloadMigration = serde_json::from_value(serde_json::json!({
        "apiVersion": "hexabase.ai/v1alpha1", "kind": "WorkloadMigration",
        "metadata": { "name": migration, "namespace": "globex-prod", "labels": { SCOPE_LABEL: nobody } },
        "spec": { "workspace": "globex-prod", "targetNode": node, "phases": [{ "workloads": [{ "namespace": "globex-prod", "kind": "Deployment", "name": "storefront" }] }] }
    }))
    .unwrap();
    let migrations: Api<WorkloadMigration> = Api::namespaced(client.clone(), "globex-prod");
    migrations.create(&PostParams::default(), &wm).await.unwrap();

    let http = srv.demo_client().await;
    let own = "acme-production";
    let calls: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("load_node_progress", vec![("name", &node)]),
        ("load_node_usage", vec![("name", &node), ("range", "Week")]),
        ("load_node_details", vec![("name", &node)]),
        ("delete_dedicated_node", vec![("name", &node)]),
        ("start_provisioning", vec![("size", "d2.large"), ("region", "ap-northeast-1"), ("replaces", &node)]),
        ("plan_migration", vec![("node", &node), ("workloads", "globex-prod/Deployment/storefront")]),
        ("start_migration", vec![("node", &node), ("workloads", "globex-prod/Deployment/storefront")]),
        ("load_migration_progress", vec![("namespace", "globex-prod"), ("name", &migration)]),
        ("load_migration_performance", vec![("namespace", "globex-prod"), ("name", &migration)]),
        ("control_migration", vec![("namespace", "globex-prod"), ("name", &migration), ("action", "Resume")]),
    ];
    for (f, form) in &calls {
        let mut with = vec![("workspace", own)];
        with.extend(form.iter().copied());
        let (status, body) = text(srv.call(&http, f, &with).await).await;
        assert!(matches!(status, StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY), "{f} with globex's {node}/{migration}: {status} {body}");
        assert!(!body.contains("ops@globex.example") && !body.contains("storefront\\\":"), "{f} leaks: {body}");
    }
    for path in [format!("nodes/{node}"), format!("migrations/globex-prod/{migration}")] {
        for ws in [own, "globex-prod"] {
            let r = http.get(format!("{}/api/events/w/{ws}/{path}", srv.base)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "live stream {ws}/{path}");
        }
        let anonymous = srv.new_client().get(format!("{}/api/events/w/{own}/{path}", srv.base)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "live stream {path} without a session");
    }

    // Nothing of Globex's changed and no order was started in its name or ours.
    assert!(orders.get_opt(&node).await.unwrap().is_some(), "globex's node is still there");
    let m = migrations.get(&migration).await.unwrap();
    assert!(!m.spec.paused && m.spec.retry == 0);
    let audit = srv.store().await.audit_entries(None).await.unwrap();
    assert!(!audit.iter().any(|e| e.action == "provision-dedicated-node" || e.action == "start-migration"), "{audit:?}");
    let _ = migrations.delete(&migration, &DeleteParams::default()).await;
    let _ = orders.delete(&node, &DeleteParams::default()).await;
    srv.stop().await;
}

#[tokio::test]
async fn expired_sessions_are_purged_from_the_database() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let store = srv.store().await;
        let user = store.user_by_email("dev@example.com").await.unwrap().unwrap().id;
        let live = store.create_session(&user).await.unwrap();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind("expired-session")
            .bind(&user)
            .bind(1_i64)
            .bind(2_i64)
            .execute(store.pool())
            .await
            .unwrap();
        let count = |hash: &'static str| {
            let pool = store.pool().clone();
            async move { sqlx::query("SELECT 1 FROM sessions WHERE token_hash = $1").bind(hash).fetch_all(&pool).await.unwrap().len() }
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while count("expired-session").await > 0 {
            assert!(tokio::time::Instant::now() < deadline, "{kind:?}: the expired session was never purged");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(store.session_user(&live).await.unwrap().is_some(), "{kind:?}: a live session stays");
        srv.stop().await;
    }
}

/// A double click on "Run next phase" (two identical requests at once) approves one phase:
/// one request wins, the other is told plainly that it is already done.
#[tokio::test]
async fn two_identical_approvals_at_once_approve_one_phase() {
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use server::crd::WorkloadMigration;
    use server::engine::SCOPE_LABEL;

    let srv = TestServer::start(backends()[0]).await;
    let client = support::cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    // A phased migration waiting for approval, as the engine leaves one (no engine runs for it).
    let name = support::cluster::name("mig");
    let wm: WorkloadMigration = serde_json::from_value(serde_json::json!({
        "apiVersion": "hexabase.ai/v1alpha1", "kind": "WorkloadMigration",
        "metadata": { "name": name, "namespace": "acme-production", "labels": { SCOPE_LABEL: support::cluster::name("nobody") } },
        "spec": { "workspace": "acme-production", "targetNode": "n1", "approvedPhases": 1, "phases": [
            { "workloads": [{ "namespace": "acme-production", "kind": "Deployment", "name": "web" }] },
            { "workloads": [{ "namespace": "acme-production", "kind": "Deployment", "name": "api" }] },
            { "workloads": [{ "namespace": "acme-production", "kind": "Deployment", "name": "worker" }] }
        ] }
    }))
    .unwrap();
    let api: Api<WorkloadMigration> = Api::namespaced(client.clone(), "acme-production");
    api.create(&PostParams::default(), &wm).await.unwrap();
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": { "phase": "WaitingForApproval" } }))).await.unwrap();

    let http = srv.demo_client().await;
    let form = [("workspace", "acme-production"), ("namespace", "acme-production"), ("name", name.as_str()), ("action", "ApproveNext"), ("target", "2")];
    let (a, b) = tokio::join!(srv.call(&http, "control_migration", &form), srv.call(&http, "control_migration", &form));
    let mut codes = vec![a.status(), b.status()];
    codes.sort();
    let bodies = format!("{} | {}", a.text().await.unwrap(), b.text().await.unwrap());
    assert_eq!(codes, vec![StatusCode::OK, StatusCode::CONFLICT], "{bodies}");
    assert_eq!(api.get(&name).await.unwrap().spec.approved_phases, 2, "exactly one more phase approved");

    // A third, later click is refused too, and says why.
    let (code, body) = text(srv.call(&http, "control_migration", &form).await).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(body.contains("Phase 2 is already approved."), "{body}");
    assert_eq!(api.get(&name).await.unwrap().spec.approved_phases, 2);
    let _ = api.delete(&name, &DeleteParams::default()).await;
    srv.stop().await;
}
