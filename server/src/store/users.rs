use sqlx::Row;

use super::{Store, StoreResult};
use crate::db::{new_id, now};

pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
}

impl Store {
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT id, email, display_name, password_hash FROM users WHERE email = $1").bind(email).fetch_optional(&self.db).await?;
        Ok(row.map(|r| UserRecord { id: r.get("id"), email: r.get("email"), display_name: r.get("display_name"), password_hash: r.get("password_hash") }))
    }

    /// Creates the user unless the email exists; returns the user's id either way.
    pub async fn ensure_user(&self, email: &str, display_name: &str, password_hash: &str) -> StoreResult<String> {
        if let Some(u) = self.user_by_email(email).await? {
            return Ok(u.id);
        }
        let id = new_id();
        sqlx::query("INSERT INTO users (id, email, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(email)
            .bind(display_name)
            .bind(password_hash)
            .bind(now())
            .execute(&self.db)
            .await?;
        Ok(id)
    }
}
