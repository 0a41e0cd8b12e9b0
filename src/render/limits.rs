//! The namespace LimitRange `safeapp-limits` and optional ResourceQuota `safeapp-quota`,
//! shared by every SafeApp of a namespace, and the check that an app's resources fit
//! them. Their ownerReferences are the controller's business (`controller::namespace`):
//! they depend on which SafeApps exist, not on any one spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::labels;
use crate::api::{LIMIT_RANGE_NAME, MANAGED_BY, RESOURCE_QUOTA_NAME};
use crate::policy::{Policy, ResourceList};
use crate::quantity;
use crate::validate::ValidatedPod;

fn shared_meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([
            (labels::NAME.to_string(), name.to_string()),
            (labels::MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        ])),
        ..ObjectMeta::default()
    }
}

fn non_empty(list: &ResourceList) -> Option<ResourceList> {
    (!list.is_empty()).then(|| list.clone())
}

/// The LimitRange for a namespace.
pub fn limit_range(namespace: Option<&str>, policy: &Policy) -> LimitRange {
    LimitRange {
        metadata: shared_meta(LIMIT_RANGE_NAME, namespace),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: non_empty(policy.limit_range_default()),
                default_request: non_empty(policy.limit_range_default_request()),
                min: non_empty(&policy.limit_range.min),
                max: non_empty(&policy.limit_range.max),
                max_limit_request_ratio: None,
            }],
        }),
    }
}

/// The ResourceQuota for a namespace, when the policy defines one.
pub fn resource_quota(namespace: Option<&str>, policy: &Policy) -> Option<ResourceQuota> {
    let rq = policy.resource_quota.as_ref()?;
    Some(ResourceQuota {
        metadata: shared_meta(RESOURCE_QUOTA_NAME, namespace),
        spec: Some(ResourceQuotaSpec {
            hard: Some(rq.hard.clone()),
            ..ResourceQuotaSpec::default()
        }),
        status: None,
    })
}

/// Requests and limits of the app container that fall outside the LimitRange's min/max,
/// as `spec.resources...` messages. Admission would refuse such pods: the controller
/// reports them as `Degraded`/`ResourcesOutOfRange` and `render` prints them as warnings.
pub fn out_of_range(app: &ValidatedPod, policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let sections = [
        ("requests", app.resources.requests.as_ref()),
        ("limits", app.resources.limits.as_ref()),
    ];
    for (section, list) in sections {
        for (key, q) in list.into_iter().flatten() {
            let Ok(v) = quantity::parse(&q.0) else {
                continue;
            };
            let bound = |b: &ResourceList| {
                b.get(key)
                    .and_then(|x| quantity::parse(&x.0).ok().map(|p| (p, x.0.clone())))
            };
            if let Some((min, text)) = bound(&policy.limit_range.min)
                && v.cmp_value(&min).is_lt()
            {
                out.push(format!(
                    "spec.resources.{section}.{key}: {} is below the namespace minimum {text}",
                    q.0
                ));
            }
            if let Some((max, text)) = bound(&policy.limit_range.max)
                && v.cmp_value(&max).is_gt()
            {
                out.push(format!(
                    "spec.resources.{section}.{key}: {} is above the namespace maximum {text}",
                    q.0
                ));
            }
        }
    }
    out
}
