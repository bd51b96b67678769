//! How a server function finds who is asking and the engine to ask (server side only).

use leptos::prelude::*;

use crate::backend::{ClientAddr, SessionToken, SharedBackend};
use crate::error::AppError;
use crate::model::SessionUser;

fn request_parts() -> Result<http::request::Parts, AppError> {
    use_context::<http::request::Parts>().ok_or_else(|| AppError::Internal("no request in context".into()))
}

pub fn backend() -> Result<SharedBackend, AppError> {
    use_context::<SharedBackend>().ok_or_else(|| AppError::Internal("no backend in context".into()))
}

/// The signed-in user of this request, or `Unauthenticated`. Every server function calls this
/// first. The server's session middleware resolved the cookie and put the user in the request.
pub fn current_user() -> Result<SessionUser, AppError> {
    request_parts()?.extensions.get::<SessionUser>().cloned().ok_or(AppError::Unauthenticated)
}

pub fn session_token() -> Option<String> {
    request_parts().ok()?.extensions.get::<SessionToken>().map(|t| t.0.clone())
}

pub fn client_addr() -> String {
    request_parts().ok().and_then(|p| p.extensions.get::<ClientAddr>().map(|a| a.0.clone())).unwrap_or_else(|| "unknown".into())
}

pub fn set_cookie(value: String) {
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            res.append_header(http::header::SET_COOKIE, v);
        }
    }
}
