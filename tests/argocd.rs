//! The Argo CD health checks of `config/argocd/`: what the shipped patch and component
//! carry, and how the Lua scripts map a SafeApp's or SafeJob's status to Argo CD health,
//! run in a real Lua 5.1 (`common::argocd`).

#[allow(dead_code)] // this crate uses only `common::argocd`
mod common;

use std::path::{Path, PathBuf};

use common::argocd::{check_health_test_yaml, health};
use serde_json::{Value, json};

fn config(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/argocd")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(config(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

fn yaml(file: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

const GENERATION: i64 = 3;

/// A condition as the operator writes it (metav1.Condition), for the current generation.
fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": GENERATION,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    })
}

/// A resource of `kind` at generation 3 with `spec`, and a status that observed
/// generation 3 and carries `conditions`.
fn observed(kind: &str, spec: Value, conditions: Vec<Value>) -> Value {
    json!({
        "apiVersion": "safeapp.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "backend-app", "namespace": "eks-work", "generation": GENERATION},
        "spec": spec,
        "status": {"observedGeneration": GENERATION, "conditions": conditions},
    })
}

fn app(conditions: Vec<Value>) -> Value {
    observed(
        "SafeApp",
        json!({"image": "registry.example.com/app:1.0.0"}),
        conditions,
    )
}

fn job(spec: Value, conditions: Vec<Value>) -> Value {
    observed("SafeJob", spec, conditions)
}

fn hs(status: &str, message: &str) -> (String, String) {
    (status.to_owned(), message.to_owned())
}

const KINDS: [&str; 2] = ["SafeApp", "SafeJob"];

fn ready_true() -> Value {
    cond("Ready", "True", "RolloutComplete", "2/2 replicas ready")
}

fn stalled() -> Value {
    cond(
        "Stalled",
        "True",
        "InvalidSpec",
        "spec.image: the tag must not be latest",
    )
}

// --- what the patch and the component carry ---

// The argocd-cm patch carries the .lua files byte for byte (no stale paste).
#[test]
fn patch_values_are_the_lua_files() {
    let patch = yaml("argocd-cm-patch.yaml");
    let data = patch["data"].as_mapping().expect("data mapping");
    assert_eq!(data.len(), 2, "exactly the two health keys: {data:?}");
    for (key, file) in [
        (
            "resource.customizations.health.safeapp.dev_SafeApp",
            "health-safeapp.lua",
        ),
        (
            "resource.customizations.health.safeapp.dev_SafeJob",
            "health-safejob.lua",
        ),
    ] {
        let value = patch["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing"));
        assert!(
            value == read(file),
            "{key} differs from {file}: paste the file into argocd-cm-patch.yaml again"
        );
    }
}

// The patch targets Argo CD's own ConfigMap, so a strategic merge lands on it.
#[test]
fn patch_targets_argocd_cm() {
    let patch = yaml("argocd-cm-patch.yaml");
    assert_eq!(patch["apiVersion"].as_str(), Some("v1"));
    assert_eq!(patch["kind"].as_str(), Some("ConfigMap"));
    let meta = &patch["metadata"];
    assert_eq!(meta["name"].as_str(), Some("argocd-cm"));
    assert_eq!(meta["namespace"].as_str(), Some("argocd"));
    assert_eq!(
        meta["labels"]["app.kubernetes.io/name"].as_str(),
        Some("argocd-cm")
    );
    assert_eq!(
        meta["labels"]["app.kubernetes.io/part-of"].as_str(),
        Some("argocd")
    );
}

// The component is a kustomize Component that applies exactly the patch that exists.
#[test]
fn kustomization_is_a_component_naming_the_patch() {
    let k = yaml("kustomization.yaml");
    assert_eq!(
        k["apiVersion"].as_str(),
        Some("kustomize.config.k8s.io/v1alpha1")
    );
    assert_eq!(k["kind"].as_str(), Some("Component"));
    let patches = k["patches"].as_sequence().expect("patches list");
    let paths: Vec<&str> = patches.iter().filter_map(|p| p["path"].as_str()).collect();
    assert_eq!(paths, ["argocd-cm-patch.yaml"]);
    for path in paths {
        assert!(config(path).is_file(), "{path} does not exist");
    }
}

// --- the mapping, branch by branch ---

