//! Telling people how the engine's work ended: a notification for the workspace (with a link
//! to the page that shows it) and an entry in the audit log, written together. The
//! controllers call this once per outcome, guarded by their `UserNotified` condition.

use crate::store::{AuditEntry, Store, StoreResult};

/// One outcome of the engine's work.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
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
        match (&workspace_id, &o.notification) {
            (Some(id), Some(m)) => {
                self.store.notify(id, &m.title, &m.body, Some(&m.link)).await?;
            }
            (None, Some(_)) => tracing::warn!(workspace = %o.workspace, target = %o.target, "no such workspace; not notified"),
            (_, None) => {}
        }
        let detail = o.detail.clone().or_else(|| o.notification.as_ref().map(|m| m.body.clone()));
        self.store
            .audit(&AuditEntry {
                actor: o.actor.clone(),
                workspace_id,
                action: o.action.into(),
                target: Some(o.target.clone()),
                outcome: o.outcome.into(),
                detail,
            })
            .await
    }
}
