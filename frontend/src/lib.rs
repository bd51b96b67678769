//! The browser entry point: hydrates the server-rendered dashboard.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker the end-to-end tests wait for: interactions before it would hit dead HTML.
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &"__hexabase_hydrated".into(), &true.into());
    }
}
