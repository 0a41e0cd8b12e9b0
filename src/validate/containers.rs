//! Init containers: names that do not clash, an image, resources, and the profile.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Container;

use super::{Problems, resources, security};
use crate::api::v1alpha1::SecurityProfile;
use crate::names;
use crate::policy::Policy;

pub(super) fn check_init_containers(
    p: &mut Problems,
    init: &[Container],
    app_name: &str,
    profile: SecurityProfile,
    policy: &Policy,
) {
    let mut seen = BTreeSet::new();
    for (i, c) in init.iter().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        p.check(format!("{path}.name"), names::check_dns1123_label(&c.name));
        if c.name == app_name || !seen.insert(c.name.clone()) {
            p.add(
                format!("{path}.name"),
                format!("duplicate container name {:?}", c.name),
            );
        }
        if c.image.as_deref().is_none_or(str::is_empty) {
            p.add(format!("{path}.image"), "required");
        }
        resources::check_resources(
            p,
            &format!("{path}.resources"),
            c.resources.as_ref(),
            policy,
        );
        security::check_container(p, &path, c, profile);
    }
}
