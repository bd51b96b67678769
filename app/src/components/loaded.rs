//! A card's data that loads on the server, renders before wasm, and once hydrated reloads on
//! its own while the page is open (usage, a node's Events, a report's performance).

use leptos::prelude::*;

use crate::error::AppError;

/// How often an open page reloads what changes on its own: a few scrapes of the local
/// Prometheus.
pub const REFRESH_SECONDS: u64 = 15;

/// Reloads `resource` every [`REFRESH_SECONDS`] once hydrated, until its component is gone.
pub fn refresh_while_open<T>(resource: Resource<T>)
where
    T: Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    #[cfg(feature = "hydrate")]
    if let Ok(handle) = set_interval_with_handle(move || resource.refetch(), std::time::Duration::from_secs(REFRESH_SECONDS)) {
        on_cleanup(move || handle.clear());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = resource;
}

/// `resource` drawn by `draw` once loaded, "`loading`" before, and its error in place.
pub fn loaded<T, V>(resource: Resource<Result<T, AppError>>, loading: &'static str, draw: impl Fn(T) -> V + Send + Sync + Copy + 'static) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: IntoView + 'static,
{
    view! {
        <Transition fallback=move || view! { <p class="text-sm text-slate-500">{loading}</p> }>
            {move || Suspend::new(async move {
                match resource.await {
                    Ok(data) => draw(data).into_any(),
                    Err(e) => view! { <p class="text-sm text-rose-600 dark:text-rose-400" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}
