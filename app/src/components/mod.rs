//! Small presentational pieces shared by the screens.

use leptos::prelude::*;

mod chart;
mod loaded;
mod trend_chart;
pub use chart::{format_usage, UsageChart};
pub use loaded::{loaded, refresh_while_open, REFRESH_SECONDS};
pub use trend_chart::{trend_summary, TrendChart};

use crate::error::AppError;
use crate::model::{format_amount, format_utc_time, Permission, Role, Tone, UsageBar};

#[component]
pub fn Card(#[prop(into)] title: String, children: Children) -> impl IntoView {
    view! {
        <section class="rounded-xl border border-slate-200 bg-white p-5 shadow-sm dark:border-slate-800 dark:bg-slate-900">
            <h2 class="mb-4 text-base font-semibold text-slate-900 dark:text-slate-100">{title}</h2>
            {children()}
        </section>
    }
}

#[component]
pub fn PageHeader(#[prop(into)] title: Signal<String>, #[prop(into)] subtitle: Signal<String>, #[prop(optional)] children: Option<Children>) -> impl IntoView {
    view! {
        <div class="mb-6 flex flex-wrap items-end justify-between gap-4">
            <div>
                <h1 class="text-2xl font-semibold tracking-tight">{title}</h1>
                <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">{subtitle}</p>
            </div>
            <div class="flex items-center gap-3">{children.map(|c| c())}</div>
        </div>
    }
}

/// A plain, actionable error box. The message is the error's own text.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    let title = match &error {
        AppError::Unauthenticated => "Signed out",
        AppError::NotFound(_) => "Not found",
        AppError::Forbidden(_) => "Not allowed",
        AppError::ClusterUnavailable(_) => "Cluster unreachable",
        AppError::Invalid(_) => "Please check your input",
        _ => "Something went wrong",
    };
    view! {
        <div role="alert" class="rounded-lg border border-rose-200 bg-rose-50 p-4 text-sm text-rose-800 dark:border-rose-900 dark:bg-rose-950 dark:text-rose-200">
            <p class="font-semibold">{title}</p>
            <p class="mt-1">{error.to_string()}</p>
        </div>
    }
}

/// A progress bar drawn as SVG: its width is an attribute, not an inline style, so pages need
/// no `style-src 'unsafe-inline'` in their Content-Security-Policy.
#[component]
pub fn Bar(#[prop(into)] percent: Signal<f64>, #[prop(into)] label: String, #[prop(optional, into)] fill: Option<String>) -> impl IntoView {
    let fill = fill.unwrap_or_else(|| "fill-indigo-500".into());
    view! {
        <svg class="block h-2 w-full" role="progressbar" aria-label=label aria-valuemin="0" aria-valuemax="100"
            aria-valuenow=move || format!("{:.0}", percent.get())>
            <rect width="100%" height="100%" rx="4" class="fill-slate-100 dark:fill-slate-800"></rect>
            <rect width=move || format!("{:.1}%", percent.get().clamp(0.0, 100.0)) height="100%" rx="4" class=fill></rect>
        </svg>
    }
}

/// A labelled bar with the numbers beside it: "CPU requests  2.5 / 8 vCPU".
#[component]
pub fn UsageMeter(bar: UsageBar) -> impl IntoView {
    let pct = bar.percent();
    let tone = if pct >= 90.0 {
        "fill-rose-500"
    } else if pct >= 70.0 {
        "fill-amber-500"
    } else {
        "fill-indigo-500"
    };
    let label = bar.label.clone();
    view! {
        <div class="space-y-1.5" data-meter=bar.label.clone()>
            <div class="flex items-baseline justify-between text-sm">
                <span class="font-medium text-slate-700 dark:text-slate-300">{label.clone()}</span>
                <span class="tabular-nums text-slate-600 dark:text-slate-400">
                    {format!("{} / {} {}", format_amount(bar.used), format_amount(bar.hard), bar.unit)}
                </span>
            </div>
            <Bar percent=pct label=label.clone() fill=tone/>
        </div>
    }
}

/// A short state word in the colour of what it means.
#[component]
pub fn Badge(#[prop(into)] text: String, tone: Tone) -> impl IntoView {
    let tone = match tone {
        Tone::Good => "bg-emerald-50 text-emerald-700 ring-emerald-600/20 dark:bg-emerald-950 dark:text-emerald-300",
        Tone::Busy => "bg-amber-50 text-amber-700 ring-amber-600/20 dark:bg-amber-950 dark:text-amber-300",
        Tone::Bad => "bg-rose-50 text-rose-700 ring-rose-600/20 dark:bg-rose-950 dark:text-rose-300",
        Tone::Neutral => "bg-slate-100 text-slate-700 ring-slate-500/20 dark:bg-slate-800 dark:text-slate-300",
    };
    view! {
        <span class=format!("inline-flex items-center whitespace-nowrap rounded-md px-2 py-0.5 text-xs font-medium ring-1 ring-inset {tone}")>{text}</span>
    }
}

/// A time of day in the reader's own time zone. The server renders it in UTC (it cannot know
/// the reader's zone); once hydrated the browser puts the local time in its place, after
/// hydration so the two renders never disagree.
#[component]
pub fn LocalTime(unix_ms: i64) -> impl IntoView {
    let text = RwSignal::new(format_utc_time(unix_ms));
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| text.set(local_time(unix_ms)));
    view! { <span class="tabular-nums">{move || text.get()}</span> }
}

/// "14:05:09" in the browser's time zone and locale.
#[cfg(feature = "hydrate")]
fn local_time(unix_ms: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix_ms as f64));
    String::from(date.to_locale_time_string("default"))
}

/// Unix seconds now, on either side.
pub fn now_unix() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        (js_sys::Date::now() / 1000.0) as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    }
}

/// Why the viewer's role may not do this, shown next to the disabled control (`None`: it may).
#[component]
pub fn RoleNotice(role: Role, permission: Permission) -> impl IntoView {
    (!role.may(permission)).then(|| view! { <p class="text-xs text-slate-500 dark:text-slate-400" data-testid="role-notice">{role.refusal(permission)}</p> })
}

/// Shared button looks, so every screen's buttons match.
pub const BUTTON_PRIMARY: &str = "inline-flex items-center justify-center gap-2 rounded-lg bg-indigo-600 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-indigo-500 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:cursor-not-allowed disabled:opacity-50 dark:focus-visible:ring-offset-slate-900";
pub const BUTTON_SECONDARY: &str = "inline-flex items-center justify-center gap-2 rounded-lg border border-slate-300 bg-white px-3 py-2 text-sm font-medium text-slate-700 hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:border-slate-700 dark:bg-slate-900 dark:text-slate-200 dark:hover:bg-slate-800";
pub const INPUT: &str = "block w-full rounded-lg border border-slate-300 bg-white px-3 py-2 text-sm shadow-sm placeholder:text-slate-400 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500/30 dark:border-slate-700 dark:bg-slate-900";
