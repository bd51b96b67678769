//! `make bench`: the dashboard at platform scale, measured against a real control plane
//! (hack/bench.sh brings up its own cluster, runs this, and stops what it started).
//!
//! It seeds a scale cluster (KWOK nodes of the shared pool, pods bound to them in tenant
//! namespaces outside the platform, Deployments in the demo workspace), runs the release
//! server twice, once reading the watch caches and once reading the API server on every
//! request (`--cluster-reads direct`, the path the caches replaced), measures both side by
//! side, and writes docs/BENCHMARKS.md. Not a test: numbers, not pass/fail.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

const WS: &str = "acme-production";
const BENCH_NS: &str = "acme-production-bench";
const TENANTS: usize = 20;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Scale {
    nodes: usize,
    pods: usize,
    workloads: usize,
    streams: usize,
}

/// Creates `objects` with a bounded number of requests in flight; an object that exists
/// already is fine (a second run reuses the seeded cluster).
async fn create_all<K>(api_for: impl Fn(&K) -> Api<K>, objects: Vec<K>, what: &str)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let started = Instant::now();
    let total = objects.len();
    let results: Vec<_> = stream::iter(objects)
        .map(|o| {
            let api = api_for(&o);
            async move {
                match api.create(&PostParams::default(), &o).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(24)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    eprintln!("bench: {total} {what} in {:.1} s ({failed} failed)", started.elapsed().as_secs_f64());
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        eprintln!("bench: first failure: {e}");
    }
}

fn node(i: usize) -> Node {
    let name = format!("bench-node-{i:05}");
    serde_json::from_value(json!({
        "metadata": { "name": name,
            "annotations": { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
            "labels": { "type": "kwok", "hexabase.ai/node-pool": "shared", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                        "topology.kubernetes.io/region": "local-1" } },
        "status": { "capacity": { "cpu": "16", "memory": "64Gi", "pods": "110" }, "allocatable": { "cpu": "15800m", "memory": "63Gi", "pods": "110" } }
    }))
    .unwrap()
}

fn tenant_pod(i: usize, nodes: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": format!("p-{i:06}"), "namespace": format!("bench-tenant-{:02}", i % TENANTS), "labels": { "app": format!("a{}", i % 50) } },
        "spec": {
            "nodeName": format!("bench-node-{:05}", i % nodes),
            "containers": [{ "name": "app", "image": "registry.local/app:1", "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } } }]
        }
    }))
    .unwrap()
}

fn workload(i: usize) -> Deployment {
    let name = format!("w-{i:04}");
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": BENCH_NS },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{
                "name": "app", "image": "registry.local/app:1",
                "readinessProbe": { "httpGet": { "path": "/", "port": 80 } },
                "resources": { "requests": { "cpu": "50m", "memory": "64Mi" } } }] } }
        }
    }))
    .unwrap()
}

async fn seed(client: &Client, scale: &Scale) {
    let namespaces: Vec<Namespace> = (0..TENANTS)
        .map(|k| serde_json::from_value(json!({ "metadata": { "name": format!("bench-tenant-{k:02}") } })).unwrap())
        .chain(std::iter::once(serde_json::from_value(json!({ "metadata": { "name": BENCH_NS, "labels": { "hexabase.ai/workspace": WS } } })).unwrap()))
        .collect();
    create_all(|_| Api::all(client.clone()), namespaces, "namespaces").await;
    create_all(|_| Api::all(client.clone()), (0..scale.nodes).map(node).collect(), "nodes").await;
    create_all(
        |p: &Pod| Api::namespaced(client.clone(), p.metadata.namespace.as_deref().unwrap()),
        (0..scale.pods).map(|i| tenant_pod(i, scale.nodes)).collect(),
        "pods",
    )
    .await;
    create_all(|_| Api::namespaced(client.clone(), BENCH_NS), (0..scale.workloads).map(workload).collect(), "deployments").await;
}

/// A release server process of its own, on a free port, with its own SQLite file.
struct Server {
    child: Child,
    base: String,
    db: String,
}

