//! Live progress over server-sent events: `GET /api/events/w/{ws}/nodes/{name}` streams the
//! dedicated node's `NodeProgress` as `progress` events from a watch on its custom resource,
//! starting with the current state and ending once it is Ready or Failed.

use std::convert::Infallible;

use app::error::AppError;
use app::model::{NodeProgress, SessionUser};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::{stream, Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};

use crate::backend::views;
use crate::crd::DedicatedNode;
use crate::web::AppState;

fn refuse(e: AppError) -> Response {
    (e.status(), e.to_string()).into_response()
}

/// The first item, then each change, ending right after the first settled state.
fn until_settled(first: NodeProgress, updates: impl Stream<Item = NodeProgress> + Send + 'static) -> impl Stream<Item = NodeProgress> + Send {
    stream::unfold((Some(first), Box::pin(updates), None::<NodeProgress>, false), |(first, mut updates, last, done)| async move {
        if done {
            return None;
        }
        let next = match first {
            Some(p) => p,
            None => loop {
                let p = updates.next().await?;
                // Watches repeat objects on resync; only changes are news.
                if last.as_ref() != Some(&p) {
                    break p;
                }
            },
        };
        let settled = next.is_settled();
        Some((next.clone(), (None, updates, Some(next), settled)))
    })
}

pub async fn node_events(State(s): State<AppState>, Path((ws, name)): Path<(String, String)>, user: Option<Extension<SessionUser>>) -> Response {
    let Some(Extension(user)) = user else { return refuse(AppError::Unauthenticated) };
    // The same check as every server function: membership, and the node is the workspace's.
    let first = match s.backend.node_progress(&user, &ws, &name).await {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    let Some(client) = s.kube.clone() else { return refuse(AppError::ClusterUnavailable("no cluster is configured".into())) };
    let api: Api<DedicatedNode> = Api::all(client);
    let updates = watcher(api, watcher::Config::default().fields(&format!("metadata.name={name}")))
        .applied_objects()
        .filter_map(|r| async move { r.ok() })
        .map(|dn| views::progress(&dn));
    let events = until_settled(first, updates)
        .map(|p| Ok::<_, Infallible>(Event::default().event("progress").json_data(&p).unwrap_or_else(|_| Event::default().comment("unserializable"))));
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(phase: &str, progress: u8) -> NodeProgress {
        NodeProgress {
            name: "n".into(),
            workspace: "w".into(),
            size: "s".into(),
            region: "r".into(),
            phase: phase.into(),
            progress,
            steps: vec![],
            error_reason: None,
            error_message: None,
            alternatives: vec![],
            node_name: None,
        }
    }

    #[tokio::test]
    async fn streams_changes_once_and_ends_at_the_first_settled_state() {
        let updates = stream::iter(vec![p("Provisioning", 25), p("Provisioning", 25), p("Provisioning", 50), p("Ready", 100), p("Ready", 100)]);
        let got: Vec<u8> = until_settled(p("Pending", 0), updates).map(|p| p.progress).collect().await;
        assert_eq!(got, vec![0, 25, 50, 100]);
    }

    #[tokio::test]
    async fn an_already_settled_node_sends_one_event() {
        let got: Vec<String> = until_settled(p("Failed", 25), stream::pending()).map(|p| p.phase).collect().await;
        assert_eq!(got, vec!["Failed"]);
    }
}
