//! A dedicated node's provisioning, live (use case steps 8-10 and 5a): the steps advance over
//! server-sent events; Ready brings a notification; a capacity failure shows the error and
//! the alternatives that have room, each one click away.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::{Badge, Bar, Card, ErrorNotice, LocalTime, PageHeader, RoleNotice, BUTTON_PRIMARY, BUTTON_SECONDARY};
use crate::error::AppError;
use crate::model::{format_duration_ms, format_usd, NodePhase, NodeProgress, Permission, Role, StepState, StepView, WithRole};
use crate::pages::add_node::StartProvisioning;
use crate::pages::layout::use_workspace_slug;
use crate::pages::node_details::{node_details, NodeEventsCard, NodeHealthCards, NodePodsCard};
use crate::pages::node_usage::NodeUsageCard;

#[server(endpoint = "load_node_progress")]
pub async fn load_node_progress(workspace: String, name: String) -> Result<WithRole<NodeProgress>, AppError> {
    use crate::context::*;
    let (user, backend) = (current_user()?, backend()?);
    let item = backend.node_progress(&user, &workspace, &name).await?;
    Ok(WithRole { role: backend.role_in(&user, &workspace).await?, item })
}

/// Where the browser reads the live stream of a node's progress.
pub fn events_url(workspace: &str, name: &str) -> String {
    format!("/api/events/w/{workspace}/nodes/{name}")
}

