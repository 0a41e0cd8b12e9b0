//! Drift: which fields of a live child differ from the rendered one, and who wrote them.
//!
//! The comparison is a subset check: every field the operator renders must be present
//! and equal in the live object; fields the API server defaults or other managers own
//! (HPA-set replicas, injected sidecars, admission defaults) are ignored. Quantities
//! compare by value (`0.5` equals `500m`, as the API server canonicalises them), and
//! ownerReferences by uid, in any order.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

use crate::api::FIELD_MANAGER;
use crate::quantity;

/// Paths (`spec.template.spec.containers[0].image`) where `actual` lacks or differs from
/// a field `desired` sets.
pub fn differences(desired: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_into(desired, actual, String::new(), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn diff_into(desired: &Value, actual: &Value, path: String, out: &mut Vec<String>) {
    match (desired, actual) {
        (Value::Null, _) => {}
        (Value::Object(d), Value::Object(a)) => {
            for (key, dv) in d {
                let p = join(&path, key);
                if p == "metadata.ownerReferences" {
                    if !owner_refs_included(dv, a.get(key).unwrap_or(&Value::Null)) {
                        out.push(p);
                    }
                    continue;
                }
                match a.get(key) {
                    Some(av) => diff_into(dv, av, p, out),
                    None if is_empty(dv) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            // Keyed lists (containers, env, ports, volumes, mounts...) merge by key under
            // server-side apply: entries other managers add are theirs, not drift.
            if let Some(keys) = d.iter().map(item_key).collect::<Option<Vec<_>>>() {
                for (i, (dv, key)) in d.iter().zip(keys).enumerate() {
                    match a.iter().find(|av| item_key(av).as_ref() == Some(&key)) {
                        Some(av) => diff_into(dv, av, format!("{path}[{i}]"), out),
                        None => out.push(format!("{path}[{i}]")),
                    }
                }
                return;
            }
            if d.len() != a.len() {
                out.push(path);
                return;
            }
            for (i, (dv, av)) in d.iter().zip(a).enumerate() {
                diff_into(dv, av, format!("{path}[{i}]"), out);
            }
        }
        (Value::String(d), Value::String(a)) => {
            if d != a && !same_quantity(d, a) {
                out.push(path);
            }
        }
        (Value::Number(d), Value::Number(a)) => {
            if d.as_f64() != a.as_f64() {
                out.push(path);
            }
        }
        (d, a) => {
            if d != a {
                out.push(path);
            }
        }
    }
}

/// The merge key of a list item: `mountPath` for volume mounts (one volume may be
/// mounted twice), else `name` (containers, env, ports, volumes, secrets). Lists whose
/// items have neither (args, tolerations, capabilities) compare position by position.
fn item_key(item: &Value) -> Option<(&'static str, String)> {
    let obj = item.as_object()?;
    for key in ["mountPath", "name"] {
        if let Some(v) = obj.get(key).and_then(Value::as_str) {
            return Some((key, v.to_string()));
        }
    }
    None
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn same_quantity(a: &str, b: &str) -> bool {
    match (quantity::parse(a), quantity::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp_value(&y).is_eq(),
        _ => false,
    }
}

/// Every desired ownerReference (by uid and controller flag) is present.
fn owner_refs_included(desired: &Value, actual: &Value) -> bool {
    let key = |r: &Value| (r.get("uid").cloned(), r.get("controller").cloned());
    let actual: Vec<_> = actual
        .as_array()
        .map(|a| a.iter().map(key).collect())
        .unwrap_or_default();
    desired
        .as_array()
        .is_none_or(|d| d.iter().all(|r| actual.contains(&key(r))))
}

/// The field managers, other than the operator, that own any of `paths` (or their
/// closest owned parent, for a field someone removed), most recent first; "unknown"
/// when managedFields do not say.
pub fn managers_of(managed: Option<&Vec<ManagedFieldsEntry>>, paths: &[String]) -> Vec<String> {
    let mut found: Vec<(usize, Option<String>, String)> = Vec::new();
    for entry in managed.into_iter().flatten() {
        let Some(manager) = entry.manager.as_deref() else {
            continue;
        };
        if manager == FIELD_MANAGER {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        let depth = paths
            .iter()
            .map(|p| owned_depth(&fields.0, &segments(p)))
            .max()
            .unwrap_or(0);
        if depth > 1 {
            let time = entry.time.as_ref().map(|t| t.0.to_string());
            found.push((depth, time, manager.to_string()));
        }
    }
    // Deepest match first, then the most recent write.
    found.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut names: Vec<String> = Vec::new();
    for (_, _, m) in found {
        if !names.contains(&m) {
            names.push(m);
        }
    }
    if names.is_empty() {
        names.push("unknown".into());
    }
    names
}

enum Segment {
    Field(String),
    Index,
}

fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(Segment::Field(name.to_string()));
        }
        for _ in rest.split('[').filter(|s| !s.is_empty()) {
            out.push(Segment::Index);
        }
    }
    out
}

/// How many leading segments of the path the fieldsV1 tree contains.
fn owned_depth(tree: &Value, path: &[Segment]) -> usize {
    let Some((first, rest)) = path.split_first() else {
        return 0;
    };
    let Some(map) = tree.as_object() else {
        return 0;
    };
    match first {
        Segment::Field(name) => map
            .get(&format!("f:{name}"))
            .map_or(0, |sub| 1 + owned_depth(sub, rest)),
        // A list item is keyed by its merge key (k:{...}), index (i:N) or value (v:...).
        Segment::Index => map
            .iter()
            .filter(|(k, _)| k.starts_with("k:") || k.starts_with("i:") || k.starts_with("v:"))
            .map(|(_, sub)| 1 + owned_depth(sub, rest))
            .max()
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    // Fields the operator does not set (server defaults, other managers) are not drift.
    #[test]
    fn extra_fields_are_ignored() {
        let desired =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let actual = json!({"spec": {"replicas": 2, "paused": false, "template": {"spec": {"containers": [{"name": "a", "terminationMessagePath": "/dev/termination-log"}]}}}, "status": {}});
        assert!(differences(&desired, &actual).is_empty());
    }

    // A changed or removed field is reported with its path.
    #[test]
    fn changed_fields_are_reported() {
        let desired = json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0}}, "template": {"spec": {"containers": [{"image": "a:1"}]}}}});
        let actual = json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 1}}, "template": {"spec": {"containers": [{"image": "a:2"}]}}}});
        assert_eq!(
            differences(&desired, &actual),
            [
                "spec.strategy.rollingUpdate.maxUnavailable",
                "spec.template.spec.containers[0].image"
            ]
        );
        let removed = json!({"spec": {"strategy": {}}});
        assert_eq!(
            differences(
                &json!({"spec": {"strategy": {"type": "RollingUpdate"}}}),
                &removed
            ),
            ["spec.strategy.type"]
        );
    }

    // Entries another manager added to a keyed list are not drift; a changed or missing
    // entry of ours is, and unkeyed lists compare exactly.
    #[test]
    fn keyed_lists_merge() {
        let desired = json!({"env": [{"name": "A", "value": "1"}], "args": ["x"]});
        let extra = json!({"env": [{"name": "INJECTED", "value": "z"}, {"name": "A", "value": "1"}], "args": ["x"]});
        assert!(differences(&desired, &extra).is_empty());
        let changed = json!({"env": [{"name": "A", "value": "2"}], "args": ["x"]});
        assert_eq!(differences(&desired, &changed), ["env[0].value"]);
        let missing = json!({"env": [{"name": "B", "value": "1"}], "args": ["x"]});
        assert_eq!(differences(&desired, &missing), ["env[0]"]);
        let more_args = json!({"env": [{"name": "A", "value": "1"}], "args": ["x", "y"]});
        assert_eq!(differences(&desired, &more_args), ["args"]);
    }

    // The API server's canonical quantities and owner order are not drift.
    #[test]
    fn canonical_forms_are_equal() {
        assert!(differences(&json!({"cpu": "0.5"}), &json!({"cpu": "500m"})).is_empty());
        assert_eq!(
            differences(&json!({"cpu": "1"}), &json!({"cpu": "2"})),
            ["cpu"]
        );
        let d = json!({"metadata": {"ownerReferences": [{"uid": "a", "controller": false}, {"uid": "b", "controller": false}]}});
        let a = json!({"metadata": {"ownerReferences": [{"uid": "b", "controller": false}, {"uid": "a", "controller": false}, {"uid": "c"}]}});
        assert!(differences(&d, &a).is_empty());
        let missing = json!({"metadata": {"ownerReferences": [{"uid": "a", "controller": false}]}});
        assert_eq!(differences(&d, &missing), ["metadata.ownerReferences"]);
    }

    fn entry(manager: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    // The manager that wrote a drifted field is named; the operator itself never is.
    #[test]
    fn finds_the_writer() {
        let managed = vec![
            entry(
                FIELD_MANAGER,
                json!({"f:spec": {"f:strategy": {"f:rollingUpdate": {"f:maxUnavailable": {}}}}}),
            ),
            entry(
                "kubectl-edit",
                json!({"f:spec": {"f:strategy": {"f:rollingUpdate": {"f:maxUnavailable": {}}}}}),
            ),
            entry("helm", json!({"f:metadata": {"f:labels": {"f:team": {}}}})),
        ];
        let paths = vec!["spec.strategy.rollingUpdate.maxUnavailable".to_string()];
        assert_eq!(managers_of(Some(&managed), &paths), ["kubectl-edit"]);
        let image = vec!["spec.template.spec.containers[0].image".to_string()];
        let managed = vec![entry(
            "kubectl-set",
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
        )];
        assert_eq!(managers_of(Some(&managed), &image), ["kubectl-set"]);
        assert_eq!(managers_of(None, &image), ["unknown"]);
    }
}
