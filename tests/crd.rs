//! The CRD: the checked-in YAML is current, its CEL rules accept good specs and refuse
//! bad ones (evaluated with kube's CEL interpreter), and every rule is bounded so the
//! API server's cost estimate accepts the CRD.

use kube::CustomResourceExt;
use kube::core::cel::{Validator, WarningKind, compile_schema, estimate_rule_cost};
use safeapp::api::SafeApp;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = SafeApp::crd();
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json")
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "safeapp.dev/v1alpha1",
        "kind": "SafeApp",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    })
}

fn base() -> Value {
    json!({
        "image": "registry.example.com/web:1.0.0",
        "ports": [{"name": "http", "port": 8080}],
        "healthCheck": {"path": "/health"},
    })
}

fn with(patch: Value) -> Value {
    let mut spec = base();
    for (k, v) in patch.as_object().expect("object") {
        spec[k] = v.clone();
    }
    spec
}

/// The CEL messages the API server would return for this spec.
fn cel_errors(spec: Value) -> Vec<String> {
    match Validator::new().validate(&schema(), &object(spec), None) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

fn assert_refused(spec: Value, needle: &str) {
    let errs = cel_errors(spec);
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "expected a CEL error containing {needle:?}, got {errs:?}"
    );
}

// The checked-in CRD is exactly what `safeapp crd` prints (run `make crds` to refresh).
#[test]
fn checked_in_crd_is_current() {
    let generated = safeapp::crd::crd_yaml().expect("yaml");
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/safeapp.yaml"))
            .expect("crds/safeapp.yaml exists");
    assert!(
        generated == checked_in,
        "crds/safeapp.yaml is stale: run `make crds`"
    );
}

// Names, short name, subresources and printer columns are the contract's.
#[test]
fn crd_shape() {
    let crd = SafeApp::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("safeapps.safeapp.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sapp".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().expect("scale");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let cols: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["Image", "Desired", "Ready", "Status", "Age"]);
}

