//! Latency guard for zero-downtime migrations (use case 5d).
//!
//! While a migration moves an application's pods, the engine samples the application's p95
//! latency from a [`MetricsSource`] once per interval and feeds each sample through
//! [`observe`]. The first sample becomes the baseline; a sample above
//! `baseline * (1 + margin_percent / 100)` counts as a breach, any other sample resets the
//! count, and `consecutive` breaches in a row ask the migration to pause.
//!
//! [`PrometheusSource`] is the production source: an instant query against the Prometheus
//! HTTP API (`GET /api/v1/query`), built from a PromQL template whose `{namespace}` and
//! `{workload}` placeholders are replaced by the values escaped for a PromQL string literal.

pub use crate::prometheus::{escape_promql_string, MetricsError};
use crate::prometheus::{parse_instant, Prometheus};

/// Where the latency guard gets its samples from.
#[async_trait::async_trait]
pub trait MetricsSource: Send + Sync {
    /// The workload's current p95 latency in milliseconds; `Ok(None)` when there is no data
    /// (no such series, no traffic in the window).
    async fn p95_latency_ms(&self, namespace: &str, workload: &str) -> Result<Option<f64>, MetricsError>;
}

/// How sensitive the guard is: a sample more than `margin_percent` above the baseline is a
/// breach; `consecutive` breaches in a row pause the migration (0 is treated as 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardSettings {
    pub margin_percent: f64,
    pub consecutive: u32,
}

pub use crate::crd::GuardState;

#[derive(Debug, Clone, PartialEq)]
pub enum GuardDecision {
    Continue,
    Pause { baseline_ms: f64, current_ms: f64 },
}

/// First sample sets the baseline; a sample above baseline*(1+margin/100) counts a breach, any
/// other resets the count; `consecutive` breaches → Pause.
///
/// While the samples keep breaching, every further call returns `Pause` again (the count
/// saturates). A sample that is not a finite, non-negative number is ignored: the state is
/// left unchanged and the decision is `Continue`. To start over (for example after the
/// developer resumes a paused migration), replace the state with `GuardState::default()`.
pub fn observe(settings: GuardSettings, state: &mut GuardState, sample_ms: f64) -> GuardDecision {
    if !sample_ms.is_finite() || sample_ms < 0.0 {
        return GuardDecision::Continue;
    }
    state.last_ms = Some(sample_ms);
    let baseline = match state.baseline_ms {
        Some(b) => b,
        None => {
            state.baseline_ms = Some(sample_ms);
            state.breaches = 0;
            return GuardDecision::Continue;
        }
    };
    let threshold = baseline * (1.0 + settings.margin_percent / 100.0);
    if sample_ms > threshold {
        state.breaches = state.breaches.saturating_add(1);
    } else {
        state.breaches = 0;
    }
    if state.breaches >= settings.consecutive.max(1) {
        GuardDecision::Pause { baseline_ms: baseline, current_ms: sample_ms }
    } else {
        GuardDecision::Continue
    }
}

/// p95 of a standard `http_request_duration_seconds` histogram (as exported by most HTTP
/// middleware), over the last minute, for the pods labelled with the namespace and workload.
pub const DEFAULT_QUERY_TEMPLATE: &str =
    r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{namespace}", workload="{workload}"}[1m])))"#;

/// Whether `name` is a Prometheus metric name (and nothing else).
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && name.len() <= 200
}

/// The default query for another latency histogram; `None` for anything that is not a metric
/// name (a migration never gets to write PromQL).
pub fn query_template_for(metric: &str) -> Option<String> {
    is_metric_name(metric).then(|| DEFAULT_QUERY_TEMPLATE.replace("http_request_duration_seconds", metric))
}

/// A [`MetricsSource`] over the Prometheus HTTP API. The query must return an instant vector
/// (or a scalar) in seconds; the first sample's value, ×1000, is the p95 in milliseconds.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    prometheus: Prometheus,
    query_template: String,
}

impl PrometheusSource {
    /// `base_url` is Prometheus' root (`http://prometheus:9090`, or with a path prefix);
    /// `query_template` defaults to [`DEFAULT_QUERY_TEMPLATE`].
    pub fn new(base_url: &str, query_template: Option<&str>) -> Self {
        Self { prometheus: Prometheus::new(base_url), query_template: query_template.unwrap_or(DEFAULT_QUERY_TEMPLATE).to_string() }
    }

