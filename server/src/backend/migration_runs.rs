//! Starting and steering WorkloadMigrations for the dashboard: create (or save a phased plan),
//! read progress, resume, schedule a resume, approve the next phase, retry after a rollback.

use app::error::AppError;
use app::model::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use super::{cluster_error, internal, DashboardBackend};
use crate::cluster::quantity::GIB;
use crate::cluster::{labels, usage};
use crate::cluster::workloads::{self, Workload};
use crate::crd::{LatencyGuardSpec, MigrationPhase, MigrationState, WorkloadKind, WorkloadMigration, WorkloadMigrationSpec, WorkloadRef};
use crate::planning;
use crate::store::AuditEntry;

fn state_word(s: MigrationState) -> &'static str {
    match s {
        MigrationState::Pending => "Pending",
        MigrationState::Running => "Running",
        MigrationState::Paused => "Paused",
        MigrationState::WaitingForApproval => "WaitingForApproval",
        MigrationState::Succeeded => "Succeeded",
        MigrationState::RolledBack => "RolledBack",
        MigrationState::Failed => "Failed",
    }
}

fn kind_word(k: WorkloadKind) -> &'static str {
    match k {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
    }
}

pub fn progress(m: &WorkloadMigration) -> MigrationProgress {
    let status = m.status.clone().unwrap_or_default();
    let workloads = if status.workloads.is_empty() {
        m.spec
            .phases
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.workloads.iter().map(move |w| WorkloadProgress {
                    key: format!("{}/{}", kind_word(w.kind), w.name),
                    phase_index: i as u32 + 1,
                    state: "Pending".into(),
                    desired: 0,
                    updated: 0,
                    ready: 0,
                    available: 0,
                    min_available_seen: None,
                    message: None,
                })
            })
            .collect()
    } else {
        status
            .workloads
            .iter()
            .map(|w| WorkloadProgress {
                key: format!("{}/{}", kind_word(w.kind), w.name),
                phase_index: w.phase_index,
                state: format!("{:?}", w.state),
                desired: w.desired_replicas,
                updated: w.updated_replicas,
                ready: w.ready_replicas,
                available: w.available_replicas,
                min_available_seen: w.min_available_seen,
                message: w.message.clone(),
            })
            .collect()
    };
    MigrationProgress {
        name: m.metadata.name.clone().unwrap_or_default(),
        workspace: m.spec.workspace.clone(),
        namespace: m.metadata.namespace.clone().unwrap_or_default(),
        node: m.spec.target_node.clone(),
        phase: state_word(status.phase).into(),
        total_phases: m.spec.phases.len() as u32,
        approved_phases: m.spec.approved_phases,
        workloads,
        baseline_latency_ms: status.baseline_latency_ms,
        current_latency_ms: status.current_latency_ms,
        pause_reason: status.pause_reason.clone().or_else(|| m.spec.paused.then(|| "Paused by request.".to_string())),
        error_reason: status.error.as_ref().map(|e| e.reason.clone()),
        error_message: status.error.as_ref().map(|e| e.message.clone()),
        troubleshooting: status.error.as_ref().map(|e| e.troubleshooting.clone()).unwrap_or_default(),
        resume_at: m.spec.resume_at.clone(),
        report: None,
    }
}

fn workload_ref(w: &Workload) -> WorkloadRef {
    WorkloadRef { kind: w.kind, name: w.name.clone() }
}

/// `2026-11-27T10:30` (a datetime-local input, UTC) or RFC 3339, as RFC 3339.
pub fn parse_resume_at(at: &str) -> Result<String, AppError> {
    let at = at.trim();
    let with_seconds = if at.len() == 16 { format!("{at}:00Z") } else if at.ends_with('Z') || at.contains('+') { at.to_string() } else { format!("{at}Z") };
    let t = time::OffsetDateTime::parse(&with_seconds, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::Invalid(format!("\"{at}\" is not a date and time like 2026-11-27T22:00.")))?;
    if t <= time::OffsetDateTime::now_utc() {
        return Err(AppError::Invalid("Pick a time in the future to resume.".into()));
    }
    Ok(t.format(&time::format_description::well_known::Rfc3339).unwrap_or(with_seconds))
}

impl DashboardBackend {
    /// Before/after numbers for a finished migration: quota share vs guaranteed node resources,
    /// and where the namespace's pods run now.
    pub(super) async fn improvement(&self, ws: &str, p: &MigrationProgress) -> Result<ImprovementReport, AppError> {
        let client = self.require_kube()?;
        let unavailable = |e| AppError::ClusterUnavailable(cluster_error(e));
        let pool = usage::shared_pool_usage(client, ws).await.map_err(unavailable)?;
        let (cpu, mem) = usage::node_allocation(client, &p.node).await.map_err(unavailable)?;
        let pods = Api::<Pod>::namespaced(client.clone(), &p.namespace).list(&ListParams::default()).await.map_err(unavailable)?;
        let running = pods.items.iter().filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        let (on_node, elsewhere) = running.fold((0u32, 0u32), |(on, off), pod| {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(p.node.as_str()) { (on + 1, off) } else { (on, off + 1) }
        });
        Ok(ImprovementReport {
            quota_cpu: pool.cpu.hard,
            neighbour_workspaces: pool.neighbour_workspaces,
            node_cpu: cpu.hard,
            node_memory_gib: mem.hard / GIB,
            requested_cpu: cpu.used,
            requested_memory_gib: mem.used / GIB,
            pods_on_node: on_node,
            pods_on_shared_pool: elsewhere,
        })
    }

