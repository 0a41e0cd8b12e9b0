//! Canary releases (`spec.rollout.canary`) against the in-memory API, with the
//! Deployment controller played by `FakeApi::deployment_step` (pods included): the
//! steps by replica ratio and behind a Gateway, the gate's pod checks aborting a canary,
//! the annotations, a promotion, and an operator restarted in the middle. Time passes by
//! moving the step's start back in the SafeApp's status (what a step's wait would do).
//! The Prometheus check runs against a real Prometheus (`prometheus_server`: Debian's
//! package, backfilled with promtool), both on its own and inside a whole canary.

mod fake;
mod prometheus_server;

use fake::collection;
use fake::harness::{Env, NS, apps, deployments, env, env_on, services, set_spec, web_spec};
use std::time::Duration;

use safeapp::policy::Policy;
use safeapp::prometheus::{self, Verdict};
use safeapp::validate::ResolvedCheck;
use serde_json::{Value, json};

fn routes() -> String {
    collection("gateway.networking.k8s.io/v1", NS, "httproutes")
}

fn canary_spec(gateway: bool) -> Value {
    let mut spec = web_spec();
    spec["replicas"] = json!(4);
    spec["rollout"] = json!({"canary": {"steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "2m"}]}});
    if gateway {
        spec["expose"] = json!({"hosts": ["shop.example.com"], "gateway": {"name": "public", "namespace": "gw"}});
    }
    spec
}

/// The Deployment controller's turn for both Deployments.
fn roll(env: &Env) {
    env.fake.deployment_step(NS, "web");
    env.fake.deployment_step(NS, "web-canary");
}

fn canary_status(env: &Env) -> Value {
    env.app("web")["status"]["canary"].clone()
}

/// As if the step had started `secs` earlier.
fn age_step(env: &Env, secs: i64) {
    env.fake
        .edit(&apps(), "web", "safeapp-operator", json!({}), |a| {
            let started: k8s_openapi::jiff::Timestamp = a["status"]["canary"]["stepStarted"]
                .as_str()
                .expect("a step in progress")
                .parse()
                .expect("a time");
            let earlier = started - k8s_openapi::jiff::SignedDuration::from_secs(secs);
            a["status"]["canary"]["stepStarted"] = json!(earlier.to_string());
            // Since when its pods serve, and the last evaluation, are as much older.
            for field in [
                "/status/canary/servingSince",
                "/status/canary/lastAnalysis/time",
            ] {
                if let Some(t) = a.pointer(field).and_then(Value::as_str) {
                    let t: k8s_openapi::jiff::Timestamp = t.parse().expect("a time");
                    let earlier = t - k8s_openapi::jiff::SignedDuration::from_secs(secs);
                    *a.pointer_mut(field).expect("field") = json!(earlier.to_string());
                }
            }
        });
}

fn image(d: &Value) -> &str {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

fn deployment(env: &Env, name: &str) -> Value {
    env.fake.get(&deployments(), name).expect(name)
}

/// An app running 1.0.0, its pods carrying their track, then changed to `new_image`.
async fn started(env: &Env, gateway: bool, new_image: &str) {
    env.create("web", canary_spec(gateway));
    env.reconcile("web").await.expect("create");
    roll(env);
    env.reconcile("web").await.expect("settle");
    assert_eq!(
        canary_status(env),
        Value::Null,
        "the first rollout is direct"
    );
    assert_eq!(
        deployment(env, "web")["spec"]["template"]["metadata"]["labels"]["track"],
        "stable"
    );
    set_spec(env, "web", |s| s["image"] = json!(new_image));
    env.reconcile("web").await.expect("canary starts");
}

// A whole canary by replica ratio: the stable Deployment is never rolled until the last
// step passed; the canary takes its share of the pods; one step per reconcile; the
// promotion rolls the stable, then the canary goes to 0.
#[tokio::test]
async fn a_canary_walks_its_steps_and_is_promoted() {
    let env = env();
    started(&env, false, "registry.example.com/web:2.0.0").await;
    let stable_generation = deployment(&env, "web")["metadata"]["generation"].clone();
    let st = canary_status(&env);
    assert_eq!(st["phase"], "Progressing");
    assert_eq!(
        (st["step"].as_i64(), st["weight"].as_i64()),
        (Some(0), Some(10))
    );
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:1.0.0"
    );
    let canary = deployment(&env, "web-canary");
    assert_eq!(image(&canary), "registry.example.com/web:2.0.0");
    assert_eq!(
        canary["spec"]["template"]["metadata"]["labels"]["track"],
        "canary"
    );
    assert_eq!(canary["spec"]["selector"]["matchLabels"]["track"], "canary");
    // 4 stable pods: 10% -> 1 canary pod behind the one Service (1 of 5).
    assert_eq!(canary["spec"]["replicas"], 1);
    assert_eq!(env.condition("web", "Ready")["reason"], "CanaryProgressing");
    assert_eq!(env.condition("web", "Reconciling")["status"], "True");
    assert_eq!(env.condition("web", "Stalled")["status"], "False");
    // Within the pause nothing moves, however often it is reconciled.
    roll(&env);
    env.reconcile("web").await.unwrap();
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["step"], 0);
    // The pause is over and the pods are healthy: step 2, and only step 2.
    age_step(&env, 61);
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(
        (st["step"].as_i64(), st["weight"].as_i64()),
        (Some(1), Some(50))
    );
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["step"], 1);
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 4);
    // Step 2's watch starts once its pods serve.
    roll(&env);
    env.reconcile("web").await.unwrap();
    assert!(canary_status(&env)["servingSince"].is_string());
    // The stable Deployment was not written during the steps.
    assert_eq!(
        deployment(&env, "web")["metadata"]["generation"],
        stable_generation
    );
    // The last step passed: the stable rolls to the new template (maxUnavailable 0).
    age_step(&env, 121);
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Promoting");
    let stable = deployment(&env, "web");
    assert_eq!(image(&stable), "registry.example.com/web:2.0.0");
    assert_eq!(
        stable["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(
        env.condition("web", "Reconciling")["reason"],
        "CanaryPromoting"
    );
    // Until it is available the canary keeps serving its share.
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 4);
    roll(&env);
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(
        (st["phase"].as_str(), st["weight"].as_i64()),
        (Some("Succeeded"), Some(0))
    );
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 0);
    roll(&env);
    env.reconcile("web").await.unwrap();
    assert_eq!(env.condition("web", "Ready")["status"], "True");
    assert_eq!(
        env.app("web")["status"]["template"]["hash"],
        st["canaryHash"]
    );
    // Steps, promotion and scale-down were the operator's own changes, never drift.
    assert_eq!(env.app("web")["status"]["lastDriftCorrection"], Value::Null);
    // The next change is a canary again.
    set_spec(&env, "web", |s| {
        s["image"] = json!("registry.example.com/web:3.0.0")
    });
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(
        (st["phase"].as_str(), st["step"].as_i64()),
        (Some("Progressing"), Some(0))
    );
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:2.0.0"
    );
}

