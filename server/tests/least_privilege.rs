//! The server's ServiceAccount as the chart installs it (its RBAC and its engine-bounds
//! admission policy), with a token from the TokenRequest API: it cannot read Secrets, cannot
//! write in kube-system, cannot delete a Node it does not own, and cannot patch a workload
//! outside a workspace's namespaces. That it can do everything the product needs is shown by
//! the tests that run the whole engine under this account (replicas.rs, chaos.rs,
//! notify_once.rs): a missing verb fails them. Writes here are dry runs, so a hole found
//! changes nothing.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::json;
use support::chart::{Release, ReleaseOptions};
use support::cluster::{self, Cleanup};

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "app", "image": "example.com/app:1" }] } }
        }
    }))
    .unwrap()
}

/// The API server's answer to a request: `Ok` or the HTTP status it refused with.
fn code<T>(r: Result<T, kube::Error>) -> Result<(), u16> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err(s.code),
        Err(other) => panic!("not an answer of the API server: {other}"),
    }
}

#[tokio::test]
async fn the_servers_service_account_cannot_read_secrets_or_touch_what_it_does_not_own() {
    let admin = cluster::client().await;
    let release = Release::install(&admin, ReleaseOptions { set: vec![], scope: cluster::name("lp") }).await;
    let kubeconfig = Kubeconfig::read_from(&release.kubeconfig).expect("the ServiceAccount's kubeconfig");
    let sa = Client::try_from(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap()).unwrap();

    // What it must not touch, and one of each that it may.
    let mut cleanup = Cleanup::new(&admin);
    let shared = cluster::name("lp-shared");
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes.create(&PostParams::default(), &cluster::kwok_node(&shared, "4", "8Gi", json!({ "hexabase.ai/node-pool": "shared" }), None)).await.unwrap();
    cleanup.track_node(&shared);
    let tenant_ns = cleanup.namespace("lp-ws", &[("hexabase.ai/workspace", "acme-production")]).await;
    let plain_ns = cleanup.namespace("lp-plain", &[]).await;
    let system = cluster::name("lp-system");
    for ns in [tenant_ns.as_str(), plain_ns.as_str(), "kube-system"] {
        let name = if ns == "kube-system" { system.clone() } else { "web".to_string() };
        Api::<Deployment>::namespaced(admin.clone(), ns).create(&PostParams::default(), &deployment(&name)).await.unwrap();
    }

    let dry_patch = PatchParams { dry_run: true, ..Default::default() };
    let mv = Patch::Merge(json!({ "spec": { "template": { "spec": { "nodeSelector": { "hexabase.ai/node-pool": "dedicated" } } } } }));
    let patch_in = |ns: &str, name: &str| {
        let api = Api::<Deployment>::namespaced(sa.clone(), ns);
        let (name, dry_patch, mv) = (name.to_string(), dry_patch.clone(), mv.clone());
        async move { code(api.patch(&name, &dry_patch, &mv).await) }
    };
    // The policy is enforced a moment after it is created: wait until kube-system is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    let system_patch = loop {
        let r = patch_in("kube-system", &system).await;
        if r.is_err() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let secrets_here = code(Api::<Secret>::namespaced(sa.clone(), &release.namespace).list(&ListParams::default()).await);
    let secrets_all = code(Api::<Secret>::all(sa.clone()).list(&ListParams::default()).await);
    let system_configmap = code(
        Api::<ConfigMap>::namespaced(sa.clone(), "kube-system")
            .create(&PostParams { dry_run: true, ..Default::default() }, &serde_json::from_value(json!({ "metadata": { "name": "hexabase-probe" } })).unwrap())
            .await,
    );
    let plain_patch = patch_in(&plain_ns, "web").await;
    let tenant_patch = patch_in(&tenant_ns, "web").await;
    let dry_delete = DeleteParams { dry_run: true, ..Default::default() };
    let shared_delete = code(Api::<Node>::all(sa.clone()).delete(&shared, &dry_delete).await);
    let dedicated = cluster::kwok_node(&cluster::name("lp-dedicated"), "2", "8Gi", json!({ "hexabase.ai/node-pool": "dedicated" }), None);
    let dedicated_create = code(Api::<Node>::all(sa.clone()).create(&PostParams { dry_run: true, ..Default::default() }, &dedicated).await);
    // Events of cluster-scoped objects (the engine's on its orders, the Node's) live in `default`.
    let event = |ns: &str| -> k8s_openapi::api::events::v1::Event {
        serde_json::from_value(json!({ "metadata": { "name": "hexabase-probe", "namespace": ns }, "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "hexabase.ai/provisioning", "reportingInstance": "probe", "action": "Reserve", "reason": "CapacityReserved",
            "type": "Normal", "regarding": { "kind": "Node", "name": shared } }))
        .unwrap()
    };
    let events_in = |ns: &str| Api::<k8s_openapi::api::events::v1::Event>::namespaced(sa.clone(), ns);
    let dry_create = PostParams { dry_run: true, ..Default::default() };
    let event_default = code(events_in("default").create(&dry_create, &event("default")).await);
    let read_events = code(Api::<k8s_openapi::api::core::v1::Event>::namespaced(sa.clone(), "default").list(&ListParams::default().limit(1)).await);
    drop(cleanup);
    let _ = Api::<Deployment>::namespaced(admin.clone(), "kube-system").delete(&system, &DeleteParams::default()).await;

    assert_eq!(secrets_here, Err(403), "no Secret of its own namespace");
    assert_eq!(secrets_all, Err(403), "no Secret anywhere");
    assert_eq!(system_configmap, Err(403), "nothing written in kube-system");
    assert_eq!(system_patch, Err(403), "no workload of kube-system moved");
    assert_eq!(plain_patch, Err(403), "no workload moved outside a workspace's namespaces");
    assert_eq!(shared_delete, Err(403), "no shared-pool Node deleted");
    assert_eq!(tenant_patch, Ok(()), "while a workspace's workload can be moved");
    assert_eq!(dedicated_create, Ok(()), "and a dedicated Node created (the kwok provider)");
    assert_eq!((event_default, read_events), (Ok(()), Ok(())), "Events of cluster-scoped objects published and read in default");
}
