//! Rollouts people can trust, against the in-memory API: config data changes roll the
//! pods (and only data changes), operator-caused template changes are staged through a
//! bounded number of slots while user changes go at once, and `kubectl rollout
//! restart`/`pause` keep working.

mod fake;

use fake::collection;
use fake::harness::{Env, NS, deployments, env, env_on, set_spec, web_spec};
use fake::{FakeApi, apiserver::Rbac};
use kube::runtime::controller::Action;
use safeapp::api::v1alpha1::ConfigKind;
use safeapp::policy::Policy;
use safeapp::render::CONFIG_HASH_ANNOTATION;
use serde_json::{Value, json};

fn config_maps() -> String {
    collection("v1", NS, "configmaps")
}
fn secrets() -> String {
    collection("v1", NS, "secrets")
}

fn config_map(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": NS}, "data": data})
}

/// The app's spec reading `app-config` through envFrom.
fn spec_with_config() -> Value {
    let mut spec = web_spec();
    spec["envFrom"] = json!([{"configMapRef": {"name": "app-config"}}]);
    spec
}

impl Env {
    /// The pod template's config hash.
    fn config_hash(&self, name: &str) -> Option<String> {
        self.fake.get(&deployments(), name)?["spec"]["template"]["metadata"]["annotations"]
            [CONFIG_HASH_ANNOTATION]
            .as_str()
            .map(String::from)
    }

    /// What the config watch does on a change of `kind/name`: hands the new
    /// resourceVersion to the index; returns the apps it triggers.
    fn config_event(&self, kind: ConfigKind, name: &str) -> Vec<String> {
        let coll = match kind {
            ConfigKind::ConfigMap => config_maps(),
            ConfigKind::Secret => secrets(),
        };
        let rv = self
            .fake
            .get(&coll, name)
            .and_then(|o| o["metadata"]["resourceVersion"].as_str().map(String::from));
        self.ctx
            .config
            .observed(&(NS.to_string(), kind, name.to_string()), rv.as_deref())
    }

    /// Edits one key of a ConfigMap's data, as `kubectl edit` would.
    fn set_data(&self, name: &str, key: &str, value: impl Into<String>) {
        let value = value.into();
        self.fake
            .edit(&config_maps(), name, "kubectl-edit", json!({}), |c| {
                c["data"][key] = json!(value);
            });
    }

    fn deployment_writes(&self) -> usize {
        self.child_writes()
            .iter()
            .filter(|w| w.contains("/deployments/"))
            .count()
    }