impl Server {
    async fn start(name: &str, reads: &str, engine: bool) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("hexabase-bench-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
        let bin = std::env::var("BENCH_SERVER").unwrap_or_else(|_| "target/release/server".into());
        let child = Command::new(&bin)
            .arg("--seed-demo")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &db)
            .env("HEXA_CLUSTER_READS", reads)
            .env("HEXA_ENGINE", engine.to_string())
            .env("HEXA_PROVISION_STEP_DELAY_MS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let server = Server { child, base: format!("http://127.0.0.1:{port}"), db };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..1200 {
            if http.get(format!("{}/readyz", self.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} never became ready", self.base);
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
    }

    /// A signed-in browser of the demo owner.
    async fn demo(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, self.base.parse().unwrap());
        let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).default_headers(headers).build().unwrap();
        let r = http.post(format!("{}/api/sign_in", self.base)).form(&[("email", "dev@example.com"), ("password", "hexabase-demo")]).send().await.unwrap();
        assert!(r.status().is_success() || r.status().is_redirection(), "sign-in: {}", r.status());
        http
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(mut samples: Vec<f64>, p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// What Chromium asks for: the server compresses the page as it would for a browser.
const BROWSER_ENCODINGS: &str = "gzip, deflate, br, zstd";

/// Milliseconds of `n` GETs of `path`, one after another; `encodings` as the request's
/// Accept-Encoding (none: an uncompressed page).
async fn time_gets(http: &reqwest::Client, base: &str, path: &str, n: usize, encodings: Option<&str>) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut request = http.get(format!("{base}{path}"));
        if let Some(e) = encodings {
            request = request.header("accept-encoding", e);
        }
        let r = request.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let compressed = r.headers().contains_key("content-encoding");
        let body = r.bytes().await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        let text = String::from_utf8_lossy(&body);
        assert!(compressed || (!text.contains("cannot be reached") && !text.contains("has not answered")), "{path} did not read the cluster");
    }
    out
}

