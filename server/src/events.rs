//! Live progress over server-sent events, from a watch on the custom resource:
//! `GET /api/events/w/{ws}/nodes/{name}` (a dedicated node's provisioning) and
//! `GET /api/events/w/{ws}/migrations/{namespace}/{name}` (a migration), fed by the shared watch
//! cache (one watch per kind, whatever the number of streams). Each stream starts with the
//! current state, sends one `progress` event per change, and ends once the state is settled,
//! or earlier when the session ends or the stream's lifetime is over (`crate::live`): the page
//! then reloads the state and reconnects.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use app::backend::SessionToken;
use app::error::AppError;
use app::model::{MigrationProgress, NodeOverview, NodeProgress, SessionUser};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::stream::BoxStream;
use futures::{stream, Stream, StreamExt};
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::views;
use crate::cache::Reflected;
use crate::crd::{DedicatedNode, WorkloadMigration};
use crate::live::StreamLease;
use crate::state::AppState;

fn refuse(e: AppError) -> Response {
    (e.status(), e.to_string()).into_response()
}

/// The first item, then each change, ending right after the first settled state.
fn until_settled<V>(first: V, updates: impl Stream<Item = V> + Send + 'static, settled: fn(&V) -> bool) -> impl Stream<Item = V> + Send
where
    V: Clone + PartialEq + Send + 'static,
{
    stream::unfold((Some(first), Box::pin(updates), None::<V>, false), move |(first, mut updates, last, done)| async move {
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
        let is_settled = settled(&next);
        Some((next.clone(), (None, updates, Some(next), is_settled)))
    })
}

/// Who may open a stream: a signed-in session with room for one more.
struct Viewer {
    user: SessionUser,
    lease: StreamLease,
    /// Resolves when the stream must end (session over, lifetime over).
    ended: futures::future::BoxFuture<'static, ()>,
}

fn viewer(s: &AppState, user: Option<Extension<SessionUser>>, token: Option<Extension<SessionToken>>) -> Result<Viewer, AppError> {
    let (Some(Extension(user)), Some(Extension(SessionToken(token)))) = (user, token) else { return Err(AppError::Unauthenticated) };
    let lease = s.live.open(&token, &user.user_id)?;
    let ended = Box::pin(lease.ended(s.store.clone(), token));
    Ok(Viewer { user, lease, ended })
}

/// Where a stream's updates come from: the shared watch cache, or (with
/// `--cluster-reads direct`) a watch of its own.
fn updates_of<K, V>(cache: Option<&Reflected<K>>, api: Api<K>, name: &str, namespace: Option<&str>, view: fn(&K) -> V) -> BoxStream<'static, V>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    V: Send + 'static,
{
    match cache {
        Some(reflected) => reflected.follow(name, namespace, view).boxed(),
        None => watcher(api, watcher::Config::default().fields(&format!("metadata.name={name}")))
            .applied_objects()
            .filter_map(|r| async move { r.ok() })
            .map(move |obj| view(&obj))
            .boxed(),
    }
}

/// Streams `updates` after `first` until the state settles or the viewer's stream must end.
fn stream_of<V>(viewer: Viewer, first: V, updates: BoxStream<'static, V>, settled: fn(&V) -> bool) -> Response
where
    V: Clone + PartialEq + Serialize + Send + 'static,
{
    let Viewer { lease, ended, .. } = viewer;
    let events = until_settled(first, updates, settled)
        .take_until(ended)
        // The lease is held as long as the stream is: dropping the stream gives the place back.
        .map(move |p| {
            let _held = &lease;
            p
        })
        .map(|p| Ok::<_, Infallible>(Event::default().event("progress").json_data(&p).unwrap_or_else(|_| Event::default().comment("unserializable"))));
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// What every stream does: find who asks, let `start` check that they may see it (membership,
/// the object is the workspace's) and give its state now and its changes, then stream them.
async fn serve<V, F, Fut>(
    s: &AppState,
    user: Option<Extension<SessionUser>>,
    token: Option<Extension<SessionToken>>,
    settled: fn(&V) -> bool,
    start: F,
) -> Response
where
    V: Clone + PartialEq + Serialize + Send + 'static,
    F: FnOnce(SessionUser) -> Fut,
    Fut: Future<Output = Result<(V, BoxStream<'static, V>), AppError>>,
{
    let viewer = match viewer(s, user, token) {
        Ok(v) => v,
        Err(e) => return refuse(e),
    };
    match start(viewer.user.clone()).await {
        Ok((first, updates)) => stream_of(viewer, first, updates, settled),
        Err(e) => refuse(e),
    }
}

fn cluster(s: &AppState) -> Result<kube::Client, AppError> {
    s.kube.clone().ok_or_else(|| AppError::ClusterUnavailable("no cluster is configured".into()))
}

/// `GET /api/events/w/{ws}/nodes`: Node Management, after every change of what it shows. Every
/// stream of a workspace reads the one overview its feed computes, the first state included:
/// a thousand pages opening at once cost one computation, not a thousand.
pub async fn overview_events(
    State(s): State<AppState>,
    Path(ws): Path<String>,
    user: Option<Extension<SessionUser>>,
    token: Option<Extension<SessionToken>>,
) -> Response {
    let overviews = s.overviews.clone();
    // Node Management never settles: the stream lasts until the page closes or the lease ends.
    serve(
        &s,
        user,
        token,
        |_| false,
        |user| async move {
            let (mine, mut feed) = overviews.follow(&user, &ws).await?;
            let as_mine = move |shared: Arc<NodeOverview>| NodeOverview { workspace: mine.clone(), ..(*shared).clone() };
            let first = feed.wait_for(Option::is_some).await.map_err(|_| AppError::ClusterUnavailable("the server is stopping".into()))?.clone();
            let first = first.map(&as_mine).expect("waited for an overview");
            let updates = stream::unfold(feed, |mut feed| async move {
                loop {
                    feed.changed().await.ok()?;
                    let current = feed.borrow_and_update().clone();
                    if let Some(o) = current {
                        return Some((o, feed));
                    }
                }
            })
            .map(as_mine)
            .boxed();
            Ok((first, updates))
        },
    )
    .await
}

/// `GET /api/events/w/{ws}/nodes/{name}`: a dedicated node's provisioning.
pub async fn node_events(
    State(s): State<AppState>,
    Path((ws, name)): Path<(String, String)>,
    user: Option<Extension<SessionUser>>,
    token: Option<Extension<SessionToken>>,
) -> Response {
    let s = &s;
    serve(s, user, token, NodeProgress::is_settled, |user| async move {
        // The same check as every server function: membership, and the node is the workspace's.
        let first = s.backend.node_progress(&user, &ws, &name).await?;
        let updates = updates_of(s.cache.as_ref().map(|c| &c.dedicated_nodes), Api::<DedicatedNode>::all(cluster(s)?), &name, None, views::node_progress);
        Ok((first, updates))
    })
    .await
}

/// `GET /api/events/w/{ws}/migrations/{namespace}/{name}`: a migration's progress.
pub async fn migration_events(
    State(s): State<AppState>,
    Path((ws, namespace, name)): Path<(String, String, String)>,
    user: Option<Extension<SessionUser>>,
    token: Option<Extension<SessionToken>>,
) -> Response {
    let s = &s;
    serve(s, user, token, MigrationProgress::is_settled, |user| async move {
        let first = s.backend.migration_progress(&user, &ws, &namespace, &name).await?;
        let api = Api::<WorkloadMigration>::namespaced(cluster(s)?, &first.namespace);
        let updates = updates_of(s.cache.as_ref().map(|c| &c.migrations), api, &name, Some(&first.namespace.clone()), views::migration_progress);
        Ok((first, updates))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_changes_once_and_ends_at_the_first_settled_state() {
        let updates = stream::iter(vec![25u8, 25, 50, 100, 100]);
        let got: Vec<u8> = until_settled(0u8, updates, |p| *p == 100).collect().await;
        assert_eq!(got, vec![0, 25, 50, 100]);
    }

    #[tokio::test]
    async fn an_already_settled_state_sends_one_event() {
        let got: Vec<u8> = until_settled(100u8, stream::pending(), |p| *p == 100).collect().await;
        assert_eq!(got, vec![100]);
    }
}
