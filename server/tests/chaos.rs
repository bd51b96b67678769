//! The fault suite: the engine as the chart runs it (two replicas, one Lease, PostgreSQL, see
//! `support::chart`) provisions a dedicated node and moves a Deployment onto it while faults
//! hit it. Every run must end with the order Ready, the migration Succeeded or RolledBack, the
//! workload's template fully moved (every pod on the node) or exactly the original, exactly one
//! Node for the order, availability never below the desired count (an independent watch) and
//! exactly one notification per outcome. Each run is bounded (`ORDER_WAIT`, `MIGRATION_WAIT`);
//! the suite prints a table: fault, instant, what it hit, outcome, time to recover.
//!
//! Faults:
//! - `kill -9` of the engine's replica at a seeded random instant of the run (the other replica
//!   takes over at the Lease's expiry; the killed one is restarted, like a pod);
//! - the API server and etcd restarted mid-migration (`hack/cluster/up.sh` starts them again);
//! - Prometheus stopped while the latency guard measures (the guard reports the source
//!   unavailable; the migration is not held hostage by its monitoring);
//! - PostgreSQL stopped for 10 s mid-migration (`hack/postgres.sh`'s server, same port).
//!
//! `make test` runs [`short_fault_suite`] (one kill, the API server restart, the PostgreSQL
//! outage); `make chaos` runs [`fault_suite`] (20 kills spread over provisioning and migration,
//! then every other fault). `HEXA_CHAOS_SEED` replays a run's instants; the seed is printed.

mod support;

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use rand::{Rng, SeedableRng};
use serde_json::json;
use server::crd::{MigrationState, NodePhase, StepState, WorkloadState};
use support::availability::AvailabilityProbe;
use support::chart::{Cell, CellOptions};
use support::faults;
use support::prometheus::PromHarness;
use support::scenario::{Tenant, REPLICAS};

const ORDER_WAIT: Duration = Duration::from_secs(150);
const MIGRATION_WAIT: Duration = Duration::from_secs(240);
/// The kwok provider's boot time in these runs: provisioning lasts about this plus a second.
const BOOT_MS: u64 = 2000;
/// The span kill instants are drawn from: provisioning (~3 s) and the move of 4 replicas whose
/// pods take 2 s to get Ready (~10 s), measured on the 2-core dev machine.
const SPAN_MS: u64 = 14_000;
const POSTGRES_OUTAGE: Duration = Duration::from_secs(10);

/// Written straight to stderr: libtest captures `eprintln!`, and the table should be seen in
/// `make test`'s output even when everything passes.
fn report(text: &str) {
    let mut err = std::io::stderr();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

#[derive(Debug, Clone)]
enum Fault {
    Kill { at: Duration },
    RestartApiServer,
    StopPrometheus,
    PostgresDown,
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill -9 engine",
            Fault::RestartApiServer => "restart apiserver+etcd",
            Fault::StopPrometheus => "stop Prometheus",
            Fault::PostgresDown => "PostgreSQL down 10 s",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Default)]
