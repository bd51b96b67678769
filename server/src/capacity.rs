//! The one capacity model, pure: what a pod requests, what moving a selection of workloads
//! needs on a node (their requests plus the largest single rolling-update surge, because
//! workloads move one at a time), whether that fits a node's room with the headroom, and
//! which taints a pod's tolerations leave standing. The wizard's fit check, the migration
//! plan and the engine's troubleshooting all ask this module, so they can never disagree.
//!
//! Quantities are parsed by `kube_quantity` (ARCHITECTURE.md says why it replaced our own
//! parser).

use std::ops::{Add, AddAssign, Mul};

use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_quantity::ParsedQuantity;

/// The headroom every fit check keeps above requests plus surge: room to scale out a little
/// and for the requests the node's own daemons make. Shown in the UI next to each check.
pub const HEADROOM: f64 = 0.2;
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The headroom in percent, as the UI says it.
pub fn headroom_percent() -> u32 {
    (HEADROOM * 100.0).round() as u32
}

/// A Kubernetes quantity as a number in its base unit (cores for CPU, bytes for memory);
/// `None` for a string that is not a quantity.
pub fn quantity(q: &Quantity) -> Option<f64> {
    ParsedQuantity::try_from(q).ok()?.to_bytes_f64()
}

/// CPU (cores) and memory (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Resources {
    pub cpu: f64,
    pub memory: f64,
}

impl Resources {
    pub fn new(cpu: f64, memory: f64) -> Self {
        Self { cpu, memory }
    }

    pub fn memory_gib(&self) -> f64 {
        self.memory / GIB
    }

    /// The larger of each resource.
    pub fn max(self, other: Resources) -> Resources {
        Resources { cpu: self.cpu.max(other.cpu), memory: self.memory.max(other.memory) }
    }

    /// What is left of `self` after `used`, never below zero.
    pub fn minus(self, used: Resources) -> Resources {
        Resources { cpu: (self.cpu - used.cpu).max(0.0), memory: (self.memory - used.memory).max(0.0) }
    }

    /// Both resources are at most `room`'s (with a rounding tolerance).
    pub fn within(self, room: Resources) -> bool {
        self.cpu <= room.cpu + 1e-9 && self.memory <= room.memory + 1e-9
    }

    /// From a `cpu`/`memory` map such as `requests` or `allocatable`.
    pub fn from_map(map: Option<&std::collections::BTreeMap<String, Quantity>>) -> Resources {
        let get = |k: &str| map.and_then(|m| m.get(k)).and_then(quantity).unwrap_or(0.0);
        Resources { cpu: get("cpu"), memory: get("memory") }
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources { cpu: self.cpu + o.cpu, memory: self.memory + o.memory }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl Mul<f64> for Resources {
    type Output = Resources;
    fn mul(self, k: f64) -> Resources {
        Resources { cpu: self.cpu * k, memory: self.memory * k }
    }
}

impl std::iter::Sum for Resources {
    fn sum<I: Iterator<Item = Resources>>(iter: I) -> Resources {
        iter.fold(Resources::default(), Add::add)
    }
}

/// What the scheduler reserves for one pod: the larger of its containers' requests (sidecars,
/// i.e. init containers that keep running, included) and its largest init container, plus the
/// pod overhead — the scheduler's own rule.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let requests = |c: &k8s_openapi::api::core::v1::Container| Resources::from_map(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let is_sidecar = |c: &&k8s_openapi::api::core::v1::Container| c.restart_policy.as_deref() == Some("Always");
    let running: Resources = spec.containers.iter().map(requests).sum::<Resources>() + inits.iter().filter(is_sidecar).map(requests).sum();
    let init_peak = inits.iter().filter(|c| !is_sidecar(c)).map(requests).fold(Resources::default(), Resources::max);
    running.max(init_peak) + Resources::from_map(spec.overhead.as_ref())
}

/// Pods a Deployment's rolling update adds at once: `maxSurge` resolved against the replicas
/// (25% by default, rounded up, as Kubernetes does), and at least one, because a migration
/// always surges (`maxUnavailable: 0`).
pub fn surge_pods(max_surge: Option<&IntOrString>, replicas: i32) -> i32 {
    let n = match max_surge {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            (f64::from(replicas) * pct / 100.0).ceil() as i32
        }
        None => (f64::from(replicas) * 0.25).ceil() as i32,
    };
    n.max(1)
}

