//! The canary step of a SafeApp's reconcile (`spec.rollout.canary`).
//!
//! A change that rolls pods (image, env, config data, resources) does not roll the
//! stable Deployment: it keeps the template it runs, and the new one runs as
//! `<name>-canary` (label `track: canary`) beside it, walking the steps. The state is
//! `status.canary` ([`CanaryStatus`]): a restarted or failed-over operator resumes
//! where it was, and one reconcile moves it at most one step (`state.rs`: [`decide`],
//! pure). This file is the effects: what it observes, and what it applies.
//!
//! - **Traffic.** With `spec.expose.gateway` the HTTPRoute splits each rule between the
//!   stable Service (pinned to the stable pods' `track` for the canary's duration) and
//!   `<name>-canary`, by the step's weight; drift repair compares the route without its
//!   weights (as Flagger's router does), and the steps write them. Without a Gateway
//!   the canary's share is its part of the pods behind the one Service
//!   (`render::canary::replicas`: approximate).
//! - **The gate**, at every step: the canary Deployment rolled out and available, no
//!   canary pod restarted during the step, none in `CrashLoopBackOff`, and, with
//!   `analysis.prometheus`, the query evaluated every `interval` through Prometheus'
//!   HTTP API (`crate::prometheus`). A step ends once its pause is over and the gate
//!   holds, the last evaluation a pass: no data or too few requests is inconclusive and
//!   the step waits.
//! - **Abort** (a check failed, past `failureLimit` for the metric; or
//!   `safeapp.dev/canary: abort`): weight 0, canary at 0, the stable untouched,
//!   `Stalled=True`, reason `CanaryAborted`, naming the check and its value. It stays so
//!   until a new generation (which starts over) or a spec back on the stable template.
//! - **Promote** (the last step passed; or `safeapp.dev/canary: promote`): the stable
//!   Deployment takes the new template with its usual RollingUpdate; once it is
//!   available all traffic goes to it and the canary is scaled to 0.
//!
//! The annotation decides once per value: the value present when a canary starts is
//! not a decision for it (remove it after use, or set the other value).
//!
//! The first rollout after `spec.rollout.canary` is added rolls the stable Deployment
//! directly: its pods gain the `track` label the stable Service is pinned to, and a
//! canary needs them to carry it.

mod state;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use serde_json::Value;

pub use state::{
    Announcement, CANARY_ANNOTATION, Decision, Observed, POD_CHECK_INTERVAL, PodHealth, Stable,
    active, conditions, decide, measurement_due, next_look,
};

use super::upgrade::Cause;
use crate::api::SafeApp;
use crate::api::v1alpha1::{CanaryPhase, CanaryStatus};
use crate::controller::apply::{self, Ownership, SyncCtx};
use crate::controller::outcome::Outcome;
use crate::controller::{Context, drift};
use crate::prometheus;
use crate::render::canary as objects;
use crate::render::labels;
use crate::render::{Children, Workload};
use crate::validate::ValidatedApp;

/// What the canary step gives the rest of the reconcile.
pub struct CanaryPlan {
    pub decision: Decision,
    /// The canary Deployment to apply (None: must not exist).
    pub deployment: Option<Deployment>,
    /// The canary's Service (behind a Gateway).
    pub service: Option<Service>,
    /// The route's split, when the canary has a Service.
    pub weight: Option<i32>,
    /// When to look again.
    pub requeue: Option<Duration>,
    /// What the step changed that the compare does not see.
    pub rewrite: super::children::Rewrite,
    /// The stable Deployment takes the promoted template: the operator's own change.
    pub promotes_stable: bool,
}

/// The inputs of the canary step the reconcile already has.
pub struct Inputs<'a> {
    pub app: &'a SafeApp,
    pub validated: &'a ValidatedApp,
    pub previous: Option<&'a CanaryStatus>,
    pub stable_hash: Option<&'a str>,
    /// The referenced config data's hash.
    pub config_hash: &'a str,
    pub cause: Cause,
    /// The live stable Deployment.
    pub live: Option<&'a Value>,
}

