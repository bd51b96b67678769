use sqlx::Row;

use super::{Store, StoreResult};

impl Store {
    /// The workspace id for a slug, for engine code that acts for a workspace (no user involved).
    pub async fn workspace_id(&self, slug: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT id FROM workspaces WHERE slug = $1").bind(slug).fetch_optional(&self.db).await?;
        Ok(row.map(|r| r.get("id")))
    }
}
