//! The watch caches against the API server itself: every screen read from the caches equals
//! the same screen read straight from the API server (`--cluster-reads direct`) on the seeded
//! cluster; a change made by someone else (kubectl) reaches a cache-backed page; a read right
//! after a write sees the write; `/readyz` waits for the caches' first list.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::cluster::labels;
use server::config::ClusterReadsKind;
use support::cluster::{self, Cleanup};
use support::{backends, TestServer};

const WS: &str = "acme-production";

async fn read(srv: &TestServer, http: &reqwest::Client, function: &str, form: &[(&str, &str)]) -> Value {
    let r = srv.call(http, function, form).await;
    assert_eq!(r.status(), StatusCode::OK, "{function}");
    r.json().await.expect("json")
}

/// What a screen shows that depends on the moment it is read (a node's age) is set aside.
fn without_ages(mut v: Value) -> Value {
    for list in ["dedicated_nodes", "failed_requests"] {
        if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
            for item in items {
                item.as_object_mut().map(|o| o.remove("age_seconds"));
            }
        }
    }
    v
}

/// Waits until `done` holds, at most 20 s (no reload logic on the page: the cache brings it).
async fn eventually<F: std::future::Future<Output = bool>>(what: impl std::fmt::Display, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_screen_read_from_the_caches_equals_the_direct_read() {
    let cached = TestServer::start(backends()[0]).await;
    let direct = TestServer::start_with(backends()[0], |c| c.cluster_reads = ClusterReadsKind::Direct).await;
    let (hc, hd) = (cached.demo_client().await, direct.demo_client().await);
    let screens: [(&str, Vec<(&str, &str)>); 4] = [
        ("load_node_overview", vec![("workspace", WS)]),
        ("load_migration_screen", vec![("workspace", WS)]),
        ("load_wizard", vec![("workspace", WS)]),
        ("estimate_size", vec![("workspace", WS), ("size", "d2.large")]),
    ];
    for (function, form) in &screens {
        // Other tests' objects may come and go meanwhile: equal once, within a few reads.
        let mut last = (Value::Null, Value::Null);
        let mut equal = false;
        for _ in 0..20 {
            let d = without_ages(read(&direct, &hd, function, form).await);
            let c = without_ages(read(&cached, &hc, function, form).await);
            if c == d {
                equal = true;
                last = (c, d);
                break;
            }
            last = (c, d);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(equal, "{function}: cached {}\n  direct {}", last.0, last.1);
        assert!(last.0.get("cluster_error").is_none_or(Value::is_null), "{function} read the cluster: {}", last.0);
    }
    // The screens are not empty: the comparison compared something.
    let overview = read(&cached, &hc, "load_node_overview", &[("workspace", WS)]).await;
    assert!(overview["shared_pool"]["cpu"]["hard"].as_f64().unwrap_or(0.0) > 0.0, "the seeded quota is shown: {overview}");
    let screen = read(&cached, &hc, "load_migration_screen", &[("workspace", WS)]).await;
    assert!(!screen["workloads"].as_array().unwrap().is_empty(), "the seeded workloads are listed: {screen}");
    cached.stop().await;
    direct.stop().await;
}

#[tokio::test]
async fn a_change_made_with_kubectl_reaches_a_cache_backed_page() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.demo_client().await;
    let client = cluster::client().await;
    let mut cleanup = Cleanup::new(&client);
    let ns = cleanup.namespace("cache-kubectl", &[("hexabase.ai/workspace", WS)]).await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "shared-pool" },
        "spec": { "hard": { "requests.cpu": "3", "requests.memory": "4Gi", "pods": "10" } }
    }))
    .unwrap();
    let hard = || async { read(&srv, &http, "load_node_overview", &[("workspace", WS)]).await["shared_pool"]["cpu"]["hard"].as_f64().unwrap_or(0.0) };
    // The page's shared-pool CPU limit becomes `want`.
    let page_shows =
        |want: f64, what: &'static str| eventually(format!("{what} never reached the page"), move || async move { (hard().await - want).abs() <= 1e-9 });
    let before = hard().await;
    Api::<ResourceQuota>::namespaced(client.clone(), &ns).create(&PostParams::default(), &quota).await.expect("quota created");
    // The quota controller fills status.hard; the page shows it.
    page_shows(before + 3.0, "the new quota").await;
    let patch = json!({ "spec": { "hard": { "requests.cpu": "5" } } });
    Api::<ResourceQuota>::namespaced(client.clone(), &ns).patch("shared-pool", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    page_shows(before + 5.0, "the changed quota").await;
    drop(cleanup);
    srv.stop().await;
}

