//! An independent checker of the Kubernetes Pod Security Standards, for tests.
//!
//! It is a second reading of the standard, written from the published text
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>) and from the
//! reference implementation, the Pod Security admission controller
//! (`k8s.io/pod-security-admission/policy/check_*.go`), at its newest policy version.
//! It shares nothing with the operator's own validation or rendering code, so that a
//! mistake in one is caught by the other.
//!
//! Every rule below names the upstream check it follows. Where this checker departs
//! from the admission controller it is stricter, never looser, and says so:
//! - the user-namespace relaxations (`hostUsers: false` exempting `runAsNonRoot`,
//!   `runAsUser` and `procMount`) are not applied: the operator never asks for user
//!   namespaces, and a checker that is stricter cannot hide a regression;
//! - the legacy seccomp annotations (policy versions before 1.19) are still checked
//!   at Baseline, next to the fields;
//! - every volume source outside the Restricted allow-list is refused, including
//!   sources that a newer API may add;
//! - sysctl names are compared as written (a `/`-separated spelling of a safe sysctl
//!   is reported).
//!
//! Paths are relative to the pod template: `spec.containers[0].securityContext.privileged`,
//! `metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]`.
#![allow(dead_code)] // each test crate that includes `common` uses a different part

use k8s_openapi::api::core::v1::{
    ContainerPort, Lifecycle, LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, SecurityContext,
};

/// A Pod Security Standards level (Privileged has no rule, so it is not here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Baseline,
    Restricted,
}

/// Every violation of `level` (Restricted includes Baseline) in a pod template, one per
/// field, as `"<path>: <why>"` (e.g.
/// `"spec.initContainers[0].securityContext.capabilities.add: ..."`). Empty when the
/// template complies. Two rules that fault the same field give one entry.
pub fn violations(template: &PodTemplateSpec, level: Level) -> Vec<String> {
    let default_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    let pod = Pod {
        spec,
        security: spec.security_context.as_ref(),
        containers: containers(spec),
        annotations: annotations
            .map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .unwrap_or_default(),
    };

    let mut found = Found::default();
    for rule in BASELINE {
        rule(&pod, &mut found);
    }
    if level == Level::Restricted {
        for rule in RESTRICTED {
            rule(&pod, &mut found);
        }
    }
    found
        .0
        .into_iter()
        .map(|(path, why)| format!("{path}: {}", why.join("; ")))
        .collect()
}

/// The path part of a violation returned by [`violations`].
pub fn path_of(violation: &str) -> &str {
    violation.split(": ").next().unwrap_or(violation)
}

// --- the pod as the rules see it ------------------------------------------------

struct Pod<'a> {
    spec: &'a PodSpec,
    security: Option<&'a PodSecurityContext>,
    /// containers, then initContainers, then ephemeralContainers.
    containers: Vec<Ctr<'a>>,
    annotations: Vec<(&'a str, &'a str)>,
}

impl Pod<'_> {
    /// `spec.os.name: windows`: the Linux-only Restricted rules do not apply (v1.25+).
    fn is_windows(&self) -> bool {
        self.spec.os.as_ref().is_some_and(|os| os.name == "windows")
    }
}

/// The parts of a Container / EphemeralContainer that the standard looks at.
struct Ctr<'a> {
    /// `spec.containers[0]`
    path: String,
    ports: &'a [ContainerPort],
    security: Option<&'a SecurityContext>,
    probes: [(&'static str, Option<&'a Probe>); 3],
    lifecycle: Option<&'a Lifecycle>,
}

impl Ctr<'_> {
    /// `spec.containers[0].securityContext.<field>`
    fn sc_path(&self, field: &str) -> String {
        format!("{}.securityContext.{field}", self.path)
    }
}

fn containers(spec: &PodSpec) -> Vec<Ctr<'_>> {
    let mut out = Vec::new();
    for (kind, list) in [
        ("containers", spec.containers.as_slice()),
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
    ] {
        for (i, c) in list.iter().enumerate() {
            out.push(Ctr {
                path: format!("spec.{kind}[{i}]"),
                ports: c.ports.as_deref().unwrap_or_default(),
                security: c.security_context.as_ref(),
                probes: [
                    ("livenessProbe", c.liveness_probe.as_ref()),
                    ("readinessProbe", c.readiness_probe.as_ref()),
                    ("startupProbe", c.startup_probe.as_ref()),
                ],
                lifecycle: c.lifecycle.as_ref(),
            });
        }
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push(Ctr {
            path: format!("spec.ephemeralContainers[{i}]"),
            ports: c.ports.as_deref().unwrap_or_default(),
            security: c.security_context.as_ref(),
            probes: [
                ("livenessProbe", c.liveness_probe.as_ref()),
                ("readinessProbe", c.readiness_probe.as_ref()),
                ("startupProbe", c.startup_probe.as_ref()),
            ],
            lifecycle: c.lifecycle.as_ref(),
        });
    }
    out
}

