//! The changes a move makes to a workload, and their exact undo, as pure functions on JSON.
//!
//! Every patch here is a JSON merge patch (RFC 7386) computed as the difference between the
//! workload's current scheduling fields and the wanted ones. That makes a restore exact: a
//! field the original did not have is deleted, a map gets exactly the original keys back, a
//! list exactly the original items, whatever the move (or anybody since) put there.
//!
//! Decisions (ARCHITECTURE.md repeats them):
//! - `nodeSelector` is REPLACED by `kubernetes.io/hostname=<node>` plus the node's pool and
//!   workspace labels, not merged: the selector that placed the pods on the shared pool (say
//!   `hexabase.ai/node-pool=shared`) would otherwise keep them off the dedicated node, and
//!   pinning one node by hostname already implies every other label constraint the user chose
//!   that node for. The pool and workspace labels are what the admission policy checks.
//! - `priorityClassName` becomes `hexabase-dedicated` (same priority as the default, never
//!   preempts), which takes the pods out of the shared-pool quota; a workload with a class of
//!   its own keeps it.
//! - `affinity.nodeAffinity` is removed for the same reason; pod (anti-)affinity is kept (an
//!   anti-affinity that cannot hold on one node makes the move fail and roll back, with the
//!   scheduler's message, which is the honest outcome).
//! - Existing tolerations are kept and `hexabase.ai/dedicated=<ws>:NoSchedule` is added.
//! - Deployments roll with `maxUnavailable: 0` and their own `maxSurge` if it adds a pod,
//!   else 1. StatefulSets cannot surge: they roll one pod at a time (`RollingUpdate`,
//!   partition 0), so each pod is briefly unavailable while it moves.

use std::collections::BTreeMap;

use app::model::WorkloadKind;
use serde_json::{json, Map, Value};

use crate::cluster::labels::{DEDICATED_PRIORITY_CLASS, DEDICATED_TAINT, HOSTNAME, NODE_POOL, POOL_DEDICATED, WORKSPACE};
pub use crate::scheduling::{strategy_field, Scheduling};

/// The workload's scheduling fields before its first move (JSON of [`Scheduling`]).
pub const ORIGINAL_ANNOTATION: &str = "hexabase.ai/original-scheduling";
/// The migration that moved the workload, as `<namespace>/<name>`.
pub const MIGRATION_ANNOTATION: &str = "hexabase.ai/migration";
/// On every workload a migration moved or is moving, written in the same patch as
/// [`MIGRATION_ANNOTATION`] and removed with it: the engine watches only Deployments and
/// StatefulSets with this label, so the cluster's thousands of others never reach it.
pub const MOVED_LABEL: &str = "hexabase.ai/moved";

/// What is stored in [`ORIGINAL_ANNOTATION`] before the first move.
pub fn save_original(template: &Value, strategy: Option<&Value>) -> String {
    serde_json::to_string(&Scheduling::of(template, strategy)).expect("JSON values always serialise")
}

/// The toleration of a workspace's dedicated node taint.
pub fn toleration(ws: &str) -> Value {
    json!({ "key": DEDICATED_TAINT, "operator": "Equal", "value": ws, "effect": "NoSchedule" })
}

fn tolerates(tolerations: Option<&Value>, ws: &str) -> bool {
    tolerations.and_then(Value::as_array).is_some_and(|ts| {
        ts.iter().any(|t| {
            let s = |k: &str| t.get(k).and_then(Value::as_str);
            let effect_ok = matches!(s("effect"), None | Some("") | Some("NoSchedule"));
            let key_ok = s("key") == Some(DEDICATED_TAINT) || (s("key").unwrap_or("").is_empty() && s("operator") == Some("Exists"));
            let value_ok = s("operator") == Some("Exists") || s("value") == Some(ws);
            effect_ok && key_ok && value_ok
        })
    })
}

/// `maxSurge` as the user had it if it adds at least one pod, else 1.
fn surge(strategy: Option<&Value>) -> Value {
    match strategy.and_then(|s| s.pointer("/rollingUpdate/maxSurge")) {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n > 0) => Value::Number(n.clone()),
        Some(Value::String(s)) if s.trim_end_matches('%').parse::<f64>().is_ok_and(|p| p > 0.0) => Value::String(s.clone()),
        _ => json!(1),
    }
}

