//! A dedicated node's monitoring (use case step 16): CPU and memory used over the last hour,
//! day or week, against what the node offers and what its pods requested. Rendered on the
//! server; once hydrated the chosen range reloads every
//! [`REFRESH_SECONDS`](crate::components::REFRESH_SECONDS).

use leptos::prelude::*;

use crate::components::{loaded, refresh_while_open, Card, UsageChart};
use crate::error::AppError;
use crate::model::{NodeUsage, UsageRange};

#[server(endpoint = "load_node_usage")]
pub async fn load_node_usage(workspace: String, name: String, range: UsageRange) -> Result<NodeUsage, AppError> {
    use crate::context::*;
    let (user, backend) = (current_user()?, backend()?);
    backend.node_usage(&user, &workspace, &name, range).await
}

const RANGE_ON: &str = "rounded-md bg-white px-3 py-1 text-sm font-medium text-slate-900 shadow-sm focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:bg-slate-700 dark:text-white";
const RANGE_OFF: &str = "rounded-md px-3 py-1 text-sm font-medium text-slate-600 hover:text-slate-900 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:text-slate-400 dark:hover:text-white";

#[component]
pub fn NodeUsageCard(workspace: String, name: String) -> impl IntoView {
    let range = RwSignal::new(UsageRange::default());
    let usage = Resource::new(move || range.get(), move |r| load_node_usage(workspace.clone(), name.clone(), r));
    refresh_while_open(usage);
    view! {
        <Card title="Usage">
            <div class="mb-4 inline-flex rounded-lg bg-slate-100 p-1 dark:bg-slate-800" role="group" aria-label="Time range">
                {UsageRange::ALL.into_iter().map(|r| view! {
                    <button type="button" aria-pressed=move || (range.get() == r).to_string()
                        class=move || if range.get() == r { RANGE_ON } else { RANGE_OFF }
                        on:click=move |_| range.set(r)>{r.label()}</button>
                }).collect_view()}
            </div>
            {loaded(usage, "Loading usage…", |u| view! { <UsageCharts u/> })}
        </Card>
    }
}

#[component]
fn UsageCharts(u: NodeUsage) -> impl IntoView {
    let step = u.range.step_seconds();
    view! {
        <div data-testid="node-usage">
            {u.unavailable.clone().map(|why| view! { <p class="mb-4 text-sm text-amber-700 dark:text-amber-300" data-testid="usage-unavailable">{why}</p> })}
            <div class="grid gap-6 md:grid-cols-2">
                <UsageChart series=u.cpu start=u.start end=u.end step phrase=u.range.phrase()/>
                <UsageChart series=u.memory start=u.start end=u.end step phrase=u.range.phrase()/>
            </div>
        </div>
    }
}
