//! The size and region catalogue (owned by the provisioning work; see ARCHITECTURE.md).
//!
//! A versioned YAML file (`deploy/catalogue.yaml`) lists the dedicated node sizes with their
//! prices and the regions with how many nodes of each size the platform runs there. It also
//! maps both onto a provider's words: a size to the instance types a provider may launch for
//! it (per provider), a region to its zones and, per provider, to a node class. It is
//! validated once when loaded, so the rest of the server can trust every id and number in it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use app::model::Plan;
use serde::{Deserialize, Serialize};

use crate::capacity::{Need, Resources};

/// The catalogue format this server writes about; it reads this one and every older one.
/// Version 2 added `instance_types` (sizes), `zones` and `node_classes` (regions) and `plans`; a version 1
/// file has none of them and still loads.
pub const CATALOGUE_VERSION: u32 = 2;
const OLDEST_VERSION: u32 = 1;
/// Cloud providers bill a month as 730 hours (365 × 24 / 12); so do we, so our estimate
/// matches the bill the user would get elsewhere.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// What the kubelet, the container runtime and the OS keep for themselves on every node
/// (the node's `kube-reserved` + `system-reserved` + eviction threshold). Workloads can only
/// use what is left, so sizing advice must compare needs against allocatable, not capacity.
/// The numbers follow what managed Kubernetes services reserve on small nodes.
const RESERVED_CPU_CORES: f64 = 0.1;
const RESERVED_MEMORY_FRACTION: f64 = 0.06;
/// Image layers and logs live on the node's disk too.
const RESERVED_STORAGE_FRACTION: f64 = 0.10;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read the catalogue {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the catalogue {path} is not valid YAML for this format: {source}")]
    Parse { path: PathBuf, source: serde_yaml::Error },
    #[error("catalogue version {found} is not supported (this server reads versions {OLDEST_VERSION} to {CATALOGUE_VERSION})")]
    UnsupportedVersion { found: u32 },
    #[error("the catalogue lists no sizes")]
    NoSizes,
    #[error("the catalogue lists no regions")]
    NoRegions,
    #[error("size id {0:?} appears more than once")]
    DuplicateSize(String),
    #[error("region id {0:?} appears more than once")]
    DuplicateRegion(String),
    #[error("size {size:?}: {field} must be a positive number")]
    NotPositive { size: String, field: &'static str },
    #[error("region {region:?} gives capacity for {size:?}, which is not a size in the catalogue")]
    UnknownSize { region: String, size: String },
    #[error("an id must be non-empty, lower case letters, digits, '.' or '-': {0:?}")]
    BadId(String),
    #[error("{owner:?}: {field} {value:?} is not a valid Kubernetes label value")]
    BadLabelValue { owner: String, field: &'static str, value: String },
    #[error("{owner:?}: {field} lists {value:?} twice")]
    Repeated { owner: String, field: &'static str, value: String },
    #[error("{owner:?}: {field} for provider {provider:?} is empty")]
    EmptyMapping { owner: String, field: &'static str, provider: String },
    #[error("size {size:?} maps to no instance type for the {provider} provider (add `instance_types: {{ {provider}: [...] }}`)")]
    NoInstanceTypes { size: String, provider: String },
    #[error("plans lists {0:?}, which is not a plan with dedicated nodes (pro, team)")]
    UnknownPlan(String),
}

/// What a plan may hold (the catalogue's `plans`): a bound per workspace, so that one tenant
/// cannot take a region's whole capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    /// Dedicated nodes a workspace of the plan may have at once (failed orders hold no machine
    /// and do not count).
    pub dedicated_nodes: u32,
}

/// A node size the user can order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub id: String,
    pub vcpu: u32,
    pub memory_gib: u32,
    pub storage_gib: u32,
    pub network_gbps: f64,
    pub hourly_usd: f64,
    pub description: String,
    /// Per provider, the instance types it may launch for this size (Karpenter: values of
    /// `node.kubernetes.io/instance-type`, cheapest available first is Karpenter's choice).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_types: BTreeMap<String, Vec<String>>,
}

/// What workloads can actually use on a node of a size (capacity minus the system reserve).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allocatable {
    pub cpu_cores: f64,
    pub memory_bytes: f64,
    pub storage_bytes: f64,
}

impl Allocatable {
    /// CPU and memory, as the capacity model counts them.
    pub fn resources(&self) -> Resources {
        Resources::new(self.cpu_cores, self.memory_bytes)
    }
}

impl Size {
    pub fn memory_bytes(&self) -> f64 {
        f64::from(self.memory_gib) * GIB
    }

    pub fn storage_bytes(&self) -> f64 {
        f64::from(self.storage_gib) * GIB
    }

    pub fn allocatable(&self) -> Allocatable {
        Allocatable {
            cpu_cores: f64::from(self.vcpu) - RESERVED_CPU_CORES,
            memory_bytes: self.memory_bytes() * (1.0 - RESERVED_MEMORY_FRACTION),
            storage_bytes: self.storage_bytes() * (1.0 - RESERVED_STORAGE_FRACTION),
        }
    }

    pub fn monthly_usd(&self) -> f64 {
        self.hourly_usd * HOURS_PER_MONTH
    }

    /// The instance types `provider` may launch for this size (empty: none mapped).
    pub fn instance_types(&self, provider: &str) -> &[String] {
        self.instance_types.get(provider).map_or(&[], Vec::as_slice)
    }
}

/// A region, its zones, and how many nodes of each size the platform runs there (a size not
/// listed: none). Every provider checks this count before it creates anything; a cloud may
/// still refuse a launch (Karpenter's insufficient capacity), which the user meets the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub id: String,
    pub name: String,
    /// The zones a node of this region may be placed in (`topology.kubernetes.io/zone`);
    /// empty: any zone of the region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Per provider, the node class that launches nodes in this region (Karpenter: the name of
    /// the `EC2NodeClass`/`AKSNodeClass`/`KWOKNodeClass`); without one, the provider's default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_classes: BTreeMap<String, String>,
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
}

