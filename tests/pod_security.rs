//! Pod Security Standards: every pod a SafeApp or SafeJob renders complies with the
//! level it promises, as judged by an independent checker (tests/common/pss.rs), which
//! is itself tested here rule by rule so that it can fail.

#[allow(dead_code)] // this crate uses only `common::pss`
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::pss::{Level, path_of, violations};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use safeapp::api::v1alpha1::SecurityProfile;
use safeapp::api::{SafeApp, SafeJob};
use safeapp::manifest::{self, Document};
use safeapp::policy::Policy;
use safeapp::render::{self, JobResources};
use safeapp::validate::{validate, validate_job};
use serde_json::Value;

// --- the checker's own tests ------------------------------------------------------

/// A pod that meets Restricted with every container kind present, each probe and hook
/// kind in use, and the precedence the standard allows (runAsNonRoot and seccomp set
/// once at pod level, not per container).
const RESTRICTED_POD: &str = r#"
metadata:
  labels: {app: demo}
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  volumes:
    - {name: tmp, emptyDir: {}}
  initContainers:
    - name: init
      image: busybox:1.36
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
  containers:
    - name: app
      image: registry.example.com/app:1.0.0
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /ready, port: 8080}}
      livenessProbe: {tcpSocket: {port: 8080}}
      startupProbe: {httpGet: {path: /started, port: 8080}}
      lifecycle:
        preStop: {httpGet: {path: /stop, port: 8080}}
        postStart: {tcpSocket: {port: 8080}}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
        readOnlyRootFilesystem: true
  ephemeralContainers:
    - name: debug
      image: busybox:1.36
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
"#;

/// The default, minimally specified pod: Baseline by definition, far from Restricted.
const PLAIN_POD: &str = r#"
spec:
  containers:
    - {name: app, image: registry.example.com/app:1.0.0}
"#;

fn yaml_to_json(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).expect("test pod YAML")
}

/// Sets the JSON value `value` (JSON text) at the JSON pointer `pointer` (`~1` for `/`),
/// creating objects and appending array elements on the way.
fn set(doc: &mut Value, pointer: &str, value: &str) {
    let value: Value = serde_json::from_str(value).expect("JSON value");
    let segments: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cur = doc;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let fresh = || match segments.get(i + 1) {
            Some(next) if next.parse::<usize>().is_ok() => Value::Array(Vec::new()),
            _ => Value::Object(Default::default()),
        };
        cur = match cur {
            Value::Object(map) => {
                if last {
                    map.insert(seg.clone(), value);
                    return;
                }
                map.entry(seg.clone()).or_insert_with(fresh)
            }
            Value::Array(items) => {
                let index: usize = seg.parse().expect("array index");
                assert!(
                    index <= items.len(),
                    "{pointer}: index {index} out of range"
                );
                if index == items.len() {
                    items.push(fresh());
                }
                if last {
                    items[index] = value;
                    return;
                }
                &mut items[index]
            }
            other => panic!("{pointer}: cannot descend into {other}"),
        };
    }
}

fn template(base: &str, changes: &[(&str, &str)]) -> PodTemplateSpec {
    let mut doc = yaml_to_json(base);
    for (pointer, value) in changes {
        set(&mut doc, pointer, value);
    }
    serde_json::from_value(doc).expect("a PodTemplateSpec")
}

fn paths(found: &[String]) -> BTreeSet<&str> {
    found.iter().map(|v| path_of(v)).collect()
}

/// One rule broken on an otherwise Restricted pod: the checker must report exactly
/// `expect` at `level`.
struct Broken {
    rule: &'static str,
    level: Level,
    changes: &'static [(&'static str, &'static str)],
    expect: &'static [&'static str],
}

