//! The seam between the web app and the engine. `server` implements [`Backend`] and puts it in
//! Leptos context; server functions only check the caller and call it. `app` never depends on
//! `server`, and tests can drive the engine without Leptos.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::AppError;
use crate::model::*;

/// A new session, returned by a successful sign-in.
pub struct NewSession {
    /// The secret that goes into the session cookie (only its hash is stored).
    pub token: String,
    pub user: SessionUser,
}

/// Every operation the dashboard needs. Each method that takes a `user` checks that the user
/// belongs to the workspace it touches and answers `NotFound` otherwise.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Checks the password (rate-limited per client and per email) and opens a session.
    async fn sign_in(&self, email: &str, password: &str, client: &str) -> Result<NewSession, AppError>;
    /// Ends the session the token belongs to; unknown tokens are fine (idempotent).
    async fn sign_out(&self, token: &str) -> Result<(), AppError>;
    async fn workspaces(&self, user: &SessionUser) -> Result<Vec<WorkspaceSummary>, AppError>;
    async fn node_overview(&self, user: &SessionUser, workspace: &str) -> Result<NodeOverview, AppError>;
    async fn notifications(&self, user: &SessionUser, workspace: &str) -> Result<Vec<Notification>, AppError>;
    async fn mark_notifications_read(&self, user: &SessionUser, workspace: &str) -> Result<(), AppError>;
    /// The wizard's sizes, regions and the workspace's current need (Pro plans only).
    async fn wizard_data(&self, user: &SessionUser, workspace: &str) -> Result<WizardData, AppError>;
    /// Price, fit and expected improvement of one size for the workspace.
    async fn estimate(&self, user: &SessionUser, workspace: &str, size: &str) -> Result<Estimate, AppError>;
    /// Requests a dedicated node; returns its name. `replaces` names a Failed node of the same
    /// workspace that this retry supersedes: the new order is created first, then the failed
    /// one removed, so a refused create leaves the failed order (and its alternatives) in place.
    async fn start_provisioning(&self, user: &SessionUser, workspace: &str, size: &str, region: &str, replaces: Option<&str>) -> Result<String, AppError>;
    async fn node_progress(&self, user: &SessionUser, workspace: &str, name: &str) -> Result<NodeProgress, AppError>;
    /// A dedicated node's CPU and memory use over `range`, against its allocatable and its
    /// pods' requests (the history is empty, with the reason, when no metrics source answers).
    async fn node_usage(&self, user: &SessionUser, workspace: &str, name: &str, range: UsageRange) -> Result<NodeUsage, AppError>;
    /// A dedicated node's conditions, Kubernetes Events, pods by workload and cost this month.
    async fn node_details(&self, user: &SessionUser, workspace: &str, name: &str) -> Result<NodeDetails, AppError>;
    /// A migration's moved workloads' p95 latency and CPU use over time, before and after.
    async fn migration_performance(&self, user: &SessionUser, workspace: &str, namespace: &str, name: &str) -> Result<MigrationPerformance, AppError>;
    /// Removes a dedicated node no workload uses (its Node and capacity reservation go with it),
    /// or dismisses a failed request.
    async fn delete_dedicated_node(&self, user: &SessionUser, workspace: &str, name: &str) -> Result<(), AppError>;
    /// The Workload Migration screen: Ready dedicated nodes and the workspace's workloads.
    async fn migration_screen(&self, user: &SessionUser, workspace: &str, query: &WorkloadQuery) -> Result<MigrationScreen, AppError>;
    /// Fit check, phases and dry run of moving `workloads` to `node`.
    async fn plan_migration(&self, user: &SessionUser, workspace: &str, node: &str, workloads: &[WorkloadKey]) -> Result<MigrationPlan, AppError>;
    /// Starts a migration (or saves a phased plan and runs its first phase); returns where it
    /// lives: (namespace, name). `latency_margin_percent` turns the latency guard on.
    async fn start_migration(
        &self,
        user: &SessionUser,
        workspace: &str,
        node: &str,
        workloads: &[WorkloadKey],
        phased: bool,
        latency_margin_percent: Option<f64>,
    ) -> Result<(String, String), AppError>;
    async fn migration_progress(&self, user: &SessionUser, workspace: &str, namespace: &str, name: &str) -> Result<MigrationProgress, AppError>;
    /// Steers a migration (see [`MigrationControl`]); a request whose target is already done,
    /// or that races another change, is refused with `Conflict`.
    async fn control_migration(&self, user: &SessionUser, workspace: &str, namespace: &str, name: &str, control: &MigrationControl) -> Result<(), AppError>;
    /// The user's role in the workspace (`NotFound` when not a member).
    async fn role_in(&self, user: &SessionUser, workspace: &str) -> Result<Role, AppError>;
    /// Whether session cookies must carry `Secure` (the site is served over HTTPS).
    fn secure_cookies(&self) -> bool;
}

pub type SharedBackend = Arc<dyn Backend>;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hx_session";

/// The session cookie's token, as the server middleware found it on this request.
#[derive(Clone, Debug)]
pub struct SessionToken(pub String);

/// The client's address, for rate limiting.
#[derive(Clone, Debug)]
pub struct ClientAddr(pub String);