/// One workload's demand: its replicas of one pod, and the extra pods its move runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Demand {
    pub replicas: i32,
    pub pod: Resources,
    /// 0 for a StatefulSet, which replaces pods in place.
    pub surge_pods: i32,
}

impl Demand {
    pub fn steady(&self) -> Resources {
        self.pod * f64::from(self.replicas.max(0))
    }

    pub fn surge(&self) -> Resources {
        self.pod * f64::from(self.surge_pods.max(0))
    }
}

/// What moving a selection needs on a node: every replica's requests, plus the largest single
/// surge (workloads move one after another, so only one surges at a time).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Need {
    pub requests: Resources,
    pub surge: Resources,
    pub pods: i32,
}

impl Need {
    pub fn of<'a>(demands: impl IntoIterator<Item = &'a Demand>) -> Need {
        demands.into_iter().fold(Need::default(), |n, d| Need {
            requests: n.requests + d.steady(),
            surge: n.surge.max(d.surge()),
            pods: n.pods + d.replicas.max(0),
        })
    }

    /// Requests plus surge: what the node must hold at the busiest moment of the move.
    pub fn total(&self) -> Resources {
        self.requests + self.surge
    }

    /// The total with the headroom every fit check keeps.
    pub fn with_headroom(&self) -> Resources {
        self.total() * (1.0 + HEADROOM)
    }

    /// Whether the need, with headroom, fits `room` (a node's free allocatable).
    pub fn fits(&self, room: Resources) -> bool {
        self.with_headroom().within(room)
    }
}

