//! The Workload Migration screen: what can move, where, and the plan (fit, phases, dry run).

use std::collections::BTreeSet;

use app::error::AppError;
use app::model::*;

use super::{views, DashboardBackend};
use crate::cache::Snapshot;
use crate::capacity::{self, Resources};
use crate::cluster::labels;
use crate::cluster::workloads::Workload;
use crate::migration::patch;
use crate::planning;

/// The most workloads one migration takes: a bound on the work one request can start.
pub const MAX_WORKLOADS: usize = 50;

fn migratable(w: &Workload) -> MigratableWorkload {
    let steady = w.demand.steady();
    MigratableWorkload {
        key: w.key.clone(),
        replicas: w.replicas(),
        cpu: steady.cpu,
        memory_gib: steady.memory_gib(),
        has_readiness_probe: w.has_readiness_probe,
        has_pdb: w.has_pdb,
        risks: w.risks(),
        on_node: w.pinned_node(),
    }
}

/// The changes a move makes to one workload, in words, and the engine's exact patch. The patch
/// selects the target by its hostname label (`cluster::hostname`), not always its name.
pub fn dry_run_step(order: u32, w: &Workload, ws: &str, node: &str, hostname: &str) -> DryRunStep {
    let kind = w.key.kind;
    let patch = patch::scheduling_patch(ws, hostname, kind, &w.scheduling);
    let mut changes = vec![
        format!(
            "Save the current nodeSelector, tolerations, affinity, priority class and update strategy in the annotation {} (for rollback).",
            patch::ORIGINAL_ANNOTATION
        ),
        format!("Select node {node} (kubernetes.io/hostname={hostname}) and tolerate its taint {}={ws}:NoSchedule.", labels::DEDICATED_TAINT),
    ];
    if w.scheduling.affinity.as_ref().is_some_and(|a| a.get("nodeAffinity").is_some()) {
        changes.push("Drop the node affinity that keeps the pods on the shared pool.".into());
    }
    match &w.scheduling.priority_class_name {
        None => changes.push(format!("Run in the priority class {}: the pods leave the shared-pool quota.", labels::DEDICATED_PRIORITY_CLASS)),
        Some(own) => changes.push(format!("Keep its own priority class {own}: its pods keep counting against the shared-pool quota.")),
    }
    match kind {
        WorkloadKind::Deployment => changes.push(format!(
            "Roll {} with maxUnavailable 0 and maxSurge {}: a new pod is Ready before an old one stops.",
            count(w.replicas(), "pod", "pods"),
            w.demand.surge_pods
        )),
        WorkloadKind::StatefulSet => changes.push(format!("Replace {} one by one, highest ordinal first.", count(w.replicas(), "pod", "pods"))),
    }
    DryRunStep { order, workload: w.key.clone(), changes, patch: serde_json::to_string_pretty(&patch).unwrap_or_default() }
}

impl DashboardBackend {
    /// The workspace's Ready dedicated nodes, with what is requested on each.
    fn ready_nodes(snapshot: &Snapshot, ws: &str) -> Vec<TargetNode> {
        snapshot
            .dedicated_nodes(ws)
            .iter()
            .filter(|dn| views::effective_phase(dn) == NodePhase::Ready)
            .filter_map(|dn| {
                let node = dn.status.as_ref()?.node_name.clone()?;
                let (used, allocatable) = snapshot.allocation(&node);
                Some(TargetNode {
                    name: node,
                    size: dn.spec.size.clone(),
                    region: dn.spec.region.clone(),
                    allocatable_cpu: allocatable.cpu,
                    allocatable_memory_gib: allocatable.memory_gib(),
                    used_cpu: used.cpu,
                    used_memory_gib: used.memory_gib(),
                })
            })
            .collect()
    }

    pub(super) async fn migration_screen_for(&self, ws: WorkspaceSummary, query: &WorkloadQuery) -> Result<MigrationScreen, AppError> {
        let guard = self.latency_guard();
        Ok(match self.snapshot().await {
            Ok(snapshot) => Self::migration_screen_of(&snapshot, ws, guard, query),
            Err(m) => MigrationScreen {
                workspace: ws,
                nodes: vec![],
                workloads: vec![],
                listing: WorkloadListing::default(),
                cluster_error: Some(m),
                latency_guard_available: guard,
            },
        })
    }

