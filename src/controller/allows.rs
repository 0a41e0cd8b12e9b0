//! What a child *allows*, compared exactly: the fields where an entry the operator does
//! not render — or a list it leaves out — would let more through. Server-side apply owns
//! only what the applied object contains (SAFEAPP.md §7c): a NetworkPolicy applied
//! without `ingress` leaves `spec.ingress` unowned, and another manager's
//! `ingress: [{}]` (allow all) is kept and never a conflict. The subset compare of
//! `drift.rs` (right for fields that legitimately grow: sidecars, volumes, defaults)
//! cannot see it. Here, per kind:
//!
//! | kind | compared exactly | why |
//! |---|---|---|
//! | NetworkPolicy | `podSelector`, `policyTypes`, `ingress`, `egress` (every rule, peer and port) | any extra rule or peer opens the app |
//! | PodDisruptionBudget | `selector` | a narrower selector leaves pods unprotected |
//! | Service | how many `ports` | an extra port exposes a container port nobody declared |
//! | Ingress | how many `rules` (and paths in each), `tls`, `defaultBackend` | an extra host, path or default backend reaches the app another way |
//! | HTTPRoute | how many `parentRefs`, `hostnames`, `rules` (and `backendRefs` in each) | an extra Gateway or hostname exposes the app; an extra backend takes part of its traffic |
//!
//! Everything else may grow: a mesh's injected containers and volumes, admission
//! defaults, annotations others add. An extra entry found here is drift like any other:
//! put back (by [`restore_patch`]: the fields as rendered, keeping the live form of the
//! entries the operator renders), counted, and reported with the manager that wrote it.

use serde_json::{Map, Value, json};

use super::drift::{self, Difference};

/// A path under the object root; `*` steps into every item of a list.
type Path = &'static [&'static str];

/// Fields whose value must equal the rendered one (normalised: absent, `[]` and `null`
/// alike; a port's protocol defaults to TCP).
fn exact_fields(kind: &str) -> &'static [Path] {
    match kind {
        "NetworkPolicy" => &[
            &["spec", "podSelector"],
            &["spec", "policyTypes"],
            &["spec", "ingress"],
            &["spec", "egress"],
        ],
        "PodDisruptionBudget" => &[&["spec", "selector"]],
        _ => &[],
    }
}

/// Lists that may not hold more entries than rendered (absent counts as empty), and
/// objects that may not be present when not rendered.
fn counted_fields(kind: &str) -> &'static [Path] {
    match kind {
        "Service" => &[&["spec", "ports"]],
        "Ingress" => &[
            &["spec", "rules"],
            &["spec", "rules", "*", "http", "paths"],
            &["spec", "tls"],
            &["spec", "defaultBackend"],
        ],
        "HTTPRoute" => &[
            &["spec", "parentRefs"],
            &["spec", "hostnames"],
            &["spec", "rules"],
            &["spec", "rules", "*", "backendRefs"],
        ],
        _ => &[],
    }
}

/// The values at `path` in `v`, with their concrete paths (`*` expanded over the items
/// of a list); a missing value is Null.
fn values_at<'a>(
    v: &'a Value,
    path: &[&str],
    at: Vec<String>,
    out: &mut Vec<(Vec<String>, &'a Value)>,
) {
    let Some((first, rest)) = path.split_first() else {
        out.push((at, v));
        return;
    };
    if *first == "*" {
        for (i, item) in v.as_array().into_iter().flatten().enumerate() {
            let mut next = at.clone();
            next.push(format!("[{i}]"));
            values_at(item, rest, next, out);
        }
        return;
    }
    let mut next = at;
    next.push((*first).to_string());
    values_at(v.get(*first).unwrap_or(&Value::Null), rest, next, out);
}

/// The value at concrete `steps` (`[i]` for list items).
fn at<'a>(v: &'a Value, steps: &[String]) -> &'a Value {
    steps.iter().fold(v, |v, s| {
        match s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(i) => i
                .parse::<usize>()
                .ok()
                .and_then(|i| v.get(i))
                .unwrap_or(&Value::Null),
            None => v.get(s).unwrap_or(&Value::Null),
        }
    })
}

