//! Starting and steering WorkloadMigrations for the dashboard: create (or save a phased plan),
//! find one of the workspace's, resume, schedule a resume, approve the next phase, retry after
//! a rollback, and the completion report.

use app::error::AppError;
use app::model::*;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use std::sync::Arc;

use super::{api_error, internal, DashboardBackend};
use crate::cluster::labels;
use crate::crd::{LatencyGuardSpec, MigrationPhase, WorkloadMigration, WorkloadMigrationSpec};
use crate::store::AuditEntry;

/// `2026-11-27T10:30` (a datetime-local input, UTC) or RFC 3339, as RFC 3339.
pub fn parse_resume_at(at: &str) -> Result<String, AppError> {
    let at = at.trim();
    let with_seconds = if at.len() == 16 {
        format!("{at}:00Z")
    } else if at.ends_with('Z') || at.contains('+') {
        at.to_string()
    } else {
        format!("{at}Z")
    };
    let t = time::OffsetDateTime::parse(&with_seconds, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::Invalid(format!("\"{at}\" is not a date and time like 2026-11-27T22:00.")))?;
    if t <= time::OffsetDateTime::now_utc() {
        return Err(AppError::Invalid("Pick a time in the future to resume.".into()));
    }
    Ok(t.format(&time::format_description::well_known::Rfc3339).unwrap_or(with_seconds))
}

/// The spec change a control asks for, checked against the migration as read: a target that
/// is already done (a double click, a second tab) is a conflict, not a second step.
pub fn control_patch(m: &WorkloadMigration, control: &MigrationControl) -> Result<serde_json::Value, AppError> {
    let state = m.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let target = || control.target.ok_or_else(|| AppError::Invalid(format!("{} needs the step it asks for (target).", control.action.label())));
    Ok(match control.action {
        ControlAction::Resume => {
            if !m.spec.paused {
                return Err(AppError::Conflict("The migration is not paused.".into()));
            }
            serde_json::json!({ "spec": { "paused": false, "resumeAt": null } })
        }
        ControlAction::ResumeAt => {
            if !m.spec.paused {
                return Err(AppError::Conflict("The migration is not paused.".into()));
            }
            let when = parse_resume_at(control.at.as_deref().ok_or_else(|| AppError::Invalid("Choose when to resume.".into()))?)?;
            serde_json::json!({ "spec": { "paused": true, "resumeAt": when } })
        }
        ControlAction::ApproveNext => {
            let phase = target()?;
            if phase <= m.spec.approved_phases {
                return Err(AppError::Conflict(format!("Phase {phase} is already approved.")));
            }
            if state != MigrationState::WaitingForApproval || phase != m.spec.approved_phases + 1 {
                return Err(AppError::Conflict(format!("The migration is not waiting to run phase {phase}.")));
            }
            serde_json::json!({ "spec": { "approvedPhases": phase } })
        }
        ControlAction::Retry => {
            let attempt = target()?;
            if attempt <= m.spec.retry {
                return Err(AppError::Conflict(format!("Retry {attempt} has already started.")));
            }
            if !matches!(state, MigrationState::RolledBack | MigrationState::Failed) || attempt != m.spec.retry + 1 {
                return Err(AppError::Conflict("Only a rolled-back or failed migration can be retried.".into()));
            }
            serde_json::json!({ "spec": { "retry": attempt } })
        }
    })
}

impl DashboardBackend {
    /// Before (taken when the migration started) and after (now) numbers for a finished
    /// migration: shared quota and neighbours against guaranteed node resources, and where the
    /// moved workloads' pods run now.
    pub(super) async fn improvement(&self, m: &WorkloadMigration, p: &MigrationProgress) -> Result<ImprovementReport, AppError> {
        let snapshot = self.snapshot().await.map_err(AppError::ClusterUnavailable)?;
        let (requested, allocatable) = snapshot.allocation(&p.node);
        let (mut on_node, mut elsewhere) = (0u32, 0u32);
        for w in &p.workloads {
            for pod in snapshot.pods_of(&w.key) {
                if !pod.running {
                    continue;
                }
                if pod.node.as_deref() == Some(p.node.as_str()) {
                    on_node += 1;
                } else {
                    elsewhere += 1;
                }
            }
        }
        Ok(ImprovementReport {
            before: m.status.as_ref().and_then(|s| s.before.clone()),
            node_cpu: allocatable.cpu,
            node_memory_gib: allocatable.memory_gib(),
            requested_cpu: requested.cpu,
            requested_memory_gib: requested.memory_gib(),
            pods_on_node: on_node,
            pods_on_shared_pool: elsewhere,
        })
    }

