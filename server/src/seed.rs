//! Demo data for the run command and the tests, only with `--seed-demo` (idempotent). Every
//! account it creates is listed in the README. It never adopts a workspace it did not create:
//! a workspace whose slug exists and whose demo owner is not already a member is left alone.

use app::model::{Plan, Role};

use crate::auth::password;
use crate::store::{Store, StoreResult};

pub const DEMO_EMAIL: &str = "dev@example.com";
pub const DEMO_PASSWORD: &str = "hexabase-demo";

/// The demo's people: (email, display name). All share `DEMO_PASSWORD`.
pub const DEMO_ACCOUNTS: [(&str, &str); 3] = [(DEMO_EMAIL, "Dev Demo"), ("viewer@example.com", "Val Viewer"), ("ops@globex.example", "Globex Ops")];

/// A demo workspace: slug, plan, and who is in it with which role (the first is its owner).
type DemoWorkspace = (&'static str, Plan, &'static [(&'static str, Role)]);

const DEMO_WORKSPACES: [DemoWorkspace; 3] = [
    ("acme-production", Plan::Pro, &[(DEMO_EMAIL, Role::Owner), ("viewer@example.com", Role::Viewer)]),
    ("acme-sandbox", Plan::Hobby, &[(DEMO_EMAIL, Role::Owner)]),
    ("globex-prod", Plan::Pro, &[("ops@globex.example", Role::Owner)]),
];

pub async fn seed_demo(store: &Store) -> StoreResult<()> {
    let mut ids = Vec::new();
    for (email, name) in DEMO_ACCOUNTS {
        let id = match store.user_by_email(email).await? {
            Some(u) => u.id,
            None => {
                let hash = password::hash(DEMO_PASSWORD).expect("argon2 hashes the demo password");
                store.ensure_user(email, name, &hash).await?
            }
        };
        ids.push((email, id));
    }
    let id_of = |email: &str| ids.iter().find(|(e, _)| *e == email).map(|(_, id)| id.clone()).expect("a demo account");
    for (slug, plan, members) in DEMO_WORKSPACES {
        let (workspace, created) = store.create_workspace(slug, slug, plan).await?;
        let owner = id_of(members[0].0);
        if !created && !store.is_member(&owner, &workspace).await? {
            tracing::warn!(workspace = slug, "a workspace with the demo's name exists and is not the demo's; the seed leaves it alone");
            continue;
        }
        for (email, role) in members {
            store.ensure_membership(&id_of(email), &workspace, *role).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Whoever runs the seed learns from the README which accounts it made, and with which
    /// password: none is a surprise left in a database.
    #[test]
    fn the_readme_lists_every_demo_account() {
        let readme = include_str!("../../README.md");
        for (email, _) in super::DEMO_ACCOUNTS {
            assert!(readme.contains(&format!("| {email} |")), "README.md does not list the demo account {email}");
        }
        assert!(readme.contains(super::DEMO_PASSWORD), "README.md does not give the demo password");
    }
}