struct Row {
    fault: String,
    /// When it was injected, from the order's creation.
    instant: Option<Duration>,
    /// What the engine was doing then.
    hit: String,
    outcome: String,
    /// Kill: until the other replica held the Lease. Restart: from the stop until the engine
    /// wrote again. PostgreSQL: from its start until both replicas were ready. Prometheus: from
    /// the stop until the migration finished.
    recover: Option<Duration>,
    total: Duration,
    violations: Vec<String>,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn table(seed: u64, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nfault suite (seed {seed}; replay with HEXA_CHAOS_SEED={seed}):");
    let _ = writeln!(out, "{:>3}  {:<23} {:>8}  {:<40} {:<24} {:>9} {:>7}  ok", "#", "fault", "instant", "hit", "outcome", "recover", "run");
    for (i, r) in rows.iter().enumerate() {
        let ok = if r.violations.is_empty() { "yes".to_string() } else { format!("NO: {}", r.violations.join("; ")) };
        let _ = writeln!(
            out,
            "{:>3}  {:<23} {:>8}  {:<40} {:<24} {:>9} {:>5.0} s  {ok}",
            i + 1,
            r.fault,
            secs(r.instant),
            r.hit,
            r.outcome,
            secs(r.recover),
            r.total.as_secs_f64()
        );
    }
    let kills: Vec<f64> = rows.iter().filter(|r| r.fault.starts_with("kill")).filter_map(|r| r.recover).map(|d| d.as_secs_f64()).collect();
    if !kills.is_empty() {
        let max = kills.iter().cloned().fold(0.0, f64::max);
        let min = kills.iter().cloned().fold(f64::MAX, f64::min);
        let _ = writeln!(
            out,
            "failover after kill -9: min {min:.1} s, mean {:.1} s, max {max:.1} s ({} kills)",
            kills.iter().sum::<f64>() / kills.len() as f64,
            kills.len()
        );
    }
    let bad = rows.iter().filter(|r| !r.violations.is_empty()).count();
    let _ = writeln!(out, "{} of {} runs ended as required", rows.len() - bad, rows.len());
    out
}

fn seed() -> u64 {
    std::env::var("HEXA_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::thread_rng().gen())
}

/// What the engine is doing now, in a few words.
async fn doing(t: &Tenant, order: &str, migration: Option<&str>) -> String {
    if let Some(wm) = migration {
        if let Some(s) = t.migration_status(wm).await {
            let w = &s.workloads.first();
            return match w {
                Some(w) => format!("migration {}: {} {} ({}/{} on node)", s.phase.as_str(), w.workload.name, w.state.as_str(), w.on_target, REPLICAS),
                None => format!("migration {}", s.phase.as_str()),
            };
        }
        return "migration created".into();
    }
    match t.order_status(order).await {
        Some(s) if s.phase == NodePhase::Provisioning => {
            let step = s.steps.iter().find(|st| st.state == StepState::Running).map(|st| st.name.as_str()).unwrap_or("between steps");
            format!("provisioning: {step}")
        }
        Some(s) if s.phase == NodePhase::Ready && !s.conditions.iter().any(|c| c.type_ == "UserNotified" && c.status == "True") => {
            "order Ready, telling the user".into()
        }
        Some(s) => format!("order {}", s.phase.as_str()),
        None => "order just created".into(),
    }
}

/// One run on `cell`: order, move, fault, checks.
async fn run(cell: &mut Cell, fault: Fault, prom: Option<&mut PromHarness>) -> Row {
    let started = Instant::now();
    let mut row = Row { fault: fault.name().into(), ..Default::default() };
    let mut tenant = Tenant::new(&cell.client, &cell.store, cell.scope()).await;
    let two_phases = matches!(fault, Fault::StopPrometheus);
    if let Some(p) = prom.as_deref() {
        // Before the rollouts: Prometheus has seconds of data by the time the guard asks.
        p.set_latency_ms(&tenant.ns, "web", 100.0);
    }
    let original = tenant.deployment("web").await;
    if two_phases {
        tenant.deployment("api").await;
    }
    let probe = AvailabilityProbe::start(tenant.pods(), "web", matches!(fault, Fault::RestartApiServer)).await;
    let migration: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let t0 = Instant::now();
    let order = tenant.order("d2.large", "ap-northeast-1").await;

    // The run's own course, and the fault beside it.
    let flow = async {
        let dn = tenant.wait_order_settled(&order, ORDER_WAIT).await;
        let node = dn.status.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let phases: &[&[&str]] = if two_phases { &[&["web"], &["api"]] } else { &[&["web"]] };
        let extra = if two_phases {
            let query = server::migration::latency::DEFAULT_QUERY_TEMPLATE.replace("[1m]", "[5s]");
            json!({ "latencyGuard": { "marginPercent": 50.0, "consecutiveIntervals": 2, "intervalSeconds": 1, "query": query } })
        } else {
            json!({})
        };
        let wm = tenant.migrate(&node, phases, extra).await;
        *migration.lock().unwrap() = Some(wm.clone());
        let done = tenant.wait_migration_settled(&wm, MIGRATION_WAIT).await;
        (dn, node, wm, done)
    };
    let inject = async {
        let current = || migration.lock().unwrap().clone();
        match &fault {
            Fault::Kill { at } => {
                tokio::time::sleep_until((t0 + *at).into()).await;
                row.instant = Some(t0.elapsed());
                let leader = cell.wait_leader(Duration::from_secs(60)).await;
                let identity = cell.holder().await.unwrap_or_default();
                let t_kill = Instant::now();
                cell.replicas[leader].kill();
                row.hit = doing(&tenant, &order, current().as_deref()).await;
                let (failover, _) = cell.wait_takeover(&identity, t_kill, Duration::from_secs(60)).await;
                row.recover = Some(failover);
                cell.replicas[leader].start();
                cell.replicas[leader].wait_ready(Duration::from_secs(60)).await;
            }
            Fault::RestartApiServer | Fault::PostgresDown | Fault::StopPrometheus => {
                // Mid-migration: once the first workload is moving.
                let deadline = Instant::now() + ORDER_WAIT + MIGRATION_WAIT;
                loop {
                    if let Some(wm) = current() {
                        let moving = tenant.migration_status(&wm).await.is_some_and(|s| {
                            s.workloads.iter().any(|w| w.state == WorkloadState::Moving)
                                && (!matches!(fault, Fault::StopPrometheus) || s.baseline_latency_ms.is_some())
                        });
                        if moving {
                            break;
                        }
                    }
                    assert!(Instant::now() < deadline, "the migration never started moving");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                row.instant = Some(t0.elapsed());
                row.hit = doing(&tenant, &order, current().as_deref()).await;
                let wm = current().unwrap();
                match &fault {
                    Fault::RestartApiServer => {
                        let before = tenant.migrations().get(&wm).await.ok().and_then(|w| w.metadata.resource_version);
                        let t_stop = Instant::now();
                        let outage = tokio::task::spawn_blocking(faults::restart_control_plane).await.expect("restart");
                        row.hit = format!("{} (API down {:.1} s)", row.hit, outage.down.as_secs_f64());
                        // Recovered once the engine writes the migration again (or it is done).
                        let deadline = Instant::now() + MIGRATION_WAIT;
                        loop {
                            let now = tenant.migrations().get(&wm).await.ok();
                            if now.as_ref().and_then(|w| w.metadata.resource_version.clone()) != before || Instant::now() > deadline {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        row.recover = Some(t_stop.elapsed());
                    }
                    Fault::PostgresDown => {
                        let pg = faults::Postgres::of_tests();
                        tokio::task::spawn_blocking(move || {
                            pg.stop();
                            std::thread::sleep(POSTGRES_OUTAGE);
                            pg.start();
                        })
                        .await
                        .expect("PostgreSQL outage");
                        let back = Instant::now();
                        for r in &mut cell.replicas {
                            r.wait_ready(Duration::from_secs(60)).await;
                        }
                        row.recover = Some(back.elapsed());
                    }
                    Fault::StopPrometheus => {
                        if let Some(p) = prom {
                            p.stop();
                        }
                        let t_stop = Instant::now();
                        tenant.wait_migration_settled(&wm, MIGRATION_WAIT).await;
                        row.recover = Some(t_stop.elapsed());
                    }
                    Fault::Kill { .. } => unreachable!(),
                }
            }
        }
    };
    let ((dn, node, wm, done), ()) = tokio::join!(flow, inject);

    // The rules every run must end by.
    let v = &mut row.violations;
    let order_phase = dn.status.as_ref().map(|s| s.phase);
    if order_phase != Some(NodePhase::Ready) {
        v.push(format!("order {order_phase:?}"));
    }
    let nodes = tenant.nodes_of(&order).await.len();
    if nodes != 1 {
        v.push(format!("{nodes} Nodes for the order"));
    }
    let status = done.status.clone().unwrap_or_default();
    row.outcome = format!("{} / {}", order_phase.map_or("-", |p| p.as_str()), status.phase.as_str());
    let d: Deployment = tenant.deployments().get("web").await.expect("web");
    let template = &d.spec.template;
    match status.phase {
        MigrationState::Succeeded => {
            let pods = tenant.pod_nodes("web").await;
            let moved = serde_json::to_value(template.spec.as_ref().unwrap()).unwrap()["nodeSelector"]["kubernetes.io/hostname"] == json!(node);
            if !moved || pods.len() != REPLICAS as usize || pods.iter().any(|n| n.as_deref() != Some(node.as_str())) {
                // The rollout may still be settling its last pod's node; look once more.
                tokio::time::sleep(Duration::from_secs(3)).await;
                let pods = tenant.pod_nodes("web").await;
                if !moved || pods.iter().any(|n| n.as_deref() != Some(node.as_str())) {
                    v.push(format!("not fully moved: selector moved {moved}, pods on {pods:?}"));
                }
            }
        }
        MigrationState::RolledBack => {
            if template != &original.spec.template {
                v.push("rolled back but the template is not the original".into());
            }
        }
        other => v.push(format!("migration {other:?}")),
    }
    let lowest = probe.lowest();
    if lowest < REPLICAS {
        v.push(format!("availability fell to {lowest} of {REPLICAS}"));
    }
    let notes = tenant.notifications(&cell.store).await;
    let ready = notes.iter().filter(|n| n.starts_with("Dedicated node ready") && n.contains(&order)).count();
    let migrated = notes.iter().filter(|n| n.starts_with("Migration") && n.contains(&node)).count();
    if ready != 1 || migrated != 1 {
        v.push(format!("notifications: {ready} node ready, {migrated} migration ({notes:?})"));
    }
    if matches!(fault, Fault::StopPrometheus) {
        let guard = status.conditions.iter().find(|c| c.type_ == "LatencyGuard").map(|c| c.reason.clone());
        row.outcome = format!("{} ({})", row.outcome, guard.clone().unwrap_or_default());
        if guard.as_deref() != Some("SourceUnavailable") {
            v.push(format!("latency guard says {guard:?}, not SourceUnavailable"));
        }
    }
    let _ = wm;
    // Leave nothing behind: the engine deletes the Node with the order.
    tenant.release(&order, Duration::from_secs(90)).await;
    row.total = started.elapsed();
    report(&format!(
        "chaos: {} at {} hit \"{}\": {} (recover {}, run {:.0} s){}",
        row.fault,
        secs(row.instant),
        row.hit,
        row.outcome,
        secs(row.recover),
        row.total.as_secs_f64(),
        if row.violations.is_empty() { String::new() } else { format!(" VIOLATIONS: {:?}", row.violations) }
    ));
    row
}

/// Runs `faults` in order on one cell, in a task of its own, and gives the cell back; a run
/// that panics ends the list with a row saying so (and the cell is dropped: its replicas
/// stopped, its release uninstalled).
fn spawn_cell(mut cell: Cell, faults: Vec<Fault>, mut prom: Option<PromHarness>) -> tokio::task::JoinHandle<(Option<Cell>, Vec<Row>)> {
    tokio::spawn(async move {
        let mut rows = Vec::new();
        for fault in faults {
            let name = fault.name();
            let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run(&mut cell, fault, prom.as_mut()))).await;
            match r {
                Ok(row) => rows.push(row),
                Err(panic) => {
                    let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    report(&format!("chaos: {name} did not finish: {msg}"));
                    rows.push(Row { fault: name.into(), outcome: "did not finish".into(), violations: vec![format!("panicked: {msg}")], ..Default::default() });
                    return (None, rows);
                }
            }
        }
        (Some(cell), rows)
    })
}

async fn cell(prom_url: Option<&str>) -> Cell {
    let mut set = vec![("server.provisionStepDelayMs".to_string(), BOOT_MS.to_string())];
    if let Some(url) = prom_url {
        set.push(("prometheus.url".into(), url.to_string()));
    }
    Cell::start(CellOptions { set }).await
}

/// Kill instants: `n` strata of the span, one uniform draw in each (spread, yet random).
fn instants(seed: u64, n: u64) -> Vec<Duration> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|i| Duration::from_millis(rng.gen_range(i * SPAN_MS / n..(i + 1) * SPAN_MS / n))).collect()
}

fn postgres_required() -> bool {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        return true;
    }
    assert!(std::env::var("HEXA_REQUIRE_POSTGRES").is_err(), "HEXA_REQUIRE_POSTGRES is set but TEST_POSTGRES_URL is not");
    eprintln!("note: TEST_POSTGRES_URL not set; the fault suite needs PostgreSQL (make test and make chaos set it)");
    false
}

