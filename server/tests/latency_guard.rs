//! Latency guard (use case 5d) against a real Prometheus scraping an exporter whose latency the
//! test controls: the baseline is read, a latency rise pauses the migration after two
//! consecutive breaching samples, and a return to normal continues.
//!
//! Run with `cargo test -p server --test latency_guard -- --nocapture` to see the measured
//! propagation delays (exporter change → `p95_latency_ms`).

mod support;

use std::time::{Duration, Instant};

use server::migration::latency::{observe, GuardDecision, GuardSettings, GuardState, MetricsError, MetricsSource, PrometheusSource, DEFAULT_QUERY_TEMPLATE};
use support::prometheus::{expected_p95_ms, PromHarness};

const SETTINGS: GuardSettings = GuardSettings { margin_percent: 50.0, consecutive: 2 };
/// How often the test polls Prometheus while measuring propagation.
const POLL: Duration = Duration::from_millis(250);
/// How often a sample goes through the guard (the engine samples once per guard interval;
/// sampling faster than Prometheus scrapes would count one scrape twice).
const GUARD_INTERVAL: Duration = Duration::from_secs(1);

/// Polls the source until `done` holds for a sample, returning the sample and when it arrived.
async fn poll_until(source: &PrometheusSource, ns: &str, wl: &str, timeout: Duration, what: &str, mut done: impl FnMut(f64) -> bool) -> (f64, Instant) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match source.p95_latency_ms(ns, wl).await {
            Ok(Some(ms)) => {
                last = Some(ms);
                if done(ms) {
                    return (ms, Instant::now());
                }
            }
            Ok(None) => {}
            Err(e) => panic!("{what}: query failed: {e}"),
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}; last sample {last:?}");
        tokio::time::sleep(POLL).await;
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.5
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_rise_pauses_and_recovery_continues() {
    let prom = PromHarness::start().await;
    let (ns, wl) = ("shop", "web");
    prom.set_latency_ms(ns, wl, 100.0);
    // A 5 s window instead of the default 1 m so a change shows fully within seconds; the
    // default template itself is exercised below and in `default_template_*`.
    let template = DEFAULT_QUERY_TEMPLATE.replace("[1m]", "[5s]");
    assert_ne!(template, DEFAULT_QUERY_TEMPLATE);
    let source = PrometheusSource::new(&prom.url, Some(&template));
    let default_source = PrometheusSource::new(&prom.url, None);

    // Baseline: ~100 ms (98.75 after bucket interpolation).
    let baseline_expected = expected_p95_ms(100.0);
    let (baseline, _) = poll_until(&source, ns, wl, Duration::from_secs(20), "baseline", |_| true).await;
    assert!(near(baseline, baseline_expected), "baseline {baseline}, expected {baseline_expected}");
    let (default_baseline, _) = poll_until(&default_source, ns, wl, Duration::from_secs(20), "baseline (default template)", |_| true).await;
    assert!(near(default_baseline, baseline_expected), "default-template baseline {default_baseline}");

    let mut state = GuardState::default();
    assert_eq!(observe(SETTINGS, &mut state, baseline), GuardDecision::Continue);
    assert_eq!(state.baseline_ms, Some(baseline));
    let threshold = baseline * (1.0 + SETTINGS.margin_percent / 100.0);

    // Latency rises to ~300 ms: every sample from Prometheus goes through the guard.
    let high_expected = expected_p95_ms(300.0);
    let raised = Instant::now();
    prom.set_latency_ms(ns, wl, 300.0);
    let mut first_breach: Option<Duration> = None;
    let mut default_first_breach: Option<Duration> = None;
    let mut decisions = vec![];
    let deadline = raised + Duration::from_secs(30);
    let mut last_guarded: Option<Instant> = None;
    let (pause_baseline, pause_current) = loop {
        let ms = source.p95_latency_ms(ns, wl).await.expect("query").expect("a sample");
        if ms > threshold && first_breach.is_none() {
            first_breach = Some(raised.elapsed());
        }
        if default_first_breach.is_none() {
            if let Ok(Some(d)) = default_source.p95_latency_ms(ns, wl).await {
                if d > threshold {
                    default_first_breach = Some(raised.elapsed());
                }
            }
        }
        if last_guarded.is_none_or(|t| t.elapsed() >= GUARD_INTERVAL) {
            last_guarded = Some(Instant::now());
            let decision = observe(SETTINGS, &mut state, ms);
            decisions.push((ms, decision.clone()));
            if let GuardDecision::Pause { baseline_ms, current_ms } = decision {
                break (baseline_ms, current_ms);
            }
        }
        assert!(Instant::now() < deadline, "no pause within 30 s: {decisions:?}");
        tokio::time::sleep(POLL).await;
    };
    let paused_after = raised.elapsed();
    assert_eq!(pause_baseline, baseline);
    assert!(pause_current > threshold && pause_current <= high_expected + 0.5, "pause at {pause_current} ms: {decisions:?}");
    assert_eq!(state.breaches, 2, "{decisions:?}");
    assert_eq!(state.last_ms, Some(pause_current));
    // Only the last two samples breached; everything before continued.
    let n = decisions.len();
    assert!(decisions[..n - 1].iter().all(|(_, d)| *d == GuardDecision::Continue), "{decisions:?}");
    assert!(decisions[n - 2].0 > threshold, "{decisions:?}");

    // Once the window holds only slow requests, the guard reports the full ~300 ms.
    let (full, full_at) = poll_until(&source, ns, wl, Duration::from_secs(30), "p95 reaching ~300 ms", |ms| near(ms, high_expected)).await;
    let fully_reflected = full_at - raised;
    assert_eq!(observe(SETTINGS, &mut state, full), GuardDecision::Pause { baseline_ms: baseline, current_ms: full });
    let default_first_breach = match default_first_breach {
        Some(d) => d,
        None => poll_until(&default_source, ns, wl, Duration::from_secs(30), "default template above threshold", |ms| ms > threshold).await.1 - raised,
    };

    // Back to ~100 ms: the first good sample resets the breach count and the guard continues.
    let lowered = Instant::now();
    prom.set_latency_ms(ns, wl, 100.0);
    let (below, below_at) = poll_until(&source, ns, wl, Duration::from_secs(30), "p95 back below the threshold", |ms| ms <= threshold).await;
    let recovered_below = below_at - lowered;
    assert_eq!(observe(SETTINGS, &mut state, below), GuardDecision::Continue);
    assert_eq!(state.breaches, 0);
    let (normal, normal_at) = poll_until(&source, ns, wl, Duration::from_secs(30), "p95 back at ~100 ms", |ms| near(ms, baseline_expected)).await;
    let recovered_fully = normal_at - lowered;
    assert_eq!(observe(SETTINGS, &mut state, normal), GuardDecision::Continue);
    assert_eq!(state.baseline_ms, Some(baseline));
    // A reset (the developer resumes the migration) takes a fresh baseline and continues.
    let mut reset = GuardState::default();
    assert_eq!(observe(SETTINGS, &mut reset, normal), GuardDecision::Continue);
    let again = source.p95_latency_ms(ns, wl).await.unwrap().unwrap();
    assert_eq!(observe(SETTINGS, &mut reset, again), GuardDecision::Continue);
    assert_eq!(reset, GuardState { baseline_ms: Some(normal), breaches: 0, last_ms: Some(again) });

    eprintln!(
        "latency guard measurements (scrape 1 s, polling every {POLL:?}, guard sample every {GUARD_INTERVAL:?}):\n\
         \x20 100→300 ms, [5s] window: first sample above threshold after {:.2?}, Pause after {paused_after:.2?} \
         (2 consecutive), full ~{high_expected} ms after {fully_reflected:.2?}\n\
         \x20 100→300 ms, default [1m] window: first sample above threshold after {default_first_breach:.2?}\n\
         \x20 300→100 ms, [5s] window: below threshold after {recovered_below:.2?}, back at ~{baseline_expected} ms after {recovered_fully:.2?}\n\
         \x20 pause decision: baseline {pause_baseline:.2} ms, current {pause_current:.2} ms; samples {:?}",
        first_breach.unwrap(),
        decisions.iter().map(|(ms, _)| (ms * 100.0).round() / 100.0).collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_template_reads_only_the_named_workload() {
    let prom = PromHarness::start().await;
    // A name that would inject PromQL if it were not escaped, next to an ordinary one.
    let evil = r#"web"} or vector(7) or up{job=""#;
    prom.set_latency_ms("shop", "web", 100.0);
    prom.set_latency_ms("shop", evil, 40.0);
    prom.set_latency_ms("other", "web", 300.0);
    let source = PrometheusSource::new(&prom.url, None);

    let (web, _) = poll_until(&source, "shop", "web", Duration::from_secs(20), "shop/web", |_| true).await;
    assert!(near(web, expected_p95_ms(100.0)), "shop/web {web}");
    let (evil_ms, _) = poll_until(&source, "shop", evil, Duration::from_secs(20), "shop/<evil>", |_| true).await;
    assert!(near(evil_ms, expected_p95_ms(40.0)), "the escaped name reads its own series: {evil_ms}");
    let (other, _) = poll_until(&source, "other", "web", Duration::from_secs(20), "other/web", |_| true).await;
    assert!(near(other, expected_p95_ms(300.0)), "other/web {other}");

    // No such series: no data, not an error.
    assert_eq!(source.p95_latency_ms("shop", "missing").await.unwrap(), None);
    // A template Prometheus rejects is a bad response.
    let broken = PrometheusSource::new(&prom.url, Some("histogram_quantile(0.95, {namespace}"));
    let err = broken.p95_latency_ms("shop", "web").await.unwrap_err();
    assert!(matches!(err, MetricsError::BadResponse(_)), "{err}");
    // Nothing listening: unreachable, and quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let err = PrometheusSource::new(&format!("http://127.0.0.1:{port}"), None).p95_latency_ms("shop", "web").await.unwrap_err();
    assert!(matches!(err, MetricsError::Unreachable(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// The 3 s timeout: a server that accepts but never answers.
#[tokio::test]
async fn a_hanging_source_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = vec![];
        loop {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
    });
    let started = Instant::now();
    let err = PrometheusSource::new(&format!("http://{addr}"), None).p95_latency_ms("shop", "web").await.unwrap_err();
    let took = started.elapsed();
    hold.abort();
    assert!(matches!(err, MetricsError::Unreachable(_)), "{err}");
    assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(5), "timed out after {took:?}");
}
