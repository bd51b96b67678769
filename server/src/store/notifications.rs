use app::model::Notification;
use sqlx::Row;

use super::{Store, StoreResult};
use crate::db::{new_id, now};

/// The one INSERT of a notification, on the pool or inside a transaction.
pub(super) async fn insert_notification<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    workspace_id: &str,
    title: &str,
    body: &str,
    link: Option<&str>,
) -> StoreResult<String> {
    let id = new_id();
    sqlx::query("INSERT INTO notifications (id, workspace_id, title, body, link, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(workspace_id)
        .bind(title)
        .bind(body)
        .bind(link)
        .bind(now())
        .execute(db)
        .await?;
    Ok(id)
}

impl Store {
    pub async fn notify(&self, workspace_id: &str, title: &str, body: &str, link: Option<&str>) -> StoreResult<String> {
        insert_notification(&self.db, workspace_id, title, body, link).await
    }

    /// The newest 30 notifications of the workspace.
    pub async fn notifications(&self, workspace_id: &str) -> StoreResult<Vec<Notification>> {
        let rows = sqlx::query(
            "SELECT id, title, body, link, created_at, read_at FROM notifications \
             WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT 30",
        )
        .bind(workspace_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Notification {
                id: r.get("id"),
                title: r.get("title"),
                body: r.get("body"),
                link: r.get("link"),
                created_at: r.get("created_at"),
                read: r.get::<Option<i64>, _>("read_at").is_some(),
            })
            .collect())
    }

    pub async fn mark_notifications_read(&self, workspace_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE notifications SET read_at = $1 WHERE workspace_id = $2 AND read_at IS NULL")
            .bind(now())
            .bind(workspace_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
