//! Running a migration (use case steps 14-16, 5b, 5c4, 5d): Migrate to Dedicated Node (or save
//! a phased plan), live progress per workload over server-sent events, the measured lowest
//! available count, automatic rollback with its cause, pause on latency and resume.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::{Badge, Card, ErrorNotice, PageHeader, BUTTON_PRIMARY, BUTTON_SECONDARY, INPUT};
use crate::error::AppError;
use crate::model::{format_amount, MigrationPlan, MigrationProgress, WorkloadProgress};
use crate::pages::layout::use_workspace_slug;

#[server(endpoint = "start_migration")]
pub async fn start_migration(
    workspace: String,
    node: String,
    workloads: String,
    phased: Option<String>,
    latency_guard: Option<String>,
    margin_percent: Option<f64>,
) -> Result<(), AppError> {
    use crate::context::*;
    let keys = crate::pages::migrations::split_keys(&workloads);
    let guard = latency_guard.is_some().then(|| margin_percent.unwrap_or(50.0));
    let name = backend()?.start_migration(&current_user()?, &workspace, &node, &keys, phased.is_some(), guard).await?;
    leptos_axum::redirect(&format!("/w/{workspace}/migrations/{name}"));
    Ok(())
}

#[server(endpoint = "load_migration_progress")]
pub async fn load_migration_progress(workspace: String, name: String) -> Result<MigrationProgress, AppError> {
    use crate::context::*;
    backend()?.migration_progress(&current_user()?, &workspace, &name).await
}

/// `action` is one of "resume", "resume_at", "approve_next", "retry".
#[server(endpoint = "control_migration")]
pub async fn control_migration(workspace: String, name: String, action: String, at: Option<String>) -> Result<(), AppError> {
    use crate::context::*;
    backend()?.control_migration(&current_user()?, &workspace, &name, &action, at.as_deref()).await
}

pub fn start_migration_form(ws: String, node: RwSignal<String>, selected: RwSignal<Vec<String>>, plan: Resource<Result<Option<MigrationPlan>, AppError>>, guard: bool) -> AnyView {
    let action = ServerAction::<StartMigration>::new();
    let error = move || action.value().get().and_then(|r| r.err());
    let phased_needed = move || plan.get().and_then(|r| r.ok()).flatten().is_some_and(|p| !p.fits && p.phases.len() > 1);
    view! {
        <ActionForm action attr:class="space-y-4">
            <input type="hidden" name="workspace" value=ws/>
            <input type="hidden" name="node" prop:value=move || node.get()/>
            <input type="hidden" name="workloads" prop:value=move || selected.get().join(",")/>
            {if guard { view! { <Card title="Latency guard">
                <label class="flex items-start gap-2 text-sm">
                    <input type="checkbox" name="latency_guard" value="on" checked class="mt-0.5 h-4 w-4 rounded border-slate-300 text-indigo-600"/>
                    <span>"Pause between workloads if p95 latency rises above the baseline by"</span>
                </label>
                <label class="mt-2 flex items-center gap-2 text-sm">
                    <input type="number" name="margin_percent" value="50" min="5" max="500" class=format!("{INPUT} w-24")/>
                    <span>"percent, for 3 intervals in a row."</span>
                </label>
            </Card> }.into_any() } else {
                view! { <p class="text-xs text-slate-500">"Latency guard: off (no metrics source is configured for this installation)."</p> }.into_any()
            }}
            {move || phased_needed().then(|| view! { <input type="hidden" name="phased" value="on"/> })}
            {move || error().map(|e| view! { <ErrorNotice error=e/> })}
            <button type="submit" class=format!("{BUTTON_PRIMARY} w-full") disabled=move || selected.get().is_empty() || action.pending().get()>
                {move || if action.pending().get() { "Starting…" } else if phased_needed() { "Save phased plan and run phase 1" } else { "Migrate to Dedicated Node" }}
            </button>
        </ActionForm>
    }
    .into_any()
}

