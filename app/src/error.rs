//! The one error type every server function returns. It carries a message a person can act on
//! and maps to an HTTP status, so a browser, a test or `curl` all see the same thing.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// On the wire an error is `{"kind": "...", "message": "..."}`, so that any client, not only
/// the Leptos one, reads the same plain message the screens show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(into = "WireError", from = "WireError")]
pub enum AppError {
    #[error("Please sign in to continue.")]
    Unauthenticated,
    /// The caller is signed in but may not do this (e.g. a Hobby plan adding a dedicated node).
    #[error("{0}")]
    Forbidden(String),
    /// Also used for workspaces the caller is not a member of, so their existence is not revealed.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Too many attempts: {0}")]
    RateLimited(String),
    #[error("The Kubernetes cluster is unreachable: {0}")]
    ClusterUnavailable(String),
    #[error("Something went wrong on our side: {0}")]
    Internal(String),
    #[error("Could not reach the server: {0}")]
    Transport(String),
}

#[derive(Serialize, Deserialize)]
struct WireError {
    kind: String,
    message: String,
}

impl From<AppError> for WireError {
    fn from(e: AppError) -> Self {
        let message = e.to_string();
        let kind = match &e {
            AppError::Unauthenticated => "Unauthenticated",
            AppError::Forbidden(_) => "Forbidden",
            AppError::NotFound(_) => "NotFound",
            AppError::Invalid(_) => "Invalid",
            AppError::Conflict(_) => "Conflict",
            AppError::RateLimited(_) => "RateLimited",
            AppError::ClusterUnavailable(_) => "ClusterUnavailable",
            AppError::Internal(_) => "Internal",
            AppError::Transport(_) => "Transport",
        };
        WireError { kind: kind.into(), message }
    }
}

impl From<WireError> for AppError {
    fn from(w: WireError) -> Self {
        // The message carries the variant's prefix for some kinds; strip it back off.
        let strip = |prefix: &str| w.message.strip_prefix(prefix).unwrap_or(&w.message).to_string();
        match w.kind.as_str() {
            "Unauthenticated" => AppError::Unauthenticated,
            "Forbidden" => AppError::Forbidden(w.message),
            "NotFound" => AppError::NotFound(w.message),
            "Invalid" => AppError::Invalid(w.message),
            "Conflict" => AppError::Conflict(w.message),
            "RateLimited" => AppError::RateLimited(strip("Too many attempts: ")),
            "ClusterUnavailable" => AppError::ClusterUnavailable(strip("The Kubernetes cluster is unreachable: ")),
            "Transport" => AppError::Transport(strip("Could not reach the server: ")),
            _ => AppError::Internal(strip("Something went wrong on our side: ")),
        }
    }
}

impl AppError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AppError::Unauthenticated => S::UNAUTHORIZED,
            AppError::Forbidden(_) => S::FORBIDDEN,
            AppError::NotFound(_) => S::NOT_FOUND,
            AppError::Invalid(_) => S::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::RateLimited(_) => S::TOO_MANY_REQUESTS,
            AppError::ClusterUnavailable(_) => S::SERVICE_UNAVAILABLE,
            AppError::Internal(_) | AppError::Transport(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn workspace_not_found(slug: &str) -> Self {
        AppError::NotFound(format!("No workspace \"{slug}\" among yours."))
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Malformed or missing arguments are the caller's mistake, not ours.
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => AppError::Invalid(format!("The request was malformed: {m}")),
            // On the server, failing to deserialize means the request's arguments were bad.
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Deserialization(m) => AppError::Invalid(format!("The request was malformed: {m}")),
            ServerFnErrorErr::Request(m) => AppError::Transport(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AppError;

    #[test]
    fn every_error_round_trips_through_its_wire_form_with_a_readable_message() {
        let all = [
            AppError::Unauthenticated,
            AppError::Forbidden("f".into()),
            AppError::NotFound("n".into()),
            AppError::Invalid("i".into()),
            AppError::Conflict("c".into()),
            AppError::RateLimited("r".into()),
            AppError::ClusterUnavailable("down".into()),
            AppError::Internal("x".into()),
            AppError::Transport("t".into()),
        ];
        for e in all {
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.contains(&serde_json::to_string(&e.to_string()).unwrap()), "{json}");
            assert_eq!(serde_json::from_str::<AppError>(&json).unwrap(), e);
        }
    }
}
