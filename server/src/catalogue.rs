//! The size and region catalogue (owned by the provisioning work; see ARCHITECTURE.md).
//!
//! A versioned YAML file (`deploy/catalogue.yaml`) lists the dedicated node sizes with their
//! prices and the regions with how many nodes of each size can exist there. It is validated
//! once when loaded, so the rest of the server can trust every id and number in it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capacity::{Need, Resources};

/// The only catalogue format this server understands.
pub const CATALOGUE_VERSION: u32 = 1;
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
    #[error("catalogue version {found} is not supported (this server reads version {CATALOGUE_VERSION})")]
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
}

/// A region and how many nodes of each size it can hold (a size not listed: none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
}

impl Region {
    pub fn capacity_of(&self, size: &str) -> u32 {
        self.capacity.get(size).copied().unwrap_or(0)
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    sizes: Vec<Size>,
    regions: Vec<Region>,
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
        if v.version != CATALOGUE_VERSION {
            return Err(CatalogueError::UnsupportedVersion { found: v.version });
        }
        let file: CatalogueFile = serde_yaml::from_str(yaml).map_err(parse_err)?;
        validate(&file)?;
        Ok(Catalogue { sizes: file.sizes, regions: file.regions })
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

    /// How many nodes of `size` can exist in `region` (0 for unknown ids).
    pub fn capacity(&self, region: &str, size: &str) -> u32 {
        self.region(region).map_or(0, |r| r.capacity_of(size))
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
        let e = err("version: 2\nsizes: []\nregions: []\nnew_field: 1\n");
        assert!(matches!(e, CatalogueError::UnsupportedVersion { found: 2 }), "{e}");
        assert!(e.to_string().contains("version 2"));
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
