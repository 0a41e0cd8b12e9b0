//! One test per validation rule: each bad spec is refused with its field path, and
//! all problems of a spec come back at once.

mod common;

use safeapp::api::SafeApp;
use safeapp::policy::Policy;
use safeapp::validate::{FieldError, ValidatedApp, validate};

const BASE: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: web, namespace: shop}
spec:
  image: registry.example.com/web:1.0.0
  ports: [{name: http, port: 8080}]
  healthCheck: {path: /health}
"#;

fn app(extra: &str) -> SafeApp {
    common::app_with(BASE, extra)
}

fn errors(extra: &str) -> Vec<FieldError> {
    validate(&app(extra), &Policy::default()).expect_err("expected problems")
}

fn ok(extra: &str) -> ValidatedApp {
    match validate(&app(extra), &Policy::default()) {
        Ok(v) => v,
        Err(e) => panic!("expected valid, got {e:?}"),
    }
}

/// Asserts one problem sits at `path` and its message contains `needle`.
fn assert_problem(extra: &str, path: &str, needle: &str) {
    let errs = errors(extra);
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "expected {path}: ...{needle}..., got {errs:#?}"
    );
    // Display carries the path, as `render` prints it.
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(shown.iter().any(|s| s.starts_with(&format!("{path}: "))));
}

// The minimal contract object is valid and gets the defaults.
#[test]
fn minimal_is_valid() {
    let v = ok("");
    assert_eq!(v.replicas, Some(2));
    assert_eq!(v.pre_stop_sleep_seconds, 5);
    assert_eq!(v.termination_grace_period_seconds, 30);
    assert_eq!(v.pod.run_as_user, 10001);
    assert_eq!(v.pod.version.as_deref(), Some("1.0.0"));
}

// An image without tag or digest is not pinned.
#[test]
fn image_without_tag() {
    assert_problem(
        "image: registry.example.com/web",
        "spec.image",
        "no tag or digest",
    );
    assert_problem("image: registry:5000/web", "spec.image", "no tag or digest");
}

