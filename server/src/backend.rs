//! The server's implementation of the dashboard's `Backend`: every method checks the caller's
//! membership first, then reads the database or the cluster.

use std::sync::Arc;
use std::time::Instant;

use app::backend::{Backend, NewSession};
use app::error::AppError;
use app::model::*;
use async_trait::async_trait;

use crate::auth::password;
use crate::auth::rate_limit::LoginLimiter;
use crate::cluster;
use crate::store::{AuditEntry, Store};

pub struct DashboardBackend {
    store: Store,
    kube: Option<kube::Client>,
    limiter: LoginLimiter,
    secure_cookies: bool,
}

fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "internal error");
    AppError::Internal("the request could not be completed; it has been logged".into())
}

fn cluster_error(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.reason),
        other => other.to_string(),
    }
}

impl DashboardBackend {
    pub fn new(store: Store, kube: Option<kube::Client>, limiter: LoginLimiter, secure_cookies: bool) -> Arc<Self> {
        Arc::new(Self { store, kube, limiter, secure_cookies })
    }

    /// The workspace and its id if the user is a member; `NotFound` otherwise, so that a
    /// foreign workspace's existence is not revealed.
    async fn membership(&self, user: &SessionUser, slug: &str) -> Result<(String, WorkspaceSummary), AppError> {
        self.store
            .member_workspace(&user.user_id, slug)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::workspace_not_found(slug))
    }

    fn kube(&self) -> Result<&kube::Client, String> {
        self.kube.as_ref().ok_or_else(|| "no cluster is configured (set KUBECONFIG)".to_string())
    }
}

#[async_trait]
impl Backend for DashboardBackend {
    async fn sign_in(&self, email: &str, password: &str, client: &str) -> Result<NewSession, AppError> {
        if let Err(wait) = self.limiter.check(email, client, Instant::now()) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            return Err(AppError::RateLimited(format!("too many failed sign-ins; try again in {minutes} minute(s).")));
        }
        let user = self.store.user_by_email(email).await.map_err(internal)?;
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| password::decoy_hash().to_string());
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash)).await.map_err(internal)?;
        let audit = |outcome: &str| AuditEntry {
            actor: email.to_string(),
            workspace_id: None,
            action: "sign-in".into(),
            target: None,
            outcome: outcome.into(),
            detail: Some(format!("client {client}")),
        };
        match user {
            Some(u) if ok => {
                self.limiter.record_success(email);
                let token = self.store.create_session(&u.id).await.map_err(internal)?;
                self.store.audit(&audit("succeeded")).await.map_err(internal)?;
                Ok(NewSession { token, user: SessionUser { user_id: u.id, email: u.email, display_name: u.display_name } })
            }
            _ => {
                self.limiter.record_failure(email, client, Instant::now());
                self.store.audit(&audit("failed")).await.map_err(internal)?;
                Err(AppError::Invalid("The email or password is not right.".into()))
            }
        }
    }

    async fn sign_out(&self, token: &str) -> Result<(), AppError> {
        self.store.delete_session(token).await.map_err(internal)
    }

    async fn workspaces(&self, user: &SessionUser) -> Result<Vec<WorkspaceSummary>, AppError> {
        self.store.workspaces_of(&user.user_id).await.map_err(internal)
    }

    async fn node_overview(&self, user: &SessionUser, workspace: &str) -> Result<NodeOverview, AppError> {
        let (_, ws) = self.membership(user, workspace).await?;
        let read = async {
            let client = self.kube()?;
            let pool = cluster::usage::shared_pool_usage(client, &ws.slug).await.map_err(cluster_error)?;
            let nodes = cluster::usage::dedicated_nodes(client, &ws.slug).await.map_err(cluster_error)?;
            Ok::<_, String>((pool, nodes))
        };
        Ok(match read.await {
            Ok((pool, nodes)) => NodeOverview { workspace: ws, shared_pool: Some(pool), cluster_error: None, dedicated_nodes: nodes },
            Err(msg) => NodeOverview { workspace: ws, shared_pool: None, cluster_error: Some(msg), dedicated_nodes: vec![] },
        })
    }

    async fn notifications(&self, user: &SessionUser, workspace: &str) -> Result<Vec<Notification>, AppError> {
        let (id, _) = self.membership(user, workspace).await?;
        self.store.notifications(&id).await.map_err(internal)
    }

    async fn mark_notifications_read(&self, user: &SessionUser, workspace: &str) -> Result<(), AppError> {
        let (id, _) = self.membership(user, workspace).await?;
        self.store.mark_notifications_read(&id).await.map_err(internal)
    }

    async fn wizard_data(&self, _user: &SessionUser, _workspace: &str) -> Result<WizardData, AppError> {
        Err(AppError::Internal("provisioning is not wired yet".into()))
    }

    async fn estimate(&self, _user: &SessionUser, _workspace: &str, _size: &str) -> Result<Estimate, AppError> {
        Err(AppError::Internal("provisioning is not wired yet".into()))
    }

    async fn start_provisioning(&self, _user: &SessionUser, _workspace: &str, _size: &str, _region: &str, _replaces: Option<&str>) -> Result<String, AppError> {
        Err(AppError::Internal("provisioning is not wired yet".into()))
    }

    async fn node_progress(&self, _user: &SessionUser, _workspace: &str, _name: &str) -> Result<NodeProgress, AppError> {
        Err(AppError::Internal("provisioning is not wired yet".into()))
    }

    async fn delete_dedicated_node(&self, _user: &SessionUser, _workspace: &str, _name: &str) -> Result<(), AppError> {
        Err(AppError::Internal("provisioning is not wired yet".into()))
    }

    fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }
}
