//! The real reconcile function against an in-memory API (tests/fake): creation, zero
//! writes at steady state, drift correction, recreation, autoscaling toggles, pruning,
//! name conflicts, invalid and paused apps, API errors and status conditions.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::harness::{
    Env, NS, deployments, env, env_with, hpas, limit_ranges, pdbs, quotas, safeapp, services,
    set_spec, web_spec,
};
use fake::{FakeApi, collection};
use http::Method;
use kube::runtime::controller::Action;
use safeapp::api::SafeApp;
use safeapp::controller::{self, Context};
use safeapp::policy::Policy;
use serde_json::{Value, json};

// First reconcile: every child exists with labels and a controller ownerReference; the
// shared LimitRange is owned (non-controller) by the SafeApp; status lists them.
#[tokio::test]
async fn first_reconcile_creates_every_object() {
    let env = env();
    let app = env.create("web", web_spec());
    let uid = app["metadata"]["uid"].as_str().unwrap().to_string();
    let action = env.reconcile("web").await.expect("reconcile");
    // The resync, stretched by this app's own jitter (at most 10%).
    let resync = controller::backoff::with_jitter(Duration::from_secs(300), &uid);
    assert!(resync >= Duration::from_secs(300) && resync <= Duration::from_secs(330));
    assert_eq!(action, Action::requeue(resync));

    for coll in [deployments(), services(), pdbs()] {
        let obj = env
            .fake
            .get(&coll, "web")
            .unwrap_or_else(|| panic!("{coll}/web missing"));
        let owner = &obj["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], uid.as_str());
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["kind"], "SafeApp");
        let labels = &obj["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "web");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "safeapp-operator");
        assert_eq!(labels["tier"], "backend");
    }
    assert!(env.fake.get(&hpas(), "web").is_none());
    let lr = env
        .fake
        .get(&limit_ranges(), "safeapp-limits")
        .expect("limit range");
    assert_eq!(lr["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(lr["metadata"]["ownerReferences"][0]["controller"], false);

    let status = &env.app("web")["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["selector"],
        "app.kubernetes.io/instance=web,app.kubernetes.io/name=web"
    );
    let kinds: Vec<&str> = status["managedObjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    // The app's own children; the shared LimitRange belongs to the namespace.
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy"
        ]
    );
    assert_eq!(env.condition("web", "Ready")["status"], "False");
    assert_eq!(env.event_posts(), 1, "one Created event");
}

// Steady state: a resync where nothing differs makes zero writes (no apply, no status patch, no event).
#[tokio::test]
async fn second_reconcile_makes_no_writes() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    env.fake.clear_calls();
    env.reconcile("web").await.expect("second");
    assert_eq!(
        env.fake.writes().len(),
        0,
        "writes: {:?}",
        env.fake.writes()
    );
    env.reconcile("web").await.expect("third");
    assert_eq!(env.fake.writes().len(), 0);
}

// Edited fields of a child are restored, with a DriftCorrected Event naming the object,
// the paths and the manager, the drift metric, and status.lastDriftCorrection.
#[tokio::test]
async fn drift_is_corrected_and_reported() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    env.fake.edit(
        &deployments(),
        "web",
        "kubectl-edit",
        json!({"f:spec": {"f:strategy": {"f:rollingUpdate": {"f:maxUnavailable": {}}},
                           "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}, "f:lifecycle": {}}}}}},
               "f:metadata": {"f:labels": {"f:tier": {}}}}),
        |d| {
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!(1);
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example.com/web:6.6.6");
            d["spec"]["template"]["spec"]["containers"][0]
                .as_object_mut()
                .unwrap()
                .remove("lifecycle");
            d["metadata"]["labels"]["tier"] = json!("frontend");
        },
    );
    env.fake.clear_calls();
    env.reconcile("web").await.expect("drift reconcile");

    let d = env.fake.get(&deployments(), "web").unwrap();
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/web:1.0.0"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"],
        5
    );
    assert_eq!(d["metadata"]["labels"]["tier"], "backend");

    let writes = env.child_writes();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PATCH") && w.ends_with("/deployments/web")),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.ends_with("/services/web")),
        "the Service did not drift: {writes:?}"
    );
    assert_eq!(env.metrics.drift_count("Deployment"), 1);
    let last = &env.app("web")["status"]["lastDriftCorrection"];
    assert_eq!(last["kind"], "Deployment");
    assert_eq!(last["manager"], "kubectl-edit");
    let fields: Vec<&str> = last["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "metadata.labels.tier",
        "spec.strategy.rollingUpdate.maxUnavailable",
        "spec.template.spec.containers[0].image",
        "spec.template.spec.containers[0].lifecycle",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    let drift_events = env.event_posts();
    assert_eq!(drift_events, 1, "one DriftCorrected event");
    // Put back: the next resync is quiet again.
    env.fake.clear_calls();
    env.reconcile("web").await.expect("after");
    assert_eq!(env.fake.writes().len(), 0, "{:?}", env.fake.writes());
}

// A deleted child is recreated and counted as drift.
#[tokio::test]
async fn deleted_child_is_recreated() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    env.fake
        .remove(&services(), "web")
        .expect("service existed");
    env.reconcile("web").await.expect("recreate");
    assert!(env.fake.get(&services(), "web").is_some());
    assert_eq!(env.metrics.drift_count("Service"), 1);
    assert_eq!(
        env.app("web")["status"]["lastDriftCorrection"]["kind"],
        "Service"
    );
}

