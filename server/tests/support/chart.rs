//! The Helm chart installed for real into a throwaway namespace of the local cluster, and
//! server processes configured exactly as the chart configures its pods: the environment of
//! the Deployment the API server stored (Secret references resolved, as the kubelet does),
//! the catalogue ConfigMap as the file the volume would mount, and a token of the chart's
//! ServiceAccount from the TokenRequest API in place of the in-cluster credentials.
//! KWOK cannot run containers, so the chart's own pods are kept Pending (a nodeSelector no
//! node has) and the replicas run as local processes of the `server` binary cargo built.
//!
//! ```ignore
//! let cell = Cell::start(CellOptions::default()).await; // release + 2 replicas, engine scoped
//! let leader = cell.wait_leader(Duration::from_secs(30)).await;
//! ```

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::Client;
use server::store::Store;

use super::cluster;
use super::{fresh_database, DbKind};

/// The repository root (the tests run in `server/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// The helm binary `hack/helm/build.sh` builds once per machine (`hack/tools.sh` runs it).
pub fn helm() -> PathBuf {
    let out = Command::new("bash").arg(repo_root().join("hack/helm/build.sh")).stderr(Stdio::inherit()).output().expect("run hack/helm/build.sh");
    assert!(out.status.success(), "hack/helm/build.sh failed");
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    assert!(Path::new(&path).is_file(), "hack/helm/build.sh printed no helm binary: {path:?}");
    PathBuf::from(path)
}

/// A free loopback port (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What to install the chart with.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    /// `--set` pairs beyond the ones every test release gets.
    pub set: Vec<(String, String)>,
    /// The engine's scope (`HEXA_CONTROLLER_SCOPE`, through the chart's `server.extraEnv`).
    pub scope: String,
}

/// The chart installed in its own namespace, with its database. Uninstalled (and the
/// namespace deleted) when dropped.
pub struct Release {
    pub namespace: String,
    pub name: String,
    pub database_url: String,
    pub scope: String,
    /// The server container's environment as the kubelet would give it.
    pub env: Vec<(String, String)>,
    /// The catalogue ConfigMap's content, where the volume would mount it.
    pub catalogue: PathBuf,
    /// A kubeconfig with a token of the chart's ServiceAccount.
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    helm: PathBuf,
}