#[component]
pub fn NodeProgressPage() -> impl IntoView {
    let slug = use_workspace_slug();
    let params = use_params_map();
    let name = Memo::new(move |_| params.read().get("name").unwrap_or_default());
    let progress = Resource::new(move || (slug.get(), name.get()), |(ws, n)| load_node_progress(ws, n));
    view! {
        <Title text="Provisioning"/>
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match progress.await {
                    Ok(p) => view! { <LiveProgress initial=p.item role=p.role/> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn LiveProgress(initial: NodeProgress, role: Role) -> impl IntoView {
    let state = RwSignal::new(initial);
    let just_ready = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    follow_events(state, just_ready);
    let p = move || state.get();
    let ready = Memo::new(move |_| state.with(|s| s.phase == NodePhase::Ready));
    // Events, conditions and pods change as the steps do.
    let moved = Memo::new(move |_| state.with(|s| (s.phase, s.progress)));
    let details = state.with_untracked(|s| node_details(s.workspace.clone(), s.name.clone(), moved));
    view! {
        <PageHeader title=move || format!("Dedicated node {}", p().name) subtitle=move || format!("{} in {}", p().size, p().region)>
            <span data-testid="phase">{move || view! { <Badge text=p().phase.label() tone=p().phase.tone()/> }}</span>
        </PageHeader>
        {move || just_ready.get().then(|| view! { <ReadyToast p=p()/> })}
        <div class="grid gap-6 lg:grid-cols-3">
            <div class="space-y-6 lg:col-span-2">
                // Monitoring, once there is a node to watch (created once, not on every update).
                {move || ready.get().then(|| {
                    let (workspace, name) = state.with_untracked(|s| (s.workspace.clone(), s.name.clone()));
                    view! { <NodeUsageCard workspace name/> <NodePodsCard details/> }
                })}
                <Card title="Provisioning progress">
                    <div class="mb-5"><Bar percent=Signal::derive(move || f64::from(p().progress)) label="Provisioning progress"/></div>
                    // Screen readers hear each step as it changes.
                    <p class="sr-only" aria-live="polite">{move || current_step(&p())}</p>
                    <ol class="space-y-4" data-testid="steps">
                        {move || p().steps.into_iter().map(|s| view! { <Step s/> }).collect_view()}
                    </ol>
                </Card>
                <NodeEventsCard details/>
            </div>
            <div class="space-y-6">
                {move || (p().phase == NodePhase::Failed).then(|| view! { <FailurePanel p=p() role/> })}
                {move || (p().phase == NodePhase::Ready).then(|| {
                    let ws = p().workspace;
                    view! {
                        <Card title="Next: move your workloads">
                            <p class="mb-4 text-sm text-slate-600 dark:text-slate-400">"The node is ready. Move your production deployment onto it without downtime."</p>
                            <a class=BUTTON_PRIMARY href=format!("/w/{ws}/migrations")>"Workload Migration"</a>
                        </Card>
                    }
                })}
                <NodeHealthCards details/>
            </div>
        </div>
    }
}

/// What a screen reader announces: the step in progress, or how provisioning ended.
fn current_step(p: &NodeProgress) -> String {
    match p.steps.iter().find(|s| matches!(s.state, StepState::Running | StepState::Failed)) {
        Some(s) => format!("{}: {}", s.name.label(), s.state.label()),
        None => format!("Provisioning {}", p.phase.label()),
    }
}

#[component]
fn Step(s: StepView) -> impl IntoView {
    let dot = match s.state {
        StepState::Done => "bg-emerald-500",
        StepState::Running => "bg-indigo-500 animate-pulse",
        StepState::Failed => "bg-rose-500",
        StepState::Pending => "bg-slate-300 dark:bg-slate-600",
    };
    let took = s.duration_ms().map(|ms| format!("took {}", format_duration_ms(ms)));
    let when = s.finished_at_ms.or(s.started_at_ms);
    view! {
        <li class="flex items-start gap-3" data-step=s.name.as_str() data-state=s.state.as_str()>
            <span class=format!("mt-1.5 h-2.5 w-2.5 shrink-0 rounded-full {dot}") aria-hidden="true"></span>
            <div class="flex-1">
                <p class="text-sm font-medium">{s.name.label()}<span class="ml-2 text-xs font-normal text-slate-500">{s.state.label()}</span></p>
                {s.message.clone().map(|m| view! { <p class="text-xs text-slate-600 dark:text-slate-400">{m}</p> })}
            </div>
            <span class="text-right text-xs text-slate-500">
                {when.map(|t| view! { <LocalTime unix_ms=t/> })}
                {took.map(|t| view! { <span class="block">{t}</span> })}
            </span>
        </li>
    }
}

#[component]
fn FailurePanel(p: NodeProgress, role: Role) -> impl IntoView {
    let may = role.may(Permission::ManageNodes);
    let retry = ServerAction::<StartProvisioning>::new();
    let retry_error = move || retry.value().get().and_then(|r| r.err());
    let (ws, failed) = (p.workspace.clone(), p.name.clone());
    let alternatives = p.alternatives.clone();
    view! {
        <Card title="Provisioning failed">
            <div role="alert" class="mb-4 rounded-lg border border-rose-200 bg-rose-50 p-3 text-sm text-rose-800 dark:border-rose-900 dark:bg-rose-950 dark:text-rose-200">
                <p class="font-semibold">{p.error_reason.clone().unwrap_or_else(|| "Error".into())}</p>
                <p class="mt-1">{p.error_message.clone().unwrap_or_default()}</p>
            </div>
            {if alternatives.is_empty() {
                view! { <p class="text-sm text-slate-600 dark:text-slate-400">"No region or size has room right now. Try again later."</p> }.into_any()
            } else {
                view! {
                    <p class="mb-3 text-sm font-medium">"These have room now:"</p>
                    <div class="space-y-2" data-testid="alternatives">
                        {alternatives.into_iter().map(|a| {
                            let (ws, failed) = (ws.clone(), failed.clone());
                            view! {
                            <ActionForm action=retry>
                                <input type="hidden" name="workspace" value=ws.clone()/>
                                <input type="hidden" name="size" value=a.size.clone()/>
                                <input type="hidden" name="region" value=a.region.clone()/>
                                <input type="hidden" name="replaces" value=failed.clone()/>
                                <button type="submit" class=format!("{BUTTON_SECONDARY} w-full justify-between") disabled=!may>
                                    <span>{format!("Retry: {} in {}", a.size, a.region)}</span>
                                    <span class="tabular-nums text-slate-500">{format!("{}/mo", format_usd(a.monthly_usd))}</span>
                                </button>
                            </ActionForm>
                        }}).collect_view()}
                    </div>
                }.into_any()
            }}
            <RoleNotice role permission=Permission::ManageNodes/>
            {move || retry_error().map(|e| view! { <div class="mt-3"><ErrorNotice error=e/></div> })}
        </Card>
    }
}

#[component]
fn ReadyToast(p: NodeProgress) -> impl IntoView {
    view! {
        <div role="status" class="fixed bottom-6 right-6 z-30 w-80 rounded-xl border border-emerald-200 bg-white p-4 shadow-lg dark:border-emerald-900 dark:bg-slate-900">
            <p class="text-sm font-semibold text-emerald-700 dark:text-emerald-300">"Dedicated node ready"</p>
            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">{format!("{} ({}, {}) is ready for workloads.", p.name, p.size, p.region)}</p>
        </div>
    }
}

/// Follows the server-sent events of this node until it settles or the page goes away.
#[cfg(feature = "hydrate")]
fn follow_events(state: RwSignal<NodeProgress>, just_ready: RwSignal<bool>) {
    use crate::live::{follow, Next};

    let start = state.get_untracked();
    if start.is_settled() {
        return;
    }
    let epoch = use_context::<crate::pages::layout::NotificationsEpoch>();
    let url = events_url(&start.workspace, &start.name);
    let on_update = move |update: NodeProgress| {
        let settled = update.is_settled();
        // A disposed signal means the page is gone: stop listening.
        let Some(was) = state.try_with_untracked(|s| s.phase) else { return Next::Stop };
        let became_ready = update.phase == NodePhase::Ready && was != NodePhase::Ready;
        if state.try_set(update).is_some() {
            return Next::Stop;
        }
        if became_ready {
            just_ready.set(true);
        }
        if !settled {
            return Next::Listen;
        }
        // Told: the notification exists now, so the bell can show it.
        if let Some(e) = epoch {
            e.0.update(|v| *v += 1);
        }
        Next::Stop
    };
    let reload = move || load_node_progress(start.workspace.clone(), start.name.clone());
    leptos::task::spawn_local(async move {
        follow(&url, on_update, || async { reload().await.ok().map(|r| r.item) }).await;
    });
}