// Autoscaling on: the Deployment drops replicas and an HPA appears; off: the HPA is
// deleted and replicas come back.
#[tokio::test]
async fn autoscaling_toggles() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    assert_eq!(
        env.fake.get(&deployments(), "web").unwrap()["spec"]["replicas"],
        2
    );

    set_spec(&env, "web", |s| {
        s["autoscaling"] = json!({"minReplicas": 2, "maxReplicas": 5})
    });
    env.reconcile("web").await.expect("on");
    let d = env.fake.get(&deployments(), "web").unwrap();
    let ours = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "safeapp-operator")
        .unwrap();
    assert!(
        ours["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "the operator no longer applies replicas"
    );
    // Handed over, not dropped: the Deployment does not fall back to 1 pod.
    assert_eq!(d["spec"]["replicas"], 2);
    env.fake.clear_calls();
    env.reconcile("web").await.expect("steady with autoscaling");
    assert_eq!(env.fake.writes().len(), 0, "{:?}", env.fake.writes());
    let hpa = env.fake.get(&hpas(), "web").expect("hpa");
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "web");

    set_spec(&env, "web", |s| {
        s.as_object_mut().unwrap().remove("autoscaling");
        s["replicas"] = json!(3);
    });
    env.fake.clear_calls();
    env.reconcile("web").await.expect("off");
    assert!(env.fake.get(&hpas(), "web").is_none(), "HPA pruned");
    assert!(
        env.fake.writes().iter().any(
            |c| c.method == Method::DELETE && c.path.ends_with("/horizontalpodautoscalers/web")
        )
    );
    assert_eq!(
        env.fake.get(&deployments(), "web").unwrap()["spec"]["replicas"],
        3
    );
}

// Ports removed: the Service is deleted.
#[tokio::test]
async fn removing_ports_prunes_the_service() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    set_spec(&env, "web", |s| {
        let m = s.as_object_mut().unwrap();
        m.remove("ports");
        m.remove("healthCheck");
        m.insert(
            "probes".into(),
            json!({"readiness": {"exec": {"command": ["true"]}}}),
        );
    });
    env.reconcile("web").await.expect("no ports");
    assert!(env.fake.get(&services(), "web").is_none());
}

// An object of the same name that this SafeApp does not control is never patched or
// deleted; the SafeApp reports NameConflict naming it.
#[tokio::test]
async fn name_conflict_is_left_alone() {
    let env = env();
    let foreign = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS, "labels": {"team": "other"}},
                         "spec": {"ports": [{"port": 80}]}});
    env.fake.insert(&services(), foreign);
    let before = env.fake.get(&services(), "web").unwrap();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("reconcile");
    assert_eq!(
        env.fake.get(&services(), "web").unwrap(),
        before,
        "untouched"
    );
    assert!(
        !env.child_writes().iter().any(|w| w.contains("/services/")),
        "{:?}",
        env.child_writes()
    );
    let ready = env.condition("web", "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "NameConflict");
    assert!(ready["message"].as_str().unwrap().contains("Service web"));
}

// An invalid spec writes no child; it gets InvalidSpec with every problem, one Warning
// Event per change of the problem set, and waits for a change.
#[tokio::test]
async fn invalid_spec_writes_nothing() {
    let env = env();
    let mut spec = web_spec();
    spec["image"] = json!("registry.example.com/web:latest");
    spec["replicas"] = json!(-1);
    env.create("web", spec);
    let action = env.reconcile("web").await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    let writes = env.child_writes();
    assert_eq!(writes.len(), 1, "only the status: {writes:?}");
    assert!(writes[0].ends_with("/safeapps/web/status"));
    let ready = env.condition("web", "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    let msg = ready["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.image") && msg.contains("spec.replicas"),
        "{msg}"
    );
    assert_eq!(env.event_posts(), 1);
    assert!(env.fake.get(&deployments(), "web").is_none());
    // The same problems again: no event, no status patch.
    env.fake.clear_calls();
    env.reconcile("web").await.expect("again");
    assert_eq!(env.fake.writes().len(), 0);
}

// A paused app: no writes to children; the condition says Paused.
#[tokio::test]
async fn paused_app_writes_nothing() {
    let env = env();
    let mut spec = web_spec();
    spec["paused"] = json!(true);
    env.create("web", spec);
    let action = env.reconcile("web").await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    assert!(
        env.child_writes().iter().all(|w| w.ends_with("/status")),
        "{:?}",
        env.child_writes()
    );
    assert!(env.fake.get(&deployments(), "web").is_none());
    assert_eq!(env.condition("web", "Ready")["reason"], "Paused");
}