// Behind a Gateway: the route splits between the stable Service (pinned to the stable
// pods) and the canary's; drift repair leaves the weights to the steps and repairs the
// rest; the split ends with all traffic on stable.
#[tokio::test]
async fn behind_a_gateway_the_route_is_split_by_weight() {
    let env = env();
    started(&env, true, "registry.example.com/web:2.0.0").await;
    // No share before the canary's pods are available: the Gateway would send it to a
    // backend with no endpoints.
    let route = env.fake.get(&routes(), "web").expect("route");
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(
        (refs[0]["weight"].as_i64(), refs[1]["weight"].as_i64()),
        (Some(100), Some(0))
    );
    roll(&env);
    env.reconcile("web").await.unwrap();
    let route = env.fake.get(&routes(), "web").expect("route");
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(refs[0]["name"], "web");
    assert_eq!(refs[0]["weight"], 90);
    assert_eq!(refs[1]["name"], "web-canary");
    assert_eq!(refs[1]["weight"], 10);
    assert_eq!(refs[1]["port"], refs[0]["port"]);
    let stable_svc = env.fake.get(&services(), "web").unwrap();
    assert_eq!(stable_svc["spec"]["selector"]["track"], "stable");
    let canary_svc = env.fake.get(&services(), "web-canary").unwrap();
    assert_eq!(canary_svc["spec"]["selector"]["track"], "canary");
    assert_eq!(canary_svc["spec"]["type"], "ClusterIP");
    // Sized for its share: 10% of 4 -> 1 pod.
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 1);
    assert_eq!(env.app("web")["status"]["canary"]["routedWeight"], 10);
    roll(&env);
    // Someone edits the weights and a hostname: the hostname is put back, the weights
    // are the steps' to write.
    env.fake
        .edit(&routes(), "web", "kubectl-edit", json!({}), |r| {
            r["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(70);
            r["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(30);
            r["spec"]["hostnames"] = json!(["evil.example.com"]);
        });
    env.reconcile("web").await.unwrap();
    let route = env.fake.get(&routes(), "web").unwrap();
    assert_eq!(route["spec"]["hostnames"], json!(["shop.example.com"]));
    let drift = &env.app("web")["status"]["lastDriftCorrection"];
    assert_eq!(drift["kind"], "HTTPRoute");
    assert!(
        drift["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f.as_str().unwrap().contains("weight")),
        "{drift}"
    );
    // The next step writes its weights.
    age_step(&env, 61);
    env.reconcile("web").await.unwrap();
    let route = env.fake.get(&routes(), "web").unwrap();
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(
        (refs[0]["weight"].as_i64(), refs[1]["weight"].as_i64()),
        (Some(50), Some(50))
    );
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 2);
    // A reconcile at rest writes nothing.
    roll(&env);
    env.reconcile("web").await.unwrap();
    env.fake.clear_calls();
    env.reconcile("web").await.unwrap();
    let writes: Vec<String> = env
        .child_writes()
        .into_iter()
        .filter(|w| !w.contains("/status"))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    // Promotion, then all traffic to stable and the pin lifted.
    age_step(&env, 121);
    env.reconcile("web").await.unwrap();
    roll(&env);
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Succeeded");
    let route = env.fake.get(&routes(), "web").unwrap();
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(
        (refs[0]["weight"].as_i64(), refs[1]["weight"].as_i64()),
        (Some(100), Some(0))
    );
    let stable_svc = env.fake.get(&services(), "web").unwrap();
    assert_eq!(stable_svc["spec"]["selector"].get("track"), None);
}

// A canary whose pods crash is aborted at once: weight 0, canary at 0, the stable
// Deployment untouched, Stalled with the check and the pod; a new generation starts
// over, and a spec back on the stable template ends it.
#[tokio::test]
async fn a_crashing_canary_is_aborted_and_a_new_generation_starts_over() {
    let env = env();
    started(&env, true, "registry.example.com/web:2.0.0-crash").await;
    let stable_before = deployment(&env, "web");
    roll(&env);
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(st["phase"], "Aborted");
    assert!(
        st["message"].as_str().unwrap().contains("CrashLoopBackOff"),
        "{st}"
    );
    let stalled = env.condition("web", "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "CanaryAborted");
    let counted = |event: &'static str| {
        env.metrics
            .canary_events
            .get_or_create(&[("event", event)])
            .get()
    };
    assert_eq!((counted("CanaryStarted"), counted("CanaryAborted")), (1, 1));
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("check pods failed: canary pod web-canary-")
    );
    assert_eq!(env.condition("web", "Reconciling")["status"], "False");
    assert_eq!(env.condition("web", "Ready")["reason"], "CanaryAborted");
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 0);
    let route = env.fake.get(&routes(), "web").unwrap();
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][1]["weight"], 0);
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["weight"], 100);
    let stable_after = deployment(&env, "web");
    assert_eq!(
        stable_after["metadata"]["generation"],
        stable_before["metadata"]["generation"]
    );
    assert_eq!(stable_after["spec"], stable_before["spec"]);
    // It stays aborted however often it is reconciled.
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Aborted");
    // A new generation (a fixed image) starts over from step 1.
    set_spec(&env, "web", |s| {
        s["image"] = json!("registry.example.com/web:2.0.1")
    });
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(
        (st["phase"].as_str(), st["step"].as_i64()),
        (Some("Progressing"), Some(0))
    );
    assert_eq!(env.condition("web", "Stalled")["status"], "False");
    // Back to the stable template: no canary, the canary Deployment and Service go.
    set_spec(&env, "web", |s| {
        s["image"] = json!("registry.example.com/web:1.0.0")
    });
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env), Value::Null);
    assert!(env.fake.get(&deployments(), "web-canary").is_none());
    assert!(env.fake.get(&services(), "web-canary").is_none());
    assert_eq!(env.condition("web", "Stalled")["status"], "False");
}

