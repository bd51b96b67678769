//! Database connection: SQLite by default, PostgreSQL when the URL says so, through sqlx's `Any`
//! driver so that one set of queries and migrations serves both.

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

pub type Db = AnyPool;

pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    // SQLite serialises writers; a small pool avoids "database is locked" under load.
    let max = if url.starts_with("sqlite") { 4 } else { 10 };
    let pool = AnyPoolOptions::new().max_connections(max).acquire_timeout(std::time::Duration::from_secs(5)).connect(url).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A random identifier for rows and tokens: 128 bits, hex.
pub fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
