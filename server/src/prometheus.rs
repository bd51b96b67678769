//! The Prometheus HTTP API, the only way the product reads metrics: the latency guard's
//! instant queries (`migration::latency`) and a dedicated node's usage history (range
//! queries over the kubelet's resource metrics, `node_usage`).
//!
//! Everything the product reads is a standard series a real cluster's Prometheus has:
//! `node_cpu_usage_seconds_total` and `node_memory_working_set_bytes` from each kubelet's
//! `/metrics/resource`, labelled with the `node` they came from (kube-prometheus' relabelling;
//! the local cluster's Prometheus scrapes KWOK's emulation of that endpoint the same way).

use std::time::Duration;

use serde_json::Value;

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics source unreachable: {0}")]
    Unreachable(String),
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Timeout for one query, connection included: a page or the migration loop waits on it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// A client of one Prometheus' HTTP API.
#[derive(Debug, Clone)]
pub struct Prometheus {
    base_url: String,
    http: reqwest::Client,
}

/// One series of a range query: `(unix seconds, value)` in time order.
pub type Points = Vec<(i64, f64)>;

impl Prometheus {
    /// `base_url` is Prometheus' root (`http://prometheus:9090`, or with a path prefix).
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(QUERY_TIMEOUT)
            .timeout(QUERY_TIMEOUT)
            .build()
            .expect("HTTP client for Prometheus (TLS backend initialisation failed)");
        Prometheus { base_url: base_url.trim_end_matches('/').to_string(), http }
    }

    /// The root every query goes to (without a trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /api/v1/query`: the response's body, for [`parse_instant`] or a caller's own reading.
    pub async fn instant(&self, query: &str) -> Result<String, MetricsError> {
        self.get("query", &[("query", query)]).await
    }

    /// `GET /api/v1/query_range` from `start` to `end` (unix seconds) every `step` seconds: the
    /// first series' points (a query here is summed to one series), empty when there is none.
    pub async fn range(&self, query: &str, start: i64, end: i64, step: i64) -> Result<Points, MetricsError> {
        let (start, end, step) = (start.to_string(), end.to_string(), step.max(1).to_string());
        let body = self.get("query_range", &[("query", query), ("start", &start), ("end", &end), ("step", &step)]).await?;
        parse_range(&body)
    }

    async fn get(&self, endpoint: &str, params: &[(&str, &str)]) -> Result<String, MetricsError> {
        let url = format!("{}/api/v1/{endpoint}", self.base_url);
        let response = self.http.get(&url).query(params).send().await.map_err(|e| MetricsError::Unreachable(format!("{url}: {e}")))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| MetricsError::Unreachable(format!("{url}: reading the response: {e}")))?;
        // Prometheus answers query errors with 400/422 and a JSON error body; anything else
        // that is not a success (a proxy's 502, an overloaded server's 503) has no such body.
        if !status.is_success() && !matches!(status.as_u16(), 400 | 422) {
            return Err(if status.is_server_error() {
                MetricsError::Unreachable(format!("{url}: HTTP {status}"))
            } else {
                MetricsError::BadResponse(format!("HTTP {status}: {}", truncate(&body, 200)))
            });
        }
        Ok(body)
    }
}

/// The `data` of a response: `status: error` (or anything not JSON) is `BadResponse`.
fn data_of(body: &str) -> Result<Value, MetricsError> {
    let mut json: Value = serde_json::from_str(body).map_err(|e| MetricsError::BadResponse(format!("not JSON ({e}): {}", truncate(body, 200))))?;
    if json.get("status").and_then(Value::as_str) != Some("success") {
        let kind = json.get("errorType").and_then(Value::as_str).unwrap_or("unknown");
        let error = json.get("error").and_then(Value::as_str).unwrap_or("no error message");
        return Err(MetricsError::BadResponse(format!("query failed ({kind}): {error}")));
    }
    json.get_mut("data").map(Value::take).ok_or_else(|| MetricsError::BadResponse("no data in response".into()))
}

/// A sample value is `[<unix time>, "<value as string>"]`.
fn sample(pair: &Value) -> Result<(f64, f64), MetricsError> {
    let malformed = || MetricsError::BadResponse(format!("malformed sample value {pair}"));
    let p = pair.as_array().ok_or_else(malformed)?;
    let t = p.first().and_then(Value::as_f64).ok_or_else(malformed)?;
    let text = p.get(1).and_then(Value::as_str).ok_or_else(malformed)?;
    let v = text.parse().map_err(|_| MetricsError::BadResponse(format!("sample value {text:?} is not a number")))?;
    Ok((t, v))
}

