//! The deployment manifests under config/: every file parses, every kustomization points
//! at files that exist, the operator's own Deployment follows the practices the operator
//! enforces, and the RBAC grants exactly the calls the code makes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use safeapp::controller::{CLUSTER_PERMISSIONS, LEASE_PERMISSIONS, SECRET_PERMISSIONS};
use safeapp::policy::Policy;
use serde::Deserialize;
use serde_yaml_ng::Value;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        // Argo CD's health-check tests (config/argocd) are fixtures, not manifests.
        let fixture = path
            .file_name()
            .is_some_and(|n| n == "testdata" || n == "health_test.yaml");
        if fixture {
            continue;
        }
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// Every document of every YAML file under config/.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&config_dir(), &mut files);
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

fn find<T: serde::de::DeserializeOwned>(kind: &str, name: &str) -> T {
    let (_, doc) = documents()
        .into_iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} under config/"));
    serde_yaml_ng::from_value(doc).expect("typed")
}

// Every manifest parses and names its apiVersion and kind; kustomizations list files that exist.
#[test]
fn manifests_parse_and_kustomizations_resolve() {
    let docs = documents();
    assert!(docs.len() >= 15, "found only {} documents", docs.len());
    for (file, doc) in &docs {
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{}: apiVersion/kind",
            file.display()
        );
        if doc["kind"] == "Kustomization" || doc["kind"] == "Component" {
            let dir = file.parent().expect("dir");
            for r in doc["resources"].as_sequence().into_iter().flatten() {
                let target = dir.join(r.as_str().expect("resource path"));
                assert!(
                    target.exists(),
                    "{}: {} does not exist",
                    file.display(),
                    target.display()
                );
            }
        }
    }
}

