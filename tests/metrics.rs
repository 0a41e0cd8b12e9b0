//! App metrics: `spec.metrics` → a PodMonitor (Prometheus Operator) and a NetworkPolicy
//! rule for the scraper's namespace on the metrics port only; `autoscaling.metrics` →
//! the HPA's Pods and External metrics; the reconciler against the in-memory API with
//! the PodMonitor CRD missing, then installed.

mod fake;

use std::time::Duration;

use fake::harness::{self, NS, env, web_spec};
use fake::{FakeApi, collection};
use http::Method;
use kube::runtime::controller::Action;
use safeapp::api::SafeApp;
use safeapp::policy::Policy;
use safeapp::render::{self, Resources};
use safeapp::validate::{FieldError, ValidatedApp, validate};
use serde_json::{Value, json};

fn pod_monitors() -> String {
    collection("monitoring.coreos.com/v1", NS, "podmonitors")
}

fn spec(extra: Value) -> Value {
    let mut spec = web_spec();
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    spec
}

fn validated(extra: Value, policy: &Policy) -> Result<ValidatedApp, Vec<FieldError>> {
    let app: SafeApp = serde_json::from_value(harness::safeapp("web", spec(extra))).expect("app");
    validate(&app, policy)
}

fn rendered(extra: Value, policy: &Policy) -> Resources {
    render::render(&validated(extra, policy).expect("valid"), policy)
}

// The PodMonitor selects the app's pods by its selector labels and scrapes the named
// port (a port of spec.ports by name or number), path /metrics by default; a number
// outside spec.ports becomes a container port named `metrics`, not a Service port.
#[test]
fn pod_monitor_selects_the_pods_on_the_metrics_port() {
    let policy = Policy::default();
    let r = rendered(json!({"metrics": {"port": "http"}}), &policy);
    let pm = r.pod_monitor.expect("PodMonitor");
    assert_eq!(pm.metadata.name.as_deref(), Some("web"));
    let labels = pm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "safeapp-operator");
    let selector = r
        .workload
        .as_deployment()
        .unwrap()
        .spec
        .clone()
        .unwrap()
        .selector;
    assert_eq!(pm.spec.selector.match_labels, selector.match_labels);
    let endpoint = &pm.spec.pod_metrics_endpoints[0];
    assert_eq!(endpoint.port.as_deref(), Some("http"));
    assert_eq!(endpoint.path.as_deref(), Some("/metrics"));
    assert_eq!(endpoint.interval, None);

    let r = rendered(
        json!({"metrics": {"port": 9090, "path": "/stats", "interval": "15s"}}),
        &policy,
    );
    let endpoint = &r.pod_monitor.unwrap().spec.pod_metrics_endpoints[0];
    assert_eq!(endpoint.port.as_deref(), Some("metrics"));
    assert_eq!(endpoint.path.as_deref(), Some("/stats"));
    assert_eq!(endpoint.interval.as_deref(), Some("15s"));
    let container = &r
        .workload
        .template()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let ports: Vec<_> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [("http".to_string(), 8080), ("metrics".to_string(), 9090)]
    );
    let service_ports: Vec<_> = r.service.unwrap().spec.unwrap().ports.unwrap();
    assert_eq!(
        service_ports.len(),
        1,
        "the metrics port is not on the Service"
    );

    // A number that is one of spec.ports is that port.
    let r = rendered(json!({"metrics": {"port": 8080}}), &policy);
    assert_eq!(
        r.pod_monitor.unwrap().spec.pod_metrics_endpoints[0]
            .port
            .as_deref(),
        Some("http")
    );
    // Without spec.metrics: no PodMonitor.
    assert!(rendered(json!({}), &policy).pod_monitor.is_none());
}

