//! Everything the database holds that is not cluster state: people, workspaces and plans,
//! sessions, notifications, the audit log. One `impl Store` block a concern.

mod audit;
mod lookup;
mod notifications;
mod outcomes;
mod sessions;
mod users;
mod workspaces;

pub use audit::AuditEntry;
pub use outcomes::NewNotification;
pub use sessions::{token_hash, SESSION_IDLE_SECS, SESSION_TTL_SECS};
pub use users::UserRecord;

use crate::db::Db;

#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn pool(&self) -> &Db {
        &self.db
    }
}

pub type StoreResult<T> = Result<T, sqlx::Error>;