/// The canary step: observes the canary (its Deployment, pods and metric), decides, and
/// shapes the stable workload and the children (its template held, the Service pinned,
/// the route split). `None` without `spec.rollout.canary`, and nothing then changes but
/// the removal of a canary left from before.
pub async fn plan(
    ctx: &Context,
    sync: &SyncCtx<'_>,
    input: Inputs<'_>,
    workload: &mut Workload,
    children: &mut Children,
    outcome: &mut Outcome,
) -> Option<CanaryPlan> {
    let canary = input.validated.canary.as_ref()?;
    let Workload::Deployment(rendered) = &*workload else {
        return None;
    };
    let name = input.validated.pod.name.as_str();
    let canary_name = objects::name(name);
    let now = Timestamp::now();
    let generation = input.app.metadata.generation.unwrap_or(0);
    let desired_hash = workload.template_hash();
    let stable_track = input
        .validated
        .pod
        .fields
        .track
        .clone()
        .unwrap_or_else(|| crate::validate::STABLE_TRACK.into());
    // Whether the stable has rolled out the new template matters only while promoting:
    // not parsed and compared on every reconcile of a canary app.
    let promoting = input
        .previous
        .is_some_and(|p| p.phase == CanaryPhase::Promoting);
    let stable = input.live.map(|live| {
        let template = &live["spec"]["template"];
        Stable {
            track: template["metadata"]["labels"][objects::TRACK_LABEL]
                .as_str()
                .map(str::to_string),
            promoted: promoting && promoted(workload, live),
        }
    });
    let annotation = input
        .app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CANARY_ANNOTATION))
        .cloned();
    let running = input
        .previous
        .filter(|s| s.phase == CanaryPhase::Progressing && s.canary_hash == desired_hash);
    let pods = match running {
        Some(_) => match observe_pods(ctx, sync, input.validated, &canary_name).await {
            Ok(p) => Some(p),
            Err(e) => {
                outcome.fail("v1", "Pod", &canary_name, e);
                None
            }
        },
        None => None,
    };
    let available = pods.as_ref().is_some_and(|p| p.available);
    let measurement = match (&canary.check, &ctx.policy.canary.prometheus_address) {
        // Due by the clock, or the step's pods just began to serve.
        (Some(check), Some(address))
            if measurement_due(canary, running, now)
                || (available && running.is_some_and(|s| s.serving_since.is_none())) =>
        {
            let timeout = Duration::from_secs(ctx.policy.canary.query_timeout_seconds);
            Some(prometheus::measure(address, check, timeout).await)
        }
        _ => None,
    };
    let observed = Observed {
        now,
        generation,
        config_hash: input.config_hash.to_string(),
        desired_hash,
        stable_hash: input.stable_hash.map(str::to_string),
        cause: input.cause,
        stable,
        stable_track: stable_track.clone(),
        pods,
        measurement,
        annotation,
    };
    let decision = decide(canary, input.previous, &observed);
    let status = decision.status.as_ref();
    let running_now = status.is_some_and(active);
    let stable_replicas = input
        .live
        .and_then(|l| l["spec"]["replicas"].as_i64())
        .and_then(|r| i32::try_from(r).ok())
        .or(rendered.spec.as_ref().and_then(|s| s.replicas))
        .unwrap_or(1);
    let routed = children.http_route.is_some();
    let deployment = status.map(|s| {
        let replicas = if running_now {
            objects::replicas(stable_replicas, s.weight, routed)
        } else {
            0
        };
        objects::deployment(rendered, name, replicas)
    });
    let service = match (status, &children.service) {
        (Some(_), Some(stable)) if routed => Some(objects::service(stable, name)),
        _ => None,
    };
    let weight = service
        .as_ref()
        .and(status)
        .map(|s| routed_weight(s, input.previous, available));
    if let Some(weight) = weight {
        if let Some(route) = children.http_route.as_mut() {
            objects::split_route(route, name, weight);
        }
        if running_now && let Some(svc) = children.service.as_mut() {
            objects::pin_to_track(svc, &stable_track);
        }
    }
    if decision.hold_stable
        && let Some(template) = input.live.and_then(|l| {
            serde_json::from_value::<PodTemplateSpec>(l["spec"]["template"].clone()).ok()
        })
    {
        workload.keep_template(template);
    }
    let requeue = next_look(canary, status, now);
    // The steps write the route's weights (drift repair compares it without them); the
    // stable Service's pin is a selector key the compare would not miss once lifted.
    let routed_before = input.previous.and_then(|p| p.routed_weight);
    let rewrite = super::children::Rewrite {
        route: weight.is_some() && weight != routed_before,
        service: routed && input.previous.is_some_and(active) != running_now,
    };
    let promotes_stable = !decision.hold_stable
        && status.is_some_and(|s| s.phase == CanaryPhase::Promoting)
        && input.previous.is_some_and(active);
    Some(CanaryPlan {
        decision,
        deployment,
        service,
        weight,
        requeue,
        rewrite,
        promotes_stable,
    })
}

/// The stable Deployment (`live`) runs the rendered template, rolled out and available.
fn promoted(workload: &Workload, live: &Value) -> bool {
    let desired = serde_json::to_value(workload.template()).unwrap_or_default();
    let complete = serde_json::from_value::<Deployment>(live.clone())
        .ok()
        .is_some_and(|d| {
            super::workload::Live::Deployment(Box::new(d))
                .rollout()
                .complete()
        });
    complete && drift::differences(&desired, &live["spec"]["template"]).is_empty()
}

