//! Stateful apps (`spec.stateful`): what is rendered, what is refused (validation, CEL,
//! the API server), and the reconciler against the in-memory API with its StatefulSet
//! controller: a 3-replica app through an image change, a broken image (the
//! OrderedReady trap: `Stalled`, `RolloutStuck`), and a revert that heals it.

mod fake;

use fake::harness::{self, Env, NS, env};
use fake::{FakeApi, collection};
use kube::core::cel::Validator;
use safeapp::api::SafeApp;
use safeapp::api::v1alpha1::{
    CLAIMS_IMMUTABLE_MESSAGE, POD_MANAGEMENT_IMMUTABLE_MESSAGE, STATEFUL_SWITCH_MESSAGE,
};
use safeapp::policy::Policy;
use safeapp::render::{self, Resources};
use safeapp::validate::{FieldError, ValidatedApp, validate};
use serde_json::{Value, json};

const GOOD: &str = "registry.example.com/db:1.0.0";

fn stateful_sets() -> String {
    collection("apps/v1", NS, "statefulsets")
}
fn pods() -> String {
    collection("v1", NS, "pods")
}
fn claims() -> String {
    collection("v1", NS, "persistentvolumeclaims")
}

/// A database-like app: 3 replicas, one 10Gi claim at /var/lib/db.
fn db_spec(extra: Value) -> Value {
    let mut spec = json!({
        "image": GOOD, "replicas": 3,
        "ports": [{"name": "pg", "port": 5432}],
        "tier": "database",
        "stateful": {"volumeClaimTemplates": [{"name": "data", "size": "10Gi", "mountPath": "/var/lib/db"}]},
    });
    merge(&mut spec, extra);
    spec
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn app(spec: Value) -> SafeApp {
    serde_json::from_value(harness::safeapp("db", spec)).expect("SafeApp")
}

fn validated(spec: Value, policy: &Policy) -> Result<ValidatedApp, Vec<FieldError>> {
    validate(&app(spec), policy)
}

fn rendered(spec: Value) -> Resources {
    let policy = Policy::default();
    render::render(&validated(spec, &policy).expect("valid"), &policy)
}

fn paths(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(|e| e.path.clone()).collect()
}

// The StatefulSet carries the same pod as a Deployment of the same app (probes, preStop,
// grace, security, resources, labels, spread) plus its claims' mounts; its own fields
// are the safe ones: OrderedReady, RollingUpdate from partition 0, minReadySeconds,
// claims retained. A headless Service publishes every pod for its peers; the ordinary
// Service serves clients; the PDB selects the pods; no HPA.
#[test]
fn renders_a_stateful_set_with_claims_and_a_headless_service() {
    let r = rendered(db_spec(json!({})));
    let sts = r.workload.as_stateful_set().expect("a StatefulSet");
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("db-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    let strategy = spec.update_strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(strategy.rolling_update.as_ref().unwrap().partition, Some(0));
    assert_eq!(
        strategy.rolling_update.as_ref().unwrap().max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(spec.min_ready_seconds, Some(5));
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(
        claim_spec.access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_string()][..])
    );
    assert_eq!(
        claim_spec.storage_class_name, None,
        "the cluster's default class"
    );
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "10Gi"
    );

    // The same pod as the Deployment of the same app, with the claim mounted.
    let mut as_deployment = db_spec(json!({}));
    as_deployment.as_object_mut().unwrap().remove("stateful");
    let d = rendered(as_deployment);
    let deployment_pod = d
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .unwrap()
        .template;
    let mut sts_pod = spec.template.clone();
    let container = &mut sts_pod.spec.as_mut().unwrap().containers[0];
    let mounts = container.volume_mounts.take().unwrap_or_default();
    let data = mounts
        .iter()
        .find(|m| m.name == "data")
        .expect("data mounted");
    assert_eq!(data.mount_path, "/var/lib/db");
    container.volume_mounts = Some(mounts.into_iter().filter(|m| m.name != "data").collect());
    if container.volume_mounts.as_ref().is_some_and(Vec::is_empty) {
        container.volume_mounts = None;
    }
    // Spread per revision: a StatefulSet's pods are labelled controller-revision-hash.
    for constraint in sts_pod
        .spec
        .iter_mut()
        .flat_map(|s| s.topology_spread_constraints.iter_mut().flatten())
    {
        assert_eq!(
            constraint.match_label_keys.as_deref(),
            Some(&["controller-revision-hash".to_string()][..])
        );
        constraint.match_label_keys = Some(vec!["pod-template-hash".into()]);
    }
    assert_eq!(
        sts_pod, deployment_pod,
        "the same pod, claims and spread key aside"
    );
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
    assert!(
        c.lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .is_some()
    );

    let headless = r.headless_service.as_ref().expect("headless Service");
    assert_eq!(headless.metadata.name.as_deref(), Some("db-headless"));
    let hs = headless.spec.as_ref().unwrap();
    assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
    assert_eq!(hs.publish_not_ready_addresses, Some(true));
    assert_eq!(hs.selector, spec.selector.match_labels);
    let service = r.service.as_ref().expect("client Service");
    assert_eq!(service.metadata.name.as_deref(), Some("db"));
    assert_eq!(
        r.pdb
            .spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()
            .match_labels,
        spec.selector.match_labels
    );
    assert!(r.hpa.is_none());
}

