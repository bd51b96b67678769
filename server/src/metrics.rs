//! Prometheus metrics for `/metrics`. Labels come from fixed sets (method, status class,
//! matched route template), never from user input, so cardinality stays bounded.

use std::sync::Mutex;
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    method: String,
    status: String,
    route: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    live_streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hexabase");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 14)));
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", latency.clone());
        let live_streams = Gauge::default();
        registry.register("live_streams_open", "Live progress streams (server-sent events) open now", live_streams.clone());
        Self { registry: Mutex::new(registry), requests, latency, live_streams }
    }
}

impl Metrics {
    pub fn observe_request(&self, method: &Method, route: Option<&str>, status: StatusCode, took: Duration) {
        let method = match *method {
            Method::GET | Method::POST | Method::HEAD | Method::PUT | Method::DELETE | Method::PATCH => method.as_str().to_owned(),
            _ => "OTHER".to_owned(),
        };
        let labels = RequestLabels {
            method,
            status: format!("{}xx", status.as_u16() / 100),
            // Unmatched paths (static files, 404s) share one label.
            route: route.unwrap_or("other").to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn set_live_streams(&self, open: usize) {
        self.live_streams.set(open as i64);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics registry lock")).expect("writing to a String cannot fail");
        out
    }
}