    /// The Deployment as the Deployment controller would report it once its rollout is
    /// done: every replica updated and available at its current generation.
    fn finish_rollout(&self, name: &str) {
        self.fake
            .edit(&deployments(), name, "kube-controller-manager", json!({}), |d| {
                let generation = d["metadata"]["generation"].clone();
                let replicas = d["spec"]["replicas"].as_i64().unwrap_or(2);
                d["status"] = json!({"observedGeneration": generation, "replicas": replicas,
                    "updatedReplicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas});
            });
    }

    fn paused(&self, name: &str) -> bool {
        self.fake.get(&deployments(), name).expect("deployment")["spec"]["paused"] == true
    }
}

// The hash follows the referenced data: a data change rolls, a label edit (a new
// resourceVersion, same data) writes nothing, and changing the data back brings the
// first hash back (Kubernetes reuses the old ReplicaSet).
#[tokio::test]
async fn config_data_changes_roll_and_only_they_do() {
    let env = env();
    env.fake.insert(
        &config_maps(),
        config_map("app-config", json!({"LEVEL": "info"})),
    );
    env.create("web", spec_with_config());
    env.reconcile("web").await.expect("first");
    let first = env.config_hash("web").expect("hash on the template");

    env.fake.edit(
        &config_maps(),
        "app-config",
        "kubectl-label",
        json!({}),
        |c| {
            c["metadata"]["labels"] = json!({"team": "a"});
        },
    );
    assert_eq!(
        env.config_event(ConfigKind::ConfigMap, "app-config"),
        ["web"]
    );
    env.fake.clear_calls();
    env.reconcile("web").await.expect("after a label edit");
    assert_eq!(env.deployment_writes(), 0, "{:?}", env.child_writes());
    assert_eq!(env.config_hash("web").as_deref(), Some(first.as_str()));

    env.set_data("app-config", "LEVEL", "debug");
    env.config_event(ConfigKind::ConfigMap, "app-config");
    env.reconcile("web").await.expect("after a data change");
    let second = env.config_hash("web").expect("hash");
    assert_ne!(first, second, "a data change rolls the pods");
    // The change is the user's config, not drift and not an operator upgrade.
    assert_eq!(env.condition("web", "UpgradePending")["status"], "False");
    assert!(!env.paused("web"));

    env.set_data("app-config", "LEVEL", "info");
    env.config_event(ConfigKind::ConfigMap, "app-config");
    env.reconcile("web").await.expect("after the change back");
    assert_eq!(env.config_hash("web"), Some(first));
    // A steady state afterwards makes no write, and reads no ConfigMap (the digest is
    // kept until the watch reports a new resourceVersion).
    env.fake.clear_calls();
    env.reconcile("web").await.expect("steady");
    assert_eq!(env.deployment_writes(), 0);
    assert!(
        !env.fake
            .calls()
            .iter()
            .any(|c| c.path.contains("/configmaps")),
        "{:?}",
        env.fake.calls()
    );
}

// Every kind of reference counts: env valueFrom, envFrom, volumes, projected sources,
// and init containers; an event on an unreferenced object triggers nothing.
#[tokio::test]
async fn every_reference_kind_is_tracked() {
    let env = env();
    for name in ["a", "b", "c", "d", "unrelated"] {
        env.fake
            .insert(&config_maps(), config_map(name, json!({"k": "v"})));
    }
    let mut spec = web_spec();
    spec["env"] =
        json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "a", "key": "k"}}}]);
    spec["volumes"] = json!([
        {"name": "v1", "configMap": {"name": "b"}},
        {"name": "v2", "projected": {"sources": [{"configMap": {"name": "c"}}]}}
    ]);
    spec["initContainers"] = json!([{"name": "init", "image": "busybox:1.36",
                                    "envFrom": [{"configMapRef": {"name": "d"}}]}]);
    env.create("web", spec);
    env.reconcile("web").await.expect("first");
    assert!(env.config_hash("web").is_some());
    assert_eq!(env.ctx.config.tracked(), 4);
    for name in ["a", "b", "c", "d"] {
        let before = env.config_hash("web");
        env.fake
            .edit(&config_maps(), name, "kubectl-edit", json!({}), |c| {
                c["data"]["k"] = json!(format!("new-{name}"));
            });
        assert_eq!(
            env.config_event(ConfigKind::ConfigMap, name),
            ["web"],
            "{name}"
        );
        env.reconcile("web").await.expect("after the change");
        assert_ne!(env.config_hash("web"), before, "{name} rolls");
    }
    env.set_data("unrelated", "k", "x");
    assert!(
        env.config_event(ConfigKind::ConfigMap, "unrelated")
            .is_empty()
    );
}

// Opt-outs: a reference with rollOnChange false, or the whole app with
// rollOnConfigChange false, carries no hash and a data change writes nothing.
#[tokio::test]
async fn opt_outs_do_not_roll() {
    for patch in [
        json!({"configRefs": [{"kind": "ConfigMap", "name": "app-config", "rollOnChange": false}]}),
        json!({"rollOnConfigChange": false}),
    ] {
        let env = env();
        env.fake
            .insert(&config_maps(), config_map("app-config", json!({"k": "1"})));
        let mut spec = spec_with_config();
        for (k, v) in patch.as_object().unwrap() {
            spec[k] = v.clone();
        }
        env.create("web", spec);
        env.reconcile("web").await.expect("first");
        assert_eq!(env.config_hash("web"), None, "{patch}");
        env.set_data("app-config", "k", "2");
        assert!(
            env.config_event(ConfigKind::ConfigMap, "app-config")
                .is_empty()
        );
        env.fake.clear_calls();
        env.reconcile("web").await.expect("again");
        assert_eq!(env.deployment_writes(), 0, "{patch}");
    }
}

