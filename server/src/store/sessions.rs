use app::model::SessionUser;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreResult};
use crate::db::now;

/// Sessions last two weeks at most, matching the cookie's Max-Age.
pub const SESSION_TTL_SECS: i64 = 14 * 24 * 3600;
/// A session unused for this long ends (ARCHITECTURE.md, "Sessions").
pub const SESSION_IDLE_SECS: i64 = 2 * 3600;
/// How stale `last_seen_at` may get before a request refreshes it (one write a minute at most).
const TOUCH_AFTER_SECS: i64 = 60;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    pub async fn create_session(&self, user_id: &str) -> StoreResult<String> {
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let token = hex::encode(secret);
        let t = now();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(t)
            .bind(t + SESSION_TTL_SECS)
            .bind(t)
            .execute(&self.db)
            .await?;
        Ok(token)
    }

    /// The user a live session token belongs to; expired, idle or unknown tokens give `None`.
    /// Using a session keeps it alive.
    pub async fn session_user(&self, token: &str) -> StoreResult<Option<SessionUser>> {
        let t = now();
        let hash = token_hash(token);
        let row = sqlx::query(
            "SELECT u.id, u.email, u.display_name, s.last_seen_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3",
        )
        .bind(&hash)
        .bind(t)
        .bind(t - SESSION_IDLE_SECS)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.get::<i64, _>("last_seen_at") < t - TOUCH_AFTER_SECS {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2").bind(t).bind(&hash).execute(&self.db).await?;
        }
        Ok(Some(SessionUser { user_id: row.get("id"), email: row.get("email"), display_name: row.get("display_name") }))
    }

    /// Whether the session still lives, without counting this as using it (a live stream
    /// checking its session must not keep an idle session alive).
    pub async fn session_is_live(&self, token: &str) -> StoreResult<bool> {
        let t = now();
        let row = sqlx::query("SELECT 1 FROM sessions WHERE token_hash = $1 AND expires_at > $2 AND last_seen_at > $3")
            .bind(token_hash(token))
            .bind(t)
            .bind(t - SESSION_IDLE_SECS)
            .fetch_optional(&self.db)
            .await?;
        Ok(row.is_some())
    }

    pub async fn delete_session(&self, token: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(token)).execute(&self.db).await?;
        Ok(())
    }

    /// Ends every session of the user (a new sign-in replaces the old ones).
    pub async fn delete_sessions_of(&self, user_id: &str) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&self.db).await?;
        Ok(r.rows_affected())
    }

    /// Deletes sessions past their lifetime or their idle timeout.
    pub async fn delete_expired_sessions(&self) -> StoreResult<u64> {
        let t = now();
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2").bind(t).bind(t - SESSION_IDLE_SECS).execute(&self.db).await?;
        Ok(r.rows_affected())
    }
}