    async fn audit_migration(&self, user: &SessionUser, ws: &str, action: &str, target: &str, detail: Option<String>) -> Result<(), AppError> {
        let workspace_id = self.store.workspace_id(ws).await.map_err(internal)?;
        self.store
            .audit(&AuditEntry {
                actor: user.email.clone(),
                workspace_id,
                action: action.into(),
                target: Some(target.into()),
                outcome: "requested".into(),
                detail,
            })
            .await
            .map_err(internal)
    }

    pub(super) async fn start_migration_for(
        &self,
        user: &SessionUser,
        ws: &WorkspaceSummary,
        node: &str,
        keys: &[WorkloadKey],
        phased: bool,
        margin: Option<f64>,
    ) -> Result<(String, String), AppError> {
        if let Some(m) = margin {
            if !(5.0..=500.0).contains(&m) {
                return Err(AppError::Invalid("The latency margin must be between 5 and 500 percent.".into()));
            }
        }
        if margin.is_some() && !self.latency_guard() {
            return Err(AppError::Invalid("The latency guard needs a metrics source; this server has none configured (PROMETHEUS_URL).".into()));
        }
        let (plan, _) = self.plan_for(ws, node, keys).await?;
        if !plan.fits && !phased {
            return Err(AppError::Conflict(plan.warning.unwrap_or_else(|| "The selection does not fit the node.".into())));
        }
        // The record lives with the first workload to move; its workloads may span the
        // workspace's namespaces.
        let namespace = plan
            .phases
            .first()
            .and_then(|p| p.workloads.first())
            .map(|k| k.namespace.clone())
            .ok_or_else(|| AppError::Invalid("Select at least one workload to migrate.".into()))?;
        let phases: Vec<MigrationPhase> = plan.phases.iter().map(|p| MigrationPhase { workloads: p.workloads.clone() }).collect();
        let name = format!("mig-{}", &crate::db::new_id()[..8]);
        let wm = WorkloadMigration {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some([(labels::WORKSPACE.to_string(), ws.slug.clone())].into()),
                ..Default::default()
            },
            spec: WorkloadMigrationSpec {
                workspace: ws.slug.clone(),
                target_node: node.into(),
                phases,
                approved_phases: 1,
                progress_deadline_seconds: 120,
                paused: false,
                resume_at: None,
                latency_guard: margin.map(|m| LatencyGuardSpec { margin_percent: m, consecutive_intervals: 3, interval_seconds: 5, metric: None }),
                retry: 0,
                requested_by: user.email.clone(),
            },
            status: None,
        };
        let created =
            Api::<WorkloadMigration>::namespaced(self.require_kube()?.clone(), &namespace).create(&PostParams::default(), &wm).await.map_err(api_error)?;
        self.reads()?.wrote_migration(&created).await;
        let list = keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        self.audit_migration(user, &ws.slug, "start-migration", &format!("{namespace}/{name}"), Some(format!("to {node}: {list}"))).await?;
        Ok((namespace, name))
    }

    /// The workspace's migration `namespace/name`; `NotFound` for anything else, including a
    /// migration in a namespace of another workspace.
    pub(super) async fn workspace_migration(&self, ws: &str, namespace: &str, name: &str) -> Result<Arc<WorkloadMigration>, AppError> {
        let reads = self.reads()?;
        let not_found = || AppError::NotFound(format!("No migration \"{namespace}/{name}\" in {ws}."));
        if !reads.workspace_namespaces(ws).await.map_err(AppError::ClusterUnavailable)?.contains(namespace) {
            return Err(not_found());
        }
        match reads.migration(namespace, name).await.map_err(AppError::ClusterUnavailable)? {
            Some(m) if m.spec.workspace == ws => Ok(m),
            _ => Err(not_found()),
        }
    }

    pub(super) async fn control(
        &self,
        user: &SessionUser,
        ws: &WorkspaceSummary,
        namespace: &str,
        name: &str,
        control: &MigrationControl,
    ) -> Result<(), AppError> {
        self.workspace_migration(&ws.slug, namespace, name).await?;
        // The check right before a write reads through: the patch below is conditional on
        // this version, and the cache may be a few milliseconds behind the controller.
        let api = Api::<WorkloadMigration>::namespaced(self.require_kube()?.clone(), namespace);
        let m = api.get(name).await.map_err(api_error)?;
        let mut patch = control_patch(&m, control)?;
        // Conditional on what was read: of two identical requests racing, one is refused.
        patch["metadata"] = serde_json::json!({ "resourceVersion": m.metadata.resource_version });
        let patched = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => {
                AppError::Conflict("The migration changed while you acted on it; the page shows its state now. Try again if it still applies.".into())
            }
            other => api_error(other),
        })?;
        self.reads()?.wrote_migration(&patched).await;
        let detail = Some(match (control.target, &control.at) {
            (Some(t), _) => format!("{} {t}", control.action.as_str()),
            (None, Some(at)) => format!("{} {at}", control.action.as_str()),
            (None, None) => control.action.as_str().to_string(),
        });
        self.audit_migration(user, &ws.slug, "control-migration", &format!("{namespace}/{name}"), detail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MigrationState, WorkloadMigrationStatus};

    #[test]
    fn resume_times_must_be_real_and_in_the_future() {
        assert!(parse_resume_at("2099-01-01T10:30").unwrap().starts_with("2099-01-01T10:30:00"));
        assert!(parse_resume_at("yesterday").is_err());
        assert!(parse_resume_at("2001-01-01T10:30").is_err());
    }

    fn migration(approved: u32, retry: u32, phase: MigrationState, paused: bool) -> WorkloadMigration {
        let spec: WorkloadMigrationSpec = serde_json::from_value(serde_json::json!({
            "workspace": "w", "targetNode": "n1", "phases": [], "approvedPhases": approved, "retry": retry, "paused": paused
        }))
        .unwrap();
        let mut m = WorkloadMigration::new("m", spec);
        m.status = Some(WorkloadMigrationStatus { phase, ..Default::default() });
        m
    }

    fn control(action: ControlAction, target: Option<u32>) -> MigrationControl {
        MigrationControl { action, target, at: None }
    }

    #[test]
    fn a_second_identical_approval_or_retry_is_a_conflict() {
        let waiting = migration(1, 0, MigrationState::WaitingForApproval, false);
        assert_eq!(control_patch(&waiting, &control(ControlAction::ApproveNext, Some(2))).unwrap()["spec"]["approvedPhases"], 2);
        let approved = migration(2, 0, MigrationState::WaitingForApproval, false);
        assert!(
            matches!(control_patch(&approved, &control(ControlAction::ApproveNext, Some(2))), Err(AppError::Conflict(m)) if m.contains("already approved"))
        );
        assert!(matches!(control_patch(&waiting, &control(ControlAction::ApproveNext, None)), Err(AppError::Invalid(_))));
        let rolled_back = migration(1, 0, MigrationState::RolledBack, false);
        assert_eq!(control_patch(&rolled_back, &control(ControlAction::Retry, Some(1))).unwrap()["spec"]["retry"], 1);
        let retrying = migration(1, 1, MigrationState::RolledBack, false);
        assert!(matches!(control_patch(&retrying, &control(ControlAction::Retry, Some(1))), Err(AppError::Conflict(_))));
        assert!(matches!(control_patch(&waiting, &control(ControlAction::Resume, None)), Err(AppError::Conflict(m)) if m.contains("not paused")));
        let paused = migration(1, 0, MigrationState::Paused, true);
        assert_eq!(control_patch(&paused, &control(ControlAction::Resume, None)).unwrap()["spec"]["paused"], false);
    }
}