#[tokio::test]
async fn a_pod_that_comes_and_goes_reaches_a_cache_backed_page() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.demo_client().await;
    let client = cluster::client().await;
    let mut cleanup = Cleanup::new(&client);
    // Another workspace's namespace: its pod on a shared-pool node (placed by the scheduler)
    // makes it a neighbour.
    let ns = cleanup.namespace("cache-neighbour", &[("hexabase.ai/workspace", "cache-neighbour")]).await;
    let pool = ListParams::default().labels(&format!("{}={}", labels::NODE_POOL, labels::POOL_SHARED));
    let shared = Api::<Node>::all(client.clone()).list_metadata(&pool).await.unwrap().items.into_iter().next().expect("a shared node");
    let host = shared.metadata.labels.as_ref().and_then(|l| l.get(labels::HOSTNAME)).cloned().expect("its hostname");
    let neighbours = || async { read(&srv, &http, "load_node_overview", &[("workspace", WS)]).await["shared_pool"]["neighbour_workspaces"].as_u64().unwrap() };
    let page_shows = |want: u64, what: &'static str| eventually(format!("{what} never reached the page"), move || async move { neighbours().await == want });
    // The engine records "before" straight from the API server (a LIST per other workspace's
    // namespace, not the cache): it must count the same neighbour at the same moments.
    let engine_sees = || async {
        let pool = server::cluster::usage::shared_pool_nodes(&client).await.expect("the shared pool's nodes");
        server::cluster::usage::shared_pool_usage(&client, WS, &pool).await.expect("the engine's direct read").neighbour_workspaces as u64
    };
    // A cache of this test's own, to see the index itself: a finished pod shows nowhere on a
    // page, but must not stay in the index after it is deleted.
    let cache = server::cache::ClusterCache::start(client.clone());
    let before = neighbours().await;
    assert_eq!(engine_sees().await, before, "the engine's direct read and the page disagree on the seeded cluster");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "neighbour" },
        "spec": { "nodeSelector": { labels::HOSTNAME: host }, "containers": [{ "name": "app", "image": "registry.local/app:1", "resources": { "requests": { "cpu": "10m" } } }] }
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.expect("pod created");
    page_shows(before + 1, "the new neighbour's pod").await;
    assert_eq!(engine_sees().await, before + 1, "the engine's direct read misses the neighbour the page shows");
    eventually("the pod never reached the cache's index", || async { cache.pods.state().in_namespace(&ns).len() == 1 }).await;
    pods.delete("neighbour", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("pod deleted");
    page_shows(before, "the pod's deletion").await;
    assert_eq!(engine_sees().await, before, "the engine's direct read still counts a deleted pod's workspace");
    eventually("the deleted pod stays in the cache's index", || async { cache.pods.state().in_namespace(&ns).is_empty() }).await;
    assert!(cache.is_synced());
    drop(cleanup);
    srv.stop().await;
}