const BROKEN: &[Broken] = &[
    // --- Baseline
    Broken {
        rule: "hostProcess (pod)",
        level: Level::Baseline,
        changes: &[("/spec/securityContext/windowsOptions/hostProcess", "true")],
        expect: &["spec.securityContext.windowsOptions.hostProcess"],
    },
    Broken {
        rule: "hostProcess (init container)",
        level: Level::Baseline,
        changes: &[(
            "/spec/initContainers/0/securityContext/windowsOptions/hostProcess",
            "true",
        )],
        expect: &["spec.initContainers[0].securityContext.windowsOptions.hostProcess"],
    },
    Broken {
        rule: "hostNetwork",
        level: Level::Baseline,
        changes: &[("/spec/hostNetwork", "true")],
        expect: &["spec.hostNetwork"],
    },
    Broken {
        rule: "hostPID",
        level: Level::Baseline,
        changes: &[("/spec/hostPID", "true")],
        expect: &["spec.hostPID"],
    },
    Broken {
        rule: "hostIPC",
        level: Level::Baseline,
        changes: &[("/spec/hostIPC", "true")],
        expect: &["spec.hostIPC"],
    },
    Broken {
        rule: "privileged (init container)",
        level: Level::Baseline,
        changes: &[("/spec/initContainers/0/securityContext/privileged", "true")],
        expect: &["spec.initContainers[0].securityContext.privileged"],
    },
    Broken {
        rule: "privileged (ephemeral container)",
        level: Level::Baseline,
        changes: &[(
            "/spec/ephemeralContainers/0/securityContext/privileged",
            "true",
        )],
        expect: &["spec.ephemeralContainers[0].securityContext.privileged"],
    },
    Broken {
        rule: "capabilities beyond the default set",
        level: Level::Baseline,
        changes: &[(
            "/spec/initContainers/0/securityContext/capabilities/add",
            r#"["SYS_ADMIN"]"#,
        )],
        expect: &["spec.initContainers[0].securityContext.capabilities.add"],
    },
    Broken {
        rule: "NET_RAW is not in the default set",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/securityContext/capabilities/add",
            r#"["NET_RAW"]"#,
        )],
        expect: &["spec.containers[0].securityContext.capabilities.add"],
    },
    Broken {
        rule: "hostPath volume",
        level: Level::Baseline,
        changes: &[(
            "/spec/volumes/1",
            r#"{"name": "host", "hostPath": {"path": "/"}}"#,
        )],
        expect: &["spec.volumes[1].hostPath"],
    },
    Broken {
        rule: "hostPort",
        level: Level::Baseline,
        changes: &[("/spec/containers/0/ports/0/hostPort", "8080")],
        expect: &["spec.containers[0].ports[0].hostPort"],
    },
    Broken {
        rule: "readiness probe httpGet.host",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/readinessProbe/httpGet/host",
            r#""10.0.0.1""#,
        )],
        expect: &["spec.containers[0].readinessProbe.httpGet.host"],
    },
    Broken {
        rule: "liveness probe tcpSocket.host",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/livenessProbe/tcpSocket/host",
            r#""169.254.169.254""#,
        )],
        expect: &["spec.containers[0].livenessProbe.tcpSocket.host"],
    },
    Broken {
        rule: "startup probe httpGet.host",
        level: Level::Baseline,
        changes: &[("/spec/containers/0/startupProbe/httpGet/host", r#""node""#)],
        expect: &["spec.containers[0].startupProbe.httpGet.host"],
    },
    Broken {
        rule: "preStop httpGet.host",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/lifecycle/preStop/httpGet/host",
            r#""kubernetes.default""#,
        )],
        expect: &["spec.containers[0].lifecycle.preStop.httpGet.host"],
    },
    Broken {
        rule: "postStart tcpSocket.host",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/lifecycle/postStart/tcpSocket/host",
            r#""10.0.0.1""#,
        )],
        expect: &["spec.containers[0].lifecycle.postStart.tcpSocket.host"],
    },
    Broken {
        rule: "probe host (init container)",
        level: Level::Baseline,
        changes: &[(
            "/spec/initContainers/0/readinessProbe",
            r#"{"tcpSocket": {"port": 53, "host": "10.0.0.10"}}"#,
        )],
        expect: &["spec.initContainers[0].readinessProbe.tcpSocket.host"],
    },
    Broken {
        rule: "AppArmor annotation unconfined",
        level: Level::Baseline,
        changes: &[(
            "/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1app",
            r#""unconfined""#,
        )],
        expect: &["metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]"],
    },
    Broken {
        rule: "AppArmor field Unconfined (pod)",
        level: Level::Baseline,
        changes: &[(
            "/spec/securityContext/appArmorProfile",
            r#"{"type": "Unconfined"}"#,
        )],
        expect: &["spec.securityContext.appArmorProfile.type"],
    },
    Broken {
        rule: "AppArmor field Unconfined (ephemeral container)",
        level: Level::Baseline,
        changes: &[(
            "/spec/ephemeralContainers/0/securityContext/appArmorProfile",
            r#"{"type": "Unconfined"}"#,
        )],
        expect: &["spec.ephemeralContainers[0].securityContext.appArmorProfile.type"],
    },
    Broken {
        rule: "SELinux type (pod)",
        level: Level::Baseline,
        changes: &[(
            "/spec/securityContext/seLinuxOptions",
            r#"{"type": "spc_t"}"#,
        )],
        expect: &["spec.securityContext.seLinuxOptions.type"],
    },
    Broken {
        rule: "SELinux user (container)",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/securityContext/seLinuxOptions",
            r#"{"user": "system_u"}"#,
        )],
        expect: &["spec.containers[0].securityContext.seLinuxOptions.user"],
    },
    Broken {
        rule: "SELinux role (init container)",
        level: Level::Baseline,
        changes: &[(
            "/spec/initContainers/0/securityContext/seLinuxOptions",
            r#"{"role": "system_r", "type": "container_t"}"#,
        )],
        expect: &["spec.initContainers[0].securityContext.seLinuxOptions.role"],
    },
    Broken {
        rule: "procMount Unmasked",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/securityContext/procMount",
            r#""Unmasked""#,
        )],
        expect: &["spec.containers[0].securityContext.procMount"],
    },
    Broken {
        rule: "procMount Unmasked even with hostUsers false (no user-namespace relaxation)",
        level: Level::Baseline,
        changes: &[
            ("/spec/hostUsers", "false"),
            (
                "/spec/containers/0/securityContext/procMount",
                r#""Unmasked""#,
            ),
        ],
        expect: &["spec.containers[0].securityContext.procMount"],
    },
    Broken {
        rule: "seccomp Unconfined on a container overrides a good pod-level profile",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/securityContext/seccompProfile",
            r#"{"type": "Unconfined"}"#,
        )],
        expect: &["spec.containers[0].securityContext.seccompProfile.type"],
    },
    Broken {
        rule: "seccomp Unconfined at pod level (containers set their own)",
        level: Level::Baseline,
        changes: &[
            (
                "/spec/securityContext/seccompProfile/type",
                r#""Unconfined""#,
            ),
            (
                "/spec/containers/0/securityContext/seccompProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
            (
                "/spec/initContainers/0/securityContext/seccompProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
            (
                "/spec/ephemeralContainers/0/securityContext/seccompProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
        ],
        expect: &["spec.securityContext.seccompProfile.type"],
    },
    Broken {
        rule: "legacy seccomp pod annotation unconfined",
        level: Level::Baseline,
        changes: &[(
            "/metadata/annotations/seccomp.security.alpha.kubernetes.io~1pod",
            r#""unconfined""#,
        )],
        expect: &["metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]"],
    },
    Broken {
        rule: "legacy seccomp container annotation unconfined",
        level: Level::Baseline,
        changes: &[(
            "/metadata/annotations/container.seccomp.security.alpha.kubernetes.io~1app",
            r#""unconfined""#,
        )],
        expect: &["metadata.annotations[container.seccomp.security.alpha.kubernetes.io/app]"],
    },
    Broken {
        rule: "unsafe sysctl",
        level: Level::Baseline,
        changes: &[(
            "/spec/securityContext/sysctls",
            r#"[{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "65536"}]"#,
        )],
        expect: &["spec.securityContext.sysctls[1].name"],
    },
    // --- Restricted
    Broken {
        rule: "nfs volume",
        level: Level::Restricted,
        changes: &[(
            "/spec/volumes/1",
            r#"{"name": "share", "nfs": {"server": "nfs.example.com", "path": "/"}}"#,
        )],
        expect: &["spec.volumes[1].nfs"],
    },
    Broken {
        rule: "gitRepo volume",
        level: Level::Restricted,
        changes: &[(
            "/spec/volumes/0",
            r#"{"name": "src", "gitRepo": {"repository": "https://example.com/r.git"}}"#,
        )],
        expect: &["spec.volumes[0].gitRepo"],
    },
    Broken {
        rule: "allowPrivilegeEscalation true (ephemeral container)",
        level: Level::Restricted,
        changes: &[(
            "/spec/ephemeralContainers/0/securityContext/allowPrivilegeEscalation",
            "true",
        )],
        expect: &["spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation"],
    },
    Broken {
        rule: "allowPrivilegeEscalation unset",
        level: Level::Restricted,
        changes: &[(
            "/spec/containers/0/securityContext/allowPrivilegeEscalation",
            "null",
        )],
        expect: &["spec.containers[0].securityContext.allowPrivilegeEscalation"],
    },
    Broken {
        rule: "runAsNonRoot false on a container overrides the pod's true",
        level: Level::Restricted,
        changes: &[("/spec/containers/0/securityContext/runAsNonRoot", "false")],
        expect: &["spec.containers[0].securityContext.runAsNonRoot"],
    },
    Broken {
        rule: "runAsNonRoot false at pod level, containers true",
        level: Level::Restricted,
        changes: &[
            ("/spec/securityContext/runAsNonRoot", "false"),
            ("/spec/containers/0/securityContext/runAsNonRoot", "true"),
            (
                "/spec/initContainers/0/securityContext/runAsNonRoot",
                "true",
            ),
            (
                "/spec/ephemeralContainers/0/securityContext/runAsNonRoot",
                "true",
            ),
        ],
        expect: &["spec.securityContext.runAsNonRoot"],
    },
    Broken {
        rule: "runAsNonRoot unset everywhere",
        level: Level::Restricted,
        changes: &[("/spec/securityContext/runAsNonRoot", "null")],
        expect: &[
            "spec.containers[0].securityContext.runAsNonRoot",
            "spec.initContainers[0].securityContext.runAsNonRoot",
            "spec.ephemeralContainers[0].securityContext.runAsNonRoot",
        ],
    },
    Broken {
        rule: "runAsUser 0 (pod)",
        level: Level::Restricted,
        changes: &[("/spec/securityContext/runAsUser", "0")],
        expect: &["spec.securityContext.runAsUser"],
    },
    Broken {
        rule: "runAsUser 0 (init container)",
        level: Level::Restricted,
        changes: &[("/spec/initContainers/0/securityContext/runAsUser", "0")],
        expect: &["spec.initContainers[0].securityContext.runAsUser"],
    },
    Broken {
        rule: "runAsUser 0 even with hostUsers false (no user-namespace relaxation)",
        level: Level::Restricted,
        changes: &[
            ("/spec/hostUsers", "false"),
            ("/spec/securityContext/runAsUser", "0"),
        ],
        expect: &["spec.securityContext.runAsUser"],
    },
    Broken {
        rule: "seccomp unset everywhere",
        level: Level::Restricted,
        changes: &[("/spec/securityContext/seccompProfile", "null")],
        expect: &[
            "spec.containers[0].securityContext.seccompProfile.type",
            "spec.initContainers[0].securityContext.seccompProfile.type",
            "spec.ephemeralContainers[0].securityContext.seccompProfile.type",
        ],
    },
    Broken {
        rule: "seccomp set on some containers only",
        level: Level::Restricted,
        changes: &[
            ("/spec/securityContext/seccompProfile", "null"),
            (
                "/spec/containers/0/securityContext/seccompProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
            (
                "/spec/ephemeralContainers/0/securityContext/seccompProfile",
                r#"{"type": "Localhost", "localhostProfile": "debug.json"}"#,
            ),
        ],
        expect: &["spec.initContainers[0].securityContext.seccompProfile.type"],
    },
    Broken {
        rule: "capabilities not dropping ALL",
        level: Level::Restricted,
        changes: &[(
            "/spec/containers/0/securityContext/capabilities/drop",
            r#"["NET_RAW"]"#,
        )],
        expect: &["spec.containers[0].securityContext.capabilities.drop"],
    },
    Broken {
        rule: "capabilities unset (init container)",
        level: Level::Restricted,
        changes: &[(
            "/spec/initContainers/0/securityContext/capabilities",
            "null",
        )],
        expect: &["spec.initContainers[0].securityContext.capabilities.drop"],
    },
    Broken {
        rule: "capability from the default set other than NET_BIND_SERVICE",
        level: Level::Restricted,
        changes: &[(
            "/spec/containers/0/securityContext/capabilities/add",
            r#"["CHOWN"]"#,
        )],
        expect: &["spec.containers[0].securityContext.capabilities.add"],
    },
];

// Each rule of the checker fires, on the field that breaks it and on nothing else, at
// the level the standard puts it (and a Baseline rule at Restricted too).
#[test]
fn checker_reports_each_broken_rule_at_its_path() {
    for level in [Level::Baseline, Level::Restricted] {
        let base = violations(&template(RESTRICTED_POD, &[]), level);
        assert!(
            base.is_empty(),
            "the Restricted pod fails {level:?}: {base:#?}"
        );
    }
    for case in BROKEN {
        let pod = template(RESTRICTED_POD, case.changes);
        let expect: BTreeSet<&str> = case.expect.iter().copied().collect();
        let at_level = violations(&pod, case.level);
        assert_eq!(
            paths(&at_level),
            expect,
            "{} at {:?}: {at_level:#?}",
            case.rule,
            case.level
        );
        match case.level {
            Level::Baseline => {
                let restricted = violations(&pod, Level::Restricted);
                assert!(
                    paths(&restricted).is_superset(&expect),
                    "{}: Restricted must include Baseline: {restricted:#?}",
                    case.rule
                );
            }
            Level::Restricted => {
                let baseline = violations(&pod, Level::Baseline);
                assert!(
                    baseline.is_empty(),
                    "{}: a Restricted-only rule fired at Baseline: {baseline:#?}",
                    case.rule
                );
            }
        }
        assert!(
            at_level.iter().all(|v| v.len() > path_of(v).len() + 2),
            "{}: every violation says why: {at_level:#?}",
            case.rule
        );
    }
}

/// Changes the standard allows: the pod must still meet `level`.
struct Allowed {
    what: &'static str,
    level: Level,
    changes: &'static [(&'static str, &'static str)],
}

const ALLOWED: &[Allowed] = &[
    Allowed {
        what: "host namespaces and privileged explicitly false, hostPort 0",
        level: Level::Restricted,
        changes: &[
            ("/spec/hostNetwork", "false"),
            ("/spec/hostPID", "false"),
            ("/spec/hostIPC", "false"),
            ("/spec/containers/0/securityContext/privileged", "false"),
            ("/spec/containers/0/ports/0/hostPort", "0"),
            ("/spec/securityContext/windowsOptions/hostProcess", "false"),
        ],
    },
    Allowed {
        what: "NET_BIND_SERVICE added",
        level: Level::Restricted,
        changes: &[(
            "/spec/containers/0/securityContext/capabilities/add",
            r#"["NET_BIND_SERVICE"]"#,
        )],
    },
    Allowed {
        what: "every capability of the default set added",
        level: Level::Baseline,
        changes: &[(
            "/spec/containers/0/securityContext/capabilities/add",
            r#"["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]"#,
        )],
    },
    Allowed {
        what: "runAsNonRoot set on every container instead of the pod",
        level: Level::Restricted,
        changes: &[
            ("/spec/securityContext/runAsNonRoot", "null"),
            ("/spec/containers/0/securityContext/runAsNonRoot", "true"),
            (
                "/spec/initContainers/0/securityContext/runAsNonRoot",
                "true",
            ),
            (
                "/spec/ephemeralContainers/0/securityContext/runAsNonRoot",
                "true",
            ),
        ],
    },
    Allowed {
        what: "non-root UIDs",
        level: Level::Restricted,
        changes: &[
            ("/spec/securityContext/runAsUser", "10001"),
            ("/spec/containers/0/securityContext/runAsUser", "1"),
        ],
    },
    Allowed {
        what: "seccomp set on every container instead of the pod, Localhost included",
        level: Level::Restricted,
        changes: &[
            ("/spec/securityContext/seccompProfile", "null"),
            (
                "/spec/containers/0/securityContext/seccompProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
            (
                "/spec/initContainers/0/securityContext/seccompProfile",
                r#"{"type": "Localhost", "localhostProfile": "init.json"}"#,
            ),
            (
                "/spec/ephemeralContainers/0/securityContext/seccompProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
        ],
    },
    Allowed {
        what: "seccomp Localhost at pod level",
        level: Level::Restricted,
        changes: &[(
            "/spec/securityContext/seccompProfile",
            r#"{"type": "Localhost", "localhostProfile": "app.json"}"#,
        )],
    },
    Allowed {
        what: "every volume source Restricted allows",
        level: Level::Restricted,
        changes: &[(
            "/spec/volumes",
            r#"[
                {"name": "a", "configMap": {"name": "cm"}},
                {"name": "b", "secret": {"secretName": "s"}},
                {"name": "c", "projected": {"sources": []}},
                {"name": "d", "downwardAPI": {"items": []}},
                {"name": "e", "emptyDir": {"medium": "Memory"}},
                {"name": "f", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "g", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "h", "csi": {"driver": "secrets-store.csi.k8s.io"}},
                {"name": "i", "image": {"reference": "registry.example.com/data:1"}}
            ]"#,
        )],
    },
    Allowed {
        what: "AppArmor RuntimeDefault / Localhost, by field and by annotation",
        level: Level::Restricted,
        changes: &[
            (
                "/spec/securityContext/appArmorProfile",
                r#"{"type": "RuntimeDefault"}"#,
            ),
            (
                "/spec/containers/0/securityContext/appArmorProfile",
                r#"{"type": "Localhost", "localhostProfile": "k8s-app"}"#,
            ),
            (
                "/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1app",
                r#""runtime/default""#,
            ),
            (
                "/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1init",
                r#""localhost/k8s-init""#,
            ),
        ],
    },
    Allowed {
        what: "SELinux allowed types and a level",
        level: Level::Restricted,
        changes: &[
            (
                "/spec/securityContext/seLinuxOptions",
                r#"{"type": "container_t", "level": "s0:c123,c456"}"#,
            ),
            (
                "/spec/containers/0/securityContext/seLinuxOptions",
                r#"{"type": "container_engine_t"}"#,
            ),
            (
                "/spec/initContainers/0/securityContext/seLinuxOptions",
                r#"{"type": "container_init_t", "user": "", "role": ""}"#,
            ),
            (
                "/spec/ephemeralContainers/0/securityContext/seLinuxOptions",
                r#"{"type": "container_kvm_t"}"#,
            ),
        ],
    },
    Allowed {
        what: "procMount Default",
        level: Level::Restricted,
        changes: &[(
            "/spec/containers/0/securityContext/procMount",
            r#""Default""#,
        )],
    },
    Allowed {
        what: "legacy seccomp annotations with allowed values",
        level: Level::Restricted,
        changes: &[
            (
                "/metadata/annotations/seccomp.security.alpha.kubernetes.io~1pod",
                r#""runtime/default""#,
            ),
            (
                "/metadata/annotations/container.seccomp.security.alpha.kubernetes.io~1app",
                r#""localhost/app.json""#,
            ),
        ],
    },
    Allowed {
        what: "every safe sysctl",
        level: Level::Restricted,
        changes: &[(
            "/spec/securityContext/sysctls",
            r#"[
                {"name": "kernel.shm_rmid_forced", "value": "1"},
                {"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"},
                {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
                {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                {"name": "net.ipv4.ping_group_range", "value": "0 2147483647"},
                {"name": "net.ipv4.ip_local_reserved_ports", "value": "8080"},
                {"name": "net.ipv4.tcp_keepalive_time", "value": "600"},
                {"name": "net.ipv4.tcp_fin_timeout", "value": "30"},
                {"name": "net.ipv4.tcp_keepalive_intvl", "value": "60"},
                {"name": "net.ipv4.tcp_keepalive_probes", "value": "5"},
                {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"},
                {"name": "net.ipv4.tcp_wmem", "value": "4096 16384 4194304"}
            ]"#,
        )],
    },
    Allowed {
        what: "empty probe and hook hosts",
        level: Level::Restricted,
        changes: &[
            ("/spec/containers/0/readinessProbe/httpGet/host", r#""""#),
            ("/spec/containers/0/livenessProbe/tcpSocket/host", r#""""#),
            ("/spec/containers/0/lifecycle/preStop/httpGet/host", r#""""#),
        ],
    },
    Allowed {
        what: "a Windows pod is exempt from the Linux-only Restricted rules",
        level: Level::Restricted,
        changes: &[
            ("/spec/os", r#"{"name": "windows"}"#),
            ("/spec/securityContext/seccompProfile", "null"),
            (
                "/spec/containers/0/securityContext/allowPrivilegeEscalation",
                "null",
            ),
            ("/spec/containers/0/securityContext/capabilities", "null"),
            ("/spec/initContainers/0/securityContext", "null"),
            ("/spec/ephemeralContainers/0/securityContext", "null"),
        ],
    },
];

// The checker does not cry wolf: what the standard allows passes.
#[test]
fn checker_accepts_what_the_standard_allows() {
    for case in ALLOWED {
        let found = violations(&template(RESTRICTED_POD, case.changes), case.level);
        assert!(found.is_empty(), "{}: {found:#?}", case.what);
    }
}

// The minimally specified pod is Baseline (the standard's own definition) and misses
// Restricted on exactly the fields Restricted requires to be set.
#[test]
fn checker_levels_a_plain_pod() {
    let pod = template(PLAIN_POD, &[]);
    assert_eq!(violations(&pod, Level::Baseline), Vec::<String>::new());
    let restricted = violations(&pod, Level::Restricted);
    let expect: BTreeSet<&str> = [
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
        "spec.containers[0].securityContext.runAsNonRoot",
        "spec.containers[0].securityContext.seccompProfile.type",
        "spec.containers[0].securityContext.capabilities.drop",
    ]
    .into();
    assert_eq!(paths(&restricted), expect, "{restricted:#?}");
}

// Two rules faulting one field give one entry naming both reasons.
#[test]
fn checker_reports_one_entry_per_field() {
    let pod = template(
        RESTRICTED_POD,
        &[(
            "/spec/containers/0/securityContext/capabilities/add",
            r#"["SYS_ADMIN"]"#,
        )],
    );
    let found = violations(&pod, Level::Restricted);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("default set") && found[0].contains("NET_BIND_SERVICE"),
        "{found:#?}"
    );
}

// --- the samples ------------------------------------------------------------------

/// One sample document: the pods of both kinds are checked.
enum Sample {
    App(Box<SafeApp>),
    Job(Box<SafeJob>),
}

impl Sample {
    fn set_profile(&mut self, profile: SecurityProfile) {
        match self {
            Self::App(app) => app.spec.pod.security_profile = Some(profile),
            Self::Job(job) => job.spec.pod.security_profile = Some(profile),
        }
    }

    /// Validates and renders the sample; its pod template and resolved profile. A
    /// SafeJob's pod is the CronJob's `jobTemplate.spec.template` or the Job's
    /// `spec.template`.
    fn rendered(&self, label: &str, policy: &Policy) -> (PodTemplateSpec, SecurityProfile) {
        match self {
            Self::App(app) => {
                let v = validate(app, policy).unwrap_or_else(|e| panic!("{label}: {e:#?}"));
                // The workload's pod: a Deployment's, or a stateful app's StatefulSet's.
                let template = render::render(&v, policy)
                    .workload
                    .template()
                    .cloned()
                    .unwrap_or_else(|| panic!("{label}: a workload without a spec"));
                (template, v.pod.security_profile)
            }
            Self::Job(job) => {
                let v = validate_job(job, policy).unwrap_or_else(|e| panic!("{label}: {e:#?}"));
                let template = match render::render_job(&v, policy) {
                    JobResources {
                        cron_job: Some(cron),
                        job: None,
                    } => {
                        cron.spec
                            .and_then(|s| s.job_template.spec)
                            .unwrap_or_else(|| panic!("{label}: a CronJob without a job spec"))
                            .template
                    }
                    JobResources {
                        cron_job: None,
                        job: Some(job),
                    } => {
                        job.spec
                            .unwrap_or_else(|| panic!("{label}: a Job without a spec"))
                            .template
                    }
                    other => panic!("{label}: expected one CronJob or one Job, got {other:#?}"),
                };
                (template, v.pod.security_profile)
            }
        }
    }
}

/// Every SafeApp and SafeJob in config/samples/*.yaml (kustomization.yaml and the
/// samples' Namespaces aside; a file may hold several documents), with the file it came
/// from.
fn samples() -> Vec<(String, Sample)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/samples")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != "kustomization.yaml" && n != "namespaces.yaml")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    let (mut apps, mut jobs) = (0, 0);
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).expect("sample");
        let parsed = manifest::parse_documents(&text).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
        assert!(!parsed.is_empty(), "{name}: no SafeApp or SafeJob");
        for doc in parsed {
            let (meta, sample) = match doc {
                Document::App(app) => {
                    apps += 1;
                    (app.metadata.clone(), Sample::App(app))
                }
                Document::Job(job) => {
                    jobs += 1;
                    (job.metadata.clone(), Sample::Job(job))
                }
            };
            let label = format!("{name} ({})", meta.name.as_deref().unwrap_or("?"));
            out.push((label, sample));
        }
    }
    assert!(
        apps >= 5 && jobs >= 2,
        "expected the five SafeApp and two SafeJob samples, found {apps} and {jobs}"
    );
    out
}

// Every sample, SafeApps and SafeJobs, rendered with the default policy (profile
// restricted), passes the Restricted standard: what the README promises, checked by a
// second reading.
#[test]
fn samples_render_restricted_pods() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    for (label, sample) in samples() {
        let (template, profile) = sample.rendered(&label, &policy);
        assert_eq!(profile, SecurityProfile::Restricted, "{label}");
        let found = violations(&template, Level::Restricted);
        failures.extend(found.into_iter().map(|v| format!("{label}: {v}")));
    }
    assert!(
        failures.is_empty(),
        "Restricted violations:\n{}",
        failures.join("\n")
    );
}

/// A policy that lets a SafeApp choose `baseline`. The policy's guardrail for it
/// (`guardrails.weakestSecurityProfile`) is being added; until it exists, the default
/// policy accepts baseline, and an unknown `guardrails` key says so.
fn policy_allowing_baseline() -> Policy {
    let yaml = "guardrails:\n  weakestSecurityProfile: baseline\n";
    Policy::from_yaml(yaml, Path::new("tests/pod_security.rs")).expect("policy allowing baseline")
}

// Every sample switched to `securityProfile: baseline` (under a policy that allows it)
// still renders a pod that passes the Baseline standard.
#[test]
fn samples_with_baseline_profile_render_baseline_pods() {
    let policy = policy_allowing_baseline();
    let mut failures = Vec::new();
    for (label, mut sample) in samples() {
        sample.set_profile(SecurityProfile::Baseline);
        let (template, profile) = sample.rendered(&label, &policy);
        assert_eq!(profile, SecurityProfile::Baseline, "{label}");
        let found = violations(&template, Level::Baseline);
        failures.extend(found.into_iter().map(|v| format!("{label}: {v}")));
    }
    assert!(
        failures.is_empty(),
        "Baseline violations:\n{}",
        failures.join("\n")
    );
}
