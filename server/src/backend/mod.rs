//! The server's implementation of the dashboard's `Backend`: every method checks the caller's
//! membership first, then reads the database or the cluster.

use std::sync::Arc;
use std::time::Instant;

use app::backend::{Backend, NewSession};
use app::error::AppError;
use app::model::*;
use async_trait::async_trait;

pub mod feed;
mod migration_runs;
mod migrations;
mod node_details;
mod nodes;
mod performance;
pub mod views;

use crate::auth::password;
use crate::auth::rate_limit::LoginLimiter;
use crate::cache::{ClusterReads, Snapshot};
use crate::catalogue::Catalogue;
use crate::live::LiveStreams;
use crate::prometheus::Prometheus;
use crate::store::{AuditEntry, Store};

/// Password checks (argon2: ~19 MiB and most of a core each) that may run at once; a sign-in
/// beyond them is answered "busy" at once instead of queueing.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 4;
/// Who a failed sign-in for an email that is no account is recorded as: what was typed may
/// be a password in the wrong field, so it is not stored.
pub const UNKNOWN_ACCOUNT: &str = "(unknown account)";

pub struct DashboardBackend {
    store: Store,
    /// Writes, and the checks right before a write.
    kube: Option<kube::Client>,
    /// Every read a page makes: the watch caches, or the API server (`--cluster-reads`).
    reads: Option<ClusterReads>,
    catalogue: Arc<Catalogue>,
    /// The metrics source: the migration latency guard's and the dedicated node's usage
    /// history (`None`: neither is offered).
    prometheus: Option<Prometheus>,
    limiter: LoginLimiter,
    password_checks: Arc<tokio::sync::Semaphore>,
    secure_cookies: bool,
    live: Arc<LiveStreams>,
    /// Held from counting a workspace's orders to creating one, so that two requests cannot
    /// both take the plan's last dedicated node (one replica; see ARCHITECTURE.md, Security).
    ordering: tokio::sync::Mutex<()>,
    /// Node Management's live overviews, one per workspace with open pages.
    feeds: feed::OverviewFeeds,
}

pub(crate) fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "internal error");
    AppError::Internal("the request could not be completed; it has been logged".into())
}

/// A name from a request that breaks Kubernetes' naming rules never reaches the API server.
fn valid(check: Result<(), String>) -> Result<(), AppError> {
    check.map_err(AppError::Invalid)
}

pub(crate) use crate::cluster::error_text as cluster_error;

/// A write's error as the user should see it: the API server refusing the request (a policy,
/// a validation, a conflict) says why in its own words; anything else means the cluster could
/// not be reached.
pub(crate) fn api_error(e: kube::Error) -> AppError {
    match e {
        kube::Error::Api(s) if s.code == 409 => AppError::Conflict(s.message),
        kube::Error::Api(s) if s.code == 404 => AppError::NotFound(s.message),
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 422) => AppError::Forbidden(format!("The cluster refused the request: {}", s.message)),
        other => AppError::ClusterUnavailable(cluster_error(other)),
    }
}

