//! Node Management, the Add Dedicated Node wizard and the dedicated node lifecycle as the
//! dashboard asks for them. Membership and plan are checked by the caller (`mod.rs`).

use app::error::AppError;
use app::model::*;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use super::{cluster_error, internal, views, DashboardBackend};
use crate::catalogue::Size;
use crate::cluster::quantity::GIB;
use crate::cluster::{labels, usage, workloads};
use crate::crd::{DedicatedNode, DedicatedNodeSpec, Phase};
use crate::store::AuditEntry;

/// Headroom the recommendation keeps above the current need (use case 5c).
pub const FIT_HEADROOM: f64 = 0.2;

fn size_option(s: &Size) -> SizeOption {
    let a = s.allocatable();
    SizeOption {
        id: s.id.clone(),
        vcpu: s.vcpu as f64,
        memory_gib: s.memory_gib as f64,
        storage_gib: s.storage_gib as f64,
        network_gbps: s.network_gbps,
        hourly_usd: s.hourly_usd,
        monthly_usd: s.monthly_usd(),
        description: s.description.clone(),
        allocatable_cpu: a.cpu_cores,
        allocatable_memory_gib: a.memory_bytes / GIB,
    }
}

/// Whether `size` holds `need` (requests plus surge) with the headroom to spare.
pub fn fits(size: &SizeOption, need: &WorkloadNeed) -> bool {
    let factor = 1.0 + FIT_HEADROOM;
    size.allocatable_cpu >= (need.cpu + need.surge_cpu) * factor && size.allocatable_memory_gib >= (need.memory_gib + need.surge_memory_gib) * factor
}

/// What the move brings, in the workspace's own numbers.
pub fn improvements(ws: &WorkspaceSummary, size: &SizeOption, need: Option<&WorkloadNeed>, pool: Option<&SharedPoolUsage>) -> Vec<String> {
    let mut out = vec![format!(
        "Guaranteed {} vCPU and {} GiB for {} alone{}.",
        format_amount(size.allocatable_cpu),
        format_amount(size.allocatable_memory_gib),
        ws.name,
        pool.map(|p| format!(", instead of a share of a {} vCPU quota on nodes used by {} other workspace(s)", format_amount(p.cpu.hard), p.neighbour_workspaces))
            .unwrap_or_default()
    )];
    if let Some(n) = need {
        let used = if size.allocatable_cpu > 0.0 { n.cpu / size.allocatable_cpu * 100.0 } else { 100.0 };
        out.push(format!(
            "Your workloads' {} vCPU of requests would use {:.0}% of the node, leaving {} vCPU to scale out.",
            format_amount(n.cpu),
            used.min(100.0),
            format_amount((size.allocatable_cpu - n.cpu).max(0.0))
        ));
    }
    out.push(format!("No noisy neighbours: the node is tainted for {}, so no other tenant's pod can land on it.", ws.name));
    out.push("Steadier latency: CPU bursts no longer compete with other tenants for the same cores.".into());
    out
}

impl DashboardBackend {
    pub(super) async fn overview(&self, ws: WorkspaceSummary) -> Result<NodeOverview, AppError> {
        let read = async {
            let client = self.kube()?;
            let pool = usage::shared_pool_usage(client, &ws.slug).await.map_err(cluster_error)?;
            let mut nodes = Vec::new();
            for dn in self.workspace_nodes(&ws.slug).await.map_err(|e| e.to_string())? {
                nodes.push(self.summary(&dn).await.map_err(cluster_error)?);
            }
            Ok::<_, String>((pool, nodes))
        };
        Ok(match read.await {
            Ok((pool, nodes)) => NodeOverview { workspace: ws, shared_pool: Some(pool), cluster_error: None, dedicated_nodes: nodes },
            Err(msg) => NodeOverview { workspace: ws, shared_pool: None, cluster_error: Some(msg), dedicated_nodes: vec![] },
        })
    }

