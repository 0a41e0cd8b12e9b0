//! Guardrails: what a SafeApp author cannot get past the platform team's policy. A table
//! of escape attempts, each tried under every security profile; the rendered pod of
//! everything validation accepts is checked against an independent reading of the Pod
//! Security Standards (tests/common/pss.rs), for hand-picked and generated contexts.

mod common;

use common::pss::{self, Level};
use proptest::prelude::*;
use safeapp::api::SafeApp;
use safeapp::api::v1alpha1::{SecurityProfile, ServiceType};
use safeapp::policy::Policy;
use safeapp::render;
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

const PROFILES: [SecurityProfile; 3] = [
    SecurityProfile::Restricted,
    SecurityProfile::Baseline,
    SecurityProfile::None,
];

/// The default policy with only the profile floor lowered to `profile`.
fn default_policy_allowing(profile: SecurityProfile) -> Policy {
    let mut p = Policy::default();
    p.guardrails.weakest_security_profile = profile;
    p
}

/// `extra` merged into the base spec, with `securityProfile` set to `profile`.
fn app(extra: &str, profile: SecurityProfile) -> SafeApp {
    let mut app = common::app_with(BASE, extra);
    app.spec.pod.security_profile = Some(profile);
    app
}

fn check(
    extra: &str,
    profile: SecurityProfile,
    policy: &Policy,
) -> Result<ValidatedApp, Vec<FieldError>> {
    validate(&app(extra, profile), policy)
}

fn assert_refused_at(extra: &str, profile: SecurityProfile, policy: &Policy, path: &str) {
    match check(extra, profile, policy) {
        Ok(_) => panic!("{extra} under {profile:?}: accepted, expected a problem at {path}"),
        Err(problems) => assert!(
            problems.iter().any(|p| p.path == path),
            "{extra} under {profile:?}: expected a problem at {path}, got {problems:#?}"
        ),
    }
}

/// The rendered pod template of a valid app.
fn pod_template(v: &ValidatedApp, policy: &Policy) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    render::render(v, policy)
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .expect("deployment spec")
        .template
}

fn pss_level(profile: SecurityProfile) -> Option<Level> {
    match profile {
        SecurityProfile::Restricted => Some(Level::Restricted),
        SecurityProfile::Baseline => Some(Level::Baseline),
        SecurityProfile::None => None,
    }
}

/// Accepted under `profile`, and the rendered pod meets the matching Pod Security level.
fn assert_accepted_and_compliant(extra: &str, profile: SecurityProfile, policy: &Policy) {
    let v = match check(extra, profile, policy) {
        Ok(v) => v,
        Err(e) => panic!("{extra} under {profile:?}: expected valid, got {e:#?}"),
    };
    if let Some(level) = pss_level(profile) {
        let found = pss::violations(&pod_template(&v, policy), level);
        assert!(
            found.is_empty(),
            "{extra} under {profile:?} renders a pod outside Pod Security {level:?}: {found:#?}"
        );
    }
}

// The issue's escape attempt: every field is refused at its path under the default
// policy, and nothing renders.
#[test]
fn the_reported_escape_is_refused_field_by_field() {
    let spec = r#"{securityProfile: none, priorityClassName: system-node-critical,
        serviceAccountName: some-privileged-sa, service: {type: LoadBalancer},
        initContainers: [{name: x, image: 'busybox:1.36', securityContext: {privileged: true}}],
        volumes: [{name: n, nfs: {server: 10.0.0.1, path: /}}],
        annotations: {container.apparmor.security.beta.kubernetes.io/app: unconfined}}"#;
    let problems = validate(&common::app_with(BASE, spec), &Policy::default())
        .expect_err("the escape must be refused");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for path in [
        "spec.securityProfile",
        "spec.priorityClassName",
        "spec.serviceAccountName",
        "spec.service.type",
        "spec.volumes[0].nfs",
        "spec.annotations[container.apparmor.security.beta.kubernetes.io/app]",
    ] {
        assert!(paths.contains(&path), "missing {path} in {paths:?}");
    }
    // With `none` allowed, the privileged init container is still... allowed by `none`
    // itself; under the default profile it is refused.
    let restricted = r#"{initContainers: [{name: x, image: 'busybox:1.36', securityContext: {privileged: true}}]}"#;
    assert_refused_at(
        restricted,
        SecurityProfile::Restricted,
        &Policy::default(),
        "spec.initContainers[0].securityContext.privileged",
    );
}