/// How many entries a value holds: a list's length, 1 for anything else present.
fn count(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::Array(a) => a.len(),
        Value::Object(m) if m.is_empty() => 0,
        _ => 1,
    }
}

/// `v` without nulls and empty lists (what the API server stores of it), ports with
/// their default protocol.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let v = normalised(v);
                let empty = v.is_null() || v.as_array().is_some_and(Vec::is_empty);
                if !empty {
                    out.insert(k.clone(), v);
                }
            }
            // NetworkPolicyPort and ServicePort default their protocol.
            if out.contains_key("port") && !out.contains_key("protocol") {
                out.insert("protocol".into(), json!("TCP"));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalised).collect()),
        Value::Number(n) => n.as_f64().map_or(Value::Number(n.clone()), |f| json!(f)),
        other => other.clone(),
    }
}

/// The difference at `steps`, its writer looked up at the spec field that holds it: these
/// lists and selectors are atomic under server-side apply, owned whole by who wrote them.
fn owned_at_top(steps: &[String]) -> Difference {
    drift::difference(display(steps), &steps[..steps.len().min(2)])
}

fn display(steps: &[String]) -> String {
    let mut out = String::new();
    for s in steps {
        if !s.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(s);
    }
    out
}

/// The fields of `actual` that allow more than `desired` renders, for a child of `kind`.
pub fn extras(kind: &str, desired: &Value, actual: &Value) -> Vec<Difference> {
    let mut out: Vec<Difference> = Vec::new();
    for path in exact_fields(kind) {
        let mut found = Vec::new();
        values_at(desired, path, Vec::new(), &mut found);
        for (steps, want) in found {
            if normalised(want) != normalised(at(actual, &steps)) {
                out.push(owned_at_top(&steps));
            }
        }
    }
    for path in counted_fields(kind) {
        let mut found = Vec::new();
        // Expanded over the live object: a list item the operator does not render at all
        // counts against an empty rendered one.
        values_at(actual, path, Vec::new(), &mut found);
        for (steps, live) in found {
            if count(live) > count(at(desired, &steps)) {
                out.push(owned_at_top(&steps));
            }
        }
    }
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// The JSON merge patch that puts back every field of [`extras`]: each top-level field
/// of the spec it touches, as rendered, with the live form of the entries the operator
/// renders (a Service port keeps its allocated nodePort). None when nothing is extra.
pub fn restore_patch(kind: &str, desired: &Value, actual: &Value) -> Option<Value> {
    let extra = extras(kind, desired, actual);
    if extra.is_empty() {
        return None;
    }
    let mut spec = Map::new();
    for field in extra.iter().filter_map(|d| d.path.strip_prefix("spec.")) {
        let top = field.split(['.', '[']).next().unwrap_or(field).to_string();
        let want = &desired["spec"][&top];
        let live = &actual["spec"][&top];
        let value = match (want, live) {
            (Value::Array(w), Value::Array(l)) => Value::Array(
                w.iter()
                    .enumerate()
                    .map(|(i, item)| keep_live(kind, item, l, i))
                    .collect(),
            ),
            (Value::Null, _) => Value::Null,
            (w, l) => replacing(w, l),
        };
        spec.insert(top, value);
    }
    Some(json!({ "spec": spec }))
}

/// `want` as a merge patch over `live`: a key `live` has and `want` does not is sent
/// as null (a merge patch keeps what it does not mention).
fn replacing(want: &Value, live: &Value) -> Value {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => {
            let mut out = w.clone();
            for (k, lv) in l {
                match w.get(k) {
                    None => {
                        out.insert(k.clone(), Value::Null);
                    }
                    Some(wv) => {
                        out.insert(k.clone(), replacing(wv, lv));
                    }
                }
            }
            Value::Object(out)
        }
        (w, _) => w.clone(),
    }
}

