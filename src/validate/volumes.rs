//! Volumes: unique names, mounts that name a declared volume, and only the volume
//! sources the policy allows (`guardrails.allowedVolumeTypes`; under the restricted
//! profile also only those the restricted standard allows; `hostPath` never).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Volume, VolumeMount};

use super::{Problems, RESTRICTED_VOLUME_TYPES, TMP_VOLUME};
use crate::api::pod::PodFields;
use crate::api::v1alpha1::SecurityProfile;
use crate::names;
use crate::policy::Policy;

/// The source of a volume, by its field name (`configMap`, `nfs`, ...). A volume with no
/// source is an emptyDir, as the API server defaults it.
pub fn volume_type(v: &Volume) -> String {
    let json = serde_json::to_value(v).unwrap_or_default();
    json.as_object()
        .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        .unwrap_or_else(|| "emptyDir".into())
}

pub(super) fn check_volumes(
    p: &mut Problems,
    spec: &PodFields,
    profile: SecurityProfile,
    policy: &Policy,
) {
    let allowed = &policy.guardrails.allowed_volume_types;
    let mut seen = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let path = format!("spec.volumes[{i}]");
        p.check(format!("{path}.name"), names::check_dns1123_label(&v.name));
        if !seen.insert(v.name.clone()) {
            p.add(
                format!("{path}.name"),
                format!("duplicate volume name {:?}", v.name),
            );
        }
        if v.name == TMP_VOLUME {
            p.add(
                format!("{path}.name"),
                format!("{TMP_VOLUME:?} is reserved for the operator's /tmp volume"),
            );
        }
        let kind = volume_type(v);
        if kind == "hostPath" {
            p.add(
                format!("{path}.hostPath"),
                "hostPath volumes are not allowed: a SafeApp's or SafeJob's pods may not touch the node's disk",
            );
        } else if !allowed.contains(&kind) {
            p.add(
                format!("{path}.{kind}"),
                format!(
                    "{kind} volumes are not allowed by the operator policy (guardrails.allowedVolumeTypes: {})",
                    allowed.join(", ")
                ),
            );
        } else if profile == SecurityProfile::Restricted
            && !RESTRICTED_VOLUME_TYPES.contains(&kind.as_str())
        {
            p.add(
                format!("{path}.{kind}"),
                format!(
                    "{kind} volumes are not allowed under the restricted profile (only {})",
                    RESTRICTED_VOLUME_TYPES.join(", ")
                ),
            );
        }
    }
    // The operator adds its /tmp volume under restricted (read-only root filesystem).
    let tmp_exists = profile == SecurityProfile::Restricted;
    check_mounts(
        p,
        "spec.volumeMounts",
        spec.volume_mounts.as_deref(),
        &seen,
        tmp_exists,
    );
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        check_mounts(
            p,
            &format!("spec.initContainers[{i}].volumeMounts"),
            c.volume_mounts.as_deref(),
            &seen,
            tmp_exists,
        );
    }
}

fn check_mounts(
    p: &mut Problems,
    path: &str,
    mounts: Option<&[VolumeMount]>,
    volumes: &BTreeSet<String>,
    tmp_exists: bool,
) {
    for (i, m) in mounts.into_iter().flatten().enumerate() {
        let is_tmp = m.name == TMP_VOLUME && tmp_exists;
        if !volumes.contains(&m.name) && !is_tmp {
            p.add(
                format!("{path}[{i}].name"),
                format!("no volume named {:?} in spec.volumes", m.name),
            );
        }
    }
}
