//! A real Prometheus (`/usr/bin/prometheus`, installed by `hack/tools.sh`; override with
//! `PROMETHEUS_BIN`) scraping an in-process exporter whose latency the test controls.
//!
//! The exporter serves `/metrics` with one `http_request_duration_seconds` histogram series per
//! `(namespace, workload)` the test has set. Each series receives a steady
//! [`REQUESTS_PER_SECOND`] observations, all at the latency last set, so that
//! `histogram_quantile(0.95, sum by (le) (rate(..._bucket{...}[w])))` — the shape of
//! `DEFAULT_QUERY_TEMPLATE` — reads that latency, up to bucket interpolation (100 ms reads as
//! 98.75 ms, 300 ms as 297.5 ms; see [`expected_p95_ms`]). Prometheus scrapes every second and
//! is killed, its temporary storage deleted, when the harness is dropped.
//!
//! ```ignore
//! let prom = PromHarness::start().await;
//! prom.set_latency_ms("shop", "web", 100.0);
//! let source = PrometheusSource::new(&prom.url, None);
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the exported histogram's buckets, `+Inf` implied.
pub const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0];
/// Observations per second each series receives.
pub const REQUESTS_PER_SECOND: f64 = 100.0;
/// Prometheus' scrape and evaluation interval.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// The p95 (ms) Prometheus computes once every observation in the window is at `ms`: linear
/// interpolation inside the bucket that holds `ms`.
pub fn expected_p95_ms(ms: f64) -> f64 {
    let s = ms / 1000.0;
    let mut lower = 0.0;
    for &upper in BUCKETS {
        if s <= upper {
            return (lower + (upper - lower) * 0.95) * 1000.0;
        }
        lower = upper;
    }
    // In the +Inf bucket histogram_quantile returns the highest finite bound.
    lower * 1000.0
}

#[derive(Debug)]
struct Series {
    latency_s: f64,
    /// Non-cumulative counts per bucket of `BUCKETS`, then the +Inf bucket.
    counts: Vec<f64>,
    sum: f64,
    updated: Instant,
}

impl Series {
    fn new(latency_s: f64) -> Self {
        Series { latency_s, counts: vec![0.0; BUCKETS.len() + 1], sum: 0.0, updated: Instant::now() }
    }

    /// Adds the observations made since the last update, all at the current latency.
    fn advance(&mut self, now: Instant) {
        let n = now.saturating_duration_since(self.updated).as_secs_f64() * REQUESTS_PER_SECOND;
        let idx = BUCKETS.iter().position(|&b| self.latency_s <= b).unwrap_or(BUCKETS.len());
        self.counts[idx] += n;
        self.sum += n * self.latency_s;
        self.updated = now;
    }
}

type Registry = Arc<Mutex<BTreeMap<(String, String), Series>>>;

pub struct PromHarness {
    /// Prometheus' root URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The exporter's address (what Prometheus scrapes).
    pub exporter: SocketAddr,
    registry: Registry,
    child: Option<Child>,
    dir: PathBuf,
    exporter_task: tokio::task::JoinHandle<()>,
}

impl PromHarness {
    /// Starts the exporter and Prometheus and waits until Prometheus is ready and has scraped
    /// the exporter once. Panics (failing the test) if Prometheus is missing or does not start.
    pub async fn start() -> PromHarness {
        let registry: Registry = Arc::new(Mutex::new(BTreeMap::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the exporter");
        let exporter = listener.local_addr().unwrap();
        let app = {
            let registry = registry.clone();
            axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let registry = registry.clone();
                    async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&registry)) }
                }),
            )
        };
        let exporter_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into());
        let dir = std::env::temp_dir().join(format!("hexabase-prom-{}", server::db::new_id()));
        std::fs::create_dir_all(dir.join("data")).expect("create the Prometheus directory");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{exporter}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");

        // A free port can be taken between probing and Prometheus binding it: retry a few times.
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("create the Prometheus log");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {bin} ({e}); install it with hack/tools.sh (Debian package `prometheus`) or set PROMETHEUS_BIN"));
            let mut harness = PromHarness {
                url: format!("http://127.0.0.1:{port}"),
                exporter,
                registry: registry.clone(),
                child: Some(child),
                dir: dir.clone(),
                exporter_task: tokio::spawn(async {}),
            };
            match harness.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => {
                    harness.exporter_task = exporter_task;
                    return harness;
                }
                Err(e) => {
                    last_error = e;
                    // Drop kills this attempt's process but must keep the directory.
                    if let Some(mut c) = harness.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    harness.dir = PathBuf::new();
                }
            }
        }
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        exporter_task.abort();
        panic!("Prometheus did not start: {last_error}\n--- prometheus log ---\n{log}");
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + timeout;
        let mut ready = false;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("prometheus exited with {status}"));
                }
            }
            if !ready {
                ready = matches!(http.get(format!("{}/-/ready", self.url)).send().await, Ok(r) if r.status().is_success());
            }
            if ready {
                // Up once the exporter has been scraped successfully.
                let up = http.get(format!("{}/api/v1/query", self.url)).query(&[("query", "up{job=\"app\"} == 1")]).send().await;
                if let Ok(r) = up {
                    if let Ok(v) = r.json::<serde_json::Value>().await {
                        if v["data"]["result"].as_array().is_some_and(|a| !a.is_empty()) {
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready (and scraping) within {timeout:?} at {}", self.url));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets the latency of every request `workload` in `namespace` serves from now on
    /// (creating the series if needed). Takes effect at Prometheus' next scrape (≤ 1 s).
    pub fn set_latency_ms(&self, namespace: &str, workload: &str, ms: f64) {
        let now = Instant::now();
        let mut reg = self.registry.lock().unwrap();
        let series = reg.entry((namespace.to_string(), workload.to_string())).or_insert_with(|| Series::new(ms / 1000.0));
        series.advance(now);
        series.latency_s = ms / 1000.0;
    }

    /// Stops Prometheus (SIGKILL), as an outage would: its URL refuses connections from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The current exposition text, as Prometheus sees it.
    pub fn metrics_text(&self) -> String {
        render(&self.registry)
    }

    /// Prometheus' log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PromHarness {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.exporter_task.abort();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Label value escaping of the text exposition format.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render(registry: &Registry) -> String {
    use std::fmt::Write;
    let now = Instant::now();
    let mut reg = registry.lock().unwrap();
    let mut out = String::new();
    out.push_str("# HELP http_request_duration_seconds Duration of HTTP requests.\n");
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for ((ns, wl), series) in reg.iter_mut() {
        series.advance(now);
        let labels = format!("namespace=\"{}\",workload=\"{}\"", escape_label(ns), escape_label(wl));
        let mut cumulative = 0.0;
        for (i, upper) in BUCKETS.iter().enumerate() {
            cumulative += series.counts[i];
            let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"{upper}\"}} {cumulative}");
        }
        cumulative += series.counts[BUCKETS.len()];
        let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {}", series.sum);
        let _ = writeln!(out, "http_request_duration_seconds_count{{{labels}}} {cumulative}");
    }
    out
}