    /// The Workload Migration screen from one snapshot (pure): the target nodes and the page of
    /// workloads `query` asks for.
    pub fn migration_screen_of(snapshot: &Snapshot, ws: WorkspaceSummary, latency_guard_available: bool, query: &WorkloadQuery) -> MigrationScreen {
        let nodes = Self::ready_nodes(snapshot, &ws.slug);
        // Count, filter and page by key; only the page's workloads are read further.
        let all = snapshot.workload_keys(&ws.slug);
        let matching: Vec<&WorkloadKey> = all.iter().filter(|k| query.matches(k)).collect();
        let pages = (matching.len() as u32).div_ceil(WORKLOADS_PER_PAGE).max(1);
        let page = query.page.clamp(1, pages);
        let shown: BTreeSet<&WorkloadKey> =
            matching.iter().skip(((page - 1) * WORKLOADS_PER_PAGE) as usize).take(WORKLOADS_PER_PAGE as usize).copied().collect();
        MigrationScreen {
            workloads: snapshot.workloads_where(&ws.slug, |k| shown.contains(k)).iter().map(migratable).collect(),
            workspace: ws,
            nodes,
            listing: WorkloadListing { filter: query.filter.clone(), page, pages, matching: matching.len() as u32, total: all.len() as u32 },
            cluster_error: None,
            latency_guard_available,
        }
    }

    /// The workloads named by `keys`, each once, in the workspace; unknown ones are refused.
    fn selected_workloads(snapshot: &Snapshot, ws: &str, keys: &[WorkloadKey]) -> Result<Vec<Workload>, AppError> {
        if keys.is_empty() {
            return Err(AppError::Invalid("Select at least one workload to migrate.".into()));
        }
        if keys.len() > MAX_WORKLOADS {
            return Err(AppError::Invalid(format!("At most {MAX_WORKLOADS} workloads move in one migration.")));
        }
        let all = snapshot.workloads_where(ws, |k| keys.contains(k));
        let mut out: Vec<Workload> = Vec::new();
        for k in keys {
            let w = all.iter().find(|w| &w.key == k).ok_or_else(|| AppError::Invalid(format!("No workload {k} in {ws}.")))?;
            if !out.iter().any(|o| &o.key == k) {
                out.push(w.clone());
            }
        }
        Ok(out)
    }

    /// The plan and the selected workloads it was made for.
    pub(super) async fn plan_for(&self, ws: &WorkspaceSummary, node: &str, keys: &[WorkloadKey]) -> Result<(MigrationPlan, Vec<Workload>), AppError> {
        let snapshot = self.snapshot().await.map_err(AppError::ClusterUnavailable)?;
        Self::plan_of(&snapshot, ws, node, keys)
    }

    /// The plan from one snapshot (pure).
    pub fn plan_of(snapshot: &Snapshot, ws: &WorkspaceSummary, node: &str, keys: &[WorkloadKey]) -> Result<(MigrationPlan, Vec<Workload>), AppError> {
        let target = Self::ready_nodes(snapshot, &ws.slug)
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| AppError::Invalid(format!("\"{node}\" is not a Ready dedicated node of {}.", ws.name)))?;
        let selected = Self::selected_workloads(snapshot, &ws.slug, keys)?;
        let refs: Vec<&Workload> = selected.iter().collect();
        let need = planning::need(&refs);
        let total = Resources::new(target.allocatable_cpu, target.allocatable_memory_gib * capacity::GIB);
        let free = total.minus(Resources::new(target.used_cpu, target.used_memory_gib * capacity::GIB));
        let fits = need.fits(free);
        let phases = planning::phases(refs, free, total);
        let order: Vec<&Workload> = phases.iter().flat_map(|p| p.workloads.iter()).filter_map(|k| selected.iter().find(|w| &w.key == k)).collect();
        let hostname = snapshot.hostname_of(node);
        let steps = order.iter().enumerate().map(|(i, w)| dry_run_step(i as u32 + 1, w, &ws.slug, node, &hostname)).collect();
        let warning = (!fits).then(|| {
            format!(
                "{node} has {} vCPU and {} GiB free; these workloads need {} vCPU and {} GiB including rolling-update surge, plus {}% headroom. Pick a larger node, fewer workloads, or run the phased plan below.",
                format_amount(free.cpu),
                format_amount(free.memory_gib()),
                format_amount(need.total().cpu),
                format_amount(need.total().memory_gib()),
                capacity::headroom_percent()
            )
        });
        let plan = MigrationPlan {
            node: node.into(),
            fits,
            need_cpu: need.total().cpu,
            need_memory_gib: need.total().memory_gib(),
            free_cpu: free.cpu,
            free_memory_gib: free.memory_gib(),
            headroom_percent: capacity::headroom_percent(),
            warning,
            phases,
            steps,
        };
        Ok((plan, selected))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use serde_json::json;