#[component]
pub fn MigrationProgressPage() -> impl IntoView {
    let slug = use_workspace_slug();
    let params = use_params_map();
    let name = Memo::new(move |_| params.read().get("name").unwrap_or_default());
    let control = ServerAction::<ControlMigration>::new();
    let progress = Resource::new(move || (slug.get(), name.get(), control.version().get()), |(ws, n, _)| load_migration_progress(ws, n));
    view! {
        <Title text="Migration"/>
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match progress.await {
                    Ok(p) => view! { <LiveMigration initial=p control/> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

fn tone(phase: &str) -> &'static str {
    match phase {
        "Succeeded" => "green",
        "RolledBack" | "Failed" => "red",
        _ => "amber",
    }
}

#[component]
fn LiveMigration(initial: MigrationProgress, control: ServerAction<ControlMigration>) -> impl IntoView {
    let state = RwSignal::new(initial);
    #[cfg(feature = "hydrate")]
    follow(state);
    let p = move || state.get();
    let control_error = move || control.value().get().and_then(|r| r.err());
    view! {
        <PageHeader title=move || format!("Migration to {}", p().node) subtitle=move || format!("{} workload(s) in {}", p().workloads.len(), p().namespace)>
            <span data-testid="migration-phase">{move || view! { <Badge text=p().phase tone=tone(&p().phase)/> }}</span>
        </PageHeader>
        {move || control_error().map(|e| view! { <div class="mb-4"><ErrorNotice error=e/></div> })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                <Card title="Workloads">
                    <ol class="space-y-5" data-testid="migration-workloads">
                        {move || p().workloads.into_iter().map(|w| view! { <WorkloadRow w/> }).collect_view()}
                    </ol>
                </Card>
            </div>
            <div class="space-y-6">
                {move || {
                    let m = p();
                    let ws = m.workspace.clone();
                    let name = m.name.clone();
                    match m.phase.as_str() {
                        "Succeeded" => view! { <CompletionReport m/> }.into_any(),
                        "RolledBack" | "Failed" => view! { <RollbackPanel m control/> }.into_any(),
                        "Paused" => view! { <PausedPanel m control/> }.into_any(),
                        "WaitingForApproval" => view! {
                            <Card title="Phase complete">
                                <p class="mb-4 text-sm text-slate-600 dark:text-slate-400">{format!("Phase {} of {} is done. Run the next phase when the node has room.", m.approved_phases, m.total_phases)}</p>
                                <ControlButton ws name action="approve_next" label="Run next phase" control/>
                            </Card>
                        }.into_any(),
                        _ => view! { <Card title="Moving"><p class="text-sm text-slate-600 dark:text-slate-400">"New pods start on the dedicated node before old ones stop; the workload keeps serving."</p></Card> }.into_any(),
                    }
                }}
                {move || p().baseline_latency_ms.map(|b| view! {
                    <Card title="Latency (p95)">
                        <p class="text-sm tabular-nums" data-testid="latency">{format!("Baseline {} ms · now {} ms", format_amount(b), p().current_latency_ms.map(format_amount).unwrap_or_else(|| "–".into()))}</p>
                    </Card>
                })}
            </div>
        </div>
    }
}

#[component]
fn WorkloadRow(w: WorkloadProgress) -> impl IntoView {
    let pct = if w.desired > 0 { (w.updated.min(w.desired) as f64 / w.desired as f64 * 100.0).round() } else { 0.0 };
    view! {
        <li data-workload=w.key.clone() data-state=w.state.clone()>
            <div class="flex items-center justify-between text-sm">
                <span class="font-medium">{w.key.clone()}<span class="ml-2 text-xs text-slate-500">{format!("phase {}", w.phase_index)}</span></span>
                <Badge text=w.state.clone() tone=tone(match w.state.as_str() { "Moved" => "Succeeded", "RolledBack" | "Failed" => "Failed", _ => "" })/>
            </div>
            <div class="mt-2 h-2 w-full overflow-hidden rounded-full bg-slate-100 dark:bg-slate-800" role="progressbar" aria-label=format!("{} progress", w.key) aria-valuenow=pct.to_string() aria-valuemin="0" aria-valuemax="100">
                <div class="h-2 rounded-full bg-indigo-500 transition-all" style=format!("width: {pct}%")></div>
            </div>
            <p class="mt-1 text-xs tabular-nums text-slate-600 dark:text-slate-400">
                {format!("{} of {} on the dedicated node · {} ready · {} available", w.updated, w.desired, w.ready, w.available)}
                {w.min_available_seen.map(|m| format!(" · lowest available during the move: {m} of {}", w.desired))}
            </p>
            {w.message.map(|m| view! { <p class="mt-1 text-xs text-slate-500">{m}</p> })}
        </li>
    }
}

#[component]
fn ControlButton(ws: String, name: String, action: &'static str, label: &'static str, control: ServerAction<ControlMigration>) -> impl IntoView {
    view! {
        <ActionForm action=control>
            <input type="hidden" name="workspace" value=ws/>
            <input type="hidden" name="name" value=name/>
            <input type="hidden" name="action" value=action/>
            <button type="submit" class=BUTTON_PRIMARY>{label}</button>
        </ActionForm>
    }
}

#[component]
fn CompletionReport(m: MigrationProgress) -> impl IntoView {
    let zero_downtime = m.workloads.iter().all(|w| w.min_available_seen.is_none_or(|min| min >= w.desired));
    view! {
        <Card title="Migration complete">
            <div class="space-y-3 text-sm" data-testid="completion-report">
                <p>{if zero_downtime { "Zero downtime: no workload ever had fewer available replicas than desired." } else { "Some workloads dipped below their desired available replicas; see the numbers." }}</p>
                <ul class="space-y-1">
                    {m.workloads.iter().map(|w| view! {
                        <li class="tabular-nums">{format!("{}: lowest available {} of {} desired", w.key, w.min_available_seen.unwrap_or(w.available), w.desired)}</li>
                    }).collect_view()}
                </ul>
                {m.baseline_latency_ms.map(|b| view! { <p class="tabular-nums">{format!("p95 latency: {} ms before, {} ms now", format_amount(b), m.current_latency_ms.map(format_amount).unwrap_or_else(|| "–".into()))}</p> })}
                {match m.report.clone() {
                    Some(r) => view! {
                        <dl class="grid grid-cols-2 gap-3 rounded-lg bg-slate-50 p-3 dark:bg-slate-800" data-testid="improvement">
                            <div><dt class="text-xs text-slate-500">"Before"</dt><dd class="tabular-nums">{format!("a share of a {} vCPU quota on nodes shared with {} other workspace(s)", format_amount(r.quota_cpu), r.neighbour_workspaces)}</dd></div>
                            <div><dt class="text-xs text-slate-500">"After"</dt><dd class="tabular-nums">{format!("{} vCPU and {} GiB guaranteed on {}, {} vCPU requested", format_amount(r.node_cpu), format_amount(r.node_memory_gib), m.node, format_amount(r.requested_cpu))}</dd></div>
                            <div class="col-span-2"><dt class="text-xs text-slate-500">"Pods"</dt><dd class="tabular-nums">{format!("{} on the dedicated node, {} still on the shared pool", r.pods_on_node, r.pods_on_shared_pool)}</dd></div>
                        </dl>
                    }.into_any(),
                    None => view! { <p>{format!("All pods of the moved workloads run on {}.", m.node)}</p> }.into_any(),
                }}
                <a class=BUTTON_SECONDARY href=format!("/w/{}/nodes", m.workspace)>"See the node in Node Management"</a>
            </div>
        </Card>
    }
}

#[component]
fn RollbackPanel(m: MigrationProgress, control: ServerAction<ControlMigration>) -> impl IntoView {
    view! {
        <Card title="Rolled back">
            <div role="alert" class="mb-4 rounded-lg border border-rose-200 bg-rose-50 p-3 text-sm text-rose-800 dark:border-rose-900 dark:bg-rose-950 dark:text-rose-200" data-testid="rollback-cause">
                <p class="font-semibold">{m.error_reason.clone().unwrap_or_else(|| "Migration failed".into())}</p>
                <p class="mt-1">{m.error_message.clone().unwrap_or_default()}</p>
            </div>
            <p class="mb-2 text-sm font-medium">"Your workloads run as before. To fix it:"</p>
            <ol class="mb-4 list-decimal space-y-1 pl-5 text-sm text-slate-700 dark:text-slate-300">
                {m.troubleshooting.iter().map(|t| view! { <li>{t.clone()}</li> }).collect_view()}
            </ol>
            <ControlButton ws=m.workspace.clone() name=m.name.clone() action="retry" label="Retry migration" control/>
        </Card>
    }
}

#[component]
fn PausedPanel(m: MigrationProgress, control: ServerAction<ControlMigration>) -> impl IntoView {
    view! {
        <Card title="Paused">
            <p role="status" class="mb-4 text-sm text-amber-800 dark:text-amber-300" data-testid="pause-reason">{m.pause_reason.clone().unwrap_or_else(|| "Paused by request.".into())}</p>
            {m.resume_at.clone().map(|t| view! { <p class="mb-3 text-xs text-slate-500">{format!("Resumes automatically at {t}.")}</p> })}
            <div class="space-y-3">
                <ControlButton ws=m.workspace.clone() name=m.name.clone() action="resume" label="Resume now" control/>
                <ActionForm action=control attr:class="flex items-end gap-2">
                    <input type="hidden" name="workspace" value=m.workspace.clone()/>
                    <input type="hidden" name="name" value=m.name.clone()/>
                    <input type="hidden" name="action" value="resume_at"/>
                    <label class="flex-1 text-sm">
                        <span class="mb-1 block font-medium">"Resume at (UTC)"</span>
                        <input type="datetime-local" name="at" required class=INPUT/>
                    </label>
                    <button type="submit" class=BUTTON_SECONDARY>"Schedule"</button>
                </ActionForm>
            </div>
        </Card>
    }
}

#[cfg(feature = "hydrate")]
fn follow(state: RwSignal<MigrationProgress>) {
    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;

    let start = state.get_untracked();
    if start.is_settled() {
        return;
    }
    let epoch = use_context::<crate::pages::layout::NotificationsEpoch>();
    let url = format!("/api/events/w/{}/migrations/{}", start.workspace, start.name);
    leptos::task::spawn_local(async move {
        let Ok(mut source) = EventSource::new(&url) else { return };
        let Ok(mut stream) = source.subscribe("progress") else { return };
        while let Some(Ok((_, msg))) = stream.next().await {
            let Some(text) = msg.data().as_string() else { continue };
            let Ok(update) = serde_json::from_str::<MigrationProgress>(&text) else { continue };
            let settled = update.is_settled();
            let (ws, name) = (update.workspace.clone(), update.name.clone());
            if state.try_set(update).is_some() {
                break;
            }
            if settled {
                // The settled state's report (before/after numbers) is computed on request.
                if let Ok(full) = load_migration_progress(ws, name).await {
                    let _ = state.try_set(full);
                }
                if let Some(e) = epoch {
                    e.0.update(|v| *v += 1);
                }
                break;
            }
        }
        source.close();
    });
}
