//! A resource's use over time as an SVG line chart, drawn on the server (readable before and
//! without wasm) from a [`UsageSeries`]: the usage line and its area, the pods' requests and
//! the node's allocatable as dashed lines, a legend with numbers, and the same numbers as the
//! chart's text alternative.
//!
//! Hand-drawn SVG rather than a charting crate: the crates that fit Leptos 0.8 either drive a
//! JavaScript library (charming → ECharts, ~1 MB) or draw through a generic backend (plotters)
//! that would put more in the wasm than the whole chart costs here, against the bundle budget.

use leptos::prelude::*;

use crate::model::UsageSeries;

/// The chart's drawing box; the SVG scales to its container's width.
pub(crate) const WIDTH: f64 = 600.0;
pub(crate) const HEIGHT: f64 = 150.0;

/// "0.42", "3.5", "12": two decimals below 1, one below 10, none above.
pub fn format_usage(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.2}")
    } else if v.abs() < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// The y of a value on a chart scaled to `scale` (0 at the bottom).
fn y_of(v: f64, scale: f64) -> f64 {
    HEIGHT - (v / scale).clamp(0.0, 1.0) * HEIGHT
}

/// The usage line as SVG path data, one `M…L…` run per stretch without a gap (a gap is more
/// than two steps without a point), and the area under it closed to the baseline.
pub fn paths(points: &[(i64, f64)], start: i64, end: i64, step: i64, scale: f64) -> (String, String) {
    let span = (end - start).max(1) as f64;
    let x_of = |t: i64| ((t - start) as f64 / span * WIDTH).clamp(0.0, WIDTH);
    let (mut line, mut area) = (String::new(), String::new());
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut flush = |run: &mut Vec<(f64, f64)>| {
        if let (Some(first), Some(last)) = (run.first().copied(), run.last().copied()) {
            for (i, (x, y)) in run.iter().enumerate() {
                line.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
            }
            area.push_str(&format!("M{:.1},{HEIGHT:.1}", first.0));
            for (x, y) in run.iter() {
                area.push_str(&format!("L{x:.1},{y:.1}"));
            }
            area.push_str(&format!("L{:.1},{HEIGHT:.1}Z", last.0));
        }
        run.clear();
    };
    let mut previous: Option<i64> = None;
    for &(t, v) in points {
        if previous.is_some_and(|p| t - p > 2 * step.max(1)) {
            flush(&mut run);
        }
        run.push((x_of(t), y_of(v, scale)));
        previous = Some(t);
    }
    flush(&mut run);
    (line, area)
}

/// What a screen reader hears instead of the chart, and what the legend says in numbers.
pub fn summary(s: &UsageSeries, phrase: &str) -> String {
    let offered = format!("requested {} of {} {} allocatable", format_usage(s.requested), format_usage(s.allocatable), s.unit);
    match (s.latest(), s.peak()) {
        (Some(now), Some(peak)) => {
            format!("{} used {phrase}: now {} {unit}, peak {} {unit}; {offered}.", s.label, format_usage(now), format_usage(peak), unit = s.unit)
        }
        _ => format!("{}: no usage data {phrase}; {offered}.", s.label),
    }
}

#[component]
pub fn UsageChart(series: UsageSeries, start: i64, end: i64, step: i64, #[prop(into)] phrase: String) -> impl IntoView {
    let scale = series.scale();
    let (line, area) = paths(&series.points, start, end, step, scale);
    let text = summary(&series, &phrase);
    let label = text.clone();
    let requested_y = format!("{:.1}", y_of(series.requested, scale));
    let allocatable_y = format!("{:.1}", y_of(series.allocatable, scale));
    let now = series.latest().map(format_usage).unwrap_or_else(|| "–".into());
    view! {
        <figure class="space-y-2" data-chart=series.label.clone()>
            <figcaption class="flex items-baseline justify-between text-sm">
                <span class="font-medium text-slate-700 dark:text-slate-200">{series.label.clone()}</span>
                <span class="tabular-nums text-slate-600 dark:text-slate-400" data-testid="usage-now">
                    {format!("{now} / {} {}", format_usage(series.allocatable), series.unit)}
                </span>
            </figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img" aria-label=label
                class="block h-36 w-full rounded-lg bg-slate-50 dark:bg-slate-800/60">
                <title>{text}</title>
                <line x1="0" x2=WIDTH y1=allocatable_y.clone() y2=allocatable_y stroke="currentColor" stroke-dasharray="6 4"
                    vector-effect="non-scaling-stroke" class="text-slate-400"></line>
                <line x1="0" x2=WIDTH y1=requested_y.clone() y2=requested_y stroke="currentColor" stroke-dasharray="3 3"
                    vector-effect="non-scaling-stroke" class="text-amber-500"></line>
                <path d=area fill="currentColor" fill-opacity="0.15" class="text-indigo-500"></path>
                <path d=line fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"
                    vector-effect="non-scaling-stroke" class="text-indigo-500" data-testid="usage-line"></path>
            </svg>
            <div class="flex flex-wrap gap-x-4 gap-y-1 text-xs text-slate-600 dark:text-slate-400" aria-hidden="true">
                <span><span class="text-indigo-500">"━"</span>" used"</span>
                <span><span class="text-amber-500">"┅"</span>{format!(" requested {} {}", format_usage(series.requested), series.unit)}</span>
                <span><span class="text-slate-400">"┅"</span>{format!(" allocatable {} {}", format_usage(series.allocatable), series.unit)}</span>
            </div>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_the_data_is_a_gap_in_the_line() {
        let points = [(0, 0.0), (15, 1.0), (30, 2.0), (120, 1.0), (135, 1.0)];
        let (line, area) = paths(&points, 0, 150, 15, 2.0);
        assert_eq!(line, "M0.0,150.0L60.0,75.0L120.0,0.0M480.0,75.0L540.0,75.0");
        assert_eq!(area.matches('Z').count(), 2, "{area}");
        assert!(area.starts_with("M0.0,150.0L0.0,150.0L60.0,75.0"), "{area}");
        assert_eq!(paths(&[], 0, 150, 15, 2.0), (String::new(), String::new()));
    }

    #[test]
    fn values_above_the_scale_stay_inside_the_chart() {
        let (line, _) = paths(&[(0, 5.0), (15, -1.0)], 0, 15, 15, 2.0);
        assert_eq!(line, "M0.0,0.0L600.0,150.0");
    }

    #[test]
    fn the_text_alternative_says_what_the_chart_shows() {
        let s = UsageSeries { label: "CPU".into(), unit: "vCPU".into(), points: vec![(0, 0.3), (15, 0.55), (30, 0.42)], allocatable: 2.0, requested: 0.5 };
        assert_eq!(summary(&s, "over the last hour"), "CPU used over the last hour: now 0.42 vCPU, peak 0.55 vCPU; requested 0.50 of 2.0 vCPU allocatable.");
        let none = UsageSeries { points: vec![], ..s };
        assert_eq!(summary(&none, "over the last hour"), "CPU: no usage data over the last hour; requested 0.50 of 2.0 vCPU allocatable.");
        assert_eq!((format_usage(0.042), format_usage(3.24), format_usage(15.6)), ("0.04".into(), "3.2".into(), "16".into()));
    }
}
