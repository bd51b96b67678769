//! DEMO ONLY: a traffic simulator, not part of the product.
//!
//! The local cluster's pods are KWOK's: nothing runs in them and nothing serves requests. So
//! that the dashboard's latency features (the migration's latency guard, use case 5d, and the
//! report's p95 before and after) have something real to read in `make run`, this process
//! pretends to be the demo `web` application's HTTP middleware: it exports a standard
//! `http_request_duration_seconds` histogram per pod, labelled `namespace`, `workload`, `pod`,
//! which the local Prometheus scrapes. The product never knows: it reads p95 through PromQL
//! like any application's metrics.
//!
//! Latency depends on where each pod runs, read from the cluster: on the shared pool it is
//! higher and jittery, and rises with the node's CPU use (from Prometheus, KWOK's emulated
//! kubelet metrics); on a dedicated node it is low and steady. `POST /slowdown?ms=300&seconds=120`
//! adds a slowdown to every request (`make slowdown`), `DELETE /slowdown` ends it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use rand::Rng;

#[derive(Parser, Debug)]
#[command(
    name = "traffic-simulator",
    about = "DEMO ONLY, not part of the product: simulates the demo web application's traffic.\n\
             Exports http_request_duration_seconds histograms for the pods of one Deployment, with latency \
             that depends on where each pod runs (shared pool: higher, jittery, rising with the node's CPU use; \
             dedicated node: low and steady), for the local Prometheus to scrape. \
             POST /slowdown?ms=300&seconds=120 injects a slowdown; DELETE /slowdown ends it."
)]
struct Args {
    /// Where /metrics and the slowdown control listen.
    #[arg(long, env = "SIMULATOR_ADDR", default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The simulated application: a Deployment (its selector picks the pods).
    #[arg(long, default_value = "acme-production")]
    namespace: String,
    #[arg(long, default_value = "web")]
    workload: String,
    /// Where the nodes' CPU use is read (the shared pool's latency rises with it).
    #[arg(long, env = "PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Requests a second across all pods.
    #[arg(long, default_value_t = 50.0)]
    requests_per_second: f64,
}

/// Upper bounds (seconds) of the histogram's buckets, `+Inf` implied: finer where the two
/// placements' latencies fall, so p95 tells them apart.
const BUCKETS: &[f64] = &[0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];

/// Where a pod runs, as far as its latency goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    /// `busy`: the node's CPU use over its allocatable, 0-1.
    SharedPool {
        busy: f64,
    },
    Dedicated,
}

/// One simulated request's latency in milliseconds.
fn latency_ms(placement: Placement, slowdown_ms: f64, rng: &mut impl Rng) -> f64 {
    let base = match placement {
        // Noisy neighbours: 60 ms on an idle node, four times that on a full one, with a
        // long tail.
        Placement::SharedPool { busy } => 60.0 * (1.0 + 3.0 * busy.clamp(0.0, 1.0).powi(2)) * (0.35 * normal(rng)).exp(),
        Placement::Dedicated => 35.0 * (0.05 * normal(rng)).exp(),
    };
    base + slowdown_ms.max(0.0)
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations per bucket of `BUCKETS` (not cumulative), then the `+Inf` bucket.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len() + 1];
        }
        let i = BUCKETS.iter().position(|&b| seconds <= b).unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Sim {
    /// Per pod: where it runs and what it has served.
    pods: BTreeMap<String, (String, Placement, Histogram)>,
    slowdown: Option<(f64, Instant)>,
    /// Fractional requests carried to the next tick.
    carry: f64,
}

impl Sim {
    fn slowdown_ms(&self, now: Instant) -> f64 {
        self.slowdown.filter(|(_, until)| *until > now).map(|(ms, _)| ms).unwrap_or(0.0)
    }

    /// One tick of `elapsed`: the pods now serving, and the requests they served meanwhile,
    /// spread evenly as a Service would.
    fn tick(&mut self, serving: Vec<(String, String, Placement)>, requests: f64, now: Instant, rng: &mut impl Rng) {
        let mut kept = BTreeMap::new();
        for (pod, node, placement) in serving {
            let histogram = self.pods.remove(&pod).map(|(_, _, h)| h).unwrap_or_default();
            kept.insert(pod, (node, placement, histogram));
        }
        self.pods = kept;
        if self.pods.is_empty() {
            return;
        }
        let total = requests + self.carry;
        let each = (total / self.pods.len() as f64).floor();
        self.carry = total - each * self.pods.len() as f64;
        let slowdown = self.slowdown_ms(now);
        for (_, placement, histogram) in self.pods.values_mut() {
            for _ in 0..each as u64 {
                histogram.observe(latency_ms(*placement, slowdown, rng) / 1000.0);
            }
        }
    }

