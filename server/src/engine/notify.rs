//! Telling people how the engine's work ended: a notification for the workspace (with a link
//! to the page that shows it) and an entry in the audit log, written together. The
//! controllers call this once per outcome, guarded by their `UserNotified` condition; the
//! outcome's key makes a repeat (the condition's write failed after the message went out)
//! write nothing.

use crate::store::{AuditEntry, NewNotification, Store, StoreResult};

/// One outcome of the engine's work.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Names this occurrence of the outcome: the object's uid, what happened, and a time the
    /// object's stored status gives it. The same key is recorded once.
    pub key: String,
    /// The workspace slug the work was for.
    pub workspace: String,
    /// Who asked (an email), or the engine's name when nobody is recorded.
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    /// A fixed word: "succeeded", "failed", "rolled-back", "paused".
    pub outcome: &'static str,
    /// `None`: audit only (the user asked for it and sees it happen).
    pub notification: Option<Message>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    pub body: String,
    /// A page of the dashboard.
    pub link: String,
}

/// An outcome's key: the object, what happened, and the latest time its stored status
/// records. Telling again from the same stored status gives the same key; a new occurrence
/// (a node lost a second time, a retried migration) has a later time.
pub fn outcome_key<'a>(uid: Option<&str>, what: &str, times: impl IntoIterator<Item = &'a str>) -> String {
    let latest = times.into_iter().max().unwrap_or("-");
    format!("{}/{what}/{latest}", uid.unwrap_or("-"))
}

#[derive(Clone)]
pub struct Notifier {
    store: Store,
}

impl Notifier {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Notifies the workspace (when the database knows it: an object made with kubectl for
    /// an unknown workspace has nobody to tell) and writes the audit entry.
    pub async fn record(&self, o: &Outcome) -> StoreResult<()> {
        let workspace_id = self.store.workspace_id(&o.workspace).await?;
        let notification = match (&workspace_id, &o.notification) {
            (Some(id), Some(m)) => Some(NewNotification { workspace_id: id, title: &m.title, body: &m.body, link: &m.link }),
            (None, Some(_)) => {
                tracing::warn!(workspace = %o.workspace, target = %o.target, "no such workspace; not notified");
                None
            }
            (_, None) => None,
        };
        let detail = o.detail.clone().or_else(|| o.notification.as_ref().map(|m| m.body.clone()));
        let audit = AuditEntry {
            actor: o.actor.clone(),
            workspace_id: workspace_id.clone(),
            action: o.action.into(),
            target: Some(o.target.clone()),
            outcome: o.outcome.into(),
            detail,
        };
        if !self.store.record_outcome_once(&o.key, notification, &audit).await? {
            tracing::info!(key = %o.key, "outcome already told; not told again");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::outcome_key;

    #[test]
    fn the_key_names_the_object_the_outcome_and_its_latest_time() {
        let k = outcome_key(Some("u1"), "provision/succeeded", ["2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z", "2026-01-01T00:00:02Z"]);
        assert_eq!(k, "u1/provision/succeeded/2026-01-01T00:00:03Z");
        assert_ne!(k, outcome_key(Some("u2"), "provision/succeeded", ["2026-01-01T00:00:03Z"]), "another object");
        assert_ne!(k, outcome_key(Some("u1"), "provision/failed", ["2026-01-01T00:00:03Z"]), "another outcome");
        assert_ne!(k, outcome_key(Some("u1"), "provision/succeeded", ["2026-01-01T00:00:09Z"]), "a later occurrence");
    }
}
