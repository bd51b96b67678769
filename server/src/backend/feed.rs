//! Node Management, live: one overview per workspace, computed once after each change of the
//! kinds it shows and shared by every page of that workspace that is open (a thousand open
//! tabs cost one computation per change, not a thousand). A feed starts with its first viewer
//! and stops when the last one leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::error::AppError;
use app::model::{SessionUser, WorkspaceSummary};
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::DashboardBackend;
use crate::cache::{self, ClusterReads};
use crate::live::{Overview, OverviewReceiver};

/// Changes are gathered this long before the overview is computed again: a rollout changes
/// pods many times a second, and a page needs one picture of it, not every frame.
const GATHER: Duration = Duration::from_millis(200);
/// Without watch caches (`--cluster-reads direct`) the overview is read again this often.
const POLL: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct OverviewFeeds {
    by_workspace: Mutex<HashMap<String, watch::Sender<Overview>>>,
}

/// The backend as the live Node Management feed (`AppState::overviews`).
pub struct Feeds(pub Arc<DashboardBackend>);

impl crate::live::OverviewFeed for Feeds {
    /// The feed's overviews carry the first viewer's `workspace`; each stream sets its own.
    fn follow<'a>(&'a self, user: &'a SessionUser, ws: &'a str) -> BoxFuture<'a, Result<(WorkspaceSummary, OverviewReceiver), AppError>> {
        Box::pin(async move {
            let (_, summary) = self.0.membership(user, ws).await?;
            let feed = self.0.overview_feed(&summary);
            Ok((summary, feed))
        })
    }
}

impl DashboardBackend {
    fn overview_feed(self: &Arc<Self>, ws: &WorkspaceSummary) -> OverviewReceiver {
        let mut feeds = self.feeds.by_workspace.lock().expect("feeds lock");
        if let Some(tx) = feeds.get(&ws.slug) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        feeds.insert(ws.slug.clone(), tx.clone());
        tokio::spawn(self.clone().run_feed(ws.clone(), tx));
        rx
    }

    async fn run_feed(self: Arc<Self>, ws: WorkspaceSummary, tx: watch::Sender<Overview>) {
        let mut signals = match &self.reads {
            Some(ClusterReads::Cached(cache)) => cache.node_management_changes(),
            _ => vec![],
        };
        loop {
            // Whatever changed so far is in the overview computed now.
            signals.iter_mut().for_each(|s| s.mark_unchanged());
            let overview = self.overview(ws.clone()).await.ok().map(Arc::new);
            tx.send_replace(overview);
            let changed = async {
                if signals.is_empty() {
                    tokio::time::sleep(POLL).await;
                } else if !cache::any_change(&mut signals).await {
                    // The caches are gone (the server is stopping): nothing will change.
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(GATHER).await;
            };
            tokio::select! {
                _ = changed => {}
                _ = tx.closed() => {}
            }
            // Under the lock: a viewer arriving now either finds this feed running or starts a new one.
            let mut feeds = self.feeds.by_workspace.lock().expect("feeds lock");
            if tx.receiver_count() == 0 {
                feeds.remove(&ws.slug);
                return;
            }
        }
    }
}