/// Milliseconds of `n` calls of the server function `endpoint` for the demo workspace: the
/// page's data (session, membership, the read, JSON) without its HTML.
async fn time_data(http: &reqwest::Client, base: &str, endpoint: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let r = http.post(format!("{base}/api/{endpoint}")).form(&[("workspace", WS)]).send().await.unwrap();
        assert!(r.status().is_success(), "{endpoint}: {}", r.status());
        let _ = r.bytes().await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

const SERVER_KINDS: [&str; 9] =
    ["pods", "nodes", "resourcequotas", "deployments", "statefulsets", "poddisruptionbudgets", "namespaces", "dedicatednodes", "workloadmigrations"];

/// The API server's open WATCH requests per resource (its own `apiserver_longrunning_requests`).
async fn apiserver_watches(client: &Client) -> Vec<(String, f64)> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap_or_default();
    let mut out: Vec<(String, f64)> = text
        .lines()
        .filter(|l| l.starts_with("apiserver_longrunning_requests{") && l.contains("verb=\"WATCH\""))
        // The kinds the server watches (every other client of the API server watches them too).
        .filter(|l| SERVER_KINDS.iter().any(|k| l.contains(&format!("resource=\"{k}\""))))
        .filter_map(|l| {
            let resource = l.split("resource=\"").nth(1)?.split('"').next()?.to_string();
            let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
            (v > 0.0).then_some((resource, v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// An open stream: reads `progress` events in the background and reports when one matches.
fn open_stream(base: &str, token: &str, hit: tokio::sync::mpsc::UnboundedSender<(usize, Instant, Value)>, id: usize) -> tokio::task::JoinHandle<()> {
    let url = format!("{base}/api/events/w/{WS}/nodes");
    let cookie = format!("hx_session={token}");
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let Ok(mut r) = http.get(url).header("cookie", cookie).send().await else { return };
        let mut buf = String::new();
        while let Ok(Some(bytes)) = r.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if let Ok(v) = serde_json::from_str::<Value>(&data) {
                    let _ = hit.send((id, Instant::now(), v));
                }
            }
        }
    })
}

/// The reads alone, in this process, on a snapshot of the same shape as the seeded cluster:
/// what the server computes per request, without HTTP, the database or the page's HTML.
/// Set apart from the whole-page numbers, it shows where a page's time goes.
async fn profile_reads(scale: &Scale) -> Row {
    use server::cache::Snapshot;
    use std::sync::Arc;
    let namespace = |name: String, ws: Option<&str>| {
        Arc::new(
            serde_json::from_value(json!({ "metadata": { "name": name, "labels": ws.map(|w| json!({ "hexabase.ai/workspace": w })).unwrap_or(json!({})) } }))
                .unwrap(),
        )
    };
    let workload_pod = |i: usize| -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": format!("w-{i:04}-0"), "namespace": BENCH_NS, "labels": { "app": format!("w-{i:04}") } },
            "spec": { "nodeName": format!("bench-node-{:05}", i % scale.nodes), "containers": [{ "name": "app", "resources": { "requests": { "cpu": "50m", "memory": "64Mi" } } }] }
        }))
        .unwrap()
    };
    let snapshot = Snapshot {
        namespaces: vec![namespace(BENCH_NS.into(), Some(WS)), namespace(WS.into(), Some(WS))],
        nodes: (0..scale.nodes).map(|i| Arc::new(node(i))).collect(),
        pods: server::cluster::pods::Pods::of(
            &(0..scale.pods).map(|i| tenant_pod(i, scale.nodes)).chain((0..scale.workloads).map(workload_pod)).collect::<Vec<_>>(),
        ),
        deployments: (0..scale.workloads).map(|i| Arc::new(workload(i))).collect(),
        dedicated_nodes: vec![Arc::new({
            let spec = server::crd::DedicatedNodeSpec {
                workspace: WS.into(),
                size: "d4.xlarge".into(),
                region: "ap-northeast-1".into(),
                requested_by: "bench".into(),
            };
            let mut dn = server::crd::DedicatedNode::new("bench-dedicated", spec);
            dn.status = Some(server::crd::DedicatedNodeStatus {
                phase: app::model::NodePhase::Ready,
                node_name: Some("bench-node-00000".into()),
                ..Default::default()
            });
            dn
        })],
        ..Default::default()
    };
    let store = server::store::Store::new(server::db::connect("sqlite::memory:").await.unwrap());
    let catalogue = Arc::new(server::catalogue::Catalogue::load_default().unwrap());
    let live = Arc::new(server::live::LiveStreams::default());
    let backend = server::backend::DashboardBackend::new(store, None, catalogue, None, server::auth::rate_limit::LoginLimiter::default(), false, live);
    let ws = app::model::WorkspaceSummary { slug: WS.into(), name: "Acme".into(), plan: app::model::Plan::Team, role: app::model::Role::Owner };
    let keys: Vec<_> = (0..50).map(|i| app::model::WorkloadKey::new(BENCH_NS, app::model::WorkloadKind::Deployment, format!("w-{i:04}"))).collect();
    let time = |f: &dyn Fn()| {
        let samples: Vec<f64> = (0..50)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        percentile(samples, 0.5)
    };
    let copy = time(&|| drop(std::hint::black_box(snapshot.clone())));
    let overview = time(&|| drop(std::hint::black_box(backend.overview_of(&snapshot, ws.clone()))));
    let screen =
        time(&|| drop(std::hint::black_box(server::backend::DashboardBackend::migration_screen_of(&snapshot, ws.clone(), false, &Default::default()))));
    let screen_json = time(&|| {
        let screen = server::backend::DashboardBackend::migration_screen_of(&snapshot, ws.clone(), false, &Default::default());
        drop(std::hint::black_box(serde_json::to_vec(&screen).unwrap()))
    });
    let pool = time(&|| drop(std::hint::black_box(snapshot.shared_pool_usage(WS))));
    let allocation = time(&|| {
        std::hint::black_box(snapshot.allocation("bench-node-00000"));
    });
    let workloads = time(&|| drop(std::hint::black_box(snapshot.workloads(WS))));
    let plan = time(&|| drop(std::hint::black_box(server::backend::DashboardBackend::plan_of(&snapshot, &ws, "bench-node-00000", &keys).expect("a plan"))));
    Row {
        measure: format!("Where a read's time goes: the reads alone on a snapshot of {} nodes / {} pods / {} workloads", scale.nodes, snapshot.pods.len(), scale.workloads),
        target: "(profile)".into(),
        measured: format!(
            "p50: snapshot copy {copy:.2} ms; Node Management overview {overview:.2} ms (shared pool usage {pool:.2}, one node's allocation {allocation:.2}); migration screen {screen:.2} ms ({screen_json:.2} ms with its JSON; the workloads alone {workloads:.2}); plan of 50 {plan:.2} ms"
        ),
    }
}