/// A node's allocatable CPU and memory.
pub fn allocatable(node: &Node) -> Resources {
    Resources::from_map(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

/// Whether a pod still holds its requests on its node (not finished).
pub fn holds_requests(pod: &Pod) -> bool {
    !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// What the given pods (say, those bound to one node) request together.
pub fn requested<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Resources {
    pods.into_iter().filter(|p| holds_requests(p)).filter_map(|p| p.spec.as_ref()).map(pod_requests).sum()
}

/// Whether one toleration tolerates one taint, by the Kubernetes matching rules.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
    let exists = toleration.operator.as_deref() == Some("Exists");
    let key_ok = match toleration.key.as_deref() {
        None | Some("") => exists,
        Some(k) => k == taint.key,
    };
    let value_ok = exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
    effect_ok && key_ok && value_ok
}

/// The taints with a scheduling effect that none of the tolerations tolerates, as
/// `key=value:Effect`.
pub fn untolerated(taints: &[Taint], tolerations: &[Toleration]) -> Vec<String> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
        .map(|t| format!("{}={}:{}", t.key, t.value.as_deref().unwrap_or(""), t.effect))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Option<f64> {
        quantity(&Quantity(s.into()))
    }

    /// The forms the API server writes and people type, through the kept crate.
    #[test]
    fn quantities_parse_in_every_kubernetes_form() {
        assert_eq!(q("500m"), Some(0.5));
        assert_eq!(q("2"), Some(2.0));
        assert_eq!(q("1.5"), Some(1.5));
        assert_eq!(q("250000000n"), Some(0.25));
        assert_eq!(q("512Mi"), Some(512.0 * 1048576.0));
        assert_eq!(q("16Gi").map(|b| b / GIB), Some(16.0));
        assert_eq!(q("1G"), Some(1e9));
        assert_eq!(q("1e3"), Some(1000.0));
        assert_eq!(q("128974848"), Some(128974848.0));
        assert_eq!(q("7971300Ki"), Some(7971300.0 * 1024.0));
        assert_eq!(q("x"), None);
        assert_eq!(q("1.2.3"), None, "the whole string must be a quantity");
        assert_eq!(q("12Mib"), None);
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_pod_requests_its_containers_or_its_largest_init_container_plus_overhead() {
        let plain = spec(json!({ "containers": [
            { "name": "a", "resources": { "requests": { "cpu": "250m", "memory": "256Mi" } } },
            { "name": "b", "resources": { "requests": { "cpu": "250m" } } },
            { "name": "c" }
        ] }));
        assert_eq!(pod_requests(&plain), Resources::new(0.5, 256.0 * 1048576.0));
        let with_init = spec(json!({
            "initContainers": [
                { "name": "migrate", "resources": { "requests": { "cpu": "2" } } },
                { "name": "proxy", "restartPolicy": "Always", "resources": { "requests": { "cpu": "100m" } } }
            ],
            "containers": [{ "name": "a", "resources": { "requests": { "cpu": "500m" } } }],
            "overhead": { "cpu": "50m" }
        }));
        let r = pod_requests(&with_init);
        assert!((r.cpu - 2.05).abs() < 1e-9, "the init peak (2) beats the running 0.6; plus overhead: {r:?}");
    }

    #[test]
    fn surge_follows_kubernetes_rounding_and_is_at_least_one() {
        assert_eq!(surge_pods(None, 3), 1);
        assert_eq!(surge_pods(None, 10), 3);
        assert_eq!(surge_pods(Some(&IntOrString::String("50%".into())), 3), 2);
        assert_eq!(surge_pods(Some(&IntOrString::Int(0)), 3), 1);
    }

    #[test]
    fn need_adds_requests_and_the_largest_surge_once() {
        let gib = |g: f64| g * GIB;
        let demands = [
            Demand { replicas: 3, pod: Resources::new(0.5, gib(0.5)), surge_pods: 1 },
            Demand { replicas: 2, pod: Resources::new(0.25, gib(0.25)), surge_pods: 1 },
            Demand { replicas: 1, pod: Resources::new(0.25, gib(0.5)), surge_pods: 0 },
        ];
        let need = Need::of(&demands);
        assert_eq!(need.pods, 6);
        assert!((need.requests.cpu - 2.25).abs() < 1e-9);
        assert!((need.requests.memory_gib() - 2.5).abs() < 1e-9);
        assert_eq!(need.surge, Resources::new(0.5, gib(0.5)));
    }

    #[test]
    fn fit_keeps_the_headroom_over_requests_and_surge() {
        let need = Need { requests: Resources::new(2.5, 2.0 * GIB), surge: Resources::new(0.5, 0.5 * GIB), pods: 4 };
        assert!(need.fits(Resources::new(3.6, 3.0 * GIB)), "3.0 vCPU × 1.2 = 3.6");
        assert!(!need.fits(Resources::new(3.5, 3.0 * GIB)));
        assert!(!need.fits(Resources::new(8.0, 2.9 * GIB)), "memory counts too");
        assert_eq!(headroom_percent(), 20);
    }

    #[test]
    fn finished_pods_hold_no_requests() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(
                json!({ "spec": { "containers": [{ "name": "a", "resources": { "requests": { "cpu": "1" } } }] }, "status": { "phase": phase } }),
            )
            .unwrap()
        };
        assert_eq!(requested(&[pod("Running"), pod("Pending"), pod("Succeeded"), pod("Failed")]).cpu, 2.0);
    }

    #[test]
    fn taints_are_matched_like_kubernetes_does() {
        let taint = |k: &str, v: &str, e: &str| Taint { key: k.into(), value: Some(v.into()), effect: e.into(), ..Default::default() };
        let taints =
            vec![taint("hexabase.ai/dedicated", "acme", "NoSchedule"), taint("example.com/gpu", "yes", "NoExecute"), taint("soft", "x", "PreferNoSchedule")];
        let ours = Toleration {
            key: Some("hexabase.ai/dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("acme".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        };
        assert_eq!(untolerated(&taints, std::slice::from_ref(&ours)), vec!["example.com/gpu=yes:NoExecute".to_string()]);
        let other_ws = Toleration { value: Some("globex".into()), ..ours.clone() };
        assert_eq!(untolerated(&taints[..1], &[other_ws]).len(), 1);
        let everything = Toleration { operator: Some("Exists".into()), ..Default::default() };
        assert!(untolerated(&taints, &[everything]).is_empty());
    }
}
