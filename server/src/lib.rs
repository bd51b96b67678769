#![recursion_limit = "256"]
//! The Hexabase.AI server: configuration, the database, sign-in and sessions, the cluster
//! reader, and the HTTP surface. `main.rs` wires them; tests drive them directly.

pub mod auth;
pub mod backend;
pub mod catalogue;
pub mod crd;
pub mod cluster;
pub mod config;
pub mod db;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod migration;
pub mod planning;
pub mod provisioning;
pub mod seed;
pub mod store;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leptos::prelude::LeptosOptions;

use crate::auth::rate_limit::LoginLimiter;
use crate::backend::DashboardBackend;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::store::Store;
use crate::web::AppState;

/// Builds the application state from configuration: connects the database (running
/// migrations), seeds the demo when asked, and connects the cluster if one is configured.
pub async fn build_state(config: &Config) -> anyhow_like::Result<AppState> {
    let db = db::connect(&config.database_url).await.map_err(|e| anyhow_like::msg(format!("database {}: {e}", redact(&config.database_url))))?;
    let store = Store::new(db);
    if config.seed_demo {
        seed::seed_demo(&store).await.map_err(|e| anyhow_like::msg(format!("seeding demo data: {e}")))?;
    }
    let catalogue = Arc::new(match &config.catalogue {
        Some(path) => Catalogue::load(path),
        None => Catalogue::load_default(),
    }
    .map_err(|e| anyhow_like::msg(format!("catalogue: {e}")))?);
    let kube = match cluster::connect(config.kubeconfig.as_deref()).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes cluster: pages will say so");
            None
        }
    };
    if let (Some(client), true) = (&kube, config.engine) {
        start_engine(client.clone(), store.clone(), catalogue.clone(), config).await;
    }
    let backend = DashboardBackend::new(store.clone(), kube.clone(), catalogue, config.prometheus_url.is_some(), LoginLimiter::default(), config.secure_cookies);
    let leptos = LeptosOptions::builder()
        .output_name("hexabase")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.listen)
        .build();
    Ok(AppState { leptos, store, backend, kube, metrics: Arc::new(metrics::Metrics::default()) })
}

/// Installs the custom resources and, while this replica holds the engine lease, runs the
/// controllers, in the background. A cluster that is down at start-up is retried: the
/// dashboard serves meanwhile and says so.
async fn start_engine(client: kube::Client, store: Store, catalogue: Arc<Catalogue>, config: &Config) {
    let lease_namespace = config.lease_namespace.clone();
    let migration_config = migration::Config { prometheus_url: config.prometheus_url.clone(), ..migration::Config::default() };
    let metrics: Option<Arc<dyn migration::MetricsSource>> = config
        .prometheus_url
        .as_deref()
        .map(|url| Arc::new(migration::PrometheusSource::new(url, config.latency_query.as_deref())) as Arc<dyn migration::MetricsSource>);
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        while let Err(e) = provisioning::ensure_crds(client.clone()).await {
            tracing::warn!(error = %e, retry_in = ?wait, "cannot install the custom resources yet");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
        let identity = format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "server".into()), &db::new_id()[..8]);
        let elector = leader::LeaderElector::new(client.clone(), &lease_namespace, identity);
        elector
            .run(move || {
                let provisioning_ctx = Arc::new(provisioning::Context::new(client.clone(), store.clone(), catalogue.clone(), provisioning::Config::from_env()));
                let migration_ctx = Arc::new(migration::Context::new(client.clone(), store.clone(), migration_config.clone(), metrics.clone()));
                let client = client.clone();
                async move {
                    tokio::join!(provisioning::run(client.clone(), provisioning_ctx), migration::run(client, migration_ctx));
                }
            })
            .await;
    });
}

pub async fn serve(config: Config, listener: tokio::net::TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow_like::Result<()> {
    let state = build_state(&config).await?;
    let app = web::router(state, Duration::from_secs(config.request_timeout_secs));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow_like::msg(e.to_string()))
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

/// A tiny boxed error for start-up failures: they are reported, never matched on.
pub mod anyhow_like {
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
    pub type Result<T> = std::result::Result<T, Error>;
    pub fn msg(m: String) -> Error {
        m.into()
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