// The minimal object of the contract passes every rule.
#[test]
fn minimal_object_passes() {
    assert_eq!(cel_errors(base()), Vec::<String>::new());
    assert_eq!(
        cel_errors(
            json!({"image": "r.example.com/w@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "probes": {"readiness": {"exec": {"command": ["true"]}}}})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        cel_errors(with(json!({"image": "registry:5000/team/web:v2"}))),
        Vec::<String>::new()
    );
}

// An image with no tag, or tagged latest, is refused at apply time.
#[test]
fn image_must_be_pinned() {
    assert_refused(
        with(json!({"image": "registry.example.com/web"})),
        "spec.image: must be pinned",
    );
    assert_refused(
        with(json!({"image": "registry:5000/web"})),
        "spec.image: must be pinned",
    );
    assert_refused(
        with(json!({"image": "web:latest"})),
        "spec.image: the tag 'latest'",
    );
}

// maxSurge 0 with maxUnavailable 0 (explicit or default) can never roll out.
#[test]
fn rollout_cannot_be_all_zero() {
    assert_refused(with(json!({"rollout": {"maxSurge": 0}})), "spec.rollout");
    assert_refused(
        with(json!({"rollout": {"maxSurge": "0%", "maxUnavailable": 0}})),
        "spec.rollout",
    );
    assert!(
        cel_errors(with(
            json!({"rollout": {"maxSurge": 0, "maxUnavailable": 1}})
        ))
        .is_empty()
    );
    assert!(cel_errors(with(json!({"rollout": {"maxSurge": "50%"}}))).is_empty());
}

// minReplicas above maxReplicas is refused.
#[test]
fn autoscaling_min_not_above_max() {
    assert_refused(
        with(json!({"autoscaling": {"minReplicas": 5, "maxReplicas": 3}})),
        "spec.autoscaling.minReplicas",
    );
    assert!(
        cel_errors(with(
            json!({"autoscaling": {"minReplicas": 3, "maxReplicas": 3}})
        ))
        .is_empty()
    );
}

// The grace period must be greater than the preStop sleep.
#[test]
fn grace_above_sleep() {
    assert_refused(
        with(json!({"shutdown": {"preStopSleepSeconds": 30, "terminationGracePeriodSeconds": 30}})),
        "spec.shutdown.terminationGracePeriodSeconds",
    );
    assert!(
        cel_errors(with(
            json!({"shutdown": {"preStopSleepSeconds": 10, "terminationGracePeriodSeconds": 11}})
        ))
        .is_empty()
    );
}

// A PDB takes minAvailable or maxUnavailable, not both.
#[test]
fn pdb_one_of() {
    assert_refused(
        with(json!({"disruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}})),
        "spec.disruptionBudget",
    );
}

// Duplicate port names and numbers are refused.
#[test]
fn ports_unique() {
    assert_refused(
        with(json!({"ports": [{"name": "http", "port": 8080}, {"name": "http", "port": 8081}]})),
        "port names must be unique",
    );
    // The same number over TCP and UDP is two different ports.
    assert!(cel_errors(with(json!({"ports": [{"name": "dns", "port": 53}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}))).is_empty());
}

// An app with no ports and no probes cannot be told ready; a Service needs ports.
#[test]
fn readiness_and_service_need_ports() {
    assert_refused(json!({"image": "web:1.0.0"}), "spec.probes");
    assert_refused(
        json!({"image": "web:1.0.0", "probes": {"readiness": {"exec": {"command": ["true"]}}}, "service": {"enabled": true}}),
        "spec.service.enabled",
    );
}

fn walk<'a>(node: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), node));
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(v, format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        walk(items, format!("{path}[]"), out);
    }
    if let Some(ap) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(ap, format!("{path}{{}}"), out);
    }
}

// SAFEAPP.md §7: a rule over a list needs maxItems, and every string it reads needs
// maxLength, or the API server refuses the whole CRD ("estimated rule cost exceeds budget").
#[test]
fn every_rule_is_bounded() {
    let schema = schema();
    let mut nodes = Vec::new();
    walk(&schema, String::new(), &mut nodes);
    let mut rules = 0;
    for (path, node) in nodes {
        let Some(list) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let compiled = compile_schema(node);
        assert!(!compiled.has_errors(), "{path}: a rule does not compile");
        for rule in list {
            rules += 1;
            let text = rule["rule"].as_str().expect("rule text");
            let costly: Vec<_> = estimate_rule_cost(text, &compiled)
                .into_iter()
                .filter(|w| w.kind == WarningKind::CostExceeded)
                .collect();
            assert!(costly.is_empty(), "{path}: {text}: {costly:?}");
            if node["type"] == "array" {
                assert!(
                    node.get("maxItems").is_some(),
                    "{path}: list with a rule needs maxItems"
                );
                if let Some(props) = node["items"]["properties"].as_object() {
                    for (k, v) in props {
                        if v["type"] == "string"
                            && text.contains(&format!(".{k}"))
                            && v.get("enum").is_none()
                        {
                            assert!(
                                v.get("maxLength").is_some(),
                                "{path}[].{k}: string read by a rule needs maxLength"
                            );
                        }
                    }
                }
            }
            if node["type"] == "string" {
                assert!(
                    node.get("maxLength").is_some(),
                    "{path}: string with a rule needs maxLength"
                );
            }
        }
    }
    assert!(rules >= 9, "expected the contract's rules, found {rules}");
}

// The contract's CRD facts: list-map ports (per-port ownership under server-side apply),
// and no `additionalProperties: false`, which the API server would refuse.
#[test]
fn ports_are_a_list_map_and_schema_is_structural() {
    let schema = schema();
    let ports = &schema["properties"]["spec"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-list-type"], "map");
    assert_eq!(ports["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(ports["items"]["properties"]["name"]["maxLength"], 15);
    let text = serde_json::to_string(&schema).expect("json");
    assert!(!text.contains("\"additionalProperties\":false"));
    assert!(!text.contains("$ref"));
}
