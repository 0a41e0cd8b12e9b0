//! The PodDisruptionBudget: node drains may take one pod at a time by default.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{labels, meta};
use crate::validate::ValidatedApp;

/// Builds the PDB. Default maxUnavailable 1 (validation refuses budgets that would block
/// every drain); `AlwaysAllow` lets a drain evict pods that are not healthy anyway.
pub fn pdb(app: &ValidatedApp) -> PodDisruptionBudget {
    let budget = app.spec.disruption_budget.clone().unwrap_or_default();
    let (min_available, max_unavailable) = match (budget.min_available, budget.max_unavailable) {
        (Some(min), _) => (Some(min), None),
        (None, Some(max)) => (None, Some(max)),
        (None, None) => (None, Some(IntOrString::Int(1))),
    };
    PodDisruptionBudget {
        metadata: meta::child_meta(&app.pod),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&app.pod)),
                match_expressions: None,
            }),
            min_available,
            max_unavailable,
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
        }),
        status: None,
    }
}
