use app::model::SessionUser;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreResult};
use crate::db::now;

/// Sessions last two weeks, matching the cookie's Max-Age.
pub const SESSION_TTL_SECS: i64 = 14 * 24 * 3600;

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    pub async fn create_session(&self, user_id: &str) -> StoreResult<String> {
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let token = hex::encode(secret);
        let t = now();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(t)
            .bind(t + SESSION_TTL_SECS)
            .execute(&self.db)
            .await?;
        Ok(token)
    }

    /// The user a live session token belongs to; expired or unknown tokens give `None`.
    pub async fn session_user(&self, token: &str) -> StoreResult<Option<SessionUser>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.display_name FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash(token))
        .bind(now())
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(|r| SessionUser { user_id: r.get("id"), email: r.get("email"), display_name: r.get("display_name") }))
    }

    pub async fn delete_session(&self, token: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(token)).execute(&self.db).await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now()).execute(&self.db).await?;
        Ok(r.rows_affected())
    }
}