    /// A workspace `ws` with `n` Deployments w-000 … in its namespace `ws-prod`.
    fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<K> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn snapshot(n: usize) -> Snapshot {
        Snapshot {
            namespaces: vec![obj(json!({ "metadata": { "name": "ws-prod", "labels": { labels::WORKSPACE: "ws" } } }))],
            deployments: (0..n)
                .map(|i| {
                    obj(json!({ "metadata": { "namespace": "ws-prod", "name": format!("w-{i:03}") },
                                "spec": { "replicas": 2, "selector": { "matchLabels": { "app": format!("w-{i:03}") } },
                                          "template": { "metadata": { "labels": { "app": format!("w-{i:03}") } }, "spec": { "containers": [{ "name": "c" }] } } } }))
                })
                .collect(),
            ..Default::default()
        }
    }

    fn screen(s: &Snapshot, filter: &str, page: u32) -> MigrationScreen {
        let ws = WorkspaceSummary { slug: "ws".into(), name: "WS".into(), plan: Plan::Team, role: Role::Owner };
        let query = WorkloadQuery::new(Some(filter.into()), Some(page)).unwrap();
        DashboardBackend::migration_screen_of(s, ws, false, &query)
    }

    fn names(screen: &MigrationScreen) -> Vec<String> {
        screen.workloads.iter().map(|w| w.key.name.clone()).collect()
    }

    #[test]
    fn the_screen_lists_a_page_of_the_workloads_at_a_time() {
        let s = snapshot(120);
        let first = screen(&s, "", 1);
        assert_eq!(first.workloads.len(), WORKLOADS_PER_PAGE as usize);
        assert_eq!(names(&first)[0], "w-000");
        assert_eq!((first.listing.page, first.listing.pages, first.listing.matching, first.listing.total), (1, 3, 120, 120));
        let last = screen(&s, "", 3);
        assert_eq!(names(&last).first().map(String::as_str), Some("w-100"));
        assert_eq!(last.workloads.len(), 20);
        assert_eq!(screen(&s, "", 9).listing.page, 3, "past the end is the last page");
        assert_eq!(screen(&s, "", 0).listing.page, 1, "pages count from 1");
    }

    #[test]
    fn a_filter_matches_names_and_namespaces_in_any_case() {
        let s = snapshot(120);
        let tens = screen(&s, " W-01 ", 1);
        assert_eq!(names(&tens), (10..20).map(|i| format!("w-{i:03}")).collect::<Vec<_>>());
        assert_eq!((tens.listing.matching, tens.listing.total, tens.listing.pages, tens.listing.filter.as_str()), (10, 120, 1, "W-01"));
        assert_eq!(screen(&s, "ws-PROD", 1).listing.matching, 120, "the namespace matches too");
        let none = screen(&s, "nothing", 1);
        assert!(none.workloads.is_empty());
        assert_eq!((none.listing.page, none.listing.pages), (1, 1));
        assert!(WorkloadQuery::new(Some("x".repeat(MAX_FILTER_CHARS + 1)), None).is_err(), "a filter has a bound");
    }
}