/// Violations by path, in the order found; a second reason for a path joins the first.
#[derive(Default)]
struct Found(Vec<(String, Vec<String>)>);

impl Found {
    fn add(&mut self, path: String, why: impl Into<String>) {
        let why = why.into();
        match self.0.iter_mut().find(|(p, _)| *p == path) {
            Some((_, reasons)) => {
                if !reasons.contains(&why) {
                    reasons.push(why);
                }
            }
            None => self.0.push((path, vec![why])),
        }
    }
}

type Rule = fn(&Pod<'_>, &mut Found);

const BASELINE: &[Rule] = &[
    host_process,
    host_namespaces,
    privileged,
    capabilities_baseline,
    host_path_volumes,
    host_ports,
    host_probes_and_lifecycle,
    app_armor,
    se_linux,
    proc_mount,
    seccomp_baseline,
    sysctls,
];

const RESTRICTED: &[Rule] = &[
    volume_types,
    allow_privilege_escalation,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
    capabilities_restricted,
];

// --- Baseline ---------------------------------------------------------------------

/// HostProcess: `windowsOptions.hostProcess` undefined or false, pod and containers.
/// (check_windowsHostProcess.go)
fn host_process(pod: &Pod<'_>, found: &mut Found) {
    let why = "Windows HostProcess containers are forbidden (hostProcess must be unset or false)";
    if pod
        .security
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        found.add(
            "spec.securityContext.windowsOptions.hostProcess".into(),
            why,
        );
    }
    for c in &pod.containers {
        if c.security
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
        {
            found.add(c.sc_path("windowsOptions.hostProcess"), why);
        }
    }
}

/// Host namespaces: `hostNetwork`, `hostPID`, `hostIPC` undefined or false.
/// (check_hostNamespaces.go)
fn host_namespaces(pod: &Pod<'_>, found: &mut Found) {
    for (field, value) in [
        ("hostNetwork", pod.spec.host_network),
        ("hostPID", pod.spec.host_pid),
        ("hostIPC", pod.spec.host_ipc),
    ] {
        if value == Some(true) {
            found.add(
                format!("spec.{field}"),
                "sharing the host's namespaces is forbidden (must be unset or false)",
            );
        }
    }
}

/// Privileged containers: `securityContext.privileged` undefined or false.
/// (check_privileged.go)
fn privileged(pod: &Pod<'_>, found: &mut Found) {
    for c in &pod.containers {
        if c.security.and_then(|s| s.privileged) == Some(true) {
            found.add(
                c.sc_path("privileged"),
                "privileged containers are forbidden (must be unset or false)",
            );
        }
    }
}

/// The container runtime's default capability set: the only ones Baseline lets a
/// container add. (check_capabilities_baseline.go, `capabilities_allowed_1_0`)
const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Capabilities: `capabilities.add` only from the default set.
/// (check_capabilities_baseline.go)
fn capabilities_baseline(pod: &Pod<'_>, found: &mut Found) {
    for c in &pod.containers {
        let bad: Vec<&str> = added_capabilities(c)
            .filter(|cap| !DEFAULT_CAPABILITIES.contains(cap))
            .collect();
        if !bad.is_empty() {
            found.add(
                c.sc_path("capabilities.add"),
                format!("adds {} beyond the default set (Baseline)", bad.join(", ")),
            );
        }
    }
}

fn added_capabilities<'a>(c: &Ctr<'a>) -> impl Iterator<Item = &'a str> {
    c.security
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|caps| caps.add.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
}

/// HostPath volumes are forbidden. (check_hostPathVolumes.go)
fn host_path_volumes(pod: &Pod<'_>, found: &mut Found) {
    for (i, v) in pod.spec.volumes.iter().flatten().enumerate() {
        if v.host_path.is_some() {
            found.add(
                format!("spec.volumes[{i}].hostPath"),
                "hostPath volumes are forbidden",
            );
        }
    }
}

