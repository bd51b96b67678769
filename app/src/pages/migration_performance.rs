//! The completion report's performance (use case step 16, "verifies application performance on
//! the new dedicated resources"): for each moved workload, p95 latency and CPU use over time
//! around its move, with the averages before and after. Rendered on the server; once hydrated
//! it reloads every [`REFRESH_SECONDS`](crate::components::REFRESH_SECONDS), so the
//! "after" fills in as the numbers arrive.

use leptos::prelude::*;

use crate::components::{loaded, refresh_while_open, Card, TrendChart};
use crate::error::AppError;
use crate::model::MigrationPerformance;

#[server(endpoint = "load_migration_performance")]
pub async fn load_migration_performance(workspace: String, namespace: String, name: String) -> Result<MigrationPerformance, AppError> {
    use crate::context::*;
    let (user, backend) = (current_user()?, backend()?);
    backend.migration_performance(&user, &workspace, &namespace, &name).await
}

#[component]
pub fn PerformanceCard(workspace: String, namespace: String, name: String) -> impl IntoView {
    let performance = Resource::new(|| (), move |_| load_migration_performance(workspace.clone(), namespace.clone(), name.clone()));
    refresh_while_open(performance);
    view! {
        <Card title="Performance before and after">
            {loaded(performance, "Loading performance…", |p| view! { <Trends p/> })}
        </Card>
    }
}

#[component]
fn Trends(p: MigrationPerformance) -> impl IntoView {
    let (start, end, step) = (p.start, p.end, p.step);
    view! {
        <div class="space-y-6" data-testid="performance">
            {p.unavailable.clone().map(|why| view! { <p class="text-sm text-amber-700 dark:text-amber-300" role="status">{why}</p> })}
            {p.workloads.into_iter().map(|w| {
                let moved = (w.moved_from, w.moved_to);
                let name = format!("{} {}", w.key.kind.as_str(), w.key.name);
                view! {
                    <div class="grid gap-6 md:grid-cols-2">
                        <TrendChart trend=w.latency workload=name.clone() judged=true moved start end step/>
                        <TrendChart trend=w.cpu workload=name judged=false moved start end step/>
                    </div>
                }
            }).collect_view()}
            <p class="text-xs text-slate-500">"From the cluster's Prometheus: the averages of the 30 minutes before each move and of the time since it finished. Improved is said only for a change of 10% or more."</p>
        </div>
    }
}
