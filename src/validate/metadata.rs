//! Names, label dimensions, extra labels and annotations: values the API server accepts
//! and keys the operator does not own.

use std::collections::BTreeMap;

use super::{Problems, RESERVED_ANNOTATION_PREFIX, RESERVED_LABELS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::pod::PodFields;
use crate::api::{SafeAppSpec, WorkloadKind};
use crate::names;

/// Checks the object's own name and namespace; returns the name ("" when missing).
pub(super) fn check_object_meta(p: &mut Problems, kind: WorkloadKind, meta: &ObjectMeta) -> String {
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        p.add("metadata.name", "required");
    } else {
        let names_what = match kind {
            WorkloadKind::SafeApp => {
                "it names the Deployment, Service, PodDisruptionBudget, HPA and container, and labels (63 characters at most)"
            }
            WorkloadKind::SafeJob => {
                "it names the CronJob or Job and the container, and labels (52 characters at most: a CronJob's Jobs add 11)"
            }
        };
        let max = kind.max_name_len();
        let result = names::check_dns1035_label(&name).and_then(|()| {
            if name.len() > max {
                Err(format!("must be no more than {max} characters"))
            } else {
                Ok(())
            }
        });
        p.check(
            "metadata.name",
            result.map_err(|e| format!("{e}; {names_what}")),
        );
    }
    if let Some(ns) = &meta.namespace {
        p.check("metadata.namespace", names::check_dns1123_label(ns));
    }
    name
}

/// Checks label dimensions, `spec.labels`, annotation keys and `spec.dependsOn`.
pub(super) fn check_spec_metadata(p: &mut Problems, spec: &PodFields) {
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

/// `spec.service.annotations` (a SafeApp's Service only) may use any key but the
/// operator's prefix... checked like the others, without the pod-reaching rules.
pub(super) fn check_service_annotations(p: &mut Problems, spec: &SafeAppSpec) {
    if let Some(svc) = &spec.service {
        check_annotation_keys(
            p,
            "spec.service.annotations",
            svc.annotations.as_ref(),
            false,
        );
    }
}