// Policy floors hold whatever profile the SafeApp picks: each attempt is refused at its
// path under every profile, with only the profile floor relaxed.
#[test]
fn policy_floors_hold_under_every_profile() {
    let table: &[(&str, &str)] = &[
        (
            "priorityClassName: system-node-critical",
            "spec.priorityClassName",
        ),
        ("priorityClassName: high", "spec.priorityClassName"),
        (
            "serviceAccountName: some-privileged-sa",
            "spec.serviceAccountName",
        ),
        ("service: {type: LoadBalancer}", "spec.service.type"),
        ("service: {type: NodePort}", "spec.service.type"),
        (
            "volumes: [{name: n, nfs: {server: 10.0.0.1, path: /}}]",
            "spec.volumes[0].nfs",
        ),
        (
            "volumes: [{name: h, hostPath: {path: /}}]",
            "spec.volumes[0].hostPath",
        ),
        (
            "volumes: [{name: g, gitRepo: {repository: 'https://x'}}]",
            "spec.volumes[0].gitRepo",
        ),
        (
            "volumes: [{name: c, csi: {driver: x}}]",
            "spec.volumes[0].csi",
        ),
        (
            "volumes: [{name: i, iscsi: {targetPortal: 'a:1', iqn: 'iqn.x', lun: 0}}]",
            "spec.volumes[0].iscsi",
        ),
        (
            "annotations: {container.apparmor.security.beta.kubernetes.io/web: unconfined}",
            "spec.annotations[container.apparmor.security.beta.kubernetes.io/web]",
        ),
        (
            "annotations: {seccomp.security.alpha.kubernetes.io/pod: unconfined}",
            "spec.annotations[seccomp.security.alpha.kubernetes.io/pod]",
        ),
        (
            "annotations: {container.seccomp.security.alpha.kubernetes.io/web: unconfined}",
            "spec.annotations[container.seccomp.security.alpha.kubernetes.io/web]",
        ),
        (
            "annotations: {io.kubernetes.cri-o.Devices: /dev/mem}",
            "spec.annotations[io.kubernetes.cri-o.Devices]",
        ),
        (
            "annotations: {sidecar.istio.io/inject: 'false'}",
            "spec.annotations[sidecar.istio.io/inject]",
        ),
    ];
    for profile in PROFILES {
        let policy = default_policy_allowing(profile);
        for (extra, path) in table {
            assert_refused_at(extra, profile, &policy, path);
        }
    }
}

// The namespaces the operator never acts in are refused for every profile, and the
// operator's own joins them.
#[test]
fn denied_namespaces_are_refused() {
    for profile in PROFILES {
        let policy = default_policy_allowing(profile).for_operator_namespace("safeapp-system");
        for ns in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "safeapp-system",
        ] {
            let mut a = app("", profile);
            a.metadata.namespace = Some(ns.into());
            let problems = validate(&a, &policy).expect_err(ns);
            assert!(
                problems.iter().any(|p| p.path == "metadata.namespace"),
                "{ns}: {problems:?}"
            );
        }
        check("", profile, &policy).expect("shop is allowed");
    }
    // denyOperatorNamespace: false leaves the operator's own namespace open.
    let mut relaxed = Policy::default();
    relaxed.guardrails.deny_operator_namespace = false;
    let relaxed = relaxed.for_operator_namespace("safeapp-system");
    assert!(!relaxed.guardrails.denies_namespace("safeapp-system"));
}

// The profile floor: restricted by default; baseline and none need the policy.
#[test]
fn profile_floor() {
    let default = Policy::default();
    check("", SecurityProfile::Restricted, &default).expect("restricted is always allowed");
    for weaker in [SecurityProfile::Baseline, SecurityProfile::None] {
        assert_refused_at("", weaker, &default, "spec.securityProfile");
    }
    let baseline = default_policy_allowing(SecurityProfile::Baseline);
    check("", SecurityProfile::Baseline, &baseline).expect("baseline allowed");
    assert_refused_at("", SecurityProfile::None, &baseline, "spec.securityProfile");
}

