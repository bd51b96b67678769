//! The Workload Migration screen: what can move, where, and the plan (fit, phases, dry run).

use app::error::AppError;
use app::model::*;

use super::{cluster_error, views, DashboardBackend};
use crate::cluster::quantity::GIB;
use crate::cluster::workloads::{self, Workload};
use crate::cluster::{labels, usage};
use crate::crd::Phase;
use crate::migration::patch;
use crate::planning::{self, Room};

/// The most workloads one migration takes: a bound on the work one request can start.
pub const MAX_WORKLOADS: usize = 50;

fn migratable(w: &Workload, dedicated: &[String]) -> MigratableWorkload {
    MigratableWorkload {
        kind: planning::key(w).split('/').next().unwrap_or_default().to_string(),
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        replicas: w.replicas,
        cpu: w.replicas.max(0) as f64 * w.pod_cpu,
        memory_gib: w.replicas.max(0) as f64 * w.pod_memory / GIB,
        has_readiness_probe: w.has_readiness_probe,
        has_pdb: w.has_pdb,
        risks: w.risks(),
        on_node: dedicated.iter().find(|n| w.runs_on(n)).cloned(),
    }
}

/// The changes a move makes to one workload, in words, and the engine's exact patch.
pub fn dry_run_step(order: u32, w: &Workload, ws: &str, node: &str) -> DryRunStep {
    let patch = patch::scheduling_patch(ws, node, w.kind, &w.scheduling);
    let mut changes = vec![
        format!("Save the current nodeSelector, tolerations, affinity and update strategy in the annotation {} (for rollback).", patch::ORIGINAL_ANNOTATION),
        format!("Select node {node} (kubernetes.io/hostname) and tolerate its taint {}={ws}:NoSchedule.", labels::DEDICATED_TAINT),
    ];
    if w.scheduling.affinity.as_ref().is_some_and(|a| a.get("nodeAffinity").is_some()) {
        changes.push("Drop the node affinity that keeps the pods on the shared pool.".into());
    }
    match w.kind {
        workloads::WorkloadKind::Deployment => changes.push(format!(
            "Roll {} pod(s) with maxUnavailable 0 and maxSurge {}: a new pod is Ready before an old one stops.",
            w.replicas, w.surge_pods
        )),
        workloads::WorkloadKind::StatefulSet => changes.push(format!("Replace {} pod(s) one by one, highest ordinal first.", w.replicas)),
    }
    DryRunStep { order, workload: planning::key(w), changes, patch: serde_json::to_string_pretty(&patch).unwrap_or_default() }
}

impl DashboardBackend {
    async fn ready_nodes(&self, ws: &str) -> Result<Vec<TargetNode>, AppError> {
        let client = self.require_kube()?;
        let mut out = Vec::new();
        for dn in self.workspace_nodes(ws).await? {
            if views::effective_phase(&dn) != Phase::Ready {
                continue;
            }
            let Some(node) = dn.status.as_ref().and_then(|s| s.node_name.clone()) else { continue };
            let (cpu, mem) = usage::node_allocation(client, &node).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
            out.push(TargetNode {
                name: node,
                size: dn.spec.size.clone(),
                region: dn.spec.region.clone(),
                allocatable_cpu: cpu.hard,
                allocatable_memory_gib: mem.hard / GIB,
                used_cpu: cpu.used,
                used_memory_gib: mem.used / GIB,
            });
        }
        Ok(out)
    }

    pub(super) async fn migration_screen_for(&self, ws: WorkspaceSummary) -> Result<MigrationScreen, AppError> {
        let read = async {
            let nodes = self.ready_nodes(&ws.slug).await?;
            let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
            let list = workloads::list_workloads(self.require_kube()?, &ws.slug).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
            Ok::<_, AppError>((nodes, list.iter().map(|w| migratable(w, &names)).collect::<Vec<_>>()))
        };
        Ok(match read.await {
            Ok((nodes, workloads)) => MigrationScreen { workspace: ws, nodes, workloads, cluster_error: None, latency_guard_available: self.latency_guard },
            Err(AppError::ClusterUnavailable(m)) => MigrationScreen { workspace: ws, nodes: vec![], workloads: vec![], cluster_error: Some(m), latency_guard_available: self.latency_guard },
            Err(e) => return Err(e),
        })
    }

    /// The workloads named by `keys`, each exactly once; unknown names are refused.
    pub(super) async fn selected_workloads(&self, ws: &str, keys: &[String]) -> Result<Vec<Workload>, AppError> {
        if keys.is_empty() {
            return Err(AppError::Invalid("Select at least one workload to migrate.".into()));
        }
        if keys.len() > MAX_WORKLOADS {
            return Err(AppError::Invalid(format!("At most {MAX_WORKLOADS} workloads move in one migration.")));
        }
        let all = workloads::list_workloads(self.require_kube()?, ws).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        let mut out: Vec<Workload> = Vec::new();
        for k in keys {
            let w = all.iter().find(|w| &planning::key(w) == k).ok_or_else(|| AppError::Invalid(format!("No workload \"{k}\" in {ws}.")))?;
            if !out.iter().any(|o| planning::key(o) == *k) {
                out.push(w.clone());
            }
        }
        Ok(out)
    }

    pub(super) async fn plan_for(&self, ws: &WorkspaceSummary, node: &str, keys: &[String]) -> Result<MigrationPlan, AppError> {
        let target = self
            .ready_nodes(&ws.slug)
            .await?
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| AppError::Invalid(format!("\"{node}\" is not a Ready dedicated node of {}.", ws.name)))?;
        let selected = self.selected_workloads(&ws.slug, keys).await?;
        let refs: Vec<&Workload> = selected.iter().collect();
        let need = planning::need(&refs);
        let free = Room { cpu: (target.allocatable_cpu - target.used_cpu).max(0.0), memory: (target.allocatable_memory_gib - target.used_memory_gib).max(0.0) * GIB };
        let total = Room { cpu: target.allocatable_cpu, memory: target.allocatable_memory_gib * GIB };
        let fits = planning::fits(need, free);
        let phases = planning::phases(refs.clone(), free, total);
        let order: Vec<&Workload> = phases.iter().flat_map(|p| p.workloads.iter()).filter_map(|k| selected.iter().find(|w| &planning::key(w) == k)).collect();
        let steps = order.iter().enumerate().map(|(i, w)| dry_run_step(i as u32 + 1, w, &ws.slug, node)).collect();
        let warning = (!fits).then(|| {
            format!(
                "{node} has {} vCPU and {} GiB free; these workloads need {} vCPU and {} GiB including rolling-update surge. Pick a larger node, fewer workloads, or run the phased plan below.",
                format_amount(free.cpu),
                format_amount(free.memory / GIB),
                format_amount(need.cpu),
                format_amount(need.memory / GIB)
            )
        });
        Ok(MigrationPlan {
            node: node.into(),
            fits,
            need_cpu: need.cpu,
            need_memory_gib: need.memory / GIB,
            free_cpu: free.cpu,
            free_memory_gib: free.memory / GIB,
            warning,
            phases,
            steps,
        })
    }
}
