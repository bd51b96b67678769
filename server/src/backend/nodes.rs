//! Node Management, the Add Dedicated Node wizard and the dedicated node lifecycle as the
//! dashboard asks for them. Membership and plan are checked by the caller (`mod.rs`).

use std::sync::Arc;

use app::error::AppError;
use app::model::*;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use super::{api_error, cluster_error, internal, views, DashboardBackend};
use crate::cache::Snapshot;
use crate::capacity::{self, Need, GIB};
use crate::catalogue::Size;
use crate::cluster::labels;
use crate::crd::{DedicatedNode, DedicatedNodeSpec};
use crate::store::AuditEntry;

fn size_option(s: &Size) -> SizeOption {
    let a = s.allocatable();
    SizeOption {
        id: s.id.clone(),
        vcpu: f64::from(s.vcpu),
        memory_gib: f64::from(s.memory_gib),
        storage_gib: f64::from(s.storage_gib),
        network_gbps: s.network_gbps,
        hourly_usd: s.hourly_usd,
        monthly_usd: s.monthly_usd(),
        description: s.description.clone(),
        allocatable_cpu: a.cpu_cores,
        allocatable_memory_gib: a.memory_bytes / GIB,
    }
}

fn workload_need(need: &Need, workloads: u32) -> WorkloadNeed {
    WorkloadNeed {
        workloads,
        pods: need.pods.max(0) as u32,
        cpu: need.requests.cpu,
        memory_gib: need.requests.memory_gib(),
        surge_cpu: need.surge.cpu,
        surge_memory_gib: need.surge.memory_gib(),
    }
}

/// What the size changes for the workspace, every sentence from its own numbers: the node's
/// guaranteed room against the shared quota and the neighbours on the shared pool, and how
/// much of the node the workloads would use.
pub fn improvements(ws: &WorkspaceSummary, size: &SizeOption, need: Option<&Need>, pool: Option<&SharedPoolUsage>) -> Vec<String> {
    let mut out = vec![format!("{} vCPU and {} GiB for {} alone.", format_amount(size.allocatable_cpu), format_amount(size.allocatable_memory_gib), ws.name)];
    if let Some(p) = pool {
        out.push(format!(
            "Today: {} of your {} vCPU shared-pool quota, on {} shared with {}.",
            format_amount(p.cpu.used),
            format_amount(p.cpu.hard),
            count(p.pool_nodes, "node", "nodes"),
            count(p.neighbour_workspaces, "other workspace", "other workspaces")
        ));
    }
    if let Some(n) = need {
        let used = if size.allocatable_cpu > 0.0 { n.requests.cpu / size.allocatable_cpu * 100.0 } else { 100.0 };
        out.push(format!(
            "Your workloads' {} vCPU of requests would use {:.0}% of the node, leaving {} vCPU to scale out.",
            format_amount(n.requests.cpu),
            used.min(100.0),
            format_amount((size.allocatable_cpu - n.requests.cpu).max(0.0))
        ));
    }
    out
}

impl DashboardBackend {
    pub(super) async fn overview(&self, ws: WorkspaceSummary) -> Result<NodeOverview, AppError> {
        let snapshot = match self.snapshot().await {
            Ok(s) => s,
            Err(msg) => {
                return Ok(NodeOverview { workspace: ws, shared_pool: None, cluster_error: Some(msg), dedicated_nodes: vec![], failed_requests: vec![] })
            }
        };
        Ok(self.overview_of(&snapshot, ws))
    }

    /// Node Management from one snapshot (pure).
    pub fn overview_of(&self, snapshot: &Snapshot, ws: WorkspaceSummary) -> NodeOverview {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (failed, nodes) = snapshot
            .dedicated_nodes(&ws.slug)
            .iter()
            .map(|dn| self.summary(snapshot, dn, now))
            .partition(|s: &DedicatedNodeSummary| s.phase == NodePhase::Failed);
        NodeOverview {
            shared_pool: Some(snapshot.shared_pool_usage(&ws.slug)),
            workspace: ws,
            cluster_error: None,
            dedicated_nodes: nodes,
            failed_requests: failed,
        }
    }

