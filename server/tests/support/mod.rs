//! Test harness: a real server on a loopback port backed by a fresh SQLite file or a fresh
//! PostgreSQL database, a cookie-keeping HTTP client, and a client for the local cluster.
#![allow(dead_code)]

pub mod availability;
pub mod chart;
pub mod cluster;
pub mod dashboard;
pub mod faults;
pub mod prometheus;
pub mod scenario;

use std::net::SocketAddr;
use std::path::PathBuf;

use server::config::{Config, LogFormat};
use server::store::Store;
use tokio::sync::oneshot;

/// The two database backends every database-touching test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL when `TEST_POSTGRES_URL` is set (`make test` always sets it and
/// also sets `HEXA_REQUIRE_POSTGRES=1`, so a missing database fails rather than skips).
pub fn backends() -> Vec<DbKind> {
    let mut kinds = vec![DbKind::Sqlite];
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        kinds.push(DbKind::Postgres);
    } else if std::env::var("HEXA_REQUIRE_POSTGRES").is_ok() {
        panic!("HEXA_REQUIRE_POSTGRES is set but TEST_POSTGRES_URL is not");
    } else {
        eprintln!("note: TEST_POSTGRES_URL not set; PostgreSQL variant skipped (make test sets it)");
    }
    kinds
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", server::db::new_id())
}

/// A fresh, empty database of the given kind; returns its URL.
pub async fn fresh_database(kind: DbKind) -> String {
    match kind {
        DbKind::Sqlite => {
            let path: PathBuf = std::env::temp_dir().join(format!("{}.db", unique("hexabase-test-")));
            format!("sqlite://{}?mode=rwc", path.display())
        }
        DbKind::Postgres => {
            use sqlx::Connection;
            let admin = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL");
            let name = unique("t_");
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let base = admin.rsplit_once('/').expect("database in URL").0;
            format!("{base}/{name}")
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub database_url: String,
    pub kind: DbKind,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a seeded server on a free port. The cluster is the one `KUBECONFIG` names, if any.
    pub async fn start(kind: DbKind) -> TestServer {
        Self::start_with(kind, |_| {}).await
    }

    /// The same, with the configuration changed by `adjust` first.
    pub async fn start_with(kind: DbKind, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let database_url = fresh_database(kind).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let config = Config {
            listen: addr,
            database_url: database_url.clone(),
            kubeconfig: std::env::var_os("KUBECONFIG").map(PathBuf::from),
            site_root: "target/site".into(),
            secure_cookies: None,
            trusted_proxies: vec![],
            seed_demo: true,
            request_timeout_secs: 30,
            catalogue: None,
            // Tests that need the engine run it themselves, scoped to their own objects.
            engine: false,
            lease_namespace: "kube-system".into(),
            controller_scope: None,
            prometheus_url: None,
            latency_query: None,
            provision_step_delay_ms: 0,
            node_provider: server::config::NodeProviderKind::Kwok,
            karpenter_node_class_group: "karpenter.kwok.sh".into(),
            karpenter_node_class_kind: "KWOKNodeClass".into(),
            karpenter_node_class_name: "default".into(),
            replica_id: "test".into(),
            // Often, so the test of the purge does not wait long.
            session_purge_interval_secs: 1,
            cluster_reads: server::config::ClusterReadsKind::Cache,
            log_format: LogFormat::Pretty,
        };
        let mut config = config;
        adjust(&mut config);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::serve(config, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let base = format!("http://{addr}");
        let server = TestServer { base: base.clone(), http: client(&base), database_url, kind, shutdown: Some(tx), task: Some(task) };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server did not become ready at {}", self.base);
    }

    /// A second, cookie-less client (another browser).
    pub fn new_client(&self) -> reqwest::Client {
        client(&self.base)
    }

    /// Calls a server function the way the browser's ActionForm does (form-encoded POST).
    pub async fn call(&self, http: &reqwest::Client, name: &str, form: &[(&str, &str)]) -> reqwest::Response {
        http.post(format!("{}/api/{name}", self.base)).form(form).send().await.expect("request sent")
    }

    pub async fn sign_in(&self, http: &reqwest::Client, email: &str, password: &str) -> reqwest::Response {
        self.call(http, "sign_in", &[("email", email), ("password", password)]).await
    }

    /// A client signed in as the demo user.
    pub async fn demo_client(&self) -> reqwest::Client {
        let http = self.new_client();
        let r = self.sign_in(&http, "dev@example.com", "hexabase-demo").await;
        assert!(r.status().is_success() || r.status().is_redirection(), "demo sign-in: {}", r.status());
        http
    }

    /// A direct handle on the same database, to check what a request changed.
    pub async fn store(&self) -> Store {
        Store::new(server::db::connect(&self.database_url).await.expect("connect test database"))
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Browsers send Origin on every POST; the server refuses state changes without it.
fn client(base: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ORIGIN, base.parse().unwrap());
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).default_headers(headers).build().unwrap()
}
