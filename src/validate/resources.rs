//! Container resources: quantities that parse, requests within limits, and the policy's
//! defaults for whatever the user leaves out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Problems;
use crate::policy::Policy;
use crate::quantity;

/// Checks user quantities (they must parse, be non-negative, requests within limits),
/// then fills the rest from the policy with [`resolve_resources`].
pub(super) fn check_resources(
    p: &mut Problems,
    path: &str,
    user: Option<&ResourceRequirements>,
    policy: &Policy,
) -> ResourceRequirements {
    let empty = BTreeMap::new();
    let user_req = user.and_then(|r| r.requests.as_ref()).unwrap_or(&empty);
    let user_lim = user.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let mut ok = true;
    for (section, list) in [("requests", user_req), ("limits", user_lim)] {
        for (key, q) in list {
            let qpath = format!("{path}.{section}.{key}");
            match quantity::parse(&q.0) {
                Ok(v) if v.0 < 0.0 => {
                    p.add(qpath, format!("{:?} is negative", q.0));
                    ok = false;
                }
                Ok(_) => {}
                Err(e) => {
                    p.add(qpath, e);
                    ok = false;
                }
            }
        }
    }
    if let Some(claims) = user.and_then(|r| r.claims.as_ref())
        && !claims.is_empty()
    {
        p.add(
            format!("{path}.claims"),
            "resource claims are not supported",
        );
    }
    if !ok {
        return ResourceRequirements::default();
    }
    for (key, req) in user_req {
        if let Some(lim) = user_lim.get(key)
            && parse_or_zero(req).cmp_value(&parse_or_zero(lim)).is_gt()
        {
            p.add(
                format!("{path}.requests.{key}"),
                format!("{} exceeds the limit {}", req.0, lim.0),
            );
        }
    }
    resolve_resources(user, policy)
}

/// Fills container resources from the policy: every container gets cpu and memory
/// requests and limits. A user request above a default limit raises that limit to the
/// request (and a user limit below a default request lowers the request), so the user's
/// value always wins and the result stays consistent. Quantities must already be valid.
pub fn resolve_resources(
    user: Option<&ResourceRequirements>,
    policy: &Policy,
) -> ResourceRequirements {
    let empty = BTreeMap::new();
    let user_req = user.and_then(|r| r.requests.as_ref()).unwrap_or(&empty);
    let user_lim = user.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let mut requests = user_req.clone();
    let mut limits = user_lim.clone();
    let d = &policy.defaults.resources;
    for key in ["cpu", "memory"] {
        match (user_req.get(key), user_lim.get(key)) {
            (Some(_), Some(_)) => {}
            (Some(req), None) => {
                let def = d.limits.get(key).cloned().unwrap_or_else(|| req.clone());
                limits.insert(key.into(), max_q(req, &def));
            }
            (None, Some(lim)) => {
                let def = d.requests.get(key).cloned().unwrap_or_else(|| lim.clone());
                requests.insert(key.into(), min_q(lim, &def));
            }
            (None, None) => {
                if let Some(v) = d.requests.get(key) {
                    requests.insert(key.into(), v.clone());
                }
                if let Some(v) = d.limits.get(key) {
                    limits.insert(key.into(), v.clone());
                }
            }
        }
    }
    ResourceRequirements {
        claims: None,
        limits: Some(limits),
        requests: Some(requests),
    }
}

fn parse_or_zero(q: &Quantity) -> quantity::ParsedQuantity {
    quantity::parse(&q.0).unwrap_or(quantity::ParsedQuantity(0.0))
}

fn max_q(a: &Quantity, b: &Quantity) -> Quantity {
    if parse_or_zero(a).cmp_value(&parse_or_zero(b)).is_ge() {
        a.clone()
    } else {
        b.clone()
    }
}

fn min_q(a: &Quantity, b: &Quantity) -> Quantity {
    if parse_or_zero(a).cmp_value(&parse_or_zero(b)).is_le() {
        a.clone()
    } else {
        b.clone()
    }
}
