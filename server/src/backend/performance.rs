//! The migration report's performance (use case step 16): each moved workload's p95 latency
//! (the migration's latency metric, the query the guard uses) and CPU used, over time from
//! before the migration started, read from Prometheus with range queries. Membership is
//! checked by the caller (`mod.rs`).

use app::error::AppError;
use app::model::{MigrationPerformance, Trend, WorkloadPerformance, WorkloadState};
use kube::ResourceExt;

use super::DashboardBackend;
use crate::crd::WorkloadMigration;
use crate::engine::time::parse_rfc3339;
use crate::migration::latency::{self, DEFAULT_QUERY_TEMPLATE};
use crate::prometheus::{workload_usage, MetricsError, Prometheus};

/// How much of "before" the charts show and average: long enough for a stable number, short
/// enough to be the same conditions as the move.
const BEFORE: i64 = 30 * 60;
/// How long after a move the charts keep growing; later, they stop a day after it finished.
const AFTER: i64 = 24 * 3600;
/// About this many points a line.
const POINTS: i64 = 240;
/// The rate window of both queries: the latency template's own 1 m, and four 15 s scrapes.
const RATE_WINDOW: i64 = 60;

impl DashboardBackend {
    pub(super) async fn performance_of(&self, m: &WorkloadMigration) -> Result<MigrationPerformance, AppError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let status = m.status.clone().unwrap_or_default();
        let started = status.started_at.as_deref().and_then(parse_rfc3339).map(|t| t.unix_timestamp());
        let finished = status.finished_at.as_deref().and_then(parse_rfc3339).map(|t| t.unix_timestamp());
        let (start, end, step) = window(started.unwrap_or(now), finished, now);
        let empty = |why: &str| MigrationPerformance { start, end, step, workloads: vec![], unavailable: Some(why.to_string()) };
        let Some(prometheus) = &self.prometheus else {
            return Ok(empty("No metrics source is configured (set PROMETHEUS_URL to your Prometheus)."));
        };
        if started.is_none() {
            return Ok(empty("The migration has not started yet."));
        }
        let template = m.spec.latency_guard.as_ref().and_then(|g| g.metric.as_deref()).and_then(latency::query_template_for);
        let template = template.as_deref().unwrap_or(DEFAULT_QUERY_TEMPLATE);
        let moved = status.workloads.iter().filter(|w| w.state == WorkloadState::Moved);
        let reads = moved.map(|w| async move {
            let from = w.started_at.as_deref().and_then(parse_rfc3339).map_or(start, |t| t.unix_timestamp());
            let to = w.finished_at.as_deref().and_then(parse_rfc3339).map_or(now, |t| t.unix_timestamp());
            let key = &w.workload;
            let p95 = latency::render_query(template, &key.namespace, &key.name);
            let cpu = workload_usage::cpu_query(&key.namespace, key.kind, &key.name, RATE_WINDOW);
            let (latency, cpu) = tokio::try_join!(read_ms(prometheus, &p95, (start, end, step)), prometheus.range(&cpu, start, end, step))?;
            // After: once the rate window no longer reaches back into the move.
            let settled = to + RATE_WINDOW;
            Ok::<_, MetricsError>(WorkloadPerformance {
                key: key.clone(),
                moved_from: from,
                moved_to: to,
                latency: Trend::of("p95 latency", "ms", latency, from, settled),
                cpu: Trend::of("CPU use", "vCPU", cpu, from, settled),
            })
        });
        match futures::future::try_join_all(reads).await {
            Ok(workloads) => Ok(MigrationPerformance { start, end, step, workloads, unavailable: None }),
            Err(e) => {
                tracing::warn!(migration = %m.name_any(), error = %e, "performance history");
                Ok(empty(&format!("Prometheus did not answer ({e}).")))
            }
        }
    }
}

/// The p95 series in milliseconds; `histogram_quantile` gives NaN where there was no traffic,
/// which is a gap, not a point.
async fn read_ms(prometheus: &Prometheus, query: &str, (start, end, step): (i64, i64, i64)) -> Result<Vec<(i64, f64)>, MetricsError> {
    let seconds = prometheus.range(query, start, end, step).await?;
    Ok(seconds.into_iter().filter(|(_, v)| v.is_finite()).map(|(t, v)| (t, v * 1000.0)).collect())
}

/// The charts' span and step: from [`BEFORE`] the start to now, or to [`AFTER`] the finish once
/// that has passed; the step a multiple of 15 s giving about [`POINTS`] points, the span
/// aligned to it so that two loads in the same step ask the same question.
fn window(started: i64, finished: Option<i64>, now: i64) -> (i64, i64, i64) {
    let end = finished.map_or(now, |f| now.min(f + AFTER));
    let begin = started - BEFORE;
    let step = (((end - begin) / POINTS).max(15) + 14) / 15 * 15;
    let end = end - end.rem_euclid(step);
    (begin - begin.rem_euclid(step), end, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_before_the_move_and_stops_a_day_after_it() {
        let (start, end, step) = window(10_000, Some(10_600), 11_000);
        assert!(start <= 10_000 - BEFORE && end <= 11_000 && 11_000 - end < step, "{start} {end} {step}");
        assert_eq!(step % 15, 0);
        assert!((end - start) / step <= POINTS + 1);
        let (_, end, step) = window(10_000, Some(10_600), 10_600 + 3 * AFTER);
        assert!(end <= 10_600 + AFTER && 10_600 + AFTER - end < step, "a day after the finish, not now");
        let (_, end, _) = window(10_000, None, 20_000);
        assert!(end <= 20_000 && end > 19_000, "a running migration's chart reaches now");
    }
}