// The NetworkPolicy admits the app's own replicas on its ports (and, with egress rules,
// lets them reach each other), besides what the access policy says.
#[test]
fn network_policy_admits_the_peers_on_their_ports() {
    let r = rendered(db_spec(json!({})));
    let np = r.network_policy.expect("NetworkPolicy");
    let spec = np.spec.unwrap();
    let own = spec.pod_selector.clone().unwrap();
    let rules = spec.ingress.unwrap_or_default();
    let peers: Vec<_> = rules
        .iter()
        .filter(|r| {
            r.from
                .iter()
                .flatten()
                .any(|p| p.pod_selector.as_ref() == Some(&own) && p.namespace_selector.is_none())
        })
        .collect();
    assert_eq!(peers.len(), 1, "{rules:?}");
    let ports: Vec<_> = peers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.port.clone())
        .collect();
    assert_eq!(
        ports,
        [Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(5432)
        )]
    );

    let mut egress_policy = Policy::default();
    egress_policy.network_policy.mode = safeapp::policy::NetworkPolicyMode::IngressAndEgress;
    let v = validated(db_spec(json!({})), &egress_policy).unwrap();
    let np = render::render(&v, &egress_policy).network_policy.unwrap();
    let egress = np.spec.unwrap().egress.unwrap_or_default();
    assert!(
        egress.iter().any(|r| r
            .to
            .iter()
            .flatten()
            .any(|p| p.pod_selector.as_ref() == Some(&own))),
        "{egress:?}"
    );
}