// An object the operator has not seen yet is Progressing, never Healthy.
#[test]
fn no_status_is_progressing() {
    for kind in KINDS {
        let mut obj = observed(kind, json!({}), vec![]);
        obj.as_object_mut().unwrap().remove("status");
        assert_eq!(
            health(kind, &obj),
            hs(
                "Progressing",
                "Waiting for the operator to observe generation 3"
            ),
            "{kind}"
        );
    }
}

// A status without observedGeneration (or with a JSON null one) is not yet an answer.
#[test]
fn status_without_observed_generation_is_progressing() {
    for kind in KINDS {
        for observed_generation in [None, Some(Value::Null)] {
            let mut obj = observed(kind, json!({}), vec![ready_true()]);
            let status = obj["status"].as_object_mut().unwrap();
            match observed_generation {
                None => status.remove("observedGeneration"),
                Some(v) => status.insert("observedGeneration".into(), v),
            };
            assert_eq!(
                health(kind, &obj),
                hs(
                    "Progressing",
                    "Waiting for the operator to observe generation 3"
                ),
                "{kind}"
            );
        }
    }
}

// A status about an older generation outranks everything it says, even Ready and Stalled.
#[test]
fn generation_mismatch_is_progressing() {
    for kind in KINDS {
        for conditions in [vec![ready_true()], vec![stalled()], vec![]] {
            let mut obj = observed(kind, json!({"paused": true}), conditions);
            obj["metadata"]["generation"] = json!(4);
            assert_eq!(
                health(kind, &obj),
                hs(
                    "Progressing",
                    "Waiting for the operator to observe generation 4"
                ),
                "{kind}"
            );
        }
    }
}