impl Release {
    pub async fn install(client: &Client, opts: ReleaseOptions) -> Release {
        let helm = helm();
        let database_url = fresh_database(DbKind::Postgres).await;
        let namespace = cluster::name("t-chart");
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some([("hexabase.ai/test".to_string(), "chart".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create the release namespace");
        let dir = std::env::temp_dir().join(format!("hexabase-{namespace}"));
        std::fs::create_dir_all(&dir).unwrap();
        let name = "hexa".to_string();
        let extra_env = serde_json::json!([{ "name": "HEXA_CONTROLLER_SCOPE", "value": opts.scope }]).to_string();
        let mut args: Vec<String> = vec![
            "install".into(),
            name.clone(),
            repo_root().join("deploy/chart").display().to_string(),
            "-n".into(),
            namespace.clone(),
            "--set".into(),
            format!("database.url={database_url}"),
            "--set-json".into(),
            format!("server.extraEnv={extra_env}"),
            // KWOK cannot run the containers: the chart's pods stay Pending, the test runs them.
            "--set-json".into(),
            r#"nodeSelector={"hexabase.ai/chart-test":"pods-run-as-test-processes"}"#.into(),
        ];
        for (k, v) in &opts.set {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        let out = Command::new(&helm).args(&args).output().expect("run helm install");
        assert!(out.status.success(), "helm install failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

        // Read back what the API server stored, as the kubelet would.
        let fullname = format!("{name}-hexabase");
        let dep = Api::<Deployment>::namespaced(client.clone(), &namespace).get(&fullname).await.expect("the chart's Deployment");
        let pod = dep.spec.template.spec.expect("a pod template");
        let container = &pod.containers[0];
        let mut env = Vec::new();
        for e in container.env.clone().unwrap_or_default() {
            let value = match (e.value, e.value_from) {
                (Some(v), _) => v,
                (None, Some(from)) => {
                    let r = from.secret_key_ref.expect("only Secret references in the chart's env");
                    let secret = Api::<Secret>::namespaced(client.clone(), &namespace).get(&r.name).await.expect("the referenced Secret");
                    let bytes = secret.data.unwrap_or_default().remove(&r.key).expect("the referenced key");
                    String::from_utf8(bytes.0).expect("UTF-8")
                }
                (None, None) => String::new(),
            };
            env.push((e.name, value));
        }
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("HEXA_LEASE_NAMESPACE").as_deref(), Some(namespace.as_str()), "the Lease lives in the release namespace");
        assert!(get("KUBECONFIG").is_none(), "a pod uses its in-cluster ServiceAccount");
        let mount = container.volume_mounts.clone().unwrap_or_default().into_iter().find(|m| m.name == "catalogue").expect("the catalogue mount");
        let configmap = pod
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == "catalogue")
            .and_then(|v| v.config_map)
            .map(|c| c.name)
            .expect("the catalogue volume is a ConfigMap");
        let data = Api::<ConfigMap>::namespaced(client.clone(), &namespace).get(&configmap).await.expect("the catalogue ConfigMap").data.unwrap_or_default();
        let mounted = get("HEXA_CATALOGUE").expect("HEXA_CATALOGUE");
        let file = mounted.strip_prefix(&format!("{}/", mount.mount_path)).expect("HEXA_CATALOGUE is a file of the catalogue mount");
        let catalogue = dir.join("catalogue.yaml");
        std::fs::write(&catalogue, data.get(file).expect("the catalogue file in the ConfigMap")).unwrap();

        let sa = pod.service_account_name.expect("the pod's ServiceAccount");
        let kubeconfig = dir.join("kubeconfig");
        write_service_account_kubeconfig(client, &namespace, &sa, &kubeconfig).await;
        Release { namespace, name, database_url, scope: opts.scope, env, catalogue, kubeconfig, dir, helm }
    }

    /// The environment of a replica named `replica` listening on `port`: the chart's, with what
    /// only a pod provides supplied by the test (address, mounted catalogue, credentials,
    /// hostname, the image's site files).
    pub fn replica_env(&self, replica: &str, port: u16) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = self.env.iter().cloned().collect();
        env.insert("LISTEN_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("HEXA_CATALOGUE".into(), self.catalogue.display().to_string());
        env.insert("KUBECONFIG".into(), self.kubeconfig.display().to_string());
        env.insert("HOSTNAME".into(), replica.to_string());
        env.insert("LEPTOS_SITE_ROOT".into(), repo_root().join("target/site").display().to_string());
        env.into_iter().collect()
    }

    /// A direct handle on the release's database.
    pub async fn store(&self) -> Store {
        Store::new(server::db::connect(&self.database_url).await.expect("connect the release's database"))
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let (helm, name, ns) = (self.helm.clone(), self.name.clone(), self.namespace.clone());
        let _ = Command::new(helm).args(["uninstall", &name, "-n", &ns, "--wait=false"]).output();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let client = cluster::client().await;
                let _ = Api::<Namespace>::all(client).delete(&ns, &DeleteParams::background()).await;
            });
        })
        .join()
        .ok();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A kubeconfig for the cluster `KUBECONFIG` names, authenticated as the ServiceAccount with a
/// token from the TokenRequest API (what `hack/helm/sa-kubeconfig.sh` writes with kubectl).
pub async fn write_service_account_kubeconfig(client: &Client, namespace: &str, sa: &str, path: &Path) {
    let request = TokenRequest { spec: Some(TokenRequestSpec { expiration_seconds: Some(4 * 3600), ..Default::default() }), ..Default::default() };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .expect("a token of the chart's ServiceAccount")
        .status
        .expect("a token")
        .token;
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&admin).expect("read KUBECONFIG")).expect("a kubeconfig");
    let user = format!("{namespace}-{sa}");
    kc["users"] = serde_yaml::to_value(vec![serde_json::json!({ "name": user, "user": { "token": token } })]).unwrap();
    if let Some(contexts) = kc["contexts"].as_sequence_mut() {
        for c in contexts {
            c["context"]["user"] = user.clone().into();
            c["context"]["namespace"] = namespace.into();
        }
    }
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(path).unwrap();
    f.write_all(serde_yaml::to_string(&kc).unwrap().as_bytes()).unwrap();
}