/// The scheduling a workload has once moved to `node` of workspace `ws` (see the decisions in
/// the module comment).
pub fn moved(ws: &str, node: &str, kind: WorkloadKind, current: &Scheduling) -> Scheduling {
    let mut tolerations = current.tolerations.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
    if !tolerates(current.tolerations.as_ref(), ws) {
        tolerations.push(toleration(ws));
    }
    let affinity = current.affinity.as_ref().and_then(Value::as_object).map(|a| {
        let mut a = a.clone();
        a.remove("nodeAffinity");
        a
    });
    let strategy = match kind {
        WorkloadKind::Deployment => json!({
            "type": "RollingUpdate",
            "rollingUpdate": { "maxUnavailable": 0, "maxSurge": surge(current.strategy.as_ref()) }
        }),
        WorkloadKind::StatefulSet => {
            let mut rolling = current.strategy.as_ref().and_then(|s| s.get("rollingUpdate")).and_then(Value::as_object).cloned().unwrap_or_default();
            rolling.insert("partition".into(), json!(0));
            json!({ "type": "RollingUpdate", "rollingUpdate": rolling })
        }
    };
    Scheduling {
        node_selector: Some(moved_selector(ws, node)),
        tolerations: Some(Value::Array(tolerations)),
        affinity: affinity.filter(|a| !a.is_empty()).map(Value::Object),
        // A workload with a priority class of its own keeps it (and stays on the shared
        // quota); the others join the dedicated class, outside the shared-pool quota.
        priority_class_name: current.priority_class_name.clone().or_else(|| Some(json!(DEDICATED_PRIORITY_CLASS))),
        strategy: Some(strategy),
    }
}

/// The node selector of a moved workload: the node itself, and the pool and workspace labels
/// that the admission policy checks for pods of the dedicated priority class.
fn moved_selector(ws: &str, node: &str) -> Value {
    json!({ HOSTNAME: node, NODE_POOL: POOL_DEDICATED, WORKSPACE: ws })
}

/// Whether the workload's template already says what a move to `node` says.
pub fn is_moved(ws: &str, node: &str, current: &Scheduling) -> bool {
    current.node_selector.as_ref() == Some(&moved_selector(ws, node)) && tolerates(current.tolerations.as_ref(), ws)
}

/// The merge patch that moves a workload: pod template onto `node`, tolerating the
/// workspace's taint, rolling with `maxUnavailable: 0`. Empty (`{}`) when already moved.
pub fn scheduling_patch(ws: &str, node: &str, kind: WorkloadKind, current: &Scheduling) -> Value {
    merge_diff(&current.as_workload(kind), &moved(ws, node, kind, current).as_workload(kind))
}

/// The merge patch that puts the saved fields back exactly into `workload` (as JSON) and drops
/// the annotations and labels of the move, its pods' included.
pub fn restore_patch(kind: WorkloadKind, saved: &str, workload: &Value) -> Result<Value, serde_json::Error> {
    let original: Scheduling = serde_json::from_str(saved)?;
    let mut patch = merge_diff(&Scheduling::of_workload(kind, workload).as_workload(kind), &original.as_workload(kind));
    patch["metadata"] = json!({ "annotations": { ORIGINAL_ANNOTATION: null, MIGRATION_ANNOTATION: null }, "labels": { MOVED_LABEL: null } });
    unmark_pods(&mut patch, workload.pointer("/spec/template").unwrap_or(&Value::Null));
    Ok(patch)
}

/// Adds to a move's patch (one that changes the pod template anyway, so no extra rollout) the
/// [`MOVED_LABEL`] and [`MIGRATION_ANNOTATION`] on the new pods: the engine watches pods with
/// that label, so a pod that cannot be scheduled or becomes Ready wakes its migration at
/// once, without listing pods on a timer.
pub fn mark_pods(patch: &mut Value, migration: &str) {
    let meta = &mut patch["spec"]["template"]["metadata"];
    meta["annotations"][MIGRATION_ANNOTATION] = json!(migration);
    meta["labels"][MOVED_LABEL] = json!("true");
}

