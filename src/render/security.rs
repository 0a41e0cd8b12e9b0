//! Pod and container security contexts for each `securityProfile`.
//!
//! - `restricted` (default) meets the Pod Security "restricted" standard: non-root with a
//!   UID/GID of 10001 unless told otherwise (10000+ cannot collide with a host user),
//!   RuntimeDefault seccomp, no privilege escalation, all capabilities dropped, and a
//!   read-only root filesystem with a writable `/tmp` emptyDir.
//! - `baseline`: RuntimeDefault seccomp and no privilege escalation, for images that must
//!   run as root or write to their root filesystem.
//! - `none`: nothing is set (the namespace's own admission decides).

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

use crate::api::v1alpha1::SecurityProfile;
use crate::validate::ValidatedPod;

fn runtime_default() -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    })
}

/// Pod-level security context.
pub fn pod(app: &ValidatedPod) -> Option<PodSecurityContext> {
    match app.security_profile {
        SecurityProfile::Restricted => Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(app.run_as_user),
            run_as_group: Some(app.run_as_group),
            fs_group: Some(app.run_as_group),
            seccomp_profile: runtime_default(),
            ..PodSecurityContext::default()
        }),
        SecurityProfile::Baseline => Some(PodSecurityContext {
            seccomp_profile: runtime_default(),
            ..PodSecurityContext::default()
        }),
        SecurityProfile::None => None,
    }
}

/// Container-level security context of the app container.
pub fn container(profile: SecurityProfile) -> Option<SecurityContext> {
    match profile {
        SecurityProfile::Restricted => Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        SecurityProfile::Baseline => Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            ..SecurityContext::default()
        }),
        SecurityProfile::None => None,
    }
}

/// An init container's context: the user's settings, with the profile's filling every
/// field the user left out. Validation already refused every setting that would loosen
/// the profile, so what remains of the user's only tightens it. Capabilities merge by
/// part: the profile's `drop` (ALL under restricted) is kept beside the user's own
/// drops, and the user's `add` (NET_BIND_SERVICE at most, under restricted) is kept.
pub fn merge_into(
    profile: SecurityProfile,
    user: Option<SecurityContext>,
) -> Option<SecurityContext> {
    let Some(base) = container(profile) else {
        return user;
    };
    let Some(u) = user else {
        return Some(base);
    };
    Some(SecurityContext {
        allow_privilege_escalation: u
            .allow_privilege_escalation
            .or(base.allow_privilege_escalation),
        privileged: u.privileged.or(base.privileged),
        run_as_non_root: u.run_as_non_root.or(base.run_as_non_root),
        read_only_root_filesystem: u
            .read_only_root_filesystem
            .or(base.read_only_root_filesystem),
        capabilities: merge_capabilities(base.capabilities, u.capabilities),
        ..u
    })
}

fn merge_capabilities(
    base: Option<Capabilities>,
    user: Option<Capabilities>,
) -> Option<Capabilities> {
    let Some(user) = user else { return base };
    let mut drop = base.and_then(|b| b.drop).unwrap_or_default();
    for d in user.drop.into_iter().flatten() {
        if !drop.contains(&d) {
            drop.push(d);
        }
    }
    Some(Capabilities {
        add: user.add,
        drop: (!drop.is_empty()).then_some(drop),
    })
}