/// Where a profile rule applies: refused under these profiles, accepted under the rest.
const BOTH: &[SecurityProfile] = &[SecurityProfile::Restricted, SecurityProfile::Baseline];
const RESTRICTED: &[SecurityProfile] = &[SecurityProfile::Restricted];

fn init(security_context: &str) -> String {
    format!(
        "initContainers: [{{name: setup, image: 'busybox:1.36', securityContext: {security_context}}}]"
    )
}

// Each container-level escape is refused at its path under the profiles that forbid it,
// and accepted (with a pod that meets the profile's standard) under the others. The
// policy allows everything else, so the refusal comes from the profile alone.
#[test]
fn profile_rules_for_every_container() {
    const SC: &str = "spec.initContainers[0].securityContext";
    let table: Vec<(String, String, &[SecurityProfile])> = vec![
        (init("{privileged: true}"), format!("{SC}.privileged"), BOTH),
        (init("{allowPrivilegeEscalation: true}"), format!("{SC}.allowPrivilegeEscalation"), BOTH),
        (init("{capabilities: {add: [SYS_ADMIN]}}"), format!("{SC}.capabilities.add[0]"), BOTH),
        (init("{capabilities: {add: [NET_BIND_SERVICE, NET_RAW]}}"), format!("{SC}.capabilities.add[1]"), BOTH),
        (init("{capabilities: {add: [CHOWN]}}"), format!("{SC}.capabilities.add[0]"), RESTRICTED),
        // Pod Security compares names as written: CAP_NET_BIND_SERVICE is not allowed.
        (init("{capabilities: {add: [CAP_NET_BIND_SERVICE]}}"), format!("{SC}.capabilities.add[0]"), BOTH),
        (init("{seccompProfile: {type: Unconfined}}"), format!("{SC}.seccompProfile.type"), BOTH),
        (init("{appArmorProfile: {type: Unconfined}}"), format!("{SC}.appArmorProfile.type"), BOTH),
        (init("{seLinuxOptions: {type: spc_t}}"), format!("{SC}.seLinuxOptions.type"), BOTH),
        (init("{seLinuxOptions: {user: system_u}}"), format!("{SC}.seLinuxOptions.user"), BOTH),
        (init("{seLinuxOptions: {role: system_r}}"), format!("{SC}.seLinuxOptions.role"), BOTH),
        (init("{procMount: Unmasked}"), format!("{SC}.procMount"), BOTH),
        (init("{windowsOptions: {hostProcess: true}}"), format!("{SC}.windowsOptions.hostProcess"), BOTH),
        (init("{runAsUser: 0}"), format!("{SC}.runAsUser"), RESTRICTED),
        (init("{runAsNonRoot: false}"), format!("{SC}.runAsNonRoot"), RESTRICTED),
        (init("{readOnlyRootFilesystem: false}"), format!("{SC}.readOnlyRootFilesystem"), RESTRICTED),
        (
            "initContainers: [{name: setup, image: 'busybox:1.36', ports: [{containerPort: 80, hostPort: 80}]}]".into(),
            "spec.initContainers[0].ports[0].hostPort".into(),
            BOTH,
        ),
        (
            "initContainers: [{name: side, image: 'envoy:1.30', restartPolicy: Always, readinessProbe: {httpGet: {host: 169.254.169.254, port: 80}}}]".into(),
            "spec.initContainers[0].readinessProbe.httpGet.host".into(),
            BOTH,
        ),
        (
            "initContainers: [{name: side, image: 'envoy:1.30', restartPolicy: Always, lifecycle: {preStop: {tcpSocket: {host: 10.0.0.1, port: 80}}}}]".into(),
            "spec.initContainers[0].lifecycle.preStop.tcpSocket.host".into(),
            BOTH,
        ),
        (
            "probes: {readiness: {httpGet: {host: 169.254.169.254, path: /, port: 8080}}}".into(),
            "spec.probes.readiness.httpGet.host".into(),
            BOTH,
        ),
        (
            "probes: {liveness: {tcpSocket: {host: 10.0.0.1, port: 8080}}}".into(),
            "spec.probes.liveness.tcpSocket.host".into(),
            BOTH,
        ),
        ("runAsUser: 0".into(), "spec.runAsUser".into(), RESTRICTED),
        (
            "volumes: [{name: n, nfs: {server: 10.0.0.1, path: /}}]".into(),
            "spec.volumes[0].nfs".into(),
            RESTRICTED,
        ),
    ];
    let policy = common::permissive_policy();
    for (extra, path, refused_under) in &table {
        for profile in PROFILES {
            if refused_under.contains(&profile) {
                assert_refused_at(extra, profile, &policy, path);
            } else {
                assert_accepted_and_compliant(extra, profile, &policy);
            }
        }
    }
}