impl Region {
    pub fn capacity_of(&self, size: &str) -> u32 {
        self.capacity.get(size).copied().unwrap_or(0)
    }

    /// The node class `provider` uses in this region, if the catalogue names one.
    pub fn node_class(&self, provider: &str) -> Option<&str> {
        self.node_classes.get(provider).map(String::as_str)
    }
}

/// The file as written; `Catalogue` is the validated form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    /// Checked before this struct is parsed (see `Catalogue::parse`).
    #[serde(rename = "version")]
    _version: u32,
    sizes: Vec<Size>,
    regions: Vec<Region>,
    /// By plan id as the database stores it (`pro`, `team`). A file without it (version 1)
    /// sets no limit; the shipped catalogue sets one for every plan that has dedicated nodes.
    #[serde(default)]
    plans: BTreeMap<String, PlanLimits>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    sizes: Vec<Size>,
    regions: Vec<Region>,
    plans: BTreeMap<String, PlanLimits>,
}

impl Catalogue {
    /// The catalogue the server reads without `--catalogue`: `deploy/catalogue.yaml` in the
    /// working directory (the workspace root under `make run`), else the one in the source tree
    /// this binary was built from (tests, `cargo run` from another directory).
    pub fn default_path() -> PathBuf {
        const RELATIVE: &str = "deploy/catalogue.yaml";
        if Path::new(RELATIVE).is_file() {
            PathBuf::from(RELATIVE)
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(RELATIVE)
        }
    }

    pub fn load_default() -> Result<Catalogue, CatalogueError> {
        Self::load(&Self::default_path())
    }

