//! Security profiles: a SafeApp may choose no weaker `securityProfile` than the policy
//! allows, and every container (init containers included) meets its profile whatever
//! the user sets. A user's securityContext may tighten the profile, never loosen it:
//! each loosening setting is refused at its field path (never silently dropped), and
//! render fills in every field the user left out (`render::security`).
//!
//! What each profile refuses follows the Pod Security Standards
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>), plus the
//! settings our own rendering of the profile fixes (restricted: read-only root
//! filesystem; both: no privilege escalation):
//! - baseline: privileged, capabilities beyond the baseline set, Unconfined seccomp or
//!   AppArmor, SELinux user/role or a custom type, a non-default procMount, Windows
//!   HostProcess, hostPort, `host` on a probe or lifecycle handler, privilege
//!   escalation;
//! - restricted: all of that, plus root (runAsUser 0, runAsNonRoot false), any added
//!   capability but NET_BIND_SERVICE, and a writable root filesystem.
//!
//! `none` enforces nothing here (the policy's other floors still apply).

use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, LifecycleHandler, Probe, SecurityContext, TCPSocketAction,
};

use super::Problems;
use crate::api::SafeAppSpec;
use crate::api::pod::PodFields;
use crate::api::v1alpha1::SecurityProfile;
use crate::policy::Policy;

/// Capabilities the baseline standard lets a container add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
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
/// SELinux types the baseline standard allows ("" means unset).
pub const ALLOWED_SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];
/// Volume sources the restricted standard allows.
pub const RESTRICTED_VOLUME_TYPES: &[&str] = &[
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

/// The profile and pod identity, with the policy's defaults applied.
pub(super) struct ResolvedSecurity {
    pub profile: SecurityProfile,
    pub run_as_user: i64,
    pub run_as_group: i64,
}

/// Checks the profile against the policy's floor, the pod's user and group, the app
/// container's probes and every init container.
pub(super) fn check_security(
    p: &mut Problems,
    spec: &PodFields,
    app_name: &str,
    policy: &Policy,
) -> ResolvedSecurity {
    let profile = spec
        .security_profile
        .unwrap_or(policy.defaults.security_profile);
    let floor = policy.guardrails.weakest_security_profile;
    if !policy.guardrails.allows_profile(profile) {
        p.add(
            "spec.securityProfile",
            format!(
                "{} is weaker than the operator policy allows (guardrails.weakestSecurityProfile: {}); ask the platform team",
                profile.as_str(),
                floor.as_str()
            ),
        );
    }
    let run_as_user = spec.run_as_user.unwrap_or(policy.defaults.run_as_user);
    let run_as_group = spec.run_as_group.unwrap_or(policy.defaults.run_as_group);
    for (path, id) in [
        ("spec.runAsUser", run_as_user),
        ("spec.runAsGroup", run_as_group),
    ] {
        if id < 0 {
            p.add(path, format!("{id} is negative"));
        }
    }
    if run_as_user == 0 && profile == SecurityProfile::Restricted {
        p.add(
            "spec.runAsUser",
            "0 is root; the restricted profile runs as a non-root user (10000 or more is advised)",
        );
    }
    if let Some(init) = &spec.init_containers {
        super::containers::check_init_containers(p, init, app_name, profile, policy);
    }
    ResolvedSecurity {
        profile,
        run_as_user,
        run_as_group,
    }
}

/// The app container's probes may not reach another host under a profile.
pub(super) fn check_probes(p: &mut Problems, spec: &SafeAppSpec, profile: SecurityProfile) {
    if profile != SecurityProfile::None
        && let Some(probes) = &spec.probes
    {
        for (field, probe) in [
            ("readiness", &probes.readiness),
            ("liveness", &probes.liveness),
            ("startup", &probes.startup),
        ] {
            if let Some(probe) = probe {
                check_probe_host(p, &format!("spec.probes.{field}"), probe, profile);
            }
        }
    }
}

/// Refuses every setting of one container that would loosen `profile`.
pub(super) fn check_container(
    p: &mut Problems,
    path: &str,
    c: &Container,
    profile: SecurityProfile,
) {
    if profile == SecurityProfile::None {
        return;
    }
    if let Some(sc) = &c.security_context {
        check_security_context(p, &format!("{path}.securityContext"), sc, profile);
    }
    for (i, port) in c.ports.iter().flatten().enumerate() {
        if port.host_port.is_some_and(|h| h != 0) {
            p.add(
                format!("{path}.ports[{i}].hostPort"),
                refused(profile, "a host port binds the node's network"),
            );
        }
    }
    for (field, probe) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            check_probe_host(p, &format!("{path}.{field}"), probe, profile);
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (field, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(LifecycleHandler {
                http_get,
                tcp_socket,
                ..
            }) = handler
            {
                check_handler_host(
                    p,
                    &format!("{path}.lifecycle.{field}"),
                    http_get.as_ref(),
                    tcp_socket.as_ref(),
                    profile,
                );
            }
        }
    }
}

