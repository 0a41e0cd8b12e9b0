//! Shared test helpers.

pub mod argocd;
pub mod pss;
use safeapp::api::SafeApp;

/// Parses `base` (a SafeApp manifest) and merges the YAML mapping `extra` into its spec:
/// keys with a null value are removed, the others replace the base's.
pub fn app_with(base: &str, extra: &str) -> SafeApp {
    serde_yaml_ng::from_value(merged(base, extra)).expect("a SafeApp")
}

/// `base` (a manifest of either kind) with the YAML mapping `extra` merged into its spec,
/// as [`app_with`] does.
pub fn merged(base: &str, extra: &str) -> serde_yaml_ng::Value {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(base).expect("base manifest");
    if !extra.trim().is_empty() {
        let patch: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(extra).expect("patch mapping");
        let spec = value["spec"].as_mapping_mut().expect("spec mapping");
        for (k, v) in patch {
            if v.is_null() {
                spec.remove(&k);
            } else {
                spec.insert(k, v);
            }
        }
    }
    value
}

/// A policy with every guardrail relaxed (any profile, Service type, ServiceAccount,
/// PriorityClass and volume type but hostPath), for tests about something else.
#[allow(dead_code)]
pub fn permissive_policy() -> safeapp::policy::Policy {
    use safeapp::api::v1alpha1::{SecurityProfile, ServiceType};
    let mut policy = safeapp::policy::Policy::default();
    let g = &mut policy.guardrails;
    g.weakest_security_profile = SecurityProfile::None;
    g.allowed_service_types = vec![
        ServiceType::ClusterIP,
        ServiceType::NodePort,
        ServiceType::LoadBalancer,
    ];
    g.allowed_service_accounts = vec!["*".into()];
    g.allowed_priority_classes = vec!["*".into()];
    g.allowed_volume_types = safeapp::policy::VOLUME_TYPES
        .iter()
        .filter(|t| **t != "hostPath")
        .map(|t| (*t).to_string())
        .collect();
    policy
}
