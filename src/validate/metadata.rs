//! Names, label dimensions, extra labels and annotations: values the API server accepts
//! and keys the operator does not own.

use std::collections::BTreeMap;

use super::{Problems, RESERVED_ANNOTATION_PREFIX, RESERVED_LABELS};
use crate::api::{SafeApp, SafeAppSpec};
use crate::names;

/// Checks the SafeApp's own name and namespace; returns the name ("" when missing).
pub(super) fn check_object_meta(p: &mut Problems, app: &SafeApp) -> String {
    let name = app.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        p.add("metadata.name", "required");
    } else {
        p.check("metadata.name", names::check_dns1035_label(&name).map_err(|e| {
            format!("{e}; it names the Deployment, Service, PodDisruptionBudget, HPA and container, and labels (63 characters at most)")
        }));
    }
    if let Some(ns) = &app.metadata.namespace {
        p.check("metadata.namespace", names::check_dns1123_label(ns));
    }
    name
}

/// Checks label dimensions, `spec.labels`, annotation keys and `spec.dependsOn`.
pub(super) fn check_spec_metadata(p: &mut Problems, spec: &SafeAppSpec) {
    let dims = [
        ("spec.tier", &spec.tier),
        ("spec.environment", &spec.environment),
        ("spec.track", &spec.track),
        ("spec.tenant", &spec.tenant),
        ("spec.shard", &spec.shard),
        ("spec.component", &spec.component),
        ("spec.partOf", &spec.part_of),
    ];
    for (path, value) in dims {
        if let Some(v) = value {
            p.check(path, names::check_label_value(v));
        }
    }
    if let Some(labels) = &spec.labels {
        for (k, v) in labels {
            let path = format!("spec.labels[{k}]");
            p.check(&path, names::check_qualified_name(k));
            p.check(&path, names::check_label_value(v));
            if RESERVED_LABELS.contains(&k.as_str()) {
                p.add(
                    &path,
                    format!("{k} is set by the operator; use the matching spec field instead"),
                );
            }
        }
    }
    check_annotation_keys(p, "spec.annotations", spec.annotations.as_ref(), true);
    if let Some(svc) = &spec.service {
        check_annotation_keys(
            p,
            "spec.service.annotations",
            svc.annotations.as_ref(),
            false,
        );
    }
    if let Some(deps) = &spec.depends_on {
        for (i, d) in deps.iter().enumerate() {
            p.check(
                format!("spec.dependsOn[{i}]"),
                names::check_dns1123_subdomain(d),
            );
        }
    }
}

fn check_annotation_keys(
    p: &mut Problems,
    path: &str,
    annotations: Option<&BTreeMap<String, String>>,
    reserve_prefix: bool,
) {
    let Some(map) = annotations else { return };
    for k in map.keys() {
        let kpath = format!("{path}[{k}]");
        p.check(&kpath, names::check_qualified_name(k));
        if reserve_prefix && k.starts_with(RESERVED_ANNOTATION_PREFIX) {
            p.add(
                &kpath,
                format!("the {RESERVED_ANNOTATION_PREFIX} prefix is the operator's; use spec.owner or spec.dependsOn"),
            );
        }
    }
}