/// Adds to a restore's patch the removal of [`mark_pods`]'s marks, where `template` (the
/// workload's pod template now) has them.
fn unmark_pods(patch: &mut Value, template: &Value) {
    for (field, key) in [("annotations", MIGRATION_ANNOTATION), ("labels", MOVED_LABEL)] {
        if template.pointer(&format!("/metadata/{field}")).and_then(|m| m.get(key)).is_some() {
            patch["spec"]["template"]["metadata"][field][key] = Value::Null;
        }
    }
}

/// The annotations a move writes with its patch: who moved it, and the original scheduling
/// unless an earlier move already recorded it (the record is never overwritten, so re-running
/// a move after a crash cannot save the moved fields as "original").
pub fn move_annotations(migration: &str, existing: &BTreeMap<String, String>, template: &Value, strategy: Option<&Value>) -> Value {
    let mut a = Map::new();
    a.insert(MIGRATION_ANNOTATION.into(), json!(migration));
    if !existing.contains_key(ORIGINAL_ANNOTATION) {
        a.insert(ORIGINAL_ANNOTATION.into(), json!(save_original(template, strategy)));
    }
    Value::Object(a)
}

/// The metadata a move writes with its patch: [`move_annotations`] and [`MOVED_LABEL`].
pub fn move_metadata(migration: &str, existing: &BTreeMap<String, String>, template: &Value, strategy: Option<&Value>) -> Value {
    json!({ "annotations": move_annotations(migration, existing, template, strategy), "labels": { MOVED_LABEL: "true" } })
}

