//! Traffic, pure: each access-rule kind renders the NetworkPolicy rule it should, the
//! policy's mode and knobs do what the README says, `spec.expose` renders an HTTPRoute
//! or an Ingress, and bad rules are refused with their paths.

mod common;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use safeapp::policy::{NetworkPolicyMode, Policy};
use safeapp::render::{self, Resources};
use safeapp::validate::{FieldError, validate};
use serde_json::{Value, json};

const BASE: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: web, namespace: shop, uid: 7d1c5a2e-0000-4000-8000-000000000001}
spec:
  image: registry.example.com/web:1.0.0
  ports: [{name: http, port: 8080}, {name: metrics, port: 9090}]
  healthCheck: {path: /health}
"#;

fn rendered(extra: &str, policy: &Policy) -> Resources {
    let v = validate(&common::app_with(BASE, extra), policy).expect("valid");
    render::render(&v, policy)
}

fn problems(extra: &str) -> Vec<FieldError> {
    validate(&common::app_with(BASE, extra), &Policy::default()).expect_err("invalid")
}

fn assert_problem(extra: &str, path: &str) {
    let errs = problems(extra);
    assert!(
        errs.iter().any(|e| e.path == path),
        "expected a problem at {path}, got {errs:#?}"
    );
}

fn np(extra: &str, policy: &Policy) -> Value {
    let n: NetworkPolicy = rendered(extra, policy)
        .network_policy
        .expect("a NetworkPolicy");
    serde_json::to_value(n).unwrap()
}

fn with_mode(mode: NetworkPolicyMode) -> Policy {
    let mut p = Policy::default();
    p.network_policy.mode = mode;
    p
}

// Without accessPolicy the default (mode ingress) admits nobody: policyTypes Ingress and
// no ingress rule; the pods are selected by the app's own selector labels.
#[test]
fn default_denies_ingress() {
    let n = np("", &Policy::default());
    assert_eq!(n["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(n["spec"]["ingress"], Value::Null);
    assert_eq!(
        n["spec"]["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/instance": "web", "app.kubernetes.io/name": "web"})
    );
    assert_eq!(n["metadata"]["ownerReferences"][0]["kind"], "SafeApp");
}

// Each inbound rule kind selects the right peer, to the app's declared ports (all of
// them, or the rule's own, by name or number).
#[test]
fn inbound_rule_kinds() {
    let n = np(
        "accessPolicy: {inbound: [{app: front}, {app: gw, namespace: edge, ports: [{port: http}]}, {namespace: monitoring, ports: [{port: 9090}]}]}",
        &Policy::default(),
    );
    let rules = n["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(
        rules[0]["from"],
        json!([{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "front"}}}])
    );
    assert_eq!(
        rules[0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}])
    );
    assert_eq!(
        rules[1]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gw"}}}])
    );
    assert_eq!(
        rules[1]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        rules[2]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
    assert_eq!(
        rules[2]["ports"],
        json!([{"port": 9090, "protocol": "TCP"}])
    );
}

// An app with no ports accepts nothing, whatever its rules say (a rule without ports
// would open every port).
#[test]
fn no_ports_no_ingress() {
    let n = np(
        "{ports: null, healthCheck: null, probes: {readiness: {exec: {command: [ok]}}}, accessPolicy: {inbound: [{app: front}]}}",
        &Policy::default(),
    );
    assert_eq!(n["spec"]["ingress"], Value::Null);
}

// allowSameNamespace admits every pod of the namespace; exposedFrom admits the
// ingress controller's namespace, only for exposed apps.
#[test]
fn policy_knobs() {
    let mut p = Policy::default();
    p.network_policy.allow_same_namespace = true;
    p.network_policy.exposed_from = vec!["ingress-nginx".into()];
    let plain = np("", &p);
    assert_eq!(
        plain["spec"]["ingress"][0]["from"],
        json!([{"podSelector": {}}])
    );
    assert_eq!(plain["spec"]["ingress"].as_array().unwrap().len(), 1);
    let exposed = np(
        "expose: {hosts: [web.example.com], ingressClassName: nginx}",
        &p,
    );
    assert_eq!(
        exposed["spec"]["ingress"][1]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}])
    );
}

// Mode off: no NetworkPolicy (the controller prunes one it made).
#[test]
fn mode_off() {
    let r = rendered(
        "accessPolicy: {inbound: [{app: front}]}",
        &with_mode(NetworkPolicyMode::Off),
    );
    assert!(r.network_policy.is_none());
}