    pub(super) async fn workspace_nodes(&self, ws: &str) -> Result<Vec<DedicatedNode>, AppError> {
        let api: Api<DedicatedNode> = Api::all(self.require_kube()?.clone());
        let mut list = api.list(&ListParams::default().labels(&labels::workspace_selector(ws))).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?.items;
        // The label is ours to set, the spec is the truth: never show another workspace's node.
        list.retain(|dn| dn.spec.workspace == ws);
        list.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
        Ok(list)
    }

    async fn summary(&self, dn: &DedicatedNode) -> Result<DedicatedNodeSummary, kube::Error> {
        let p = views::progress(dn);
        let (cpu, mem) = match &p.node_name {
            Some(node) => usage::node_allocation(self.kube.as_ref().expect("checked by caller"), node).await?,
            None => Default::default(),
        };
        let size = self.catalogue.size(&dn.spec.size).map(size_option);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let created = dn.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(now);
        Ok(DedicatedNodeSummary {
            name: p.name,
            size: p.size,
            region: p.region,
            phase: p.phase,
            age_seconds: now - created,
            cpu: UsageBar {
                label: "CPU".into(),
                used: cpu.used,
                hard: if cpu.hard > 0.0 { cpu.hard } else { size.as_ref().map_or(0.0, |s| s.allocatable_cpu) },
                unit: "vCPU".into(),
            },
            memory: UsageBar {
                label: "Memory".into(),
                used: mem.used / GIB,
                hard: if mem.hard > 0.0 { mem.hard / GIB } else { size.as_ref().map_or(0.0, |s| s.allocatable_memory_gib) },
                unit: "GiB".into(),
            },
        })
    }

    async fn need(&self, ws: &str) -> Option<WorkloadNeed> {
        let client = self.kube.as_ref()?;
        match workloads::list_workloads(client, ws).await {
            // Only what still runs on the shared pool needs room on a new node.
            Ok(mut list) => {
                list.retain(|w| !w.on_dedicated_node());
                Some(workloads::need_of(&list))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read workloads for the fit check");
                None
            }
        }
    }

    fn recommended(&self, need: &WorkloadNeed) -> Option<String> {
        self.catalogue
            .smallest_fit(need.cpu + need.surge_cpu, (need.memory_gib + need.surge_memory_gib) * GIB, FIT_HEADROOM)
            .map(|s| s.id.clone())
    }

    pub(super) async fn wizard(&self, ws: WorkspaceSummary) -> Result<WizardData, AppError> {
        let need = self.need(&ws.slug).await;
        let pool = match self.kube.as_ref() {
            Some(c) => usage::shared_pool_usage(c, &ws.slug).await.ok(),
            None => None,
        };
        Ok(WizardData {
            recommended_size: need.as_ref().and_then(|n| self.recommended(n)),
            sizes: self.catalogue.sizes().iter().map(size_option).collect(),
            regions: self.catalogue.regions().iter().map(|r| RegionOption { id: r.id.clone(), name: r.name.clone() }).collect(),
            quota_cpu: pool.as_ref().map_or(0.0, |p| p.cpu.hard),
            quota_memory_gib: pool.as_ref().map_or(0.0, |p| p.memory.hard),
            need,
            workspace: ws,
        })
    }

    fn known_size(&self, id: &str) -> Result<SizeOption, AppError> {
        self.catalogue.size(id).map(size_option).ok_or_else(|| {
            let ids: Vec<&str> = self.catalogue.sizes().iter().map(|s| s.id.as_str()).collect();
            AppError::Invalid(format!("Unknown node size \"{id}\". Choose one of: {}.", ids.join(", ")))
        })
    }