// An API 500 yields an error and a capped exponential backoff per object.
#[tokio::test]
async fn api_error_backs_off() {
    let env = env();
    env.create("web", web_spec());
    env.fake.fail(Method::PATCH, "/deployments/web", 500, 100);
    let err = env
        .reconcile("web")
        .await
        .expect_err("500 fails the reconcile");
    assert!(
        matches!(
            err,
            controller::Error::ApplyChild {
                kind: "Deployment",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_conflict());
    let delays: Vec<Duration> = (0..12).map(|_| env.ctx.next_backoff("shop/web")).collect();
    assert_eq!(delays[0], Duration::from_secs(1));
    assert_eq!(delays[1], Duration::from_secs(2));
    assert_eq!(delays[2], Duration::from_secs(4));
    assert_eq!(
        *delays.last().unwrap(),
        Duration::from_secs(300),
        "capped at 5 minutes"
    );
    env.ctx.reset_backoff("shop/web");
    assert_eq!(env.ctx.next_backoff("shop/web"), Duration::from_secs(1));
}

// A 409 conflict is classified for a quick retry.
#[tokio::test]
async fn conflict_is_retried() {
    let env = env();
    env.create("web", web_spec());
    env.fake.fail(Method::PATCH, "/services/web", 409, 1);
    let err = env.reconcile("web").await.expect_err("409");
    assert!(err.is_conflict());
    env.reconcile("web").await.expect("the retry succeeds");
    assert!(env.fake.get(&services(), "web").is_some());
}

// Status follows the Deployment: progressing, then complete, then failed.
#[tokio::test]
async fn status_follows_the_rollout() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    let set_status = |status: Value| {
        env.fake.edit(
            &deployments(),
            "web",
            "kube-controller-manager",
            json!({}),
            |d| d["status"] = status,
        );
    };
    // Mid-rollout with one pod short of capacity: progressing, not ready.
    set_status(
        json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}),
    );
    env.reconcile("web").await.expect("progressing");
    assert_eq!(env.condition("web", "Reconciling")["status"], "True");
    assert_eq!(
        env.condition("web", "Reconciling")["reason"],
        "RolloutInProgress"
    );
    assert_eq!(env.condition("web", "Ready")["status"], "False");
    // Mid-rollout at full capacity (maxUnavailable 0): the old pods serve, but the spec's
    // template is not out yet: not Ready (kstatus: InProgress), still reconciling.
    set_status(
        json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "readyReplicas": 2}),
    );
    env.reconcile("web").await.expect("progressing at capacity");
    assert_eq!(env.condition("web", "Ready")["status"], "False");
    assert_eq!(env.condition("web", "Reconciling")["status"], "True");
    assert_eq!(env.condition("web", "Stalled")["status"], "False");

    set_status(
        json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
    );
    env.reconcile("web").await.expect("complete");
    assert_eq!(env.condition("web", "Ready")["status"], "True");
    assert_eq!(
        env.condition("web", "Reconciling")["reason"],
        "RolloutComplete"
    );
    assert_eq!(env.app("web")["status"]["readyReplicas"], 2);
    let ready_since = env.condition("web", "Ready")["lastTransitionTime"].clone();

    set_status(
        json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
    );
    env.reconcile("web").await.expect("still complete");
    assert_eq!(
        env.condition("web", "Ready")["lastTransitionTime"],
        ready_since
    );

    set_status(
        json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."},
                       {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota: safeapp-quota"}]}),
    );
    env.reconcile("web").await.expect("failed");
    let degraded = env.condition("web", "Degraded");
    assert_eq!(degraded["status"], "True");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota")
    );
    assert_eq!(
        env.condition("web", "Reconciling")["reason"],
        "ProgressDeadlineExceeded"
    );
    // Past its deadline nothing changes by itself: Stalled, which Flux reads as Failed.
    assert_eq!(env.condition("web", "Stalled")["status"], "True");
    assert_eq!(
        env.condition("web", "Stalled")["reason"],
        "ProgressDeadlineExceeded"
    );
    assert_eq!(env.condition("web", "Reconciling")["status"], "False");
}

// The shared LimitRange carries one ownerReference per SafeApp of the namespace; a
// quota dropped from the policy is deleted.
#[tokio::test]
async fn shared_objects_follow_the_namespace_and_policy() {
    let policy = Policy::from_yaml(
        "resourceQuota:\n  hard: {pods: '50'}\n",
        std::path::Path::new("p.yaml"),
    )
    .unwrap();
    let env = env_with(policy);
    env.create("web", web_spec());
    env.create("api", web_spec());
    env.reconcile("web").await.expect("web");
    env.reconcile("api").await.expect("api");
    let lr = env.fake.get(&limit_ranges(), "safeapp-limits").unwrap();
    let mut owners = fake::owner_names(&lr);
    owners.sort();
    assert_eq!(owners, ["api", "web"]);
    assert!(env.fake.get(&quotas(), "safeapp-quota").is_some());

    let env2 = Env {
        ctx: Context::new(
            env.fake.client(),
            Policy::default(),
            env.metrics.clone(),
            Duration::from_secs(300),
        ),
        fake: env.fake.clone(),
        metrics: env.metrics.clone(),
    };
    env2.reconcile("web").await.expect("policy without quota");
    assert!(env2.fake.get(&quotas(), "safeapp-quota").is_none());
}

// One malformed SafeApp (a spec that does not match the schema) reaches the reconciler
// as an error value, not a failed watch: it gets a Warning Event and waits for a change.
#[tokio::test]
async fn malformed_safeapp_is_contained() {
    use kube::core::DeserializeGuard;
    let env = env();
    let raw = json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
                     "metadata": {"name": "broken", "namespace": NS, "uid": "uid-broken"},
                     "spec": {"image": "web:1.0.0", "replicas": "three"}});
    let guard: DeserializeGuard<SafeApp> =
        serde_json::from_value(raw).expect("the guard always deserializes");
    assert!(guard.0.is_err());
    let ctx = Arc::new(env.ctx);
    let action = controller::reconcile(Arc::new(guard), ctx.clone())
        .await
        .expect("handled");
    assert_eq!(action, Action::await_change());
    let posts: Vec<_> = env.fake.writes();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].path.ends_with("/events"));
    assert_eq!(env.metrics.reconciles.get(), 1);
}

