//! The Kubernetes behaviour the engine relies on, shown on the real local cluster
//! (kube-apiserver, controller-manager, scheduler, KWOK kubelets).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, PostParams};
use serde_json::json;
use support::cluster::{self, Cleanup};

const WAIT: Duration = Duration::from_secs(60);

fn fake_node(name: &str, cpu: &str, memory: &str, taint: Option<&str>) -> Node {
    cluster::kwok_node(name, cpu, memory, json!({ "hexabase.ai/test-node": name }), taint.map(|t| (t, "test")))
}

use cluster::node_ready;

fn available(replicas: i32) -> impl Fn(&Deployment) -> bool {
    move |d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(replicas)
}

fn deployment(name: &str, replicas: i32, node: &str, cpu: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "nodeSelector": { "hexabase.ai/test-node": node },
                    "containers": [{ "name": "app", "image": "nginx:1.27", "resources": { "requests": { "cpu": cpu, "memory": "64Mi" } } }]
                }
            }
        }
    }))
    .unwrap()
}

async fn create_ready_node(c: &kube::Client, cleanup: &mut Cleanup, name: &str, taint: Option<&str>) -> Node {
    let nodes: Api<Node> = Api::all(c.clone());
    nodes.create(&PostParams::default(), &fake_node(name, "4", "8Gi", taint)).await.expect("create node");
    cleanup.track_node(name);
    cluster::wait_until(&nodes, name, WAIT, "node Ready", node_ready).await
}

#[tokio::test]
async fn a_kwok_node_becomes_ready_with_the_capacity_it_was_given() {
    let c = cluster::client().await;
    let mut cleanup = Cleanup::new(&c);
    let name = cluster::name("t-node");
    let node = create_ready_node(&c, &mut cleanup, &name, None).await;
    let status = node.status.unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "4");
    assert_eq!(status.allocatable.as_ref().unwrap()["memory"].0, "8Gi");
}

#[tokio::test]
async fn a_deployment_rolls_out_and_its_pods_become_ready() {
    let c = cluster::client().await;
    let mut cleanup = Cleanup::new(&c);
    let node = cluster::name("t-node");
    create_ready_node(&c, &mut cleanup, &node, None).await;
    let ns = cleanup.namespace("t-rollout", &[]).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
    deploys.create(&PostParams::default(), &deployment("web", 3, &node, "100m")).await.unwrap();
    cluster::wait_until(&deploys, "web", WAIT, "rollout of 3 replicas", available(3)).await;

    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(list.items.len(), 3);
    for p in list.items {
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some(node.as_str()), "scheduled by the real scheduler");
        let ready = p.status.unwrap().conditions.unwrap().into_iter().any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "KWOK made the pod Ready");
    }
}