// Bad input names the field; the policy decides which external metrics an app may name.
#[test]
fn metrics_validation_names_the_field() {
    let policy = Policy::default();
    let autoscaling =
        |metric: Value| json!({"autoscaling": {"maxReplicas": 6, "metrics": [metric]}});
    let cases = [
        (json!({"metrics": {"port": "admin"}}), "spec.metrics.port"),
        (json!({"metrics": {"port": 70000}}), "spec.metrics.port"),
        (
            json!({"metrics": {"port": "http", "path": "metrics"}}),
            "spec.metrics.path",
        ),
        (
            json!({"metrics": {"port": "http", "interval": "1s"}}),
            "spec.metrics.interval",
        ),
        (
            json!({"metrics": {"port": "http", "interval": "soon"}}),
            "spec.metrics.interval",
        ),
        (
            autoscaling(json!({"type": "Pods", "name": "9lives", "targetAverageValue": "10"})),
            "spec.autoscaling.metrics[0].name",
        ),
        (
            autoscaling(json!({"type": "Pods", "name": "in_flight", "targetAverageValue": "lots"})),
            "spec.autoscaling.metrics[0].targetAverageValue",
        ),
        (
            autoscaling(json!({"type": "Pods", "name": "in_flight", "targetAverageValue": "0"})),
            "spec.autoscaling.metrics[0].targetAverageValue",
        ),
        (
            autoscaling(
                json!({"type": "Pods", "name": "in_flight", "targetAverageValue": "10",
                               "selector": {"bad key!": "x"}}),
            ),
            "spec.autoscaling.metrics[0].selector[\"bad key!\"]",
        ),
        (
            autoscaling(
                json!({"type": "External", "name": "queue_messages_ready", "targetAverageValue": "30"}),
            ),
            "spec.autoscaling.metrics[0].name",
        ),
    ];
    for (extra, path) in cases {
        let errors = validated(extra.clone(), &policy).expect_err(path);
        assert!(
            errors.iter().any(|e| e.path == path),
            "{extra}: expected {path}, got {errors:?}"
        );
    }
    let mut open = Policy::default();
    open.guardrails.allowed_external_metrics = vec!["queue_*".into()];
    assert!(
        validated(
            autoscaling(json!({"type": "External", "name": "queue_messages_ready", "targetAverageValue": "30"})),
            &open
        )
        .is_ok()
    );
    assert!(open.problems().is_empty(), "{:?}", open.problems());
}

// The HPA scales on the app's own metrics beside CPU and memory, with the same
// scale-down window; CPU 70 is the default only when nothing else is given.
#[test]
fn hpa_scales_on_pods_and_external_metrics() {
    let mut policy = Policy::default();
    policy.guardrails.allowed_external_metrics = vec!["queue_messages_ready".into()];
    let metrics = json!([
        {"type": "Pods", "name": "http_requests_in_flight", "targetAverageValue": "20"},
        {"type": "External", "name": "queue_messages_ready", "selector": {"queue": "orders"}, "targetAverageValue": "30"}
    ]);
    let r = rendered(
        json!({"autoscaling": {"maxReplicas": 6, "metrics": metrics.clone()}}),
        &policy,
    );
    let hpa = r.hpa.expect("HPA").spec.unwrap();
    let got = serde_json::to_value(&hpa.metrics).unwrap();
    assert_eq!(
        got,
        json!([
            {"type": "Pods", "pods": {"metric": {"name": "http_requests_in_flight"},
                                      "target": {"type": "AverageValue", "averageValue": "20"}}},
            {"type": "External", "external": {"metric": {"name": "queue_messages_ready", "selector": {"matchLabels": {"queue": "orders"}}},
                                              "target": {"type": "AverageValue", "averageValue": "30"}}}
        ])
    );
    assert_eq!(
        hpa.behavior
            .unwrap()
            .scale_down
            .unwrap()
            .stabilization_window_seconds,
        Some(render::SCALE_DOWN_WINDOW_SECONDS)
    );
    // With a CPU target, both.
    let r = rendered(
        json!({"autoscaling": {"maxReplicas": 6, "targetCPUUtilizationPercentage": 60, "metrics": metrics}}),
        &policy,
    );
    let types: Vec<String> = r
        .hpa
        .unwrap()
        .spec
        .unwrap()
        .metrics
        .unwrap()
        .into_iter()
        .map(|m| m.type_)
        .collect();
    assert_eq!(types, ["Resource", "Pods", "External"]);
}