// What a StatefulSet cannot do is refused with the field's path and why; the storage
// guardrails hold by default (only the cluster's default class, at most 100Gi a claim).
#[test]
fn stateful_validation_names_the_field() {
    let policy = Policy::default();
    let cases = [
        (
            json!({"autoscaling": {"maxReplicas": 5}}),
            "spec.autoscaling",
        ),
        (json!({"rollout": {"maxSurge": 1}}), "spec.rollout.maxSurge"),
        (
            json!({"stateful": {"volumeClaimTemplates": [{"name": "Data_1", "size": "1Gi", "mountPath": "/d"}]}}),
            "spec.stateful.volumeClaimTemplates[0].name",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "500Gi", "mountPath": "/d"}]}}),
            "spec.stateful.volumeClaimTemplates[0].size",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "ten", "mountPath": "/d"}]}}),
            "spec.stateful.volumeClaimTemplates[0].size",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "1Gi", "storageClassName": "local-nvme", "mountPath": "/d"}]}}),
            "spec.stateful.volumeClaimTemplates[0].storageClassName",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "1Gi", "mountPath": "d"}]}}),
            "spec.stateful.volumeClaimTemplates[0].mountPath",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "1Gi", "mountPath": "/d", "subPath": "../x"}]}}),
            "spec.stateful.volumeClaimTemplates[0].subPath",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [
                {"name": "data", "size": "1Gi", "mountPath": "/d"},
                {"name": "data", "size": "1Gi", "mountPath": "/e"}]}}),
            "spec.stateful.volumeClaimTemplates[1].name",
        ),
        (
            json!({"stateful": {"volumeClaimTemplates": [
                {"name": "a", "size": "1Gi", "mountPath": "/d"},
                {"name": "b", "size": "1Gi", "mountPath": "/d"}]}}),
            "spec.stateful.volumeClaimTemplates[1].mountPath",
        ),
    ];
    for (extra, path) in cases {
        let errors = validated(db_spec(extra.clone()), &policy).expect_err(path);
        assert!(
            paths(&errors).contains(&path.to_string()),
            "{extra}: {errors:?}"
        );
    }
    // The platform team opens a class and a bigger size.
    let mut open = Policy::default();
    open.guardrails.allowed_storage_classes = vec!["fast-*".into()];
    open.guardrails.max_claim_size = "1Ti".into();
    let ok = json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "500Gi", "storageClassName": "fast-ssd", "mountPath": "/d"}]}});
    assert!(validated(db_spec(ok), &open).is_ok());
    assert!(open.problems().is_empty());
    let mut bad = Policy::default();
    bad.guardrails.max_claim_size = "lots".into();
    assert!(
        bad.problems()
            .iter()
            .any(|e| e.starts_with("guardrails.maxClaimSize")),
        "{:?}",
        bad.problems()
    );
}

fn schema() -> Value {
    let crd = safeapp::crd::safeapp_crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("schema JSON")
}