// The tag `latest` is not pinned; a digest alongside it is.
#[test]
fn image_latest() {
    assert_problem("image: web:latest", "spec.image", "latest");
    let v = ok(
        "image: web:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    assert_eq!(v.pod.version.as_deref(), Some("latest"));
}

// A digest-only image yields a short, label-safe version.
#[test]
fn image_digest_version() {
    let v =
        ok("image: web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_eq!(v.pod.version.as_deref(), Some("sha256-0123456789ab"));
    assert_problem("image: web@sha256:xyz", "spec.image", "malformed digest");
}

// maxSurge and maxUnavailable both zero could never roll out.
#[test]
fn rollout_both_zero() {
    assert_problem(
        "rollout: {maxSurge: 0}",
        "spec.rollout.maxSurge",
        "both zero",
    );
    assert_problem(
        "rollout: {maxSurge: '0%', maxUnavailable: '0%'}",
        "spec.rollout.maxSurge",
        "both zero",
    );
    ok("rollout: {maxSurge: 0, maxUnavailable: 1}");
}

// Rollout values must be ints or percentages.
#[test]
fn rollout_bad_values() {
    assert_problem(
        "rollout: {maxSurge: lots}",
        "spec.rollout.maxSurge",
        "percentage",
    );
    assert_problem(
        "rollout: {maxUnavailable: '150%'}",
        "spec.rollout.maxUnavailable",
        "100%",
    );
    assert_problem(
        "rollout: {minReadySeconds: 700}",
        "spec.rollout.progressDeadlineSeconds",
        "greater than minReadySeconds",
    );
}

// minReplicas above maxReplicas is refused.
#[test]
fn autoscaling_min_above_max() {
    assert_problem(
        "autoscaling: {minReplicas: 5, maxReplicas: 3}",
        "spec.autoscaling.minReplicas",
        "greater than maxReplicas",
    );
}

// maxReplicas below 1 is refused.
#[test]
fn autoscaling_max_below_one() {
    assert_problem(
        "autoscaling: {maxReplicas: 0}",
        "spec.autoscaling.maxReplicas",
        "at least 1",
    );
}

// The default HPA floor never exceeds maxReplicas.
#[test]
fn autoscaling_default_floor() {
    let v = ok("autoscaling: {maxReplicas: 1}");
    let a = v.autoscaling.expect("autoscaling");
    assert_eq!(
        (a.min_replicas, a.max_replicas, a.cpu_target),
        (1, 1, Some(70))
    );
    assert_eq!(v.replicas, None);
}

// Negative replicas are refused.
#[test]
fn negative_replicas() {
    assert_problem("replicas: -1", "spec.replicas", "negative");
}

// The grace period must outlast the preStop sleep, explicit or defaulted.
#[test]
fn grace_not_above_sleep() {
    assert_problem(
        "shutdown: {preStopSleepSeconds: 20, terminationGracePeriodSeconds: 20}",
        "spec.shutdown.terminationGracePeriodSeconds",
        "greater than preStopSleepSeconds",
    );
    assert_problem(
        "shutdown: {preStopSleepSeconds: 40}",
        "spec.shutdown.terminationGracePeriodSeconds",
        "(the default)",
    );
}

// A PDB takes one of minAvailable or maxUnavailable.
#[test]
fn pdb_both_fields() {
    assert_problem(
        "disruptionBudget: {minAvailable: 1, maxUnavailable: 1}",
        "spec.disruptionBudget",
        "not both",
    );
}

// A PDB that allows no eviction would block every node drain.
#[test]
fn pdb_blocking_drains() {
    assert_problem(
        "disruptionBudget: {minAvailable: 2}",
        "spec.disruptionBudget.minAvailable",
        "blocks every node drain",
    );
    assert_problem(
        "disruptionBudget: {minAvailable: '100%'}",
        "spec.disruptionBudget.minAvailable",
        "blocks",
    );
    assert_problem(
        "disruptionBudget: {maxUnavailable: 0}",
        "spec.disruptionBudget.maxUnavailable",
        "blocks",
    );
    ok("{replicas: 3, disruptionBudget: {minAvailable: 2}}");
}

// Duplicate port names are refused.
#[test]
fn duplicate_port_names() {
    assert_problem(
        "ports: [{name: http, port: 8080}, {name: http, port: 8081}]",
        "spec.ports[1].name",
        "duplicate port name",
    );
}

// Duplicate port numbers (per protocol) are refused; TCP and UDP may share one.
#[test]
fn duplicate_port_numbers() {
    assert_problem(
        "ports: [{name: http, port: 8080}, {name: admin, port: 8080}]",
        "spec.ports[1].port",
        "duplicate container port",
    );
    assert_problem(
        "ports: [{name: http, port: 8080, servicePort: 80}, {name: admin, port: 8081, servicePort: 80}]",
        "spec.ports[1].servicePort",
        "duplicate service port",
    );
    ok("ports: [{name: dns, port: 53}, {name: dns-udp, port: 53, protocol: UDP}]");
}

// Ports outside 1-65535 are refused.
#[test]
fn port_out_of_range() {
    assert_problem(
        "ports: [{name: http, port: 70000}]",
        "spec.ports[0].port",
        "outside 1-65535",
    );
    assert_problem(
        "ports: [{name: http, port: 0}]",
        "spec.ports[0].port",
        "outside 1-65535",
    );
    assert_problem(
        "ports: [{name: http, port: 80, servicePort: 65536}]",
        "spec.ports[0].servicePort",
        "outside",
    );
}

// Port names must be IANA service names.
#[test]
fn bad_port_name() {
    assert_problem(
        "ports: [{name: Http_Port, port: 8080}]",
        "spec.ports[0].name",
        "IANA",
    );
}

// Label dimensions must be valid label values.
#[test]
fn invalid_label_dimension() {
    assert_problem("tier: 'back end'", "spec.tier", "label value");
    assert_problem("environment: '-prod'", "spec.environment", "label value");
    let long = "x".repeat(64);
    assert_problem(&format!("track: {long}"), "spec.track", "label value");
    assert_problem("partOf: 'a/b'", "spec.partOf", "label value");
}

// Extra labels must be valid and may not override the operator's.
#[test]
fn invalid_extra_labels() {
    assert_problem("labels: {team: 'a b'}", "spec.labels[team]", "label value");
    assert_problem("labels: {'bad key!': x}", "spec.labels[bad key!]", "key");
    assert_problem(
        "labels: {app.kubernetes.io/name: other}",
        "spec.labels[app.kubernetes.io/name]",
        "set by the operator",
    );
    assert_problem(
        "annotations: {safeapp.dev/contact: x}",
        "spec.annotations[safeapp.dev/contact]",
        "prefix",
    );
}

// A name too long for a Service or label is refused, naming metadata.name.
#[test]
fn name_too_long() {
    let mut a = app("");
    a.metadata.name = Some("a".repeat(64));
    let errs = validate(&a, &Policy::default()).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.path == "metadata.name" && e.message.contains("63")),
        "{errs:?}"
    );
    a.metadata.name = Some("9lives".into());
    let errs = validate(&a, &Policy::default()).unwrap_err();
    assert!(errs.iter().any(|e| e.path == "metadata.name"), "{errs:?}");
}

// Quantities that do not parse are refused with their path.
#[test]
fn bad_quantity() {
    assert_problem(
        "resources: {requests: {cpu: banana}}",
        "spec.resources.requests.cpu",
        "banana",
    );
    assert_problem(
        "resources: {limits: {memory: 1Kb}}",
        "spec.resources.limits.memory",
        "suffix",
    );
    assert_problem(
        "resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}",
        "spec.resources.requests.cpu",
        "exceeds the limit",
    );
}