// A restart during a step (or a canary never available past its deadline) fails the
// gate too.
#[tokio::test]
async fn a_restart_during_the_step_aborts() {
    let env = env();
    started(&env, false, "registry.example.com/web:2.0.0").await;
    roll(&env);
    env.reconcile("web").await.unwrap();
    let pods = collection("v1", NS, "pods");
    let pod = env
        .fake
        .list(&pods)
        .into_iter()
        .find(|p| p["metadata"]["labels"]["track"] == "canary")
        .expect("a canary pod");
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    env.fake.edit(&pods, &pod_name, "kubelet", json!({}), |p| {
        p["status"]["containerStatuses"][0]["restartCount"] = json!(1);
    });
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(st["phase"], "Aborted");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{pod_name} restarted")),
        "{st}"
    );
}

// The annotations: promote ends the steps early; abort aborts; a value present when a
// canary starts is not a decision for it.
#[tokio::test]
async fn annotations_promote_or_abort() {
    let env = env();
    started(&env, false, "registry.example.com/web:2.0.0").await;
    let annotate = |value: &str| {
        env.fake
            .edit(&apps(), "web", "kubectl-annotate", json!({}), |a| {
                a["metadata"]["annotations"] = json!({"safeapp.dev/canary": value});
            });
    };
    annotate("promote");
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Promoting");
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:2.0.0"
    );
    roll(&env);
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Succeeded");
    // The next canary starts with `promote` still there: no decision.
    set_spec(&env, "web", |s| {
        s["image"] = json!("registry.example.com/web:3.0.0")
    });
    env.reconcile("web").await.unwrap();
    roll(&env);
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Progressing");
    annotate("abort");
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(st["phase"], "Aborted");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("safeapp.dev/canary=abort")
    );
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:2.0.0"
    );
}

