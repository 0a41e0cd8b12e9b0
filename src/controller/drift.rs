//! Drift: which fields of a live child differ from the rendered one, and who wrote them.
//!
//! The comparison is a subset check: every field the operator renders must be present
//! and equal in the live object; fields the API server defaults or other managers own
//! (HPA-set replicas, injected sidecars, admission defaults) are ignored. What the API
//! server does to a stored object is expected, not reported (see [`crate::apiserver`]):
//! zero values Go's `omitempty` drops, and canonical quantities, compared by value only
//! where the field is a quantity. ownerReferences compare by uid, in any order.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value};

use crate::api::FIELD_MANAGER;
use crate::{apiserver, quantity};

/// One field that differs: its display path (`spec.template.spec.containers[0].image`)
/// and the steps that lead to it, list items identified by their merge keys so the
/// writer can be found in managedFields.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub path: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    /// A list item: its index in the rendered list and the item itself.
    Item {
        index: usize,
        item: Value,
    },
}

/// A step while walking, borrowed until a difference is found.
#[derive(Clone, Copy)]
enum At<'a> {
    Field(&'a str),
    Item(usize, &'a Value),
}

/// A difference at `display`, reached by `steps` (`[i]` for a list item): for fields
/// compared by other rules than the subset check (`allows.rs`).
pub(crate) fn difference(display: String, steps: &[String]) -> Difference {
    let steps = steps
        .iter()
        .map(|s| {
            match s
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|i| i.parse().ok())
            {
                Some(index) => Step::Item {
                    index,
                    item: Value::Null,
                },
                None => Step::Field(s.clone()),
            }
        })
        .collect();
    Difference {
        path: display,
        steps,
    }
}

/// An HTTPRoute without its backends' weights: a canary's steps set them, and drift
/// repair must not fight the steps (Flagger's router leaves them out of its compare
/// for the same reason).
pub fn without_route_weights(route: &Value) -> Value {
    let mut route = route.clone();
    for rule in route["spec"]["rules"].as_array_mut().into_iter().flatten() {
        for backend in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            if let Some(b) = backend.as_object_mut() {
                b.remove("weight");
            }
        }
    }
    route
}

/// The fields where `actual` lacks or differs from a field `desired` sets.
pub fn differences(desired: &Value, actual: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    diff_into(desired, actual, &mut path, &mut out);
    out
}

fn record(path: &[At<'_>], out: &mut Vec<Difference>) {
    let mut display = String::new();
    for step in path {
        match step {
            At::Field(name) => {
                if !display.is_empty() {
                    display.push('.');
                }
                display.push_str(name);
            }
            At::Item(i, _) => display.push_str(&format!("[{i}]")),
        }
    }
    let steps = path
        .iter()
        .map(|s| match s {
            At::Field(name) => Step::Field((*name).to_string()),
            At::Item(index, item) => Step::Item {
                index: *index,
                item: (*item).clone(),
            },
        })
        .collect();
    out.push(Difference {
        path: display,
        steps,
    });
}

/// The name of the field at the end of `path`, and of the map or object holding it.
fn last_two<'a>(path: &[At<'a>]) -> (Option<&'a str>, Option<&'a str>) {
    let mut fields = path.iter().rev().filter_map(|s| match s {
        At::Field(f) => Some(*f),
        At::Item(..) => None,
    });
    let key = fields.next();
    (fields.next(), key)
}

