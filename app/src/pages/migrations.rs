//! Workload Migration (use case steps 11-14, 5c4): the workspace's workloads on the shared pool,
//! the target dedicated node, a fit check, a dry run of every patch in order, and a phased plan
//! when the selection does not fit.

use leptos::prelude::*;
use leptos_meta::Title;

use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;

use crate::components::{Badge, Card, ErrorNotice, PageHeader, BUTTON_PRIMARY, BUTTON_SECONDARY, INPUT};
use crate::error::AppError;
use crate::model::{format_amount, MigratableWorkload, MigrationPlan, MigrationScreen, Role, TargetNode, Tone, WorkloadKey, WorkloadListing, MAX_FILTER_CHARS};
use crate::pages::layout::use_workspace_slug;

/// One page of the workspace's workloads (`filter` on name or namespace, `page` from 1), and
/// the nodes they can move to.
#[server(endpoint = "load_migration_screen")]
pub async fn load_migration_screen(workspace: String, filter: Option<String>, page: Option<u32>) -> Result<MigrationScreen, AppError> {
    use crate::context::*;
    let user = current_user()?;
    let query = crate::model::WorkloadQuery::new(filter, page).map_err(AppError::Invalid)?;
    backend()?.migration_screen(&user, &workspace, &query).await
}

/// `workloads` is a comma-separated list of `namespace/Kind/name`.
#[server(endpoint = "plan_migration")]
pub async fn plan_migration(workspace: String, node: String, workloads: String) -> Result<MigrationPlan, AppError> {
    use crate::context::*;
    let user = current_user()?;
    let keys = WorkloadKey::parse_list(&workloads).map_err(AppError::Invalid)?;
    backend()?.plan_migration(&user, &workspace, &node, &keys).await
}

/// What the user chose on the screen: the target node, the selected workloads and their plan.
/// It outlives a page of the list (workloads ticked on page 1 and on page 3 move together) and
/// is forgotten when the workspace changes.
#[derive(Clone, Copy)]
struct Choice {
    node: RwSignal<String>,
    selected: RwSignal<Vec<WorkloadKey>>,
    plan: Resource<Result<Option<MigrationPlan>, AppError>>,
}

impl Choice {
    fn new(slug: Memo<String>) -> Self {
        let node = RwSignal::new(String::new());
        let selected = RwSignal::new(Vec::<WorkloadKey>::new());
        Effect::watch(
            move || slug.get(),
            move |_, _, _| {
                node.set(String::new());
                selected.set(vec![]);
            },
            false,
        );
        let plan = Resource::new(
            move || (slug.get(), node.get(), WorkloadKey::join(&selected.get())),
            |(ws, n, k)| async move {
                if k.is_empty() || n.is_empty() {
                    Ok(None)
                } else {
                    plan_migration(ws, n, k).await.map(Some)
                }
            },
        );
        Self { node, selected, plan }
    }
}

