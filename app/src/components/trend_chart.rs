//! A measure before and after a workload's move as an SVG line chart, drawn on the server like
//! [`super::UsageChart`] (the same line drawing): the move as a shaded band, the averages
//! before and after as dashed lines, and one sentence with the numbers as the text
//! alternative. Whether it improved is said only when the numbers show it
//! ([`Trend::verdict`]).

use leptos::prelude::*;

use super::chart::{format_usage, paths, HEIGHT, WIDTH};
use crate::model::{Trend, Verdict};

/// What the chart says in words. `judged`: lower is better for this measure (latency), so the
/// sentence says whether it improved; for CPU it gives the numbers only.
pub fn trend_summary(t: &Trend, workload: &str, judged: bool) -> String {
    let (Some(before), Some(after)) = (t.before, t.after) else {
        return format!("{} of {workload}: not measured both before and after the move.", t.label);
    };
    let numbers = format!("{} of {workload}: {} {unit} before the move, {} {unit} after", t.label, format_usage(before), format_usage(after), unit = t.unit);
    if !judged {
        return format!("{numbers}.");
    }
    match t.verdict() {
        Verdict::Improved(share) => format!("{numbers}: improved, {:.0}% lower.", share * 100.0),
        Verdict::Worse(share) => format!("{numbers}: {:.0}% higher.", share * 100.0),
        Verdict::NoClearChange | Verdict::NotMeasured => format!("{numbers}: no clear change."),
    }
}

#[component]
pub fn TrendChart(trend: Trend, #[prop(into)] workload: String, judged: bool, moved: (i64, i64), start: i64, end: i64, step: i64) -> impl IntoView {
    let top = trend.points.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(trend.before.unwrap_or(0.0)).max(trend.after.unwrap_or(0.0));
    let scale = if top > 0.0 { top * 1.1 } else { 1.0 };
    let (line, area) = paths(&trend.points, start, end, step, scale);
    let span = (end - start).max(1) as f64;
    let x_of = |t: i64| ((t - start) as f64 / span * WIDTH).clamp(0.0, WIDTH);
    let y_of = |v: f64| HEIGHT - (v / scale).clamp(0.0, 1.0) * HEIGHT;
    let (band_x, band_w) = (x_of(moved.0), (x_of(moved.1) - x_of(moved.0)).max(2.0));
    let text = trend_summary(&trend, &workload, judged);
    let (caption, label) = (text.clone(), text.clone());
    let average = |from: f64, to: f64, v: Option<f64>| {
        v.map(|v| {
            let y = format!("{:.1}", y_of(v));
            view! { <line x1=format!("{from:.1}") x2=format!("{to:.1}") y1=y.clone() y2=y stroke="currentColor" stroke-dasharray="4 3"
            vector-effect="non-scaling-stroke" class="text-amber-500"></line> }
        })
    };
    view! {
        <figure class="space-y-2" data-trend=trend.label.clone() data-workload=workload.clone()>
            <figcaption class="text-sm text-slate-700 dark:text-slate-200" data-testid="trend-summary">{caption}</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img" aria-label=label
                class="block h-28 w-full rounded-lg bg-slate-50 dark:bg-slate-800/60">
                <title>{text}</title>
                <rect x=format!("{band_x:.1}") y="0" width=format!("{band_w:.1}") height=HEIGHT class="fill-indigo-500/10"></rect>
                {average(0.0, band_x, trend.before)}
                {average(band_x + band_w, WIDTH, trend.after)}
                <path d=area fill="currentColor" fill-opacity="0.15" class="text-indigo-500"></path>
                <path d=line fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"
                    vector-effect="non-scaling-stroke" class="text-indigo-500" data-testid="trend-line"></path>
            </svg>
            <div class="flex flex-wrap gap-x-4 gap-y-1 text-xs text-slate-600 dark:text-slate-400" aria-hidden="true">
                <span><span class="text-indigo-500">"━"</span>{format!(" {} ({})", trend.label, trend.unit)}</span>
                <span><span class="text-amber-500">"┅"</span>" average before and after"</span>
                <span><span class="text-indigo-300">"▮"</span>" the move"</span>
            </div>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_claims_an_improvement_only_from_the_numbers() {
        let t = |before, after| Trend { label: "p95 latency".into(), unit: "ms".into(), points: vec![], before, after };
        assert_eq!(trend_summary(&t(Some(165.0), Some(38.0)), "web", true), "p95 latency of web: 165 ms before the move, 38 ms after: improved, 77% lower.");
        assert_eq!(trend_summary(&t(Some(40.0), Some(41.0)), "web", true), "p95 latency of web: 40 ms before the move, 41 ms after: no clear change.");
        assert_eq!(trend_summary(&t(Some(40.0), Some(60.0)), "web", true), "p95 latency of web: 40 ms before the move, 60 ms after: 50% higher.");
        assert_eq!(trend_summary(&t(None, Some(38.0)), "web", true), "p95 latency of web: not measured both before and after the move.");
        let cpu = Trend { label: "CPU use".into(), unit: "vCPU".into(), points: vec![], before: Some(1.3), after: Some(0.55) };
        assert_eq!(trend_summary(&cpu, "web", false), "CPU use of web: 1.3 vCPU before the move, 0.55 vCPU after.");
    }
}