impl DashboardBackend {
    pub fn new(
        store: Store,
        reads: Option<ClusterReads>,
        catalogue: Arc<Catalogue>,
        prometheus: Option<Prometheus>,
        limiter: LoginLimiter,
        secure_cookies: bool,
        live: Arc<LiveStreams>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            kube: reads.as_ref().map(|r| r.client().clone()),
            reads,
            catalogue,
            prometheus,
            limiter,
            password_checks: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_CHECKS)),
            secure_cookies,
            live,
            ordering: tokio::sync::Mutex::new(()),
            feeds: Default::default(),
        })
    }

    /// The workspace and its id if the user is a member; `NotFound` otherwise, so that a
    /// foreign workspace's existence is not revealed.
    async fn membership(&self, user: &SessionUser, slug: &str) -> Result<(String, WorkspaceSummary), AppError> {
        self.store.member_workspace(&user.user_id, slug).await.map_err(internal)?.ok_or_else(|| AppError::workspace_not_found(slug))
    }

    fn kube(&self) -> Result<&kube::Client, String> {
        self.kube.as_ref().ok_or_else(|| "no cluster is configured (set KUBECONFIG)".to_string())
    }

    /// The cluster as it is now, for a page.
    async fn snapshot(&self) -> Result<Snapshot, String> {
        self.reads.as_ref().ok_or_else(|| "no cluster is configured (set KUBECONFIG)".to_string())?.snapshot().await
    }

    fn reads(&self) -> Result<&ClusterReads, AppError> {
        self.reads.as_ref().ok_or_else(|| AppError::ClusterUnavailable("no cluster is configured (set KUBECONFIG)".into()))
    }

    /// A metrics source is configured for the migration latency guard.
    fn latency_guard(&self) -> bool {
        self.prometheus.is_some()
    }

    /// Like `kube()`, for operations that cannot go on without the cluster.
    fn require_kube(&self) -> Result<&kube::Client, AppError> {
        self.kube().map_err(AppError::ClusterUnavailable)
    }

    /// The user's role lets them make this kind of change; `Forbidden` says why not.
    fn require(ws: &WorkspaceSummary, p: Permission) -> Result<(), AppError> {
        if ws.role.may(p) {
            Ok(())
        } else {
            Err(AppError::Forbidden(ws.role.refusal(p)))
        }
    }

    /// Membership, and a plan that includes dedicated nodes (the use case's precondition).
    async fn dedicated_capable(&self, user: &SessionUser, slug: &str) -> Result<WorkspaceSummary, AppError> {
        let (_, ws) = self.membership(user, slug).await?;
        if !ws.plan.allows_dedicated_nodes() {
            return Err(AppError::Forbidden(format!(
                "Dedicated nodes are part of the Pro plan; {} is on the {} plan. Upgrade to add one.",
                ws.name,
                ws.plan.label()
            )));
        }
        Ok(ws)
    }
}

