//! Running a migration (use case steps 14-16, 5b, 5c4, 5d): Migrate to Dedicated Node (or save
//! a phased plan), live progress per workload over server-sent events, the measured lowest
//! available count, automatic rollback with its cause, pause on latency and resume.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::{Badge, Bar, Card, ErrorNotice, LocalTime, PageHeader, RoleNotice, BUTTON_PRIMARY, BUTTON_SECONDARY, INPUT};
use crate::error::AppError;
use crate::model::{
    count, format_amount, ControlAction, MigrationPlan, MigrationProgress, MigrationState, Permission, Role, WithRole, WorkloadKey, WorkloadProgress,
    WorkloadState,
};
use crate::pages::layout::use_workspace_slug;
use crate::pages::migration_performance::PerformanceCard;

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
    let user = current_user()?;
    let keys = WorkloadKey::parse_list(&workloads).map_err(AppError::Invalid)?;
    let guard = latency_guard.is_some().then(|| margin_percent.unwrap_or(50.0));
    let (namespace, name) = backend()?.start_migration(&user, &workspace, &node, &keys, phased.is_some(), guard).await?;
    leptos_axum::redirect(&migration_href(&workspace, &namespace, &name));
    Ok(())
}

#[server(endpoint = "load_migration_progress")]
pub async fn load_migration_progress(workspace: String, namespace: String, name: String) -> Result<WithRole<MigrationProgress>, AppError> {
    use crate::context::*;
    let (user, backend) = (current_user()?, backend()?);
    let item = backend.migration_progress(&user, &workspace, &namespace, &name).await?;
    Ok(WithRole { role: backend.role_in(&user, &workspace).await?, item })
}

/// `target` is the phase to approve (ApproveNext) or the attempt to start (Retry), as the page
/// showed it; `at` the time for ResumeAt.
#[server(endpoint = "control_migration")]
pub async fn control_migration(
    workspace: String,
    namespace: String,
    name: String,
    action: ControlAction,
    target: Option<u32>,
    at: Option<String>,
) -> Result<(), AppError> {
    use crate::context::*;
    let user = current_user()?;
    backend()?.control_migration(&user, &workspace, &namespace, &name, &crate::model::MigrationControl { action, target, at }).await
}

/// The page of one migration.
pub fn migration_href(workspace: &str, namespace: &str, name: &str) -> String {
    format!("/w/{workspace}/migrations/{namespace}/{name}")
}

pub fn start_migration_form(
    ws: String,
    role: Role,
    node: RwSignal<String>,
    selected: RwSignal<Vec<WorkloadKey>>,
    plan: Resource<Result<Option<MigrationPlan>, AppError>>,
    guard: bool,
) -> AnyView {
    let may = role.may(Permission::Migrate);
    let action = ServerAction::<StartMigration>::new();
    let error = move || action.value().get().and_then(|r| r.err());
    let phased_needed = move || plan.get().and_then(|r| r.ok()).flatten().is_some_and(|p| !p.fits && p.phases.len() > 1);
    view! {
        <ActionForm action attr:class="space-y-4">
            <input type="hidden" name="workspace" value=ws/>
            <input type="hidden" name="node" prop:value=move || node.get()/>
            <input type="hidden" name="workloads" prop:value=move || WorkloadKey::join(&selected.get())/>
            {if guard { view! { <Card title="Latency guard">
                <label class="flex items-start gap-2 text-sm">
                    <input type="checkbox" name="latency_guard" value="on" checked class="mt-0.5 h-4 w-4 rounded border-slate-300 accent-indigo-600"/>
                    <span>"Pause between workloads if p95 latency rises above the baseline by"</span>
                </label>
                <label class="mt-2 flex items-center gap-2 text-sm">
                    <input type="number" name="margin_percent" value="50" min="5" max="500" class=format!("{INPUT} w-24") aria-label="Latency margin in percent"/>
                    <span>"percent, for 3 intervals in a row."</span>
                </label>
            </Card> }.into_any() } else {
                view! { <p class="text-xs text-slate-500">"Latency guard: off (no metrics source is configured for this installation)."</p> }.into_any()
            }}
            {move || phased_needed().then(|| view! { <input type="hidden" name="phased" value="on"/> })}
            {move || error().map(|e| view! { <ErrorNotice error=e/> })}
            <button type="submit" class=format!("{BUTTON_PRIMARY} w-full") disabled=move || !may || selected.get().is_empty() || action.pending().get()>
                {move || if action.pending().get() { "Starting…" } else if phased_needed() { "Save phased plan and run phase 1" } else { "Migrate to Dedicated Node" }}
            </button>
            <RoleNotice role permission=Permission::Migrate/>
        </ActionForm>
    }
    .into_any()
}