    pub(super) async fn estimate_for(&self, ws: &WorkspaceSummary, size: &str) -> Result<Estimate, AppError> {
        let option = self.known_size(size)?;
        let need = self.need(&ws.slug).await;
        let pool = match self.kube.as_ref() {
            Some(c) => usage::shared_pool_usage(c, &ws.slug).await.ok(),
            None => None,
        };
        let fits_now = need.as_ref().is_none_or(|n| fits(&option, n));
        let recommended = need.as_ref().and_then(|n| self.recommended(n));
        let warning = need.as_ref().filter(|_| !fits_now).map(|n| {
            format!(
                "{} gives {} vCPU and {} GiB to workloads; yours need {} vCPU and {} GiB including rolling-update surge, plus 20% headroom.{}",
                option.id,
                format_amount(option.allocatable_cpu),
                format_amount(option.allocatable_memory_gib),
                format_amount(n.cpu + n.surge_cpu),
                format_amount(n.memory_gib + n.surge_memory_gib),
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
    pub(super) async fn workspace_node(&self, ws: &str, name: &str) -> Result<DedicatedNode, AppError> {
        let api: Api<DedicatedNode> = Api::all(self.require_kube()?.clone());
        match api.get_opt(name).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))? {
            Some(dn) if dn.spec.workspace == ws => Ok(dn),
            _ => Err(AppError::NotFound(format!("No dedicated node \"{name}\" in {ws}."))),
        }
    }

    pub(super) async fn provision(&self, user: &SessionUser, ws: &WorkspaceSummary, size: &str, region: &str, replaces: Option<&str>) -> Result<String, AppError> {
        self.known_size(size)?;
        if self.catalogue.region(region).is_none() {
            let ids: Vec<&str> = self.catalogue.regions().iter().map(|r| r.id.as_str()).collect();
            return Err(AppError::Invalid(format!("Unknown region \"{region}\". Choose one of: {}.", ids.join(", "))));
        }
        let client = self.require_kube()?.clone();
        let api: Api<DedicatedNode> = Api::all(client);
        if let Some(old) = replaces {
            let failed = self.workspace_node(&ws.slug, old).await?;
            if views::effective_phase(&failed) != Phase::Failed {
                return Err(AppError::Conflict(format!("{old} has not failed; only a failed node is replaced by a retry.")));
            }
            // Nothing is left behind from the failed try: its record goes with the retry.
            api.delete(old, &DeleteParams::default()).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        }
        let name = format!("{}-{}", ws.slug, &crate::db::new_id()[..6]);
        let dn = DedicatedNode {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(labels::WORKSPACE.to_string(), ws.slug.clone())].into()),
                ..Default::default()
            },
            spec: DedicatedNodeSpec { workspace: ws.slug.clone(), size: size.into(), region: region.into(), requested_by: user.email.clone() },
            status: None,
        };
        let created = api.create(&PostParams::default(), &dn).await;
        let workspace_id = self.store.workspace_id(&ws.slug).await.map_err(internal)?;
        let outcome = if created.is_ok() { "requested" } else { "failed" };
        self.store
            .audit(&AuditEntry {
                actor: user.email.clone(),
                workspace_id,
                action: "provision-dedicated-node".into(),
                target: Some(name.clone()),
                outcome: outcome.into(),
                detail: Some(format!("size {size}, region {region}{}", replaces.map(|r| format!(", replaces {r}")).unwrap_or_default())),
            })
            .await
            .map_err(internal)?;
        created.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        Ok(name)
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
                    "{name} still runs {} pod(s) ({}). Move the workloads off it before deleting it.",
                    workloads.len(),
                    workloads.join(", ")
                )));
            }
        }
        Api::<DedicatedNode>::all(client).delete(name, &DeleteParams::default()).await.map_err(|e| AppError::ClusterUnavailable(cluster_error(e)))?;
        let workspace_id = self.store.workspace_id(&ws.slug).await.map_err(internal)?;
        self.store
            .audit(&AuditEntry {
                actor: user.email.clone(),
                workspace_id,
                action: "delete-dedicated-node".into(),
                target: Some(name.into()),
                outcome: "requested".into(),
                detail: None,
            })
            .await
            .map_err(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn fit_needs_twenty_percent_headroom_over_requests_and_surge() {
        let need = WorkloadNeed { cpu: 2.5, surge_cpu: 0.5, memory_gib: 2.0, surge_memory_gib: 0.5, ..Default::default() };
        assert!(fits(&size(3.6, 3.0), &need));
        assert!(!fits(&size(3.5, 3.0), &need), "3.0 vCPU × 1.2 = 3.6 needed");
        assert!(!fits(&size(8.0, 2.9), &need), "memory counts too");
    }
}