// An operator restarted (or failed over) in the middle resumes from the status: the
// same step, the same step start; then the canary goes on to the end.
#[tokio::test]
async fn a_restarted_operator_resumes_where_the_canary_was() {
    let env = env();
    started(&env, true, "registry.example.com/web:2.0.0").await;
    roll(&env);
    env.reconcile("web").await.unwrap();
    age_step(&env, 61);
    env.reconcile("web").await.unwrap();
    let before = canary_status(&env);
    assert_eq!(before["step"], 1);
    // A new operator process: nothing in memory, the same API.
    let env = env_on(env.fake.clone(), Policy::default());
    env.reconcile("web").await.unwrap();
    let after = canary_status(&env);
    assert_eq!(after["step"], 1);
    assert_eq!(after["stepStarted"], before["stepStarted"]);
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:1.0.0"
    );
    let route = env.fake.get(&routes(), "web").unwrap();
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][1]["weight"], 50);
    roll(&env);
    env.reconcile("web").await.unwrap();
    age_step(&env, 121);
    env.reconcile("web").await.unwrap();
    roll(&env);
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["phase"], "Succeeded");
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:2.0.0"
    );
}

// Turning the canary off mid-way rolls the stable directly and removes the canary.
#[tokio::test]
async fn removing_the_canary_rolls_the_stable_and_prunes_it() {
    let env = env();
    started(&env, true, "registry.example.com/web:2.0.0").await;
    set_spec(&env, "web", |s| {
        s["rollout"] = json!({});
    });
    env.reconcile("web").await.unwrap();
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:2.0.0"
    );
    assert!(env.fake.get(&deployments(), "web-canary").is_none());
    assert!(env.fake.get(&services(), "web-canary").is_none());
    let route = env.fake.get(&routes(), "web").unwrap();
    let refs = route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(refs.len(), 1, "{refs:?}");
    // The weight the steps set is gone; the API server's default is back.
    assert_eq!(refs[0]["weight"], 1, "{refs:?}");
    let stable_svc = env.fake.get(&services(), "web").unwrap();
    assert_eq!(stable_svc["spec"]["selector"].get("track"), None);
    assert_eq!(canary_status(&env), Value::Null);
}