#[component]
pub fn WorkloadMigrationPage() -> impl IntoView {
    let slug = use_workspace_slug();
    let query = use_query_map();
    let asked = move || query.with(|q| (q.get("filter"), q.get("page").and_then(|p| p.parse::<u32>().ok())));
    let screen = Resource::new(move || (slug.get(), asked()), |(ws, (filter, page))| load_migration_screen(ws, filter, page));
    let choice = Choice::new(slug);
    view! {
        <Title text="Workload Migration"/>
        <PageHeader title="Workload Migration" subtitle="Move production workloads from the shared pool onto a dedicated node without downtime."/>
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading workloads…"</p> }>
            {move || Suspend::new(async move {
                match screen.await {
                    Ok(s) => view! { <Migration s choice/> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Migration(s: MigrationScreen, choice: Choice) -> impl IntoView {
    if let Some(msg) = s.cluster_error.clone() {
        return view! { <ErrorNotice error=AppError::ClusterUnavailable(msg)/> }.into_any();
    }
    if s.nodes.is_empty() {
        let href = format!("/w/{}/nodes/new", s.workspace.slug);
        return view! {
            <Card title="No dedicated node yet">
                <p class="mb-4 text-sm text-slate-600 dark:text-slate-400">"Workloads move onto a Ready dedicated node of this workspace. Add one first."</p>
                <a class=BUTTON_PRIMARY href=href>"Add Dedicated Node"</a>
            </Card>
        }
        .into_any();
    }
    let Choice { node, selected, plan } = choice;
    // The first Ready node is the target until the user picks another (or theirs is gone).
    if !s.nodes.iter().any(|n| n.name == node.get_untracked()) {
        node.set(s.nodes[0].name.clone());
    }
    let ws = s.workspace.slug.clone();
    let list_action = format!("/w/{ws}/migrations");
    let nodes = s.nodes.clone();
    view! {
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                <Card title="Migratable applications and services">
                    <WorkloadFilter action=list_action listing=s.listing.clone() selected/>
                    <WorkloadTable workloads=s.workloads.clone() selected/>
                    <Pager listing=s.listing.clone()/>
                </Card>
                <Card title="Dry run: what will change, in order">
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            match plan.await {
                                Ok(Some(p)) => view! { <DryRun p/> }.into_any(),
                                Ok(None) => view! { <p class="text-sm text-slate-500">"Select workloads to see every change before anything is touched."</p> }.into_any(),
                                Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                            }
                        })}
                    </Transition>
                </Card>
            </div>
            <aside class="space-y-6">
                <Card title="Target dedicated node">
                    <label class="block">
                        <span class="mb-1 block text-sm font-medium">"Dedicated node"</span>
                        <select class=INPUT on:change=move |ev| node.set(event_target_value(&ev)) prop:value=move || node.get()>
                            {nodes.iter().map(|n| view! { <option value=n.name.clone()>{format!("{} ({}, {})", n.name, n.size, n.region)}</option> }).collect_view()}
                        </select>
                    </label>
                    {move || nodes.iter().find(|n| n.name == node.get()).cloned().map(|n| view! { <NodeRoom n/> })}
                </Card>
                <Card title="Fit check">
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            match plan.await {
                                Ok(Some(p)) => view! { <FitCheck p/> }.into_any(),
                                Ok(None) => view! { <p class="text-sm text-slate-500">"Nothing selected."</p> }.into_any(),
                                Err(_) => ().into_any(),
                            }
                        })}
                    </Transition>
                </Card>
                {view! { <StartMigration ws=ws.clone() role=s.workspace.role node selected plan guard=s.latency_guard_available/> }}
            </aside>
        </div>
    }
    .into_any()
}

/// The filter over the list (a GET form: it works before the page is interactive, and the
/// URL keeps it), with how many workloads it matches and how many are selected.
#[component]
fn WorkloadFilter(action: String, listing: WorkloadListing, selected: RwSignal<Vec<WorkloadKey>>) -> impl IntoView {
    let shown =
        if listing.filter.is_empty() { format!("{} workloads", listing.total) } else { format!("{} of {} workloads match", listing.matching, listing.total) };
    view! {
        <div class="mb-3 flex flex-wrap items-end justify-between gap-3">
            <Form method="GET" action attr:role="search" attr:class="flex items-end gap-2">
                <label class="block">
                    <span class="mb-1 block text-xs font-medium text-slate-600 dark:text-slate-400">"Filter by name or namespace"</span>
                    <input type="search" name="filter" class=INPUT value=listing.filter maxlength=MAX_FILTER_CHARS.to_string()/>
                </label>
                // A new filter starts at its first page.
                <button type="submit" name="page" value="1" class=BUTTON_SECONDARY>"Filter"</button>
            </Form>
            <p class="text-sm text-slate-600 dark:text-slate-400" aria-live="polite">
                {shown}
                {move || match selected.with(Vec::len) {
                    0 => String::new(),
                    n => format!(" · {n} selected"),
                }}
            </p>
        </div>
    }
}

/// Previous / next page of the list, keeping the filter.
#[component]
fn Pager(listing: WorkloadListing) -> impl IntoView {
    if listing.pages <= 1 {
        return ().into_any();
    }
    let href = move |page: u32| {
        let mut q = ParamsMap::new();
        if !listing.filter.is_empty() {
            q.insert("filter", listing.filter.clone());
        }
        q.insert("page", page.to_string());
        q.to_query_string()
    };
    let link = move |page: u32, text: &'static str, rel: &'static str| view! { <a class=BUTTON_SECONDARY href=href(page) rel=rel>{text}</a> };
    view! {
        <nav aria-label="Workload pages" class="mt-4 flex items-center justify-between gap-3 text-sm">
            {(listing.page > 1).then(|| link(listing.page - 1, "Previous", "prev"))}
            <span class="tabular-nums text-slate-600 dark:text-slate-400">{format!("Page {} of {}", listing.page, listing.pages)}</span>
            {(listing.page < listing.pages).then(|| link(listing.page + 1, "Next", "next"))}
        </nav>
    }
    .into_any()
}

#[component]
fn NodeRoom(n: TargetNode) -> impl IntoView {
    view! {
        <p class="mt-3 text-xs text-slate-600 dark:text-slate-400">
            {format!("{} of {} vCPU and {} of {} GiB already requested on this node.",
                format_amount(n.used_cpu), format_amount(n.allocatable_cpu), format_amount(n.used_memory_gib), format_amount(n.allocatable_memory_gib))}
        </p>
    }
}

#[component]
fn WorkloadTable(workloads: Vec<MigratableWorkload>, selected: RwSignal<Vec<WorkloadKey>>) -> impl IntoView {
    // Columns that matter less fold into the workload's cell on narrow screens, so every
    // column that is shown is whole at 1280 px, and a phone still reads each row.
    view! {
        <table class="w-full table-auto text-left text-sm">
            <thead class="text-xs uppercase tracking-wide text-slate-500">
                <tr>
                    <th class="w-8 py-2 pr-2"><span class="sr-only">"Select"</span></th>
                    <th class="py-2 pr-3">"Workload"</th>
                    <th class="hidden py-2 pr-3 sm:table-cell">"Replicas"</th>
                    <th class="hidden py-2 pr-3 md:table-cell">"Requests"</th>
                    <th class="hidden py-2 pr-3 2xl:table-cell">"Safeguards"</th>
                    <th class="py-2">"Zero downtime"</th>
                </tr>
            </thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {workloads.into_iter().map(|w| view! { <WorkloadRow w selected/> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn WorkloadRow(w: MigratableWorkload, selected: RwSignal<Vec<WorkloadKey>>) -> impl IntoView {
    let key = w.key.clone();
    let (key_checked, key_toggle) = (key.clone(), key.clone());
    let moved = w.on_node.clone();
    let label = format!("Migrate {} {} in {}", key.kind.as_str(), key.name, key.namespace);
    let requests = format!("{} vCPU · {} GiB", format_amount(w.cpu), format_amount(w.memory_gib));
    let safeguards =
        format!("Readiness probe: {} · Disruption budget: {}", if w.has_readiness_probe { "yes" } else { "no" }, if w.has_pdb { "yes" } else { "no" });
    view! {
        <tr data-workload=key.to_string()>
            <td class="py-3 pr-2 align-top">
                <input type="checkbox" aria-label=label disabled=moved.is_some()
                    class="mt-0.5 h-4 w-4 rounded border-slate-300 accent-indigo-600 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                    prop:checked=move || selected.get().contains(&key_checked)
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        let k = key_toggle.clone();
                        selected.update(|s| { s.retain(|x| x != &k); if on { s.push(k); } });
                    }/>
            </td>
            <td class="min-w-0 py-3 pr-3 align-top">
                <p class="break-words"><span class="font-medium">{key.name.clone()}</span><span class="ml-2 text-xs text-slate-500">{format!("{} · {}", key.kind.as_str(), key.namespace)}</span></p>
                <p class="text-xs text-slate-500 sm:hidden">{format!("{} replicas · {requests}", w.replicas)}</p>
                <p class="text-xs text-slate-500 2xl:hidden">{safeguards.clone()}</p>
                {moved.is_none().then(|| w.risks.iter().map(|r| view! { <p class="mt-1 break-words text-xs text-amber-800 dark:text-amber-300">{r.clone()}</p> }).collect_view())}
            </td>
            <td class="hidden py-3 pr-3 align-top tabular-nums sm:table-cell">{w.replicas}</td>
            <td class="hidden whitespace-nowrap py-3 pr-3 align-top tabular-nums md:table-cell">{requests}</td>
            <td class="hidden py-3 pr-3 align-top text-xs 2xl:table-cell">{safeguards}</td>
            <td class="py-3 align-top">
                {match moved {
                    Some(n) => view! { <Badge text="Moved" tone=Tone::Good/><p class="mt-1 break-all text-xs text-slate-500">{format!("On {n}")}</p> }.into_any(),
                    None if w.risks.is_empty() => view! { <Badge text="Guaranteed" tone=Tone::Good/> }.into_any(),
                    None => view! { <Badge text="At risk" tone=Tone::Busy/> }.into_any(),
                }}
            </td>
        </tr>
    }
}

#[component]
fn FitCheck(p: MigrationPlan) -> impl IntoView {
    view! {
        <div class="space-y-3 text-sm" data-testid="fit-check">
            <p class="tabular-nums">{format!("Needs {} vCPU · {} GiB (with surge) of {} vCPU · {} GiB free.",
                format_amount(p.need_cpu), format_amount(p.need_memory_gib), format_amount(p.free_cpu), format_amount(p.free_memory_gib))}</p>
            <p class="text-xs text-slate-500">{format!("A selection fits when the node's free room holds it with {}% headroom.", p.headroom_percent)}</p>
            {if p.fits {
                view! { <Badge text="Fits the node" tone=Tone::Good/> }.into_any()
            } else {
                view! {
                    <div role="alert" class="rounded-lg border border-amber-300 bg-amber-50 p-3 text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-200">
                        <p class="font-semibold">"Not enough room on this node"</p>
                        <p class="mt-1">{p.warning.clone().unwrap_or_default()}</p>
                    </div>
                }.into_any()
            }}
            {(p.phases.len() > 1).then(|| view! {
                <div data-testid="phased-plan">
                    <p class="mb-2 font-medium">"Phased plan"</p>
                    <ol class="space-y-2">
                        {p.phases.iter().enumerate().map(|(i, ph)| view! {
                            <li class="rounded-lg border border-slate-200 p-2 dark:border-slate-700">
                                <p class="text-xs font-semibold">{format!("Phase {}{}", i + 1, if ph.fits_now { " · fits now" } else { " · needs more room first" })}</p>
                                <p class="text-xs text-slate-600 dark:text-slate-400">{ph.workloads.iter().map(|k| k.name.clone()).collect::<Vec<_>>().join(", ")}</p>
                                <p class="text-xs tabular-nums text-slate-500">{format!("{} vCPU · {} GiB", format_amount(ph.cpu), format_amount(ph.memory_gib))}</p>
                            </li>
                        }).collect_view()}
                    </ol>
                </div>
            })}
        </div>
    }
}

#[component]
fn DryRun(p: MigrationPlan) -> impl IntoView {
    view! {
        <ol class="space-y-4" data-testid="dry-run">
            {p.steps.into_iter().map(|s| view! {
                <li>
                    <p class="text-sm font-semibold">{format!("{}. {} {} in {}", s.order, s.workload.kind.as_str(), s.workload.name, s.workload.namespace)}</p>
                    <ul class="mt-1 list-disc pl-5 text-sm text-slate-700 dark:text-slate-300">
                        {s.changes.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}
                    </ul>
                    <details class="mt-1">
                        <summary class="cursor-pointer text-xs text-indigo-600 dark:text-indigo-400">"Patch"</summary>
                        <pre class="mt-1 overflow-x-auto rounded-lg bg-slate-900 p-3 text-xs text-slate-100">{s.patch}</pre>
                    </details>
                </li>
            }).collect_view()}
        </ol>
    }
}

/// The button that starts the migration; wired to the migration engine in `migration_run`.
#[component]
fn StartMigration(
    ws: String,
    role: Role,
    node: RwSignal<String>,
    selected: RwSignal<Vec<WorkloadKey>>,
    plan: Resource<Result<Option<MigrationPlan>, AppError>>,
    guard: bool,
) -> impl IntoView {
    crate::pages::migration_run::start_migration_form(ws, role, node, selected, plan, guard)
}