// A missing reference is reported in status, not an error loop; an optional one is
// not reported; creating the missing object triggers the app and rolls it.
#[tokio::test]
async fn missing_references_are_reported() {
    let env = env();
    let mut spec = spec_with_config();
    spec["envFrom"] = json!([
        {"configMapRef": {"name": "app-config"}},
        {"configMapRef": {"name": "extras", "optional": true}}
    ]);
    env.create("web", spec);
    let action = env.reconcile("web").await.expect("no error");
    assert_ne!(action, Action::await_change());
    assert_eq!(
        env.app("web")["status"]["missingConfig"],
        json!(["ConfigMap/app-config"])
    );
    let before = env.config_hash("web").expect("hash even when missing");
    env.fake
        .insert(&config_maps(), config_map("app-config", json!({"k": "v"})));
    assert_eq!(
        env.config_event(ConfigKind::ConfigMap, "app-config"),
        ["web"]
    );
    env.reconcile("web").await.expect("after creation");
    assert_eq!(env.app("web")["status"]["missingConfig"], Value::Null);
    assert_ne!(env.config_hash("web"), Some(before));
}

// Secrets count only when the operator may read them (--watch-secrets).
#[tokio::test]
async fn secrets_count_only_when_watched() {
    for watched in [false, true] {
        // Installed with the component when watched; the base RBAC has no Secret rule.
        let rbac = if watched {
            Rbac::operator_with_secrets()
        } else {
            Rbac::operator()
        };
        let mut env = env_on(FakeApi::with_rbac(rbac), Policy::default());
        env.ctx = env.ctx.with_secrets(watched);
        env.fake.insert(
            &secrets(),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "db", "namespace": NS}, "data": {"pw": "c2VjcmV0"}}),
        );
        let mut spec = web_spec();
        spec["envFrom"] = json!([{"secretRef": {"name": "db"}}]);
        env.create("web", spec);
        env.reconcile("web").await.expect("first");
        assert_eq!(env.config_hash("web").is_some(), watched);
        let reads_secrets = env.fake.calls().iter().any(|c| c.path.contains("/secrets"));
        assert_eq!(reads_secrets, watched, "secrets are read only when watched");
    }
}

/// The policy of "the next operator version": the same specs render another template.
fn next_version(max: u32) -> Policy {
    let mut p = Policy::default();
    p.defaults.pre_stop_sleep_seconds = 7;
    p.upgrades.max_concurrent_template_upgrades = max;
    p
}