#[tokio::test]
async fn a_pod_selecting_a_tainted_node_without_the_toleration_stays_pending_unschedulable() {
    let c = cluster::client().await;
    let mut cleanup = Cleanup::new(&c);
    let node = cluster::name("t-tainted");
    create_ready_node(&c, &mut cleanup, &node, Some("hexabase.ai/dedicated")).await;
    let ns = cleanup.namespace("t-taint", &[]).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
    deploys.create(&PostParams::default(), &deployment("intruder", 1, &node, "100m")).await.unwrap();

    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    let unschedulable = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")))
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = pods.list(&ListParams::default().labels("app=intruder")).await.unwrap();
        if let Some(p) = list.items.iter().find(|p| unschedulable(p)) {
            assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
            let msg =
                p.status.as_ref().unwrap().conditions.as_ref().unwrap().iter().find(|c| c.type_ == "PodScheduled").unwrap().message.clone().unwrap_or_default();
            assert!(msg.contains("untolerated taint"), "the scheduler names the taint: {msg}");
            assert!(p.spec.as_ref().unwrap().node_name.is_none());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "pod never reported Unschedulable");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn an_eviction_respects_a_pod_disruption_budget() {
    let c = cluster::client().await;
    let mut cleanup = Cleanup::new(&c);
    let node = cluster::name("t-node");
    create_ready_node(&c, &mut cleanup, &node, None).await;
    let ns = cleanup.namespace("t-pdb", &[]).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns);
    deploys.create(&PostParams::default(), &deployment("web", 2, &node, "100m")).await.unwrap();
    cluster::wait_until(&deploys, "web", WAIT, "rollout of 2 replicas", available(2)).await;

    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), &ns);
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": "web" },
        "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } }
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    // The disruption controller computes the budget: wait until it has observed the pods.
    cluster::wait_until(&pdbs, "web", WAIT, "budget observed", |p| {
        p.status.as_ref().is_some_and(|s| s.current_healthy == Some(2) && s.observed_generation == Some(1))
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    let victim = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items[0].metadata.name.clone().unwrap();
    let err = pods.evict(&victim, &EvictParams::default()).await.expect_err("the budget forbids the eviction");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 429, "{s:?}");
            assert!(s.message.contains("disruption budget"), "{}", s.message);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(pods.get(&victim).await.is_ok(), "the pod is still there");

    // With the budget relaxed the same eviction goes through.
    let relaxed: BTreeMap<&str, serde_json::Value> = BTreeMap::from([("spec", json!({ "minAvailable": 1 }))]);
    pdbs.patch("web", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&relaxed)).await.unwrap();
    cluster::wait_until(&pdbs, "web", WAIT, "budget relaxed", |p| {
        p.status.as_ref().is_some_and(|s| s.observed_generation == Some(2) && s.disruptions_allowed.unwrap_or(0) >= 1)
    })
    .await;
    pods.evict(&victim, &EvictParams::default()).await.expect("eviction allowed once the budget permits");
}

/// The shared-pool quota is scoped to pods outside the dedicated priority class, and the
/// admission policy lets only pods on a dedicated node of their own workspace use that class:
/// what runs on a dedicated node leaves the quota, and nothing else can.
#[tokio::test]
async fn the_dedicated_class_leaves_the_shared_quota_and_only_dedicated_pods_may_use_it() {
    use k8s_openapi::api::core::v1::ResourceQuota;

    let c = cluster::client().await;
    server::engine::install::ensure_platform(c.clone()).await.expect("platform installed");
    let mut cleanup = Cleanup::new(&c);
    let ws = cluster::name("ws");
    let ns = cleanup.namespace("t-quota", &[("hexabase.ai/workspace", &ws)]).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), &ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": { "name": "workspace-quota" },
        "spec": { "hard": { "requests.cpu": "1" }, "scopeSelector": { "matchExpressions": [{ "scopeName": "PriorityClass", "operator": "NotIn", "values": ["hexabase-dedicated"] }] } }
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    cluster::wait_until(&quotas, "workspace-quota", WAIT, "quota counted", |q: &ResourceQuota| q.status.as_ref().and_then(|s| s.hard.as_ref()).is_some()).await;

    let node = cluster::name("t-dedicated");
    let nodes: Api<Node> = Api::all(c.clone());
    let labels = json!({ "hexabase.ai/node-pool": "dedicated", "hexabase.ai/workspace": ws });
    nodes.create(&PostParams::default(), &cluster::kwok_node(&node, "4", "8Gi", labels, Some(("hexabase.ai/dedicated", &ws)))).await.unwrap();
    cleanup.track_node(&node);
    cluster::wait_until(&nodes, &node, WAIT, "node Ready", node_ready).await;

    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    let pod = |name: &str, class: Option<&str>, selector: serde_json::Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "priorityClassName": class,
                "nodeSelector": selector,
                "tolerations": [{ "key": "hexabase.ai/dedicated", "operator": "Equal", "value": ws, "effect": "NoSchedule" }],
                "containers": [{ "name": "app", "image": "nginx:1.27", "resources": { "requests": { "cpu": "600m" } } }]
            }
        }))
        .unwrap()
    };
    let on_dedicated = json!({ "kubernetes.io/hostname": node, "hexabase.ai/node-pool": "dedicated", "hexabase.ai/workspace": ws });
    pods.create(&PostParams::default(), &pod("moved", Some("hexabase-dedicated"), on_dedicated)).await.expect("a dedicated pod is admitted");
    let used = |q: &ResourceQuota| q.status.as_ref().and_then(|s| s.used.as_ref()).and_then(|u| u.get("requests.cpu")).map(|q| q.0.clone());
    assert_eq!(used(&quotas.get("workspace-quota").await.unwrap()).as_deref(), Some("0"), "the dedicated pod is not on the shared quota");
    pods.create(&PostParams::default(), &pod("shared", None, json!({ "hexabase.ai/node-pool": "shared" }))).await.expect("a shared pod within quota");
    assert_eq!(used(&quotas.get("workspace-quota").await.unwrap()).as_deref(), Some("600m"), "the shared pod counts");

    // The class is no way around the quota: refused off a dedicated node of the workspace.
    for (name, selector) in [
        ("sneaky-shared", json!({ "hexabase.ai/node-pool": "shared" })),
        ("sneaky-other", json!({ "hexabase.ai/node-pool": "dedicated", "hexabase.ai/workspace": "someone-else" })),
        ("sneaky-none", json!({})),
    ] {
        let err = pods.create(&PostParams::default(), &pod(name, Some("hexabase-dedicated"), selector)).await.expect_err(name);
        let message = match err {
            kube::Error::Api(s) => s.message,
            other => panic!("{name}: {other}"),
        };
        assert!(message.contains("must run on a dedicated node of their own workspace"), "{name}: {message}");
    }
}

