//! Operating SafeApp: the shipped alerts (config/prometheus) and dashboard
//! (config/grafana) parse as PromQL, use only metrics the operator really exports (read
//! from the /metrics output of an operator run against the in-memory API), and every
//! alert has a summary, a description and a runbook that exists in the README.

mod fake;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use fake::{FakeApi, collection};
use promql_parser::parser::{self, Expr};
use safeapp::admin::{self, AdminState};
use safeapp::controller::{self, RunConfig};
use safeapp::metrics::Metrics;
use safeapp::policy::Policy;
use serde_json::{Value, json};
use tower::ServiceExt;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every series name a metrics exposition can hold, from its `# TYPE` lines (counters
/// end in `_total`; histograms add `_bucket`, `_sum`, `_count`).
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The /metrics text of an operator that reconciled one SafeApp against the fake.
async fn metrics_of_a_run() -> String {
    let fake = FakeApi::as_operator();
    fake.insert(
        &collection("safeapp.dev/v1alpha1", "shop", "safeapps"),
        json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"image": "registry.example.com/web:1.0.0",
                        "ports": [{"name": "http", "port": 8080}]}}),
    );
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    };
    let task = tokio::spawn(controller::run(
        fake.client(),
        RunConfig {
            policy: Policy::default(),
            resync: Duration::from_secs(300),
            concurrency: 4,
            namespace: Some("shop".into()),
            selector: None,
            watch_secrets: false,
        },
        metrics.clone(),
        ready.clone(),
        futures::FutureExt::shared(futures::FutureExt::boxed(stop)),
        futures::future::pending(),
    ));
    let deployments = collection("apps/v1", "shop", "deployments");
    for _ in 0..100 {
        if fake.get(&deployments, "web").is_some() && metrics.reconciles.get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.reconciles.get() > 0, "the operator reconciled");
    let response = admin::router(AdminState::new(metrics, ready))
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    String::from_utf8(body.to_vec()).unwrap()
}

/// Every metric name a PromQL expression reads.
fn metric_names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::VectorSelector(v) => out.extend(v.name.clone()),
        Expr::MatrixSelector(m) => out.extend(m.vs.name.clone()),
        Expr::Aggregate(a) => {
            metric_names(&a.expr, out);
            if let Some(p) = &a.param {
                metric_names(p, out);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, out),
        Expr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        Expr::Paren(p) => metric_names(&p.expr, out),
        Expr::Subquery(s) => metric_names(&s.expr, out),
        Expr::Call(c) => {
            for arg in &c.args.args {
                metric_names(arg, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn names_in(promql: &str, origin: &str) -> BTreeSet<String> {
    let expr = parser::parse(promql).unwrap_or_else(|e| panic!("{origin}: {promql}: {e}"));
    let mut names = BTreeSet::new();
    metric_names(&expr, &mut names);
    assert!(!names.is_empty(), "{origin}: {promql} reads no metric");
    names
}

/// The shipped alert rules.
fn alerts() -> Vec<Value> {
    let rule: Value = serde_yaml_ng::from_str(&read("config/prometheus/prometheusrule.yaml"))
        .expect("PrometheusRule YAML");
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// Every PromQL expression of the dashboard, with its panel title.
fn dashboard_queries() -> Vec<(String, String)> {
    let dash: Value =
        serde_json::from_str(&read("config/grafana/safeapp-operator.json")).expect("JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

// Renaming or dropping a metric breaks the build, not the dashboard or the pager: every
// metric the alerts and the dashboard read is in the operator's real /metrics output.
#[tokio::test]
async fn alerts_and_dashboard_use_exported_metrics() {
    let exposition = metrics_of_a_run().await;
    let exported = exported(&exposition);
    assert!(
        exported.contains("safeapp_reconciles_total"),
        "{exported:?}"
    );
    let mut used = BTreeSet::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap().to_string();
        used.extend(names_in(alert["expr"].as_str().expect("expr"), &name));
    }
    for (title, expr) in dashboard_queries() {
        used.extend(names_in(&expr, &title));
    }
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "not exported by the operator: {missing:?} (exported: {exported:?})"
    );
    // The check can fail: a name the operator does not export is caught.
    assert!(!exported.contains("safeapp_made_up_total"));
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

// Each alert is actionable: a severity, a summary, a description, and a runbook_url
// whose anchor is a README heading.
#[test]
fn every_alert_has_a_runbook() {
    let readme = read("README.md");
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let alerts = alerts();
    assert!(alerts.len() >= 6, "{} alerts", alerts.len());
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                alert["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: {key}"
            );
        }
        assert!(
            ["page", "ticket"].contains(&alert["labels"]["severity"].as_str().unwrap_or("")),
            "{name}: severity"
        );
        let url = alert["annotations"]["runbook_url"].as_str().unwrap();
        let fragment = url.split('#').nth(1).expect("an anchor");
        assert!(
            anchors.contains(fragment),
            "{name}: README has no heading for #{fragment}"
        );
    }
}

// The dashboard imports as is: a Prometheus data-source variable, and every panel
// queries through it.
#[test]
fn dashboard_is_importable() {
    let dash: Value =
        serde_json::from_str(&read("config/grafana/safeapp-operator.json")).expect("JSON");
    assert_eq!(dash["templating"]["list"][0]["type"], "datasource");
    assert_eq!(dash["templating"]["list"][0]["query"], "prometheus");
    for panel in dash["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        assert!(panel["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "SafeApps by readiness",
        "Reconciles and errors",
        "Reconcile latency",
        "Drift corrections by kind",
        "API requests by verb",
        "Leader",
        "Memory",
    ] {
        assert!(titles.contains(&wanted), "{wanted} missing: {titles:?}");
    }
}