fn pre_stop(env: &Env, name: &str) -> i64 {
    env.fake.get(&deployments(), name).expect("deployment")["spec"]["template"]["spec"]
        ["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap_or_default()
}

// An operator upgrade that changes every pod template rolls at most N Deployments at
// a time, the next only when one is available again, and all of them in the end; the
// ones waiting say so and stay paused on the new template.
#[tokio::test]
async fn operator_upgrades_are_staged() {
    const APPS: usize = 10;
    const SLOTS: usize = 3;
    let env = env();
    let names: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    for n in &names {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
        env.reconcile(n).await.expect("v1 available");
        assert_eq!(pre_stop(&env, n), 5);
    }
    let env = env.reconfigure(next_version(SLOTS as u32));
    let mut rounds = 0;
    loop {
        for n in &names {
            env.reconcile(n).await.expect("v2");
        }
        let rolling: Vec<&String> = names
            .iter()
            .filter(|n| !env.paused(n) && env.condition(n, "UpgradePending")["status"] == "False")
            .filter(|n| env.app(n)["status"]["template"]["generation"].is_number())
            .collect();
        let waiting: Vec<&String> = names.iter().filter(|n| env.paused(n)).collect();
        for n in &waiting {
            let pending = env.condition(n, "UpgradePending");
            assert_eq!(pending["status"], "True");
            assert_eq!(pending["reason"], "WaitingForSlot");
            // kstatus reads it as in progress: it goes by itself when a slot frees.
            let reconciling = env.condition(n, "Reconciling");
            assert_eq!(reconciling["reason"], "WaitingForSlot");
            assert_eq!(reconciling["status"], "True");
            assert_eq!(pre_stop(&env, n), 7, "the new template is applied, paused");
        }
        let in_flight = env.ctx.upgrades.in_use();
        assert!(in_flight <= SLOTS, "{in_flight} upgrades at once");
        // Read from the Deployments themselves: new template, not paused, not done.
        let rolling_now = names
            .iter()
            .filter(|n| {
                let d = env.fake.get(&deployments(), n).unwrap();
                pre_stop(&env, n) == 7
                    && !env.paused(n)
                    && d["status"]["observedGeneration"] != d["metadata"]["generation"]
            })
            .count();
        assert!(
            rolling_now <= SLOTS,
            "{rolling_now} Deployments rolling at once"
        );
        if waiting.is_empty() && in_flight == 0 {
            assert_eq!(rolling.len(), APPS);
            break;
        }
        // The Deployments rolling now finish; the next reconciles free their slots.
        for n in names.iter().filter(|n| !env.paused(n)) {
            env.finish_rollout(n);
        }
        rounds += 1;
        assert!(rounds <= APPS, "the queue does not move");
    }
    assert!(rounds >= APPS.div_ceil(SLOTS), "{rounds} rounds");
    for n in &names {
        assert_eq!(pre_stop(&env, n), 7);
        assert!(!env.paused(n));
    }
}

// While slots are full: the user's own spec change goes through at once (unpaused),
// `safeapp.dev/upgrade: now` takes the upgrade, `defer` holds it; and drift on a
// waiting Deployment is still repaired.
#[tokio::test]
async fn user_changes_and_annotations_bypass_the_queue() {
    let env = env();
    for n in ["busy", "edited", "eager", "patient"] {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
    }
    let env = env.reconfigure(next_version(1));
    env.reconcile("busy").await.expect("takes the only slot");
    assert!(!env.paused("busy"));
    env.reconcile("edited").await.expect("waits");
    assert!(env.paused("edited"));

    // Drift on a waiting Deployment is repaired; it stays paused.
    env.fake
        .edit(&deployments(), "edited", "kubectl-edit", json!({}), |d| {
            d["spec"]["revisionHistoryLimit"] = json!(99);
        });
    env.reconcile("edited").await.expect("drift");
    let d = env.fake.get(&deployments(), "edited").unwrap();
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert!(env.paused("edited"));

    set_spec(&env, "edited", |s| {
        s["image"] = json!("registry.example.com/web:2.0.0")
    });
    env.reconcile("edited").await.expect("user change");
    assert!(
        !env.paused("edited"),
        "the user's change goes through at once"
    );
    assert_eq!(env.condition("edited", "UpgradePending")["status"], "False");

    for (name, value, paused) in [("eager", "now", false), ("patient", "defer", true)] {
        env.fake.edit(
            &fake::harness::apps(),
            name,
            "kubectl-annotate",
            json!({}),
            |a| {
                a["metadata"]["annotations"] = json!({"safeapp.dev/upgrade": value});
            },
        );
        env.reconcile(name).await.expect("annotated");
        assert_eq!(env.paused(name), paused, "{name}");
    }
    assert_eq!(
        env.condition("patient", "UpgradePending")["reason"],
        "Deferred"
    );
    assert_eq!(pre_stop(&env, "eager"), 7);
}

// `kubectl rollout restart` is not undone, and `kubectl rollout pause` is left in
// place and reported; neither makes the operator write.
#[tokio::test]
async fn rollout_restart_and_pause_keep_working() {
    let env = env();
    env.create("web", web_spec());
    env.reconcile("web").await.expect("first");
    env.finish_rollout("web");
    env.reconcile("web").await.expect("available");

    env.fake
        .edit(&deployments(), "web", "kubectl-rollout", json!({}), |d| {
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
                json!("2026-11-30T03:00:00Z");
        });
    env.fake.clear_calls();
    env.reconcile("web").await.expect("after restart");
    assert_eq!(env.deployment_writes(), 0, "{:?}", env.child_writes());
    let d = env.fake.get(&deployments(), "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-30T03:00:00Z"
    );

    env.fake
        .edit(&deployments(), "web", "kubectl-rollout", json!({}), |d| {
            d["spec"]["paused"] = json!(true);
        });
    env.fake.clear_calls();
    env.reconcile("web").await.expect("after pause");
    assert_eq!(env.deployment_writes(), 0, "{:?}", env.child_writes());
    assert!(env.paused("web"), "the user's pause stays");
    let progressing = env.condition("web", "Reconciling");
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "DeploymentPaused");
    assert_eq!(env.condition("web", "UpgradePending")["status"], "False");
}