/// A taint keeps other tenants off a dedicated node only if they cannot tolerate it or skip
/// the scheduler: in a workspace's namespace the admission policy refuses a toleration of
/// another workspace's taint, a toleration of every taint, and a pod placed by node name.
#[tokio::test]
async fn a_tenant_pod_can_tolerate_only_its_own_dedicated_taint_and_cannot_name_its_node() {
    let c = cluster::client().await;
    server::engine::install::ensure_platform(c.clone()).await.expect("platform installed");
    let mut cleanup = Cleanup::new(&c);
    let ws = cluster::name("ws");
    let ns = cleanup.namespace("t-tenant", &[("hexabase.ai/workspace", &ws)]).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    let pod = |name: &str, extra: serde_json::Value| -> Pod {
        let mut spec = json!({ "containers": [{ "name": "app", "image": "nginx:1.27" }] });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            spec[k] = v;
        }
        serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).unwrap()
    };
    // Dry runs: admission decides, nothing is left behind.
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let own = json!([{ "key": "hexabase.ai/dedicated", "operator": "Equal", "value": ws, "effect": "NoSchedule" }]);
    pods.create(&dry, &pod("own", json!({ "tolerations": own }))).await.expect("its own workspace's taint may be tolerated");
    let other_taint = json!([{ "key": "example.com/spot", "operator": "Exists" }]);
    pods.create(&dry, &pod("spot", json!({ "tolerations": other_taint }))).await.expect("other taints are the tenant's business");

    for (name, extra, refusal) in [
        ("foreign", json!({ "tolerations": [{ "key": "hexabase.ai/dedicated", "operator": "Equal", "value": "someone-else" }] }), "only its own workspace's"),
        ("any-ws", json!({ "tolerations": [{ "key": "hexabase.ai/dedicated", "operator": "Exists" }] }), "only its own workspace's"),
        ("everything", json!({ "tolerations": [{ "operator": "Exists" }] }), "may not tolerate every taint"),
        ("by-name", json!({ "nodeName": "some-dedicated-node" }), "may not name its node"),
    ] {
        let message = refused(&pods, &dry, &pod(name, extra)).await;
        assert!(message.contains(refusal), "{name}: {message}");
    }
}

/// The API server's refusal of `pod`. An admission policy just installed or changed takes
/// effect a moment later (the API server loads it through a watch), so an admission is
/// retried for a few seconds before it counts as the policy letting the pod through.
async fn refused(pods: &Api<Pod>, params: &PostParams, pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match pods.create(params, pod).await {
            Err(kube::Error::Api(status)) => return status.message,
            Err(other) => panic!("{name}: {other}"),
            Ok(_) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(250)).await,
            Ok(_) => panic!("{name} was admitted"),
        }
    }
}