#[tokio::test]
async fn a_read_right_after_a_write_sees_the_write() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.demo_client().await;
    let client = cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    for round in 0..5 {
        let r = srv.call(&http, "start_provisioning", &[("workspace", WS), ("size", "d2.large"), ("region", "ap-northeast-1")]).await;
        assert_eq!(r.status(), StatusCode::OK, "round {round}");
        // The answer sends the browser to the new order's progress page.
        let page = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
        let name = page.rsplit('/').next().unwrap_or_default().to_string();
        assert!(name.starts_with(WS), "round {round}: sent to {page:?}");
        // No wait: the very next read shows the order.
        let overview = read(&srv, &http, "load_node_overview", &[("workspace", WS)]).await;
        let listed = overview["dedicated_nodes"].as_array().unwrap().iter().chain(overview["failed_requests"].as_array().unwrap()).any(|n| n["name"] == name);
        assert!(listed, "round {round}: {name} is missing right after it was ordered: {overview}");
        let r = srv.call(&http, "delete_dedicated_node", &[("workspace", WS), ("name", &name)]).await;
        assert_eq!(r.status(), StatusCode::OK, "round {round}: delete");
        let overview = read(&srv, &http, "load_node_overview", &[("workspace", WS)]).await;
        let shown = overview["dedicated_nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).map(|n| n["phase"].clone());
        assert!(shown.is_none() || shown == Some(json!("Deleting")), "round {round}: {name} still shown as {shown:?} right after delete");
    }
    srv.stop().await;
}

#[tokio::test]
async fn readiness_waits_for_the_caches_first_list() {
    let srv = TestServer::start(backends()[0]).await;
    let http = srv.demo_client().await;
    let details: Value = http.get(format!("{}/readyz", srv.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(details["cache"], "synced", "{details}");
    srv.stop().await;
}

/// The platform installed and a cache of the test's own that has listed the cluster once.
async fn synced_cache() -> (kube::Client, std::sync::Arc<server::cache::ClusterCache>) {
    let client = cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    let cache = server::cache::ClusterCache::start(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cache.is_synced() {
        assert!(tokio::time::Instant::now() < deadline, "the caches never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (client, cache)
}

/// The cache's own wait, without HTTP in between: right after `caught_up` the store holds the
/// version the API server answered the write with (a create, then a change).
#[tokio::test]
async fn after_catching_up_the_store_holds_the_written_version() {
    use server::crd::{DedicatedNode, DedicatedNodeSpec};
    let (client, cache) = synced_cache().await;
    let api = Api::<DedicatedNode>::all(client.clone());
    let version = |d: &DedicatedNode| d.metadata.resource_version.clone();
    for round in 0..10 {
        let name = cluster::name("cache-rw");
        let order = DedicatedNode::new(
            &name,
            DedicatedNodeSpec { workspace: "cache-test".into(), size: "d2.large".into(), region: "r".into(), requested_by: "t@e".into() },
        );
        let created = api.create(&PostParams::default(), &order).await.unwrap();
        assert!(cache.dedicated_nodes.caught_up(&created).await, "round {round}: the create never came back");
        assert_eq!(cache.dedicated_nodes.get(&name, None).map(|d| version(&d)), Some(version(&created)), "round {round}: after the create");
        let patched =
            api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "labels": { "round": round.to_string() } } }))).await.unwrap();
        assert!(cache.dedicated_nodes.caught_up(&patched).await, "round {round}: the change never came back");
        assert_eq!(cache.dedicated_nodes.get(&name, None).map(|d| version(&d)), Some(version(&patched)), "round {round}: after the change");
        let answer = api.delete(&name, &Default::default()).await.unwrap();
        assert!(answer.is_right(), "no finalizer without the engine: deleted at once");
        assert!(cache.dedicated_nodes.gone(&name, None).await, "round {round}: the delete never came back");
        assert!(cache.dedicated_nodes.get(&name, None).is_none());
    }
}

/// An order created elsewhere (another replica, kubectl) a moment ago is found by name at once,
/// before this replica's watch brings it: a miss is read through.
#[tokio::test]
async fn an_order_made_elsewhere_is_found_by_name_before_the_watch_brings_it() {
    use server::crd::{DedicatedNode, DedicatedNodeSpec};
    let (client, cache) = synced_cache().await;
    let reads = server::cache::ClusterReads::Cached(cache.clone());
    let api = Api::<DedicatedNode>::all(client.clone());
    for round in 0..5 {
        let name = cluster::name("cache-elsewhere");
        let spec = DedicatedNodeSpec { workspace: "cache-test".into(), size: "d2.large".into(), region: "r".into(), requested_by: "t@e".into() };
        api.create(&PostParams::default(), &DedicatedNode::new(&name, spec)).await.unwrap();
        let found = reads.dedicated_node(&name).await.expect("a read");
        let _ = api.delete(&name, &Default::default()).await;
        assert_eq!(found.map(|d| d.metadata.name.clone().unwrap_or_default()), Some(name), "round {round}");
    }
    assert!(reads.dedicated_node("cache-never-made").await.expect("a read").is_none(), "a name that exists nowhere is still not found");
}