// The operator's Deployment follows every practice the operator enforces.
#[test]
fn manager_follows_the_practices() {
    let d: Deployment = find("Deployment", "safeapp-operator");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2), "two replicas with leader election");
    let ru = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .expect("rolling update");
    assert_eq!(
        ru.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    let pod = spec.template.spec.expect("pod");
    let psc = pod.security_context.expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(
        psc.run_as_user.is_some_and(|u| u >= 10000),
        "non-root UID of 10000 or more"
    );
    assert_eq!(
        psc.seccomp_profile.expect("seccomp").type_,
        "RuntimeDefault"
    );
    let grace = pod.termination_grace_period_seconds.expect("grace");
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    let image = c.image.as_deref().expect("image");
    let tag = image
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
        .map(|(_, t)| t);
    assert!(
        tag.is_some_and(|t| t != "latest") || image.contains("@sha256:"),
        "pinned image: {image}"
    );
    let args = c.args.clone().unwrap_or_default();
    assert!(args.contains(&"run".to_string()));
    assert!(args.contains(&"--leader-elect=true".to_string()));
    let ready = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    let live = c
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("liveness");
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    let sleep = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .expect("preStop sleep")
        .seconds;
    assert!(grace > sleep, "grace period above the preStop sleep");
    let res = c.resources.as_ref().expect("resources");
    for key in ["cpu", "memory"] {
        assert!(
            res.requests.as_ref().is_some_and(|r| r.contains_key(key)),
            "request {key}"
        );
        assert!(
            res.limits.as_ref().is_some_and(|r| r.contains_key(key)),
            "limit {key}"
        );
    }
    let sc = c
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );

    // The policy flag points into the mounted ConfigMap, and that policy is valid.
    let policy_arg = args
        .iter()
        .find_map(|a| a.strip_prefix("--policy="))
        .expect("--policy");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| policy_arg.starts_with(&format!("{}/", m.mount_path)))
        .expect("the policy file is mounted");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("volume");
    let cm_name = volume
        .config_map
        .as_ref()
        .expect("from a ConfigMap")
        .name
        .clone();
    let cm: ConfigMap = find("ConfigMap", &cm_name);
    let file = policy_arg.rsplit('/').next().expect("file");
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(file))
        .expect("policy key");
    let shipped = Policy::from_yaml(text, Path::new(file)).expect("the shipped policy is valid");
    // It spells out the built-in defaults: what a platform team sees is what runs.
    assert_eq!(shipped.guardrails, Policy::default().guardrails);
    assert_eq!(shipped.upgrades, Policy::default().upgrades);
    assert_eq!(shipped.network_policy, Policy::default().network_policy);

    // A PDB covers the operator's pods.
    let pdb: PodDisruptionBudget = find("PodDisruptionBudget", "safeapp-operator");
    let selector = pdb
        .spec
        .and_then(|s| s.selector)
        .and_then(|s| s.match_labels)
        .expect("selector");
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("pod labels");
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for x in r.resources.iter().flatten() {
                for v in &r.verbs {
                    out.insert((g.clone(), x.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn needed(perms: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    perms
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

// The ClusterRole grants every call the code makes, and nothing more (least privilege).
#[test]
fn cluster_role_matches_the_code() {
    let role: ClusterRole = find("ClusterRole", "safeapp-operator");
    let rules = role.rules.unwrap_or_default();
    for (group, resource, verbs) in CLUSTER_PERMISSIONS {
        for verb in *verbs {
            assert!(
                grants(&rules, group, resource, verb),
                "missing {verb} on {group}/{resource}"
            );
        }
    }
    assert_eq!(
        granted(&rules),
        needed(CLUSTER_PERMISSIONS),
        "the ClusterRole grants more than the code uses"
    );
    assert!(
        !granted(&rules).iter().any(|(_, r, v)| r == "*" || v == "*"),
        "no wildcards"
    );
}

// Leases are granted in the operator's namespace only, with the verbs leader election uses.
#[test]
fn lease_role_matches_the_code() {
    let role: Role = find("Role", "safeapp-operator-leader-election");
    let rules = role.rules.unwrap_or_default();
    assert_eq!(granted(&rules), needed(LEASE_PERMISSIONS));
    let cluster: ClusterRole = find("ClusterRole", "safeapp-operator");
    assert!(
        !granted(&cluster.rules.unwrap_or_default())
            .iter()
            .any(|(g, _, _)| g == "coordination.k8s.io")
    );
}

// The API server authorizes a server-side apply (PATCH) of an object that does not exist
// yet as a `create` too (SAFEAPP.md §7b): every kind the operator patches, other than a
// subresource, must also be creatable, or the first apply of every child is refused.
#[test]
fn every_applied_kind_can_be_created() {
    let cluster: ClusterRole = find("ClusterRole", "safeapp-operator");
    let leases: Role = find("Role", "safeapp-operator-leader-election");
    for (rules, perms) in [
        (cluster.rules.unwrap_or_default(), CLUSTER_PERMISSIONS),
        (leases.rules.unwrap_or_default(), LEASE_PERMISSIONS),
    ] {
        for (group, resource, _) in perms
            .iter()
            .filter(|(_, r, v)| v.contains(&"patch") && !r.contains('/'))
        {
            assert!(
                grants(&rules, group, resource, "create"),
                "{group}/{resource} is applied but cannot be created"
            );
        }
    }
}

// Reading Secrets is opt-in: the base ClusterRole has no Secret rule; the component
// grants exactly SECRET_PERMISSIONS and turns on --watch-secrets, which the binary
// accepts.
#[test]
fn secret_rollout_is_an_opt_in_component() {
    let base: ClusterRole = find("ClusterRole", "safeapp-operator");
    assert!(
        !granted(&base.rules.unwrap_or_default())
            .iter()
            .any(|(_, r, _)| r == "secrets")
    );
    let role: ClusterRole = find("ClusterRole", "safeapp-operator-secrets");
    assert_eq!(
        granted(&role.rules.unwrap_or_default()),
        needed(SECRET_PERMISSIONS)
    );
    let text =
        std::fs::read_to_string(config_dir().join("components/secret-rollout/kustomization.yaml"))
            .expect("component");
    assert!(text.contains("value: --watch-secrets"), "{text}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_safeapp"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--watch-secrets"));
}

// The ClusterRole for `safeapp diff` grants exactly what it calls, and no write verb
// but the patch/create a dry run is authorized as.
#[test]
fn diff_role_matches_the_code() {
    let role: ClusterRole = find("ClusterRole", "safeapp-diff");
    let rules = role.rules.unwrap_or_default();
    assert_eq!(granted(&rules), needed(safeapp::diff::DIFF_PERMISSIONS));
    assert!(
        !granted(&rules)
            .iter()
            .any(|(_, _, v)| v == "delete" || v == "update" || v == "*")
    );
}