/// Host ports: `ports[*].hostPort` undefined or 0. (check_hostPorts.go)
fn host_ports(pod: &Pod<'_>, found: &mut Found) {
    for c in &pod.containers {
        for (i, port) in c.ports.iter().enumerate() {
            if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
                found.add(
                    format!("{}.ports[{i}].hostPort", c.path),
                    format!("hostPort {host_port} is forbidden (must be unset or 0)"),
                );
            }
        }
    }
}

/// Host probes / lifecycle hooks (v1.34+): the `host` of every probe's and lifecycle
/// handler's `httpGet` and `tcpSocket` is undefined or "".
/// (check_hostProbesAndhostLifecycle.go)
fn host_probes_and_lifecycle(pod: &Pod<'_>, found: &mut Found) {
    let why = |host: &str| {
        format!("host {host:?} is forbidden: probes and hooks must target the pod itself")
    };
    for c in &pod.containers {
        for (name, probe) in c.probes {
            let Some(probe) = probe else { continue };
            if let Some(host) = probe.http_get.as_ref().and_then(|h| non_empty(&h.host)) {
                found.add(format!("{}.{name}.httpGet.host", c.path), why(host));
            }
            if let Some(host) = probe.tcp_socket.as_ref().and_then(|t| non_empty(&t.host)) {
                found.add(format!("{}.{name}.tcpSocket.host", c.path), why(host));
            }
        }
        let hooks: [(&str, Option<&LifecycleHandler>); 2] = [
            ("postStart", c.lifecycle.and_then(|l| l.post_start.as_ref())),
            ("preStop", c.lifecycle.and_then(|l| l.pre_stop.as_ref())),
        ];
        for (name, handler) in hooks {
            let Some(handler) = handler else { continue };
            if let Some(host) = handler.http_get.as_ref().and_then(|h| non_empty(&h.host)) {
                found.add(
                    format!("{}.lifecycle.{name}.httpGet.host", c.path),
                    why(host),
                );
            }
            if let Some(host) = handler.tcp_socket.as_ref().and_then(|t| non_empty(&t.host)) {
                found.add(
                    format!("{}.lifecycle.{name}.tcpSocket.host", c.path),
                    why(host),
                );
            }
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// AppArmor: `appArmorProfile.type` (pod and containers) undefined, RuntimeDefault or
/// Localhost; the legacy annotation `container.apparmor.security.beta.kubernetes.io/*`
/// undefined, "", `runtime/default` or `localhost/*`. (check_appArmorProfile.go)
fn app_armor(pod: &Pod<'_>, found: &mut Found) {
    let check = |found: &mut Found, path: String, ty: &str| {
        if !matches!(ty, "RuntimeDefault" | "Localhost") {
            found.add(
                path,
                format!("AppArmor profile {ty:?} is forbidden (RuntimeDefault or Localhost)"),
            );
        }
    };
    if let Some(profile) = pod.security.and_then(|s| s.app_armor_profile.as_ref()) {
        check(
            found,
            "spec.securityContext.appArmorProfile.type".into(),
            &profile.type_,
        );
    }
    for c in &pod.containers {
        if let Some(profile) = c.security.and_then(|s| s.app_armor_profile.as_ref()) {
            check(found, c.sc_path("appArmorProfile.type"), &profile.type_);
        }
    }
    for (key, value) in &pod.annotations {
        if key.starts_with(APPARMOR_ANNOTATION_PREFIX)
            && !(value.is_empty() || *value == "runtime/default" || value.starts_with("localhost/"))
        {
            found.add(
                format!("metadata.annotations[{key}]"),
                format!("AppArmor profile {value:?} is forbidden (runtime/default or localhost/*)"),
            );
        }
    }
}

/// SELinux type values a pod may ask for (check_seLinuxOptions.go, the 1.31 set).
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// SELinux: `seLinuxOptions.type` from the allowed set, `user` and `role` undefined or
/// "", pod and containers. (check_seLinuxOptions.go)
fn se_linux(pod: &Pod<'_>, found: &mut Found) {
    let mut targets = Vec::new();
    if let Some(o) = pod.security.and_then(|s| s.se_linux_options.as_ref()) {
        targets.push(("spec.securityContext.seLinuxOptions".to_string(), o));
    }
    for c in &pod.containers {
        if let Some(o) = c.security.and_then(|s| s.se_linux_options.as_ref()) {
            targets.push((c.sc_path("seLinuxOptions"), o));
        }
    }
    for (path, o) in targets {
        let ty = o.type_.as_deref().unwrap_or("");
        if !SELINUX_TYPES.contains(&ty) {
            found.add(
                format!("{path}.type"),
                format!("SELinux type {ty:?} is forbidden (one of {SELINUX_TYPES:?})"),
            );
        }
        if let Some(user) = non_empty(&o.user) {
            found.add(
                format!("{path}.user"),
                format!("a custom SELinux user ({user:?}) is forbidden"),
            );
        }
        if let Some(role) = non_empty(&o.role) {
            found.add(
                format!("{path}.role"),
                format!("a custom SELinux role ({role:?}) is forbidden"),
            );
        }
    }
}

/// /proc mount type: `procMount` undefined or Default. (check_procMount*.go; the
/// `hostUsers: false` relaxation is deliberately not applied, see the module doc)
fn proc_mount(pod: &Pod<'_>, found: &mut Found) {
    for c in &pod.containers {
        if let Some(mount) = c.security.and_then(|s| s.proc_mount.as_deref())
            && mount != "Default"
        {
            found.add(
                c.sc_path("procMount"),
                format!("procMount {mount:?} is forbidden (must be unset or Default)"),
            );
        }
    }
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn seccomp_type_allowed(ty: &str) -> bool {
    matches!(ty, "RuntimeDefault" | "Localhost")
}

/// Seccomp: `seccompProfile.type` (pod and containers) undefined, RuntimeDefault or
/// Localhost (v1.19+); the legacy annotations `seccomp.security.alpha.kubernetes.io/pod`
/// and `container.seccomp.security.alpha.kubernetes.io/*` undefined, `runtime/default`,
/// `docker/default` or `localhost/*` (before v1.19). (check_seccompProfile_baseline.go)
fn seccomp_baseline(pod: &Pod<'_>, found: &mut Found) {
    let why =
        |ty: &str| format!("seccomp profile {ty:?} is forbidden (RuntimeDefault or Localhost)");
    if let Some(profile) = pod.security.and_then(|s| s.seccomp_profile.as_ref())
        && !seccomp_type_allowed(&profile.type_)
    {
        found.add(
            "spec.securityContext.seccompProfile.type".into(),
            why(&profile.type_),
        );
    }
    for c in &pod.containers {
        if let Some(profile) = c.security.and_then(|s| s.seccomp_profile.as_ref())
            && !seccomp_type_allowed(&profile.type_)
        {
            found.add(c.sc_path("seccompProfile.type"), why(&profile.type_));
        }
    }
    for (key, value) in &pod.annotations {
        let legacy =
            *key == SECCOMP_POD_ANNOTATION || key.starts_with(SECCOMP_CONTAINER_ANNOTATION_PREFIX);
        let allowed = matches!(*value, "runtime/default" | "docker/default")
            || value.starts_with("localhost/");
        if legacy && !allowed {
            found.add(
                format!("metadata.annotations[{key}]"),
                format!("seccomp profile {value:?} is forbidden (runtime/default or localhost/*)"),
            );
        }
    }
}

/// The "safe" sysctls (check_sysctls.go, the 1.32 set; the kubelet's safe list).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// Sysctls: `spec.securityContext.sysctls[*].name` from the safe set. (check_sysctls.go)
fn sysctls(pod: &Pod<'_>, found: &mut Found) {
    let list = pod.security.and_then(|s| s.sysctls.as_ref());
    for (i, sysctl) in list.into_iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            found.add(
                format!("spec.securityContext.sysctls[{i}].name"),
                format!("sysctl {:?} is not in the safe set", sysctl.name),
            );
        }
    }
}

// --- Restricted -------------------------------------------------------------------

/// The volume sources Restricted allows (check_restrictedVolumes.go; `image` since 1.33).
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Volume types: only the sources above. Read from the volume's serialized form, so a
/// source this checker does not know of is refused too. (check_restrictedVolumes.go)
fn volume_types(pod: &Pod<'_>, found: &mut Found) {
    for (i, v) in pod.spec.volumes.iter().flatten().enumerate() {
        let value = serde_json::to_value(v).expect("a Volume serializes");
        let sources = value.as_object().into_iter().flatten().map(|(k, _)| k);
        for source in sources.filter(|k| *k != "name") {
            if !RESTRICTED_VOLUME_SOURCES.contains(&source.as_str()) {
                found.add(
                    format!("spec.volumes[{i}].{source}"),
                    format!(
                        "{source} volumes are forbidden (Restricted allows {})",
                        RESTRICTED_VOLUME_SOURCES.join(", ")
                    ),
                );
            }
        }
    }
}

/// Privilege escalation: `allowPrivilegeEscalation` must be false on every container;
/// Windows pods are exempt (v1.25+). (check_allowPrivilegeEscalation.go)
fn allow_privilege_escalation(pod: &Pod<'_>, found: &mut Found) {
    if pod.is_windows() {
        return;
    }
    for c in &pod.containers {
        if c.security.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            found.add(
                c.sc_path("allowPrivilegeEscalation"),
                "must be set to false",
            );
        }
    }
}

/// Running as non-root: `runAsNonRoot` must be true; a container may leave it unset
/// when the pod sets it true, and a container's own value overrides the pod's. A pod
/// that sets false is itself a violation. (check_runAsNonRoot.go)
fn run_as_non_root(pod: &Pod<'_>, found: &mut Found) {
    let pod_value = pod.security.and_then(|s| s.run_as_non_root);
    if pod_value == Some(false) {
        found.add(
            "spec.securityContext.runAsNonRoot".into(),
            "must not be false",
        );
    }
    for c in &pod.containers {
        match c.security.and_then(|s| s.run_as_non_root) {
            Some(true) => {}
            Some(false) => found.add(c.sc_path("runAsNonRoot"), "must not be false"),
            None if pod_value == Some(true) => {}
            None => found.add(
                c.sc_path("runAsNonRoot"),
                "must be true, here or in spec.securityContext",
            ),
        }
    }
}

/// Running as a non-root user (v1.23+): `runAsUser` undefined or non-zero, pod and
/// containers. (check_runAsUser.go)
fn run_as_user(pod: &Pod<'_>, found: &mut Found) {
    if pod.security.and_then(|s| s.run_as_user) == Some(0) {
        found.add(
            "spec.securityContext.runAsUser".into(),
            "must not be 0 (root)",
        );
    }
    for c in &pod.containers {
        if c.security.and_then(|s| s.run_as_user) == Some(0) {
            found.add(c.sc_path("runAsUser"), "must not be 0 (root)");
        }
    }
}

/// Seccomp (v1.19+): every container runs under RuntimeDefault or Localhost, set on the
/// container or inherited from the pod (a container's own bad value is Baseline's
/// finding); Windows pods are exempt (v1.25+). (check_seccompProfile_restricted.go)
fn seccomp_restricted(pod: &Pod<'_>, found: &mut Found) {
    if pod.is_windows() {
        return;
    }
    let pod_set = pod
        .security
        .and_then(|s| s.seccomp_profile.as_ref())
        .is_some_and(|p| seccomp_type_allowed(&p.type_));
    if pod_set {
        return;
    }
    for c in &pod.containers {
        if c.security
            .and_then(|s| s.seccomp_profile.as_ref())
            .is_none()
        {
            found.add(
                c.sc_path("seccompProfile.type"),
                "must be RuntimeDefault or Localhost, here or in spec.securityContext",
            );
        }
    }
}

/// Capabilities (v1.22+): `capabilities.drop` must include ALL and `capabilities.add`
/// may hold only NET_BIND_SERVICE; Windows pods are exempt (v1.25+).
/// (check_capabilities_restricted.go)
fn capabilities_restricted(pod: &Pod<'_>, found: &mut Found) {
    if pod.is_windows() {
        return;
    }
    for c in &pod.containers {
        let drops_all = c
            .security
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.drop.as_ref())
            .is_some_and(|drop| drop.iter().any(|d| d == "ALL"));
        if !drops_all {
            found.add(c.sc_path("capabilities.drop"), "must include ALL");
        }
        let bad: Vec<&str> = added_capabilities(c)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            found.add(
                c.sc_path("capabilities.add"),
                format!(
                    "adds {}; Restricted allows only NET_BIND_SERVICE",
                    bad.join(", ")
                ),
            );
        }
    }
}
