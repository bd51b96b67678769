//! A node's usage history, end to end on the local cluster: KWOK emulates each kubelet's
//! `/metrics/resource` with the usage a pod's annotations set (`hack/cluster/kwok/usage.yaml`),
//! the cluster's own Prometheus scrapes it (`hack/cluster/up.sh`), and the dashboard's range
//! queries (`server::prometheus::node_usage`, and `workload_usage` for the migration report)
//! read it back.
//!
//! Needs the cluster `make test` starts (`KUBECONFIG`, `PROMETHEUS_URL`).

mod support;

use std::time::{Duration, Instant};

use app::model::{UsageRange, WorkloadKind};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use server::prometheus::{node_usage, workload_usage, Prometheus};
use support::cluster::{client, kwok_node, name, node_ready, wait_until, Cleanup};

const MIB: f64 = 1024.0 * 1024.0;

fn prometheus() -> Prometheus {
    let url = std::env::var("PROMETHEUS_URL")
        .expect("PROMETHEUS_URL is not set: run `make test`, or source $HEXA_CLUSTER_DIR/env of a cluster hack/cluster/up.sh started");
    Prometheus::new(&url)
}

/// A pod pinned to `node` whose emulated container uses exactly `cpu` and `memory`, whatever
/// it requests (its requests, 2 vCPU and 1 GiB, are far from both: usage read back as a share
/// of the requests would not pass for the annotations').
fn pod_using(name: &str, node: &str, cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "annotations": { "kwok.x-k8s.io/usage-cpu": cpu, "kwok.x-k8s.io/usage-memory": memory } },
        "spec": {
            "nodeName": node,
            "tolerations": [{ "operator": "Exists" }],
            "containers": [{ "name": "app", "image": "registry.example/app:1", "resources": { "requests": { "cpu": "2", "memory": "1Gi" } } }]
        }
    }))
    .expect("a valid Pod")
}

#[tokio::test]
async fn prometheus_scraping_kwok_reads_back_the_usage_the_pods_were_given() {
    let client = client().await;
    let prom = prometheus();
    let mut cleanup = Cleanup::new(&client);
    let node = name("usage");
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = serde_json::json!({ "hexabase.ai/node-pool": "dedicated" });
    nodes.create(&PostParams::default(), &kwok_node(&node, "4", "8Gi", labels, Some(("usage-test", &node)))).await.expect("create the node");
    cleanup.track_node(&node);
    wait_until(&nodes, &node, Duration::from_secs(60), "the node is Ready", node_ready).await;

    let ns = cleanup.namespace("usage", &[]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // Named as a Deployment's pods are: the migration report reads a workload's CPU by them.
    for (pod, cpu, memory) in [("web-6f7d8c9b5-a1b2c", "250m", "300Mi"), ("worker-6f7d8c9b5-x9y8z", "500m", "200Mi")] {
        pods.create(&PostParams::default(), &pod_using(pod, &node, cpu, memory)).await.expect("create a pod");
    }

    // Discovery refreshes and Prometheus scrapes every 5 s, and a rate needs two scrapes:
    // the numbers arrive within a few scrape intervals.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (cpu, memory) =
            match node_usage::read(&prom, &node, UsageRange::Hour, node_usage::bounds(UsageRange::Hour, now + UsageRange::Hour.step_seconds())).await {
                Ok(points) => points,
                Err(e) => panic!("Prometheus did not answer the usage queries: {e}"),
            };
        let (cpu_now, memory_now) = (cpu.last().map(|p| p.1), memory.last().map(|p| p.1));
        let cpu_ok = cpu_now.is_some_and(|c| (c - 0.75).abs() < 0.03);
        let memory_ok = memory_now.is_some_and(|m| (m - 500.0 * MIB).abs() < MIB);
        if cpu_ok && memory_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node's usage did not reach 0.75 vCPU / 500 MiB within {:?}: last read {cpu_now:?} cores, {:?} MiB",
            deadline - started,
            memory_now.map(|m| m / MIB)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("usage of {node} read back through Prometheus {:.1} s after the pods were created", started.elapsed().as_secs_f64());

    // A workload's CPU, as the migration report reads it: its pods only, by their names.
    // Its 60 s rate window is accurate once it no longer reaches back to the pods' start
    // (Prometheus does not extrapolate a counter's rate back past the series' first sample).
    let web = workload_usage::cpu_query(&ns, WorkloadKind::Deployment, "web", 60);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let web_now = prom.range(&web, now - 300, now, 15).await.expect("the workload's CPU").last().map(|p| p.1);
        if web_now.is_some_and(|c| (c - 0.25).abs() < 0.02) {
            eprintln!("web's CPU read back {:.1} s after the pods were created", started.elapsed().as_secs_f64());
            break;
        }
        assert!(Instant::now() < deadline, "web's pods use 0.25 vCPU (worker's 0.5 not counted): read {web_now:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let we = prom.range(&workload_usage::cpu_query(&ns, WorkloadKind::Deployment, "we", 60), now - 300, now, 15).await.expect("query");
    assert!(we.is_empty(), "a prefix of a workload's name matches none of its pods: {we:?}");

    // Another node's series are not this node's: a name that is a prefix matches nothing.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (cpu, memory) = node_usage::read(&prom, &node[..node.len() - 1], UsageRange::Hour, node_usage::bounds(UsageRange::Hour, now)).await.expect("query");
    assert!(cpu.is_empty() && memory.is_empty(), "a prefix of the node's name must match no series: {cpu:?} {memory:?}");
}
