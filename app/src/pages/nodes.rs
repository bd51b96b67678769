//! Node Management (use case steps 1-2): what the workspace runs on the shared pool, live from
//! the cluster, what the shared pool does not give, and the workspace's dedicated nodes, with
//! failed requests apart until they are retried or dismissed.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{Badge, Card, ErrorNotice, PageHeader, RoleNotice, UsageMeter, BUTTON_PRIMARY, BUTTON_SECONDARY};
use crate::error::AppError;
use crate::model::{count, format_age, format_amount, DedicatedNodeSummary, NodeOverview, Permission, Plan, Role, SharedPoolUsage};
use crate::pages::layout::use_workspace_slug;

#[server(endpoint = "load_node_overview")]
pub async fn load_node_overview(workspace: String) -> Result<NodeOverview, AppError> {
    use crate::context::*;
    backend()?.node_overview(&current_user()?, &workspace).await
}

/// Deletes a dedicated node, or dismisses a failed request.
#[server(endpoint = "delete_dedicated_node")]
pub async fn delete_dedicated_node(workspace: String, name: String) -> Result<(), AppError> {
    use crate::context::*;
    backend()?.delete_dedicated_node(&current_user()?, &workspace, &name).await
}

#[component]
pub fn NodeManagementPage() -> impl IntoView {
    let slug = use_workspace_slug();
    let delete = ServerAction::<DeleteDedicatedNode>::new();
    provide_context(delete);
    let overview = Resource::new(move || (slug.get(), delete.version().get()), |(ws, _)| load_node_overview(ws));
    view! {
        <Title text="Node Management"/>
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading node usage…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => view! { <LiveOverview o/> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The overview as loaded, then as the server sends it after each change in the cluster
/// (server-sent events, once the page is interactive), until the page goes away.
#[component]
fn LiveOverview(o: NodeOverview) -> impl IntoView {
    let state = RwSignal::new(o);
    #[cfg(feature = "hydrate")]
    follow_overview(state);
    move || view! { <Overview o=state.get()/> }
}

/// The stream of `/api/events/w/{ws}/nodes`; closed when the page is left.
#[cfg(feature = "hydrate")]
fn follow_overview(state: RwSignal<NodeOverview>) {
    use crate::live::{follow, Next};
    use futures::future::{AbortHandle, Abortable};

    let ws = state.get_untracked().workspace.slug;
    let url = format!("/api/events/w/{ws}/nodes");
    let on_update = move |update: NodeOverview| if state.try_set(update).is_some() { Next::Stop } else { Next::Listen };
    let (stop, registration) = AbortHandle::new_pair();
    let reload = move || {
        let ws = ws.clone();
        async move { load_node_overview(ws).await.ok() }
    };
    leptos::task::spawn_local(async move {
        let _ = Abortable::new(follow(&url, on_update, reload), registration).await;
    });
    on_cleanup(move || stop.abort());
}

#[component]
fn Overview(o: NodeOverview) -> impl IntoView {
    let plan = o.workspace.plan;
    let role = o.workspace.role;
    provide_context(role);
    let add_href = format!("/w/{}/nodes/new", o.workspace.slug);
    let ws = o.workspace.slug.clone();
    view! {
        <PageHeader title="Node Management" subtitle=format!("{} · {} plan", o.workspace.name, plan.label())>
            {plan.allows_dedicated_nodes().then(|| if role.may(Permission::ManageNodes) {
                view! { <a href=add_href.clone() class=BUTTON_PRIMARY>"Add Dedicated Node"</a> }.into_any()
            } else {
                view! {
                    <div class="flex max-w-xs flex-col items-end gap-1">
                        <button type="button" disabled class=BUTTON_PRIMARY>"Add Dedicated Node"</button>
                        <RoleNotice role permission=Permission::ManageNodes/>
                    </div>
                }.into_any()
            })}
        </PageHeader>
        {o.cluster_error.clone().map(|msg| view! { <div class="mb-6"><ErrorNotice error=AppError::ClusterUnavailable(msg)/></div> })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="lg:col-span-2">
                <Card title="Shared node pool usage">
                    {match o.shared_pool.clone() {
                        Some(pool) => view! { <SharedPool pool/> }.into_any(),
                        None => view! { <p class="text-sm text-slate-500">"Usage is unavailable while the cluster cannot be reached."</p> }.into_any(),
                    }}
                </Card>
            </div>
            <Card title="Shared pool limitations">
                <ul class="space-y-3 text-sm text-slate-700 dark:text-slate-300">
                    <li><span class="font-medium">"Quota ceiling. "</span>"Your plan's shared-pool quota caps requests; a busy release can hit it."</li>
                    <li><span class="font-medium">"No isolation. "</span>"Your pods share nodes with other tenants' workloads (noisy neighbours)."</li>
                    <li><span class="font-medium">"No guaranteed CPU. "</span>"Bursts compete for the same cores, so latency varies with others' load."</li>
                </ul>
            </Card>
        </div>
        <div class="mt-6">
            <Card title="Dedicated nodes">
                {if !plan.allows_dedicated_nodes() {
                    view! { <UpgradeNotice plan/> }.into_any()
                } else if o.dedicated_nodes.is_empty() {
                    view! {
                        <div class="py-6 text-center">
                            <p class="text-sm text-slate-600 dark:text-slate-400">"No dedicated nodes yet. A dedicated node gives your production workloads guaranteed CPU and memory, isolated from other tenants."</p>
                        </div>
                    }.into_any()
                } else {
                    view! { <DedicatedNodeTable ws=o.workspace.slug.clone() nodes=o.dedicated_nodes.clone()/> }.into_any()
                }}
            </Card>
        </div>
        {(!o.failed_requests.is_empty()).then(move || view! {
            <div class="mt-6">
                <Card title="Failed requests">
                    <FailedRequests ws=ws failed=o.failed_requests/>
                </Card>
            </div>
        })}
    }
}

#[component]
fn SharedPool(pool: SharedPoolUsage) -> impl IntoView {
    view! {
        <div class="space-y-5" data-testid="shared-pool">
            <UsageMeter bar=pool.cpu/>
            <UsageMeter bar=pool.memory/>
            <UsageMeter bar=pool.pods/>
            <p class="text-xs text-slate-500 dark:text-slate-400">
                {format!("What your pods request on the shared pool, against your plan's shared-pool quota. Pods on your dedicated nodes do not count against it. The pool has {} shared with {}.",
                    count(pool.pool_nodes, "node", "nodes"), count(pool.neighbour_workspaces, "other workspace", "other workspaces"))}
            </p>
        </div>
    }
}

#[component]
fn UpgradeNotice(plan: Plan) -> impl IntoView {
    view! {
        <div class="rounded-lg border border-amber-200 bg-amber-50 p-4 text-sm dark:border-amber-900 dark:bg-amber-950" data-testid="upgrade-notice">
            <p class="font-semibold text-amber-900 dark:text-amber-200">{format!("Dedicated nodes are not part of the {} plan", plan.label())}</p>
            <p class="mt-1 text-amber-800 dark:text-amber-300">"Upgrade to Pro to add dedicated nodes: guaranteed CPU and memory, isolation from other tenants, and zero-downtime migration of your production workloads."</p>
        </div>
    }
}

const DANGER_LINK: &str = "rounded-lg px-2 py-1 text-sm text-rose-600 hover:bg-rose-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-rose-500 dark:text-rose-400 dark:hover:bg-rose-950 disabled:cursor-not-allowed disabled:opacity-40";

#[component]
fn DedicatedNodeTable(ws: String, nodes: Vec<DedicatedNodeSummary>) -> impl IntoView {
    let delete = expect_context::<ServerAction<DeleteDedicatedNode>>();
    let may = expect_context::<Role>().may(Permission::ManageNodes);
    let confirming = RwSignal::new(None::<String>);
    let delete_error = move || delete.value().get().and_then(|r| r.err());
    let ws_dialog = ws.clone();
    view! {
        {move || delete_error().map(|e| view! { <div class="mb-4"><ErrorNotice error=e/></div> })}
        {move || confirming.get().map(|name| view! { <ConfirmDelete ws=ws_dialog.clone() name confirming/> })}
        <div class="overflow-x-auto">
            <table class="min-w-full text-left text-sm">
                <thead class="text-xs uppercase tracking-wide text-slate-500">
                    <tr>
                        <th class="py-2 pr-4">"Node"</th><th class="py-2 pr-4">"Status"</th><th class="py-2 pr-4">"Size"</th>
                        <th class="py-2 pr-4">"Region"</th><th class="py-2 pr-4">"Age"</th><th class="py-2 pr-4">"CPU allocated"</th><th class="py-2 pr-4">"Memory allocated"</th><th class="py-2"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {nodes.into_iter().map(|n| {
                        let href = format!("/w/{ws}/nodes/{}", n.name);
                        let to_confirm = n.name.clone();
                        view! {
                            <tr data-node=n.name.clone()>
                                <td class="py-3 pr-4 font-medium"><a class="text-indigo-600 hover:underline dark:text-indigo-400" href=href>{n.name.clone()}</a></td>
                                <td class="py-3 pr-4"><Badge text=n.phase.label() tone=n.phase.tone()/></td>
                                <td class="py-3 pr-4">{n.size.clone()}</td>
                                <td class="py-3 pr-4">{n.region.clone()}</td>
                                <td class="py-3 pr-4 tabular-nums">{format_age(n.age_seconds)}</td>
                                <td class="py-3 pr-4 tabular-nums">{format!("{} / {} {}", format_amount(n.cpu.used), format_amount(n.cpu.hard), n.cpu.unit)}</td>
                                <td class="py-3 pr-4 tabular-nums">{format!("{} / {} {}", format_amount(n.memory.used), format_amount(n.memory.hard), n.memory.unit)}</td>
                                <td class="py-3 text-right">
                                    <button type="button" class=DANGER_LINK disabled=!may on:click=move |_| confirming.set(Some(to_confirm.clone()))>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Requests that failed (say, a sold-out region), each with what happened, a link to its
/// alternatives and a way to dismiss it. Retrying with an alternative removes it too.
#[component]
fn FailedRequests(ws: String, failed: Vec<DedicatedNodeSummary>) -> impl IntoView {
    let delete = expect_context::<ServerAction<DeleteDedicatedNode>>();
    let may = expect_context::<Role>().may(Permission::ManageNodes);
    view! {
        <ul class="divide-y divide-slate-100 dark:divide-slate-800" data-testid="failed-requests">
            {failed.into_iter().map(|n| {
                let href = format!("/w/{ws}/nodes/{}", n.name);
                let what = format!("{} in {}", n.size, n.region);
                let when = format!("{} · {} ago", n.name, format_age(n.age_seconds));
                let (ws, name, reason) = (ws.clone(), n.name.clone(), n.error_message.clone().unwrap_or_default());
                view! {
                    <li class="flex flex-wrap items-center justify-between gap-3 py-3" data-node=n.name>
                        <div class="min-w-0">
                            <p class="text-sm font-medium">{what}<span class="ml-2 text-xs font-normal text-slate-500">{when}</span></p>
                            <p class="text-xs text-rose-700 dark:text-rose-300">{reason}</p>
                        </div>
                        <div class="flex items-center gap-2">
                            <a class=BUTTON_SECONDARY href=href>"See alternatives"</a>
                            <ActionForm action=delete>
                                <input type="hidden" name="workspace" value=ws/>
                                <input type="hidden" name="name" value=name/>
                                <button type="submit" class=DANGER_LINK disabled=!may>"Dismiss"</button>
                            </ActionForm>
                        </div>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

/// Asks before deleting; Escape or Cancel closes, the focus starts on Cancel.
#[component]
fn ConfirmDelete(ws: String, name: String, confirming: RwSignal<Option<String>>) -> impl IntoView {
    let delete = expect_context::<ServerAction<DeleteDedicatedNode>>();
    let submitted = move |_| confirming.set(None);
    view! {
        <div class="fixed inset-0 z-40 flex items-center justify-center bg-slate-900/50 p-4" on:keydown=move |ev| if ev.key() == "Escape" { confirming.set(None) }>
            <div role="alertdialog" aria-modal="true" aria-labelledby="confirm-delete-title" class="w-full max-w-md rounded-xl bg-white p-6 shadow-xl dark:bg-slate-900">
                <h2 id="confirm-delete-title" class="text-lg font-semibold">{format!("Delete dedicated node {name}?")}</h2>
                <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">"The node and its capacity reservation are removed and billing stops. Nodes that still run workloads cannot be deleted."</p>
                <ActionForm action=delete on:submit=submitted attr:class="mt-6 flex justify-end gap-3">
                    <input type="hidden" name="workspace" value=ws/>
                    <input type="hidden" name="name" value=name.clone()/>
                    <button type="button" autofocus class=BUTTON_SECONDARY on:click=move |_| confirming.set(None)>"Cancel"</button>
                    <button type="submit" class="inline-flex items-center rounded-lg bg-rose-600 px-4 py-2 text-sm font-semibold text-white hover:bg-rose-500 focus:outline-none focus-visible:ring-2 focus-visible:ring-rose-500">"Delete node"</button>
                </ActionForm>
            </div>
        </div>
    }
}