fn diff_into<'a>(
    desired: &'a Value,
    actual: &'a Value,
    path: &mut Vec<At<'a>>,
    out: &mut Vec<Difference>,
) {
    match (desired, actual) {
        (Value::Null, _) => {}
        (Value::Object(d), Value::Object(a)) => {
            for (key, dv) in d {
                path.push(At::Field(key));
                if path.len() == 2 && key == "ownerReferences" {
                    if !owner_refs_included(dv, a.get(key).unwrap_or(&Value::Null)) {
                        record(path, out);
                    }
                } else {
                    match a.get(key) {
                        Some(av) => diff_into(dv, av, path, out),
                        // Not stored by the server (omitempty), so not drift.
                        None if apiserver::dropped_when_zero(key, dv) => {}
                        None if is_all_zero(dv) => {}
                        None => record(path, out),
                    }
                }
                path.pop();
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            // Keyed lists (containers, env, ports, volumes, mounts...) merge by key under
            // server-side apply: entries other managers add are theirs, not drift.
            if let Some(keys) = d.iter().map(item_key).collect::<Option<Vec<_>>>() {
                for (i, (dv, key)) in d.iter().zip(keys).enumerate() {
                    path.push(At::Item(i, dv));
                    match a.iter().find(|av| item_key(av).as_ref() == Some(&key)) {
                        Some(av) => diff_into(dv, av, path, out),
                        None => record(path, out),
                    }
                    path.pop();
                }
                return;
            }
            if d.len() != a.len() {
                record(path, out);
                return;
            }
            for (i, (dv, av)) in d.iter().zip(a).enumerate() {
                path.push(At::Item(i, dv));
                diff_into(dv, av, path, out);
                path.pop();
            }
        }
        (Value::String(d), Value::String(a)) => {
            if d != a {
                let (parent, key) = last_two(path);
                let quantity = key.is_some_and(|k| apiserver::is_quantity(parent, k));
                if !(quantity && same_quantity(d, a)) {
                    record(path, out);
                }
            }
        }
        (Value::Number(d), Value::Number(a)) => {
            if d.as_f64() != a.as_f64() {
                record(path, out);
            }
        }
        (d, a) => {
            if d != a {
                record(path, out);
            }
        }
    }
}

/// An object whose every field the server would drop (`securityContext: {readOnly:
/// false}`) is stored as nothing at all.
fn is_all_zero(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| apiserver::dropped_when_zero(k, v) || is_all_zero(v)),
        _ => false,
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

/// The field managers, other than the operator's own, that wrote the differing fields:
/// for each field, the managers that own it, or, for a field someone removed, the ones
/// that own the object that held it. List items are matched by their merge keys, so a
/// sidecar injector that owns its own container is never blamed for the app's.
/// "unknown" when managedFields do not say.
pub fn managers_of(managed: Option<&Vec<ManagedFieldsEntry>>, diffs: &[Difference]) -> Vec<String> {
    let others: Vec<(&str, &Value)> = managed
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e.manager.as_deref()?, &e.fields_v1.as_ref()?.0)))
        .filter(|(m, _)| !m.starts_with(FIELD_MANAGER))
        .collect();
    let mut names: Vec<String> = Vec::new();
    for diff in diffs {
        let depths: Vec<(usize, &str)> = others
            .iter()
            .map(|(m, tree)| (owned_depth(tree, &diff.steps), *m))
            .collect();
        let full = diff.steps.len();
        let owners: Vec<&str> = [full, full.saturating_sub(1)]
            .into_iter()
            .filter(|d| *d >= 2)
            .map(|d| {
                depths
                    .iter()
                    .filter(|(depth, _)| *depth == d)
                    .map(|(_, m)| *m)
                    .collect::<Vec<_>>()
            })
            .find(|found| !found.is_empty())
            .unwrap_or_default();
        for m in owners {
            if !names.iter().any(|n| n == m) {
                names.push(m.to_string());
            }
        }
    }
    if names.is_empty() {
        names.push("unknown".into());
    }
    names
}

/// How many leading steps of the path the fieldsV1 tree contains.
fn owned_depth(tree: &Value, path: &[Step]) -> usize {
    let Some((first, rest)) = path.split_first() else {
        return 0;
    };
    let Some(map) = tree.as_object() else {
        return 0;
    };
    let sub = match first {
        Step::Field(name) => map.get(&format!("f:{name}")),
        Step::Item { index, item } => map
            .iter()
            .find(|(k, _)| item_matches(k, *index, item))
            .map(|(_, v)| v),
    };
    sub.map_or(0, |sub| 1 + owned_depth(sub, rest))
}