/// The CEL messages the API server would return on an update from `old` to `new`.
fn cel_update(new: &Value, old: &Value) -> Vec<String> {
    match Validator::new().validate(&schema(), new, Some(old)) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

// At `kubectl apply`: a SafeApp cannot switch between Deployment and StatefulSet, nor
// change its claim templates or pod management, and the message says how to migrate;
// what a StatefulSet may change (image, replicas, partition) goes through.
#[test]
fn cel_refuses_what_a_stateful_set_cannot_change() {
    let obj = |spec: Value| harness::safeapp("db", spec);
    let old = obj(db_spec(json!({})));
    let mut deployment = db_spec(json!({}));
    deployment.as_object_mut().unwrap().remove("stateful");
    for (new, message) in [
        (obj(deployment.clone()), STATEFUL_SWITCH_MESSAGE),
        (
            obj(db_spec(
                json!({"stateful": {"volumeClaimTemplates": [{"name": "data", "size": "20Gi", "mountPath": "/var/lib/db"}]}}),
            )),
            CLAIMS_IMMUTABLE_MESSAGE,
        ),
        (
            obj(db_spec(
                json!({"stateful": {"podManagementPolicy": "Parallel"}}),
            )),
            POD_MANAGEMENT_IMMUTABLE_MESSAGE,
        ),
    ] {
        let errors = cel_update(&new, &old);
        assert!(
            errors.iter().any(|e| e.contains(message)),
            "expected {message:?}, got {errors:?}"
        );
    }
    assert!(
        cel_update(&old, &obj(deployment))
            .iter()
            .any(|e| e.contains(STATEFUL_SWITCH_MESSAGE)),
        "a Deployment cannot become a StatefulSet either"
    );
    for ok in [
        json!({"image": "registry.example.com/db:1.1.0"}),
        json!({"replicas": 5}),
        json!({"stateful": {"partition": 2}}),
    ] {
        let errors = cel_update(&obj(db_spec(ok.clone())), &old);
        assert!(errors.is_empty(), "{ok}: {errors:?}");
    }
}

/// Runs the fake StatefulSet controller until it has nothing left to do (at most 20
/// syncs), returning what it did.
fn settle(fake: &FakeApi) -> Vec<String> {
    let mut log = Vec::new();
    for _ in 0..20 {
        let did = fake.stateful_set_step(NS, "db");
        let idle = did == "synced" || did.starts_with("waiting");
        log.push(did);
        if idle {
            break;
        }
    }
    log
}

fn image_of(fake: &FakeApi, pod: &str) -> String {
    fake.get(&pods(), pod).map_or_else(String::new, |p| {
        p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
}

fn set_image(env: &Env, image: &str) {
    env.fake
        .edit(&harness::apps(), "db", "kubectl", json!({}), |a| {
            a["spec"]["image"] = json!(image);
        });
}

fn claim_deletes(fake: &FakeApi) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.method == http::Method::DELETE && c.path.contains("persistentvolumeclaims"))
        .count()
}

// A 3-replica database through its life on the in-memory API: created (claims per
// ordinal, pods in order), Ready, zero writes at steady state; an image change rolls
// one pod at a time from the highest ordinal; a broken image stops the rollout at db-2
// and, past the bound, the app is Stalled (RolloutStuck, naming the pod); reverting the
// spec does not move the StatefulSet (the trap), so the operator replaces the stuck pod
// and the app heals. No claim is ever deleted.
#[tokio::test]
async fn a_stateful_app_rolls_gets_stuck_and_heals_on_revert() {
    let env = env();
    env.create(
        "db",
        db_spec(json!({"rollout": {"progressDeadlineSeconds": 1, "minReadySeconds": 0}})),
    );
    env.reconcile("db").await.expect("reconcile");
    let sts = env
        .fake
        .get(&stateful_sets(), "db")
        .unwrap_or_else(|| panic!("StatefulSet: {}", env.app("db")["status"]));
    assert_eq!(sts["spec"]["serviceName"], "db-headless");
    let services = harness::services();
    assert!(env.fake.get(&services, "db-headless").is_some());
    assert!(env.fake.get(&services, "db").is_some());
    assert!(env.fake.get(&harness::pdbs(), "db").is_some());

    settle(&env.fake);
    for i in 0..3 {
        assert_eq!(image_of(&env.fake, &format!("db-{i}")), GOOD);
        assert!(
            env.fake.get(&claims(), &format!("data-db-{i}")).is_some(),
            "claim of ordinal {i}"
        );
    }
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        env.condition("db", "Ready")["status"],
        "True",
        "{}",
        env.app("db")["status"]
    );
    let status = env.app("db")["status"].clone();
    assert_eq!(status["readyReplicas"], 3);
    assert_eq!(status["currentRevision"], status["updateRevision"]);

    // Steady state: nothing written.
    env.fake.clear_calls();
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(env.child_writes(), Vec::<String>::new());

    // An image change rolls every pod, from the highest ordinal down.
    set_image(&env, "registry.example.com/db:1.1.0");
    env.reconcile("db").await.expect("reconcile");
    let log = settle(&env.fake);
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("deleted"))
            .cloned()
            .collect::<Vec<_>>(),
        ["deleted db-2", "deleted db-1", "deleted db-0"]
    );
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(env.condition("db", "Ready")["status"], "True");
    let good = env.app("db")["status"]["updateRevision"].clone();

    // A broken image: db-2 is replaced and never becomes ready; the rollout waits.
    set_image(&env, "registry.example.com/db:broken");
    env.reconcile("db").await.expect("reconcile");
    let log = settle(&env.fake);
    assert!(log.contains(&"waiting for db-2".to_string()), "{log:?}");
    assert_eq!(image_of(&env.fake, "db-1"), "registry.example.com/db:1.1.0");
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(env.condition("db", "Reconciling")["status"], "True");
    // Past the bound (progressDeadlineSeconds: 1): Stalled, naming the pod.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.reconcile("db").await.expect("reconcile");
    let ready = env.condition("db", "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "RolloutStuck");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("db-2") && message.contains("ImagePullBackOff"),
        "{message}"
    );
    assert_eq!(env.condition("db", "Stalled")["status"], "True");

    // Revert: the StatefulSet's template goes back, but its controller waits for db-2.
    set_image(&env, "registry.example.com/db:1.1.0");
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        env.fake.stateful_set_step(NS, "db"),
        "waiting for db-2",
        "the OrderedReady trap: a revert alone does not replace the stuck pod"
    );
    // The operator replaces it.
    env.reconcile("db").await.expect("reconcile");
    assert!(
        env.fake.get(&pods(), "db-2").is_none(),
        "the stuck pod deleted"
    );
    settle(&env.fake);
    assert_eq!(image_of(&env.fake, "db-2"), "registry.example.com/db:1.1.0");
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        env.condition("db", "Ready")["status"],
        "True",
        "{}",
        env.app("db")["status"]
    );
    assert_eq!(env.app("db")["status"]["updateRevision"], good);
    assert_eq!(
        claim_deletes(&env.fake),
        0,
        "the operator never deletes a claim"
    );
    for i in 0..3 {
        assert!(env.fake.get(&claims(), &format!("data-db-{i}")).is_some());
    }
}

