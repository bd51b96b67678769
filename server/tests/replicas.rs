//! Two replicas, one engine: the chart installed into the local cluster and two `server`
//! processes configured exactly as it configures its pods (the Deployment's environment as
//! stored, its Secret and ConfigMap, a token of its ServiceAccount, the engine Lease in the
//! release namespace) on one PostgreSQL. Both serve the dashboard, exactly one runs the
//! engine; a session made on one works on the other, live progress and notifications read
//! the same from either; kill -9 of the engine's replica mid-provisioning and mid-migration
//! is taken over by the other within the lease duration, with one Node and one notification.
//! The engine is scoped (`HEXA_CONTROLLER_SCOPE`, via the chart's `server.extraEnv`) so it
//! never touches other tests' objects.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde_json::Value;
use server::crd::{MigrationState, NodePhase, StepName, StepState, WorkloadState};
use server::leader::LEASE_DURATION;
use server::seed::{DEMO_EMAIL, DEMO_PASSWORD};
use support::availability::AvailabilityProbe;
use support::chart::{Cell, CellOptions};
use support::dashboard::{self, EventStream};
use support::scenario::{self, Tenant, REPLICAS};

const WAIT: Duration = Duration::from_secs(120);
/// What "within the lease duration" may overrun by: the waiting replica wakes 100 ms after the
/// lease it saw expires, then reads and writes the Lease once, on a busy 2-core machine.
const TAKEOVER_SLACK: Duration = Duration::from_secs(2);

/// `make test` always provides PostgreSQL (and sets HEXA_REQUIRE_POSTGRES); replicas need it.
fn postgres() -> bool {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        return true;
    }
    assert!(std::env::var("HEXA_REQUIRE_POSTGRES").is_err(), "HEXA_REQUIRE_POSTGRES is set but TEST_POSTGRES_URL is not");
    eprintln!("note: TEST_POSTGRES_URL not set; the two-replica test needs PostgreSQL (make test sets it)");
    false
}

/// The Lease holder is killed with SIGKILL; the other replica must take over. Returns the
/// failover time (kill to the other replica holding the Lease) and restarts the killed one.
async fn kill_leader(cell: &mut Cell, what: &str) -> Duration {
    let leader = cell.wait_leader(Duration::from_secs(30)).await;
    let identity = cell.holder().await.expect("a holder");
    let t_kill = Instant::now();
    cell.replicas[leader].kill();
    let (failover, new) = cell.wait_takeover(&identity, t_kill, Duration::from_secs(60)).await;
    let other = &cell.replicas[1 - leader];
    assert!(new.starts_with(&format!("{}-", other.name)), "the other replica took over, not {new}");
    eprintln!("measured: kill -9 of {} ({identity}) {what}: {} took over after {} ms", cell.replicas[leader].name, other.name, failover.as_millis());
    assert!(failover <= LEASE_DURATION + TAKEOVER_SLACK, "takeover after {failover:?}, more than the lease duration ({LEASE_DURATION:?})");
    // The killed replica comes back (its pod restarted) and waits: the engine stays where it is.
    cell.replicas[leader].start();
    cell.replicas[leader].wait_ready(Duration::from_secs(60)).await;
    failover
}

fn titles(notes: &[String], prefix: &str, mention: &str) -> usize {
    notes.iter().filter(|n| n.starts_with(prefix) && n.contains(mention)).count()
}

fn last(events: &[Value]) -> &Value {
    events.last().expect("at least the first event")
}