struct Row {
    measure: String,
    target: String,
    measured: String,
}

#[tokio::main]
async fn main() {
    let scale = Scale {
        nodes: env_or("BENCH_NODES", 2000),
        pods: env_or("BENCH_PODS", 20000),
        workloads: env_or("BENCH_WORKLOADS", 1000),
        streams: env_or("BENCH_STREAMS", 1000),
    };
    let reads = profile_reads(&scale).await;
    eprintln!("bench: {} — {}", reads.measure, reads.measured);
    // BENCH_READS_ONLY=1: the in-process profile alone, no cluster.
    if env_or("BENCH_READS_ONLY", 0) != 0 {
        return;
    }
    let client = Client::try_default().await.expect("KUBECONFIG names the bench cluster");
    let mut rows = Vec::new();

    // Idle: the demo cluster only.
    let cached = Server::start("cache", "cache", true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // BENCH_SEED=0: the cluster of the last run is seeded already, and "idle" cannot be measured.
    let seeding_now = env_or("BENCH_SEED", 1) != 0;
    let rss_idle = if seeding_now { format!("{:.0} MiB idle (demo cluster)", cached.rss_mib()) } else { "idle not measured (a reused, seeded cluster)".into() };
    eprintln!("bench: server RSS {rss_idle}");

    let seeding = Instant::now();
    if seeding_now {
        seed(&client, &scale).await;
    }
    let pods_now = Api::<Pod>::all(client.clone()).list_metadata(&ListParams::default()).await.unwrap().items.len();
    let nodes_now = Api::<Node>::all(client.clone()).list_metadata(&ListParams::default()).await.unwrap().items.len();
    eprintln!("bench: cluster holds {nodes_now} nodes, {pods_now} pods (seeded in {:.0} s)", seeding.elapsed().as_secs_f64());
    // Let the caches and KWOK's status updates settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss_cached = cached.rss_mib();

    let direct = Server::start("direct", "direct", false).await;
    let (hc, hd) = (cached.demo().await, direct.demo().await);
    let page = format!("/w/{WS}/nodes");
    let _ = time_gets(&hc, &cached.base, &page, 3, None).await;
    let c = time_gets(&hc, &cached.base, &page, 40, None).await;
    let d = time_gets(&hd, &direct.base, &page, 8, None).await;
    let (c50, d50) = (percentile(c.clone(), 0.5), percentile(d.clone(), 0.5));
    // As a browser asks for it: the same page, compressed.
    let browser = percentile(time_gets(&hc, &cached.base, &page, 40, Some(BROWSER_ENCODINGS)).await, 0.5);
    rows.push(Row {
        measure: format!("Node Management server render, {} workloads, {nodes_now} nodes / {pods_now} pods", scale.workloads),
        target: "p50 ≤ 5 ms, ≥ 5× faster than direct".into(),
        measured: format!(
            "cache p50 {c50:.1} ms (p95 {:.1}); direct p50 {d50:.0} ms; {:.0}× faster; its data alone (the server function) p50 {:.1} ms; compressed as a browser asks (Accept-Encoding: {BROWSER_ENCODINGS}) p50 {browser:.1} ms",
            percentile(c, 0.95),
            d50 / c50,
            percentile(time_data(&hc, &cached.base, "load_node_overview", 40).await, 0.5)
        ),
    });

    let migrations = format!("/w/{WS}/migrations");
    let m = time_gets(&hc, &cached.base, &migrations, 20, None).await;
    let md = time_gets(&hd, &direct.base, &migrations, 5, None).await;
    // A later page of a filter (w-0900 … w-0999: 100 workloads, two pages).
    let filtered = time_gets(&hc, &cached.base, &format!("{migrations}?filter=w-09&page=2"), 20, None).await;
    rows.push(Row {
        measure: format!("Workload Migration screen render, {} workloads (a page of {} at a time)", scale.workloads + 5, app::model::WORKLOADS_PER_PAGE),
        target: "p50 ≤ 10 ms".into(),
        measured: format!(
            "cache p50 {:.1} ms (p95 {:.1}); a filtered page (?filter=w-09&page=2) p50 {:.1} ms; direct p50 {:.0} ms; its data alone (the server function) p50 {:.1} ms",
            percentile(m.clone(), 0.5),
            percentile(m, 0.95),
            percentile(filtered, 0.5),
            percentile(md, 0.5),
            percentile(time_data(&hc, &cached.base, "load_migration_screen", 20).await, 0.5)
        ),
    });

    // Start Provisioning → the first progress event of the new node's live stream; and the
    // engine's overhead: the order's time to Ready less the provider's own (its Node created →
    // Ready, seen by a watch of our own).
    let provider = NodeTimes::watch(client.clone());
    let mut overheads = Vec::new();
    let mut first_event = Vec::new();
    let mut ready_node = None;
    for round in 0..10 {
        let t = Instant::now();
        let r = hc
            .post(format!("{}/api/start_provisioning", cached.base))
            .form(&[("workspace", WS), ("size", "d4.xlarge"), ("region", "ap-northeast-1")])
            .send()
            .await
            .unwrap();
        let location = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
        let name = location.rsplit('/').next().unwrap_or_default().to_string();
        assert!(name.starts_with(WS), "round {round}: start_provisioning answered {} {location}", r.status());
        let mut s = hc.get(format!("{}/api/events/w/{WS}/nodes/{name}", cached.base)).send().await.unwrap();
        let mut buf = String::new();
        while !buf.contains("event: progress") {
            buf.push_str(&String::from_utf8_lossy(&s.chunk().await.unwrap().expect("an event")));
        }
        first_event.push(t.elapsed().as_secs_f64() * 1000.0);
        // Wait for Ready, then keep the last one as the migration target.
        while !buf.contains("\"phase\":\"Ready\"") {
            match tokio::time::timeout(Duration::from_secs(60), s.chunk()).await {
                Ok(Ok(Some(b))) => buf.push_str(&String::from_utf8_lossy(&b)),
                _ => panic!("round {round}: {name} never became Ready"),
            }
        }
        let to_ready = t.elapsed().as_secs_f64() * 1000.0;
        let dn = Api::<server::crd::DedicatedNode>::all(client.clone()).get(&name).await.unwrap();
        let node_name = dn.status.and_then(|s| s.node_name).expect("a Ready order names its Node");
        if let Some(own) = provider.ready_after_created_ms(&node_name) {
            overheads.push((to_ready - own, to_ready, own));
        }
        if round < 9 {
            let r = hc.post(format!("{}/api/delete_dedicated_node", cached.base)).form(&[("workspace", WS), ("name", name.as_str())]).send().await.unwrap();
            assert!(r.status().is_success(), "delete {name}: {}", r.status());
            // Gone before the next order: a deleting order still counts against the plan.
            let orders = Api::<server::crd::DedicatedNode>::all(client.clone());
            while orders.get_opt(&name).await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            ready_node = Some(name);
        }
    }
    provider.stop();
    let overhead: Vec<f64> = overheads.iter().map(|o| o.0).collect();
    rows.push(Row {
        measure: "Engine overhead over the provider's own time to Ready (10 orders)".into(),
        target: "≤ 1 s".into(),
        measured: if overhead.is_empty() {
            "not measured: no Node was seen created and Ready".into()
        } else {
            format!(
                "p50 {:.0} ms, p95 {:.0} ms (order → Ready on the page p50 {:.0} ms; the provider's Node created → Ready p50 {:.0} ms, KWOK)",
                percentile(overhead.clone(), 0.5),
                percentile(overhead, 0.95),
                percentile(overheads.iter().map(|o| o.1).collect(), 0.5),
                percentile(overheads.iter().map(|o| o.2).collect(), 0.5)
            )
        },
    });
    rows.push(Row {
        measure: "Start Provisioning → first progress event (10 orders)".into(),
        target: "≤ 200 ms p95".into(),
        measured: format!("p50 {:.0} ms, p95 {:.0} ms", percentile(first_event.clone(), 0.5), percentile(first_event, 0.95)),
    });

    // The plan for 50 workloads (one migration's most) onto that node.
    let node = ready_node.unwrap();
    // The form posts the selection as one comma-separated list.
    let keys = (0..50).map(|i| format!("{BENCH_NS}/Deployment/w-{i:04}")).collect::<Vec<_>>().join(",");
    let form = [("workspace", WS), ("node", node.as_str()), ("workloads", keys.as_str())];
    let mut plans = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let r = hc.post(format!("{}/api/plan_migration", cached.base)).form(&form).send().await.unwrap();
        assert!(r.status().is_success(), "plan: {} {}", r.status(), r.text().await.unwrap_or_default());
        plans.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    rows.push(Row {
        measure: format!("Migration plan of 50 of {} workloads", scale.workloads + 5),
        target: "p50 ≤ 10 ms".into(),
        measured: format!("p50 {:.1} ms (p95 {:.1})", percentile(plans.clone(), 0.5), percentile(plans, 0.95)),
    });

    // Live streams: every page a viewer of its own, all on one server.
    let store = server::store::Store::new(server::db::connect(&cached.db).await.unwrap());
    let workspace = store.workspace_id(WS).await.unwrap().unwrap();
    let hash = server::auth::password::hash("bench-viewer").unwrap();
    let mut tokens = Vec::new();
    for i in 0..scale.streams {
        let user = store.ensure_user(&format!("bench-{i}@example.com"), "Bench viewer", &hash).await.unwrap();
        store.ensure_membership(&user, &workspace, app::model::Role::Viewer).await.unwrap();
        tokens.push(store.create_session(&user).await.unwrap());
    }
    let watches_before = apiserver_watches(&client).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = tokens.iter().enumerate().map(|(i, t)| open_stream(&cached.base, t, tx.clone(), i)).collect();
    let mut first = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while first.len() < scale.streams && Instant::now() < deadline {
        if let Ok(Some((id, _, _))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            first.insert(id);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_streams = cached.rss_mib();
    let watches_after = apiserver_watches(&client).await;
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), WS);
    let current: i64 = quota.get("workspace-quota").await.unwrap().spec.unwrap().hard.unwrap()["pods"].0.parse().unwrap();
    let changed = Instant::now();
    quota.patch("workspace-quota", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "hard": { "pods": (current + 1).to_string() } } }))).await.unwrap();
    let mut reached = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reached.len() < first.len() && Instant::now() < deadline {
        if let Ok(Some((id, at, v))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            if v["shared_pool"]["pods"]["hard"].as_f64() == Some((current + 1) as f64) {
                reached.entry(id).or_insert(at.duration_since(changed).as_secs_f64() * 1000.0);
            }
        }
    }
    quota.patch("workspace-quota", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "hard": { "pods": current.to_string() } } }))).await.unwrap();
    let latencies: Vec<f64> = reached.values().copied().collect();
    let describe = |w: &[(String, f64)]| w.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ");
    rows.push(Row {
        measure: format!("{} concurrent live streams on one server", scale.streams),
        target: "RSS ≤ 150 MB, one watch per kind, an update reaches all within 1 s".into(),
        measured: format!(
            "{} of {} streams open; RSS {rss_streams:.0} MiB; API server watches before [{}], with the streams [{}]; the quota change reached {} of them, the last after {:.0} ms (p50 {:.0} ms, kubectl's write to the quota controller's status included)",
            first.len(),
            scale.streams,
            describe(&watches_before),
            describe(&watches_after),
            latencies.len(),
            latencies.iter().copied().fold(0.0, f64::max),
            if latencies.is_empty() { 0.0 } else { percentile(latencies.clone(), 0.5) },
        ),
    });
    tasks.iter().for_each(|t| t.abort());
    // After the streams' RSS: a migration's work must not count as theirs.
    rows.push(migration_vs_rollout(&client, &hc, &cached.base, &node).await);
    rows.push(Row {
        measure: "Server RSS idle / with the scale cluster cached".into(),
        target: "report both".into(),
        measured: format!("{rss_idle}; {rss_cached:.0} MiB with {nodes_now} nodes / {pods_now} pods cached"),
    });
    rows.push(reads);
    write_report(&scale, nodes_now, pods_now, &rows);
}

