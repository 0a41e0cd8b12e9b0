//! Config references: every ConfigMap and Secret the pods read (env `valueFrom`,
//! `envFrom`, volumes and projected sources, init containers included), for the
//! config-change rollout. `spec.rollOnConfigChange: false` turns it off for the app;
//! `spec.configRefs[].rollOnChange: false` for one reference (an app that hot-reloads).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, Volume};

use super::Problems;
use crate::api::SafeAppSpec;
use crate::api::pod::PodFields;
use crate::api::v1alpha1::ConfigKind;
use crate::names;

/// One referenced object whose data rolls the pods when it changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigRef {
    pub kind: ConfigKind,
    pub name: String,
    /// Every reference to it is `optional: true`: it may be missing.
    pub optional: bool,
}

impl ConfigRef {
    /// `Kind/name`, as status reports it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// Every object the pods reference, sorted, each once (optional only when every
/// reference to it is).
pub fn references(spec: &PodFields) -> Vec<ConfigRef> {
    let mut found: BTreeMap<(ConfigKind, String), bool> = BTreeMap::new();
    let mut add = |kind, name: &str, optional: Option<bool>| {
        if name.is_empty() {
            return;
        }
        let optional = optional == Some(true);
        found
            .entry((kind, name.to_string()))
            .and_modify(|o| *o = *o && optional)
            .or_insert(optional);
    };
    let init = spec.init_containers.iter().flatten();
    let envs = spec
        .env
        .iter()
        .chain(init.clone().filter_map(|c| c.env.as_ref()));
    for env in envs.flatten() {
        env_refs(env, &mut add);
    }
    let env_froms = spec
        .env_from
        .iter()
        .chain(init.filter_map(|c| c.env_from.as_ref()));
    for from in env_froms.flatten() {
        env_from_refs(from, &mut add);
    }
    for v in spec.volumes.iter().flatten() {
        volume_refs(v, &mut add);
    }
    found
        .into_iter()
        .map(|((kind, name), optional)| ConfigRef {
            kind,
            name,
            optional,
        })
        .collect()
}

fn env_refs(env: &EnvVar, add: &mut impl FnMut(ConfigKind, &str, Option<bool>)) {
    let Some(from) = &env.value_from else { return };
    if let Some(r) = &from.config_map_key_ref {
        add(ConfigKind::ConfigMap, &r.name, r.optional);
    }
    if let Some(r) = &from.secret_key_ref {
        add(ConfigKind::Secret, &r.name, r.optional);
    }
}

fn env_from_refs(from: &EnvFromSource, add: &mut impl FnMut(ConfigKind, &str, Option<bool>)) {
    if let Some(r) = &from.config_map_ref {
        add(ConfigKind::ConfigMap, &r.name, r.optional);
    }
    if let Some(r) = &from.secret_ref {
        add(ConfigKind::Secret, &r.name, r.optional);
    }
}

fn volume_refs(v: &Volume, add: &mut impl FnMut(ConfigKind, &str, Option<bool>)) {
    if let Some(c) = &v.config_map {
        add(ConfigKind::ConfigMap, &c.name, c.optional);
    }
    if let Some(s) = &v.secret {
        add(
            ConfigKind::Secret,
            s.secret_name.as_deref().unwrap_or(""),
            s.optional,
        );
    }
    for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
        if let Some(c) = &source.config_map {
            add(ConfigKind::ConfigMap, &c.name, c.optional);
        }
        if let Some(s) = &source.secret {
            add(ConfigKind::Secret, &s.name, s.optional);
        }
    }
}

/// Checks `spec.configRefs` and returns the references whose data rolls the pods.
pub(super) fn check_config(p: &mut Problems, spec: &SafeAppSpec) -> Vec<ConfigRef> {
    let all = references(&spec.pod);
    let settings = spec.config_refs.as_deref().unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in settings.iter().enumerate() {
        let path = format!("spec.configRefs[{i}]");
        p.check(
            format!("{path}.name"),
            names::check_dns1123_subdomain(&s.name),
        );
        if !seen.insert((s.kind, s.name.as_str())) {
            p.add(
                &path,
                format!("{} {} is listed twice", s.kind.as_str(), s.name),
            );
        }
        if !all.iter().any(|r| r.kind == s.kind && r.name == s.name) {
            p.add(
                &path,
                format!(
                    "{} {} is not referenced by env, envFrom or volumes",
                    s.kind.as_str(),
                    s.name
                ),
            );
        }
    }
    if spec.roll_on_config_change == Some(false) {
        return Vec::new();
    }
    all.into_iter()
        .filter(|r| {
            !settings
                .iter()
                .any(|s| s.kind == r.kind && s.name == r.name && s.roll_on_change == Some(false))
        })
        .collect()
}
