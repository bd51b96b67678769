//! Configuration from flags and environment variables (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The dedicated node provider (`--node-provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeProviderKind {
    Kwok,
    Karpenter,
}

/// Where the dashboard reads the cluster from (`--cluster-reads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterReadsKind {
    /// Watch caches: one watch per kind, pages read memory (the default).
    Cache,
    /// The API server on every read: for benchmarks, and to rule the cache out.
    Direct,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "hexabase", about = "Hexabase.AI dashboard: dedicated nodes and zero-downtime workload migration")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// `sqlite://path?mode=rwc` (default, embedded) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://hexabase.db?mode=rwc")]
    pub database_url: String,
    /// Kubeconfig of the cluster to manage; without it the usual in-cluster/~/.kube lookup applies.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Folder with the built site (`pkg/` with the wasm bundle, and public assets).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
    /// Mark session cookies `Secure` (HTTPS only). Default: on, unless the server listens on
    /// loopback (a local `make run` over plain HTTP).
    #[arg(long, env = "SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Proxies whose `X-Forwarded-For` is believed (comma-separated addresses or CIDRs, e.g.
    /// `10.0.0.0/8`). A request from any other peer is attributed to the peer itself.
    #[arg(long, env = "HEXA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Create the demo account and workspaces (idempotent).
    #[arg(long, env = "SEED_DEMO", default_value_t = false)]
    pub seed_demo: bool,
    /// Requests that take longer are answered 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// The size and region catalogue (YAML); defaults to the repository's deploy/catalogue.yaml.
    #[arg(long, env = "HEXA_CATALOGUE")]
    pub catalogue: Option<PathBuf>,
    /// Run the engine (the provisioning and migration controllers) in this process.
    #[arg(long, env = "HEXA_ENGINE", default_value_t = true, action = clap::ArgAction::Set)]
    pub engine: bool,
    /// Prometheus HTTP API base URL (e.g. http://127.0.0.1:9090) for the migration latency guard;
    /// without it the guard is not offered.
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// PromQL for a workload's p95 latency in seconds, with {namespace} and {workload}.
    #[arg(long, env = "HEXA_LATENCY_QUERY")]
    pub latency_query: Option<String>,
    /// How long the kwok provider's machines take to "boot", in milliseconds.
    #[arg(long, env = "HEXA_PROVISION_STEP_DELAY_MS", default_value_t = 800)]
    pub provision_step_delay_ms: u64,
    /// What makes dedicated nodes: `karpenter` (a NodeClaim per order, launched by Karpenter,
    /// as clusters on AWS and Azure get nodes) or `kwok` (Node objects that KWOK keeps Ready:
    /// no cloud, for tests). `make run` and the end-to-end tests use `karpenter`.
    #[arg(long, env = "HEXA_NODE_PROVIDER", value_enum, default_value = "kwok")]
    pub node_provider: NodeProviderKind,
    /// API group of the node class the NodeClaims name (`karpenter.k8s.aws` on AWS,
    /// `karpenter.azure.com` on Azure).
    #[arg(long, env = "HEXA_KARPENTER_NODE_CLASS_GROUP", default_value = "karpenter.kwok.sh")]
    pub karpenter_node_class_group: String,
    /// Kind of that node class (`EC2NodeClass` on AWS, `AKSNodeClass` on Azure).
    #[arg(long, env = "HEXA_KARPENTER_NODE_CLASS_KIND", default_value = "KWOKNodeClass")]
    pub karpenter_node_class_kind: String,
    /// Name of that node class; a catalogue region's `node_classes: { karpenter: <name> }`
    /// replaces it for that region.
    #[arg(long, env = "HEXA_KARPENTER_NODE_CLASS_NAME", default_value = "default")]
    pub karpenter_node_class_name: String,
    /// This replica's name in the engine lease (the pod name in a cluster).
    #[arg(long, env = "HOSTNAME", default_value = "server")]
    pub replica_id: String,
    /// How often expired sessions are deleted from the database, in seconds.
    #[arg(long, env = "HEXA_SESSION_PURGE_INTERVAL_SECS", default_value_t = 3600)]
    pub session_purge_interval_secs: u64,
    /// Namespace of the Lease that elects the one replica running the engine.
    #[arg(long, env = "HEXA_LEASE_NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// The engine takes only the DedicatedNodes and WorkloadMigrations labelled
    /// `hexabase.ai/controller-scope=<scope>` (tests run engines side by side on one cluster);
    /// without it, every one without that label.
    #[arg(long, env = "HEXA_CONTROLLER_SCOPE")]
    pub controller_scope: Option<String>,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// Where pages read the cluster from: `cache` (watch caches, the default) or `direct`
    /// (the API server on every read; for benchmarks and to rule the cache out).
    #[arg(long, env = "HEXA_CLUSTER_READS", value_enum, default_value = "cache")]
    pub cluster_reads: ClusterReadsKind,
}

/// An address (`10.0.0.5`) or a network (`10.0.0.0/8`).
fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("\"{s}\" is not an IP address or CIDR network"))
}

impl Config {
    /// Whether session cookies carry `Secure`: as set, or on unless listening on loopback.
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies.unwrap_or(!self.listen.ip().is_loopback())
    }
}