    async fn audit_migration(&self, user: &SessionUser, ws: &str, action: &str, target: &str, detail: Option<String>) -> Result<(), AppError> {
        let workspace_id = self.store.workspace_id(ws).await.map_err(internal)?;
        self.store
            .audit(&AuditEntry { actor: user.email.clone(), workspace_id, action: action.into(), target: Some(target.into()), outcome: "requested".into(), detail })
            .await
            .map_err(internal)
    }

    pub(super) async fn start_migration_for(&self, user: &SessionUser, ws: &WorkspaceSummary, node: &str, keys: &[String], phased: bool, margin: Option<f64>) -> Result<String, AppError> {
        if let Some(m) = margin {
            if !(5.0..=500.0).contains(&m) {
                return Err(AppError::Invalid("The latency margin must be between 5 and 500 percent.".into()));
            }
        }
        if margin.is_some() && !self.latency_guard {
            return Err(AppError::Invalid("The latency guard needs a metrics source; this server has none configured (PROMETHEUS_URL).".into()));
        }
        let plan = self.plan_for(ws, node, keys).await?;
        if !plan.fits && !phased {
            return Err(AppError::Conflict(plan.warning.unwrap_or_else(|| "The selection does not fit the node.".into())));
        }
        let selected = self.selected_workloads(&ws.slug, keys).await?;
        let namespace = selected[0].namespace.clone();
        if selected.iter().any(|w| w.namespace != namespace) {
            return Err(AppError::Invalid("One migration moves workloads of one namespace; start one per namespace.".into()));
        }
        // The plan's phases (one when everything fits), production first.
        let phases: Vec<MigrationPhase> = plan
            .phases
            .iter()
            .map(|p| MigrationPhase {
                workloads: p.workloads.iter().filter_map(|k| selected.iter().find(|w| &planning::key(w) == k)).map(workload_ref).collect(),
            })
            .collect();
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
                latency_guard: margin.map(|m| LatencyGuardSpec { margin_percent: m, consecutive_intervals: 3, interval_seconds: 5, query: None }),
                retry: 0,
                requested_by: user.email.clone(),
            },
            status: None,
        };
        Api::<WorkloadMigration>::namespaced(self.require_kube()?.clone(), &namespace)
            .create(&PostParams::default(), &wm)
            .await
            .map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        self.audit_migration(user, &ws.slug, "start-migration", &name, Some(format!("to {node}: {}", keys.join(", ")))).await?;
        Ok(name)
    }

    /// The workspace's migration `name`, in any of its namespaces; `NotFound` otherwise.
    pub(super) async fn workspace_migration(&self, ws: &str, name: &str) -> Result<WorkloadMigration, AppError> {
        let client = self.require_kube()?;
        for ns in workloads::workspace_namespaces(client, ws).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))? {
            let api: Api<WorkloadMigration> = Api::namespaced(client.clone(), &ns);
            if let Some(m) = api.get_opt(name).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))? {
                if m.spec.workspace == ws {
                    return Ok(m);
                }
            }
        }
        Err(AppError::NotFound(format!("No migration \"{name}\" in {ws}.")))
    }

    pub(super) async fn control(&self, user: &SessionUser, ws: &WorkspaceSummary, name: &str, action: &str, at: Option<&str>) -> Result<(), AppError> {
        let m = self.workspace_migration(&ws.slug, name).await?;
        let state = m.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let patch = match action {
            "resume" => serde_json::json!({ "spec": { "paused": false, "resumeAt": null } }),
            "resume_at" => {
                let when = parse_resume_at(at.ok_or_else(|| AppError::Invalid("Choose when to resume.".into()))?)?;
                serde_json::json!({ "spec": { "paused": true, "resumeAt": when } })
            }
            "approve_next" => {
                if state != MigrationState::WaitingForApproval {
                    return Err(AppError::Conflict("The migration is not waiting for the next phase.".into()));
                }
                serde_json::json!({ "spec": { "approvedPhases": m.spec.approved_phases + 1 } })
            }
            "retry" => {
                if !matches!(state, MigrationState::RolledBack | MigrationState::Failed) {
                    return Err(AppError::Conflict("Only a rolled-back or failed migration can be retried.".into()));
                }
                serde_json::json!({ "spec": { "retry": m.spec.retry + 1 } })
            }
            other => return Err(AppError::Invalid(format!("Unknown action \"{other}\": use resume, resume_at, approve_next or retry."))),
        };
        let ns = m.metadata.namespace.clone().unwrap_or_default();
        Api::<WorkloadMigration>::namespaced(self.require_kube()?.clone(), &ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        self.audit_migration(user, &ws.slug, &format!("migration-{action}"), name, at.map(String::from)).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_resume_at;

    #[test]
    fn resume_times_must_be_real_and_in_the_future() {
        assert!(parse_resume_at("2099-01-01T10:30").unwrap().starts_with("2099-01-01T10:30:00"));
        assert!(parse_resume_at("yesterday").is_err());
        assert!(parse_resume_at("2001-01-01T10:30").is_err());
    }
}