/// Node → when it was first seen, and first seen Ready.
type NodesSeen = std::collections::HashMap<String, (Instant, Option<Instant>)>;

/// When each Node was first seen and first seen Ready, by a watch of the bench's own: the
/// provider's time, apart from the engine's.
struct NodeTimes {
    seen: std::sync::Arc<std::sync::Mutex<NodesSeen>>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeTimes {
    fn watch(client: Client) -> Self {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let map = seen.clone();
        let task = tokio::spawn(async move {
            let nodes = kube::runtime::watcher(Api::<Node>::all(client), kube::runtime::watcher::Config::default().labels("hexabase.ai/node-pool=dedicated"));
            let mut nodes = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(nodes));
            while let Some(Ok(n)) = nodes.next().await {
                let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                let mut map = map.lock().unwrap();
                let entry = map.entry(n.metadata.name.clone().unwrap_or_default()).or_insert((Instant::now(), None));
                if ready && entry.1.is_none() {
                    entry.1 = Some(Instant::now());
                }
            }
        });
        Self { seen, task }
    }

    /// Milliseconds from the Node's creation to its Ready, as the watch saw them.
    fn ready_after_created_ms(&self, node: &str) -> Option<f64> {
        let (created, ready) = *self.seen.lock().unwrap().get(node)?;
        Some(ready?.duration_since(created).as_secs_f64() * 1000.0)
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// A 10-replica Deployment rolled out plainly (a template change, with the strategy a move
/// uses: maxUnavailable 0, maxSurge 25%), then migrated to `node` by the engine: the
/// wall time of each, and the lowest availability an independent watch saw during each.
async fn migration_vs_rollout(client: &Client, http: &reqwest::Client, base: &str, node: &str) -> Row {
    const NAME: &str = "bench-ten";
    const REPLICAS: i32 = 10;
    let api = Api::<Deployment>::namespaced(client.clone(), BENCH_NS);
    let _ = api.delete(NAME, &Default::default()).await;
    while api.get_opt(NAME).await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": NAME, "namespace": BENCH_NS },
        "spec": {
            "replicas": REPLICAS,
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 0, "maxSurge": "25%" } },
            "selector": { "matchLabels": { "app": NAME } },
            "template": { "metadata": { "labels": { "app": NAME }, "annotations": { "pod-ready.stage.kwok.x-k8s.io/delay": "1s" } },
                          "spec": { "containers": [{ "name": "app", "image": "registry.local/app:1",
                                                     "readinessProbe": { "httpGet": { "path": "/", "port": 80 } },
                                                     "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } }] } }
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.expect("the 10-replica Deployment");
    let rolled_out = |d: &Deployment| {
        let s = d.status.clone().unwrap_or_default();
        s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(REPLICAS)
            && s.available_replicas == Some(REPLICAS)
            && s.replicas == Some(REPLICAS)
    };
    let wait_rolled_out = || async {
        loop {
            if rolled_out(&api.get(NAME).await.unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait_rolled_out()).await.expect("the Deployment rolled out first");

    // The lowest availableReplicas a watch of our own sees from now on.
    let lowest = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(REPLICAS));
    let low = lowest.clone();
    let deployments = kube::runtime::watcher(api.clone(), kube::runtime::watcher::Config::default().fields(&format!("metadata.name={NAME}")));
    let probe = tokio::spawn(async move {
        let mut d = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(deployments));
        while let Some(Ok(d)) = d.next().await {
            let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
            low.fetch_min(available, std::sync::atomic::Ordering::Relaxed);
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t = Instant::now();
    let restart = json!({ "spec": { "template": { "metadata": { "annotations": { "bench/restarted": format!("{:?}", Instant::now()) } } } } });
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(restart)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(120), wait_rolled_out()).await.expect("the plain rolling update finished");
    let rollout = t.elapsed().as_secs_f64();
    let rollout_low = lowest.swap(REPLICAS, std::sync::atomic::Ordering::Relaxed);

    let t = Instant::now();
    let wall = time::OffsetDateTime::now_utc();
    let workloads = format!("{BENCH_NS}/Deployment/{NAME}");
    let r =
        http.post(format!("{base}/api/start_migration")).form(&[("workspace", WS), ("node", node), ("workloads", workloads.as_str())]).send().await.unwrap();
    let answered = t.elapsed().as_secs_f64();
    let location = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
    let migration = location.rsplit('/').next().unwrap_or_default().to_string();
    assert!(migration.starts_with("mig-"), "start_migration answered {} {location}", r.status());
    let migrations = Api::<server::crd::WorkloadMigration>::namespaced(client.clone(), BENCH_NS);
    let status = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let status = migrations.get(&migration).await.unwrap().status.unwrap_or_default();
            if matches!(status.phase, app::model::MigrationState::Succeeded | app::model::MigrationState::RolledBack | app::model::MigrationState::Failed) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the migration settled");
    let migrated = t.elapsed().as_secs_f64();
    // Where the time went, from the migration's own timestamps (seconds after the click).
    let at = |rfc: Option<&str>| {
        rfc.and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
            .map_or("?".to_string(), |x| format!("{:.2}", (x - wall).as_seconds_f64()))
    };
    let moved = status.workloads.first();
    let steps = format!(
        "start_migration answered {answered:.2}, before recorded {}, move started {}, moved {}, finished {}, seen {migrated:.2}",
        at(status.before.as_ref().map(|b| b.taken_at.as_str())),
        at(moved.and_then(|w| w.started_at.as_deref())),
        at(moved.and_then(|w| w.finished_at.as_deref())),
        at(status.finished_at.as_deref()),
    );
    eprintln!("bench: migration steps (s after the click): {steps}");
    let migration_low = lowest.load(std::sync::atomic::Ordering::Relaxed);
    probe.abort();
    let _ = migrations.delete(&migration, &Default::default()).await;
    let _ = api.delete(NAME, &Default::default()).await;
    Row {
        measure: format!("Migration of a {REPLICAS}-replica Deployment vs a plain rolling update of it (pods Ready 1 s after start, KWOK)"),
        target: "≤ 1.1×, lowest available == desired".into(),
        measured: format!(
            "migration {migrated:.1} s ({:?}) vs rolling update {rollout:.1} s: {:.2}×; lowest available seen by an independent watch: {migration_low} of {REPLICAS} during the migration, {rollout_low} during the rolling update; the migration's steps, s after the click: {steps}",
            status.phase,
            migrated / rollout
        ),
    }
}

fn write_report(scale: &Scale, nodes: usize, pods: usize, rows: &[Row]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()).unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib =
        mem.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(0.0) / 1048576.0;
    let date = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let mut out = format!(
        "# Benchmarks\n\nWritten by `make bench` (hack/bench.sh, server/examples/scale_bench.rs) on {date}.\n\n\
         Machine: {model}, {cores} cores, {mem_gib:.0} GiB. Cluster: the project's own control plane (kube-apiserver, \
         controller-manager, scheduler, KWOK kubelets) on the same machine, seeded with {nodes} nodes and {pods} pods \
         (asked for {} nodes, {} pods; {} Deployments in the demo workspace). Servers: the release build, one reading the \
         watch caches, one with `--cluster-reads direct` (every read LISTs the API server), side by side in this run.\n\n\
         | measure | target | measured |\n|---|---|---|\n",
        scale.nodes, scale.pods, scale.workloads
    );
    for r in rows {
        eprintln!("bench: {} — {}", r.measure, r.measured);
        out.push_str(&format!("| {} | {} | {} |\n", r.measure, r.target, r.measured));
    }
    let path = std::env::var("BENCH_OUT").unwrap_or_else(|_| "docs/BENCHMARKS.md".into());
    std::fs::write(&path, &out).unwrap();
    println!("{out}");
    eprintln!("bench: wrote {path}");
}