#[component]
pub fn MigrationProgressPage() -> impl IntoView {
    let slug = use_workspace_slug();
    let params = use_params_map();
    let at = Memo::new(move |_| (params.read().get("namespace").unwrap_or_default(), params.read().get("name").unwrap_or_default()));
    let control = ServerAction::<ControlMigration>::new();
    let progress = Resource::new(move || (slug.get(), at.get(), control.version().get()), |(ws, (ns, n), _)| load_migration_progress(ws, ns, n));
    view! {
        <Title text="Migration"/>
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match progress.await {
                    Ok(p) => view! { <LiveMigration initial=p.item role=p.role control/> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn LiveMigration(initial: MigrationProgress, role: Role, control: ServerAction<ControlMigration>) -> impl IntoView {
    provide_context(role);
    let state = RwSignal::new(initial);
    #[cfg(feature = "hydrate")]
    follow(state);
    let p = move || state.get();
    let control_error = move || control.value().get().and_then(|r| r.err());
    view! {
        <PageHeader title=move || format!("Migration to {}", p().node) subtitle=move || format!("{} · {}", count(p().workloads.len() as i64, "workload", "workloads"), p().name)>
            <span data-testid="migration-phase">{move || view! { <Badge text=p().phase.label() tone=p().phase.tone()/> }}</span>
        </PageHeader>
        {move || control_error().map(|e| view! { <div class="mb-4"><ErrorNotice error=e/></div> })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                <Card title="Workloads">
                    <ol class="space-y-5" data-testid="migration-workloads" aria-live="polite">
                        {move || { let m = p(); m.workloads.iter().map(|w| view! { <WorkloadRow w=w.clone() node=m.node.clone()/> }).collect_view() }}
                    </ol>
                </Card>
            </div>
            <div class="space-y-6">
                {move || {
                    let m = p();
                    match m.phase {
                        MigrationState::Succeeded => view! { <CompletionReport m/> }.into_any(),
                        MigrationState::RolledBack | MigrationState::Failed => view! { <RollbackPanel m control/> }.into_any(),
                        MigrationState::Paused => view! { <PausedPanel m control/> }.into_any(),
                        MigrationState::WaitingForApproval => view! {
                            <Card title="Phase complete">
                                <p class="mb-4 text-sm text-slate-600 dark:text-slate-400">{format!("Phase {} of {} is done. Run the next phase when the node has room.", m.approved_phases, m.total_phases)}</p>
                                <ControlButton m=m.clone() action=ControlAction::ApproveNext target=Some(m.approved_phases + 1) control/>
                            </Card>
                        }.into_any(),
                        MigrationState::Pending | MigrationState::Running => view! { <Card title="Moving"><p class="text-sm text-slate-600 dark:text-slate-400">"New pods start on the dedicated node before old ones stop; the workload keeps serving."</p></Card> }.into_any(),
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
fn WorkloadRow(w: WorkloadProgress, node: String) -> impl IntoView {
    let on_node = match w.state {
        WorkloadState::Moving | WorkloadState::Moved | WorkloadState::RollingBack | WorkloadState::Failed => w.on_target,
        WorkloadState::Pending | WorkloadState::RolledBack => 0,
    };
    let pct = if w.desired > 0 { (f64::from(on_node.min(w.desired)) / f64::from(w.desired) * 100.0).round() } else { 0.0 };
    let title = format!("{} {}", w.key.kind.as_str(), w.key.name);
    view! {
        <li data-workload=w.key.to_string() data-state=w.state.as_str()>
            <div class="flex flex-wrap items-center justify-between gap-2 text-sm">
                <span class="font-medium">{title.clone()}<span class="ml-2 text-xs text-slate-500">{format!("{} · phase {}", w.key.namespace, w.phase_index)}</span></span>
                <Badge text=w.state.label() tone=w.state.tone()/>
            </div>
            <div class="mt-2"><Bar percent=pct label=format!("{title}: pods on {node}")/></div>
            <p class="mt-1 text-xs tabular-nums text-slate-600 dark:text-slate-400" data-testid="whereabouts">
                {w.whereabouts(&node)}
                {w.min_available_seen.map(|m| format!(" Lowest available during the move: {m} of {}.", w.desired))}
            </p>
            {w.message.clone().map(|m| view! { <p class="mt-1 text-xs text-slate-500">{m}</p> })}
        </li>
    }
}

#[component]
fn ControlButton(m: MigrationProgress, action: ControlAction, target: Option<u32>, control: ServerAction<ControlMigration>) -> impl IntoView {
    let role = expect_context::<Role>();
    view! {
        <ActionForm action=control>
            <input type="hidden" name="workspace" value=m.workspace/>
            <input type="hidden" name="namespace" value=m.namespace/>
            <input type="hidden" name="name" value=m.name/>
            <input type="hidden" name="action" value=action.as_str()/>
            {target.map(|t| view! { <input type="hidden" name="target" value=t.to_string()/> })}
            <button type="submit" class=BUTTON_PRIMARY disabled=move || !role.may(Permission::Migrate) || control.pending().get()>{action.label()}</button>
            <RoleNotice role permission=Permission::Migrate/>
        </ActionForm>
    }
}

#[component]
fn CompletionReport(m: MigrationProgress) -> impl IntoView {
    let verdict = match m.kept_availability() {
        Some(true) => "Zero downtime: no workload ever had fewer available replicas than desired.",
        Some(false) => "Some workloads dipped below their desired available replicas; see the numbers.",
        None => "Availability was not measured for every workload, so zero downtime is not confirmed.",
    };
    let (workspace, namespace, name) = (m.workspace.clone(), m.namespace.clone(), m.name.clone());
    view! {
        <Card title="Migration complete">
            <div class="space-y-3 text-sm" data-testid="completion-report">
                <p>{verdict}</p>
                <ul class="space-y-1">
                    {m.workloads.iter().map(|w| view! {
                        <li class="tabular-nums">{format!("{} {}: {}", w.key.kind.as_str(), w.key.name, w.availability())}</li>
                    }).collect_view()}
                </ul>
                {m.baseline_latency_ms.map(|b| view! { <p class="tabular-nums">{format!("p95 latency: {} ms before, {} ms now", format_amount(b), m.current_latency_ms.map(format_amount).unwrap_or_else(|| "–".into()))}</p> })}
                {match m.report.clone() {
                    Some(r) => view! {
                        <dl class="grid grid-cols-1 gap-3 rounded-lg bg-slate-50 p-3 sm:grid-cols-2 dark:bg-slate-800" data-testid="improvement">
                            <div>
                                <dt class="text-xs text-slate-500">"Before (when the migration started)"</dt>
                                <dd class="tabular-nums">{match &r.before {
                                    Some(b) => format!("{} of {} vCPU of shared-pool quota in use, on {} shared with {}; {} on the shared pool",
                                        format_amount(b.used_cpu), format_amount(b.quota_cpu), count(b.pool_nodes, "node", "nodes"),
                                        count(b.neighbour_workspaces, "other workspace", "other workspaces"), count(b.pods_on_shared_pool, "pod", "pods")),
                                    None => "not recorded for this migration".to_string(),
                                }}</dd>
                            </div>
                            <div>
                                <dt class="text-xs text-slate-500">"After (now)"</dt>
                                <dd class="tabular-nums">{format!("{} vCPU and {} GiB guaranteed on {}, {} vCPU requested", format_amount(r.node_cpu), format_amount(r.node_memory_gib), m.node, format_amount(r.requested_cpu))}</dd>
                            </div>
                            <div class="sm:col-span-2"><dt class="text-xs text-slate-500">"Pods of the moved workloads"</dt><dd class="tabular-nums">{format!("{} on the dedicated node, {} on the shared pool", r.pods_on_node, r.pods_on_shared_pool)}</dd></div>
                        </dl>
                    }.into_any(),
                    None => view! { <p>{format!("All pods of the moved workloads run on {}.", m.node)}</p> }.into_any(),
                }}
                <a class=BUTTON_SECONDARY href=format!("/w/{}/nodes", m.workspace)>"See the node in Node Management"</a>
            </div>
        </Card>
        <PerformanceCard workspace namespace name/>
    }
}

#[component]
fn RollbackPanel(m: MigrationProgress, control: ServerAction<ControlMigration>) -> impl IntoView {
    let title = if m.phase == MigrationState::RolledBack { "Rolled back" } else { "Migration failed" };
    let next_attempt = m.attempt + 1;
    view! {
        <Card title=title>
            <div role="alert" class="mb-4 rounded-lg border border-rose-200 bg-rose-50 p-3 text-sm text-rose-800 dark:border-rose-900 dark:bg-rose-950 dark:text-rose-200" data-testid="rollback-cause">
                <p class="font-semibold">{m.error_reason.clone().unwrap_or_else(|| "Migration failed".into())}</p>
                <p class="mt-1">{m.error_message.clone().unwrap_or_default()}</p>
            </div>
            <p class="mb-2 text-sm font-medium">"To fix it:"</p>
            <ol class="mb-4 list-decimal space-y-1 pl-5 text-sm text-slate-700 dark:text-slate-300">
                {m.troubleshooting.iter().map(|t| view! { <li>{t.clone()}</li> }).collect_view()}
            </ol>
            <ControlButton m=m.clone() action=ControlAction::Retry target=Some(next_attempt) control/>
        </Card>
    }
}

#[component]
fn PausedPanel(m: MigrationProgress, control: ServerAction<ControlMigration>) -> impl IntoView {
    let may = expect_context::<Role>().may(Permission::Migrate);
    view! {
        <Card title="Paused">
            <p role="status" class="mb-4 text-sm text-amber-800 dark:text-amber-300" data-testid="pause-reason">{m.pause_reason.clone().unwrap_or_else(|| "Paused by request.".into())}</p>
            {m.resume_at_ms.map(|t| view! { <p class="mb-3 text-xs text-slate-500">"Resumes automatically at "<LocalTime unix_ms=t/>"."</p> })}
            <div class="space-y-3">
                <ControlButton m=m.clone() action=ControlAction::Resume target=None control/>
                <ActionForm action=control attr:class="flex items-end gap-2">
                    <input type="hidden" name="workspace" value=m.workspace.clone()/>
                    <input type="hidden" name="namespace" value=m.namespace.clone()/>
                    <input type="hidden" name="name" value=m.name.clone()/>
                    <input type="hidden" name="action" value=ControlAction::ResumeAt.as_str()/>
                    <label class="flex-1 text-sm">
                        <span class="mb-1 block font-medium">"Resume at (UTC)"</span>
                        <input type="datetime-local" name="at" required class=INPUT/>
                    </label>
                    <button type="submit" class=BUTTON_SECONDARY disabled=!may>"Schedule"</button>
                </ActionForm>
            </div>
        </Card>
    }
}

#[cfg(feature = "hydrate")]
fn follow(state: RwSignal<MigrationProgress>) {
    use crate::live::{follow, Next};

    let start = state.get_untracked();
    if start.is_settled() {
        return;
    }
    let epoch = use_context::<crate::pages::layout::NotificationsEpoch>();
    let url = format!("/api/events{}", migration_href(&start.workspace, &start.namespace, &start.name));
    let on_update = move |update: MigrationProgress| {
        let settled = update.is_settled();
        // A disposed signal means the page is gone: stop listening.
        if state.try_set(update).is_some() || settled {
            Next::Stop
        } else {
            Next::Listen
        }
    };
    let reload = move || load_migration_progress(start.workspace.clone(), start.namespace.clone(), start.name.clone());
    leptos::task::spawn_local(async move {
        follow(&url, on_update, || async { reload().await.ok().map(|r| r.item) }).await;
        if state.try_with_untracked(|s| s.is_settled()) != Some(true) {
            return;
        }
        // The settled state's report (before/after numbers) is computed on request.
        if let Ok(full) = reload().await {
            let _ = state.try_set(full.item);
        }
        if let Some(e) = epoch {
            e.0.update(|v| *v += 1);
        }
    });
}
