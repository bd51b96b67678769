//! What every request handler shares: the Leptos options, the database, the dashboard's
//! backend, the cluster client and the metrics. Built once by `build_state`.

use std::sync::Arc;

use app::backend::SharedBackend;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub store: Store,
    pub backend: SharedBackend,
    /// Node Management's live overviews, per workspace.
    pub overviews: Arc<dyn crate::live::OverviewFeed>,
    pub kube: Option<kube::Client>,
    /// The watch caches pages and live streams read (none without a cluster, or with
    /// `--cluster-reads direct`).
    pub cache: Option<Arc<crate::cache::ClusterCache>>,
    pub metrics: Arc<Metrics>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The live streams open in this process, per session.
    pub live: Arc<crate::live::LiveStreams>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos.clone()
    }
}