// Tightening is welcome, and never costs the profile's own settings: an init container
// that adds NET_BIND_SERVICE still drops ALL (it used to replace the drop), and one
// that sets its own user keeps every other restricted field.
#[test]
fn tightening_keeps_the_profile() {
    let policy = Policy::default();
    for sc in [
        "{capabilities: {add: [NET_BIND_SERVICE]}}",
        "{capabilities: {drop: [NET_RAW]}}",
        "{runAsUser: 20000, runAsNonRoot: true}",
        "{seccompProfile: {type: Localhost, localhostProfile: profiles/strict.json}}",
        "{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false}",
        "{seLinuxOptions: {type: container_t, level: 's0:c123,c456'}}",
    ] {
        let extra = init(sc);
        assert_accepted_and_compliant(&extra, SecurityProfile::Restricted, &policy);
        let v = check(&extra, SecurityProfile::Restricted, &policy).expect("valid");
        let t = pod_template(&v, &policy);
        let c = &t.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        let ctx = c.security_context.as_ref().expect("context");
        let drops = ctx
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        assert!(drops.contains(&"ALL".to_string()), "{sc}: {drops:?}");
        assert_eq!(ctx.allow_privilege_escalation, Some(false), "{sc}");
        assert_eq!(ctx.read_only_root_filesystem, Some(true), "{sc}");
    }
}

// Relaxing a floor in the policy lets exactly that through.
#[test]
fn relaxed_policy_allows_what_it_names() {
    let mut policy = Policy::default();
    policy.guardrails.allowed_service_types =
        vec![ServiceType::ClusterIP, ServiceType::LoadBalancer];
    policy.guardrails.allowed_priority_classes = vec!["team-*".into()];
    policy.guardrails.allowed_service_accounts = vec!["web-*".into()];
    policy.guardrails.forbidden_pod_annotations.clear();
    policy.guardrails.allowed_volume_types.push("csi".into());
    let r = SecurityProfile::Restricted;
    assert_accepted_and_compliant(
        "{service: {type: LoadBalancer}, priorityClassName: team-high, serviceAccountName: web-reader, volumes: [{name: c, csi: {driver: x}}], annotations: {sidecar.istio.io/inject: 'false'}}",
        r,
        &policy,
    );
    assert_refused_at("service: {type: NodePort}", r, &policy, "spec.service.type");
    assert_refused_at(
        "priorityClassName: system-node-critical",
        r,
        &policy,
        "spec.priorityClassName",
    );
    assert_refused_at(
        "serviceAccountName: admin",
        r,
        &policy,
        "spec.serviceAccountName",
    );
    // The namespace's default ServiceAccount is always allowed.
    check("serviceAccountName: default", r, &Policy::default()).expect("default SA");
}

// Policy files name their problems: hostPath cannot be allowed, unknown volume types
// and a default profile below the floor are refused.
#[test]
fn policy_guardrails_are_checked() {
    let load = |text: &str| Policy::from_yaml(text, std::path::Path::new("p.yaml"));
    let err = load("guardrails:\n  allowedVolumeTypes: [hostPath, nfs, floppy]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("guardrails.allowedVolumeTypes[0]: hostPath"),
        "{err}"
    );
    assert!(err.contains("guardrails.allowedVolumeTypes[2]"), "{err}");
    assert!(!err.contains("allowedVolumeTypes[1]"), "{err}");
    let err = load("defaults:\n  securityProfile: baseline\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("defaults.securityProfile"), "{err}");
    let ok = load(
        "defaults:\n  securityProfile: baseline\nguardrails:\n  weakestSecurityProfile: baseline\n  allowedServiceTypes: [ClusterIP, NodePort]\n",
    )
    .expect("valid policy");
    assert_eq!(
        ok.guardrails.weakest_security_profile,
        SecurityProfile::Baseline
    );
    let err = load("guardrails:\n  allowedServiceTypes: [ExternalName]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ExternalName"), "{err}");
}

