//! The rules the operator renders are exactly the rules in force: an entry another
//! manager adds to a NetworkPolicy, a PDB selector, a Service's ports, an Ingress or an
//! HTTPRoute — where it would let more through — is drift, put back and reported with
//! its writer; entries that legitimately grow (a sidecar) are not. Against the in-memory
//! API, which keeps server-side apply's ownership (an apply owns only what it sends).

mod fake;

use fake::collection;
use fake::harness::{Env, NS, deployments, env, env_with, pdbs, services, set_spec, web_spec};
use safeapp::policy::Policy;
use serde_json::{Value, json};

fn network_policies() -> String {
    collection("networking.k8s.io/v1", NS, "networkpolicies")
}
fn ingresses() -> String {
    collection("networking.k8s.io/v1", NS, "ingresses")
}
fn http_routes() -> String {
    collection("gateway.networking.k8s.io/v1", NS, "httproutes")
}

/// Another manager changes `coll/web`, owning `fields` (a fieldsV1 tree).
fn someone_edits(env: &Env, coll: &str, manager: &str, fields: Value, f: impl FnOnce(&mut Value)) {
    env.fake.edit(coll, "web", manager, fields, f);
}

/// Reconciles and checks the drift was reported: status, Event, the writer's name.
async fn repaired(env: &Env, kind: &str, field: &str, manager: &str) {
    env.fake.clear_calls();
    env.reconcile("web").await.expect("reconcile");
    let last = env.app("web")["status"]["lastDriftCorrection"].clone();
    assert_eq!(last["kind"], kind, "{last}");
    assert!(
        last["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().starts_with(field)),
        "{last}"
    );
    assert_eq!(last["manager"], manager, "{last}");
    assert!(env.event_posts() >= 1, "a DriftCorrected Event");
    // Put back for good: the next reconcile writes nothing.
    env.fake.clear_calls();
    env.reconcile("web").await.expect("steady");
    assert_eq!(env.child_writes(), Vec::<String>::new());
}

// A deny-all NetworkPolicy (no inbound rules) opened with `ingress: [{}]` by another
// manager is closed again, and the opener is named (SAFEAPP.md §7c).
#[tokio::test]
async fn opened_deny_all_network_policy_is_closed() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    let np = env.fake.get(&network_policies(), "web").expect("np");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(np["spec"].get("ingress").is_none(), "deny all: {np}");
    someone_edits(
        &env,
        &network_policies(),
        "kubectl-patch",
        json!({"f:spec": {"f:ingress": {}}}),
        |n| n["spec"]["ingress"] = json!([{}]),
    );
    // The apply alone would keep it: the operator never owned spec.ingress.
    repaired(&env, "NetworkPolicy", "spec.ingress", "kubectl-patch").await;
    let np = env.fake.get(&network_policies(), "web").unwrap();
    assert!(np["spec"].get("ingress").is_none(), "closed again: {np}");
}

// An extra rule beside the rendered ones, an extra peer in a rendered rule, and an
// egress rule on an ingress-only policy are all put back to exactly the rendered rules.
#[tokio::test]
async fn extra_rules_and_peers_are_removed() {
    let env = env();
    let mut spec = web_spec();
    spec["accessPolicy"] = json!({"inbound": [{"app": "front"}]});
    env.create("web", spec);
    env.reconcile("web").await.expect("first");
    let rendered = env.fake.get(&network_policies(), "web").unwrap()["spec"].clone();
    assert_eq!(rendered["ingress"].as_array().unwrap().len(), 1);

    someone_edits(
        &env,
        &network_policies(),
        "kubectl-edit",
        json!({"f:spec": {"f:ingress": {}}}),
        |n| n["spec"]["ingress"].as_array_mut().unwrap().push(json!({})),
    );
    repaired(&env, "NetworkPolicy", "spec.ingress", "kubectl-edit").await;
    assert_eq!(
        env.fake.get(&network_policies(), "web").unwrap()["spec"],
        rendered
    );

    someone_edits(
        &env,
        &network_policies(),
        "helm",
        json!({"f:spec": {"f:ingress": {}}}),
        |n| {
            n["spec"]["ingress"][0]["from"]
                .as_array_mut()
                .unwrap()
                .push(json!({"namespaceSelector": {}}))
        },
    );
    repaired(&env, "NetworkPolicy", "spec.ingress", "helm").await;
    assert_eq!(
        env.fake.get(&network_policies(), "web").unwrap()["spec"],
        rendered
    );

    someone_edits(
        &env,
        &network_policies(),
        "kubectl-patch",
        json!({"f:spec": {"f:egress": {}}}),
        |n| n["spec"]["egress"] = json!([{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]),
    );
    repaired(&env, "NetworkPolicy", "spec.egress", "kubectl-patch").await;
    assert_eq!(
        env.fake.get(&network_policies(), "web").unwrap()["spec"],
        rendered
    );
}

// A port added to the Service and a term added to the PDB's selector are put back; the
// rendered port keeps what the server filled in.
#[tokio::test]
async fn service_ports_and_pdb_selector_are_exact() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    let ports = env.fake.get(&services(), "web").unwrap()["spec"]["ports"].clone();
    someone_edits(
        &env,
        &services(),
        "kubectl-edit",
        json!({"f:spec": {"f:ports": {"k:{\"port\":9999,\"protocol\":\"TCP\"}": {}}}}),
        |s| {
            s["spec"]["ports"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "debug", "port": 9999, "targetPort": 9999, "protocol": "TCP"}))
        },
    );
    repaired(&env, "Service", "spec.ports", "kubectl-edit").await;
    assert_eq!(
        env.fake.get(&services(), "web").unwrap()["spec"]["ports"],
        ports
    );

    let selector = env.fake.get(&pdbs(), "web").unwrap()["spec"]["selector"].clone();
    someone_edits(
        &env,
        &pdbs(),
        "kubectl-edit",
        json!({"f:spec": {"f:selector": {"f:matchExpressions": {}}}}),
        |p| {
            p["spec"]["selector"]["matchExpressions"] =
                json!([{"key": "canary", "operator": "DoesNotExist"}])
        },
    );
    repaired(&env, "PodDisruptionBudget", "spec.selector", "kubectl-edit").await;
    assert_eq!(
        env.fake.get(&pdbs(), "web").unwrap()["spec"]["selector"],
        selector
    );
}