async fn suite(kills: u64, cells: usize, exclusive: Vec<Fault>) {
    let t0 = Instant::now();
    let seed = seed();
    let instants = instants(seed, kills);
    report(&format!("chaos: seed {seed}; kill instants (ms after the order): {:?}", instants.iter().map(|d| d.as_millis()).collect::<Vec<_>>()));
    let prom = PromHarness::start().await;
    let mut started = Vec::new();
    for _ in 0..cells.max(1) {
        started.push(cell(Some(&prom.url)).await);
    }
    report(&format!("chaos: {} cells (release + 2 replicas each) ready after {:.0} s", started.len(), t0.elapsed().as_secs_f64()));
    // Kills, spread over the cells (each its own Lease, scope and replicas), all at once.
    let mut plans: Vec<Vec<Fault>> = vec![vec![]; started.len()];
    for (i, at) in instants.into_iter().enumerate() {
        plans[i % started.len()].push(Fault::Kill { at });
    }
    let tasks: Vec<_> = started.into_iter().zip(plans).map(|(c, plan)| spawn_cell(c, plan, None)).collect();
    let mut rows = Vec::new();
    let mut survivor = None;
    for t in tasks {
        let (c, r) = t.await.expect("a cell's task");
        rows.extend(r);
        if survivor.is_none() {
            survivor = c;
        } else {
            drop(c);
        }
    }
    // Faults that hit what every cell shares (the API server, PostgreSQL) run alone, one after
    // the other; Prometheus is stopped last.
    if !exclusive.is_empty() {
        let c = match survivor {
            Some(c) => c,
            None => cell(Some(&prom.url)).await,
        };
        let (_, r) = spawn_cell(c, exclusive, Some(prom)).await.expect("the exclusive faults");
        rows.extend(r);
    }
    report(&table(seed, &rows));
    report(&format!("chaos: suite done in {:.0} s", t0.elapsed().as_secs_f64()));
    let bad: Vec<String> = rows.iter().filter(|r| !r.violations.is_empty()).map(|r| format!("{}: {:?}", r.fault, r.violations)).collect();
    assert!(bad.is_empty(), "runs that did not end as required (seed {seed}):\n{}", bad.join("\n"));
}

/// `make test`: one kill at a random instant, then the API server restart and the PostgreSQL
/// outage mid-migration.
#[tokio::test]
async fn short_fault_suite() {
    if !postgres_required() {
        return;
    }
    suite(1, 1, vec![Fault::RestartApiServer, Fault::PostgresDown]).await;
}

/// `make chaos`: 20 kills spread over provisioning and migration on two cells at once, then
/// the API server restart, the PostgreSQL outage and Prometheus stopped, one at a time.
#[tokio::test]
#[ignore = "make chaos (about 10 minutes)"]
async fn fault_suite() {
    if !postgres_required() {
        return;
    }
    let cells = std::env::var("HEXA_CHAOS_CELLS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let kills = std::env::var("HEXA_CHAOS_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    suite(kills, cells, vec![Fault::RestartApiServer, Fault::PostgresDown, Fault::StopPrometheus]).await;
}