fn check_probe_host(p: &mut Problems, path: &str, probe: &Probe, profile: SecurityProfile) {
    check_handler_host(
        p,
        path,
        probe.http_get.as_ref(),
        probe.tcp_socket.as_ref(),
        profile,
    );
}

/// A probe or hook aimed at another host makes the kubelet a proxy into the node's
/// network (baseline forbids it).
fn check_handler_host(
    p: &mut Problems,
    path: &str,
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
    profile: SecurityProfile,
) {
    let why = "the kubelet would connect to another host on the pod's behalf";
    if http_get
        .and_then(|h| h.host.as_deref())
        .is_some_and(|h| !h.is_empty())
    {
        p.add(format!("{path}.httpGet.host"), refused(profile, why));
    }
    if tcp_socket
        .and_then(|t| t.host.as_deref())
        .is_some_and(|h| !h.is_empty())
    {
        p.add(format!("{path}.tcpSocket.host"), refused(profile, why));
    }
}

fn refused(profile: SecurityProfile, why: &str) -> String {
    format!("not allowed under the {} profile: {why}", profile.as_str())
}

fn check_security_context(
    p: &mut Problems,
    path: &str,
    sc: &SecurityContext,
    profile: SecurityProfile,
) {
    let restricted = profile == SecurityProfile::Restricted;
    let mut refuse =
        |field: &str, why: &str| p.add(format!("{path}.{field}"), refused(profile, why));
    if sc.privileged == Some(true) {
        refuse("privileged", "a privileged container is root on the node");
    }
    if sc.allow_privilege_escalation == Some(true) {
        refuse(
            "allowPrivilegeEscalation",
            "the profile sets it to false so no process gains more privileges than its parent",
        );
    }
    if let Some(w) = &sc.windows_options
        && w.host_process == Some(true)
    {
        refuse(
            "windowsOptions.hostProcess",
            "a HostProcess container runs on the node",
        );
    }
    if let Some(s) = &sc.seccomp_profile
        && s.type_ == "Unconfined"
    {
        refuse(
            "seccompProfile.type",
            "Unconfined turns the syscall filter off",
        );
    }
    if let Some(a) = &sc.app_armor_profile
        && a.type_ == "Unconfined"
    {
        refuse("appArmorProfile.type", "Unconfined turns AppArmor off");
    }
    if let Some(se) = &sc.se_linux_options {
        let kind = se.type_.as_deref().unwrap_or("");
        if !ALLOWED_SELINUX_TYPES.contains(&kind) {
            refuse(
                "seLinuxOptions.type",
                &format!(
                    "{kind:?} is not one of container_t, container_init_t, container_kvm_t, container_engine_t"
                ),
            );
        }
        if se.user.as_deref().is_some_and(|u| !u.is_empty()) {
            refuse(
                "seLinuxOptions.user",
                "a custom SELinux user may escape the container's label",
            );
        }
        if se.role.as_deref().is_some_and(|r| !r.is_empty()) {
            refuse(
                "seLinuxOptions.role",
                "a custom SELinux role may escape the container's label",
            );
        }
    }
    if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
        refuse(
            "procMount",
            "an unmasked /proc exposes the node's kernel settings",
        );
    }
    let allowed_caps: &[&str] = if restricted {
        &["NET_BIND_SERVICE"]
    } else {
        BASELINE_CAPABILITIES
    };
    let adds = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
    for (i, cap) in adds.into_iter().flatten().enumerate() {
        if !allowed_caps.contains(&cap.as_str()) {
            p.add(
                format!("{path}.capabilities.add[{i}]"),
                refused(
                    profile,
                    &format!(
                        "{cap} is not one of {} (Pod Security compares names without the CAP_ prefix)",
                        allowed_caps.join(", ")
                    ),
                ),
            );
        }
    }
    if restricted {
        let mut refuse =
            |field: &str, why: &str| p.add(format!("{path}.{field}"), refused(profile, why));
        if sc.run_as_non_root == Some(false) {
            refuse("runAsNonRoot", "containers run as a non-root user");
        }
        if sc.run_as_user == Some(0) {
            refuse("runAsUser", "0 is root; containers run as a non-root user");
        }
        if sc.read_only_root_filesystem == Some(false) {
            refuse(
                "readOnlyRootFilesystem",
                "the root filesystem is read-only (write to /tmp, or choose the baseline profile)",
            );
        }
    }
}