/// Reads an `/api/v1/query` response: the first sample's value, `None` for an empty vector.
/// The value may be NaN (`histogram_quantile` without traffic): the caller decides.
pub fn parse_instant(body: &str) -> Result<Option<f64>, MetricsError> {
    let data = data_of(body)?;
    let result = data.get("result").ok_or_else(|| MetricsError::BadResponse("no result in response".into()))?;
    let pair = match data.get("resultType").and_then(Value::as_str).unwrap_or("") {
        "vector" => match result.as_array().ok_or_else(|| MetricsError::BadResponse("vector result is not an array".into()))?.first() {
            None => return Ok(None),
            Some(s) => s.get("value").ok_or_else(|| MetricsError::BadResponse("sample without a value".into()))?,
        },
        "scalar" => result,
        other => return Err(MetricsError::BadResponse(format!("expected an instant vector, got {other:?}"))),
    };
    sample(pair).map(|(_, v)| Some(v))
}

/// Reads an `/api/v1/query_range` response: the first series' points; values that are not
/// finite (a rate over a gap) are left out, so a chart shows a gap rather than a spike.
pub fn parse_range(body: &str) -> Result<Points, MetricsError> {
    let data = data_of(body)?;
    if data.get("resultType").and_then(Value::as_str) != Some("matrix") {
        return Err(MetricsError::BadResponse("expected a range vector (matrix)".into()));
    }
    let Some(series) = data.get("result").and_then(Value::as_array).and_then(|r| r.first()) else {
        return Ok(Vec::new());
    };
    let values = series.get("values").and_then(Value::as_array).ok_or_else(|| MetricsError::BadResponse("series without values".into()))?;
    let mut out = Vec::with_capacity(values.len());
    for pair in values {
        let (t, v) = sample(pair)?;
        if v.is_finite() {
            out.push((t as i64, v));
        }
    }
    Ok(out)
}