// error_policy: conflicts retry after a second; other errors back off per object.
#[tokio::test]
async fn error_policy_classifies() {
    use kube::core::DeserializeGuard;
    let env = env();
    let app: SafeApp = serde_json::from_value(safeapp("web", web_spec())).unwrap();
    let guard = Arc::new(DeserializeGuard(Ok(app)));
    let ctx = Arc::new(env.ctx);
    let server_error = controller::Error::PatchStatus {
        source: kube::Error::Api(
            kube::core::Status::failure("boom", "InternalError")
                .with_code(500)
                .boxed(),
        ),
    };
    assert_eq!(
        controller::error_policy(guard.clone(), &server_error, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(
        controller::error_policy(guard.clone(), &server_error, ctx.clone()),
        Action::requeue(Duration::from_secs(2))
    );
    let conflict = controller::Error::PatchStatus {
        source: kube::Error::Api(
            kube::core::Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        ),
    };
    assert_eq!(
        controller::error_policy(guard.clone(), &conflict, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(
        controller::error_policy(guard, &server_error, ctx.clone()),
        Action::requeue(Duration::from_secs(4))
    );
    let text = env.metrics.encode();
    assert!(
        text.contains("safeapp_reconcile_errors_total{reason=\"status\"} 4"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// What a real API server showed (issue: correct on a real API server).
// ---------------------------------------------------------------------------------------

impl Env {
    /// Every Event stored in the namespace.
    fn events(&self) -> Vec<Value> {
        self.fake
            .list(&collection("events.k8s.io/v1", NS, "events"))
    }

    fn notes(&self, reason: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["reason"] == reason)
            .filter_map(|e| e["note"].as_str().map(str::to_string))
            .collect()
    }
}

// Zero values the API server drops (omitempty), quantities it canonicalises, probe zeros
// it defaults and version-like strings: after the first reconcile, a resync writes
// nothing, announces nothing and reports no drift, for every such spec.
#[tokio::test]
async fn zero_values_and_canonical_forms_are_not_drift() {
    let cases = [
        json!({"env": [{"name": "EMPTY", "value": ""}]}),
        json!({"args": []}),
        json!({"command": [], "envFrom": []}),
        json!({"imagePullSecrets": []}),
        json!({"volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}],
               "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app", "readOnly": false}]}),
        json!({"rollout": {"minReadySeconds": 0}}),
        json!({"probes": {"readiness": {"httpGet": {"path": "/ready", "port": 8080},
                                        "initialDelaySeconds": 0, "periodSeconds": 0,
                                        "timeoutSeconds": 0, "failureThreshold": 0}}}),
        json!({"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"},
                             "limits": {"cpu": "1000m", "memory": "1Gi"}}}),
        json!({"labels": {"release": "1.10"}, "env": [{"name": "VERSION", "value": "1.10"}]}),
        json!({"shutdown": {"preStopSleepSeconds": 0}}),
    ];
    for extra in cases {
        let env = env();
        let mut spec = web_spec();
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        env.create("web", spec);
        env.reconcile("web").await.expect("first");
        env.fake.clear_calls();
        env.reconcile("web").await.expect("second");
        env.reconcile("web").await.expect("third");
        assert!(
            env.fake.writes().is_empty(),
            "{extra}: {:?}",
            env.fake.writes()
        );
        assert!(
            env.notes("DriftCorrected").is_empty(),
            "{extra}: {:?}",
            env.notes("DriftCorrected")
        );
        assert_eq!(env.metrics.drift_count("Deployment"), 0, "{extra}");
    }
}

/// The operator's rules from config/rbac, with `create` taken off the child kinds: the
/// ClusterRole as it shipped before.
fn rbac_without_create() -> fake::apiserver::Rbac {
    let mut rbac = fake::apiserver::Rbac::operator();
    for rule in &mut rbac.rules {
        if !rule.groups.iter().any(|g| g == "events.k8s.io") {
            rule.verbs.retain(|v| v != "create");
        }
    }
    rbac
}

// A server-side apply that would create an object needs `create`: without it the API
// server refuses (403), and the SafeApp says so in status (Forbidden, the API's message)
// with one Warning Event, not again on the retry.
#[tokio::test]
async fn apply_without_create_permission_is_forbidden_and_reported() {
    let env = Env {
        fake: FakeApi::with_rbac(rbac_without_create()),
        ..env()
    };
    let env = Env {
        ctx: Context::new(
            env.fake.client(),
            Policy::default(),
            env.metrics.clone(),
            Duration::from_secs(300),
        ),
        ..env
    };
    env.create("web", web_spec());
    let err = env.reconcile("web").await.expect_err("403");
    assert_eq!(err.api_status(), Some(403), "{err}");
    assert!(env.fake.get(&deployments(), "web").is_none());
    let ready = env.condition("web", "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "Forbidden");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("cannot create resource \"deployments\""),
        "{message}"
    );
    assert!(
        message.contains("cannot create resource \"services\""),
        "{message}"
    );
    assert!(message.len() <= 1024);
    assert_eq!(env.condition("web", "Degraded")["status"], "True");
    assert_eq!(env.notes("ApplyFailed").len(), 1);
    // The retry meets the same refusal: no new status write, no new Event.
    env.fake.clear_calls();
    env.reconcile("web").await.expect_err("still 403");
    assert!(
        !env.child_writes().iter().any(|w| w.ends_with("/status")),
        "{:?}",
        env.child_writes()
    );
    assert_eq!(env.notes("ApplyFailed").len(), 1);
}

// Any refusal of one child (an admission webhook's 422 here) reaches status with the
// kind of failure and the API's message, bounded; the other children are still applied.
#[tokio::test]
async fn a_refused_child_is_reported_and_the_others_applied() {
    let env = env();
    env.create("web", web_spec());
    let long = format!(
        "admission webhook \"policy.example.com\" denied the request: {}",
        "x".repeat(5000)
    );
    env.fake
        .fail_with(Method::PATCH, "/deployments/web", 422, &long, 100);
    let err = env.reconcile("web").await.expect_err("422");
    assert_eq!(err.api_status(), Some(422));
    let ready = env.condition("web", "Ready");
    assert_eq!(ready["reason"], "Invalid");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("denied the request"), "{message}");
    assert!(message.len() <= 1024, "{}", message.len());
    assert!(env.fake.get(&services(), "web").is_some());
    assert!(env.fake.get(&pdbs(), "web").is_some());
    // The webhook relents: the next reconcile recovers.
    env.fake.clear_failures();
    env.reconcile("web").await.expect("recovered");
    assert!(env.fake.get(&deployments(), "web").is_some());
    assert_ne!(env.condition("web", "Ready")["reason"], "Invalid");
}

