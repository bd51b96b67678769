//! A dedicated node's monitoring beside its usage (use case step 17): the pods on it by
//! workload, the Kubernetes Events of the Node and of its order, the Node's conditions and
//! the month's cost. One server function feeds every card; the page reloads it when the
//! provisioning progress moves and, once hydrated, every
//! [`REFRESH_SECONDS`](crate::components::REFRESH_SECONDS).

use leptos::prelude::*;

use crate::components::{loaded, refresh_while_open, Badge, Card, LocalTime};
use crate::error::AppError;
use crate::model::{count, format_amount, format_usd, format_utc_date, NodeConditionView, NodeCost, NodeDetails, NodeEventView, Tone, WorkloadOnNode};

#[server(endpoint = "load_node_details")]
pub async fn load_node_details(workspace: String, name: String) -> Result<NodeDetails, AppError> {
    use crate::context::*;
    let (user, backend) = (current_user()?, backend()?);
    backend.node_details(&user, &workspace, &name).await
}

pub type Details = Resource<Result<NodeDetails, AppError>>;

/// The node's details, reloaded whenever `moved` changes (a step, the phase) and every
/// [`REFRESH_SECONDS`](crate::components::REFRESH_SECONDS) once hydrated.
pub fn node_details<T: PartialEq + Clone + Send + Sync + 'static>(workspace: String, name: String, moved: Memo<T>) -> Details {
    let details = Resource::new(move || moved.get(), move |_| load_node_details(workspace.clone(), name.clone()));
    refresh_while_open(details);
    details
}

#[component]
pub fn NodePodsCard(details: Details) -> impl IntoView {
    view! {
        <Card title="Pods on this node">
            {loaded(details, "Loading…", |d| view! { <PodsByWorkload workloads=d.workloads other_pods=d.other_pods/> })}
        </Card>
    }
}