// With `replaceStuckPods: false` the operator leaves the stuck pod alone (and says the
// rollout is stuck).
#[tokio::test]
async fn replacing_stuck_pods_can_be_turned_off() {
    let env = env();
    env.create(
        "db",
        db_spec(json!({"rollout": {"progressDeadlineSeconds": 1, "minReadySeconds": 0}, "stateful": {"replaceStuckPods": false}})),
    );
    env.reconcile("db").await.expect("reconcile");
    settle(&env.fake);
    set_image(&env, "registry.example.com/db:broken");
    env.reconcile("db").await.expect("reconcile");
    settle(&env.fake);
    set_image(&env, GOOD);
    env.reconcile("db").await.expect("reconcile");
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        image_of(&env.fake, "db-2"),
        "registry.example.com/db:broken"
    );
    assert_eq!(env.fake.stateful_set_step(NS, "db"), "waiting for db-2");
}

// Drift on the StatefulSet is put back and reported; the in-memory API refuses what the
// real one refuses (an immutable field), and the operator's own apply never tries.
#[tokio::test]
async fn stateful_set_drift_is_repaired_and_immutable_fields_are_refused() {
    let env = env();
    env.create("db", db_spec(json!({})));
    env.reconcile("db").await.expect("reconcile");
    settle(&env.fake);
    env.reconcile("db").await.expect("reconcile");
    env.fake.edit(
        &stateful_sets(),
        "db",
        "kubectl-edit",
        json!({"f:spec": {"f:minReadySeconds": {}}}),
        |s| s["spec"]["minReadySeconds"] = json!(99),
    );
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        env.fake.get(&stateful_sets(), "db").unwrap()["spec"]["minReadySeconds"],
        5
    );
    assert_eq!(
        env.app("db")["status"]["lastDriftCorrection"]["kind"],
        "StatefulSet"
    );

    // The API server refuses a change of the claim templates.
    let api: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(env.fake.client(), NS);
    let patch = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}}]}});
    let err = api
        .patch(
            "db",
            &kube::api::PatchParams::apply("someone").force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await
        .expect_err("refused");
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("updates to statefulset spec for fields other than"),
        "{}",
        status.message
    );
}

