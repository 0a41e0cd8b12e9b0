//! The CRD: the checked-in YAML is current, its CEL rules accept good specs and refuse
//! bad ones (evaluated with kube's CEL interpreter), every rule is bounded so the API
//! server's cost estimate accepts the CRD, and every list, string and map is bounded so
//! the API server refuses an oversized SafeApp.

use kube::core::cel::{Validator, WarningKind, compile_schema, estimate_rule_cost};
use safeapp::crd::safeapp_crd;
use serde_json::{Value, json};

fn schema() -> Value {
    schema_of(safeapp_crd())
}

fn job_schema() -> Value {
    schema_of(safeapp::crd::safejob_crd())
}

fn schema_of(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
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

// The checked-in CRDs (crds/ and the kustomize copies) are exactly what `safeapp crd`
// prints (run `make crds` to refresh).
#[test]
fn checked_in_crd_is_current() {
    for (file, crd) in [
        ("safeapp.yaml", safeapp_crd()),
        ("safejob.yaml", safeapp::crd::safejob_crd()),
    ] {
        let generated = safeapp::crd::crd_yaml_of(&crd).expect("yaml");
        for dir in ["crds", "config/crd"] {
            let path = format!("{}/{dir}/{file}", env!("CARGO_MANIFEST_DIR"));
            let checked_in = std::fs::read_to_string(&path).expect("checked in");
            assert!(generated == checked_in, "{path} is stale: run `make crds`");
        }
    }
}

// SafeJob: namespaced, short name sjob, a status subresource (no scale), and the
// columns schedule, last run, last success, status.
#[test]
fn safejob_crd_shape() {
    let crd = safeapp::crd::safejob_crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("safejobs.safeapp.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "SafeJob");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sjob".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some());
    assert!(sub.scale.is_none());
    let cols: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Schedule", ".spec.schedule"),
            ("Last Run", ".status.lastScheduleTime"),
            ("Last Success", ".status.lastSuccessfulTime"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Status", ".status.conditions[?(@.type==\"Ready\")].reason"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    // The pod fields are SafeApp's, property for property (one Rust type).
    let app = schema();
    let job = job_schema();
    for field in [
        "image",
        "command",
        "args",
        "env",
        "envFrom",
        "resources",
        "securityProfile",
        "volumes",
        "volumeMounts",
        "initContainers",
        "imagePullSecrets",
        "labels",
        "annotations",
        "owner",
        "tier",
        "environment",
        "track",
        "tenant",
        "shard",
        "serviceAccountName",
        "priorityClassName",
        "runAsUser",
        "runAsGroup",
    ] {
        assert_eq!(
            app["properties"]["spec"]["properties"][field],
            job["properties"]["spec"]["properties"][field],
            "{field}"
        );
    }
    assert_eq!(
        job["properties"]["spec"]["required"],
        json!(["image"]),
        "only the image is required"
    );
}

// Names, short name, subresources and printer columns are the contract's.
#[test]
fn crd_shape() {
    let crd = safeapp_crd();
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
    // Ready is the Ready condition (`kubectl wait --for=condition=Ready` waits for the
    // same), Status its reason; the pod count is in -o wide.
    assert_eq!(
        cols,
        [
            "Image",
            "Desired",
            "Ready",
            "Status",
            "Age",
            "Ready Replicas"
        ]
    );
    let ready = v
        .additional_printer_columns
        .iter()
        .flatten()
        .find(|c| c.name == "Ready")
        .expect("Ready column");
    assert_eq!(
        ready.json_path,
        ".status.conditions[?(@.type==\"Ready\")].status"
    );
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

// Access rules name exactly one target; cidr never with a namespace.
#[test]
fn access_rule_shapes() {
    for good in [
        json!({"app": "api"}),
        json!({"app": "api", "namespace": "data"}),
        json!({"namespace": "monitoring"}),
        json!({"cidr": "10.0.0.0/8", "ports": [{"port": 443}]}),
    ] {
        let errs = cel_errors(with(json!({"accessPolicy": {"outbound": [good.clone()]}})));
        assert!(errs.is_empty(), "{good}: {errs:?}");
    }
    for bad in [
        json!({}),
        json!({"app": "api", "cidr": "10.0.0.0/8"}),
        json!({"ports": [{"port": 80}]}),
    ] {
        assert_refused(
            with(json!({"accessPolicy": {"inbound": [bad]}})),
            "exactly one of",
        );
    }
    assert_refused(
        with(json!({"accessPolicy": {"outbound": [{"cidr": "10.0.0.0/8", "namespace": "x"}]}})),
        "cidr cannot be combined",
    );
}

// expose: exactly one of gateway or ingress class; TLS by Secret only with an Ingress.
#[test]
fn expose_one_of() {
    let hosts = json!(["web.example.com"]);
    assert!(
        cel_errors(with(
            json!({"expose": {"hosts": hosts, "gateway": {"name": "g"}}})
        ))
        .is_empty()
    );
    assert!(cel_errors(with(json!({"expose": {"hosts": hosts, "ingressClassName": "nginx", "tls": {"secretName": "s"}}}))).is_empty());
    assert_refused(
        with(json!({"expose": {"hosts": hosts}})),
        "exactly one of gateway",
    );
    assert_refused(
        with(
            json!({"expose": {"hosts": hosts, "gateway": {"name": "g"}, "ingressClassName": "x"}}),
        ),
        "exactly one of gateway",
    );
    assert_refused(
        with(
            json!({"expose": {"hosts": hosts, "gateway": {"name": "g"}, "tls": {"secretName": "s"}}}),
        ),
        "spec.expose.tls",
    );
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
    rules_are_bounded(&schema(), 9);
    // SafeJob: its own rules (schedule, zone, parallelism, one-off immutability with
    // `self == oldSelf` over the whole spec) and the shared image rules.
    rules_are_bounded(&job_schema(), 8);
}

fn rules_are_bounded(schema: &Value, at_least: usize) {
    let mut nodes = Vec::new();
    walk(schema, String::new(), &mut nodes);
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
    assert!(
        rules >= at_least,
        "expected the contract's rules, found {rules}"
    );
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

/// The schema node at `path` (the walk's notation: `.spec.env[].value`, `{}` for map values).
fn node_at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut nodes = Vec::new();
    walk(schema, String::new(), &mut nodes);
    nodes
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no schema node at {path}"))
        .1
}

/// The first node, in walk order, that can hold unbounded input, and what it lacks.
fn first_unbounded(schema: &Value) -> Option<(String, &'static str)> {
    let mut nodes = Vec::new();
    walk(schema, String::new(), &mut nodes);
    nodes.into_iter().find_map(|(path, node)| {
        let lacks = |key: &str| node.get(key).is_none();
        let missing = match node.get("type").and_then(Value::as_str) {
            Some("array") if lacks("maxItems") => Some("maxItems"),
            Some("string") if lacks("maxLength") && lacks("enum") => Some("maxLength"),
            Some("object") if !lacks("additionalProperties") && lacks("maxProperties") => {
                Some("maxProperties")
            }
            None if node["x-kubernetes-int-or-string"] == true && lacks("maxLength") => {
                Some("maxLength (int-or-string)")
            }
            _ => None,
        };
        missing.map(|m| (path, m))
    })
}

// Bounded input: every list has maxItems, every non-enum string (and int-or-string) has
// maxLength, every map has maxProperties, including inside the embedded core types.
#[test]
fn every_list_string_and_map_is_bounded() {
    let schema = schema();
    assert_eq!(first_unbounded(&schema), None);
    // The SafeJob schema (the shared pod fields and its own) is bounded the same way.
    assert_eq!(first_unbounded(&job_schema()), None);
    // The walk really covers the embedded core types, not just our own fields.
    let mut nodes = Vec::new();
    walk(&schema, String::new(), &mut nodes);
    assert!(nodes.len() > 500, "walked only {} nodes", nodes.len());
    // And the check itself notices a gap.
    let mut broken = schema.clone();
    broken["properties"]["spec"]["properties"]["volumes"]["items"]["properties"]["nfs"]
        ["properties"]["server"]
        .as_object_mut()
        .expect("nfs.server")
        .remove("maxLength");
    assert_eq!(
        first_unbounded(&broken),
        Some((".spec.volumes[].nfs.server".to_string(), "maxLength"))
    );
}

// Structural schema: the bounding pass adds no `type` and nothing inside anyOf/allOf/
// oneOf/not (an int-or-string anyOf must stay exactly [{type: integer}, {type: string}]
// or the API server refuses the CRD); int-or-string nodes carry maxLength on themselves.
#[test]
fn bounding_keeps_the_schema_structural() {
    let schema = schema();
    let mut nodes = Vec::new();
    walk(&schema, String::new(), &mut nodes);
    let mut int_or_string = 0;
    for (path, node) in &nodes {
        for junctor in ["anyOf", "allOf", "oneOf", "not"] {
            assert!(node.get(junctor).is_none(), "{path}: unexpected {junctor}");
        }
        if node["x-kubernetes-int-or-string"] == true {
            int_or_string += 1;
            assert!(
                node.get("type").is_none(),
                "{path}: int-or-string with a type"
            );
            assert_eq!(node["maxLength"], 64, "{path}");
        }
    }
    assert!(
        int_or_string >= 10,
        "found {int_or_string} int-or-string nodes"
    );
    assert_eq!(node_at(&schema, ".spec.rollout.maxSurge")["maxLength"], 64);
}

// The bounds are deliberate numbers, not accidents of the walk: a change to any of them
// must show up here (kube's CEL Validator does not check maxItems/maxLength, so these
// pin the schema values the API server enforces).
#[test]
fn bounds_of_representative_fields() {
    let schema = schema();
    let bound = |path: &str, key: &str| node_at(&schema, path)[key].clone();
    // Our own, kept as declared on the Rust types.
    assert_eq!(bound(".spec.ports", "maxItems"), 32);
    assert_eq!(bound(".spec.ports[].name", "maxLength"), 15);
    assert_eq!(bound(".spec.image", "maxLength"), 512);
    assert_eq!(bound(".spec.tier", "maxLength"), 63);
    // Payload-bearing lists and strings.
    assert_eq!(bound(".spec.env", "maxItems"), 64);
    assert_eq!(bound(".spec.env[].value", "maxLength"), 32768);
    assert_eq!(bound(".spec.env[].name", "maxLength"), 4096);
    assert_eq!(bound(".spec.command[]", "maxLength"), 32768);
    assert_eq!(bound(".spec.args", "maxItems"), 64);
    assert_eq!(
        bound(".spec.probes.readiness.exec.command[]", "maxLength"),
        32768
    );
    assert_eq!(bound(".spec.initContainers", "maxItems"), 8);
    assert_eq!(bound(".spec.initContainers[].env", "maxItems"), 64);
    assert_eq!(bound(".spec.initContainers[].name", "maxLength"), 63);
    // Maps: count and value length.
    assert_eq!(bound(".spec.annotations", "maxProperties"), 64);
    assert_eq!(bound(".spec.annotations{}", "maxLength"), 32768);
    assert_eq!(bound(".spec.labels", "maxProperties"), 64);
    assert_eq!(bound(".spec.labels{}", "maxLength"), 63);
    assert_eq!(bound(".spec.resources.limits", "maxProperties"), 64);
    // Names where Kubernetes has a limit.
    assert_eq!(bound(".spec.serviceAccountName", "maxLength"), 253);
    assert_eq!(
        bound(".spec.env[].valueFrom.secretKeyRef.name", "maxLength"),
        253
    );
    assert_eq!(bound(".spec.volumes[].name", "maxLength"), 63);
    // Status: metav1.Condition's own bounds, and short lists.
    assert_eq!(bound(".status.conditions", "maxItems"), 8);
    assert_eq!(bound(".status.conditions[].type", "maxLength"), 316);
    assert_eq!(bound(".status.conditions[].reason", "maxLength"), 1024);
    assert_eq!(bound(".status.conditions[].message", "maxLength"), 32768);
    assert_eq!(bound(".status.managedObjects", "maxItems"), 16);
    assert_eq!(bound(".status.lastDriftCorrection.fields", "maxItems"), 128);
    // Enums are bounded by their values and left alone.
    assert!(
        node_at(&schema, ".spec.imagePullPolicy")
            .get("maxLength")
            .is_none()
    );
}

/// Largest JSON encoding of a value the schema `node` admits, in bytes (an upper bound:
/// every string at its maxLength, every list at its maxItems, every property present).
/// None when something under `node` is unbounded.
fn worst_case_bytes(node: &Value) -> Option<u64> {
    const NUMBER: u64 = 20; // i64::MIN, or a float
    let n = |key: &str| node.get(key).and_then(Value::as_u64);
    if node["x-kubernetes-int-or-string"] == true {
        return Some(n("maxLength")? * 6 + 2); // every character \u-escaped
    }
    match node.get("type").and_then(Value::as_str) {
        Some("string") => match node.get("enum").and_then(Value::as_array) {
            Some(values) => values.iter().map(|v| v.to_string().len() as u64).max(),
            None => Some(n("maxLength")? * 6 + 2),
        },
        Some("integer" | "number") => Some(NUMBER),
        Some("boolean") => Some(5),
        Some("array") => {
            let item = worst_case_bytes(&node["items"])?;
            Some(2 + n("maxItems")? * (item + 1))
        }
        Some("object") => {
            if node.get("additionalProperties").is_some() {
                return None; // keys have no bound (no propertyNames in Kubernetes)
            }
            let mut total = 2;
            for (key, child) in node["properties"].as_object().into_iter().flatten() {
                total += key.len() as u64 + 4 + worst_case_bytes(child)?;
            }
            Some(total)
        }
        _ => None,
    }
}

// A status write can never exceed the API server's 3 MiB request limit: the status at
// its maximum (every string \u-escaped at its maxLength) is well under it.
#[test]
fn status_worst_case_fits_in_a_request() {
    let schema = schema();
    let status = node_at(&schema, ".status");
    let bytes = worst_case_bytes(status).expect("every part of the status is bounded");
    let limit = 3 * 1024 * 1024;
    assert!(
        bytes < limit,
        "status can reach {bytes} bytes, over the {limit}-byte request limit"
    );
}