#[component]
fn PodsByWorkload(workloads: Vec<WorkloadOnNode>, other_pods: u32) -> impl IntoView {
    if workloads.is_empty() && other_pods == 0 {
        return view! { <p class="text-sm text-slate-600 dark:text-slate-400">"No pods run here yet. Move workloads onto the node with Workload Migration."</p> }.into_any();
    }
    view! {
        <table class="w-full text-sm" data-testid="node-pods">
            <thead class="text-left text-xs uppercase tracking-wide text-slate-500">
                <tr><th scope="col" class="pb-2 font-medium">"Workload"</th><th scope="col" class="pb-2 text-right font-medium">"Pods"</th>
                    <th scope="col" class="pb-2 text-right font-medium">"CPU requests"</th><th scope="col" class="pb-2 text-right font-medium">"Memory requests"</th></tr>
            </thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {workloads.into_iter().map(|w| view! {
                    <tr data-workload=w.key.name.clone()>
                        <td class="py-2"><span class="font-medium">{w.key.name.clone()}</span>
                            <span class="ml-2 text-xs text-slate-500">{format!("{} in {}", w.key.kind.label(), w.key.namespace)}</span></td>
                        <td class="py-2 text-right tabular-nums">{if w.running == w.pods { w.pods.to_string() } else { format!("{} of {} running", w.running, w.pods) }}</td>
                        <td class="py-2 text-right tabular-nums">{format!("{} vCPU", format_amount(w.cpu))}</td>
                        <td class="py-2 text-right tabular-nums">{format!("{} GiB", format_amount(w.memory_gib))}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        {(other_pods > 0).then(|| view! {
            <p class="mt-3 text-xs text-slate-500">{format!("And {} no workload of this workspace owns (daemons, bare pods).", count(other_pods, "pod", "pods"))}</p>
        })}
    }
    .into_any()
}

#[component]
pub fn NodeEventsCard(details: Details) -> impl IntoView {
    view! {
        <Card title="Events">
            {loaded(details, "Loading…", |d| view! { <EventList events=d.events unavailable=d.unavailable/> })}
        </Card>
    }
}

#[component]
fn EventList(events: Vec<NodeEventView>, unavailable: Option<String>) -> impl IntoView {
    view! {
        {unavailable.map(|why| view! { <p class="mb-3 text-sm text-amber-700 dark:text-amber-300" role="status">{why}</p> })}
        {if events.is_empty() {
            view! { <p class="text-sm text-slate-600 dark:text-slate-400">"No events in the last hour."</p> }.into_any()
        } else {
            view! {
                <ol class="space-y-3" data-testid="node-events">
                    {events.into_iter().map(|e| view! { <EventRow e/> }).collect_view()}
                </ol>
            }.into_any()
        }}
        <p class="mt-4 text-xs text-slate-500">"Kubernetes Events of the Node and of its order, newest first, as the cluster keeps them (an hour by default)."</p>
    }
}

#[component]
fn EventRow(e: NodeEventView) -> impl IntoView {
    let tone = if e.warning { Tone::Bad } else { Tone::Neutral };
    view! {
        <li class="flex items-start gap-3" data-reason=e.reason.clone() data-kind=e.object_kind.clone() data-warning=e.warning.to_string()>
            <span class="mt-0.5"><Badge text=if e.warning { "Warning" } else { "Normal" } tone/></span>
            <div class="min-w-0 flex-1">
                <p class="text-sm font-medium">{e.reason.clone()}
                    <span class="ml-2 text-xs font-normal text-slate-500">{format!("{} · {}", e.object_kind, e.source)}</span>
                    {(e.count > 1).then(|| view! { <span class="ml-2 text-xs font-normal text-slate-500">{format!("×{}", e.count)}</span> })}
                </p>
                <p class="break-words text-xs text-slate-600 dark:text-slate-400">{e.message.clone()}</p>
            </div>
            <span class="text-right text-xs text-slate-500">{e.at_ms.map(|t| view! { <LocalTime unix_ms=t/> })}</span>
        </li>
    }
}

#[component]
pub fn NodeHealthCards(details: Details) -> impl IntoView {
    view! {
        {loaded(details, "Loading…", |d| view! {
            {d.cost.map(|cost| view! { <CostCard cost/> })}
            {(!d.conditions.is_empty()).then(|| view! { <ConditionsCard conditions=d.conditions/> })}
        })}
    }
}

#[component]
fn CostCard(cost: NodeCost) -> impl IntoView {
    view! {
        <Card title="Cost this month">
            <dl class="grid grid-cols-2 gap-4" data-testid="node-cost">
                <div><dt class="text-xs text-slate-500">"So far"</dt><dd class="text-xl font-semibold tabular-nums">{format_usd(cost.so_far_usd)}</dd></div>
                <div><dt class="text-xs text-slate-500">"Projected by month end"</dt><dd class="text-xl font-semibold tabular-nums">{format_usd(cost.projected_usd)}</dd></div>
            </dl>
            <p class="mt-3 text-xs text-slate-500">{format!("At {}/hour since {} (UTC), if it keeps running.", format_usd(cost.hourly_usd), format_utc_date(cost.since_ms))}</p>
        </Card>
    }
}

#[component]
fn ConditionsCard(conditions: Vec<NodeConditionView>) -> impl IntoView {
    view! {
        <Card title="Conditions">
            <ul class="space-y-2" data-testid="node-conditions">
                {conditions.into_iter().map(|c| view! {
                    <li class="flex items-start justify-between gap-3" data-condition=c.type_.clone() data-status=c.status.clone()>
                        <div class="min-w-0">
                            <p class="text-sm font-medium">{c.type_.clone()}</p>
                            <p class="break-words text-xs text-slate-500">{if c.message.is_empty() { c.reason.clone() } else { c.message.clone() }}</p>
                        </div>
                        <Badge text=c.status.clone() tone=if c.healthy { Tone::Good } else { Tone::Bad }/>
                    </li>
                }).collect_view()}
            </ul>
        </Card>
    }
}