// A staged operator upgrade holds a StatefulSet by its partition (it has no pause): a
// deferred app gets the new template applied with the partition at its replica count,
// so no pod rolls, and reports UpgradePending.
#[tokio::test]
async fn a_held_upgrade_holds_the_stateful_set_by_its_partition() {
    let env = env();
    env.create("db", db_spec(json!({})));
    env.fake
        .edit(&harness::apps(), "db", "kubectl", json!({}), |a| {
            a["metadata"]["annotations"] = json!({"safeapp.dev/upgrade": "defer"});
        });
    env.reconcile("db").await.expect("reconcile");
    settle(&env.fake);
    env.reconcile("db").await.expect("reconcile");
    let mut next = Policy::default();
    next.defaults.pre_stop_sleep_seconds = 7;
    let env = env.reconfigure(next);
    env.reconcile("db").await.expect("reconcile");
    let sts = env.fake.get(&stateful_sets(), "db").unwrap();
    assert_eq!(
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        3
    );
    let log = settle(&env.fake);
    assert!(!log.iter().any(|l| l.starts_with("deleted")), "{log:?}");
    assert_eq!(env.condition("db", "UpgradePending")["reason"], "Deferred");
    // The team lets it go: the partition drops to 0 and the pods roll.
    env.fake
        .edit(&harness::apps(), "db", "kubectl", json!({}), |a| {
            a["metadata"]["annotations"] = json!({"safeapp.dev/upgrade": "now"});
        });
    env.reconcile("db").await.expect("reconcile");
    let sts = env.fake.get(&stateful_sets(), "db").unwrap();
    assert_eq!(
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        0
    );
    let log = settle(&env.fake);
    assert!(log.contains(&"deleted db-0".to_string()), "{log:?}");
}

// A Service of another owner where the headless Service would go is never touched: the
// app reports NameConflict naming it. A stateful app's config change rolls its pods
// like a Deployment's (the config hash on the template).
#[tokio::test]
async fn headless_name_conflict_and_config_rollout() {
    let env = env();
    let foreign = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db-headless", "namespace": NS, "labels": {"team": "other"}},
        "spec": {"ports": [{"port": 80}]}});
    env.fake.insert(&harness::services(), foreign);
    let before = env.fake.get(&harness::services(), "db-headless").unwrap();
    env.create("db", db_spec(json!({})));
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        env.fake.get(&harness::services(), "db-headless").unwrap(),
        before
    );
    let ready = env.condition("db", "Ready");
    assert_eq!(ready["reason"], "NameConflict", "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("db-headless"));

    let env = harness::env();
    let config_maps = collection("v1", NS, "configmaps");
    env.fake.insert(
        &config_maps,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "db-config", "namespace": NS}, "data": {"max_connections": "100"}}),
    );
    env.create(
        "db",
        db_spec(json!({"envFrom": [{"configMapRef": {"name": "db-config"}}]})),
    );
    env.reconcile("db").await.expect("reconcile");
    let hash = |env: &Env| {
        env.fake.get(&stateful_sets(), "db").unwrap()["spec"]["template"]["metadata"]["annotations"]
            [safeapp::render::CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let first = hash(&env);
    assert!(
        first.is_string(),
        "the config hash on the StatefulSet's template"
    );
    env.fake
        .edit(&config_maps, "db-config", "kubectl-edit", json!({}), |c| {
            c["data"]["max_connections"] = json!("200");
        });
    let rv = env
        .fake
        .get(&config_maps, "db-config")
        .and_then(|o| o["metadata"]["resourceVersion"].as_str().map(String::from));
    env.ctx.config.observed(
        &(
            NS.to_string(),
            safeapp::api::v1alpha1::ConfigKind::ConfigMap,
            "db-config".to_string(),
        ),
        rv.as_deref(),
    );
    env.reconcile("db").await.expect("reconcile");
    assert_ne!(hash(&env), first, "a new hash rolls the StatefulSet");
}

fn ready_reason(fake: &FakeApi) -> String {
    fake.get(&harness::apps(), "db")
        .and_then(|a| {
            a["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")
                .and_then(|c| {
                    Some(format!(
                        "{}/{}",
                        c["status"].as_str()?,
                        c["reason"].as_str()?
                    ))
                })
        })
        .unwrap_or_default()
}

// Through the running controller (resync an hour away): the StatefulSet's own status
// events bring the app to Ready, and a pod that never becomes ready turns the app
// Stalled at the bound with no event at all (the reconcile asked to look again then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_controller_follows_the_stateful_set() {
    use fake::running::{self, until};
    use std::time::Duration;
    let fake = FakeApi::as_operator();
    fake.insert(
        &harness::apps(),
        harness::safeapp(
            "db",
            db_spec(json!({"rollout": {"progressDeadlineSeconds": 2, "minReadySeconds": 0}})),
        ),
    );
    let running = running::start(&fake, NS, Policy::default(), Duration::from_secs(3600), 4);
    until("the StatefulSet", Duration::from_secs(10), || {
        fake.get(&stateful_sets(), "db").is_some()
    })
    .await;
    settle(&fake);
    until(
        "Ready from the StatefulSet's status",
        Duration::from_secs(5),
        || ready_reason(&fake) == "True/Available",
    )
    .await;
    fake.edit(&harness::apps(), "db", "kubectl", json!({}), |a| {
        a["spec"]["image"] = json!("registry.example.com/db:broken");
    });
    until("the new template applied", Duration::from_secs(5), || {
        fake.get(&stateful_sets(), "db").is_some_and(|s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"]
                == "registry.example.com/db:broken"
        })
    })
    .await;
    let log = settle(&fake);
    assert_eq!(
        log.last().map(String::as_str),
        Some("waiting for db-2"),
        "{log:?}"
    );
    let took = until("RolloutStuck at the bound", Duration::from_secs(8), || {
        ready_reason(&fake) == "False/RolloutStuck"
    })
    .await;
    println!("stuck reported {took:?} after the rollout stopped");
    // A stale cache never makes the operator delete a pod of the rollout in progress.
    assert_eq!(
        fake.get(&pods(), "db-2")
            .map(|p| p["spec"]["containers"][0]["image"].clone()),
        Some(json!("registry.example.com/db:broken")),
        "the stuck pod of the current spec is reported, not deleted"
    );
    running.stop().await;
}

