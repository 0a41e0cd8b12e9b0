//! `safeapp diff` against the in-memory API: a new app is all creations and nothing is
//! stored; an app the operator has converged shows no change; an edit shows exactly
//! what would change, and what would be pruned.

mod fake;

use fake::apiserver::Rbac;
use fake::harness::{NS, deployments, env};
use fake::{FakeApi, collection};
use safeapp::diff::{self, Change, ObjectDiff};
use safeapp::policy::Policy;
use serde_json::json;

const MANIFEST: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: web, namespace: shop}
spec:
  image: registry.example.com/web:1.0.0
  ports: [{name: http, port: 8080}]
  healthCheck: {path: /health}
  envFrom: [{configMapRef: {name: app-config}}]
"#;

/// A client for the in-memory API acting as a CI job bound to config/diff/role.yaml.
fn ci_client(fake: &FakeApi) -> kube::Client {
    fake.with_user(Rbac::from_files("ci-job", &["config/diff/role.yaml"]))
        .client()
}

fn change_of<'a>(diffs: &'a [ObjectDiff], kind: &str) -> &'a Change {
    &diffs
        .iter()
        .find(|d| d.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {diffs:#?}"))
        .change
}

// A SafeApp that does not exist yet: it and each of its objects would be created, and
// the dry run stores nothing.
#[tokio::test]
async fn new_app_is_all_creations_and_nothing_is_written() {
    let env = env();
    let diffs = diff::diff(&ci_client(&env.fake), MANIFEST, &Policy::default(), false)
        .await
        .expect("diff");
    for kind in [
        "SafeApp",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "LimitRange",
    ] {
        assert_eq!(change_of(&diffs, kind), &Change::Created, "{kind}");
    }
    assert!(diff::any_change(&diffs));
    assert!(
        env.fake.get(&deployments(), "web").is_none(),
        "dry run only"
    );
    assert!(
        env.fake
            .list(&collection("safeapp.dev/v1alpha1", NS, "safeapps"))
            .is_empty()
    );
    let shown = diffs.iter().map(ToString::to_string).collect::<String>();
    assert!(
        shown.contains("+ Deployment shop/web: would be created"),
        "{shown}"
    );
    assert!(
        shown.contains("+  image: registry.example.com/web:1.0.0")
            || shown.contains("image: registry.example.com/web:1.0.0"),
        "{shown}"
    );
}

// After the operator converged the same manifest, nothing would change (the config
// hash is computed as the operator does), so `safeapp diff` exits 0.
#[tokio::test]
async fn converged_app_shows_no_change() {
    let env = env();
    env.fake.insert(
        &collection("v1", NS, "configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "namespace": NS}, "data": {"k": "v"}}),
    );
    let app: serde_json::Value = serde_yaml_ng::from_str(MANIFEST).unwrap();
    env.create("web", app["spec"].clone());
    env.reconcile("web").await.expect("converge");
    let diffs = diff::diff(&ci_client(&env.fake), MANIFEST, &Policy::default(), false)
        .await
        .expect("diff");
    let changed: Vec<&ObjectDiff> = diffs.iter().filter(|d| d.changes()).collect();
    assert!(changed.is_empty(), "{changed:#?}");
    assert!(!diff::any_change(&diffs));
}

// An edit shows the changed fields in a unified diff, and a child the new spec no
// longer asks for as pruned.
#[tokio::test]
async fn edits_show_changes_and_prunes() {
    let env = env();
    let app: serde_json::Value = serde_yaml_ng::from_str(MANIFEST).unwrap();
    let mut spec = app["spec"].clone();
    spec.as_object_mut().unwrap().remove("envFrom");
    env.create("web", spec);
    env.reconcile("web").await.expect("converge");
    let edited = MANIFEST.replace("web:1.0.0", "web:1.1.0").replace(
        "  envFrom: [{configMapRef: {name: app-config}}]\n",
        "  autoscaling: {maxReplicas: 4}\n  service: {enabled: false}\n",
    );
    env.fake.insert(
        &collection("v1", NS, "configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "namespace": NS}, "data": {"k": "v"}}),
    );
    let diffs = diff::diff(&ci_client(&env.fake), &edited, &Policy::default(), false)
        .await
        .expect("diff");
    let Change::Changed(deployment) = change_of(&diffs, "Deployment") else {
        panic!("{diffs:#?}")
    };
    assert!(
        deployment.contains("-        image: registry.example.com/web:1.0.0"),
        "{deployment}"
    );
    assert!(
        deployment.contains("+        image: registry.example.com/web:1.1.0"),
        "{deployment}"
    );
    assert!(
        deployment.starts_with("--- live/Deployment shop/web"),
        "{deployment}"
    );
    assert_eq!(change_of(&diffs, "Service"), &Change::Pruned);
    assert_eq!(
        change_of(&diffs, "HorizontalPodAutoscaler"),
        &Change::Created
    );
    assert!(matches!(change_of(&diffs, "SafeApp"), Change::Changed(_)));
    // The version label follows the tag on every object; the LimitRange is untouched.
    let Change::Changed(pdb) = change_of(&diffs, "PodDisruptionBudget") else {
        panic!("{diffs:#?}")
    };
    assert!(
        pdb.contains("+    app.kubernetes.io/version: 1.1.0"),
        "{pdb}"
    );
    assert_eq!(change_of(&diffs, "LimitRange"), &Change::Unchanged);
    // Nothing was written by the preview.
    let live = env.fake.get(&deployments(), "web").unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/web:1.0.0"
    );
}

// An invalid manifest is an error naming the field, not a preview.
#[tokio::test]
async fn invalid_input_is_an_error() {
    let env = env();
    let err = diff::diff(
        &ci_client(&env.fake),
        &MANIFEST.replace("web:1.0.0", "web:latest"),
        &Policy::default(),
        false,
    )
    .await
    .expect_err("invalid");
    assert!(err.to_string().contains("spec.image"), "{err}");
}

// Without the Gateway API, an app exposed through a Gateway still gets its preview;
// the route is reported as not applicable, as the operator reports GatewayAPIMissing.
#[tokio::test]
async fn missing_gateway_api_does_not_stop_the_preview() {
    let env = env();
    env.fake
        .fail(http::Method::PATCH, "/httproutes/", 404, usize::MAX);
    let exposed = MANIFEST.replace(
        "  envFrom:",
        "  expose: {hosts: [web.example.com], gateway: {name: public}}\n  envFrom:",
    );
    let diffs = diff::diff(&ci_client(&env.fake), &exposed, &Policy::default(), false)
        .await
        .expect("diff");
    assert!(matches!(
        change_of(&diffs, "HTTPRoute"),
        Change::Unavailable(_)
    ));
    assert_eq!(change_of(&diffs, "Deployment"), &Change::Created);
}

// An app with spec.metrics: the preview shows its PodMonitor; without the Prometheus
// Operator the PodMonitor is reported as not applicable and the rest is previewed.
#[tokio::test]
async fn pod_monitor_in_the_preview() {
    let env = env();
    let scraped = MANIFEST.replace("  envFrom:", "  metrics: {port: 9090}\n  envFrom:");
    let diffs = diff::diff(&ci_client(&env.fake), &scraped, &Policy::default(), false)
        .await
        .expect("diff");
    assert_eq!(change_of(&diffs, "PodMonitor"), &Change::Created);
    env.fake.uninstall("podmonitors");
    let diffs = diff::diff(&ci_client(&env.fake), &scraped, &Policy::default(), false)
        .await
        .expect("diff");
    assert!(matches!(
        change_of(&diffs, "PodMonitor"),
        Change::Unavailable(_)
    ));
    assert_eq!(change_of(&diffs, "Deployment"), &Change::Created);
}
