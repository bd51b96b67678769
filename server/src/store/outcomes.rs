//! Outcomes of the engine's work, told exactly once. The engine tells the user (a
//! notification and an audit entry) and then stores that it did (a status write to the API
//! server); when that write fails (an edit meanwhile, the API server away, the engine killed)
//! the retry would tell again. Each outcome has a key (the object, what happened, and when, as
//! stored in its status), written in the same transaction as what it tells: a key already
//! written writes nothing.

use super::audit::{insert_audit, AuditEntry};
use super::notifications::insert_notification;
use super::{Store, StoreResult};
use crate::db::now;

/// A notification to write with an outcome.
pub struct NewNotification<'a> {
    pub workspace_id: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub link: &'a str,
}

impl Store {
    /// Writes the notification (if any) and the audit entry unless `key` was written before.
    /// Returns whether this call wrote them.
    pub async fn record_outcome_once(&self, key: &str, notification: Option<NewNotification<'_>>, audit: &AuditEntry) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        // A concurrent writer of the same key waits here for our commit, then writes nothing.
        let fresh = sqlx::query("INSERT INTO engine_outcomes (outcome_key, at) VALUES ($1, $2) ON CONFLICT (outcome_key) DO NOTHING")
            .bind(key)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if fresh {
            if let Some(n) = notification {
                insert_notification(&mut *tx, n.workspace_id, n.title, n.body, Some(n.link)).await?;
            }
            insert_audit(&mut *tx, audit).await?;
        }
        tx.commit().await?;
        Ok(fresh)
    }
}
