//! Sign in: email and password, a server-side session in an HttpOnly cookie.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{BUTTON_PRIMARY, INPUT};
use crate::error::AppError;

/// Longest email address RFC 5321 allows; longer input is refused before any work.
pub const MAX_EMAIL: usize = 254;
pub const MAX_PASSWORD: usize = 1024;

/// The longest `next` path followed after sign-in.
const MAX_NEXT: usize = 2048;

/// Where to go after sign-in: `next` only when it is a path of this site (a relative reference
/// starting with one `/`), without control characters, spaces or backslashes, which browsers
/// drop or fold into `/` (so `/<TAB>/evil.example` would become `//evil.example`, another
/// origin); anything else goes to the dashboard.
pub fn safe_next(next: Option<&str>) -> String {
    let local =
        |n: &str| n.len() <= MAX_NEXT && n.starts_with('/') && !n.starts_with("//") && n.chars().all(|c| !c.is_control() && !c.is_whitespace() && c != '\\');
    match next {
        Some(n) if local(n) => n.to_string(),
        _ => "/".to_string(),
    }
}

#[server(endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::context::*;
    let email = email.trim().to_lowercase();
    if email.is_empty() || password.is_empty() {
        return Err(AppError::Invalid("Enter your email and password.".into()));
    }
    if email.len() > MAX_EMAIL || password.len() > MAX_PASSWORD {
        return Err(AppError::Invalid("Email or password is too long.".into()));
    }
    let backend = backend()?;
    let session = backend.sign_in(&email, &password, &client_addr()).await?;
    let secure = if backend.secure_cookies() { "; Secure" } else { "" };
    set_cookie(format!("{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=1209600{secure}", crate::backend::SESSION_COOKIE, session.token));
    leptos_axum::redirect(&safe_next(next.as_deref()));
    Ok(())
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let error = move || action.value().get().and_then(|r| r.err());
    view! {
        <Title text="Sign in"/>
        <main class="flex min-h-screen items-center justify-center px-4">
            <div class="w-full max-w-sm">
                <div class="mb-8 text-center">
                    <div class="mx-auto mb-3 flex h-11 w-11 items-center justify-center rounded-xl bg-indigo-600 text-lg font-bold text-white">"H"</div>
                    <h1 class="text-2xl font-semibold tracking-tight">"Sign in to Hexabase.AI"</h1>
                    <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">"Manage nodes and workloads of your workspaces."</p>
                </div>
                <ActionForm action=action attr:class="space-y-4 rounded-xl border border-slate-200 bg-white p-6 shadow-sm dark:border-slate-800 dark:bg-slate-900">
                    <input type="hidden" name="next" value=next/>
                    <label class="block">
                        <span class="mb-1 block text-sm font-medium">"Email"</span>
                        <input class=INPUT type="email" name="email" autocomplete="username" required maxlength=MAX_EMAIL autofocus/>
                    </label>
                    <label class="block">
                        <span class="mb-1 block text-sm font-medium">"Password"</span>
                        <input class=INPUT type="password" name="password" autocomplete="current-password" required maxlength=MAX_PASSWORD/>
                    </label>
                    {move || error().map(|e| view! {
                        <p role="alert" class="rounded-lg bg-rose-50 px-3 py-2 text-sm text-rose-700 dark:bg-rose-950 dark:text-rose-300">{e.to_string()}</p>
                    })}
                    <button type="submit" class=format!("{BUTTON_PRIMARY} w-full") disabled=move || action.pending().get()>
                        {move || if action.pending().get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/w/acme/nodes")), "/w/acme/nodes");
        assert_eq!(safe_next(Some("/w/acme/nodes?tab=1#x")), "/w/acme/nodes?tab=1#x");
        for trick in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/w\r\nSet-Cookie: x=1",
            " /evil",
            "/ /evil.example",
            "evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(Some(trick)), "/", "{trick:?}");
        }
        // Encoded forms stay encoded in the Location header: a browser reads them as a path.
        assert_eq!(safe_next(Some("/%2F%2Fevil.example")), "/%2F%2Fevil.example");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(3000)))), "/");
        assert_eq!(safe_next(None), "/");
    }
}
