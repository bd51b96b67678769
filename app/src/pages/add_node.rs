//! The Add Dedicated Node wizard (use case steps 3-7, and 5c): choose a size and a region,
//! see the monthly cost and what improves, get warned when the size is too small, and
//! Start Provisioning.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{Card, ErrorNotice, PageHeader, RoleNotice, BUTTON_PRIMARY, BUTTON_SECONDARY, INPUT};
use crate::error::AppError;
use crate::model::{count, format_amount, format_usd, Estimate, Permission, WizardData};
use crate::pages::layout::use_workspace_slug;

#[server(endpoint = "load_wizard")]
pub async fn load_wizard(workspace: String) -> Result<WizardData, AppError> {
    use crate::context::*;
    backend()?.wizard_data(&current_user()?, &workspace).await
}

#[server(endpoint = "estimate_size")]
pub async fn estimate_size(workspace: String, size: String) -> Result<Estimate, AppError> {
    use crate::context::*;
    backend()?.estimate(&current_user()?, &workspace, &size).await
}

/// Starts provisioning and opens the node's live progress. Also the one-click retry of a
/// failed node with an alternative (`replaces` names the failed node).
#[server(endpoint = "start_provisioning")]
pub async fn start_provisioning(workspace: String, size: String, region: String, replaces: Option<String>) -> Result<(), AppError> {
    use crate::context::*;
    let user = current_user()?;
    let replaces = replaces.filter(|r| !r.is_empty());
    let name = backend()?.start_provisioning(&user, &workspace, &size, &region, replaces.as_deref()).await?;
    leptos_axum::redirect(&format!("/w/{workspace}/nodes/{name}"));
    Ok(())
}