fn ingress_rules(r: Resources) -> Vec<Value> {
    let np = r.network_policy.expect("NetworkPolicy");
    serde_json::to_value(np.spec.unwrap().ingress.unwrap_or_default())
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// With `networkPolicy.metricsFrom: [monitoring]` the scraper's namespace is admitted on
// the metrics port, and on no other; without spec.metrics it is not admitted at all.
#[test]
fn network_policy_admits_exactly_the_scraper_on_the_metrics_port() {
    let mut policy = Policy::default();
    policy.network_policy.metrics_from = vec!["monitoring".into()];
    let scraper = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]);
    let from_scraper = |rules: &[Value]| -> Vec<Value> {
        rules
            .iter()
            .filter(|r| r["from"] == scraper)
            .map(|r| r["ports"].clone())
            .collect()
    };
    let rules = ingress_rules(rendered(json!({"metrics": {"port": 9090}}), &policy));
    assert_eq!(
        from_scraper(&rules),
        [json!([{"port": 9090, "protocol": "TCP"}])],
        "{rules:?}"
    );
    let rules = ingress_rules(rendered(json!({"metrics": {"port": "http"}}), &policy));
    assert_eq!(
        from_scraper(&rules),
        [json!([{"port": 8080, "protocol": "TCP"}])]
    );
    let rules = ingress_rules(rendered(json!({}), &policy));
    assert!(from_scraper(&rules).is_empty(), "{rules:?}");
    // A bad namespace in the policy is refused.
    policy.network_policy.metrics_from = vec!["Not A Namespace".into()];
    assert!(
        policy
            .problems()
            .iter()
            .any(|p| p.starts_with("networkPolicy.metricsFrom[0]")),
        "{:?}",
        policy.problems()
    );
}

// `safeapp render` prints the PodMonitor with the app's other objects.
#[test]
fn render_prints_the_pod_monitor() {
    let manifest = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: web, namespace: shop}
spec:
  image: registry.example.com/web:1.0.0
  ports: [{name: http, port: 8080}]
  metrics: {port: http, interval: 30s}
"#;
    let out = safeapp::manifest::render_manifest(manifest, &Policy::default()).expect("valid");
    let yaml = render::to_yaml(&out.objects).expect("yaml");
    assert!(yaml.contains("kind: PodMonitor"), "{yaml}");
    assert!(
        yaml.contains("apiVersion: monitoring.coreos.com/v1"),
        "{yaml}"
    );
    assert!(yaml.contains("interval: 30s"), "{yaml}");
}

