//! The frame around every workspace page: sidebar navigation, the workspace switcher, the
//! notifications bell, the theme toggle and sign-out.

use leptos::prelude::*;
use leptos_router::components::{Outlet, A};
use leptos_router::hooks::{use_location, use_params_map};

use crate::components::now_unix;
use crate::error::AppError;
use crate::model::{format_ago, Notification, WorkspaceSummary};

#[server(endpoint = "my_workspaces")]
pub async fn my_workspaces() -> Result<Vec<WorkspaceSummary>, AppError> {
    use crate::context::*;
    backend()?.workspaces(&current_user()?).await
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::context::*;
    // Signing out needs a session too: it is a state change like any other.
    current_user()?;
    if let Some(token) = session_token() {
        backend()?.sign_out(&token).await?;
    }
    set_cookie(format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0", crate::backend::SESSION_COOKIE));
    leptos_axum::redirect("/login");
    Ok(())
}

#[server(endpoint = "notifications")]
pub async fn notifications(workspace: String) -> Result<Vec<Notification>, AppError> {
    use crate::context::*;
    backend()?.notifications(&current_user()?, &workspace).await
}

#[server(endpoint = "mark_notifications_read")]
pub async fn mark_notifications_read(workspace: String) -> Result<(), AppError> {
    use crate::context::*;
    backend()?.mark_notifications_read(&current_user()?, &workspace).await
}

/// The workspace slug from the URL, for every page under `/w/:ws`.
pub fn use_workspace_slug() -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.read().get("ws").unwrap_or_default())
}

/// Bumped by a page when something new was notified, so the bell refetches.
#[derive(Clone, Copy)]
pub struct NotificationsEpoch(pub RwSignal<u32>);

#[component]
pub fn WorkspaceLayout() -> impl IntoView {
    let slug = use_workspace_slug();
    provide_context(NotificationsEpoch(RwSignal::new(0)));
    let workspaces = Resource::new(|| (), |_| my_workspaces());
    view! {
        <div class="flex min-h-screen">
            <Sidebar slug/>
            <div class="flex min-w-0 flex-1 flex-col">
                <header class="flex h-16 items-center justify-between gap-2 border-b border-slate-200 bg-white px-4 sm:gap-4 sm:px-6 dark:border-slate-800 dark:bg-slate-900">
                    <Transition fallback=|| view! { <span class="text-sm text-slate-500">"Loading…"</span> }>
                        {move || Suspend::new(async move {
                            workspaces.await.map(|list| view! { <WorkspaceSwitcher slug list/> })
                        })}
                    </Transition>
                    <div class="flex items-center gap-2">
                        <ThemeToggle/>
                        <NotificationBell slug/>
                        <SignOutButton/>
                    </div>
                </header>
                <nav aria-label="Sections" class="flex gap-1 border-b border-slate-200 bg-white px-4 py-2 md:hidden dark:border-slate-800 dark:bg-slate-900">
                    <SectionLinks slug/>
                </nav>
                <main class="mx-auto w-full max-w-6xl flex-1 p-4 sm:p-6">
                    <Outlet/>
                </main>
            </div>
        </div>
    }
}

#[component]
fn Sidebar(slug: Memo<String>) -> impl IntoView {
    view! {
        <nav aria-label="Main" class="hidden w-60 shrink-0 flex-col border-r border-slate-200 bg-white p-4 md:flex dark:border-slate-800 dark:bg-slate-900">
            <a href="/" class="mb-8 flex items-center gap-2 px-2">
                <span class="flex h-8 w-8 items-center justify-center rounded-lg bg-indigo-600 text-sm font-bold text-white">"H"</span>
                <span class="text-sm font-semibold">"Hexabase.AI"</span>
            </a>
            <div class="space-y-1">
                <SectionLinks slug/>
            </div>
        </nav>
    }
}

/// The dashboard's sections, in the sidebar on wide screens and under the header on phones.
#[component]
fn SectionLinks(slug: Memo<String>) -> impl IntoView {
    let location = use_location();
    let link = move |section: &'static str, label: &'static str| {
        let href = move || format!("/w/{}/{section}", slug.get());
        let active = move || location.pathname.get().starts_with(&href());
        view! {
            <A href=href attr:class=move || {
                let base = "flex items-center gap-3 rounded-lg px-3 py-2 text-sm font-medium";
                if active() {
                    format!("{base} bg-indigo-50 text-indigo-700 dark:bg-indigo-950 dark:text-indigo-300")
                } else {
                    format!("{base} text-slate-700 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800")
                }
            }>{label}</A>
        }
    };
    view! {
        {link("nodes", "Node Management")}
        {link("migrations", "Workload Migration")}
    }
}

