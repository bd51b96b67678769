//! Reading the Kubernetes cluster: the client, the platform's labels, the workspace's
//! shared-pool usage and its workloads.

pub mod labels;
pub mod pods;
pub mod usage;
pub mod workloads;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

/// A client with a short connect timeout: a cluster that is down must give the user a clear
/// message within seconds, not hang a page.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, kube::Error> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(kube::Error::InferKubeconfig)?
        }
        None => Config::infer().await.map_err(kube::Error::InferConfig)?,
    };
    config.connect_timeout = Some(Duration::from_secs(3));
    // The read timeout stays kube's default (295 s): watches are long polls, and a shorter one
    // would cut every idle watch. A hung apiserver is bounded by the HTTP request timeout.
    // kube's default layer retries 429/503 up to 15 times honouring Retry-After (minutes in
    // all): a page would hang and an eviction refused by a budget would look like a stall.
    // Controllers requeue on their own; the dashboard answers at once.
    config.default_retry = false;
    Client::try_from(config)
}

/// A cluster error as a person reads it: the API server's own message and reason, or what
/// kept the request from reaching it.
pub fn error_text(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}

/// What a moved workload's pods select their node by: the Node's `kubernetes.io/hostname`
/// label. The kubelet sets it to the Node's name on the clouds, but Karpenter's kwok provider
/// sets the NodeClaim's name, and a Node name longer than 63 characters cannot be a label
/// value at all; so the label is read, not assumed. The name when the label is missing.
pub fn hostname(node: &Node) -> String {
    node.labels().get(labels::HOSTNAME).cloned().unwrap_or_else(|| node.name_any())
}

/// [`hostname`] of the Node named `name` (the name itself when there is no such Node: the
/// caller's own checks report that).
pub async fn hostname_of(client: &Client, name: &str) -> Result<String, kube::Error> {
    Ok(Api::<Node>::all(client.clone()).get_opt(name).await?.map_or_else(|| name.to_string(), |n| hostname(&n)))
}