#[component]
pub fn AddDedicatedNodePage() -> impl IntoView {
    let slug = use_workspace_slug();
    let data = Resource::new(move || slug.get(), load_wizard);
    view! {
        <Title text="Add Dedicated Node"/>
        <PageHeader title="Add Dedicated Node" subtitle="Guaranteed CPU and memory for your production workloads, isolated from other tenants."/>
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading sizes and your current usage…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! { <Wizard data=d/> }.into_any(),
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Wizard(data: WizardData) -> impl IntoView {
    let ws = data.workspace.slug.clone();
    let initial = data.recommended_size.clone().or_else(|| data.sizes.first().map(|s| s.id.clone())).unwrap_or_default();
    let size = RwSignal::new(initial);
    let ws_for_estimate = ws.clone();
    let estimate_res = Resource::new(move || size.get(), move |s| estimate_size(ws_for_estimate.clone(), s));
    let action = ServerAction::<StartProvisioning>::new();
    let submit_error = move || action.value().get().and_then(|r| r.err());
    let need = data.need.clone();
    let headroom = data.headroom_percent;
    let role = data.workspace.role;
    let may = role.may(Permission::ManageNodes);
    view! {
        <ActionForm action attr:class="grid gap-6 lg:grid-cols-3" attr:id="add-node-form">
            <input type="hidden" name="workspace" value=ws.clone()/>
            <div class="space-y-6 lg:col-span-2">
                <Card title="1. Node size">
                    <fieldset>
                        <legend class="sr-only">"Node size"</legend>
                        <div class="grid gap-3 sm:grid-cols-2">
                            {data.sizes.iter().map(|s| {
                                let id = s.id.clone();
                                let id_checked = id.clone();
                                let id_change = id.clone();
                                let recommended = data.recommended_size.as_deref() == Some(s.id.as_str());
                                view! {
                                    <label class="relative flex cursor-pointer flex-col gap-1 rounded-xl border border-slate-200 p-4 hover:border-indigo-400 has-[:checked]:border-indigo-600 has-[:checked]:ring-2 has-[:checked]:ring-indigo-600/30 dark:border-slate-700">
                                        <span class="flex items-center gap-3">
                                            // The radio itself is the control: visible, focusable, checkable.
                                            <input type="radio" name="size" value=id.clone()
                                                class="h-4 w-4 shrink-0 cursor-pointer accent-indigo-600 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2"
                                                prop:checked=move || size.get() == id_checked
                                                checked=size.get_untracked() == id
                                                on:change=move |_| size.set(id_change.clone())/>
                                            <span class="font-semibold">{s.id.clone()}</span>
                                            {recommended.then(|| view! { <span class="ml-auto rounded-md bg-emerald-50 px-2 py-0.5 text-xs font-medium text-emerald-700 dark:bg-emerald-950 dark:text-emerald-300">"Recommended"</span> })}
                                        </span>
                                        <span class="text-sm text-slate-600 dark:text-slate-400">
                                            {format!("{} vCPU · {} GiB memory · {} GiB storage · {} Gbps", format_amount(s.vcpu), format_amount(s.memory_gib), format_amount(s.storage_gib), format_amount(s.network_gbps))}
                                        </span>
                                        <span class="text-sm font-medium">{format!("{} / month", format_usd(s.monthly_usd))}</span>
                                        <span class="text-xs text-slate-500">{s.description.clone()}</span>
                                    </label>
                                }
                            }).collect_view()}
                        </div>
                    </fieldset>
                </Card>
                <Card title="2. Region">
                    <label class="block max-w-sm">
                        <span class="mb-1 block text-sm font-medium">"Region"</span>
                        <select name="region" class=INPUT>
                            {data.regions.iter().map(|r| view! { <option value=r.id.clone()>{format!("{} ({})", r.name, r.id)}</option> }).collect_view()}
                        </select>
                    </label>
                </Card>
            </div>
            <aside class="space-y-6">
                <Card title="3. Estimate">
                    <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Calculating…"</p> }>
                        {move || Suspend::new(async move {
                            match estimate_res.await {
                                Ok(e) => view! { <EstimatePanel e size/> }.into_any(),
                                Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                            }
                        })}
                    </Transition>
                    {need.map(|n| view! {
                        <p class="mt-4 text-xs text-slate-500" data-testid="need">
                            {format!("Your {} ({}) request {} vCPU and {} GiB on the shared pool, plus {} vCPU / {} GiB of rolling-update surge. A size fits when it holds that with {}% headroom.",
                                count(n.workloads, "workload", "workloads"), count(n.pods, "pod", "pods"), format_amount(n.cpu), format_amount(n.memory_gib),
                                format_amount(n.surge_cpu), format_amount(n.surge_memory_gib), headroom)}
                        </p>
                    })}
                </Card>
                {move || submit_error().map(|e| view! { <ErrorNotice error=e/> })}
                <button type="submit" class=format!("{BUTTON_PRIMARY} w-full") disabled=move || !may || action.pending().get()>
                    {move || if action.pending().get() { "Starting…" } else { "Start Provisioning" }}
                </button>
                <RoleNotice role permission=Permission::ManageNodes/>
                <a href=format!("/w/{ws}/nodes") class=format!("{BUTTON_SECONDARY} w-full")>"Cancel"</a>
            </aside>
        </ActionForm>
    }
}

#[component]
fn EstimatePanel(e: Estimate, size: RwSignal<String>) -> impl IntoView {
    view! {
        <div class="space-y-4" data-testid="estimate">
            <div>
                <p class="text-3xl font-semibold tabular-nums">{format_usd(e.monthly_usd)}<span class="text-base font-normal text-slate-500">" / month"</span></p>
                <p class="text-xs text-slate-500">{format!("${:.3} per hour × 730 hours, billed while the node exists.", e.hourly_usd)}</p>
            </div>
            {e.warning.clone().map(|w| {
                let rec = e.recommended_size.clone();
                view! {
                    <div role="alert" class="rounded-lg border border-amber-300 bg-amber-50 p-3 text-sm text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-200">
                        <p class="font-semibold">"This size is too small for your workloads"</p>
                        <p class="mt-1">{w}</p>
                        {rec.map(|r| {
                            let label = format!("Switch to {r}");
                            view! { <button type="button" class=format!("{BUTTON_SECONDARY} mt-3") on:click=move |_| size.set(r.clone())>{label}</button> }
                        })}
                    </div>
                }
            })}
            <div>
                <p class="mb-2 text-sm font-medium">"What improves"</p>
                <ul class="list-disc space-y-1 pl-5 text-sm text-slate-700 dark:text-slate-300">
                    {e.improvements.into_iter().map(|i| view! { <li>{i}</li> }).collect_view()}
                </ul>
            </div>
        </div>
    }
}
