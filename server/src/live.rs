//! The live streams (server-sent events) open in this process, per session: each session may
//! hold only a few at once, each lives a bounded time, and all of a session's streams end the
//! moment it does (signed out, replaced by a new sign-in, idle, expired). A stream is a held
//! connection and a watch on the API server: without bounds one session could hold thousands.
//!
//! Sign-out and sign-in in this process end streams at once; a session ended elsewhere (by
//! another replica, or by its idle timeout) is noticed by each stream's periodic check.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::error::AppError;
use tokio::sync::watch;

use crate::store::{token_hash, Store};

/// Streams one session may hold open at once (browsers allow six connections per site over
/// HTTP/1.1; a few tabs following progress fit well within this).
pub const STREAMS_PER_SESSION: usize = 6;

/// How long a stream may live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    /// A stream ends after this long even if nothing settled; the page reloads the state and
    /// reconnects, which re-checks the session and the membership.
    pub total: Duration,
    /// How often an open stream checks that its session still lives.
    pub session_check: Duration,
}

impl Default for Lifetime {
    fn default() -> Self {
        Self { total: Duration::from_secs(15 * 60), session_check: Duration::from_secs(15) }
    }
}

#[derive(Default)]
pub struct LiveStreams {
    sessions: Mutex<HashMap<String, Session>>,
    lifetime: Lifetime,
}

struct Session {
    user_id: String,
    open: usize,
    ended: watch::Sender<bool>,
}

/// One open stream's place in its session's count, given back when dropped.
pub struct StreamLease {
    streams: Arc<LiveStreams>,
    key: String,
    ended: watch::Receiver<bool>,
}

impl LiveStreams {
    pub fn with_lifetime(lifetime: Lifetime) -> Self {
        Self { sessions: Mutex::default(), lifetime }
    }

    /// A place for one more stream of the session `token` (of `user_id`), or `TooMany`.
    pub fn open(self: &Arc<Self>, token: &str, user_id: &str) -> Result<StreamLease, AppError> {
        let key = token_hash(token);
        let mut sessions = self.sessions.lock().expect("live streams lock");
        let session = sessions.entry(key.clone()).or_insert_with(|| Session { user_id: user_id.to_string(), open: 0, ended: watch::Sender::new(false) });
        if session.open >= STREAMS_PER_SESSION {
            return Err(AppError::RateLimited(format!("At most {STREAMS_PER_SESSION} live views may be open at once; close another tab and reload.")));
        }
        session.open += 1;
        Ok(StreamLease { streams: self.clone(), key, ended: session.ended.subscribe() })
    }

    /// Ends the streams of the session `token` (signed out).
    pub fn end_session(&self, token: &str) {
        let key = token_hash(token);
        self.end_where(|k, _| *k == key);
    }

    /// Ends the streams of every session of the user (a new sign-in replaced them).
    pub fn end_user(&self, user_id: &str) {
        self.end_where(|_, s| s.user_id == user_id);
    }

    fn end_where(&self, ends: impl Fn(&String, &Session) -> bool) {
        let mut sessions = self.sessions.lock().expect("live streams lock");
        sessions.retain(|k, s| {
            let end = ends(k, s);
            if end {
                s.ended.send_replace(true);
            }
            !end
        });
    }

    /// Streams open now (all sessions).
    pub fn open_count(&self) -> usize {
        self.sessions.lock().expect("live streams lock").values().map(|s| s.open).sum()
    }
}

impl Drop for StreamLease {
    fn drop(&mut self) {
        let mut sessions = self.streams.sessions.lock().expect("live streams lock");
        if let Some(s) = sessions.get_mut(&self.key) {
            s.open -= 1;
            if s.open == 0 {
                sessions.remove(&self.key);
            }
        }
    }
}

impl StreamLease {
    /// Resolves when the stream must end: its session ended in this process or in the
    /// database, or its lifetime is over.
    pub fn ended(&self, store: Store, token: String) -> impl Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.clone();
        let Lifetime { total, session_check } = self.streams.lifetime;
        async move {
            let signed_out = async move {
                let _ = ended.wait_for(|e| *e).await;
            };
            let session_gone = async move {
                loop {
                    tokio::time::sleep(session_check).await;
                    // A store error is not a proof that the session ended.
                    if let Ok(false) = store.session_is_live(&token).await {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = signed_out => {}
                _ = session_gone => {}
                _ = tokio::time::sleep(total) => {}
            }
        }
    }
}

/// Node Management's live overview of a workspace, shared by every open page of it (the
/// backend computes it; `events` streams it).
pub trait OverviewFeed: Send + Sync {
    /// The workspace as `user` sees it and its feed (`None` until the first overview is
    /// computed); `NotFound` unless `user` is a member.
    fn follow<'a>(
        &'a self,
        user: &'a app::model::SessionUser,
        ws: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(app::model::WorkspaceSummary, OverviewReceiver), AppError>>;
}

/// The latest overview of a workspace (`None` until the first is computed).
pub type Overview = Option<Arc<app::model::NodeOverview>>;
pub type OverviewReceiver = watch::Receiver<Overview>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_a_bounded_number_of_streams_and_gets_them_back() {
        let live = Arc::new(LiveStreams::default());
        let leases: Vec<_> = (0..STREAMS_PER_SESSION).map(|_| live.open("a", "u1").unwrap()).collect();
        assert!(matches!(live.open("a", "u1"), Err(AppError::RateLimited(_))));
        live.open("b", "u2").expect("another session has its own bound");
        drop(leases);
        assert_eq!(live.open_count(), 0);
        live.open("a", "u1").expect("closed streams are given back");
    }

    #[tokio::test]
    async fn signing_out_or_in_again_ends_the_sessions_streams() {
        let live = Arc::new(LiveStreams::default());
        let a = live.open("a", "u1").unwrap();
        let b = live.open("b", "u1").unwrap();
        let other = live.open("c", "u2").unwrap();
        live.end_session("a");
        assert!(*a.ended.borrow());
        assert!(!*b.ended.borrow());
        live.end_user("u1");
        assert!(*b.ended.borrow());
        assert!(!*other.ended.borrow(), "another user's streams go on");
    }

    async fn store_with_session() -> (Store, String) {
        let db = std::env::temp_dir().join(format!("hexabase-live-{}.db", crate::db::new_id()));
        let store = Store::new(crate::db::connect(&format!("sqlite://{}?mode=rwc", db.display())).await.unwrap());
        let user = store.ensure_user("a@example.com", "A", "x").await.unwrap();
        let token = store.create_session(&user).await.unwrap();
        (store, token)
    }

    #[tokio::test]
    async fn a_stream_ends_at_its_lifetime_or_soon_after_its_session_ends_elsewhere() {
        let lifetime = Lifetime { total: Duration::from_millis(600), session_check: Duration::from_millis(50) };
        let live = Arc::new(LiveStreams::with_lifetime(lifetime));
        let (store, token) = store_with_session().await;
        let lease = live.open(&token, "u").unwrap();
        let start = tokio::time::Instant::now();
        lease.ended(store.clone(), token.clone()).await;
        assert!(start.elapsed() >= lifetime.total, "ended after {:?} with its session alive", start.elapsed());

        // Signed out by another replica: only the database knows.
        let start = tokio::time::Instant::now();
        let ended = tokio::spawn(lease.ended(store.clone(), token.clone()));
        store.delete_session(&token).await.unwrap();
        ended.await.unwrap();
        assert!(start.elapsed() < lifetime.total, "ended {:?} after its session", start.elapsed());
    }
}
