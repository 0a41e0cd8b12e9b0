//! The platform team's other floors (`guardrails` in the operator policy): the Service
//! type, the ServiceAccount and PriorityClass a pod runs with, annotations that may not
//! reach pods, and namespaces the operator never acts in. The security profile and
//! volume floors live with their own checks (`security`, `volumes`).

use super::Problems;
use crate::api::SafeAppSpec;
use crate::api::pod::PodFields;
use crate::names;
use crate::policy::Policy;

/// The floors on what both kinds' pods run with, and the namespace.
pub(super) fn check_guardrails(
    p: &mut Problems,
    namespace: Option<&str>,
    spec: &PodFields,
    policy: &Policy,
) {
    let g = &policy.guardrails;
    if let Some(ns) = namespace
        && g.denies_namespace(ns)
    {
        p.add(
            "metadata.namespace",
            format!(
                "the operator does not act in namespace {ns} (policy guardrails.deniedNamespaces)"
            ),
        );
    }
    if let Some(sa) = &spec.service_account_name {
        p.check(
            "spec.serviceAccountName",
            names::check_dns1123_subdomain(sa),
        );
        if !g.allows_service_account(sa) {
            p.add(
                "spec.serviceAccountName",
                format!(
                    "{sa} is not allowed by the operator policy (guardrails.allowedServiceAccounts: {}); pods run as the namespace's default ServiceAccount unless the platform team allows another",
                    listed(&g.allowed_service_accounts)
                ),
            );
        }
    }
    if let Some(pc) = &spec.priority_class_name {
        p.check("spec.priorityClassName", names::check_dns1123_subdomain(pc));
        if !g.allows_priority_class(pc) {
            p.add(
                "spec.priorityClassName",
                format!(
                    "{pc} is not allowed by the operator policy (guardrails.allowedPriorityClasses: {})",
                    listed(&g.allowed_priority_classes)
                ),
            );
        }
    }
    for key in spec.annotations.iter().flat_map(|a| a.keys()) {
        if g.forbids_pod_annotation(key) {
            p.add(
                format!("spec.annotations[{key}]"),
                "reaches the pods and is forbidden by the operator policy (guardrails.forbiddenPodAnnotations): it can change their security settings",
            );
        }
    }
}

/// A SafeApp's Service type.
pub(super) fn check_service_type(p: &mut Problems, spec: &SafeAppSpec, policy: &Policy) {
    let g = &policy.guardrails;
    if let Some(t) = spec.service.as_ref().and_then(|s| s.type_)
        && !g.allowed_service_types.contains(&t)
    {
        let allowed: Vec<&str> = g.allowed_service_types.iter().map(|t| t.as_str()).collect();
        p.add(
            "spec.service.type",
            format!(
                "{} is not allowed by the operator policy (guardrails.allowedServiceTypes: {})",
                t.as_str(),
                allowed.join(", ")
            ),
        );
    }
}

fn listed(patterns: &[String]) -> String {
    if patterns.is_empty() {
        "none".into()
    } else {
        patterns.join(", ")
    }
}