/// A menu button listing the user's workspaces; Escape or a pick closes it.
#[component]
fn WorkspaceSwitcher(slug: Memo<String>, list: Vec<WorkspaceSummary>) -> impl IntoView {
    let open = RwSignal::new(false);
    let list = StoredValue::new(list);
    let current = move || list.with_value(|l| l.iter().find(|w| w.slug == slug.get()).cloned());
    view! {
        <div class="relative" on:keydown=move |ev| if ev.key() == "Escape" { open.set(false) }>
            <button type="button" id="workspace-switcher" aria-haspopup="menu" aria-expanded=move || open.get().to_string()
                class="flex items-center gap-2 rounded-lg px-2 py-1.5 text-sm hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:hover:bg-slate-800"
                on:click=move |_| open.update(|o| *o = !*o)>
                <span class="hidden text-slate-500 sm:inline dark:text-slate-400">"Workspace"</span>
                <span class="font-semibold">{move || current().map(|w| w.name).unwrap_or_else(|| slug.get())}</span>
                <span class="hidden text-xs text-slate-500 sm:inline">{move || current().map(|w| w.plan.label())}</span>
                <span aria-hidden="true">"▾"</span>
            </button>
            <Show when=move || open.get()>
                <div role="menu" class="absolute left-0 z-20 mt-2 w-72 rounded-xl border border-slate-200 bg-white p-1 shadow-lg dark:border-slate-700 dark:bg-slate-900">
                    {list.get_value().into_iter().map(|w| {
                        let href = format!("/w/{}/nodes", w.slug);
                        view! {
                            <A href=href attr:role="menuitem" on:click=move |_| open.set(false)
                                attr:class="flex items-center justify-between rounded-lg px-3 py-2 text-sm hover:bg-slate-100 focus:bg-slate-100 focus:outline-none dark:hover:bg-slate-800 dark:focus:bg-slate-800">
                                <span class="font-medium">{w.name.clone()}</span>
                                <span class="text-xs text-slate-500">{w.plan.label()}</span>
                            </A>
                        }
                    }).collect_view()}
                </div>
            </Show>
        </div>
    }
}

#[component]
fn NotificationBell(slug: Memo<String>) -> impl IntoView {
    let open = RwSignal::new(false);
    let mark_read = ServerAction::<MarkNotificationsRead>::new();
    let epoch = expect_context::<NotificationsEpoch>().0;
    let items = Resource::new(move || (slug.get(), mark_read.version().get(), epoch.get()), |(ws, _, _)| notifications(ws));
    let unread = move || items.get().and_then(|r| r.ok()).map(|l| l.iter().filter(|n| !n.read).count()).unwrap_or(0);
    let toggle = move |_| {
        let now_open = !open.get_untracked();
        open.set(now_open);
        if now_open && unread() > 0 {
            mark_read.dispatch(MarkNotificationsRead { workspace: slug.get_untracked() });
        }
    };
    view! {
        <div class="relative" on:keydown=move |ev| if ev.key() == "Escape" { open.set(false) }>
            <button type="button" aria-label="Notifications" aria-expanded=move || open.get().to_string()
                class="relative rounded-lg p-2 text-slate-600 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:text-slate-300 dark:hover:bg-slate-800"
                on:click=toggle>
                <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true">
                    <path d="M15 17h5l-1.4-1.4A2 2 0 0 1 18 14.2V11a6 6 0 1 0-12 0v3.2c0 .5-.2 1-.6 1.4L4 17h5m6 0a3 3 0 1 1-6 0"/>
                </svg>
                <Transition fallback=|| ()>
                    {move || (unread() > 0).then(|| view! {
                        <span data-testid="unread-count" class="absolute -right-0.5 -top-0.5 rounded-full bg-rose-500 px-1.5 text-xs font-semibold text-white">{unread()}</span>
                    })}
                </Transition>
            </button>
            <Show when=move || open.get()>
                <div role="dialog" aria-label="Notifications" class="absolute right-0 z-20 mt-2 w-80 rounded-xl border border-slate-200 bg-white p-2 shadow-lg dark:border-slate-700 dark:bg-slate-900">
                    <Transition fallback=|| view! { <p class="p-3 text-sm">"Loading…"</p> }>
                        {move || Suspend::new(async move {
                            match items.await {
                                Ok(list) if list.is_empty() => view! { <p class="p-3 text-sm text-slate-500">"No notifications yet."</p> }.into_any(),
                                Ok(list) => {
                                    let now = now_unix();
                                    list.into_iter().map(|n| view! {
                                        <a href=n.link.clone().unwrap_or_default() class="block rounded-lg p-3 hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:hover:bg-slate-800">
                                            <p class="flex items-baseline justify-between gap-2 text-sm font-medium">{n.title}<span class="shrink-0 text-xs font-normal text-slate-500">{format_ago(now - n.created_at)}</span></p>
                                            <p class="text-xs text-slate-600 dark:text-slate-400">{n.body}</p>
                                        </a>
                                    }).collect_view().into_any()
                                }
                                Err(e) => view! { <p class="p-3 text-sm text-rose-600">{e.to_string()}</p> }.into_any(),
                            }
                        })}
                    </Transition>
                </div>
            </Show>
        </div>
    }
}

#[component]
fn ThemeToggle() -> impl IntoView {
    let toggle = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let Some(window) = web_sys::window() else { return };
            let Some(root) = window.document().and_then(|d| d.document_element()) else { return };
            let dark = root.class_list().toggle("dark").unwrap_or(false);
            if let Ok(Some(storage)) = window.local_storage() {
                let _ = storage.set_item("theme", if dark { "dark" } else { "light" });
            }
        }
    };
    view! {
        <button type="button" aria-label="Toggle dark mode" on:click=toggle
            class="rounded-lg p-2 text-slate-600 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:text-slate-300 dark:hover:bg-slate-800">
            <svg class="h-5 w-5" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true">
                <path d="M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z"/>
            </svg>
        </button>
    }
}

#[component]
fn SignOutButton() -> impl IntoView {
    let action = ServerAction::<SignOut>::new();
    view! {
        <ActionForm action>
            <button type="submit" class="rounded-lg px-3 py-2 text-sm font-medium text-slate-700 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 dark:text-slate-300 dark:hover:bg-slate-800">
                "Sign out"
            </button>
        </ActionForm>
    }
}
