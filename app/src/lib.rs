#![recursion_limit = "256"]
//! The Hexabase.AI dashboard: pages, components, server functions and the types they share.
//! Rendered on the server (feature `ssr`) and hydrated in the browser (feature `hydrate`).

pub mod components;
pub mod error;
#[cfg(feature = "hydrate")]
pub mod live;
pub mod model;
pub mod pages;

#[cfg(feature = "ssr")]
pub mod backend;
#[cfg(feature = "ssr")]
pub mod context;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{ParentRoute, Redirect, Route, Router, Routes};
use leptos_router::path;

use pages::add_node::AddDedicatedNodePage;
use pages::layout::WorkspaceLayout;
use pages::login::LoginPage;
use pages::migration_run::MigrationProgressPage;
use pages::migrations::WorkloadMigrationPage;
use pages::node_progress::NodeProgressPage;
use pages::nodes::NodeManagementPage;
use pages::{HomeRedirect, NotFound};

/// Applied before first paint so a dark-mode user never sees a white flash. Inline, so it
/// carries the page's CSP nonce (see `content_security_policy`).
const THEME_BOOT: &str = "try{var t=localStorage.getItem('theme');if(t==='dark'||(!t&&matchMedia('(prefers-color-scheme: dark)').matches))document.documentElement.classList.add('dark')}catch(e){}";

/// The Content-Security-Policy of a page rendered with `nonce`: scripts only from this
/// origin or carrying the nonce (Leptos' hydration and streaming scripts, the theme script),
/// wasm compiled from this origin's bundle, styles only from this origin (no inline styles:
/// bars are SVG), and never framed.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <script nonce=leptos::nonce::use_nonce() inner_html=THEME_BOOT></script>
                <link rel="stylesheet" href="/site.css"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| format!("{page} · Hexabase.AI")/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=HomeRedirect/>
                <Route path=path!("/login") view=LoginPage/>
                <ParentRoute path=path!("/w/:ws") view=WorkspaceLayout>
                    <Route path=path!("") view=|| view! { <Redirect path="nodes"/> }/>
                    <Route path=path!("nodes") view=NodeManagementPage/>
                    <Route path=path!("nodes/new") view=AddDedicatedNodePage/>
                    <Route path=path!("nodes/:name") view=NodeProgressPage/>
                    <Route path=path!("migrations") view=WorkloadMigrationPage/>
                    <Route path=path!("migrations/:namespace/:name") view=MigrationProgressPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