    /// The Prometheus text exposition of every pod's histogram.
    fn render(&self, namespace: &str, workload: &str) -> String {
        let mut out = String::from(
            "# HELP http_request_duration_seconds Request latency (simulated by the demo traffic simulator).\n\
             # TYPE http_request_duration_seconds histogram\n",
        );
        for (pod, (_, _, h)) in &self.pods {
            let labels = format!(r#"namespace="{namespace}",workload="{workload}",pod="{pod}""#);
            let mut cumulative = 0;
            for (i, count) in h.counts.iter().enumerate() {
                cumulative += count;
                let le = BUCKETS.get(i).map(|b| b.to_string()).unwrap_or_else(|| "+Inf".into());
                out.push_str(&format!("http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}\n"));
            }
            out.push_str(&format!("http_request_duration_seconds_sum{{{labels}}} {}\n", h.sum));
            out.push_str(&format!("http_request_duration_seconds_count{{{labels}}} {cumulative}\n"));
        }
        out
    }
}

type Shared = Arc<Mutex<Sim>>;

/// The Deployment's Ready pods and where each runs, and the allocatable CPU of the shared-pool
/// nodes among them (each Node read once), for [`node_busy`].
async fn serving_pods(
    client: &kube::Client,
    args: &Args,
    busy: &BTreeMap<String, f64>,
) -> Result<(Vec<(String, String, Placement)>, BTreeMap<String, f64>), kube::Error> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), &args.namespace).get(&args.workload).await?;
    let selector = deployment.spec.selector.match_labels.unwrap_or_default();
    let selector = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), &args.namespace).list(&ListParams::default().labels(&selector)).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    // Per node: whether it is dedicated, and its allocatable CPU.
    let mut seen: BTreeMap<String, (bool, f64)> = BTreeMap::new();
    let mut out = Vec::new();
    for pod in pods {
        let ready = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let (Some(name), Some(node)) = (pod.metadata.name.clone(), pod.spec.and_then(|s| s.node_name)) else { continue };
        if !ready || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if !seen.contains_key(&node) {
            let n = nodes.get_opt(&node).await?;
            let dedicated = n
                .as_ref()
                .is_some_and(|n| n.labels().get(server::cluster::labels::NODE_POOL).map(String::as_str) == Some(server::cluster::labels::POOL_DEDICATED));
            seen.insert(node.clone(), (dedicated, n.as_ref().map(|n| server::capacity::allocatable(n).cpu).unwrap_or(0.0)));
        }
        let placement = match seen[&node] {
            (true, _) => Placement::Dedicated,
            // Without CPU numbers, a shared pool is assumed as busy as the demo's.
            (false, _) => Placement::SharedPool { busy: busy.get(&node).copied().unwrap_or(0.8) },
        };
        out.push((name, node, placement));
    }
    let shared = seen.into_iter().filter(|(_, (dedicated, _))| !dedicated).map(|(node, (_, cpu))| (node, cpu)).collect();
    Ok((out, shared))
}