    fn summary(&self, snapshot: &Snapshot, dn: &DedicatedNode, now: i64) -> DedicatedNodeSummary {
        let p = views::node_progress(dn);
        let (requested, allocatable) = p.node_name.as_deref().map(|node| snapshot.allocation(node)).unwrap_or_default();
        // Before the Node exists, the size's allocatable stands in for the Node's.
        let planned = self.catalogue.size(&dn.spec.size).map(|s| s.allocatable().resources()).unwrap_or_default();
        let allocatable = if allocatable.cpu > 0.0 { allocatable } else { planned };
        let created = dn.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(now);
        DedicatedNodeSummary {
            name: p.name,
            size: p.size,
            region: p.region,
            phase: p.phase,
            age_seconds: now - created,
            cpu: UsageBar { label: "CPU".into(), used: requested.cpu, hard: allocatable.cpu, unit: "vCPU".into() },
            memory: UsageBar { label: "Memory".into(), used: requested.memory_gib(), hard: allocatable.memory_gib(), unit: "GiB".into() },
            error_message: p.error_message,
        }
    }

    /// A dedicated node's usage history from Prometheus, with its allocatable and requests
    /// from the cluster. Either source missing leaves its part empty and says why; the page
    /// shows what there is.
    pub(super) async fn usage_of(&self, dn: &DedicatedNode, range: UsageRange) -> Result<NodeUsage, AppError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (start, end) = crate::prometheus::node_usage::bounds(range, now);
        let node = views::node_progress(dn).node_name;
        let (requested, allocatable) = match (&node, self.snapshot().await) {
            (Some(node), Ok(snapshot)) => snapshot.allocation(node),
            _ => Default::default(),
        };
        let (history, unavailable) = match (&node, &self.prometheus) {
            (None, _) => (None, Some("The node is not running yet: its usage appears once it is Ready.".to_string())),
            (Some(_), None) => (None, Some("No metrics source is configured (set PROMETHEUS_URL to your Prometheus).".to_string())),
            (Some(node), Some(prometheus)) => match crate::prometheus::node_usage::read(prometheus, node, range, (start, end)).await {
                Ok(points) => (Some(points), None),
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "usage history");
                    (None, Some(format!("Prometheus did not answer ({e}); showing requests only.")))
                }
            },
        };
        let (cpu, memory) = history.unwrap_or_default();
        Ok(NodeUsage {
            range,
            start,
            end,
            cpu: UsageSeries { label: "CPU".into(), unit: "vCPU".into(), points: cpu, allocatable: allocatable.cpu, requested: requested.cpu },
            memory: UsageSeries {
                label: "Memory".into(),
                unit: "GiB".into(),
                points: memory.into_iter().map(|(t, bytes)| (t, bytes / GIB)).collect(),
                allocatable: allocatable.memory_gib(),
                requested: requested.memory_gib(),
            },
            unavailable,
        })
    }

    /// What the workspace's workloads still on the shared pool need on a new node, and how
    /// many they are. Only those need room: what already moved has its node.
    fn need(snapshot: &Snapshot, ws: &str) -> (Need, u32) {
        let list = snapshot.workloads(ws);
        let shared: Vec<_> = list.iter().filter(|w| w.on_shared_pool()).collect();
        (Need::of(shared.iter().map(|w| &w.demand)), shared.len() as u32)
    }

    /// [`Self::need`] when the cluster answers; the wizard works without it (no fit check).
    async fn read_need(&self, ws: &str) -> (Option<(Need, u32)>, Option<Snapshot>) {
        match self.snapshot().await {
            Ok(snapshot) => (Some(Self::need(&snapshot, ws)), Some(snapshot)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read workloads for the fit check");
                (None, None)
            }
        }
    }

    pub(super) async fn wizard(&self, ws: WorkspaceSummary) -> Result<WizardData, AppError> {
        let (need, _) = self.read_need(&ws.slug).await;
        Ok(WizardData {
            recommended_size: need.as_ref().and_then(|(n, _)| self.catalogue.smallest_fit(n)).map(|s| s.id.clone()),
            sizes: self.catalogue.sizes().iter().map(size_option).collect(),
            regions: self.catalogue.regions().iter().map(|r| RegionOption { id: r.id.clone(), name: r.name.clone() }).collect(),
            need: need.as_ref().map(|(n, count)| workload_need(n, *count)),
            headroom_percent: capacity::headroom_percent(),
            workspace: ws,
        })
    }

    fn known_size(&self, id: &str) -> Result<&Size, AppError> {
        self.catalogue.size(id).ok_or_else(|| {
            let ids: Vec<&str> = self.catalogue.sizes().iter().map(|s| s.id.as_str()).collect();
            AppError::Invalid(format!("Unknown node size \"{id}\". Choose one of: {}.", ids.join(", ")))
        })
    }

    pub(super) async fn estimate_for(&self, ws: &WorkspaceSummary, size: &str) -> Result<Estimate, AppError> {
        let size = self.known_size(size)?;
        let option = size_option(size);
        let (need, snapshot) = self.read_need(&ws.slug).await;
        let need = need.map(|(n, _)| n);
        let pool = snapshot.map(|s| s.shared_pool_usage(&ws.slug));
        let fits_now = need.as_ref().is_none_or(|n| n.fits(size.allocatable().resources()));
        let recommended = need.as_ref().and_then(|n| self.catalogue.smallest_fit(n)).map(|s| s.id.clone());
        let warning = need.as_ref().filter(|_| !fits_now).map(|n| {
            format!(
                "{} gives {} vCPU and {} GiB to workloads; yours need {} vCPU and {} GiB including rolling-update surge, plus {}% headroom.{}",
                option.id,
                format_amount(option.allocatable_cpu),
                format_amount(option.allocatable_memory_gib),
                format_amount(n.total().cpu),
                format_amount(n.total().memory_gib()),
                capacity::headroom_percent(),
                match &recommended {
                    Some(r) => format!(" The smallest size that fits is {r}. Or keep this size and migrate in phases."),
                    None => " No single size fits: migrate in phases.".into(),
                }
            )
        });
        Ok(Estimate {
            improvements: improvements(ws, &option, need.as_ref(), pool.as_ref()),
            size: option.id.clone(),
            monthly_usd: option.monthly_usd,
            hourly_usd: option.hourly_usd,
            fits: fits_now,
            warning,
            recommended_size: if fits_now { None } else { recommended },
        })
    }

    /// The dedicated node `name` if it belongs to workspace `ws`; `NotFound` otherwise.
    pub(super) async fn workspace_node(&self, ws: &str, name: &str) -> Result<Arc<DedicatedNode>, AppError> {
        match self.reads()?.dedicated_node(name).await.map_err(AppError::ClusterUnavailable)? {
            Some(dn) if dn.spec.workspace == ws => Ok(dn),
            _ => Err(AppError::NotFound(format!("No dedicated node \"{name}\" in {ws}."))),
        }
    }

    async fn audit_node(&self, user: &SessionUser, ws: &str, action: &str, target: &str, outcome: &str, detail: Option<String>) -> Result<(), AppError> {
        let workspace_id = self.store.workspace_id(ws).await.map_err(internal)?;
        self.store
            .audit(&AuditEntry { actor: user.email.clone(), workspace_id, action: action.into(), target: Some(target.into()), outcome: outcome.into(), detail })
            .await
            .map_err(internal)
    }

    pub(super) async fn provision(
        &self,
        user: &SessionUser,
        ws: &WorkspaceSummary,
        size: &str,
        region: &str,
        replaces: Option<&str>,
    ) -> Result<String, AppError> {
        self.known_size(size)?;
        if self.catalogue.region(region).is_none() {
            let ids: Vec<&str> = self.catalogue.regions().iter().map(|r| r.id.as_str()).collect();
            return Err(AppError::Invalid(format!("Unknown region \"{region}\". Choose one of: {}.", ids.join(", "))));
        }
        let api: Api<DedicatedNode> = Api::all(self.require_kube()?.clone());
        // A retry replaces a failed order; check it before anything is created.
        if let Some(old) = replaces {
            let failed = self.workspace_node(&ws.slug, old).await?;
            if views::effective_phase(&failed) != NodePhase::Failed {
                return Err(AppError::Conflict(format!("{old} has not failed; only a failed node is replaced by a retry.")));
            }
        }
        let _ordering = self.ordering.lock().await;
        self.within_plan(&api, ws).await?;
        let name = format!("{}-{}", ws.slug, &crate::db::new_id()[..6]);
        let dn = DedicatedNode {
            metadata: ObjectMeta { name: Some(name.clone()), labels: Some([(labels::WORKSPACE.to_string(), ws.slug.clone())].into()), ..Default::default() },
            spec: DedicatedNodeSpec { workspace: ws.slug.clone(), size: size.into(), region: region.into(), requested_by: user.email.clone() },
            status: None,
        };
        let created = api.create(&PostParams::default(), &dn).await;
        if let Ok(written) = &created {
            self.reads()?.wrote_dedicated_node(written).await;
        }
        let detail = Some(format!("size {size}, region {region}{}", replaces.map(|r| format!(", replaces {r}")).unwrap_or_default()));
        self.audit_node(user, &ws.slug, "provision-dedicated-node", &name, if created.is_ok() { "requested" } else { "failed" }, detail).await?;
        created.map_err(api_error)?;
        // The new order exists: only now does the failed one go, so a refused create leaves
        // the user with the failed order and its alternatives, never with nothing.
        if let Some(old) = replaces {
            if let Err(e) = api.delete(old, &DeleteParams::default()).await {
                tracing::warn!(order = %old, error = %cluster_error(e), "the replaced order could not be removed; it stays listed as failed");
            }
        }
        Ok(name)
    }

    /// The plan's bound on dedicated nodes (the catalogue's `plans`): orders that have not
    /// failed hold a machine, or are about to, and count.
    async fn within_plan(&self, api: &Api<DedicatedNode>, ws: &WorkspaceSummary) -> Result<(), AppError> {
        let Some(limit) = self.catalogue.dedicated_node_limit(ws.plan) else {
            return Ok(());
        };
        let orders = api
            .list(&ListParams::default().labels(&format!("{}={}", labels::WORKSPACE, ws.slug)))
            .await
            .map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        let held = orders.items.iter().filter(|dn| dn.spec.workspace == ws.slug && views::effective_phase(dn) != NodePhase::Failed).count();
        if held >= limit as usize {
            return Err(AppError::Forbidden(format!(
                "The {} plan allows {} per workspace and {} has {held}. Delete one, or move to a larger plan, to add another.",
                ws.plan.label(),
                count(limit, "dedicated node", "dedicated nodes"),
                ws.name
            )));
        }
        Ok(())
    }

    pub(super) async fn delete_node(&self, user: &SessionUser, ws: &WorkspaceSummary, name: &str) -> Result<(), AppError> {
        let dn = self.workspace_node(&ws.slug, name).await?;
        let client = self.require_kube()?.clone();
        if let Some(node) = dn.status.as_ref().and_then(|s| s.node_name.clone()) {
            let pods = Api::<k8s_openapi::api::core::v1::Pod>::all(client.clone())
                .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
                .await
                .map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
            let workloads: Vec<String> = pods
                .items
                .iter()
                .filter(|p| !p.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|o| o.kind == "DaemonSet")))
                .filter_map(|p| Some(format!("{}/{}", p.metadata.namespace.as_ref()?, p.metadata.name.as_ref()?)))
                .collect();
            if !workloads.is_empty() {
                return Err(AppError::Conflict(format!(
                    "{name} still runs {} ({}). Move the workloads off it before deleting it.",
                    count(workloads.len() as i64, "pod", "pods"),
                    workloads.join(", ")
                )));
            }
        }
        let answer = Api::<DedicatedNode>::all(client).delete(name, &DeleteParams::default()).await.map_err(api_error)?;
        self.reads()?.deleted_dedicated_node(name, &answer).await;
        let action = if views::effective_phase(&dn) == NodePhase::Failed { "dismiss-failed-node" } else { "delete-dedicated-node" };
        self.audit_node(user, &ws.slug, action, name, "requested", None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Resources;

    fn size(cpu: f64, mem: f64) -> SizeOption {
        SizeOption {
            id: "s".into(),
            vcpu: cpu,
            memory_gib: mem,
            storage_gib: 0.0,
            network_gbps: 0.0,
            hourly_usd: 0.1,
            monthly_usd: 73.0,
            description: String::new(),
            allocatable_cpu: cpu,
            allocatable_memory_gib: mem,
        }
    }

    #[test]
    fn every_improvement_comes_from_the_workspaces_numbers() {
        let ws = WorkspaceSummary { slug: "acme".into(), name: "acme".into(), plan: Plan::Pro, role: Role::Owner };
        let bar = |used, hard| UsageBar { label: String::new(), used, hard, unit: String::new() };
        let pool = SharedPoolUsage { cpu: bar(2.7, 8.0), memory: bar(1.0, 16.0), pods: bar(9.0, 40.0), pool_nodes: 3, neighbour_workspaces: 1 };
        let need = Need { requests: Resources::new(1.5, GIB), surge: Resources::new(0.5, 0.0), pods: 3 };
        let lines = improvements(&ws, &size(3.9, 15.0), Some(&need), Some(&pool));
        assert_eq!(
            lines,
            vec![
                "3.9 vCPU and 15 GiB for acme alone.".to_string(),
                "Today: 2.7 of your 8 vCPU shared-pool quota, on 3 nodes shared with 1 other workspace.".to_string(),
                "Your workloads' 1.5 vCPU of requests would use 38% of the node, leaving 2.4 vCPU to scale out.".to_string(),
            ]
        );
        assert_eq!(improvements(&ws, &size(3.9, 15.0), None, None).len(), 1, "without numbers, only what the size itself says");
    }
}
