use app::model::{Plan, Role, WorkspaceSummary};
use sqlx::Row;

use super::{Store, StoreResult};
use crate::db::{new_id, now};

fn summary(r: &sqlx::any::AnyRow) -> WorkspaceSummary {
    let plan: String = r.get("plan");
    WorkspaceSummary {
        slug: r.get("slug"),
        name: r.get("name"),
        // The CHECK constraint keeps plans to the three known names.
        plan: Plan::from_db(&plan).unwrap_or(Plan::Hobby),
        role: Role::from_db(&r.get::<String, _>("role")),
    }
}

impl Store {
    pub async fn workspaces_of(&self, user_id: &str) -> StoreResult<Vec<WorkspaceSummary>> {
        let rows = sqlx::query(
            "SELECT w.slug, w.name, w.plan, m.role FROM workspaces w \
             JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = $1 ORDER BY w.name",
        )
        .bind(user_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows.iter().map(summary).collect())
    }

    /// The workspace if, and only if, the user is a member: the one membership check
    /// every workspace-scoped operation goes through. Returns the workspace id too.
    pub async fn member_workspace(&self, user_id: &str, slug: &str) -> StoreResult<Option<(String, WorkspaceSummary)>> {
        let row = sqlx::query(
            "SELECT w.id, w.slug, w.name, w.plan, m.role FROM workspaces w \
             JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = $1 AND w.slug = $2",
        )
        .bind(user_id)
        .bind(slug)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(|r| (r.get("id"), summary(&r))))
    }

    pub async fn ensure_workspace(&self, slug: &str, name: &str, plan: Plan) -> StoreResult<String> {
        Ok(self.create_workspace(slug, name, plan).await?.0)
    }

    /// Creates the workspace unless the slug is taken: (its id, whether it was created now).
    pub async fn create_workspace(&self, slug: &str, name: &str, plan: Plan) -> StoreResult<(String, bool)> {
        if let Some(r) = sqlx::query("SELECT id FROM workspaces WHERE slug = $1").bind(slug).fetch_optional(&self.db).await? {
            return Ok((r.get("id"), false));
        }
        let id = new_id();
        sqlx::query("INSERT INTO workspaces (id, slug, name, plan, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(slug)
            .bind(name)
            .bind(plan.as_db())
            .bind(now())
            .execute(&self.db)
            .await?;
        Ok((id, true))
    }

    /// Whether the user is a member of the workspace.
    pub async fn is_member(&self, user_id: &str, workspace_id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM memberships WHERE user_id = $1 AND workspace_id = $2")
            .bind(user_id)
            .bind(workspace_id)
            .fetch_optional(&self.db)
            .await?;
        Ok(row.is_some())
    }

    pub async fn ensure_membership(&self, user_id: &str, workspace_id: &str, role: Role) -> StoreResult<()> {
        if !self.is_member(user_id, workspace_id).await? {
            sqlx::query("INSERT INTO memberships (user_id, workspace_id, role) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(workspace_id)
                .bind(role.as_db())
                .execute(&self.db)
                .await?;
        }
        Ok(())
    }
}