#[tokio::test]
async fn two_replicas_serve_one_engine_and_a_killed_leader_is_replaced_within_the_lease() {
    if !postgres() {
        return;
    }
    let t0 = Instant::now();
    // 4 s of "booting" leaves a wide window to kill the engine mid-provisioning.
    let mut cell = Cell::start(CellOptions { set: vec![("server.provisionStepDelayMs".into(), "4000".into())] }).await;
    eprintln!("measured: chart installed and two replicas ready in {} ms", t0.elapsed().as_millis());
    let bases: Vec<String> = cell.replicas.iter().map(|r| r.base.clone()).collect();

    // Exactly one engine: one Lease holder, and only its log says it runs the engine (the
    // other has looked at the Lease at least once by the time it is ready and a moment on).
    let leader = cell.wait_leader(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cell.leader().await, Some(leader), "the Lease stays with one replica");
    assert_eq!(cell.replicas[leader].engine_starts(), 1, "the holder runs the engine once");
    assert_eq!(cell.replicas[1 - leader].engine_starts(), 0, "the other replica does not run the engine");

    // Sessions live in the database: made on one replica, used and ended on the other.
    // (One session per person: signing in again ends the earlier one, so the sign-out check
    // comes first.)
    let mut tenant = Tenant::new(&cell.client, &cell.store, cell.scope()).await;
    let other = dashboard::sign_in(&bases[0], DEMO_EMAIL, DEMO_PASSWORD).await;
    let out = dashboard::call(&bases[1], &other, "sign_out", &[]).await;
    assert!(out.status().is_success() || out.status().is_redirection(), "sign out: {}", out.status());
    let after = dashboard::call(&bases[0], &other, "my_workspaces", &[]).await;
    assert_eq!(after.status(), 401, "a session ended on one replica is ended on the other");
    let session = dashboard::sign_in(&bases[1 - leader], DEMO_EMAIL, DEMO_PASSWORD).await;
    for base in &bases {
        let r = dashboard::call(base, &session, "my_workspaces", &[]).await;
        assert!(r.status().is_success(), "{base}: {}", r.status());
        let list: Value = r.json().await.unwrap();
        assert!(list.as_array().unwrap().iter().any(|w| w["slug"] == tenant.ws.as_str()), "{base}: {list}");
        let page = dashboard::page(base, &session, &format!("/w/{}/nodes", tenant.ws)).await;
        assert_eq!(page.status(), 200, "{base}: Node Management");
    }

    // Provisioning, the engine's replica killed mid-boot.
    let order = tenant.order("d2.large", "ap-northeast-1").await;
    let node_path = format!("/api/events/w/{}/nodes/{order}", tenant.ws);
    let follower = 1 - leader;
    let survives = EventStream::open(&bases[follower], &session, &node_path, WAIT).await;
    cluster_wait(&tenant, &order, "booting", |s: &server::crd::DedicatedNodeStatus| {
        s.steps.iter().any(|st| st.name == StepName::Booting && st.state == StepState::Running)
    })
    .await;
    let provisioning_failover = kill_leader(&mut cell, "while the node boots").await;
    let dn = tenant.wait_order_settled(&order, WAIT).await;
    let status = dn.status.clone().unwrap();
    assert_eq!(status.phase, NodePhase::Ready, "{status:?}");
    assert_eq!(tenant.nodes_of(&order).await.len(), 1, "exactly one Node for the order");
    let events = survives.finish().await.expect("the stream from the replica that stayed up ends once settled");
    assert_eq!((last(&events)["phase"].as_str(), last(&events)["progress"].as_u64(), last(&events)["told"].as_bool()), (Some("Ready"), Some(100), Some(true)));
    assert!(events.len() >= 2, "live changes were streamed, not only the end: {events:?}");
    for base in &bases {
        // Either replica streams the settled state (and ends) and shows the one notification.
        let events = EventStream::open(base, &session, &node_path, WAIT).await.finish().await.expect("a settled stream ends");
        assert_eq!(last(&events)["phase"], "Ready", "{base}");
        let notes = dashboard::notifications(base, &session, &tenant.ws).await;
        assert_eq!(titles(&notes, "Dedicated node ready", &order), 1, "{base}: one notification: {notes:?}");
    }

    // Migration onto the node, the engine's replica killed mid-move.
    let node = status.node_name.clone().expect("the node's name");
    let original = tenant.deployment("web").await;
    let probe = AvailabilityProbe::start(tenant.pods(), "web", false).await;
    assert_eq!(probe.lowest(), REPLICAS);
    let wm = tenant.migrate(&node, &[&["web"]], serde_json::json!({})).await;
    let leader = cell.wait_leader(Duration::from_secs(30)).await;
    let migration_path = format!("/api/events/w/{}/migrations/{}/{wm}", tenant.ws, tenant.ns);
    let survives = EventStream::open(&bases[1 - leader], &session, &migration_path, WAIT).await;
    support::cluster::wait_until(&tenant.deployments(), "web", WAIT, "the move began", |d: &Deployment| {
        d.annotations().contains_key(server::migration::patch::MIGRATION_ANNOTATION)
    })
    .await;
    let mid = tenant.migration_status(&wm).await.expect("a status");
    assert_eq!(mid.workloads[0].state, WorkloadState::Moving, "killed mid-move");
    let migration_failover = kill_leader(&mut cell, "while the Deployment moves").await;
    let done = tenant.wait_migration_settled(&wm, WAIT).await;
    let phase = done.status.as_ref().unwrap().phase;
    assert_eq!(phase, MigrationState::Succeeded, "{:?}", done.status);
    scenario::check_workload_end(&tenant, "web", &original, &node, phase).await;
    assert_eq!(probe.lowest(), REPLICAS, "an independent watch saw available pods drop below the desired count");
    let events = survives.finish().await.expect("the migration stream from the replica that stayed up ends");
    assert_eq!(last(&events)["phase"], "Succeeded");
    for base in &bases {
        let notes = dashboard::notifications(base, &session, &tenant.ws).await;
        assert_eq!(titles(&notes, "Migration complete", &node), 1, "{base}: one notification: {notes:?}");
        assert_eq!(titles(&notes, "Dedicated node ready", &order), 1, "{base}: {notes:?}");
    }
    assert_eq!(tenant.nodes_of(&order).await.len(), 1, "still exactly one Node");

    // The chart's RBAC was enough for everything the replicas did.
    for r in &cell.replicas {
        let log = r.log_text();
        assert!(!log.contains("Forbidden") && !log.contains("forbidden"), "{} was refused something:\n{}", r.name, r.log_tail(80));
    }
    // Killed twice, each replica ran the engine at most twice; never both at once (the Lease
    // moved only on the kills).
    let starts: Vec<usize> = cell.replicas.iter().map(|r| r.engine_starts()).collect();
    assert_eq!(starts.iter().sum::<usize>(), 3, "one engine at the start and one per takeover: {starts:?}");
    tenant.release(&order, Duration::from_secs(60)).await;
    assert!(tenant.nodes_of(&order).await.is_empty(), "releasing the order deleted its Node");
    eprintln!(
        "measured: failover {} ms (provisioning), {} ms (migration); whole test {} s",
        provisioning_failover.as_millis(),
        migration_failover.as_millis(),
        t0.elapsed().as_secs()
    );
}

/// Polls the order's status until `ready` holds.
async fn cluster_wait(t: &Tenant, order: &str, what: &str, ready: impl Fn(&server::crd::DedicatedNodeStatus) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = t.order_status(order).await {
            if ready(&s) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{order} not {what} within {WAIT:?}: {:?}", t.order_status(order).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
