//! The scheduling fields of a workload that a move changes, read from and laid out as JSON
//! exactly as the API server holds them. A leaf: the cluster reader shows them in the dry run,
//! the migration engine patches and restores them.

use app::model::WorkloadKind;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The fields a move changes, each exactly as the API server returned it (`None`: absent).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    #[serde(default)]
    pub node_selector: Option<Value>,
    #[serde(default)]
    pub tolerations: Option<Value>,
    #[serde(default)]
    pub affinity: Option<Value>,
    #[serde(default)]
    pub priority_class_name: Option<Value>,
    /// Deployment `spec.strategy` or StatefulSet `spec.updateStrategy`.
    #[serde(default)]
    pub strategy: Option<Value>,
}

/// The pod template fields of [`Scheduling`], by their JSON names.
const POD_FIELDS: [&str; 4] = ["nodeSelector", "tolerations", "affinity", "priorityClassName"];

/// Where a kind keeps its update strategy.
pub fn strategy_field(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "strategy",
        WorkloadKind::StatefulSet => "updateStrategy",
    }
}

fn present(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| !v.is_null()).cloned()
}

impl Scheduling {
    /// From a pod template (`spec.template`) and the update strategy.
    pub fn of(template: &Value, strategy: Option<&Value>) -> Self {
        let field = |name: &str| present(template.pointer(&format!("/spec/{name}")));
        Self {
            node_selector: field("nodeSelector"),
            tolerations: field("tolerations"),
            affinity: field("affinity"),
            priority_class_name: field("priorityClassName"),
            strategy: present(strategy),
        }
    }

    /// From a whole workload object.
    pub fn of_workload(kind: WorkloadKind, workload: &Value) -> Self {
        let template = workload.pointer("/spec/template").cloned().unwrap_or(Value::Null);
        Self::of(&template, workload.pointer(&format!("/spec/{}", strategy_field(kind))))
    }

    /// From a typed pod template and update strategy: the same as [`Self::of_workload`] on
    /// the serialised object, serialising only these few fields (a screen of a thousand
    /// workloads reads them all on every request).
    pub fn of_typed<S: Serialize>(pod: Option<&PodSpec>, strategy: Option<&S>) -> Self {
        fn value<T: Serialize + ?Sized>(v: Option<&T>) -> Option<Value> {
            v.and_then(|v| serde_json::to_value(v).ok()).filter(|v| !v.is_null())
        }
        Self {
            node_selector: value(pod.and_then(|p| p.node_selector.as_ref())),
            tolerations: value(pod.and_then(|p| p.tolerations.as_ref())),
            affinity: value(pod.and_then(|p| p.affinity.as_ref())),
            priority_class_name: value(pod.and_then(|p| p.priority_class_name.as_ref())),
            strategy: value(strategy),
        }
    }

    pub fn of_deployment(d: &Deployment) -> Self {
        Self::of_typed(d.spec.template.spec.as_ref(), d.spec.strategy.as_ref())
    }

    pub fn of_stateful_set(s: &StatefulSet) -> Self {
        Self::of_typed(s.spec.template.spec.as_ref(), s.spec.update_strategy.as_ref())
    }

    fn pod_fields(&self) -> [(&'static str, &Option<Value>); 4] {
        [(POD_FIELDS[0], &self.node_selector), (POD_FIELDS[1], &self.tolerations), (POD_FIELDS[2], &self.affinity), (POD_FIELDS[3], &self.priority_class_name)]
    }

    /// These fields laid out as (part of) a workload object; absent fields are left out.
    pub fn as_workload(&self, kind: WorkloadKind) -> Value {
        let pod: Map<String, Value> = self.pod_fields().into_iter().filter_map(|(name, v)| v.clone().map(|v| (name.to_string(), v))).collect();
        let mut spec = Map::new();
        spec.insert("template".into(), json!({ "spec": pod }));
        if let Some(s) = &self.strategy {
            spec.insert(strategy_field(kind).into(), s.clone());
        }
        json!({ "spec": spec })
    }

    /// The node selector as a map of strings.
    pub fn node_selector_map(&self) -> std::collections::BTreeMap<String, String> {
        self.node_selector.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_lays_out_the_same_fields() {
        let d = json!({ "spec": {
            "strategy": { "type": "Recreate" },
            "template": { "spec": { "nodeSelector": { "a": "b" }, "priorityClassName": "high", "containers": [] } }
        } });
        let s = Scheduling::of_workload(WorkloadKind::Deployment, &d);
        assert_eq!(s.node_selector_map().get("a").map(String::as_str), Some("b"));
        assert_eq!(s.priority_class_name, Some(json!("high")));
        assert_eq!(s.tolerations, None);
        assert_eq!(
            s.as_workload(WorkloadKind::Deployment),
            json!({ "spec": { "strategy": { "type": "Recreate" }, "template": { "spec": { "nodeSelector": { "a": "b" }, "priorityClassName": "high" } } } })
        );
    }

    #[test]
    fn the_typed_reading_equals_the_reading_of_the_whole_object() {
        let full = json!({ "metadata": { "name": "web" }, "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } },
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": {
                "nodeSelector": { "pool": "dedicated" }, "priorityClassName": "high",
                "tolerations": [{ "key": "hexabase.ai/dedicated", "operator": "Equal", "value": "w", "effect": "NoSchedule" }],
                "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "k", "operator": "In", "values": ["v"] }] }] } } },
                "containers": [{ "name": "c" }] } } } });
        let d: Deployment = serde_json::from_value(full).unwrap();
        let by_json = Scheduling::of_workload(WorkloadKind::Deployment, &serde_json::to_value(&d).unwrap());
        assert_eq!(Scheduling::of_deployment(&d), by_json);
        assert!(by_json.affinity.is_some() && by_json.tolerations.is_some() && by_json.strategy.is_some());
        let bare: StatefulSet =
            serde_json::from_value(json!({ "spec": { "selector": {}, "serviceName": "s", "template": { "spec": { "containers": [] } } } })).unwrap();
        assert_eq!(Scheduling::of_stateful_set(&bare), Scheduling::of_workload(WorkloadKind::StatefulSet, &serde_json::to_value(&bare).unwrap()));
    }
}