/// RFC 7386 merge patch turning `from` into `to`: objects recurse, keys only in `from` become
/// `null`, anything else that differs is replaced whole (lists included).
pub fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = Map::new();
            for (k, fv) in f {
                match t.get(k) {
                    None => {
                        out.insert(k.clone(), Value::Null);
                    }
                    Some(tv) if tv != fv => {
                        let d = merge_diff(fv, tv);
                        // A nested object that becomes empty still has to exist: `{}` says so.
                        out.insert(k.clone(), d);
                    }
                    Some(_) => {}
                }
            }
            for (k, tv) in t {
                if !f.contains_key(k) {
                    out.insert(k.clone(), tv.clone());
                }
            }
            Value::Object(out)
        }
        _ => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7386 applied, as the API server applies a merge patch.
    fn apply(target: &mut Value, patch: &Value) {
        match patch {
            Value::Object(p) => {
                if !target.is_object() {
                    *target = json!({});
                }
                let t = target.as_object_mut().unwrap();
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        apply(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }

    fn deployment() -> Value {
        json!({
            "metadata": { "name": "web", "annotations": { "team": "a" } },
            "spec": {
                "replicas": 3,
                "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": {
                        "nodeSelector": { "hexabase.ai/node-pool": "shared", "kubernetes.io/arch": "amd64" },
                        "tolerations": [{ "key": "example.com/spot", "operator": "Exists", "effect": "NoSchedule" }],
                        "affinity": {
                            "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                                { "matchExpressions": [{ "key": "hexabase.ai/node-pool", "operator": "In", "values": ["shared"] }] }
                            ] } },
                            "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [] }
                        },
                        "containers": [{ "name": "app", "image": "nginx" }]
                    }
                }
            }
        })
    }

    #[test]
    fn the_move_pins_the_node_tolerates_the_taint_and_never_lowers_availability() {
        let d = deployment();
        let current = Scheduling::of_workload(WorkloadKind::Deployment, &d);
        let mut after = d.clone();
        apply(&mut after, &scheduling_patch("acme", "n1", WorkloadKind::Deployment, &current));
        let pod = &after["spec"]["template"]["spec"];
        assert_eq!(
            pod["nodeSelector"],
            json!({ "kubernetes.io/hostname": "n1", "hexabase.ai/node-pool": "dedicated", "hexabase.ai/workspace": "acme" }),
            "replaced, not merged"
        );
        assert_eq!(pod["priorityClassName"], "hexabase-dedicated", "out of the shared-pool quota");
        assert_eq!(pod["tolerations"][0]["key"], "example.com/spot", "existing tolerations kept");
        assert_eq!(pod["tolerations"][1], json!({ "key": "hexabase.ai/dedicated", "operator": "Equal", "value": "acme", "effect": "NoSchedule" }));
        assert!(pod["affinity"].get("nodeAffinity").is_none());
        assert!(pod["affinity"].get("podAntiAffinity").is_some(), "pod anti-affinity kept");
        assert_eq!(after["spec"]["strategy"], json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 0, "maxSurge": "25%" } }));
        assert_eq!(pod["containers"], d["spec"]["template"]["spec"]["containers"], "nothing else touched");
        assert!(is_moved("acme", "n1", &Scheduling::of_workload(WorkloadKind::Deployment, &after)));
        assert!(!is_moved("acme", "n2", &Scheduling::of_workload(WorkloadKind::Deployment, &after)));
        // Re-running the move is a no-op.
        let again = scheduling_patch("acme", "n1", WorkloadKind::Deployment, &Scheduling::of_workload(WorkloadKind::Deployment, &after));
        assert_eq!(again, json!({}));
    }

    #[test]
    fn patch_then_restore_gives_back_the_original_exactly() {
        let minimal = json!({ "spec": { "strategy": { "type": "Recreate" }, "template": { "spec": { "containers": [] } } } });
        let no_anti = {
            let mut d = deployment();
            d["spec"]["template"]["spec"]["affinity"].as_object_mut().unwrap().remove("podAntiAffinity");
            d
        };
        for original in [deployment(), minimal, no_anti] {
            let kind = WorkloadKind::Deployment;
            let saved = save_original(&original["spec"]["template"], original.pointer("/spec/strategy"));
            let mut moved_obj = original.clone();
            apply(&mut moved_obj, &scheduling_patch("acme", "n1", kind, &Scheduling::of_workload(kind, &original)));
            assert_ne!(moved_obj, original);
            let mut restored = moved_obj.clone();
            let patch = restore_patch(kind, &saved, &moved_obj).unwrap();
            apply(&mut restored, &patch);
            restored["metadata"] = original.get("metadata").cloned().unwrap_or(Value::Null);
            if original.get("metadata").is_none() {
                restored.as_object_mut().unwrap().remove("metadata");
            }
            assert_eq!(restored, original);
        }
    }

    #[test]
    fn restore_also_undoes_changes_made_after_the_move_and_drops_the_record() {
        let original = deployment();
        let kind = WorkloadKind::Deployment;
        let saved = save_original(&original["spec"]["template"], original.pointer("/spec/strategy"));
        let mut later = original.clone();
        apply(&mut later, &scheduling_patch("acme", "n1", kind, &Scheduling::of_workload(kind, &original)));
        later["spec"]["template"]["spec"]["nodeSelector"]["extra"] = json!("x");
        let patch = restore_patch(kind, &saved, &later).unwrap();
        assert_eq!(patch["metadata"]["annotations"], json!({ ORIGINAL_ANNOTATION: null, MIGRATION_ANNOTATION: null }));
        assert_eq!(patch["metadata"]["labels"], json!({ MOVED_LABEL: null }), "the engine stops watching it");
        apply(&mut later, &patch);
        assert_eq!(later["spec"], original["spec"]);
        assert!(restore_patch(kind, "not json", &json!({})).is_err());
    }

    #[test]
    fn the_moved_pods_carry_the_mark_and_the_restored_ones_do_not() {
        let original = deployment();
        let kind = WorkloadKind::Deployment;
        let mut patch = scheduling_patch("acme", "n1", kind, &Scheduling::of_workload(kind, &original));
        mark_pods(&mut patch, "acme-prod/mig-1");
        let mut moved_obj = original.clone();
        apply(&mut moved_obj, &patch);
        let template_meta = &moved_obj["spec"]["template"]["metadata"];
        assert_eq!((&template_meta["labels"][MOVED_LABEL], &template_meta["annotations"][MIGRATION_ANNOTATION]), (&json!("true"), &json!("acme-prod/mig-1")));
        assert_eq!(template_meta["labels"]["app"], original["spec"]["template"]["metadata"]["labels"]["app"], "the pods' own labels stay");
        let saved = save_original(&original["spec"]["template"], original.pointer("/spec/strategy"));
        let undo = restore_patch(kind, &saved, &moved_obj).unwrap();
        apply(&mut moved_obj, &undo);
        assert_eq!(moved_obj["spec"]["template"]["metadata"]["labels"], original["spec"]["template"]["metadata"]["labels"]);
        assert!(moved_obj["spec"]["template"]["metadata"]["annotations"].get(MIGRATION_ANNOTATION).is_none());
        // Nothing to remove from a template never marked (moved by an older version).
        let mut plain = json!({});
        unmark_pods(&mut plain, &original["spec"]["template"]);
        assert_eq!(plain, json!({}));
    }

    #[test]
    fn a_stateful_set_rolls_all_its_pods_one_at_a_time() {
        let sts = json!({ "spec": {
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 2 } },
            "template": { "spec": { "containers": [] } }
        } });
        let kind = WorkloadKind::StatefulSet;
        let mut after = sts.clone();
        apply(&mut after, &scheduling_patch("acme", "n1", kind, &Scheduling::of_workload(kind, &sts)));
        assert_eq!(after["spec"]["updateStrategy"], json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }));
        let saved = save_original(&sts["spec"]["template"], sts.pointer("/spec/updateStrategy"));
        let undo = restore_patch(kind, &saved, &after).unwrap();
        apply(&mut after, &undo);
        after.as_object_mut().unwrap().remove("metadata");
        assert_eq!(after, sts);
    }

    #[test]
    fn surge_is_kept_when_it_adds_a_pod_and_is_one_otherwise() {
        let s = |v: Value| surge(Some(&json!({ "rollingUpdate": { "maxSurge": v } })));
        assert_eq!(s(json!(2)), json!(2));
        assert_eq!(s(json!("50%")), json!("50%"));
        assert_eq!(s(json!(0)), json!(1));
        assert_eq!(s(json!("0%")), json!(1));
        assert_eq!(surge(None), json!(1));
    }

    #[test]
    fn an_existing_toleration_of_the_taint_is_not_added_twice() {
        let current = Scheduling { tolerations: Some(json!([toleration("acme")])), ..Default::default() };
        assert_eq!(moved("acme", "n1", WorkloadKind::Deployment, &current).tolerations, Some(json!([toleration("acme")])));
        let exists_all = Scheduling { tolerations: Some(json!([{ "operator": "Exists" }])), ..Default::default() };
        assert!(tolerates(exists_all.tolerations.as_ref(), "acme"));
        let other_ws = Scheduling { tolerations: Some(json!([toleration("other")])), ..Default::default() };
        assert!(!tolerates(other_ws.tolerations.as_ref(), "acme"));
    }

    #[test]
    fn a_workload_with_its_own_priority_class_keeps_it() {
        let current = Scheduling { priority_class_name: Some(json!("business-critical")), ..Default::default() };
        assert_eq!(moved("acme", "n1", WorkloadKind::Deployment, &current).priority_class_name, Some(json!("business-critical")));
    }

    #[test]
    fn the_original_is_recorded_once() {
        let d = deployment();
        let fresh = move_annotations("m1", &BTreeMap::new(), &d["spec"]["template"], d.pointer("/spec/strategy"));
        let saved: Scheduling = serde_json::from_str(fresh[ORIGINAL_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(saved, Scheduling::of_workload(WorkloadKind::Deployment, &d));
        let existing = BTreeMap::from([(ORIGINAL_ANNOTATION.to_string(), "{}".to_string())]);
        let again = move_annotations("m1", &existing, &d["spec"]["template"], None);
        assert_eq!(again, json!({ MIGRATION_ANNOTATION: "m1" }));
    }
}
