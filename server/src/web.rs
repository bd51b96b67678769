//! The HTTP surface: Leptos pages and server functions, the stylesheet, health, readiness and
//! metrics, behind the session gate, compression, timeouts and request metrics.

use std::time::{Duration, Instant};

use app::{shell, App};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::middleware::gate;
pub use crate::state::AppState;

/// The site stylesheet, compiled from the app's Tailwind classes by `build.rs`.
const SITE_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/site.css"));
const SITE_CSS_ETAG: &str = include_str!(concat!(env!("OUT_DIR"), "/site.css.etag"));

async fn site_css(headers: HeaderMap) -> Response {
    let etag = format!("\"{SITE_CSS_ETAG}\"");
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache"), (header::ETAG, etag.as_str())], SITE_CSS).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers. The cluster is reported but does not gate readiness:
/// the dashboard stays up and says clearly when the cluster is unreachable. An anonymous
/// caller (a load balancer) learns only ready or not; the details are for signed-in people
/// and the log.
async fn readyz(State(s): State<AppState>, user: Option<axum::Extension<app::model::SessionUser>>) -> Response {
    let db = sqlx::query("SELECT 1").execute(s.store.pool()).await.map(|_| "ok".to_string()).map_err(|e| e.to_string());
    if let Err(e) = &db {
        tracing::warn!(error = %e, "not ready: the database does not answer");
    }
    // Pages read the watch caches: a replica is ready once each kind has listed once.
    let cache = match &s.cache {
        Some(c) if c.is_synced() => Ok("synced".to_string()),
        Some(_) => Err("loading the first list of the cluster's objects".to_string()),
        None => Ok("off".to_string()),
    };
    let ready = db.is_ok() && cache.is_ok();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = if ready { "ready" } else { "not ready" };
    if user.is_none() {
        return (status, Json(serde_json::json!({ "status": word }))).into_response();
    }
    let cluster = match &s.kube {
        Some(c) => c.apiserver_version().await.map(|v| format!("ok ({})", v.git_version)).unwrap_or_else(|e| format!("unreachable: {e}")),
        None => "not configured".to_string(),
    };
    let body = serde_json::json!({
        "status": word,
        "database": db.unwrap_or_else(|e| e),
        "cluster": cluster,
        "cache": cache.unwrap_or_else(|e| e),
    });
    (status, Json(body)).into_response()
}

async fn metrics_endpoint(State(s): State<AppState>) -> Response {
    s.metrics.set_live_streams(s.live.open_count());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode()).into_response()
}

async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let started = Instant::now();
    let res = next.run(req).await;
    s.metrics.observe_request(&method, route.as_deref(), res.status(), started.elapsed());
    res
}

/// Server functions answer every error with 500; this gives each `AppError` its own status
/// (401, 404, 422, ...) in one place, including errors raised before a function body runs
/// (a malformed request body becomes `Invalid`, hence 422).
async fn error_status(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if !is_api || res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(err) = serde_json::from_slice::<app::error::AppError>(&bytes) {
        parts.status = err.status();
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Every page gets a Content-Security-Policy with the nonce Leptos put on its inline scripts.
fn page_security_policy() {
    let (Some(nonce), Some(res)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>()) else { return };
    if let Ok(v) = http::HeaderValue::from_str(&app::content_security_policy(&nonce)) {
        res.insert_header(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Responses that are not pages (the API, assets, errors) may not run anything or be framed.
const DEFAULT_CSP: &str = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let routes = generate_route_list(App);
    let backend = state.backend.clone();
    let leptos = state.leptos.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .route("/site.css", get(site_css))
        .route("/api/events/w/{ws}/nodes", get(crate::events::overview_events))
        .route("/api/events/w/{ws}/nodes/{name}", get(crate::events::node_events))
        .route("/api/events/w/{ws}/migrations/{namespace}/{name}", get(crate::events::migration_events))
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(backend.clone());
                page_security_policy();
            },
            move || shell(leptos.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(error_status))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        // Brotli's own default is quality 11, seconds a megabyte: every page a browser asked
        // for (Accept-Encoding: br) paid for it. 4 is what CDNs use for dynamic content: most
        // of the gain at gzip's speed (and gzip's level 4 for clients without br).
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(4)))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .with_state(state)
}
