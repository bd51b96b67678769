use sqlx::Row;

use super::{Store, StoreResult};
use crate::db::{new_id, now};

/// Who did what, when, to what, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub actor: String,
    pub workspace_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// The one INSERT of an audit entry, on the pool or inside a transaction.
pub(super) async fn insert_audit<'c>(db: impl sqlx::Executor<'c, Database = sqlx::Any>, e: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, workspace_id, action, target, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(now())
    .bind(&e.actor)
    .bind(&e.workspace_id)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.outcome)
    .bind(&e.detail)
    .execute(db)
    .await?;
    Ok(())
}

impl Store {
    pub async fn audit(&self, e: &AuditEntry) -> StoreResult<()> {
        insert_audit(&self.db, e).await
    }

    pub async fn audit_entries(&self, workspace_id: Option<&str>) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT actor, workspace_id, action, target, outcome, detail FROM audit_log \
             WHERE ($1 IS NULL OR workspace_id = $1) ORDER BY at, id",
        )
        .bind(workspace_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                actor: r.get("actor"),
                workspace_id: r.get("workspace_id"),
                action: r.get("action"),
                target: r.get("target"),
                outcome: r.get("outcome"),
                detail: r.get("detail"),
            })
            .collect())
    }
}
