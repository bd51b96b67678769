//! Demo data for the run command and the tests (idempotent): the account `dev@example.com`
//! with a Pro workspace and a Hobby workspace, and a second tenant that shares the pool.

use app::model::Plan;

use crate::auth::password;
use crate::store::{Store, StoreResult};

pub const DEMO_EMAIL: &str = "dev@example.com";
pub const DEMO_PASSWORD: &str = "hexabase-demo";

pub async fn seed_demo(store: &Store) -> StoreResult<()> {
    let seed_user = |email: &'static str, name: &'static str| async move {
        let existing = store.user_by_email(email).await?;
        match existing {
            Some(u) => Ok::<_, sqlx::Error>(u.id),
            None => {
                let hash = password::hash(DEMO_PASSWORD).expect("argon2 hashes the demo password");
                store.ensure_user(email, name, &hash).await
            }
        }
    };
    let dev = seed_user(DEMO_EMAIL, "Dev Demo").await?;
    let other = seed_user("ops@globex.example", "Globex Ops").await?;

    let prod = store.ensure_workspace("acme-production", "acme-production", Plan::Pro).await?;
    let sandbox = store.ensure_workspace("acme-sandbox", "acme-sandbox", Plan::Hobby).await?;
    let globex = store.ensure_workspace("globex-prod", "globex-prod", Plan::Pro).await?;
    store.ensure_membership(&dev, &prod, "owner").await?;
    store.ensure_membership(&dev, &sandbox, "owner").await?;
    store.ensure_membership(&other, &globex, "owner").await?;
    Ok(())
}