/// Escapes a value for use inside a PromQL string literal (double or single quoted): the
/// backslash, both quote characters and control characters are escaped (Go escape syntax,
/// which PromQL uses), so the value can neither end the literal nor inject PromQL.
pub fn escape_promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub mod node_usage {
    //! A node's CPU and memory use over a window, as the dedicated node page charts it.

    use app::model::UsageRange;

    use super::{escape_promql_string, MetricsError, Points, Prometheus};

    /// CPU cores the node's containers used: the kubelet's cumulative counter as a rate over
    /// `window` seconds (at least two scrapes, or the rate has no data).
    pub fn cpu_query(node: &str, window: i64) -> String {
        format!(r#"sum(rate(node_cpu_usage_seconds_total{{node="{}"}}[{window}s]))"#, escape_promql_string(node))
    }

    /// Working-set bytes of the node (what the kernel would not reclaim).
    pub fn memory_query(node: &str) -> String {
        format!(r#"sum(node_memory_working_set_bytes{{node="{}"}})"#, escape_promql_string(node))
    }

    /// The rate window for a range: the step (each point covers its own interval), never less
    /// than four 5 s scrapes, so a missed scrape leaves no gap.
    pub fn rate_window(range: UsageRange) -> i64 {
        range.step_seconds().max(20)
    }

    /// The points of a range ending at `now`, aligned to the step so that two page loads in
    /// the same step ask Prometheus the same question.
    pub fn bounds(range: UsageRange, now: i64) -> (i64, i64) {
        let step = range.step_seconds();
        let end = now - now.rem_euclid(step);
        (end - range.seconds(), end)
    }

    /// CPU cores and memory bytes of `node` over `range`, from `start` to `end` ([`bounds`]),
    /// both queries at once.
    pub async fn read(prometheus: &Prometheus, node: &str, range: UsageRange, (start, end): (i64, i64)) -> Result<(Points, Points), MetricsError> {
        let step = range.step_seconds();
        let cpu = cpu_query(node, rate_window(range));
        let memory = memory_query(node);
        tokio::try_join!(prometheus.range(&cpu, start, end, step), prometheus.range(&memory, start, end, step))
    }
}

pub mod workload_usage {
    //! A workload's CPU use over time, from the kubelet's per-container counters (what the
    //! migration report charts before and after a move). Without kube-state-metrics to join
    //! pods to their owners, the workload's pods are matched by the names their controllers
    //! give them.

    use app::model::WorkloadKind;

    use super::escape_promql_string;

    /// The names of a workload's pods as a regular expression: a Deployment's are
    /// `<name>-<replicaset hash>-<suffix>`, a StatefulSet's `<name>-<ordinal>`.
    pub fn pod_pattern(kind: WorkloadKind, name: &str) -> String {
        // Kubernetes names are [a-z0-9.-]: only the dot means something in a regex.
        let name = name.replace('.', r"\.");
        match kind {
            WorkloadKind::Deployment => format!("{name}-[a-z0-9]+-[a-z0-9]+"),
            WorkloadKind::StatefulSet => format!("{name}-[0-9]+"),
        }
    }

    /// CPU cores the workload's containers used, as a rate over `window` seconds.
    pub fn cpu_query(namespace: &str, kind: WorkloadKind, name: &str, window: i64) -> String {
        format!(
            r#"sum(rate(container_cpu_usage_seconds_total{{namespace="{}", pod=~"{}"}}[{window}s]))"#,
            escape_promql_string(namespace),
            escape_promql_string(&pod_pattern(kind, name))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::UsageRange;

    #[test]
    fn a_workloads_pods_are_matched_by_their_controllers_names() {
        use app::model::WorkloadKind;
        assert_eq!(
            workload_usage::cpu_query("acme", WorkloadKind::Deployment, "web", 60),
            r#"sum(rate(container_cpu_usage_seconds_total{namespace="acme", pod=~"web-[a-z0-9]+-[a-z0-9]+"}[60s]))"#
        );
        let re = |kind, name| regex::Regex::new(&format!("^{}$", workload_usage::pod_pattern(kind, name))).unwrap();
        let web = re(WorkloadKind::Deployment, "web");
        assert!(web.is_match("web-7d9f8b6c5-x2k4q") && !web.is_match("web-api-7d9f8b6c5-x2k4q") && !web.is_match("webx-1-2"));
        let db = re(WorkloadKind::StatefulSet, "db.v2");
        assert!(db.is_match("db.v2-0") && !db.is_match("dbxv2-0") && !db.is_match("db.v2-a"));
        // In the query the regex is a PromQL string: its backslash is escaped.
        assert!(workload_usage::cpu_query("acme", WorkloadKind::StatefulSet, "db.v2", 60).contains(r#"pod=~"db\\.v2-[0-9]+""#));
    }

    #[test]
    fn a_node_name_cannot_end_the_label_matcher() {
        let q = node_usage::cpu_query(r#"n"} or vector(1) or {a=""#, 60);
        assert_eq!(q, r#"sum(rate(node_cpu_usage_seconds_total{node="n\"} or vector(1) or {a=\""}[60s]))"#);
        assert_eq!(node_usage::memory_query("dn-abc"), r#"sum(node_memory_working_set_bytes{node="dn-abc"})"#);
    }

    #[test]
    fn ranges_end_on_a_step_and_cover_their_length() {
        let now = 1_800_000_007;
        for range in [UsageRange::Hour, UsageRange::Day, UsageRange::Week] {
            let (start, end) = node_usage::bounds(range, now);
            assert_eq!(end % range.step_seconds(), 0, "{range:?}");
            assert!(end <= now && now - end < range.step_seconds());
            assert_eq!(end - start, range.seconds());
            // Charts of a few hundred points: enough to see a trend, small on the wire.
            assert!((100..=400).contains(&(range.seconds() / range.step_seconds())), "{range:?}");
            assert!(node_usage::rate_window(range) >= 20);
        }
    }

    #[test]
    fn range_responses_keep_finite_points_in_order() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"0.5"],[1700000015,"NaN"],[1700000030,"1.25"]]}]}}"#;
        assert_eq!(parse_range(body).unwrap(), vec![(1_700_000_000, 0.5), (1_700_000_030, 1.25)]);
        let empty = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(parse_range(empty).unwrap(), vec![]);
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(parse_range(error), Err(MetricsError::BadResponse("query failed (bad_data): parse error".into())));
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(parse_range(vector), Err(MetricsError::BadResponse(_))));
        assert!(matches!(parse_range("<html>"), Err(MetricsError::BadResponse(_))));
    }
}
