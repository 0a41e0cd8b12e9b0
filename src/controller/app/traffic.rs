//! What the SafeApp's status says about its traffic: whether `spec.expose` is in effect
//! (the Gateway's verdict on the HTTPRoute, or the Ingress applied), and whether the
//! apps its access rules name declare the other side (`access.rs`).

use std::time::Duration;

use tracing::info;

use super::access;
use crate::api::SafeApp;
use crate::api::gateway::HTTPRoute;
use crate::controller::conditions::{self as c, Cond};
use crate::controller::{Context, Error};

/// How often an app exposed through a Gateway looks again for the HTTPRoute CRD.
pub const GATEWAY_API_RETRY: Duration = Duration::from_secs(60);

/// `Exposed=False`: the Gateway API is not installed (not an error loop: a retry a
/// minute, and nothing else is held back).
pub fn gateway_api_missing() -> Cond {
    Cond::new(
        c::EXPOSED,
        false,
        c::REASON_GATEWAY_API_MISSING,
        format!(
            "the HTTPRoute CRD (gateway.networking.k8s.io/v1) is not installed; checked again every {} s",
            GATEWAY_API_RETRY.as_secs()
        ),
    )
}

/// `Monitored=False`: the Prometheus Operator is not installed (a retry a minute, the
/// rest applied).
pub fn prometheus_operator_missing() -> Cond {
    Cond::new(
        c::MONITORED,
        false,
        c::REASON_PROMETHEUS_OPERATOR_MISSING,
        format!(
            "the PodMonitor CRD (monitoring.coreos.com/v1, Prometheus Operator) is not installed: the app is not scraped; checked again every {} s",
            GATEWAY_API_RETRY.as_secs()
        ),
    )
}

/// `Monitored=True`: the PodMonitor selects the app's pods on the metrics port.
pub fn monitored(port: &str, path: &str) -> Cond {
    Cond::new(
        c::MONITORED,
        true,
        c::REASON_POD_MONITOR_READY,
        format!("PodMonitor scrapes every pod on port {port}, path {path}"),
    )
}

/// Whether the app's NetworkPolicy can admit no Gateway or ingress controller: the
/// policy enforces ingress, names no `exposedFrom` namespace, does not open the app's
/// namespace, and no inbound rule names another namespace.
pub fn ingress_blocked(
    app: &crate::validate::ValidatedApp,
    policy: &crate::policy::Policy,
) -> bool {
    let np = &policy.network_policy;
    let other_namespace = app
        .spec
        .access_policy
        .iter()
        .flat_map(|p| p.inbound.iter().flatten())
        .any(|r| r.namespace.is_some());
    np.mode != crate::policy::NetworkPolicyMode::Off
        && np.exposed_from.is_empty()
        && !np.allow_same_namespace
        && !other_namespace
}

/// `Exposed=False`: the route or Ingress exists, but the NetworkPolicy keeps its
/// controller out.
pub fn blocked_by_network_policy() -> Cond {
    Cond::new(
        c::EXPOSED,
        false,
        c::REASON_BLOCKED_BY_NETWORK_POLICY,
        "the NetworkPolicy admits no Gateway or ingress controller: the platform team sets networkPolicy.exposedFrom in the operator policy, or the app declares the controller's namespace in spec.accessPolicy.inbound",
    )
}

/// `Exposed=True` for an applied Ingress.
pub fn ingress_condition() -> Cond {
    Cond::new(
        c::EXPOSED,
        true,
        c::REASON_INGRESS_CREATED,
        "the Ingress is applied; its controller assigns the address",
    )
}

/// `Exposed` from the route's status: every parent Gateway must have accepted it and
/// resolved its references; the first refusal is reported with the Gateway's message.
pub fn route_condition(route: &HTTPRoute) -> Cond {
    let parents = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    if parents.is_empty() {
        return Cond::new(
            c::EXPOSED,
            false,
            c::REASON_ROUTE_PENDING,
            "no Gateway has reported on the HTTPRoute yet",
        );
    }
    for parent in parents {
        let gateway = &parent.parent_ref.name;
        for (type_, reason) in [
            ("Accepted", c::REASON_ROUTE_NOT_ACCEPTED),
            ("ResolvedRefs", c::REASON_REFS_NOT_RESOLVED),
        ] {
            let found = parent
                .conditions
                .iter()
                .flatten()
                .find(|x| x.type_ == type_);
            match found {
                Some(x) if x.status == "True" => {}
                Some(x) => {
                    return Cond::new(
                        c::EXPOSED,
                        false,
                        reason,
                        format!("Gateway {gateway}: {} ({})", x.message, x.reason),
                    );
                }
                None => {
                    return Cond::new(
                        c::EXPOSED,
                        false,
                        c::REASON_ROUTE_PENDING,
                        format!("Gateway {gateway} has not reported {type_} yet"),
                    );
                }
            }
        }
    }
    Cond::new(
        c::EXPOSED,
        true,
        c::REASON_ROUTE_ACCEPTED,
        format!("accepted by {} Gateway(s)", parents.len()),
    )
}

/// `AccessPoliciesMatched` for `app` (None when its rules name no app), after asking
/// for the peers of a rule change to be checked again.
pub async fn access_condition(app: &SafeApp, ctx: &Context) -> Result<Option<Cond>, Error> {
    if let Some(old) = ctx.access.rules_changed(app) {
        let all = ctx.all_safeapps().await?;
        for (ns, name) in access::AccessIndex::peers_of_change(app, old, &all) {
            info!(peer = %name, namespace = %ns, "Access rules changed: re-checking a peer");
            ctx.reconcile_later(&ns, &name);
        }
    }
    let named = access::named(app);
    if named.is_empty() {
        return Ok(None);
    }
    let peers = ctx.safeapps_named(named).await?;
    let np = &ctx.policy.network_policy;
    let enforced = access::Enforced {
        egress: np.mode == crate::policy::NetworkPolicyMode::IngressAndEgress,
        same_namespace: np.allow_same_namespace,
    };
    Ok(access::reciprocity(app, &peers, enforced))
}