// Resources: the user's values win; the policy fills the rest consistently.
#[test]
fn resources_filled_from_policy() {
    let v = ok("resources: {requests: {memory: 1Gi}}");
    let req = v.pod.resources.requests.expect("requests");
    let lim = v.pod.resources.limits.expect("limits");
    assert_eq!(req["memory"].0, "1Gi");
    assert_eq!(req["cpu"].0, "100m");
    // The default memory limit (256Mi) is below the request: the limit is raised to it.
    assert_eq!(lim["memory"].0, "1Gi");
    assert_eq!(lim["cpu"].0, "500m");
}

// hostPath volumes are refused: a SafeApp's pods may not touch the node's disk.
#[test]
fn host_path_volume() {
    assert_problem(
        "volumes: [{name: data, hostPath: {path: /var/lib}}]",
        "spec.volumes[0].hostPath",
        "not allowed",
    );
}

// Volume mounts must name a declared volume; volume names are unique.
#[test]
fn volume_references() {
    assert_problem(
        "volumeMounts: [{name: cache, mountPath: /cache}]",
        "spec.volumeMounts[0].name",
        "no volume",
    );
    assert_problem(
        "volumes: [{name: a, emptyDir: {}}, {name: a, emptyDir: {}}]",
        "spec.volumes[1].name",
        "duplicate",
    );
}

// No ports and no probes: nothing says when the app is ready.
#[test]
fn no_ports_no_probes() {
    assert_problem("{ports: null, healthCheck: null}", "spec.probes", "ready");
}

// healthCheck must point at a declared port.
#[test]
fn health_check_port() {
    assert_problem(
        "healthCheck: {path: /h, port: admin}",
        "spec.healthCheck.port",
        "no port named",
    );
    assert_problem(
        "healthCheck: {path: health}",
        "spec.healthCheck.path",
        "start with '/'",
    );
    assert_problem(
        "{ports: null, healthCheck: {path: /h}}",
        "spec.healthCheck.port",
        "no port to probe",
    );
}

// A probe needs exactly one handler.
#[test]
fn probe_handlers() {
    assert_problem(
        "probes: {readiness: {periodSeconds: 5}}",
        "spec.probes.readiness",
        "exactly one",
    );
    assert_problem(
        "probes: {liveness: {exec: {command: [x]}, successThreshold: 2}}",
        "spec.probes.liveness.successThreshold",
        "must be 1",
    );
}

// A Service turned on with no ports is refused.
#[test]
fn service_without_ports() {
    assert_problem(
        "{ports: null, healthCheck: null, probes: {readiness: {exec: {command: [x]}}}, service: {enabled: true}}",
        "spec.service.enabled",
        "at least one",
    );
}

// Root is refused under the restricted profile, allowed under baseline (where the
// policy allows baseline).
#[test]
fn root_user() {
    assert_problem("runAsUser: 0", "spec.runAsUser", "root");
    let baseline = app("{runAsUser: 0, securityProfile: baseline}");
    validate(&baseline, &common::permissive_policy()).expect("valid under baseline");
}

// Init containers may not break the security profile.
#[test]
fn init_container_security() {
    assert_problem(
        "initContainers: [{name: setup, image: 'busybox:1.36', securityContext: {privileged: true}}]",
        "spec.initContainers[0].securityContext.privileged",
        "privileged",
    );
    assert_problem(
        "initContainers: [{name: web, image: 'busybox:1.36'}]",
        "spec.initContainers[0].name",
        "duplicate",
    );
}

// Every problem of a spec comes back in one pass.
#[test]
fn all_problems_at_once() {
    let errs = errors(
        "{image: 'web:latest', replicas: -3, tier: 'a b', volumes: [{name: d, hostPath: {path: /}}]}",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "spec.image",
        "spec.replicas",
        "spec.tier",
        "spec.volumes[0].hostPath",
    ] {
        assert!(paths.contains(&p), "missing {p} in {paths:?}");
    }
}

// The policy's defaults apply when the spec is silent.
#[test]
fn policy_defaults_apply() {
    let policy = Policy::from_yaml(
        "defaults:\n  preStopSleepSeconds: 12\n  terminationGracePeriodSeconds: 60\n  runAsUser: 20000\n",
        std::path::Path::new("p.yaml"),
    )
    .expect("policy");
    let v = validate(&app(""), &policy).expect("valid");
    assert_eq!(
        (
            v.pre_stop_sleep_seconds,
            v.termination_grace_period_seconds,
            v.pod.run_as_user
        ),
        (12, 60, 20000)
    );
}