    pub fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| match e {
            CatalogueError::Parse { source, .. } => CatalogueError::Parse { path: path.to_owned(), source },
            other => other,
        })
    }

    /// Parses and validates catalogue YAML (tests and `load`).
    pub fn parse(yaml: &str) -> Result<Catalogue, CatalogueError> {
        // Read the version alone first: a future format must be refused for its version,
        // not for whatever field it renamed.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let parse_err = |source| CatalogueError::Parse { path: PathBuf::from("<text>"), source };
        let v: VersionOnly = serde_yaml::from_str(yaml).map_err(parse_err)?;
        if !(OLDEST_VERSION..=CATALOGUE_VERSION).contains(&v.version) {
            return Err(CatalogueError::UnsupportedVersion { found: v.version });
        }
        let file: CatalogueFile = serde_yaml::from_str(yaml).map_err(parse_err)?;
        validate(&file)?;
        Ok(Catalogue { sizes: file.sizes, regions: file.regions, plans: file.plans })
    }

    /// Sizes in file order (smallest first in ours).
    pub fn sizes(&self) -> &[Size] {
        &self.sizes
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    pub fn size(&self, id: &str) -> Option<&Size> {
        self.sizes.iter().find(|s| s.id == id)
    }

    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// How many dedicated nodes a workspace on `plan` may have at once; `None` when the
    /// catalogue sets no limit for it. A plan without dedicated nodes may have none.
    pub fn dedicated_node_limit(&self, plan: Plan) -> Option<u32> {
        if !plan.allows_dedicated_nodes() {
            return Some(0);
        }
        self.plans.get(plan.as_db()).map(|p| p.dedicated_nodes)
    }

    /// How many nodes of `size` can exist in `region` (0 for unknown ids).
    pub fn capacity(&self, region: &str, size: &str) -> u32 {
        self.region(region).map_or(0, |r| r.capacity_of(size))
    }

    /// Checked at start-up for the provider in use: every size maps to at least one of its
    /// instance types, so no order can reach the provider without one.
    pub fn require_instance_types(&self, provider: &str) -> Result<(), CatalogueError> {
        match self.sizes.iter().find(|s| s.instance_types(provider).is_empty()) {
            Some(s) => Err(CatalogueError::NoInstanceTypes { size: s.id.clone(), provider: provider.to_string() }),
            None => Ok(()),
        }
    }

    /// The cheapest size whose allocatable holds the need (with the fit check's headroom),
    /// for the wizard's recommendation (use case 5c). `None` when even the largest is too small.
    pub fn smallest_fit(&self, need: &Need) -> Option<&Size> {
        self.sizes.iter().filter(|s| need.fits(s.allocatable().resources())).min_by(|a, b| a.hourly_usd.total_cmp(&b.hourly_usd))
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// A Kubernetes label value: at most 63 characters, alphanumerics and `-_.`, starting and
/// ending with an alphanumeric (instance types and zones are label values on the Node).
fn valid_label_value(v: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !v.is_empty()
        && v.len() <= 63
        && alnum(v.chars().next())
        && alnum(v.chars().last())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A list of label values: each valid, none twice.
fn validate_values<'a>(owner: &str, field: &'static str, values: impl IntoIterator<Item = &'a String>) -> Result<(), CatalogueError> {
    let mut seen = HashSet::new();
    for v in values {
        if !valid_label_value(v) {
            return Err(CatalogueError::BadLabelValue { owner: owner.to_string(), field, value: v.clone() });
        }
        if !seen.insert(v.as_str()) {
            return Err(CatalogueError::Repeated { owner: owner.to_string(), field, value: v.clone() });
        }
    }
    Ok(())
}

/// A per-provider mapping: provider names are ids, and no provider maps to nothing.
fn validate_mapping<V>(owner: &str, field: &'static str, map: &BTreeMap<String, V>, is_empty: impl Fn(&V) -> bool) -> Result<(), CatalogueError> {
    for (provider, value) in map {
        if !valid_id(provider) {
            return Err(CatalogueError::BadId(provider.clone()));
        }
        if is_empty(value) {
            return Err(CatalogueError::EmptyMapping { owner: owner.to_string(), field, provider: provider.clone() });
        }
    }
    Ok(())
}

fn validate(file: &CatalogueFile) -> Result<(), CatalogueError> {
    if file.sizes.is_empty() {
        return Err(CatalogueError::NoSizes);
    }
    if file.regions.is_empty() {
        return Err(CatalogueError::NoRegions);
    }
    let mut size_ids = HashSet::new();
    for s in &file.sizes {
        if !valid_id(&s.id) {
            return Err(CatalogueError::BadId(s.id.clone()));
        }
        if !size_ids.insert(s.id.as_str()) {
            return Err(CatalogueError::DuplicateSize(s.id.clone()));
        }
        let numbers = [
            ("vcpu", f64::from(s.vcpu)),
            ("memory_gib", f64::from(s.memory_gib)),
            ("storage_gib", f64::from(s.storage_gib)),
            ("network_gbps", s.network_gbps),
            ("hourly_usd", s.hourly_usd),
        ];
        if let Some((field, _)) = numbers.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(CatalogueError::NotPositive { size: s.id.clone(), field });
        }
        validate_mapping(&s.id, "instance_types", &s.instance_types, Vec::is_empty)?;
        for types in s.instance_types.values() {
            validate_values(&s.id, "instance_types", types)?;
        }
    }
    if let Some(unknown) = file.plans.keys().find(|id| !Plan::from_db(id).is_some_and(Plan::allows_dedicated_nodes)) {
        return Err(CatalogueError::UnknownPlan(unknown.clone()));
    }
    let mut region_ids = HashSet::new();
    for r in &file.regions {
        if !valid_id(&r.id) {
            return Err(CatalogueError::BadId(r.id.clone()));
        }
        if !region_ids.insert(r.id.as_str()) {
            return Err(CatalogueError::DuplicateRegion(r.id.clone()));
        }
        if let Some(unknown) = r.capacity.keys().find(|k| !size_ids.contains(k.as_str())) {
            return Err(CatalogueError::UnknownSize { region: r.id.clone(), size: unknown.clone() });
        }
        validate_values(&r.id, "zones", &r.zones)?;
        validate_mapping(&r.id, "node_classes", &r.node_classes, String::is_empty)?;
        if let Some(class) = r.node_classes.values().find(|c| !valid_id(c) || c.len() > 253) {
            return Err(CatalogueError::BadId(class.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
version: 1
sizes:
  - { id: s.small, vcpu: 2, memory_gib: 8, storage_gib: 50, network_gbps: 5, hourly_usd: 0.1, description: small }
  - { id: s.big, vcpu: 8, memory_gib: 32, storage_gib: 200, network_gbps: 10, hourly_usd: 0.4, description: big }
regions:
  - { id: r-1, name: One, capacity: { s.small: 2, s.big: 1 } }
  - { id: r-2, name: Two, capacity: { s.small: 0 } }
"#;

    #[test]
    fn the_shipped_catalogue_loads_and_has_a_sold_out_region() {
        let c = Catalogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/catalogue.yaml")).expect("deploy/catalogue.yaml is valid");
        assert!(c.sizes().len() >= 5);
        assert_eq!(c.sizes()[0].vcpu, 2);
        assert_eq!(c.sizes().last().map(|s| (s.vcpu, s.memory_gib)), Some((32, 128)));
        assert!(c.regions().iter().any(|r| c.sizes().iter().any(|s| r.capacity_of(&s.id) == 0)), "use case 5a needs a region without room");
        assert!(c.regions().iter().any(|r| c.sizes().iter().all(|s| r.capacity_of(&s.id) > 0)), "and one with room for every size");
    }

    #[test]
    fn parses_sizes_regions_and_capacity() {
        let c = Catalogue::parse(SMALL).unwrap();
        assert_eq!(c.size("s.big").map(|s| s.vcpu), Some(8));
        assert_eq!(c.capacity("r-1", "s.big"), 1);
        assert_eq!(c.capacity("r-2", "s.big"), 0, "a size a region does not list has no room");
        assert_eq!(c.capacity("nowhere", "s.big"), 0);
    }

    #[test]
    fn plans_bound_dedicated_nodes_per_workspace() {
        let shipped = Catalogue::load_default().unwrap();
        assert_eq!(shipped.dedicated_node_limit(Plan::Hobby), Some(0));
        let (pro, team) = (shipped.dedicated_node_limit(Plan::Pro).expect("Pro has a limit"), shipped.dedicated_node_limit(Plan::Team).expect("Team too"));
        assert!(0 < pro && pro < team, "Pro {pro}, Team {team}");
        assert_eq!(Catalogue::parse(SMALL).unwrap().dedicated_node_limit(Plan::Pro), None, "a file without plans sets no limit");
        let with = |plans: &str| Catalogue::parse(&format!("{SMALL}plans: {plans}\n"));
        assert_eq!(with("{ pro: { dedicated_nodes: 2 } }").unwrap().dedicated_node_limit(Plan::Pro), Some(2));
        assert!(matches!(with("{ hobby: { dedicated_nodes: 2 } }"), Err(CatalogueError::UnknownPlan(p)) if p == "hobby"));
        assert!(matches!(with("{ enterprise: { dedicated_nodes: 2 } }"), Err(CatalogueError::UnknownPlan(_))));
        assert!(with("{ pro: { nodes: 2 } }").is_err(), "a misspelt field is refused, not ignored");
    }

    #[test]
    fn monthly_cost_is_730_hours() {
        let c = Catalogue::parse(SMALL).unwrap();
        let small = c.size("s.small").unwrap();
        assert!((small.monthly_usd() - 73.0).abs() < 1e-9);
    }

    #[test]
    fn allocatable_keeps_a_system_reserve() {
        let c = Catalogue::parse(SMALL).unwrap();
        let a = c.size("s.small").unwrap().allocatable();
        assert!((a.cpu_cores - 1.9).abs() < 1e-9);
        assert!((a.memory_bytes - 8.0 * GIB * 0.94).abs() < 1.0);
        assert!(a.storage_bytes < 50.0 * GIB);
    }

    #[test]
    fn smallest_fit_is_the_cheapest_size_that_holds_need_plus_headroom() {
        let c = Catalogue::parse(SMALL).unwrap();
        let need = |cpu: f64, memory: f64| Need { requests: Resources::new(cpu, memory), ..Default::default() };
        assert_eq!(c.smallest_fit(&need(1.0, 4.0 * GIB)).map(|s| s.id.as_str()), Some("s.small"));
        // 1.5 cores fit 1.9 allocatable with 20 % headroom (1.8); 1.6 cores do not (1.92).
        assert_eq!(c.smallest_fit(&need(1.5, GIB)).map(|s| s.id.as_str()), Some("s.small"));
        assert_eq!(c.smallest_fit(&need(1.6, GIB)).map(|s| s.id.as_str()), Some("s.big"));
        // The reserve comes first: 6.5 GiB × 1.2 does not fit an 8 GiB node's 7.52.
        assert_eq!(c.smallest_fit(&need(0.5, 6.5 * GIB)).map(|s| s.id.as_str()), Some("s.big"));
        assert_eq!(c.smallest_fit(&need(64.0, GIB)), None);
    }

    fn err(yaml: &str) -> CatalogueError {
        Catalogue::parse(yaml).expect_err("must be refused")
    }

    #[test]
    fn refuses_unknown_versions() {
        let e = err("version: 3\nsizes: []\nregions: []\nnew_field: 1\n");
        assert!(matches!(e, CatalogueError::UnsupportedVersion { found: 3 }), "{e}");
        assert!(e.to_string().contains("version 3"));
        assert!(matches!(err("version: 0\n"), CatalogueError::UnsupportedVersion { found: 0 }));
    }

    const MAPPED: &str = r#"
version: 2
sizes:
  - { id: s.small, vcpu: 2, memory_gib: 8, storage_gib: 50, network_gbps: 5, hourly_usd: 0.1, description: small, instance_types: { karpenter: [m7i.large, m6i.large] } }
  - { id: s.big, vcpu: 8, memory_gib: 32, storage_gib: 200, network_gbps: 10, hourly_usd: 0.4, description: big, instance_types: { karpenter: [m7i.2xlarge] } }
regions:
  - { id: r-1, name: One, zones: [r-1a, r-1c], node_classes: { karpenter: r-1-class }, capacity: { s.small: 2 } }
  - { id: r-2, name: Two, capacity: { s.small: 1 } }
"#;

    #[test]
    fn version_2_maps_sizes_to_instance_types_and_regions_to_zones_and_node_classes() {
        let c = Catalogue::parse(MAPPED).unwrap();
        assert_eq!(c.size("s.small").unwrap().instance_types("karpenter"), ["m7i.large", "m6i.large"]);
        assert!(c.size("s.small").unwrap().instance_types("capi").is_empty(), "a provider without a mapping gets none");
        assert_eq!(c.region("r-1").unwrap().zones, ["r-1a", "r-1c"]);
        assert_eq!(c.region("r-1").unwrap().node_class("karpenter"), Some("r-1-class"));
        assert!(c.region("r-2").unwrap().zones.is_empty() && c.region("r-2").unwrap().node_class("karpenter").is_none());
        assert!(c.require_instance_types("karpenter").is_ok());
        let e = c.require_instance_types("capi").unwrap_err();
        assert!(matches!(&e, CatalogueError::NoInstanceTypes { size, provider } if size == "s.small" && provider == "capi"), "{e}");
        // Version 1 files (no mappings) still load; they just cannot feed a mapped provider.
        let v1 = Catalogue::parse(SMALL).unwrap();
        assert!(matches!(v1.require_instance_types("karpenter"), Err(CatalogueError::NoInstanceTypes { .. })));
    }

    #[test]
    fn refuses_bad_zones_instance_types_and_node_classes() {
        let bad = |from: &str, to: &str| {
            assert!(MAPPED.contains(from), "{from}");
            err(&MAPPED.replace(from, to))
        };
        assert!(matches!(bad("r-1a, r-1c", "r-1a, r-1a"), CatalogueError::Repeated { field: "zones", .. }));
        assert!(matches!(bad("r-1a, r-1c", "r-1a, -r-1c"), CatalogueError::BadLabelValue { field: "zones", .. }));
        assert!(matches!(bad("[m7i.2xlarge]", "[m7i 2xlarge]"), CatalogueError::BadLabelValue { field: "instance_types", .. }));
        assert!(matches!(bad("[m7i.2xlarge]", "[]"), CatalogueError::EmptyMapping { field: "instance_types", .. }));
        assert!(matches!(bad("karpenter: r-1-class", "karpenter: R1"), CatalogueError::BadId(_)));
        assert!(matches!(bad("karpenter: r-1-class", "karpenter: ''"), CatalogueError::EmptyMapping { field: "node_classes", .. }));
        assert!(matches!(bad("zones: [r-1a, r-1c]", "zonez: [r-1a]"), CatalogueError::Parse { .. }), "unknown fields are refused");
        let long = "a".repeat(64);
        assert!(matches!(bad("r-1a, r-1c", &long), CatalogueError::BadLabelValue { .. }));
    }

    #[test]
    fn the_shipped_catalogue_maps_every_size_and_region_for_karpenter() {
        let c = Catalogue::load_default().unwrap();
        c.require_instance_types("karpenter").expect("every size has a Karpenter instance type");
        for r in c.regions() {
            assert!(!r.zones.is_empty(), "{} lists its zones", r.id);
            assert!(r.zones.iter().all(|z| z.starts_with(&r.id)), "{}: {:?}", r.id, r.zones);
        }
    }

    #[test]
    fn refuses_duplicates_bad_numbers_and_unknown_sizes() {
        let dup_size = SMALL.replace("id: s.big", "id: s.small");
        assert!(matches!(err(&dup_size), CatalogueError::DuplicateSize(id) if id == "s.small"));
        let dup_region = SMALL.replace("id: r-2", "id: r-1");
        assert!(matches!(err(&dup_region), CatalogueError::DuplicateRegion(id) if id == "r-1"));
        let free = SMALL.replace("hourly_usd: 0.4", "hourly_usd: 0");
        assert!(matches!(err(&free), CatalogueError::NotPositive { field: "hourly_usd", .. }));
        let negative = SMALL.replace("hourly_usd: 0.4", "hourly_usd: -1.0");
        assert!(matches!(err(&negative), CatalogueError::NotPositive { field: "hourly_usd", .. }));
        let no_cpu = SMALL.replace("vcpu: 8", "vcpu: 0");
        assert!(matches!(err(&no_cpu), CatalogueError::NotPositive { field: "vcpu", .. }));
        let unknown = SMALL.replace("s.small: 0", "s.huge: 3");
        let e = err(&unknown);
        assert!(matches!(&e, CatalogueError::UnknownSize { region, size } if region == "r-2" && size == "s.huge"), "{e}");
        assert!(matches!(err("version: 1\nsizes: []\nregions: []\n"), CatalogueError::NoSizes));
        assert!(matches!(err(&SMALL.replace("id: r-2", "id: R 2")), CatalogueError::BadId(_)));
    }

    #[test]
    fn the_default_path_is_a_loadable_catalogue() {
        // Tests run in `server/`, so this is the source tree's copy.
        assert!(Catalogue::load_default().is_ok(), "{}", Catalogue::default_path().display());
    }

    #[test]
    fn load_names_the_file_in_errors() {
        let e = Catalogue::load(Path::new("/nonexistent/catalogue.yaml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/catalogue.yaml"), "{e}");
    }
}