// Converging many new SafeApps writes the shared LimitRange once for the namespace, and
// the operator's own ownerReference bookkeeping is never reported as drift.
#[tokio::test]
async fn shared_limit_range_is_written_once_per_namespace() {
    let env = env();
    for i in 0..30 {
        env.create(&format!("app-{i:02}"), web_spec());
    }
    for i in 0..30 {
        let app: SafeApp = serde_json::from_value(env.app(&format!("app-{i:02}"))).unwrap();
        controller::app::reconcile_app(&app, &env.ctx)
            .await
            .expect("app");
    }
    env.sync_namespaces().await;
    let lr_writes = |env: &Env| {
        env.child_writes()
            .iter()
            .filter(|w| w.contains("/limitranges/"))
            .count()
    };
    assert_eq!(lr_writes(&env), 1);
    let lr = env.fake.get(&limit_ranges(), "safeapp-limits").unwrap();
    assert_eq!(fake::owner_names(&lr).len(), 30);
    // One more app: one more LimitRange write, and nothing reported to anyone.
    env.create("late", web_spec());
    env.fake.clear_calls();
    env.reconcile("late").await.expect("late");
    assert_eq!(lr_writes(&env), 1);
    assert!(env.notes("DriftCorrected").is_empty());
    for i in 0..30 {
        assert!(env.app(&format!("app-{i:02}"))["status"]["lastDriftCorrection"].is_null());
    }
    // Steady state: nothing at all.
    env.fake.clear_calls();
    for i in 0..30 {
        env.reconcile(&format!("app-{i:02}")).await.expect("resync");
    }
    assert!(env.fake.writes().is_empty(), "{:?}", env.fake.writes());
}

// The shared objects reference at most MAX_SHARED_OWNERS SafeApps, so a namespace with
// thousands of apps does not grow them towards etcd's object size limit.
#[tokio::test]
async fn shared_owners_are_capped() {
    let env = env();
    let max = controller::namespace::MAX_SHARED_OWNERS;
    for i in 0..max + 20 {
        let name = format!("app-{i:03}");
        env.create(&name, web_spec());
        let uid = env.app(&name)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        env.ctx
            .namespaces
            .observe(NS, safeapp::api::WorkloadKind::SafeApp, &name, &uid);
    }
    env.sync_namespaces().await;
    let lr = env.fake.get(&limit_ranges(), "safeapp-limits").unwrap();
    assert_eq!(fake::owner_names(&lr).len(), max);
    // The garbage collector drops a deleted app's reference; the next sync tops up.
    env.fake.edit(
        &limit_ranges(),
        "safeapp-limits",
        "generic-garbage-collector",
        json!({}),
        |lr| {
            lr["metadata"]["ownerReferences"]
                .as_array_mut()
                .unwrap()
                .remove(0);
        },
    );
    env.ctx.namespaces.mark(NS);
    env.sync_namespaces().await;
    let lr = env.fake.get(&limit_ranges(), "safeapp-limits").unwrap();
    assert_eq!(fake::owner_names(&lr).len(), max);
}

// A `safeapp-limits` someone else made is left alone; the apps still get their children
// and are not NameConflict; the conflict is reported once, on the LimitRange.
#[tokio::test]
async fn foreign_limit_range_is_reported_once() {
    let env = env();
    env.fake.insert(
        &limit_ranges(),
        json!({"apiVersion": "v1", "kind": "LimitRange",
               "metadata": {"name": "safeapp-limits", "namespace": NS},
               "spec": {"limits": [{"type": "Container", "max": {"cpu": "8"}}]}}),
    );
    let before = env.fake.get(&limit_ranges(), "safeapp-limits").unwrap();
    for name in ["web", "api"] {
        env.create(name, web_spec());
        env.reconcile(name).await.expect("reconcile");
        assert!(env.fake.get(&deployments(), name).is_some());
        assert_ne!(env.condition(name, "Ready")["reason"], "NameConflict");
    }
    env.ctx.namespaces.mark(NS);
    env.sync_namespaces().await;
    assert_eq!(
        env.fake.get(&limit_ranges(), "safeapp-limits").unwrap(),
        before
    );
    let conflicts: Vec<Value> = env
        .events()
        .into_iter()
        .filter(|e| e["reason"] == "NameConflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["regarding"]["kind"], "LimitRange");
}

// The shared LimitRange failing (here a 403) does not stop an app's own children.
#[tokio::test]
async fn limit_range_failure_does_not_block_the_apps() {
    let env = env();
    env.fake.fail(Method::PATCH, "/limitranges/", 403, 100);
    env.create("web", web_spec());
    let app: SafeApp = serde_json::from_value(env.app("web")).unwrap();
    controller::app::reconcile_app(&app, &env.ctx)
        .await
        .expect("the app's own children");
    let err = controller::namespace::reconcile_namespace(NS, &env.ctx)
        .await
        .expect_err("the LimitRange is refused");
    assert_eq!(err.api_status(), Some(403));
    for coll in [deployments(), services(), pdbs()] {
        assert!(env.fake.get(&coll, "web").is_some(), "{coll}");
    }
}

// A sidecar injector owning its own container is not blamed for the app container's
// image; the injected container is not drift; each DriftCorrected Event has its own note.
#[tokio::test]
async fn drift_names_the_right_manager_with_current_notes() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    env.fake.edit(
        &deployments(),
        "web",
        "istio-injector",
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"istio-proxy\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}),
        |d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "istio-proxy", "image": "istio/proxyv2:1.24.0"}));
        },
    );
    env.fake.clear_calls();
    env.reconcile("web").await.expect("sidecar is not drift");
    assert!(env.fake.writes().is_empty(), "{:?}", env.fake.writes());
    env.fake.edit(
        &deployments(),
        "web",
        "kubectl-set",
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
        |d| {
            let containers = d["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap();
            let web = containers.iter_mut().find(|c| c["name"] == "web").unwrap();
            web["image"] = json!("registry.example.com/web:6.6.6");
        },
    );
    env.reconcile("web").await.expect("image drift");
    let last = &env.app("web")["status"]["lastDriftCorrection"];
    assert_eq!(last["manager"], "kubectl-set");
    env.fake.edit(
        &deployments(),
        "web",
        "kubectl-label",
        json!({"f:metadata": {"f:labels": {"f:tier": {}}}}),
        |d| d["metadata"]["labels"]["tier"] = json!("frontend"),
    );
    env.reconcile("web").await.expect("label drift");
    let notes = env.notes("DriftCorrected");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("containers[0].image") && notes[0].contains("kubectl-set"),
        "{notes:?}"
    );
    assert!(!notes[0].contains("istio-injector"), "{notes:?}");
    assert!(
        notes[1].contains("metadata.labels.tier") && notes[1].contains("kubectl-label"),
        "{notes:?}"
    );
    // The injected container survived the corrections.
    let d = env.fake.get(&deployments(), "web").unwrap();
    assert!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "istio-proxy")
    );
}