// Apps from an operator that kept no status.template: the upgrade is staged, and every
// held Deployment is unpaused when its turn comes (none stays paused).
#[tokio::test]
async fn apps_without_a_record_are_staged_and_released() {
    let env = env();
    for n in ["a", "b"] {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
        env.reconcile(n).await.expect("v1 available");
        env.fake.edit(
            &fake::harness::apps(),
            n,
            "older-operator",
            json!({}),
            |a| {
                a["status"].as_object_mut().unwrap().remove("template");
            },
        );
    }
    let env = env.reconfigure(next_version(1));
    env.reconcile("a").await.expect("a");
    env.reconcile("b").await.expect("b");
    assert!(!env.paused("a") && env.paused("b"), "one at a time");
    for _ in 0..3 {
        env.finish_rollout("a");
        env.reconcile("a").await.expect("a done");
        env.reconcile("b").await.expect("b");
        env.finish_rollout("b");
        env.reconcile("b").await.expect("b done");
    }
    assert!(!env.paused("b"), "b's turn came");
    assert_eq!(pre_stop(&env, "b"), 7);
    assert_eq!(env.ctx.upgrades.in_use(), 0);
}

// A waiting app's retries write nothing; its Deployment, deleted while it waits, comes
// back unpaused (a paused new Deployment would have no pods).
#[tokio::test]
async fn waiting_is_quiet_and_a_deleted_deployment_is_not_held() {
    let env = env();
    for n in ["busy", "waiting"] {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
    }
    let env = env.reconfigure(next_version(1));
    env.reconcile("busy").await.expect("slot");
    env.reconcile("waiting").await.expect("held");
    assert!(env.paused("waiting"));
    env.fake.clear_calls();
    env.reconcile("waiting").await.expect("retry");
    env.reconcile("waiting").await.expect("retry");
    assert_eq!(env.fake.writes().len(), 0, "{:?}", env.child_writes());
    env.fake.remove(&deployments(), "waiting");
    env.reconcile("waiting").await.expect("recreate");
    assert!(!env.paused("waiting"), "recreated unpaused");
}

// Slots go to apps that can use them: a Deployment someone paused takes none, and an
// app that turns invalid while holding one gives it up.
#[tokio::test]
async fn slots_are_not_held_by_apps_that_cannot_roll() {
    let env = env();
    for n in ["paused-by-user", "turns-invalid", "next"] {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
    }
    env.fake.edit(
        &deployments(),
        "paused-by-user",
        "kubectl-rollout",
        json!({}),
        |d| {
            d["spec"]["paused"] = json!(true);
        },
    );
    let env = env.reconfigure(next_version(1));
    env.reconcile("paused-by-user").await.expect("waits");
    assert_eq!(
        env.ctx.upgrades.in_use(),
        0,
        "a user-paused Deployment takes no slot"
    );
    env.reconcile("turns-invalid")
        .await
        .expect("takes the slot");
    assert_eq!(env.ctx.upgrades.in_use(), 1);
    set_spec(&env, "turns-invalid", |s| s["replicas"] = json!(-1));
    env.reconcile("turns-invalid").await.expect("invalid");
    assert_eq!(
        env.ctx.upgrades.in_use(),
        0,
        "the invalid app gave its slot up"
    );
    env.reconcile("next").await.expect("next");
    assert!(!env.paused("next"), "the next app got the slot");
}