// Patterns: `*` matches any run of characters; without it, the whole name must match.
#[test]
fn patterns() {
    use safeapp::policy::pattern_matches as m;
    assert!(m("system-*", "system-node-critical"));
    assert!(!m("system-*", "my-system-x"));
    assert!(m("*", ""));
    assert!(m("a*b*c", "abc") && m("a*b*c", "aXbYc"));
    assert!(!m("a*b*c", "acb"));
    assert!(m("exact", "exact") && !m("exact", "exactly"));
    assert!(m("*-critical", "node-critical") && !m("*-critical", "critical"));
    assert!(!m("ab*ba", "aba"), "the two ends may not overlap");
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![Just(None), s.prop_map(Some)].boxed()
}

/// Init-container securityContexts drawn from every field the standards look at, with
/// safe and unsafe values.
fn security_context() -> impl Strategy<Value = String> {
    let caps = prop::collection::vec(
        prop::sample::select(vec![
            "NET_BIND_SERVICE",
            "CHOWN",
            "SYS_ADMIN",
            "NET_RAW",
            "KILL",
            "ALL",
        ]),
        0..3,
    );
    (
        (
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(prop::sample::select(vec![0i64, 1000, 20000])),
            opt(any::<bool>()),
            opt(any::<bool>()),
        ),
        (
            opt(caps.clone()),
            opt(caps),
            opt(prop::sample::select(vec![
                "RuntimeDefault",
                "Unconfined",
                "Localhost",
            ])),
            opt(prop::sample::select(vec!["RuntimeDefault", "Unconfined"])),
            opt(prop::sample::select(vec!["container_t", "spc_t", ""])),
            opt(prop::sample::select(vec!["Default", "Unmasked"])),
            opt(any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (privileged, ape, user, non_root, ro),
                (add, drop, seccomp, apparmor, selinux, proc, host_process),
            )| {
                let mut f = Vec::new();
                let mut push = |k: &str, v: Option<String>| {
                    if let Some(v) = v {
                        f.push(format!("{k}: {v}"));
                    }
                };
                push("privileged", privileged.map(|b| b.to_string()));
                push("allowPrivilegeEscalation", ape.map(|b| b.to_string()));
                push("runAsUser", user.map(|u| u.to_string()));
                push("runAsNonRoot", non_root.map(|b| b.to_string()));
                push("readOnlyRootFilesystem", ro.map(|b| b.to_string()));
                let caps = match (add, drop) {
                    (None, None) => None,
                    (a, d) => Some(format!(
                        "{{add: [{}], drop: [{}]}}",
                        a.unwrap_or_default().join(", "),
                        d.unwrap_or_default().join(", ")
                    )),
                };
                push("capabilities", caps);
                push(
                    "seccompProfile",
                    seccomp.map(|t| match t {
                        "Localhost" => "{type: Localhost, localhostProfile: p.json}".to_string(),
                        t => format!("{{type: {t}}}"),
                    }),
                );
                push(
                    "appArmorProfile",
                    apparmor.map(|t| format!("{{type: {t}}}")),
                );
                push(
                    "seLinuxOptions",
                    selinux.map(|t| format!("{{type: '{t}'}}")),
                );
                push("procMount", proc.map(str::to_string));
                push(
                    "windowsOptions",
                    host_process.map(|b| format!("{{hostProcess: {b}}}")),
                );
                format!("{{{}}}", f.join(", "))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    // Whatever an init container's securityContext says, a spec that validation accepts
    // under restricted or baseline renders a pod that meets that Pod Security level.
    #[test]
    fn accepted_means_compliant(sc in security_context(), host_port in any::<bool>()) {
        let ports = if host_port { ", ports: [{containerPort: 80, hostPort: 80}]" } else { "" };
        let extra = format!("initContainers: [{{name: setup, image: 'busybox:1.36', securityContext: {sc}{ports}}}]");
        let policy = common::permissive_policy();
        for profile in [SecurityProfile::Restricted, SecurityProfile::Baseline] {
            if let Ok(v) = check(&extra, profile, &policy) {
                let level = pss_level(profile).unwrap();
                let found = pss::violations(&pod_template(&v, &policy), level);
                prop_assert!(found.is_empty(), "{extra} under {profile:?}: {found:?}");
            }
        }
    }
}