    /// The PromQL this source sends for a workload.
    pub fn query_for(&self, namespace: &str, workload: &str) -> String {
        render_query(&self.query_template, namespace, workload)
    }
}

#[async_trait::async_trait]
impl MetricsSource for PrometheusSource {
    async fn p95_latency_ms(&self, namespace: &str, workload: &str) -> Result<Option<f64>, MetricsError> {
        let body = self.prometheus.instant(&self.query_for(namespace, workload)).await?;
        parse_query_response(&body)
    }
}

/// Substitutes `{namespace}` and `{workload}` in one pass (a value that itself contains a
/// placeholder is not expanded again), each value escaped for a double-quoted PromQL string.
pub fn render_query(template: &str, namespace: &str, workload: &str) -> String {
    let mut out = String::with_capacity(template.len() + namespace.len() + workload.len());
    let mut rest = template;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{namespace}") {
            out.push_str(&escape_promql_string(namespace));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{workload}") {
            out.push_str(&escape_promql_string(workload));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Reads an `/api/v1/query` response as a latency: `status: error` → `BadResponse`; an empty
/// vector → `None`; otherwise the first sample's value (seconds) in milliseconds. A NaN (or
/// infinite) value, which `histogram_quantile` returns when there was no traffic, is `None`.
pub fn parse_query_response(body: &str) -> Result<Option<f64>, MetricsError> {
    let Some(seconds) = parse_instant(body)? else { return Ok(None) };
    if !seconds.is_finite() {
        return Ok(None);
    }
    if seconds < 0.0 {
        return Err(MetricsError::BadResponse(format!("negative latency {seconds}")));
    }
    Ok(Some(seconds * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: GuardSettings = GuardSettings { margin_percent: 50.0, consecutive: 2 };

    #[test]
    fn a_migration_names_a_metric_never_a_query() {
        assert!(query_template_for("app_latency_seconds").unwrap().contains("app_latency_seconds_bucket{namespace=\"{namespace}\""));
        for bad in ["up) or vector(1", "x{a=\"b\"}", "1abc", "", "a b", &"a".repeat(201)] {
            assert_eq!(query_template_for(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn first_sample_sets_the_baseline() {
        let mut st = GuardState::default();
        assert_eq!(observe(S, &mut st, 100.0), GuardDecision::Continue);
        assert_eq!(st, GuardState { baseline_ms: Some(100.0), breaches: 0, last_ms: Some(100.0) });
        // A later sample never moves the baseline.
        assert_eq!(observe(S, &mut st, 80.0), GuardDecision::Continue);
        assert_eq!(st.baseline_ms, Some(100.0));
        assert_eq!(st.last_ms, Some(80.0));
    }

    #[test]
    fn consecutive_breaches_pause() {
        let mut st = GuardState::default();
        observe(S, &mut st, 100.0);
        assert_eq!(observe(S, &mut st, 151.0), GuardDecision::Continue);
        assert_eq!(st.breaches, 1);
        assert_eq!(observe(S, &mut st, 300.0), GuardDecision::Pause { baseline_ms: 100.0, current_ms: 300.0 });
        assert_eq!(st.breaches, 2);
        // Still breaching: still paused, with the latest number.
        assert_eq!(observe(S, &mut st, 280.0), GuardDecision::Pause { baseline_ms: 100.0, current_ms: 280.0 });
        assert_eq!(st.last_ms, Some(280.0));
    }

    #[test]
    fn a_good_sample_resets_the_count() {
        let mut st = GuardState::default();
        observe(S, &mut st, 100.0);
        assert_eq!(observe(S, &mut st, 200.0), GuardDecision::Continue);
        // Exactly at the threshold is not a breach.
        assert_eq!(observe(S, &mut st, 150.0), GuardDecision::Continue);
        assert_eq!(st.breaches, 0);
        assert_eq!(observe(S, &mut st, 200.0), GuardDecision::Continue);
        assert_eq!(st.breaches, 1);
        assert_eq!(observe(S, &mut st, 120.0), GuardDecision::Continue);
        assert_eq!(st.breaches, 0);
    }

    #[test]
    fn after_a_pause_good_samples_or_a_reset_continue() {
        let mut st = GuardState::default();
        observe(S, &mut st, 100.0);
        observe(S, &mut st, 300.0);
        assert!(matches!(observe(S, &mut st, 300.0), GuardDecision::Pause { .. }));
        assert_eq!(observe(S, &mut st, 110.0), GuardDecision::Continue);
        let mut fresh = GuardState::default();
        assert_eq!(observe(S, &mut fresh, 300.0), GuardDecision::Continue);
        assert_eq!(fresh.baseline_ms, Some(300.0));
    }

    #[test]
    fn one_breach_pauses_when_consecutive_is_one_or_zero() {
        for consecutive in [0, 1] {
            let s = GuardSettings { margin_percent: 10.0, consecutive };
            let mut st = GuardState::default();
            observe(s, &mut st, 100.0);
            assert_eq!(observe(s, &mut st, 111.0), GuardDecision::Pause { baseline_ms: 100.0, current_ms: 111.0 });
        }
    }

    #[test]
    fn non_finite_samples_are_ignored() {
        let mut st = GuardState::default();
        assert_eq!(observe(S, &mut st, f64::NAN), GuardDecision::Continue);
        assert_eq!(st, GuardState::default());
        observe(S, &mut st, 100.0);
        observe(S, &mut st, 300.0);
        let before = st.clone();
        assert_eq!(observe(S, &mut st, f64::INFINITY), GuardDecision::Continue);
        assert_eq!(observe(S, &mut st, -1.0), GuardDecision::Continue);
        assert_eq!(st, before);
    }

    #[test]
    fn state_serialises_in_camel_case() {
        let st = GuardState { baseline_ms: Some(100.0), breaches: 1, last_ms: Some(200.0) };
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json, serde_json::json!({"baselineMs": 100.0, "breaches": 1, "lastMs": 200.0}));
        assert_eq!(serde_json::from_value::<GuardState>(json).unwrap(), st);
    }

    #[test]
    fn default_template_substitutes_both_placeholders() {
        let q = render_query(DEFAULT_QUERY_TEMPLATE, "shop", "web");
        assert_eq!(q, r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="shop", workload="web"}[1m])))"#);
    }

    #[test]
    fn placeholders_are_escaped_and_not_expanded_twice() {
        let t = r#"m{a="{namespace}",b="{workload}",c='{workload}'} {other}"#;
        let q = render_query(t, "{workload}", r#"x"} or vector(1) or m{y="\"#);
        assert_eq!(q, r#"m{a="{workload}",b="x\"} or vector(1) or m{y=\"\\",c='x\"} or vector(1) or m{y=\"\\'} {other}"#);
        assert_eq!(escape_promql_string("a\nb\tc\u{1}d'e"), r#"a\nb\tc\x01d\'e"#);
        assert_eq!(escape_promql_string("plain-name_1.2"), "plain-name_1.2");
        assert_eq!(escape_promql_string("ünïcødé"), "ünïcødé");
    }

    #[test]
    fn query_for_uses_the_custom_template() {
        let src = PrometheusSource::new("http://prom:9090/", Some("q{{namespace}/{workload}}"));
        assert_eq!(src.prometheus.base_url(), "http://prom:9090");
        assert_eq!(src.query_for("a\"", "b"), "q{a\\\"/b}");
    }

    #[test]
    fn parses_a_vector_response() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"namespace":"shop"},"value":[1735300000.123,"0.0975"]},
            {"metric":{"namespace":"other"},"value":[1735300000.123,"9"]}]}}"#;
        let ms = parse_query_response(body).unwrap().unwrap();
        assert!((ms - 97.5).abs() < 1e-9, "{ms}");
    }

    #[test]
    fn parses_empty_nan_and_scalar_responses() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_query_response(empty).unwrap(), None);
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert_eq!(parse_query_response(nan).unwrap(), None);
        let inf = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"+Inf"]}]}}"#;
        assert_eq!(parse_query_response(inf).unwrap(), None);
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.25"]}}"#;
        assert_eq!(parse_query_response(scalar).unwrap(), Some(250.0));
    }

    #[test]
    fn rejects_error_and_malformed_responses() {
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        match parse_query_response(err) {
            Err(MetricsError::BadResponse(m)) => assert!(m.contains("bad_data") && m.contains("parse error"), "{m}"),
            other => panic!("{other:?}"),
        }
        for body in [
            "<html>proxy error</html>",
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"fast"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,0.1]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"-0.1"]}]}}"#,
            r#"{"status":"success"}"#,
        ] {
            assert!(matches!(parse_query_response(body), Err(MetricsError::BadResponse(_))), "{body}");
        }
    }
}