// `maxUnavailable: 1` where the API server keeps it (the MaxUnavailableStatefulSet
// gate); where it drops the field, the operator learns that from the first answer and
// leaves it out, so the compare never sees drift: zero writes at rest either way.
#[tokio::test]
async fn max_unavailable_where_the_server_supports_it() {
    for gate in [true, false] {
        let env = env();
        if gate {
            env.fake.enable_feature("MaxUnavailableStatefulSet");
        }
        env.create("db", db_spec(json!({})));
        env.reconcile("db").await.expect("reconcile");
        settle(&env.fake);
        env.reconcile("db").await.expect("reconcile");
        let sts = env.fake.get(&stateful_sets(), "db").unwrap();
        let stored = &sts["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"];
        assert_eq!(
            *stored,
            if gate { json!(1) } else { Value::Null },
            "gate {gate}"
        );
        env.fake.clear_calls();
        env.reconcile("db").await.expect("reconcile");
        env.reconcile("db").await.expect("reconcile");
        assert_eq!(env.child_writes(), Vec::<String>::new(), "gate {gate}");
    }
}

// A partition held below the replica count is a steady state: the pods at or above it
// roll, the others keep the old template, the app is Ready, and no pod is listed.
#[tokio::test]
async fn a_partition_is_a_steady_state() {
    let env = env();
    env.create("db", db_spec(json!({"stateful": {"partition": 2}})));
    env.reconcile("db").await.expect("reconcile");
    settle(&env.fake);
    env.reconcile("db").await.expect("reconcile");
    set_image(&env, "registry.example.com/db:1.1.0");
    env.reconcile("db").await.expect("reconcile");
    let log = settle(&env.fake);
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("deleted"))
            .cloned()
            .collect::<Vec<_>>(),
        ["deleted db-2"]
    );
    assert_eq!(image_of(&env.fake, "db-2"), "registry.example.com/db:1.1.0");
    assert_eq!(image_of(&env.fake, "db-1"), GOOD);
    env.reconcile("db").await.expect("reconcile");
    assert_eq!(
        env.condition("db", "Ready")["status"],
        "True",
        "{}",
        env.app("db")["status"]
    );
    env.fake.clear_calls();
    env.reconcile("db").await.expect("reconcile");
    assert!(
        env.fake.calls().iter().all(|c| !c.path.ends_with("/pods")),
        "no pod list at rest: {:?}",
        env.fake.calls()
    );
    assert_eq!(env.child_writes(), Vec::<String>::new());
}