impl Env {
    /// The reasons of every Event stored in the namespace.
    fn event_reasons(&self) -> Vec<String> {
        self.fake
            .list(&collection("events.k8s.io/v1", NS, "events"))
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    fn annotate(&self, name: &str, value: &str) {
        self.fake.edit(
            &fake::harness::apps(),
            name,
            "kubectl-annotate",
            json!({}),
            |a| a["metadata"]["annotations"] = json!({"safeapp.dev/upgrade": value}),
        );
    }
}

// The operator's own template change, held or rolled, is never reported as drift: no
// DriftCorrected Event, no status.lastDriftCorrection; when it rolls, one Normal
// TemplateUpgraded Event says why (here: the policy changed).
#[tokio::test]
async fn own_upgrades_are_not_drift() {
    let env = env();
    for n in ["first", "second"] {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
        env.reconcile(n).await.expect("v1 available");
    }
    let env = env.reconfigure(next_version(1));
    env.reconcile("first").await.expect("rolls in the slot");
    env.reconcile("second").await.expect("held");
    assert!(env.paused("second"));
    env.reconcile("second").await.expect("still held");
    let reasons = env.event_reasons();
    assert!(
        !reasons.iter().any(|r| r == "DriftCorrected"),
        "{reasons:?}"
    );
    for n in ["first", "second"] {
        assert_eq!(
            env.app(n)["status"]["lastDriftCorrection"],
            Value::Null,
            "{n}"
        );
    }
    let upgraded: Vec<Value> = env
        .fake
        .list(&collection("events.k8s.io/v1", NS, "events"))
        .into_iter()
        .filter(|e| e["reason"] == "TemplateUpgraded")
        .collect();
    assert_eq!(upgraded.len(), 1, "{reasons:?}");
    assert!(
        upgraded[0]["note"]
            .as_str()
            .unwrap()
            .contains("policy changed"),
        "{}",
        upgraded[0]["note"]
    );
    // The slot holder is recorded in its status for a leader that takes over.
    assert!(env.app("first")["status"]["upgradeSlot"].is_string());
    assert!(env.app("second")["status"].get("upgradeSlot").is_none());
    // Someone else's edit of the same Deployment is still drift.
    env.fake.edit(
        &deployments(),
        "first",
        "kubectl-edit",
        json!({"f:spec": {"f:minReadySeconds": {}}}),
        |d| d["spec"]["minReadySeconds"] = json!(99),
    );
    env.reconcile("first").await.expect("drift");
    assert_eq!(
        env.app("first")["status"]["lastDriftCorrection"]["manager"],
        "kubectl-edit"
    );
}

// A deferred app holds no slot, ever, and waits for none: deferred from the start, or
// deferred while it waited in the queue (it leaves the queue, so a freed slot wakes the
// next app instead).
#[tokio::test]
async fn deferred_apps_hold_no_slot() {
    let env = env();
    for n in ["deferred", "busy", "waiting", "next"] {
        env.create(n, web_spec());
        env.reconcile(n).await.expect("v1");
        env.finish_rollout(n);
        env.reconcile(n).await.expect("v1 available");
    }
    env.annotate("deferred", "defer");
    let env = env.reconfigure(next_version(1));
    env.reconcile("deferred").await.expect("deferred");
    assert_eq!(env.ctx.upgrades.in_use(), 0, "deferred: no slot");
    assert_eq!(env.ctx.upgrades.waiting(), 0, "deferred: not waiting");
    assert_eq!(
        env.condition("deferred", "UpgradePending")["reason"],
        "Deferred"
    );
    assert_eq!(env.condition("deferred", "Reconciling")["status"], "False");
    env.reconcile("busy").await.expect("takes the slot");
    env.reconcile("waiting").await.expect("waits");
    env.reconcile("next").await.expect("waits");
    assert_eq!(env.ctx.upgrades.waiting(), 2);
    env.annotate("waiting", "defer");
    env.reconcile("waiting").await.expect("deferred now");
    assert_eq!(env.ctx.upgrades.waiting(), 1, "it left the queue");
    assert!(!env.ctx.upgrades.holds(&format!("{NS}/waiting")));
    // busy's rollout ends: its slot goes to next, not to the deferred app.
    let generation =
        env.fake.get(&deployments(), "busy").unwrap()["metadata"]["generation"].clone();
    env.fake
        .edit(&deployments(), "busy", "kube-controller-manager", json!({}), |d| {
            d["status"] = json!({"observedGeneration": generation, "replicas": 2, "updatedReplicas": 2,
                                 "availableReplicas": 2, "readyReplicas": 2});
        });
    env.reconcile("busy").await.expect("settled");
    assert_eq!(env.ctx.upgrades.in_use(), 0);
    env.reconcile("waiting").await.expect("still deferred");
    assert!(env.paused("waiting"));
    assert_eq!(env.ctx.upgrades.in_use(), 0);
    env.reconcile("next").await.expect("its turn");
    assert!(!env.paused("next"), "the freed slot went to the next app");
}
