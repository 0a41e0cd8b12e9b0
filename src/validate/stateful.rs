//! A stateful SafeApp (`spec.stateful`): its claim templates (names, sizes, classes,
//! mounts) against the policy's storage guardrails, and what a StatefulSet cannot do
//! (autoscaling is refused, and so are the Deployment-only rollout fields).

use std::collections::BTreeSet;

use super::Problems;
use crate::api::SafeAppSpec;
use crate::policy::Policy;

/// Checks `spec.stateful` (nothing without it).
pub(super) fn check_stateful(p: &mut Problems, spec: &SafeAppSpec, policy: &Policy) {
    let Some(stateful) = &spec.stateful else {
        return;
    };
    if spec.autoscaling.is_some() {
        p.add(
            "spec.autoscaling",
            "not allowed with spec.stateful: scaling a stateful app moves data (new replicas start empty, removed ones keep their claims), which an autoscaler cannot judge; set spec.replicas",
        );
    }
    if let Some(rollout) = &spec.rollout {
        if rollout.max_surge.is_some() {
            p.add(
                "spec.rollout.maxSurge",
                "not allowed with spec.stateful: a StatefulSet replaces its pods in place (each name exists once), it never surges",
            );
        }
        if rollout.max_unavailable.is_some() {
            p.add(
                "spec.rollout.maxUnavailable",
                "not allowed with spec.stateful: a StatefulSet rolls one pod at a time",
            );
        }
    }
    let max = crate::quantity::parse(&policy.guardrails.max_claim_size).ok();
    let mut names = BTreeSet::new();
    let mut mounts = BTreeSet::new();
    let existing_mounts: BTreeSet<&str> = spec
        .pod
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    let volumes: BTreeSet<&str> = spec
        .pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for (i, claim) in stateful.volume_claim_templates.iter().flatten().enumerate() {
        let path = format!("spec.stateful.volumeClaimTemplates[{i}]");
        p.check(
            format!("{path}.name"),
            crate::names::check_dns1123_label(&claim.name),
        );
        if !names.insert(claim.name.as_str()) {
            p.add(
                format!("{path}.name"),
                format!("{:?} is declared twice", claim.name),
            );
        }
        if volumes.contains(claim.name.as_str()) {
            p.add(
                format!("{path}.name"),
                format!(
                    "{:?} is also the name of a volume in spec.volumes",
                    claim.name
                ),
            );
        }
        match crate::quantity::parse(&claim.size) {
            Err(e) => p.add(format!("{path}.size"), e),
            Ok(q) if q.0 <= 0.0 => p.add(format!("{path}.size"), "must be greater than zero"),
            Ok(q) => {
                if max.is_some_and(|m| q.0 > m.0) {
                    p.add(
                        format!("{path}.size"),
                        format!(
                            "{} is above the policy's maximum claim size {} (guardrails.maxClaimSize)",
                            claim.size, policy.guardrails.max_claim_size
                        ),
                    );
                }
            }
        }
        match &claim.storage_class_name {
            Some(class) if !policy.guardrails.allows_storage_class(class) => p.add(
                format!("{path}.storageClassName"),
                format!(
                    "{class:?} is not allowed by the policy (guardrails.allowedStorageClasses: {}); leave it out for the cluster's default class",
                    if policy.guardrails.allowed_storage_classes.is_empty() {
                        "none".to_string()
                    } else {
                        policy.guardrails.allowed_storage_classes.join(", ")
                    }
                ),
            ),
            _ => {}
        }
        let modes = claim.access_modes.iter().flatten();
        let mut seen = BTreeSet::new();
        for (j, mode) in modes.enumerate() {
            if !seen.insert(mode.as_str()) {
                p.add(
                    format!("{path}.accessModes[{j}]"),
                    format!("{} is listed twice", mode.as_str()),
                );
            }
        }
        if !claim.mount_path.starts_with('/') {
            p.add(
                format!("{path}.mountPath"),
                format!("{:?} must be an absolute path", claim.mount_path),
            );
        } else if !mounts.insert(claim.mount_path.as_str())
            || existing_mounts.contains(claim.mount_path.as_str())
        {
            p.add(
                format!("{path}.mountPath"),
                format!("{:?} is already mounted", claim.mount_path),
            );
        }
        if let Some(sub) = &claim.sub_path
            && (sub.starts_with('/') || sub.split('/').any(|part| part == ".."))
        {
            p.add(
                format!("{path}.subPath"),
                format!("{sub:?} must be a relative path without \"..\""),
            );
        }
    }
}