/// Turns autoscaling on and lets the "HPA" scale the Deployment to `replicas`.
async fn scaled_out_by_hpa(env: &Env, replicas: i64) {
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    set_spec(env, "web", |s| {
        s["autoscaling"] = json!({"minReplicas": 2, "maxReplicas": 30})
    });
    env.reconcile("web").await.expect("autoscaling on");
    env.fake.edit(
        &deployments(),
        "web",
        "kube-controller-manager",
        json!({"f:spec": {"f:replicas": {}}}),
        |d| d["spec"]["replicas"] = json!(replicas),
    );
    env.reconcile("web").await.expect("hpa scaled");
    assert_eq!(
        env.fake.get(&deployments(), "web").unwrap()["spec"]["replicas"],
        replicas
    );
}

// Autoscaling off without spec.replicas: the HPA goes first and the Deployment keeps the
// count the HPA reached (never the default), on every later resync too.
#[tokio::test]
async fn autoscaling_off_keeps_the_scaled_out_count() {
    let env = env();
    scaled_out_by_hpa(&env, 20).await;
    set_spec(&env, "web", |s| {
        s.as_object_mut().unwrap().remove("autoscaling");
    });
    env.fake.clear_calls();
    env.reconcile("web").await.expect("off");
    assert!(env.fake.get(&hpas(), "web").is_none());
    assert_eq!(
        env.fake.get(&deployments(), "web").unwrap()["spec"]["replicas"],
        20
    );
    assert_eq!(env.app("web")["status"]["heldReplicas"], 20);
    let writes = env.child_writes();
    let hpa_at = writes
        .iter()
        .position(|w| w.starts_with("DELETE") && w.contains("horizontalpodautoscalers"));
    let dep_at = writes.iter().position(|w| w.contains("/deployments/web"));
    assert!(hpa_at.is_some() && hpa_at < dep_at, "{writes:?}");
    env.fake.clear_calls();
    env.reconcile("web").await.expect("resync");
    assert!(env.fake.writes().is_empty(), "{:?}", env.fake.writes());
    assert_eq!(
        env.fake.get(&deployments(), "web").unwrap()["spec"]["replicas"],
        20
    );
}

// Autoscaling off with spec.replicas: the user's count, in one write after the HPA is gone.
#[tokio::test]
async fn autoscaling_off_with_replicas_applies_them_in_one_step() {
    let env = env();
    scaled_out_by_hpa(&env, 20).await;
    set_spec(&env, "web", |s| {
        s.as_object_mut().unwrap().remove("autoscaling");
        s["replicas"] = json!(3);
    });
    env.fake.clear_calls();
    env.reconcile("web").await.expect("off");
    let dep_writes: Vec<String> = env
        .child_writes()
        .into_iter()
        .filter(|w| w.contains("/deployments/web"))
        .collect();
    assert_eq!(dep_writes.len(), 1, "{dep_writes:?}");
    assert_eq!(
        env.fake.get(&deployments(), "web").unwrap()["spec"]["replicas"],
        3
    );
    assert!(env.app("web")["status"]["heldReplicas"].is_null());
}

// An invalid spec with many problems: the status message stays bounded and counts the
// problems it leaves out.
#[tokio::test]
async fn invalid_spec_message_is_bounded() {
    let env = env();
    let mut spec = web_spec();
    spec["ports"] = json!(
        (0..80)
            .map(|i| json!({"name": format!("Port_Name_Far_Too_Long_{i}"), "port": 8000 + i}))
            .collect::<Vec<_>>()
    );
    env.create("web", spec);
    env.reconcile("web").await.expect("reconcile");
    let ready = env.condition("web", "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(message.len() <= 1024, "{}", message.len());
    assert!(message.starts_with("spec.ports[0].name"), "{message}");
    assert!(message.contains(" more"), "{message}");
}

// A running app whose spec turns into an escape attempt is refused with every field
// path, and nothing that was running changes: no child write, Deployment as it was.
#[tokio::test]
async fn escape_attempt_leaves_the_running_app_alone() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    let before = env.fake.get(&deployments(), "web").expect("deployment");
    set_spec(&env, "web", |spec| {
        spec["securityProfile"] = json!("none");
        spec["priorityClassName"] = json!("system-node-critical");
        spec["serviceAccountName"] = json!("some-privileged-sa");
        spec["service"] = json!({"type": "LoadBalancer"});
        spec["initContainers"] = json!([{"name": "x", "image": "busybox:1.36",
                                         "securityContext": {"privileged": true}}]);
        spec["volumes"] = json!([{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}]);
        spec["annotations"] =
            json!({"container.apparmor.security.beta.kubernetes.io/web": "unconfined"});
    });
    env.fake.clear_calls();
    let action = env.reconcile("web").await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    let writes = env.child_writes();
    assert!(
        writes.iter().all(|w| w.ends_with("/safeapps/web/status")),
        "{writes:?}"
    );
    let ready = env.condition("web", "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    for path in [
        "spec.securityProfile",
        "spec.priorityClassName",
        "spec.serviceAccountName",
        "spec.service.type",
        "spec.volumes[0].nfs",
    ] {
        assert!(message.contains(path), "{path} missing in {message}");
    }
    let after = env.fake.get(&deployments(), "web").expect("still there");
    assert_eq!(before["spec"], after["spec"]);
}

