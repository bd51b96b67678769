//! A `kube::Client` for the local harness cluster, and per-test namespaces and nodes that
//! are deleted when the test ends (also when it fails).

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;

/// The harness cluster's client. `make test` exports `KUBECONFIG`; without it these tests
/// fail with a message saying how to start the cluster.
pub async fn client() -> Client {
    let path = std::env::var_os("KUBECONFIG").expect("KUBECONFIG is not set: run `make cluster-up` and export what it prints, or run `make test`");
    server::cluster::connect(Some(std::path::Path::new(&path))).await.expect("connect to the local cluster")
}

/// A unique DNS-1123 name for a test object.
pub fn name(prefix: &str) -> String {
    format!("{prefix}-{}", &server::db::new_id()[..10])
}

/// Deletes what a test created when dropped.
pub struct Cleanup {
    client: Client,
    namespaces: Vec<String>,
    nodes: Vec<String>,
}

impl Cleanup {
    pub fn new(client: &Client) -> Self {
        Self { client: client.clone(), namespaces: vec![], nodes: vec![] }
    }

    pub async fn namespace(&mut self, prefix: &str, labels: &[(&str, &str)]) -> String {
        let ns_name = name(prefix);
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(ns_name.clone()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
        self.namespaces.push(ns_name.clone());
        ns_name
    }

    pub fn track_node(&mut self, node: &str) {
        self.nodes.push(node.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let namespaces = std::mem::take(&mut self.namespaces);
        let nodes = std::mem::take(&mut self.nodes);
        // Drop cannot await; run the deletes to completion on a separate thread and runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                // A fresh client: the test's client belongs to the test's runtime.
                let client = client().await;
                for ns in namespaces {
                    let _ = Api::<Namespace>::all(client.clone()).delete(&ns, &DeleteParams::background()).await;
                }
                for n in nodes {
                    let _ = Api::<Node>::all(client.clone()).delete(&n, &DeleteParams::default()).await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// Polls `name` until `ready` holds, failing the test with `what` after `timeout`. Polling a GET
/// (not a watch) keeps the wait independent of watch-cache timing.
pub async fn wait_until<K>(api: &kube::Api<K>, name: &str, timeout: std::time::Duration, what: &str, ready: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            if ready(&obj) {
                return obj;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{what}: not reached within {timeout:?}; last seen: {obj:?}");
            }
        } else if tokio::time::Instant::now() >= deadline {
            panic!("{what}: {name} not found within {timeout:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A Node that KWOK manages (annotation `kwok.x-k8s.io/node=fake`), with the given capacity
/// (also its allocatable), extra labels and an optional `NoSchedule` taint `key=value`.
pub fn kwok_node(name: &str, cpu: &str, memory: &str, labels: serde_json::Value, taint: Option<(&str, &str)>) -> Node {
    let mut labels = labels;
    labels["type"] = serde_json::json!("kwok");
    labels["kubernetes.io/hostname"] = serde_json::json!(name);
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "annotations": { "kwok.x-k8s.io/node": "fake" }, "labels": labels },
        "spec": { "taints": taint.map(|(k, v)| vec![serde_json::json!({ "key": k, "value": v, "effect": "NoSchedule" })]).unwrap_or_default() },
        "status": {
            "capacity": { "cpu": cpu, "memory": memory, "pods": "110" },
            "allocatable": { "cpu": cpu, "memory": memory, "pods": "110" }
        }
    }))
    .expect("a valid Node")
}

pub fn node_ready(n: &Node) -> bool {
    n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