/// The canary's share on the route: none until its pods are first available (a Gateway
/// sends traffic to a backend whatever its endpoints: a canary not yet up would fail its
/// share); then the step's (a new step's share goes out with the step, carried by the
/// pods already serving while the others start); 0 once it ends.
fn routed_weight(status: &CanaryStatus, previous: Option<&CanaryStatus>, available: bool) -> i32 {
    let had = previous
        .filter(|p| p.canary_hash == status.canary_hash)
        .and_then(|p| p.routed_weight)
        .unwrap_or(0);
    match status.phase {
        CanaryPhase::Progressing if available => status.weight,
        CanaryPhase::Progressing => had,
        CanaryPhase::Promoting => status.weight.max(had),
        CanaryPhase::Succeeded | CanaryPhase::Aborted => 0,
    }
}

/// Publishes a transition's Event (`CanaryStarted`, `CanaryStepPassed`,
/// `CanaryPromoting`, `CanaryPromoted`: Normal; `CanaryAborted`: Warning).
pub async fn announce(app: &SafeApp, ctx: &Context, event: Announcement) {
    use crate::controller::events::{self, EventType};
    tracing::info!(reason = event.reason, message = %event.message, "Canary");
    ctx.metrics.canary(event.reason);
    let type_ = if event.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    events::publish(&ctx.recorder, app, type_, event.reason, event.message).await;
}

/// The canary's pods: its Deployment's rollout, their restarts and crash loops.
async fn observe_pods(
    ctx: &Context,
    sync: &SyncCtx<'_>,
    validated: &ValidatedApp,
    canary_name: &str,
) -> Result<PodHealth, crate::controller::Error> {
    let live = apply::read::<Deployment>(sync, "Deployment", canary_name).await?;
    let rollout = live
        .and_then(|l| serde_json::from_value::<Deployment>(l).ok())
        .map(|d| super::workload::Live::Deployment(Box::new(d)).rollout());
    let mut selector = labels::selector(&validated.pod);
    selector.insert(
        objects::TRACK_LABEL.into(),
        crate::validate::CANARY_TRACK.into(),
    );
    let selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), sync.namespace);
    let pods = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| crate::controller::Error::GetChild {
            kind: "Pod",
            name: canary_name.into(),
            source,
        })?;
    let mut health = PodHealth {
        available: rollout.as_ref().is_some_and(|r| r.complete() && r.want > 0),
        deadline_exceeded: rollout.and_then(|r| r.deadline_exceeded),
        ..PodHealth::default()
    };
    let mut most = 0;
    for pod in &pods.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        for cs in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            health.restarts += cs.restart_count;
            if cs.restart_count > most {
                most = cs.restart_count;
                health.restarted_pod = Some(pod_name.clone());
            }
            let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
            if waiting.and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff") {
                health.crash_looping = Some(pod_name.clone());
            }
        }
    }
    Ok(health)
}

/// Whether the only field of `desired` the live canary Deployment lacks is its replica
/// count.
fn replicas_only(desired: Option<&Deployment>, live: Option<&Value>) -> bool {
    let (Some(desired), Some(live)) = (desired, live) else {
        return false;
    };
    let want = serde_json::to_value(desired).unwrap_or_default();
    let diffs = drift::differences(&want, live);
    !diffs.is_empty() && diffs.iter().all(|d| d.path == "spec.replicas")
}

/// Applies (or removes) the canary Deployment and its Service, settling each.
pub async fn apply(
    sync: &SyncCtx<'_>,
    name: &str,
    plan: Option<&CanaryPlan>,
    own: Ownership<'_>,
    outcome: &mut Outcome,
) {
    let canary_name = objects::name(name);
    let deployment = plan.and_then(|p| p.deployment.as_ref());
    let service = plan.and_then(|p| p.service.as_ref());
    let had = |kind: &str| {
        sync.previously_managed
            .contains(&format!("{kind}/{canary_name}"))
    };
    if deployment.is_some() || had("Deployment") {
        let live = match apply::read::<Deployment>(sync, "Deployment", &canary_name).await {
            Ok(live) => live,
            Err(e) => {
                outcome.fail("apps/v1", "Deployment", &canary_name, e);
                return;
            }
        };
        // The canary's replica count moves with the steps and the stable's scale: the
        // operator's own change, never drift (anything else that differs is).
        let sync = SyncCtx {
            own_change: replicas_only(deployment, live.as_ref()),
            ..*sync
        };
        let synced =
            apply::converge::<Deployment>(&sync, "Deployment", &canary_name, deployment, own, live)
                .await;
        outcome.settle("apps/v1", "Deployment", &canary_name, synced);
    }
    if service.is_some() || had("Service") {
        let synced = apply::sync::<Service>(sync, "Service", &canary_name, service, own).await;
        outcome.settle("v1", "Service", &canary_name, synced);
    }
}