#[async_trait]
impl Backend for DashboardBackend {
    async fn sign_in(&self, email: &str, password: &str, client: &str) -> Result<NewSession, AppError> {
        // Reserved before any work: parallel guesses count against the limit while in flight.
        let attempt = self.limiter.reserve(email, client, Instant::now()).map_err(|wait| {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            AppError::RateLimited(format!("too many failed sign-ins; try again in {}.", count(minutes as i64, "minute", "minutes")))
        })?;
        let permit = self.password_checks.clone().try_acquire_owned().map_err(|_| AppError::RateLimited("sign-in is busy; try again in a moment.".into()))?;
        let user = self.store.user_by_email(email).await.map_err(internal)?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let pw = password.to_string();
        // The check (and, for an unknown email, the decoy's first hashing) runs off the async
        // threads, and an unknown email takes as long as a wrong password.
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            password::verify(&pw, stored.as_deref().unwrap_or_else(|| password::decoy_hash()))
        })
        .await
        .map_err(internal)?;
        let audit = |actor: &str, outcome: &str| AuditEntry {
            actor: actor.to_string(),
            workspace_id: None,
            action: "sign-in".into(),
            target: None,
            outcome: outcome.into(),
            detail: Some(format!("client {client}")),
        };
        match user {
            Some(u) if ok => {
                attempt.succeeded();
                // One session a person: signing in again ends the sessions signed in before.
                self.store.delete_sessions_of(&u.id).await.map_err(internal)?;
                self.live.end_user(&u.id);
                let token = self.store.create_session(&u.id).await.map_err(internal)?;
                self.store.audit(&audit(&u.email, "succeeded")).await.map_err(internal)?;
                Ok(NewSession { token, user: SessionUser { user_id: u.id, email: u.email, display_name: u.display_name } })
            }
            known => {
                attempt.failed(Instant::now());
                let actor = known.as_ref().map_or(UNKNOWN_ACCOUNT, |u| u.email.as_str());
                self.store.audit(&audit(actor, "failed")).await.map_err(internal)?;
                Err(AppError::Invalid("The email or password is not right.".into()))
            }
        }
    }

    async fn sign_out(&self, token: &str) -> Result<(), AppError> {
        self.live.end_session(token);
        self.store.delete_session(token).await.map_err(internal)
    }

    async fn workspaces(&self, user: &SessionUser) -> Result<Vec<WorkspaceSummary>, AppError> {
        self.store.workspaces_of(&user.user_id).await.map_err(internal)
    }

    async fn node_overview(&self, user: &SessionUser, workspace: &str) -> Result<NodeOverview, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        self.overview(ws).await
    }

    async fn notifications(&self, user: &SessionUser, workspace: &str) -> Result<Vec<Notification>, AppError> {
        let (id, _) = self.membership(user, workspace).await?;
        self.store.notifications(&id).await.map_err(internal)
    }

    async fn mark_notifications_read(&self, user: &SessionUser, workspace: &str) -> Result<(), AppError> {
        let (id, _) = self.membership(user, workspace).await?;
        self.store.mark_notifications_read(&id).await.map_err(internal)
    }

    async fn wizard_data(&self, user: &SessionUser, workspace: &str) -> Result<WizardData, AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        self.wizard(ws).await
    }

    async fn estimate(&self, user: &SessionUser, workspace: &str, size: &str) -> Result<Estimate, AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        self.estimate_for(&ws, size).await
    }

    async fn start_provisioning(&self, user: &SessionUser, workspace: &str, size: &str, region: &str, replaces: Option<&str>) -> Result<String, AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        Self::require(&ws, Permission::ManageNodes)?;
        if let Some(old) = replaces {
            valid(check_name("dedicated node", old))?;
        }
        self.provision(user, &ws, size, region, replaces).await
    }

    async fn node_progress(&self, user: &SessionUser, workspace: &str, name: &str) -> Result<NodeProgress, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        valid(check_name("dedicated node", name))?;
        let dn = self.workspace_node(&ws.slug, name).await?;
        Ok(views::node_progress(&dn))
    }

    async fn node_usage(&self, user: &SessionUser, workspace: &str, name: &str, range: UsageRange) -> Result<NodeUsage, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        valid(check_name("dedicated node", name))?;
        let dn = self.workspace_node(&ws.slug, name).await?;
        self.usage_of(&dn, range).await
    }

    async fn node_details(&self, user: &SessionUser, workspace: &str, name: &str) -> Result<NodeDetails, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        valid(check_name("dedicated node", name))?;
        let dn = self.workspace_node(&ws.slug, name).await?;
        self.details_of(&ws.slug, &dn).await
    }

    async fn delete_dedicated_node(&self, user: &SessionUser, workspace: &str, name: &str) -> Result<(), AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        Self::require(&ws, Permission::ManageNodes)?;
        valid(check_name("dedicated node", name))?;
        self.delete_node(user, &ws, name).await
    }

    async fn migration_screen(&self, user: &SessionUser, workspace: &str, query: &WorkloadQuery) -> Result<MigrationScreen, AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        self.migration_screen_for(ws, query).await
    }

    async fn plan_migration(&self, user: &SessionUser, workspace: &str, node: &str, workloads: &[WorkloadKey]) -> Result<MigrationPlan, AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        valid(check_name("node", node))?;
        self.plan_for(&ws, node, workloads).await.map(|(plan, _)| plan)
    }

    async fn start_migration(
        &self,
        user: &SessionUser,
        workspace: &str,
        node: &str,
        workloads: &[WorkloadKey],
        phased: bool,
        latency_margin_percent: Option<f64>,
    ) -> Result<(String, String), AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        Self::require(&ws, Permission::Migrate)?;
        valid(check_name("node", node))?;
        self.start_migration_for(user, &ws, node, workloads, phased, latency_margin_percent).await
    }

    async fn migration_progress(&self, user: &SessionUser, workspace: &str, namespace: &str, name: &str) -> Result<MigrationProgress, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        valid(check_namespace(namespace).and(check_name("migration", name)))?;
        let migration = self.workspace_migration(&ws.slug, namespace, name).await?;
        let mut progress = views::migration_progress(&migration);
        if progress.phase == MigrationState::Succeeded {
            progress.report = self.improvement(&migration, &progress).await.ok();
        }
        Ok(progress)
    }

    async fn migration_performance(&self, user: &SessionUser, workspace: &str, namespace: &str, name: &str) -> Result<MigrationPerformance, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        valid(check_namespace(namespace).and(check_name("migration", name)))?;
        let migration = self.workspace_migration(&ws.slug, namespace, name).await?;
        self.performance_of(&migration).await
    }

    async fn control_migration(&self, user: &SessionUser, workspace: &str, namespace: &str, name: &str, control: &MigrationControl) -> Result<(), AppError> {
        let ws = self.dedicated_capable(user, workspace).await?;
        Self::require(&ws, Permission::Migrate)?;
        valid(check_namespace(namespace).and(check_name("migration", name)))?;
        self.control(user, &ws, namespace, name, control).await
    }

    async fn role_in(&self, user: &SessionUser, workspace: &str) -> Result<Role, AppError> {
        Ok(self.membership(user, workspace).await?.1.role)
    }

    fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }
}