// Without the Prometheus Operator the app says so (Monitored=False,
// PrometheusOperatorMissing; a retry a minute, not an error loop) and gets everything
// else; once the CRD is installed the PodMonitor is created; drift on it is put back;
// without spec.metrics it is pruned.
#[tokio::test]
async fn pod_monitor_waits_for_its_crd_and_is_kept() {
    let env = env();
    env.fake.uninstall("podmonitors");
    env.create("web", spec(json!({"metrics": {"port": "http"}})));
    let action = env.reconcile("web").await.expect("not an error");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let monitored = env.condition("web", "Monitored");
    assert_eq!(monitored["status"], "False");
    assert_eq!(monitored["reason"], "PrometheusOperatorMissing");
    assert_eq!(env.condition("web", "Degraded")["status"], "False");
    assert!(env.fake.get(&harness::deployments(), "web").is_some());
    assert!(env.fake.get(&harness::services(), "web").is_some());

    env.fake.install("podmonitors");
    env.reconcile("web").await.expect("installed");
    let pm = env.fake.get(&pod_monitors(), "web").expect("PodMonitor");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "http");
    assert_eq!(env.condition("web", "Monitored")["status"], "True");

    env.fake.edit(
        &pod_monitors(),
        "web",
        "kubectl-edit",
        json!({"f:spec": {"f:podMetricsEndpoints": {}}}),
        |p| p["spec"]["podMetricsEndpoints"][0]["path"] = json!("/secret"),
    );
    env.reconcile("web").await.expect("drift");
    assert_eq!(
        env.fake.get(&pod_monitors(), "web").unwrap()["spec"]["podMetricsEndpoints"][0]["path"],
        "/metrics"
    );
    assert_eq!(
        env.app("web")["status"]["lastDriftCorrection"]["kind"],
        "PodMonitor"
    );

    // Steady state: nothing written.
    env.fake.clear_calls();
    env.reconcile("web").await.expect("steady");
    assert_eq!(env.child_writes(), Vec::<String>::new());

    env.fake
        .edit(&harness::apps(), "web", "kubectl", json!({}), |a| {
            a["spec"].as_object_mut().unwrap().remove("metrics");
        });
    env.reconcile("web").await.expect("pruned");
    assert!(env.fake.get(&pod_monitors(), "web").is_none(), "pruned");
    assert_eq!(env.condition("web", "Monitored"), Value::Null);
}

// Through the running controller: a drifted PodMonitor comes back from its watch alone
// (the resync is an hour away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_monitor_drift_is_repaired_through_the_watch() {
    use fake::running::{self, until};
    let fake = FakeApi::as_operator();
    fake.insert(
        &harness::apps(),
        harness::safeapp("web", spec(json!({"metrics": {"port": "http"}}))),
    );
    let running = running::start(&fake, NS, Policy::default(), Duration::from_secs(3600), 4);
    until("the PodMonitor", Duration::from_secs(10), || {
        fake.get(&pod_monitors(), "web").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.edit(&pod_monitors(), "web", "kubectl-edit", json!({}), |p| {
        p["spec"]["podMetricsEndpoints"][0]["port"] = json!("other");
    });
    let took = until("the PodMonitor repaired", Duration::from_secs(5), || {
        fake.get(&pod_monitors(), "web")
            .is_some_and(|p| p["spec"]["podMetricsEndpoints"][0]["port"] == "http")
    })
    .await;
    println!("PodMonitor drift repaired {took:?} after the edit");
    assert!(
        fake.calls()
            .iter()
            .all(|c| !(c.method == Method::DELETE && c.path.contains("podmonitors"))),
        "repaired in place"
    );
    running.stop().await;
}

// On the in-memory API, the NetworkPolicy the reconciler applies admits the scraper's
// namespace on the metrics port and on nothing else.
#[tokio::test]
async fn applied_network_policy_admits_the_scraper_on_the_metrics_port_only() {
    let mut policy = Policy::default();
    policy.network_policy.metrics_from = vec!["monitoring".into()];
    let env = harness::env_with(policy);
    env.create("web", spec(json!({"metrics": {"port": 9090}})));
    env.reconcile("web").await.expect("reconcile");
    let np = env
        .fake
        .get(
            &collection("networking.k8s.io/v1", NS, "networkpolicies"),
            "web",
        )
        .expect("NetworkPolicy");
    let rules = np["spec"]["ingress"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let from_monitoring: Vec<&Value> = rules
        .iter()
        .filter(|r| {
            r["from"].as_array().into_iter().flatten().any(|p| {
                p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"
            })
        })
        .collect();
    assert_eq!(from_monitoring.len(), 1, "{rules:?}");
    assert_eq!(
        from_monitoring[0]["ports"],
        json!([{"port": 9090, "protocol": "TCP"}])
    );
}
