//! The children after the workload: the headless Service of a stateful app, the
//! Service, PodDisruptionBudget, HorizontalPodAutoscaler,
//! NetworkPolicy, Ingress and HTTPRoute, each applied (or pruned) on its own so one
//! failure does not stop the others, and the `Exposed` condition their result gives.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::traffic;
use crate::api::gateway::HTTPRoute;
use crate::api::monitoring::PodMonitor;
use crate::controller::Context;
use crate::controller::apply::{self, Ownership, SyncCtx};
use crate::controller::conditions::{self as c, Cond};
use crate::controller::outcome::Outcome;
use crate::render::Children;
use crate::validate::ValidatedApp;

/// The conditions the children give: `Exposed`, `Monitored`.
#[derive(Default)]
pub struct ChildConditions {
    pub exposed: Option<Cond>,
    pub monitored: Option<Cond>,
}

impl ChildConditions {
    /// A CRD the app needs is not installed: look again in a minute.
    pub fn crd_missing(&self) -> bool {
        self.exposed.iter().chain(&self.monitored).any(|x| {
            x.reason == c::REASON_GATEWAY_API_MISSING
                || x.reason == c::REASON_PROMETHEUS_OPERATOR_MISSING
        })
    }
}

/// Children to apply even when the compare sees no difference (a canary's step).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rewrite {
    /// New backend weights on the HTTPRoute (the compare leaves weights out).
    pub route: bool,
    /// The stable Service's selector changed by a key (the compare sees only missing
    /// or changed ones).
    pub service: bool,
}

/// Applies every child, settling each in `outcome`: the `Exposed` condition when the app
/// is exposed (or its Gateway API is missing), `Monitored` when it has `spec.metrics`.
/// `rewrite`: children a canary step changed in a way the compare does not see (the
/// route's weights, the stable Service's pin lifted), applied as an update.
pub async fn apply(
    ctx: &Context,
    sync: &SyncCtx<'_>,
    validated: &ValidatedApp,
    children: Children,
    rewrite: Rewrite,
    own: Ownership<'_>,
    outcome: &mut Outcome,
) -> ChildConditions {
    let name = validated.pod.name.as_str();
    let Children {
        headless_service,
        service,
        pdb,
        hpa,
        network_policy,
        http_route,
        ingress,
        pod_monitor,
    } = children;
    // Only for apps that have (or had) one: a SafeApp named like another's headless
    // Service must not prune it.
    let headless = crate::render::statefulset::headless_name(name);
    if headless_service.is_some()
        || sync
            .previously_managed
            .contains(&format!("Service/{headless}"))
    {
        let synced =
            apply::sync::<Service>(sync, "Service", &headless, headless_service.as_ref(), own)
                .await;
        outcome.settle("v1", "Service", &headless, synced);
    }
    let service_sync = SyncCtx {
        spec_changed: sync.spec_changed || rewrite.service,
        ..*sync
    };
    let synced =
        apply::sync::<Service>(&service_sync, "Service", name, service.as_ref(), own).await;
    outcome.settle("v1", "Service", name, synced);
    let synced =
        apply::sync::<PodDisruptionBudget>(sync, "PodDisruptionBudget", name, Some(&pdb), own)
            .await;
    outcome.settle("policy/v1", "PodDisruptionBudget", name, synced);
    // Without autoscaling the HPA was pruned before the workload (the plan step).
    if hpa.is_some() {
        let synced = apply::sync::<HorizontalPodAutoscaler>(
            sync,
            "HorizontalPodAutoscaler",
            name,
            hpa.as_ref(),
            own,
        )
        .await;
        outcome.settle("autoscaling/v2", "HorizontalPodAutoscaler", name, synced);
    }
    let synced =
        apply::sync::<NetworkPolicy>(sync, "NetworkPolicy", name, network_policy.as_ref(), own)
            .await;
    outcome.settle("networking.k8s.io/v1", "NetworkPolicy", name, synced);
    let synced = apply::sync::<Ingress>(sync, "Ingress", name, ingress.as_ref(), own).await;
    let ingress_applied = outcome
        .settle("networking.k8s.io/v1", "Ingress", name, synced)
        .is_some_and(|s| ingress.is_some() && s.live().is_some());
    // HTTPRoutes are read from the API: only for apps that have (or had) one.
    let mut exposed = None;
    if http_route.is_some()
        || sync
            .previously_managed
            .contains(&format!("HTTPRoute/{name}"))
    {
        // A canary's new weights are the operator's own change, never drift.
        let sync = SyncCtx {
            spec_changed: sync.spec_changed || rewrite.route,
            ..*sync
        };
        let synced =
            apply::sync::<HTTPRoute>(&sync, "HTTPRoute", name, http_route.as_ref(), own).await;
        exposed = match synced {
            Err(e) if http_route.is_some() && e.api_status() == Some(404) => {
                Some(traffic::gateway_api_missing())
            }
            synced => outcome
                .settle("gateway.networking.k8s.io/v1", "HTTPRoute", name, synced)
                .and_then(|s| s.live())
                .filter(|_| http_route.is_some())
                .map(|route| traffic::route_condition(&route)),
        };
    }
    if ingress_applied {
        exposed = Some(traffic::ingress_condition());
    }
    if exposed.as_ref().is_some_and(|x| x.status)
        && traffic::ingress_blocked(validated, &ctx.policy)
    {
        exposed = Some(traffic::blocked_by_network_policy());
    }
    // PodMonitors are read from the API too: only for apps that have (or had) one.
    let mut monitored = None;
    if pod_monitor.is_some()
        || sync
            .previously_managed
            .contains(&format!("PodMonitor/{name}"))
    {
        let synced =
            apply::sync::<PodMonitor>(sync, "PodMonitor", name, pod_monitor.as_ref(), own).await;
        monitored = match synced {
            Err(e) if pod_monitor.is_some() && e.api_status() == Some(404) => {
                Some(traffic::prometheus_operator_missing())
            }
            synced => outcome
                .settle("monitoring.coreos.com/v1", "PodMonitor", name, synced)
                .filter(|_| pod_monitor.is_some())
                .and(validated.metrics.as_ref())
                .map(|m| traffic::monitored(&m.port_name, &m.path)),
        };
    }
    ChildConditions { exposed, monitored }
}