/// One `server` process (a replica), started and killed like a pod's container.
pub struct Replica {
    pub name: String,
    pub base: String,
    pub port: u16,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
}

impl Replica {
    /// Starts `server` (the binary cargo built for these tests) with exactly `env`.
    pub fn spawn(release: &Release, name: &str) -> Replica {
        let port = free_port();
        let mut r = Replica {
            name: name.to_string(),
            base: format!("http://127.0.0.1:{port}"),
            port,
            env: release.replica_env(name, port),
            log: release.dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
        };
        r.start();
        r
    }

    /// Starts the process again (same name and port, a new engine identity), like a
    /// restarted container.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        writeln!(log, "=== start {} of {}", self.starts + 1, self.name).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the server binary");
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL, like `kill -9` or an OOM kill: nothing runs after it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub async fn wait_ready(&mut self, timeout: Duration) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            assert!(self.running(), "{} exited; its log:\n{}", self.name, self.log_tail(60));
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{} not ready within {timeout:?}; its log:\n{}", self.name, self.log_tail(60));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// How many times this replica's log says it took the engine.
    pub fn engine_starts(&self) -> usize {
        self.log_text().matches("this replica runs the engine").count()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} (last lines of {}) ---\n{}", self.name, self.log.display(), self.log_tail(40));
        }
        self.kill();
    }
}

/// Who holds the engine Lease in `namespace` now (its identity), if anyone validly does.
pub async fn lease_holder(client: &Client, namespace: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace).get_opt(server::leader::LEASE_NAME).await.ok()??;
    let spec = lease.spec?;
    server::leader::valid_holder(&spec, k8s_openapi::jiff::Timestamp::now()).map(str::to_string)
}

/// What a cell is made with.
#[derive(Debug, Clone, Default)]
pub struct CellOptions {
    /// `--set` pairs for the chart.
    pub set: Vec<(String, String)>,
}

/// A release and two replicas of it: what a platform runs, minus the kubelet.
pub struct Cell {
    pub client: Client,
    pub replicas: Vec<Replica>,
    pub store: Store,
    // Dropped last: the replicas stop before the namespace goes.
    pub release: Release,
}

impl Cell {
    pub async fn start(opts: CellOptions) -> Cell {
        let client = cluster::client().await;
        let scope = cluster::name("scope");
        let release = Release::install(&client, ReleaseOptions { set: opts.set, scope }).await;
        // The database is migrated by the first replica; seed it like an operator would.
        let mut replicas = vec![Replica::spawn(&release, "replica-a"), Replica::spawn(&release, "replica-b")];
        for r in &mut replicas {
            r.wait_ready(Duration::from_secs(90)).await;
        }
        let store = release.store().await;
        server::seed::seed_demo(&store).await.expect("seed the demo account");
        Cell { client, replicas, store, release }
    }

    pub fn scope(&self) -> &str {
        &self.release.scope
    }

    /// The replica whose identity holds the Lease now.
    pub async fn leader(&self) -> Option<usize> {
        let holder = lease_holder(&self.client, &self.release.namespace).await?;
        self.replicas.iter().position(|r| holder.starts_with(&format!("{}-", r.name)))
    }

    /// The full identity holding the Lease now.
    pub async fn holder(&self) -> Option<String> {
        lease_holder(&self.client, &self.release.namespace).await
    }

    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader().await {
                return i;
            }
            assert!(Instant::now() < deadline, "no replica took the engine Lease within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the Lease is held by an identity other than `old`; returns how long that
    /// took from `since` and the new holder.
    pub async fn wait_takeover(&self, old: &str, since: Instant, timeout: Duration) -> (Duration, String) {
        let deadline = since + timeout;
        loop {
            if let Some(h) = self.holder().await {
                if h != old {
                    return (since.elapsed(), h);
                }
            }
            assert!(Instant::now() < deadline, "nobody took over from {old} within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