/// Whether a fieldsV1 list-item key (`k:{"name":"web"}`, `i:0`, `v:"x"`) is `item`.
fn item_matches(key: &str, index: usize, item: &Value) -> bool {
    if let Some(keys) = key.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
            return false;
        };
        let fields = item.as_object().cloned().unwrap_or_else(Map::new);
        return keys.iter().all(|(k, v)| match fields.get(k) {
            Some(mine) => mine == v,
            // The API server defaults a port's protocol.
            None => k == "protocol" && v == "TCP",
        });
    }
    if let Some(i) = key.strip_prefix("i:") {
        return i.parse() == Ok(index);
    }
    if let Some(v) = key.strip_prefix("v:") {
        return serde_json::from_str::<Value>(v).is_ok_and(|v| &v == item);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    fn paths(desired: &Value, actual: &Value) -> Vec<String> {
        differences(desired, actual)
            .into_iter()
            .map(|d| d.path)
            .collect()
    }

    // Fields the operator does not set (server defaults, other managers) are not drift.
    #[test]
    fn extra_fields_are_ignored() {
        let desired =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let actual = json!({"spec": {"replicas": 2, "paused": false, "template": {"spec": {"containers": [{"name": "a", "terminationMessagePath": "/dev/termination-log"}]}}}, "status": {}});
        assert!(paths(&desired, &actual).is_empty());
    }

    // A changed or removed field is reported with its path.
    #[test]
    fn changed_fields_are_reported() {
        let desired = json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0}}, "template": {"spec": {"containers": [{"image": "a:1"}]}}}});
        let actual = json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 1}}, "template": {"spec": {"containers": [{"image": "a:2"}]}}}});
        assert_eq!(
            paths(&desired, &actual),
            [
                "spec.strategy.rollingUpdate.maxUnavailable",
                "spec.template.spec.containers[0].image"
            ]
        );
        let removed = json!({"spec": {"strategy": {}}});
        assert_eq!(
            paths(
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
        assert!(paths(&desired, &extra).is_empty());
        let changed = json!({"env": [{"name": "A", "value": "2"}], "args": ["x"]});
        assert_eq!(paths(&desired, &changed), ["env[0].value"]);
        let missing = json!({"env": [{"name": "B", "value": "1"}], "args": ["x"]});
        assert_eq!(paths(&desired, &missing), ["env[0]"]);
        let more_args = json!({"env": [{"name": "A", "value": "1"}], "args": ["x", "y"]});
        assert_eq!(paths(&desired, &more_args), ["args"]);
    }

    // The API server's canonical quantities and owner order are not drift.
    #[test]
    fn canonical_forms_are_equal() {
        let res = |cpu: &str| json!({"resources": {"requests": {"cpu": cpu}}});
        assert!(paths(&res("0.5"), &res("500m")).is_empty());
        assert_eq!(paths(&res("1"), &res("2")), ["resources.requests.cpu"]);
        let d = json!({"metadata": {"ownerReferences": [{"uid": "a", "controller": false}, {"uid": "b", "controller": false}]}});
        let a = json!({"metadata": {"ownerReferences": [{"uid": "b", "controller": false}, {"uid": "a", "controller": false}, {"uid": "c"}]}});
        assert!(paths(&d, &a).is_empty());
        let missing = json!({"metadata": {"ownerReferences": [{"uid": "a", "controller": false}]}});
        assert_eq!(paths(&d, &missing), ["metadata.ownerReferences"]);
    }

    // Strings that merely parse as quantities are strings: "1.10" is not "1.1".
    #[test]
    fn strings_are_not_quantities() {
        let label = |v: &str| json!({"metadata": {"labels": {"app.kubernetes.io/version": v}}});
        assert_eq!(
            paths(&label("1.10"), &label("1.1")),
            ["metadata.labels.app.kubernetes.io/version"]
        );
        let env = |v: &str| json!({"env": [{"name": "V", "value": v}]});
        assert_eq!(paths(&env("1.10"), &env("1.1")), ["env[0].value"]);
    }

    // Zero values the API server does not store are not drift; pointer zeros are.
    #[test]
    fn omitempty_zero_values_are_not_drift() {
        let desired = json!({"spec": {"minReadySeconds": 0, "template": {"spec": {
            "imagePullSecrets": [], "containers": [{"name": "a", "args": [],
            "env": [{"name": "E", "value": ""}],
            "volumeMounts": [{"name": "t", "mountPath": "/t", "readOnly": false}]}]}}}});
        let live = json!({"spec": {"template": {"spec": {"containers": [{"name": "a",
            "env": [{"name": "E"}], "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}}}});
        assert!(paths(&desired, &live).is_empty());
        let desired = json!({"spec": {"automountServiceAccountToken": false}});
        assert_eq!(
            paths(&desired, &json!({"spec": {}})),
            ["spec.automountServiceAccountToken"]
        );
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
        let desired = json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0}}}});
        let live = json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 1}}}});
        let diffs = differences(&desired, &live);
        assert_eq!(managers_of(Some(&managed), &diffs), ["kubectl-edit"]);
        let desired = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a:1"}]}}}});
        let live = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a:2"}]}}}});
        let image = differences(&desired, &live);
        let managed = vec![entry(
            "kubectl-set",
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
        )];
        assert_eq!(managers_of(Some(&managed), &image), ["kubectl-set"]);
        assert_eq!(managers_of(None, &image), ["unknown"]);
    }

    // A sidecar injector owning its own container's image is not blamed for the app's.
    #[test]
    fn list_items_match_by_key() {
        let desired = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a:1"}]}}}});
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "istio-proxy", "image": "proxy:1"}, {"name": "web", "image": "a:2"}]}}}});
        let diffs = differences(&desired, &live);
        let managed = vec![
            entry(
                "istio-injector",
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"istio-proxy\"}": {"f:image": {}}}}}}}),
            ),
            entry(
                "kubectl-set",
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
            ),
        ];
        assert_eq!(managers_of(Some(&managed), &diffs), ["kubectl-set"]);
        assert_eq!(
            managers_of(Some(&managed[..1].to_vec()), &diffs),
            ["unknown"]
        );
        // Ports are keyed by containerPort and protocol (defaulted to TCP).
        let desired = json!({"ports": [{"name": "http", "containerPort": 8080, "hostPort": 1}]});
        let live = json!({"ports": [{"name": "http", "containerPort": 8080, "hostPort": 2}]});
        let managed = vec![entry(
            "editor",
            json!({"f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {"f:hostPort": {}}}}),
        )];
        let diffs = differences(&desired, &live);
        assert_eq!(managers_of(Some(&managed), &diffs), ["editor"]);
    }
}