/// Each node's CPU use over its allocatable (`allocatable`: node → vCPU), from the kubelets'
/// metrics.
async fn node_busy(prometheus: &server::prometheus::Prometheus, allocatable: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (node, &cpu) in allocatable {
        let query = server::prometheus::node_usage::cpu_query(node, 30);
        match prometheus.instant(&query).await.and_then(|body| server::prometheus::parse_instant(&body)) {
            Ok(Some(used)) if used.is_finite() && cpu > 0.0 => {
                out.insert(node.clone(), used / cpu);
            }
            _ => {}
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct SlowdownParams {
    ms: f64,
    #[serde(default = "default_slowdown_seconds")]
    seconds: u64,
}

fn default_slowdown_seconds() -> u64 {
    300
}

fn state_json(sim: &Sim) -> serde_json::Value {
    let now = Instant::now();
    serde_json::json!({
        "simulator": "demo traffic simulator (not part of the product)",
        "slowdown_ms": sim.slowdown_ms(now),
        "slowdown_seconds_left": sim.slowdown.map(|(_, until)| until.saturating_duration_since(now).as_secs()).unwrap_or(0),
        "pods": sim.pods.iter().map(|(pod, (node, placement, _))| serde_json::json!({
            "pod": pod, "node": node,
            "placement": match placement { Placement::Dedicated => "dedicated".to_string(), Placement::SharedPool { busy } => format!("shared pool ({:.0}% CPU)", busy * 100.0) },
        })).collect::<Vec<_>>(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let client = server::cluster::connect(args.kubeconfig.as_deref()).await?;
    let prometheus = args.prometheus_url.as_deref().map(server::prometheus::Prometheus::new);
    let sim: Shared = Arc::default();

    let metrics = {
        let args = args.clone();
        move |State(sim): State<Shared>| async move {
            ([("content-type", "text/plain; version=0.0.4")], sim.lock().unwrap().render(&args.namespace, &args.workload))
        }
    };
    let app = axum::Router::new()
        .route("/", get(|State(sim): State<Shared>| async move { axum::Json(state_json(&sim.lock().unwrap())) }))
        .route("/metrics", get(metrics))
        .route(
            "/slowdown",
            axum::routing::post(|State(sim): State<Shared>, Query(p): Query<SlowdownParams>| async move {
                let mut s = sim.lock().unwrap();
                s.slowdown = Some((p.ms.clamp(0.0, 10_000.0), Instant::now() + Duration::from_secs(p.seconds.min(86_400))));
                axum::Json(state_json(&s))
            })
            .delete(|State(sim): State<Shared>| async move {
                let mut s = sim.lock().unwrap();
                s.slowdown = None;
                axum::Json(state_json(&s))
            }),
        )
        .with_state(sim.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "traffic-simulator (demo only): {} req/s for {}/{}, metrics on http://{}/metrics",
        args.requests_per_second, args.namespace, args.workload, args.listen
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut rng = rand::thread_rng();
    let mut busy = BTreeMap::new();
    let mut last = Instant::now();
    let mut ticks: u64 = 0;
    // `make run` starts it beside the server: it ends when the process that started it does.
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if std::os::unix::process::parent_id() != parent {
            eprintln!("traffic-simulator: the process that started it ended; stopping");
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.duration_since(last).as_secs_f64();
        last = now;
        match serving_pods(&client, &args, &busy).await {
            Ok((serving, shared)) => {
                // The nodes' CPU use every 5 s: one scrape interval of the local Prometheus.
                if let (Some(p), true) = (&prometheus, ticks.is_multiple_of(5)) {
                    busy = node_busy(p, &shared).await;
                }
                sim.lock().unwrap().tick(serving, args.requests_per_second * elapsed, now, &mut rng);
            }
            Err(e) => eprintln!("traffic-simulator: reading the pods: {e}"),
        }
        ticks += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn p95(placement: Placement, slowdown: f64) -> f64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut v: Vec<f64> = (0..10_000).map(|_| latency_ms(placement, slowdown, &mut rng)).collect();
        v.sort_by(f64::total_cmp);
        v[9_500]
    }

    #[test]
    fn a_dedicated_node_is_faster_and_steadier_than_a_busy_shared_pool() {
        let dedicated = p95(Placement::Dedicated, 0.0);
        let calm = p95(Placement::SharedPool { busy: 0.2 }, 0.0);
        let busy = p95(Placement::SharedPool { busy: 0.9 }, 0.0);
        assert!((35.0..40.0).contains(&dedicated), "{dedicated}");
        assert!(calm > dedicated * 2.0 && busy > calm * 2.0, "{dedicated} {calm} {busy}");
        assert!((p95(Placement::Dedicated, 300.0) - dedicated - 300.0).abs() < 1e-9);
    }

    #[test]
    fn requests_are_spread_over_the_serving_pods_and_gone_pods_disappear() {
        let mut sim = Sim::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let now = Instant::now();
        let pods = |names: &[&str]| names.iter().map(|n| (n.to_string(), "node".to_string(), Placement::Dedicated)).collect();
        sim.tick(pods(&["a", "b", "c"]), 100.0, now, &mut rng);
        let served: Vec<u64> = sim.pods.values().map(|(_, _, h)| h.counts.iter().sum()).collect();
        assert_eq!(served, vec![33, 33, 33]);
        assert!((sim.carry - 1.0).abs() < 1e-9);
        sim.tick(pods(&["b", "d"]), 100.0, now, &mut rng);
        assert_eq!(sim.pods.keys().collect::<Vec<_>>(), vec!["b", "d"]);
        let text = sim.render("acme-production", "web");
        assert!(text.contains(r#"http_request_duration_seconds_count{namespace="acme-production",workload="web",pod="b"} 83"#), "{text}");
        assert!(text.contains(r#"pod="d",le="+Inf"} 50"#), "{text}");
    }
}