/// The live form of a rendered list item (matched by name, else position), when the
/// kind's exact compare allows it; the rendered item otherwise.
fn keep_live(kind: &str, item: &Value, live: &[Value], i: usize) -> Value {
    if kind != "Service" {
        return item.clone();
    }
    let name = item.get("name");
    live.iter()
        .find(|l| name.is_some() && l.get("name") == name)
        .or_else(|| live.get(i).filter(|_| name.is_none()))
        .filter(|l| drift::differences(item, l).is_empty())
        .cloned()
        .unwrap_or_else(|| item.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(kind: &str, desired: &Value, actual: &Value) -> Vec<String> {
        extras(kind, desired, actual)
            .into_iter()
            .map(|d| d.path)
            .collect()
    }

    // A deny-all NetworkPolicy opened by an `ingress: [{}]` someone added is caught;
    // the server's defaults (protocol, an empty list dropped) are not.
    #[test]
    fn network_policy_rules_are_exact() {
        let deny = json!({"spec": {"podSelector": {"matchLabels": {"a": "b"}}, "policyTypes": ["Ingress"]}});
        let opened = json!({"spec": {"podSelector": {"matchLabels": {"a": "b"}}, "policyTypes": ["Ingress"], "ingress": [{}]}});
        assert_eq!(paths("NetworkPolicy", &deny, &opened), ["spec.ingress"]);
        assert!(paths("NetworkPolicy", &deny, &deny).is_empty());
        let rule = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"x": "y"}}}], "ports": [{"port": 8080}]}]}});
        let defaulted = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"x": "y"}}}], "ports": [{"port": 8080, "protocol": "TCP"}]}]}});
        assert!(paths("NetworkPolicy", &rule, &defaulted).is_empty());
        let mut wider = defaulted.clone();
        wider["spec"]["ingress"][0]["from"]
            .as_array_mut()
            .unwrap()
            .push(json!({"namespaceSelector": {}}));
        assert_eq!(paths("NetworkPolicy", &rule, &wider), ["spec.ingress"]);
        let mut egress = defaulted;
        egress["spec"]["egress"] = json!([{}]);
        assert_eq!(paths("NetworkPolicy", &rule, &egress), ["spec.egress"]);
    }

    // Extra Service ports, PDB selector terms, Ingress rules and HTTPRoute backends are
    // extra; defaulted fields inside the rendered entries are not.
    #[test]
    fn counted_lists_and_selectors() {
        let svc = json!({"spec": {"ports": [{"name": "http", "port": 80}]}});
        let live = json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                                             {"name": "debug", "port": 9999}]}});
        assert_eq!(paths("Service", &svc, &live), ["spec.ports"]);
        let patch = restore_patch("Service", &svc, &live).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}})
        );
        let pdb = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}});
        let narrowed = json!({"spec": {"selector": {"matchLabels": {"a": "b"},
            "matchExpressions": [{"key": "c", "operator": "Exists"}]}}});
        assert_eq!(
            paths("PodDisruptionBudget", &pdb, &narrowed),
            ["spec.selector"]
        );
        let route = json!({"spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}});
        let hijacked = json!({"spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}, {"name": "evil", "port": 80}],
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]}});
        assert_eq!(
            paths("HTTPRoute", &route, &hijacked),
            ["spec.rules[0].backendRefs"]
        );
        let ingress =
            json!({"spec": {"rules": [{"host": "a", "http": {"paths": [{"path": "/"}]}}]}});
        let more = json!({"spec": {"rules": [{"host": "a", "http": {"paths": [{"path": "/"}]}}],
            "defaultBackend": {"service": {"name": "x"}}}});
        assert_eq!(paths("Ingress", &ingress, &more), ["spec.defaultBackend"]);
        assert_eq!(
            restore_patch("Ingress", &ingress, &more).unwrap(),
            json!({"spec": {"defaultBackend": null}})
        );
        // A Deployment may grow (sidecars): nothing here.
        assert!(paths("Deployment", &json!({}), &json!({"spec": {"x": 1}})).is_empty());
    }
}