/// Reads `progress` events of an open stream until one satisfies `wanted`.
async fn until_event(r: &mut reqwest::Response, buf: &mut String, wanted: impl Fn(&Value) -> bool, timeout: Duration) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if frame.lines().any(|l| l == "event: progress") {
                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                let v: Value = serde_json::from_str(&data).map_err(|e| e.to_string())?;
                if wanted(&v) {
                    return Ok(v);
                }
            }
        }
        match tokio::time::timeout_at(deadline, r.chunk()).await {
            Err(_) => return Err(format!("nothing wanted within {timeout:?}")),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(None)) => return Err("the stream ended".into()),
            Ok(Ok(Some(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes)),
        }
    }
}

async fn open_streams(srv: &TestServer) -> i64 {
    let text = srv.new_client().get(format!("{}/metrics", srv.base)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix("hexabase_live_streams_open ")).and_then(|v| v.trim().parse().ok()).expect("the open-stream gauge")
}

/// Many open Node Management pages share one feed: a change reaches every one of them, and
/// the streams are given back when the pages go.
#[tokio::test]
async fn a_change_reaches_every_open_node_management_stream() {
    const PAGES: usize = 40;
    let srv = TestServer::start(backends()[0]).await;
    let client = cluster::client().await;
    let mut cleanup = Cleanup::new(&client);
    let ns = cleanup.namespace("cache-feed", &[("hexabase.ai/workspace", WS)]).await;
    // Each page is a viewer of its own (a session holds at most a few streams).
    let store = srv.store().await;
    let workspace = store.workspace_id(WS).await.unwrap().expect("the demo workspace");
    let hash = server::auth::password::hash("feed-viewer").unwrap();
    let mut streams = Vec::new();
    for i in 0..PAGES {
        let user = store.ensure_user(&format!("feed-{i}@example.com"), "Feed viewer", &hash).await.unwrap();
        store.ensure_membership(&user, &workspace, app::model::Role::Viewer).await.unwrap();
        let token = store.create_session(&user).await.unwrap();
        let http = srv.new_client();
        let r = http.get(format!("{}/api/events/w/{WS}/nodes", srv.base)).header("cookie", format!("hx_session={token}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        streams.push((http, r, String::new()));
    }
    let hard = |v: &Value| v["shared_pool"]["pods"]["hard"].as_f64().unwrap_or(0.0);
    let mut before = 0.0;
    for (_, r, buf) in streams.iter_mut() {
        before = hard(&until_event(r, buf, |_| true, Duration::from_secs(10)).await.expect("the first overview"));
    }
    assert_eq!(open_streams(&srv).await, PAGES as i64, "every page holds one stream");
    let quota: ResourceQuota = serde_json::from_value(json!({ "metadata": { "name": "extra" }, "spec": { "hard": { "pods": "7" } } })).unwrap();
    Api::<ResourceQuota>::namespaced(client.clone(), &ns).create(&PostParams::default(), &quota).await.unwrap();
    for (i, (_, r, buf)) in streams.iter_mut().enumerate() {
        let got = until_event(r, buf, |v| (hard(v) - before - 7.0).abs() < 1e-9, Duration::from_secs(10)).await;
        assert!(got.is_ok(), "page {i} never heard of the new quota: {got:?}");
    }
    drop(streams);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open_streams(&srv).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "{} streams still open after the pages went", open_streams(&srv).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(cleanup);
    srv.stop().await;
}
