#![recursion_limit = "256"]
//! The Hexabase.AI server: configuration, the database, sign-in and sessions, the cluster
//! reader, the engine (provisioning and migration controllers) and the HTTP surface.
//! `main.rs` wires them; tests drive them directly. ARCHITECTURE.md lists each module and
//! what it may use (`tests/layers.rs` checks it).

pub mod auth;
pub mod backend;
pub mod cache;
pub mod capacity;
pub mod catalogue;
pub mod cluster;
pub mod config;
pub mod crd;
pub mod db;
pub mod engine;
pub mod events;
pub mod leader;
pub mod live;
pub mod metrics;
pub mod migration;
pub mod planning;
pub mod prometheus;
pub mod provisioning;
pub mod scheduling;
pub mod seed;
pub mod state;
pub mod store;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use leptos::prelude::LeptosOptions;

use crate::auth::rate_limit::LoginLimiter;
use crate::backend::DashboardBackend;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::state::AppState;
use crate::store::Store;

/// Builds the application state from configuration: connects the database (running
/// migrations), seeds the demo when asked, and connects the cluster if one is configured.
pub async fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let db = db::connect(&config.database_url).await.with_context(|| format!("database {}", redact(&config.database_url)))?;
    let store = Store::new(db);
    if config.seed_demo {
        seed::seed_demo(&store).await.context("seeding demo data")?;
    }
    let catalogue = Arc::new(
        match &config.catalogue {
            Some(path) => Catalogue::load(path),
            None => Catalogue::load_default(),
        }
        .context("catalogue")?,
    );
    let kube = match cluster::connect(config.kubeconfig.as_deref()).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes cluster: pages will say so");
            None
        }
    };
    let node_provider = node_provider(config);
    provisioning::check_catalogue(&node_provider, &catalogue).context("the catalogue does not fit --node-provider")?;
    let cache = match (&kube, config.cluster_reads) {
        (Some(client), config::ClusterReadsKind::Cache) => Some(cache::ClusterCache::start(client.clone())),
        _ => None,
    };
    if let (Some(client), true) = (&kube, config.engine) {
        start_engine(client.clone(), store.clone(), catalogue.clone(), config, node_provider, cache.clone());
    }
    purge_expired_sessions(store.clone(), Duration::from_secs(config.session_purge_interval_secs.max(1)));
    let live = Arc::new(live::LiveStreams::default());
    let reads = match (&cache, &kube) {
        (Some(cache), _) => Some(cache::ClusterReads::Cached(cache.clone())),
        (None, Some(client)) => Some(cache::ClusterReads::Direct(client.clone())),
        (None, None) => None,
    };
    let backend = DashboardBackend::new(
        store.clone(),
        reads,
        catalogue,
        config.prometheus_url.as_deref().map(prometheus::Prometheus::new),
        LoginLimiter::default(),
        config.cookies_secure(),
        live.clone(),
    );
    let leptos = LeptosOptions::builder().output_name("hexabase").site_root(config.site_root.as_str()).site_pkg_dir("pkg").site_addr(config.listen).build();
    Ok(AppState {
        leptos,
        store,
        overviews: Arc::new(backend::feed::Feeds(backend.clone())),
        backend,
        kube,
        cache,
        metrics: Arc::new(metrics::Metrics::default()),
        trusted_proxies: config.trusted_proxies.clone().into(),
        live,
    })
}

/// Installs the platform's objects and, while this replica holds the engine lease, runs the
/// controllers, in the background. A cluster that is down at start-up is retried: the
/// dashboard serves meanwhile and says so.
fn start_engine(
    client: kube::Client,
    store: Store,
    catalogue: Arc<Catalogue>,
    config: &Config,
    node_provider: provisioning::ProviderChoice,
    cache: Option<Arc<cache::ClusterCache>>,
) {
    let lease_namespace = config.lease_namespace.clone();
    let scope = engine::Scope(config.controller_scope.clone());
    let provisioning_config = provisioning::Config { step_delay: Duration::from_millis(config.provision_step_delay_ms), scope: scope.clone() };
    let migration_config = migration::Config { prometheus_url: config.prometheus_url.clone(), scope, ..migration::Config::default() };
    let metrics: Option<Arc<dyn migration::MetricsSource>> = config
        .prometheus_url
        .as_deref()
        .map(|url| Arc::new(migration::PrometheusSource::new(url, config.latency_query.as_deref())) as Arc<dyn migration::MetricsSource>);
    let identity = format!("{}-{}", config.replica_id, &db::new_id()[..8]);
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        while let Err(e) = engine::install::ensure_platform(client.clone()).await {
            tracing::warn!(error = %e, retry_in = ?wait, "cannot install the platform's objects yet");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
        let elector = leader::LeaderElector::new(client.clone(), &lease_namespace, identity);
        elector
            .run(move || {
                let provisioning_ctx =
                    Arc::new(provisioning::Context::for_choice(&node_provider, client.clone(), store.clone(), catalogue.clone(), provisioning_config.clone()));
                let migration_ctx =
                    Arc::new(migration::Context::new(client.clone(), store.clone(), migration_config.clone(), metrics.clone()).with_cache(cache.clone()));
                let client = client.clone();
                async move {
                    tokio::join!(provisioning::run(client.clone(), provisioning_ctx), migration::run(client, migration_ctx));
                }
            })
            .await;
    });
}

/// The provider `--node-provider` names, with its settings.
fn node_provider(config: &Config) -> provisioning::ProviderChoice {
    match config.node_provider {
        config::NodeProviderKind::Kwok => provisioning::ProviderChoice::Kwok,
        config::NodeProviderKind::Karpenter => provisioning::ProviderChoice::Karpenter(provisioning::KarpenterConfig {
            node_class: provisioning::karpenter::NodeClassRef {
                group: config.karpenter_node_class_group.clone(),
                kind: config.karpenter_node_class_kind.clone(),
                name: config.karpenter_node_class_name.clone(),
            },
            ..Default::default()
        }),
    }
}

/// Deletes expired sessions now and then: they no longer open anything, but a session table
/// that only grows is a liability (and a list of who signed in when).
fn purge_expired_sessions(store: Store, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.delete_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "expired sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot delete expired sessions; will try again"),
            }
        }
    });
}

pub async fn serve(config: Config, listener: tokio::net::TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let state = build_state(&config).await?;
    let app = web::router(state, Duration::from_secs(config.request_timeout_secs));
    // A page is streamed in several small writes (the shell, then each resolved Suspense) and a
    // live stream's events are small too: with Nagle's algorithm on, each small write after the
    // first waits for the browser's delayed ACK (up to 40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY; serving anyway");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Hides the password in a database URL before it reaches a log line.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_database_passwords() {
        assert_eq!(super::redact("postgres://app:s3cret@127.0.0.1:5432/db"), "postgres://app:***@127.0.0.1:5432/db");
        assert_eq!(super::redact("sqlite://hexabase.db?mode=rwc"), "sqlite://hexabase.db?mode=rwc");
    }
}
