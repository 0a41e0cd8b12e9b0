//! The labels and annotations every generated object and the pod template carry (§3).

use std::collections::BTreeMap;

use crate::api::MANAGED_BY;
use crate::validate::ValidatedPod;

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const VERSION: &str = "app.kubernetes.io/version";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

pub const OWNER_TEAM: &str = "safeapp.dev/owner-team";
pub const CONTACT: &str = "safeapp.dev/contact";
pub const RUNBOOK: &str = "safeapp.dev/runbook";
pub const DOCS: &str = "safeapp.dev/docs";
pub const DEPENDS_ON: &str = "safeapp.dev/depends-on";

/// The two stable labels: the selector of the Deployment, Service and PDB. Nothing else
/// goes in a selector, because a Deployment's selector is immutable.
pub fn selector(pod: &ValidatedPod) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), pod.name.clone()),
        (INSTANCE.to_string(), pod.instance()),
    ])
}

/// All labels: the stable pair, version, component, part-of, managed-by, the
/// dimensions that are set, and `spec.labels` (validation keeps it off reserved keys).
pub fn labels(pod: &ValidatedPod) -> BTreeMap<String, String> {
    let spec = &pod.fields;
    let mut out = spec.labels.clone().unwrap_or_default();
    out.extend(selector(pod));
    out.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let optional = [
        (VERSION, &pod.version),
        (COMPONENT, &spec.component),
        (PART_OF, &spec.part_of),
        ("tier", &spec.tier),
        ("environment", &spec.environment),
        ("track", &spec.track),
        ("tenant", &spec.tenant),
        ("shard", &spec.shard),
    ];
    for (key, value) in optional {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            out.insert(key.into(), v.clone());
        }
    }
    out
}

/// All annotations: `spec.annotations` plus the ownership and dependency ones.
pub fn annotations(pod: &ValidatedPod) -> BTreeMap<String, String> {
    let spec = &pod.fields;
    let mut out = spec.annotations.clone().unwrap_or_default();
    if let Some(owner) = &spec.owner {
        for (key, value) in [
            (OWNER_TEAM, &owner.team),
            (CONTACT, &owner.contact),
            (RUNBOOK, &owner.runbook),
            (DOCS, &owner.docs),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                out.insert(key.into(), v.clone());
            }
        }
    }
    if let Some(deps) = spec.depends_on.as_ref().filter(|d| !d.is_empty()) {
        out.insert(DEPENDS_ON.into(), deps.join(","));
    }
    out
}