// A SafeApp in a namespace the policy denies gets NamespaceNotAllowed and nothing else:
// no child, no shared LimitRange, no Event; the operator's own namespace is denied too.
#[tokio::test]
async fn denied_namespace_is_reported_not_acted_in() {
    let env = env_with(Policy::default().for_operator_namespace("safeapp-system"));
    for ns in ["kube-system", "safeapp-system"] {
        let apps = collection("safeapp.dev/v1alpha1", ns, "safeapps");
        let mut app = safeapp("web", web_spec());
        app["metadata"]["namespace"] = json!(ns);
        env.fake.insert(&apps, app);
        env.fake.clear_calls();
        let stored: SafeApp =
            serde_json::from_value(env.fake.get(&apps, "web").unwrap()).expect("typed");
        let action = controller::app::reconcile_app(&stored, &env.ctx)
            .await
            .expect("reconcile");
        env.sync_namespaces().await;
        assert_eq!(action, Action::await_change());
        let writes: Vec<String> = env
            .fake
            .writes()
            .into_iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect();
        assert_eq!(writes.len(), 1, "only the status: {writes:?}");
        assert!(writes[0].ends_with("/safeapps/web/status"), "{writes:?}");
        let app = env.fake.get(&apps, "web").unwrap();
        let ready = app["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["type"] == "Ready").cloned())
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "NamespaceNotAllowed");
        assert!(ready["message"].as_str().unwrap().contains(ns));
        for kind in [
            collection("apps/v1", ns, "deployments"),
            collection("v1", ns, "limitranges"),
        ] {
            assert!(env.fake.list(&kind).is_empty(), "{kind}");
        }
    }
}

fn network_policies() -> String {
    collection("networking.k8s.io/v1", NS, "networkpolicies")
}
fn ingresses() -> String {
    collection("networking.k8s.io/v1", NS, "ingresses")
}
fn http_routes() -> String {
    collection("gateway.networking.k8s.io/v1", NS, "httproutes")
}

fn exposed_spec(expose: Value) -> Value {
    let mut spec = web_spec();
    spec["expose"] = expose;
    spec
}

// The NetworkPolicy and the Ingress follow every rule of the other children: created
// owned and labelled, zero writes at steady state, drift put back, pruned when the spec
// no longer asks for them.
#[tokio::test]
async fn traffic_children_follow_the_rules() {
    let mut policy = Policy::default();
    policy.network_policy.exposed_from = vec!["ingress-nginx".into()];
    let env = env_with(policy);
    env.create(
        "web",
        exposed_spec(json!({"hosts": ["web.example.com"], "ingressClassName": "nginx"})),
    );
    env.reconcile("web").await.expect("first");
    for coll in [network_policies(), ingresses()] {
        let obj = env.fake.get(&coll, "web").expect("created");
        assert_eq!(obj["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "safeapp-operator"
        );
    }
    assert_eq!(env.condition("web", "Exposed")["reason"], "IngressCreated");
    env.fake.clear_calls();
    env.reconcile("web").await.expect("steady");
    assert_eq!(env.fake.writes().len(), 0, "{:?}", env.child_writes());

    env.fake
        .edit(&network_policies(), "web", "kubectl-edit", json!({}), |n| {
            n["spec"]["policyTypes"] = json!([]);
            n["spec"]["ingress"] = json!([{}]);
        });
    env.reconcile("web").await.expect("drift");
    let n = env.fake.get(&network_policies(), "web").unwrap();
    assert_eq!(n["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        env.app("web")["status"]["lastDriftCorrection"]["kind"],
        "NetworkPolicy"
    );

    set_spec(&env, "web", |s| {
        s.as_object_mut().unwrap().remove("expose");
    });
    env.reconcile("web").await.expect("unexposed");
    assert!(
        env.fake.get(&ingresses(), "web").is_none(),
        "Ingress pruned"
    );
    assert_eq!(env.condition("web", "Exposed"), Value::Null);
}

// Network policies turned off in the policy: the operator's NetworkPolicy is removed.
#[tokio::test]
async fn network_policy_mode_off_prunes() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    assert!(env.fake.get(&network_policies(), "web").is_some());
    let mut policy = Policy::default();
    policy.network_policy.mode = safeapp::policy::NetworkPolicyMode::Off;
    let env = env.reconfigure(policy);
    env.reconcile("web").await.expect("off");
    assert!(env.fake.get(&network_policies(), "web").is_none());
}

// A NetworkPolicy of the same name made by someone else is left alone and reported.
#[tokio::test]
async fn foreign_network_policy_is_a_conflict() {
    let env = env();
    env.fake.insert(
        &network_policies(),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "web", "namespace": NS}, "spec": {"podSelector": {}}}),
    );
    env.create("web", web_spec());
    env.reconcile("web").await.expect("reconcile");
    let foreign = env.fake.get(&network_policies(), "web").unwrap();
    assert_eq!(foreign["spec"], json!({"podSelector": {}}));
    assert_eq!(env.condition("web", "Ready")["reason"], "NameConflict");
}