// Without metadata.generation, an observed status is enough to read the conditions.
#[test]
fn no_generation_reads_the_conditions() {
    for kind in KINDS {
        let mut obj = observed(kind, json!({}), vec![ready_true()]);
        obj["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("generation");
        assert_eq!(
            health(kind, &obj),
            hs("Healthy", "RolloutComplete: 2/2 replicas ready"),
            "{kind}"
        );
    }
}

// An empty object does not break the script: it waits.
#[test]
fn empty_object_is_progressing() {
    for kind in KINDS {
        assert_eq!(
            health(kind, &json!({})),
            hs(
                "Progressing",
                "Waiting for the operator to observe the object"
            ),
            "{kind}"
        );
    }
}

// Stalled=True (a person must act) is Degraded with "reason: message", whatever Ready says.
#[test]
fn stalled_is_degraded() {
    let ready_false = cond("Ready", "False", "InvalidSpec", "see Stalled");
    for kind in KINDS {
        for other in [ready_false.clone(), ready_true()] {
            let obj = observed(kind, json!({}), vec![other, stalled()]);
            assert_eq!(
                health(kind, &obj),
                hs(
                    "Degraded",
                    "InvalidSpec: spec.image: the tag must not be latest"
                ),
                "{kind}"
            );
        }
    }
}

// Stalled outranks paused and suspend: a spec that needs fixing is shown even when paused.
#[test]
fn stalled_outranks_paused_and_suspended() {
    let specs = [
        ("SafeApp", json!({"paused": true})),
        ("SafeJob", json!({"paused": true})),
        ("SafeJob", json!({"suspend": true})),
    ];
    for (kind, spec) in specs {
        let obj = observed(kind, spec.clone(), vec![stalled()]);
        assert_eq!(health(kind, &obj).0, "Degraded", "{kind} {spec}");
    }
}

// Stalled=False is no verdict: Ready decides.
#[test]
fn stalled_false_does_not_degrade() {
    for kind in KINDS {
        let obj = observed(
            kind,
            json!({}),
            vec![cond("Stalled", "False", "AsExpected", ""), ready_true()],
        );
        assert_eq!(health(kind, &obj).0, "Healthy", "{kind}");
    }
}

// A paused SafeApp is Suspended with Ready's message (the operator reports why).
#[test]
fn paused_safeapp_is_suspended_with_ready_message() {
    let ready = cond(
        "Ready",
        "False",
        "Paused",
        "spec.paused is true: the operator changes nothing",
    );
    let mut obj = app(vec![ready]);
    obj["spec"]["paused"] = json!(true);
    assert_eq!(
        health("SafeApp", &obj),
        hs(
            "Suspended",
            "spec.paused is true: the operator changes nothing"
        )
    );
}

// A paused SafeApp without a Ready condition still says what paused means.
#[test]
fn paused_safeapp_without_conditions_is_suspended() {
    let mut obj = app(vec![]);
    obj["spec"]["paused"] = json!(true);
    assert_eq!(
        health("SafeApp", &obj),
        hs("Suspended", "Paused: the operator changes nothing")
    );
}

// paused: false (or null) is not paused.
#[test]
fn unpaused_safeapp_is_not_suspended() {
    for paused in [json!(false), Value::Null] {
        let mut obj = app(vec![ready_true()]);
        obj["spec"]["paused"] = paused;
        assert_eq!(health("SafeApp", &obj).0, "Healthy");
    }
}

// spec.suspend means nothing on a SafeApp (only SafeJob has it).
#[test]
fn suspend_is_ignored_on_safeapp() {
    let mut obj = app(vec![ready_true()]);
    obj["spec"]["suspend"] = json!(true);
    assert_eq!(health("SafeApp", &obj).0, "Healthy");
}

// A suspended SafeJob is Suspended, with Ready's message or a default.
#[test]
fn suspended_safejob_is_suspended() {
    let ready = cond(
        "Ready",
        "True",
        "Suspended",
        "spec.suspend is true: no new runs",
    );
    assert_eq!(
        health("SafeJob", &job(json!({"suspend": true}), vec![ready])),
        hs("Suspended", "spec.suspend is true: no new runs")
    );
    assert_eq!(
        health("SafeJob", &job(json!({"suspend": true}), vec![])),
        hs("Suspended", "Suspended: no new runs are scheduled")
    );
}

// A paused SafeJob is Suspended, like a paused SafeApp.
#[test]
fn paused_safejob_is_suspended() {
    assert_eq!(
        health("SafeJob", &job(json!({"paused": true}), vec![ready_true()])),
        hs("Suspended", "2/2 replicas ready")
    );
    assert_eq!(
        health("SafeJob", &job(json!({"paused": true}), vec![])),
        hs("Suspended", "Paused: the operator changes nothing")
    );
}

// Ready=True is Healthy with "reason: message".
#[test]
fn ready_is_healthy() {
    for kind in KINDS {
        let obj = observed(
            kind,
            json!({}),
            vec![
                cond("Reconciling", "False", "UpToDate", ""),
                ready_true(),
                cond("Stalled", "False", "AsExpected", ""),
            ],
        );
        assert_eq!(
            health(kind, &obj),
            hs("Healthy", "RolloutComplete: 2/2 replicas ready"),
            "{kind}"
        );
    }
}

// A Ready condition with only a reason, or nothing, still gives a message.
#[test]
fn ready_message_falls_back_to_reason() {
    let bare = json!({"type": "Ready", "status": "True", "observedGeneration": GENERATION});
    assert_eq!(
        health("SafeApp", &app(vec![bare])),
        hs("Healthy", "Ready is True")
    );
    let reason_only = cond("Ready", "True", "RolloutComplete", "");
    assert_eq!(
        health("SafeApp", &app(vec![reason_only])),
        hs("Healthy", "RolloutComplete")
    );
}

// Reconciling=True is Progressing with Reconciling's "reason: message" (the work going on).
#[test]
fn reconciling_is_progressing() {
    for kind in KINDS {
        let obj = observed(
            kind,
            json!({}),
            vec![
                cond("Ready", "False", "RolloutInProgress", "1/2 replicas ready"),
                cond(
                    "Reconciling",
                    "True",
                    "RolloutInProgress",
                    "rolling out image 1.0.1",
                ),
            ],
        );
        assert_eq!(
            health(kind, &obj),
            hs("Progressing", "RolloutInProgress: rolling out image 1.0.1"),
            "{kind}"
        );
    }
}

// Ready not True and nothing reconciling is Progressing with Ready's "reason: message".
#[test]
fn ready_false_is_progressing_with_ready_message() {
    for kind in KINDS {
        for status in ["False", "Unknown"] {
            let obj = observed(
                kind,
                json!({}),
                vec![
                    cond("Reconciling", "False", "UpToDate", ""),
                    cond("Ready", status, "ReplicaFailure", "0/2 replicas ready"),
                ],
            );
            assert_eq!(
                health(kind, &obj),
                hs("Progressing", "ReplicaFailure: 0/2 replicas ready"),
                "{kind} Ready={status}"
            );
        }
    }
}

// An observed status without conditions (absent, null, or empty) waits for them.
#[test]
fn no_conditions_is_progressing() {
    for kind in KINDS {
        for conditions in [None, Some(Value::Null), Some(json!([]))] {
            let mut obj = observed(kind, json!({}), vec![]);
            let status = obj["status"].as_object_mut().unwrap();
            match conditions {
                None => status.remove("conditions"),
                Some(v) => status.insert("conditions".into(), v),
            };
            assert_eq!(
                health(kind, &obj),
                hs("Progressing", "Waiting for conditions"),
                "{kind}"
            );
        }
    }
}

// A condition stamped with an older generation decides nothing (neither Healthy nor Degraded).
#[test]
fn stale_conditions_are_skipped() {
    for kind in KINDS {
        let mut stale_ready = ready_true();
        stale_ready["observedGeneration"] = json!(GENERATION - 1);
        let mut stale_stalled = stalled();
        stale_stalled["observedGeneration"] = json!(GENERATION - 1);
        let obj = observed(kind, json!({}), vec![stale_ready, stale_stalled]);
        assert_eq!(
            health(kind, &obj),
            hs("Progressing", "Waiting for conditions"),
            "{kind}"
        );
    }
}

// A condition without its own observedGeneration is taken as current.
#[test]
fn condition_without_observed_generation_counts() {
    let mut ready = ready_true();
    ready.as_object_mut().unwrap().remove("observedGeneration");
    assert_eq!(health("SafeApp", &app(vec![ready])).0, "Healthy");
}

// Unknown condition types and malformed entries are ignored, never a script error.
#[test]
fn odd_conditions_are_ignored() {
    let conditions = vec![
        json!("not a condition"),
        json!(null),
        json!({"status": "True"}),
        cond("Available", "True", "Whatever", "not a kstatus condition"),
        ready_true(),
    ];
    assert_eq!(
        health("SafeApp", &app(conditions)),
        hs("Healthy", "RolloutComplete: 2/2 replicas ready")
    );
    let mut obj = app(vec![]);
    obj["status"]["conditions"] = json!({"type": "Ready"});
    assert_eq!(
        health("SafeApp", &obj),
        hs("Progressing", "Waiting for conditions")
    );
    obj["status"]["conditions"] = json!(5);
    assert_eq!(
        health("SafeApp", &obj),
        hs("Progressing", "Waiting for conditions")
    );
}

// --- the health_test.yaml runner ---

fn write_health_test(dir: &Path, expected: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("testdata")).unwrap();
    let input = serde_yaml_ng::to_string(&app(vec![ready_true()])).unwrap();
    std::fs::write(dir.join("testdata/ready.yaml"), input).unwrap();
    let mut paused = app(vec![]);
    paused["spec"]["paused"] = json!(true);
    let input = serde_yaml_ng::to_string(&paused).unwrap();
    std::fs::write(dir.join("testdata/paused.yaml"), input).unwrap();
    let test = format!(
        "tests:\n\
         - healthStatus:\n    status: Healthy\n    message: \"{expected}\"\n  inputPath: testdata/ready.yaml\n\
         - healthStatus:\n    status: Suspended\n    message: \"Paused: the operator changes nothing\"\n  inputPath: testdata/paused.yaml\n"
    );
    let path = dir.join("health_test.yaml");
    std::fs::write(&path, test).unwrap();
    path
}

// The runner reads Argo CD's health_test.yaml shape, resolves inputPath from its folder,
// and counts the cases.
#[test]
fn health_test_yaml_runner_checks_every_case() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-health-ok");
    let path = write_health_test(&dir, "RolloutComplete: 2/2 replicas ready");
    assert_eq!(check_health_test_yaml(path), 2);
}

// The runner fails on a wrong expectation (it really compares).
#[test]
#[should_panic(expected = "1 of 2 cases differ")]
fn health_test_yaml_runner_fails_on_mismatch() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-health-bad");
    let path = write_health_test(&dir, "some other message");
    check_health_test_yaml(path);
}
