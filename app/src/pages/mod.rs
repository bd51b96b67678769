//! One module a screen. Each keeps its server functions right above the component that calls them.

pub mod add_node;
pub mod layout;
pub mod login;
pub mod migration_performance;
pub mod migration_run;
pub mod migrations;
pub mod node_details;
pub mod node_progress;
pub mod node_usage;
pub mod nodes;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::components::{Card, ErrorNotice};
use layout::my_workspaces;

/// `/` sends the user to their first workspace's Node Management page.
#[component]
pub fn HomeRedirect() -> impl IntoView {
    let workspaces = Resource::new(|| (), |_| my_workspaces());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match workspaces.await {
                    Ok(list) => match list.first() {
                        Some(ws) => view! { <Redirect path=format!("/w/{}/nodes", ws.slug)/> }.into_any(),
                        None => view! {
                            <main class="mx-auto max-w-lg p-10">
                                <Card title="No workspace yet">
                                    <p class="text-sm text-slate-600 dark:text-slate-300">"Ask a workspace owner to invite you."</p>
                                </Card>
                            </main>
                        }.into_any(),
                    },
                    Err(e) => view! { <main class="mx-auto max-w-lg p-10"><ErrorNotice error=e/></main> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="mx-auto max-w-lg p-10 text-center">
            <h1 class="text-2xl font-semibold">"Page not found"</h1>
            <p class="mt-2 text-slate-600 dark:text-slate-400">"There is nothing at this address."</p>
            <a class="mt-6 inline-block text-indigo-600 hover:underline dark:text-indigo-400" href="/">"Back to the dashboard"</a>
        </main>
    }
}