// A sidecar container and its volume added by a mesh injector are legitimate: not
// drift, nothing written.
#[tokio::test]
async fn injected_sidecars_are_left_alone() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    env.fake.edit(
        &deployments(),
        "web",
        "istio-sidecar-injector",
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"istio-proxy\"}": {}}}}}}),
        |d| {
            let spec = &mut d["spec"]["template"]["spec"];
            spec["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "istio-proxy", "image": "istio/proxyv2:1.24.0"}));
            spec["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "istio-envoy", "emptyDir": {}}));
        },
    );
    env.fake.clear_calls();
    env.reconcile("web").await.expect("steady");
    assert_eq!(env.child_writes(), Vec::<String>::new());
}

// An Ingress given a default backend, and an HTTPRoute given a second backend or a
// second Gateway, are put back.
#[tokio::test]
async fn routes_allow_only_what_is_rendered() {
    let mut policy = Policy::default();
    policy.network_policy.exposed_from = vec!["ingress-nginx".into(), "gw".into()];
    let env = env_with(policy);
    let mut spec = web_spec();
    spec["expose"] = json!({"hosts": ["web.example.com"], "ingressClassName": "nginx"});
    env.create("web", spec);
    env.reconcile("web").await.expect("first");
    someone_edits(
        &env,
        &ingresses(),
        "kubectl-edit",
        json!({"f:spec": {"f:defaultBackend": {}}}),
        |i| {
            i["spec"]["defaultBackend"] =
                json!({"service": {"name": "other", "port": {"number": 80}}})
        },
    );
    repaired(&env, "Ingress", "spec.defaultBackend", "kubectl-edit").await;
    assert!(
        env.fake.get(&ingresses(), "web").unwrap()["spec"]
            .get("defaultBackend")
            .is_none()
    );

    set_spec(&env, "web", |s| {
        s["expose"] =
            json!({"hosts": ["web.example.com"], "gateway": {"name": "public", "namespace": "gw"}});
    });
    env.reconcile("web").await.expect("through a Gateway");
    let rules = env.fake.get(&http_routes(), "web").expect("route")["spec"]["rules"].clone();
    someone_edits(
        &env,
        &http_routes(),
        "kubectl-edit",
        json!({"f:spec": {"f:rules": {}}}),
        |r| {
            r["spec"]["rules"][0]["backendRefs"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "evil", "port": 80}))
        },
    );
    repaired(&env, "HTTPRoute", "spec.rules", "kubectl-edit").await;
    assert_eq!(
        env.fake.get(&http_routes(), "web").unwrap()["spec"]["rules"],
        rules
    );
    someone_edits(
        &env,
        &http_routes(),
        "kubectl-edit",
        json!({"f:spec": {"f:parentRefs": {}}}),
        |r| {
            r["spec"]["parentRefs"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "internal", "namespace": "gw"}))
        },
    );
    repaired(&env, "HTTPRoute", "spec.parentRefs", "kubectl-edit").await;
    assert_eq!(
        env.fake.get(&http_routes(), "web").unwrap()["spec"]["parentRefs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