// ingressAndEgress: DNS first (always), then each outbound rule kind with its ports
// (none: any port).
#[test]
fn egress_rule_kinds() {
    let n = np(
        "accessPolicy: {outbound: [{app: api}, {app: db, namespace: data, ports: [{port: 5432}]}, {namespace: logging}, {cidr: 203.0.113.0/24, ports: [{port: 443}, {port: 53, protocol: UDP}]}]}",
        &with_mode(NetworkPolicyMode::IngressAndEgress),
    );
    assert_eq!(n["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = n["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 5);
    assert_eq!(
        egress[0],
        json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                       "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
               "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]})
    );
    assert_eq!(
        egress[1],
        json!({"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}]})
    );
    assert_eq!(
        egress[2]["ports"],
        json!([{"port": 5432, "protocol": "TCP"}])
    );
    assert_eq!(
        egress[3]["to"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "logging"}}}])
    );
    assert_eq!(
        egress[4]["to"],
        json!([{"ipBlock": {"cidr": "203.0.113.0/24"}}])
    );
    assert_eq!(
        egress[4]["ports"],
        json!([{"port": 443, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
    );
    // Under mode ingress, outbound rules render nothing (egress stays open).
    let open = np("accessPolicy: {outbound: [{app: api}]}", &Policy::default());
    assert_eq!(open["spec"]["egress"], Value::Null);
}

// expose with a gateway renders an HTTPRoute to the Service port; with an ingress
// class, an Ingress with TLS by Secret name; never both.
#[test]
fn expose_renders_a_route_or_an_ingress() {
    let r = rendered(
        "{ports: [{name: http, port: 8080, servicePort: 80}], expose: {hosts: [shop.example.com, '*.shop.example.com'], paths: [/api, /v2], gateway: {name: public, namespace: gw, sectionName: https}}}",
        &Policy::default(),
    );
    assert!(r.ingress.is_none());
    let route = serde_json::to_value(r.http_route.expect("route")).unwrap();
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gw", "sectionName": "https"}])
    );
    assert_eq!(
        route["spec"]["hostnames"],
        json!(["shop.example.com", "*.shop.example.com"])
    );
    assert_eq!(
        route["spec"]["rules"],
        json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}, {"path": {"type": "PathPrefix", "value": "/v2"}}],
                "backendRefs": [{"name": "web", "port": 80}]}])
    );

    let r = rendered(
        "expose: {hosts: [shop.example.com], ingressClassName: nginx, port: metrics, tls: {secretName: shop-tls}}",
        &Policy::default(),
    );
    assert!(r.http_route.is_none());
    let ing = serde_json::to_value(r.ingress.expect("ingress")).unwrap();
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ing["spec"]["rules"],
        json!([{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 9090}}}}]}}])
    );
    assert_eq!(
        ing["spec"]["tls"],
        json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])
    );
    let none = rendered("", &Policy::default());
    assert!(none.http_route.is_none() && none.ingress.is_none());
}

// Bad rules and bad exposure are refused with their field paths.
#[test]
fn bad_traffic_settings_are_refused() {
    let cases = [
        (
            "accessPolicy: {inbound: [{cidr: 10.0.0.0/8}]}",
            "spec.accessPolicy.inbound[0].cidr",
        ),
        (
            "accessPolicy: {inbound: [{}]}",
            "spec.accessPolicy.inbound[0]",
        ),
        (
            "accessPolicy: {inbound: [{app: a, cidr: 10.0.0.0/8}]}",
            "spec.accessPolicy.inbound[0]",
        ),
        (
            "accessPolicy: {inbound: [{app: Not_A_Name}]}",
            "spec.accessPolicy.inbound[0].app",
        ),
        (
            "accessPolicy: {inbound: [{app: a, ports: [{port: grpc}]}]}",
            "spec.accessPolicy.inbound[0].ports[0].port",
        ),
        (
            "accessPolicy: {inbound: [{app: a, ports: [{port: 7}]}]}",
            "spec.accessPolicy.inbound[0].ports[0].port",
        ),
        (
            "accessPolicy: {outbound: [{cidr: 10.0.0.1/8}]}",
            "spec.accessPolicy.outbound[0].cidr",
        ),
        (
            "accessPolicy: {outbound: [{cidr: banana}]}",
            "spec.accessPolicy.outbound[0].cidr",
        ),
        (
            "accessPolicy: {outbound: [{cidr: 10.0.0.0/8, namespace: x}]}",
            "spec.accessPolicy.outbound[0]",
        ),
        (
            "accessPolicy: {outbound: [{app: a, ports: [{port: 70000}]}]}",
            "spec.accessPolicy.outbound[0].ports[0].port",
        ),
        ("expose: {hosts: [a.example.com]}", "spec.expose"),
        (
            "expose: {hosts: [a.example.com], ingressClassName: x, gateway: {name: g}}",
            "spec.expose",
        ),
        (
            "expose: {hosts: [a.example.com], gateway: {name: g}, tls: {secretName: s}}",
            "spec.expose.tls",
        ),
        (
            "expose: {hosts: ['not a host'], ingressClassName: x}",
            "spec.expose.hosts[0]",
        ),
        (
            "expose: {hosts: ['*.com'], ingressClassName: x}",
            "spec.expose.hosts[0]",
        ),
        (
            "expose: {hosts: [a.example.com, a.example.com], ingressClassName: x}",
            "spec.expose.hosts[1]",
        ),
        (
            "expose: {hosts: [a.example.com], paths: [api], ingressClassName: x}",
            "spec.expose.paths[0]",
        ),
        (
            "expose: {hosts: [a.example.com], port: grpc, ingressClassName: x}",
            "spec.expose.port",
        ),
        (
            "{service: {enabled: false}, expose: {hosts: [a.example.com], ingressClassName: x}}",
            "spec.expose",
        ),
    ];
    for (extra, path) in cases {
        assert_problem(extra, path);
    }
}

// What NetworkPolicy peers select is what every SafeApp pod carries: the label the
// rules use is among the rendered pod labels.
#[test]
fn rules_select_labels_pods_carry() {
    let r = rendered("", &Policy::default());
    let pod_labels = r
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(
        pod_labels.get(render::APP_NAME_LABEL).map(String::as_str),
        Some("web")
    );
}