// Exposed through a Gateway: the HTTPRoute is applied, and the Gateway's verdict in the
// route's status becomes the Exposed condition.
#[tokio::test]
async fn http_route_status_is_reflected() {
    let mut policy = Policy::default();
    policy.network_policy.exposed_from = vec!["gw".into()];
    let env = env_with(policy);
    env.create(
        "web",
        exposed_spec(
            json!({"hosts": ["web.example.com"], "gateway": {"name": "public", "namespace": "gw"}}),
        ),
    );
    env.reconcile("web").await.expect("first");
    let route = env.fake.get(&http_routes(), "web").expect("route");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "public");
    assert_eq!(env.condition("web", "Exposed")["reason"], "Pending");
    let set_status = |accepted: &str, refs: &str| {
        let conds = json!([
            {"type": "Accepted", "status": accepted, "reason": "NotAllowedByListeners",
             "message": "no listener allows routes from shop", "lastTransitionTime": "2026-11-30T00:00:00Z"},
            {"type": "ResolvedRefs", "status": refs, "reason": "ResolvedRefs", "message": "",
             "lastTransitionTime": "2026-11-30T00:00:00Z"}
        ]);
        env.fake
            .edit(&http_routes(), "web", "gateway-controller", json!({}), |r| {
                r["status"] = json!({"parents": [{"parentRef": {"name": "public", "namespace": "gw"},
                    "controllerName": "example.com/gateway", "conditions": conds}]});
            });
    };
    set_status("False", "True");
    env.reconcile("web").await.expect("refused");
    let exposed = env.condition("web", "Exposed");
    assert_eq!(exposed["status"], "False");
    assert_eq!(exposed["reason"], "NotAccepted");
    assert!(
        exposed["message"]
            .as_str()
            .unwrap()
            .contains("no listener allows")
    );
    set_status("True", "True");
    env.fake.clear_calls();
    env.reconcile("web").await.expect("accepted");
    assert_eq!(env.condition("web", "Exposed")["status"], "True");
    // Only the status changed: the route itself is not written.
    assert!(
        env.child_writes().iter().all(|w| !w.contains("httproutes")),
        "{:?}",
        env.child_writes()
    );
}

// Without the Gateway API installed, the app reports it (not an error loop: a retry a
// minute) and everything else is applied.
#[tokio::test]
async fn missing_gateway_api_is_reported() {
    let env = env();
    env.fake
        .fail(Method::PATCH, "/httproutes/", 404, usize::MAX);
    env.create(
        "web",
        exposed_spec(json!({"hosts": ["web.example.com"], "gateway": {"name": "public"}})),
    );
    let action = env.reconcile("web").await.expect("not an error");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let exposed = env.condition("web", "Exposed");
    assert_eq!(exposed["reason"], "GatewayAPIMissing");
    assert!(env.fake.get(&deployments(), "web").is_some());
    assert_eq!(env.condition("web", "Degraded")["status"], "False");
    // Installed later: the next try applies the route.
    env.fake.clear_failures();
    env.reconcile("web").await.expect("installed");
    assert!(env.fake.get(&http_routes(), "web").is_some());
    // Switched to an Ingress: the route is pruned, the Ingress created.
    set_spec(&env, "web", |s| {
        s["expose"] = json!({"hosts": ["web.example.com"], "ingressClassName": "nginx"});
    });
    env.reconcile("web").await.expect("switched");
    assert!(
        env.fake.get(&http_routes(), "web").is_none(),
        "route pruned"
    );
    assert!(env.fake.get(&ingresses(), "web").is_some());
}

// Both sides visible: a rule naming another SafeApp reports whether that app declares
// the matching rule, and a name that matches no SafeApp.
#[tokio::test]
async fn access_policies_report_the_other_side() {
    let env = env();
    let mut front = web_spec();
    front["accessPolicy"] = json!({"outbound": [{"app": "api"}, {"app": "ghost"}]});
    env.create("front", front);
    let mut api = web_spec();
    api["accessPolicy"] = json!({"inbound": [{"app": "other"}]});
    env.create("api", api);
    env.reconcile("front").await.expect("front");
    let matched = env.condition("front", "AccessPoliciesMatched");
    assert_eq!(matched["status"], "False");
    let message = matched["message"].as_str().unwrap();
    assert!(
        message.contains("api (namespace shop) does not list front as an inbound caller"),
        "{message}"
    );
    assert!(message.contains("no SafeApp ghost"), "{message}");

    set_spec(&env, "api", |s| {
        s["accessPolicy"] = json!({"inbound": [{"app": "front"}]});
    });
    set_spec(&env, "front", |s| {
        s["accessPolicy"] = json!({"outbound": [{"app": "api"}]});
    });
    env.reconcile("front").await.expect("front again");
    env.reconcile("api").await.expect("api");
    assert_eq!(
        env.condition("front", "AccessPoliciesMatched")["status"],
        "True"
    );
    assert_eq!(
        env.condition("api", "AccessPoliciesMatched")["status"],
        "True"
    );
    // No app named in rules: no such condition.
    env.create("plain", web_spec());
    env.reconcile("plain").await.expect("plain");
    assert_eq!(env.condition("plain", "AccessPoliciesMatched"), Value::Null);
}

// Exposed through an Ingress while the default NetworkPolicy admits no ingress
// controller: the app says so instead of claiming to be reachable.
#[tokio::test]
async fn exposure_blocked_by_the_network_policy_is_reported() {
    let env = env();
    env.create(
        "web",
        exposed_spec(json!({"hosts": ["web.example.com"], "ingressClassName": "nginx"})),
    );
    env.reconcile("web").await.expect("reconcile");
    let exposed = env.condition("web", "Exposed");
    assert_eq!(exposed["status"], "False");
    assert_eq!(exposed["reason"], "BlockedByNetworkPolicy");
    // Declaring the controller's namespace as a caller lifts it.
    set_spec(&env, "web", |s| {
        s["accessPolicy"] = json!({"inbound": [{"namespace": "ingress-nginx"}]});
    });
    env.reconcile("web").await.expect("again");
    assert_eq!(env.condition("web", "Exposed")["reason"], "IngressCreated");
}
