//! The one error type every server function returns. It carries a message a person can act on
//! and maps to an HTTP status, so a browser, a test or `curl` all see the same thing.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
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
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => {
                AppError::Invalid(format!("The request was malformed: {m}"))
            }
            ServerFnErrorErr::Request(m) => AppError::Transport(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}
