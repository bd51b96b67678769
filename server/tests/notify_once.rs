//! A notification is sent once per outcome even when the status write that records "told"
//! fails after the message went out. The engine tells the user (a database row) and then
//! stores that it did (a status write to the API server, conditional on the resourceVersion
//! it read); anything that makes that write fail (someone editing the object meanwhile, the
//! API server going away, the engine killed) used to bring the same message a second time on
//! the retry. The test makes the window wide and certain: it holds the notifications table
//! locked (PostgreSQL) so the engine's insert waits, edits the object meanwhile, then lets the
//! insert through. Black-box: the engine runs as the chart runs it (`support::chart`).

mod support;

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use support::chart::{Cell, CellOptions};
use support::scenario::Tenant;

const WAIT: Duration = Duration::from_secs(120);

/// Holds `LOCK TABLE notifications` in an open transaction until released.
struct TableLock(PgConnection);

impl TableLock {
    async fn take(url: &str) -> TableLock {
        let mut c = PgConnection::connect(url).await.expect("connect");
        c.execute("BEGIN").await.unwrap();
        c.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE").await.unwrap();
        TableLock(c)
    }

    /// Waits until a session is blocked inserting a notification (the engine telling).
    async fn wait_for_insert(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            // Statistics are a snapshot per transaction, and this connection is in one.
            sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut self.0).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' \
                 AND query ILIKE 'INSERT INTO notifications%'",
            )
            .fetch_one(&mut self.0)
            .await
            .unwrap();
            if n > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the engine never tried to notify");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn release(mut self) {
        self.0.execute("COMMIT").await.unwrap();
    }
}

fn mentions(notes: &[String], prefix: &str, what: &str) -> usize {
    notes.iter().filter(|n| n.starts_with(prefix) && n.contains(what)).count()
}

#[tokio::test]
async fn an_edit_while_the_engine_tells_the_user_does_not_bring_a_second_notification() {
    if std::env::var("TEST_POSTGRES_URL").is_err() {
        assert!(std::env::var("HEXA_REQUIRE_POSTGRES").is_err(), "HEXA_REQUIRE_POSTGRES is set but TEST_POSTGRES_URL is not");
        eprintln!("note: TEST_POSTGRES_URL not set; this test needs PostgreSQL (make test sets it)");
        return;
    }
    let cell = Cell::start(CellOptions::default()).await;
    let url = cell.release.database_url.clone();
    let mut t = Tenant::new(&cell.client, &cell.store, cell.scope()).await;
    let edit = |n: u32| Patch::Merge(json!({ "metadata": { "labels": { "example.com/touched": n.to_string() } } }));

    // Provisioning: Ready is stored, the engine tells, the order is edited meanwhile.
    let mut lock = TableLock::take(&url).await;
    let order = t.order("d2.large", "ap-northeast-1").await;
    lock.wait_for_insert().await;
    t.orders().patch(&order, &PatchParams::default(), &edit(1)).await.unwrap();
    lock.release().await;
    let dn = t.wait_order_settled(&order, WAIT).await;
    let node = dn.status.and_then(|s| s.node_name).expect("a node");
    // A second message would follow the retry within a second or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let notes = t.notifications(&cell.store).await;
    assert_eq!(mentions(&notes, "Dedicated node ready", &order), 1, "told once: {notes:?}");

    // Migration: Succeeded is stored, the engine tells, the migration is edited meanwhile.
    t.deployment("web").await;
    let mut lock = TableLock::take(&url).await;
    let wm = t.migrate(&node, &[&["web"]], json!({})).await;
    lock.wait_for_insert().await;
    t.migrations().patch(&wm, &PatchParams::default(), &edit(2)).await.unwrap();
    lock.release().await;
    t.wait_migration_settled(&wm, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let notes = t.notifications(&cell.store).await;
    assert_eq!(mentions(&notes, "Migration complete", &node), 1, "told once: {notes:?}");
    let audit = cell.store.audit_entries(Some(&t.ws_id)).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "migrate-workloads" && e.outcome == "succeeded").count(), 1, "audited once: {audit:?}");
    t.release(&order, WAIT).await;
}