// Someone else's change to the canary Deployment is drift: put back, and said so.
#[tokio::test]
async fn the_canary_deployment_is_drift_repaired() {
    let env = env();
    started(&env, false, "registry.example.com/web:2.0.0").await;
    env.fake.edit(
        &deployments(),
        "web-canary",
        "kubectl-edit",
        json!({}),
        |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:latest");
        },
    );
    env.reconcile("web").await.unwrap();
    assert_eq!(
        image(&deployment(&env, "web-canary")),
        "registry.example.com/web:2.0.0"
    );
    let drift = &env.app("web")["status"]["lastDriftCorrection"];
    assert_eq!(drift["name"], "web-canary");
    assert!(
        drift["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("spec.template.spec.containers[0].image")),
        "{drift}"
    );
}

fn check(query: &str, max: f64) -> ResolvedCheck {
    ResolvedCheck {
        query: query.into(),
        min: None,
        max: Some(max),
        interval: Duration::from_secs(5),
        failure_limit: 0,
        requests: None,
    }
}

// The check against a real Prometheus: within bounds passes, outside fails with the
// value; no data, too few requests, a query of many series and a query Prometheus
// refuses are inconclusive, never a pass.
#[tokio::test]
async fn the_prometheus_check_reads_a_real_prometheus() {
    let Some(address) = prometheus_server::address() else {
        return;
    };
    let timeout = Duration::from_secs(10);
    let good = prometheus::measure(
        address,
        &check(r#"canary_error_ratio{app="good"}"#, 0.01),
        timeout,
    )
    .await;
    assert_eq!(good.verdict, Verdict::Pass, "{good:?}");
    assert_eq!(good.value, Some(0.001));
    let bad = prometheus::measure(
        address,
        &check(r#"canary_error_ratio{app="bad"}"#, 0.01),
        timeout,
    )
    .await;
    assert_eq!(bad.verdict, Verdict::Fail, "{bad:?}");
    assert_eq!(bad.value, Some(0.2));
    assert!(bad.message.contains("above the maximum 0.01"), "{bad:?}");
    let min = ResolvedCheck {
        min: Some(0.5),
        max: None,
        ..check(r#"sum(canary_requests{app="good"}) / 1000"#, 0.0)
    };
    assert_eq!(
        prometheus::measure(address, &min, timeout).await.verdict,
        Verdict::Pass
    );
    let none = prometheus::measure(
        address,
        &check(r#"canary_error_ratio{app="absent"}"#, 0.01),
        timeout,
    )
    .await;
    assert_eq!(none.verdict, Verdict::Inconclusive, "{none:?}");
    assert!(none.message.contains("no data"), "{none:?}");
    // NaN (0/0) is no data too.
    let nan = prometheus::measure(
        address,
        &check(r#"canary_error_ratio{app="good"} * 0 / 0"#, 0.01),
        timeout,
    )
    .await;
    assert_eq!(nan.verdict, Verdict::Inconclusive, "{nan:?}");
    let quiet = ResolvedCheck {
        requests: Some((r#"canary_requests{app="quiet"}"#.into(), 100.0)),
        ..check(r#"canary_error_ratio{app="good"}"#, 0.01)
    };
    let few = prometheus::measure(address, &quiet, timeout).await;
    assert_eq!(few.verdict, Verdict::Inconclusive, "{few:?}");
    assert!(few.message.contains("only 3 requests"), "{few:?}");
    let busy = ResolvedCheck {
        requests: Some((r#"canary_requests{app="good"}"#.into(), 100.0)),
        ..check(r#"canary_error_ratio{app="good"}"#, 0.01)
    };
    assert_eq!(
        prometheus::measure(address, &busy, timeout).await.verdict,
        Verdict::Pass
    );
    let many = prometheus::measure(address, &check("canary_latency_seconds", 1.0), timeout).await;
    assert_eq!(many.verdict, Verdict::Inconclusive);
    assert!(many.message.contains("2 series"), "{many:?}");
    let refused = prometheus::measure(address, &check("sum(", 1.0), timeout).await;
    assert_eq!(refused.verdict, Verdict::Inconclusive);
    assert!(refused.message.contains("bad_data"), "{refused:?}");
}

fn with_prometheus(address: &str) -> Policy {
    let mut policy = Policy::default();
    policy.canary.prometheus_address = Some(address.into());
    policy
}

/// `canary_spec` with a Prometheus check on `query`, at most 1%.
fn analysed(env: &Env, query: &str) {
    let mut spec = canary_spec(true);
    spec["rollout"]["canary"]["analysis"] =
        json!({"prometheus": {"query": query, "max": 0.01, "interval": "5s"}});
    env.create("web", spec);
}

async fn change_image(env: &Env) {
    roll(env);
    env.reconcile("web").await.expect("settle");
    set_spec(env, "web", |s| {
        s["image"] = json!("registry.example.com/web:2.0.0")
    });
    env.reconcile("web").await.expect("canary starts");
    roll(env);
}

// A whole canary gated by a real Prometheus: a healthy metric passes each step; a bad
// one aborts at once with the query and its value; no data holds the step.
#[tokio::test]
async fn a_canary_gated_by_a_real_prometheus() {
    let Some(address) = prometheus_server::address() else {
        return;
    };
    // Healthy: measured, then each step passes once its pause is over.
    let env = env_on(fake::FakeApi::as_operator(), with_prometheus(address));
    analysed(&env, r#"canary_error_ratio{app="good"}"#);
    env.reconcile("web").await.unwrap();
    change_image(&env).await;
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(st["lastAnalysis"]["result"], "Pass", "{st}");
    assert_eq!(st["lastAnalysis"]["value"], 0.001);
    age_step(&env, 61);
    env.reconcile("web").await.unwrap();
    assert_eq!(canary_status(&env)["step"], 1);
    // A new step needs its own pass: measured once its pods serve.
    roll(&env);
    env.reconcile("web").await.unwrap();
    age_step(&env, 121);
    let before = canary_status(&env)["lastAnalysis"]["time"].clone();
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(st["phase"], "Promoting", "{st}");
    assert_ne!(
        st["lastAnalysis"]["time"], before,
        "step 2 was measured itself"
    );
    assert_eq!(st["lastAnalysis"]["result"], "Pass");

    // Failing: aborted on the first evaluation (failureLimit 0), the value in the message.
    let env = env_on(fake::FakeApi::as_operator(), with_prometheus(address));
    analysed(&env, r#"canary_error_ratio{app="bad"}"#);
    env.reconcile("web").await.unwrap();
    change_image(&env).await;
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(st["phase"], "Aborted", "{st}");
    let stalled = env.condition("web", "Stalled");
    assert_eq!(stalled["reason"], "CanaryAborted");
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.contains(r#"check prometheus failed: canary_error_ratio{app="bad"} = 0.2"#),
        "{message}"
    );
    assert_eq!(
        image(&deployment(&env, "web")),
        "registry.example.com/web:1.0.0"
    );
    assert_eq!(deployment(&env, "web-canary")["spec"]["replicas"], 0);

    // No data: inconclusive, the step never passes.
    let env = env_on(fake::FakeApi::as_operator(), with_prometheus(address));
    analysed(&env, r#"canary_error_ratio{app="absent"}"#);
    env.reconcile("web").await.unwrap();
    change_image(&env).await;
    env.reconcile("web").await.unwrap();
    age_step(&env, 600);
    env.reconcile("web").await.unwrap();
    let st = canary_status(&env);
    assert_eq!(
        (st["phase"].as_str(), st["step"].as_i64()),
        (Some("Progressing"), Some(0))
    );
    assert_eq!(st["lastAnalysis"]["result"], "Inconclusive");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("waiting for a passing analysis"),
        "{st}"
    );
    assert_eq!(env.condition("web", "Reconciling")["status"], "True");
}

// The running controller (resync 1 h, so no timer but the canary's own): each step ends
// at its deadline, the promotion follows the stable's rollout, all by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_controller_walks_a_canary_on_its_own() {
    use fake::running::{self, until};
    let fake = fake::FakeApi::as_operator();
    let mut spec = canary_spec(false);
    spec["rollout"]["canary"]["steps"] =
        json!([{"weight": 25, "pause": "10s"}, {"weight": 50, "pause": "10s"}]);
    fake.insert(&apps(), fake::harness::safeapp("web", spec));
    let (_, controller) = fake.deployment_controller(&deployments(), Duration::from_millis(200));
    let running = running::start(&fake, NS, Policy::default(), Duration::from_secs(3600), 4);
    let ready = |fake: &fake::FakeApi| {
        fake.get(&apps(), "web").is_some_and(|a| {
            a["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|x| x["type"] == "Ready" && x["status"] == "True")
            })
        })
    };
    until("Ready", Duration::from_secs(10), || ready(&fake)).await;
    fake.edit(&apps(), "web", "kubectl", json!({}), |a| {
        a["spec"]["image"] = json!("registry.example.com/web:2.0.0");
    });
    let phase = |fake: &fake::FakeApi| {
        fake.get(&apps(), "web").map(|a| {
            (
                a["status"]["canary"]["phase"].clone(),
                a["status"]["canary"]["step"].clone(),
            )
        })
    };
    until("the canary started", Duration::from_secs(5), || {
        phase(&fake) == Some((json!("Progressing"), json!(0)))
    })
    .await;
    let started_at = |fake: &fake::FakeApi| -> k8s_openapi::jiff::Timestamp {
        fake.get(&apps(), "web").unwrap()["status"]["canary"]["stepStarted"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = started_at(&fake);
    until("step 2", Duration::from_secs(15), || {
        phase(&fake) == Some((json!("Progressing"), json!(1)))
    })
    .await;
    // The step ended at its deadline (times are whole seconds), not at a resync.
    let waited = started_at(&fake).duration_since(first).as_secs_f64();
    assert!((9.0..=12.0).contains(&waited), "step 1 lasted {waited} s");
    let done = until("the promotion", Duration::from_secs(15), || {
        phase(&fake).is_some_and(|(p, _)| p == "Succeeded")
    })
    .await;
    println!("step 1 lasted {waited} s; promoted {done:?} after step 2 began");
    assert!(
        done >= Duration::from_secs(9),
        "step 2 ended early: {done:?}"
    );
    until("Ready again", Duration::from_secs(5), || ready(&fake)).await;
    let stable = fake.get(&deployments(), "web").unwrap();
    assert_eq!(image(&stable), "registry.example.com/web:2.0.0");
    controller.abort();
    running.stop().await;
}
