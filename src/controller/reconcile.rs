//! One reconcile of one SafeApp: namespace allowed? → paused? → validate → render →
//! sync each child → events and metrics → status. The namespace-shared objects are the namespace
//! reconciler's (`namespace.rs`). Validation and rendering are the pure library
//! functions; `apply` is the only writer of children, `status` the only writer of status.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use super::apply::{self, Change, Ownership, SyncCtx};
use super::conditions as c;
use super::outcome::{self, Outcome, announce};
use super::{Context, Error, config, drift, status, traffic, upgrade};
use crate::api::gateway::HTTPRoute;
use crate::api::v1alpha1::TemplateRecord;
use crate::api::{SafeApp, SafeAppStatus};
use crate::render::{self, Resources};
use crate::validate;

fn selector(name: &str) -> String {
    format!("app.kubernetes.io/instance={name},app.kubernetes.io/name={name}")
}

/// Reconciles one SafeApp. Invalid and paused apps write nothing but their status and
/// wait for a change; everything else requeues after the resync period. A child that
/// cannot be read or written does not stop the others: every failure reaches the status
/// (`Ready=False`, `Degraded=True`, the API's reason and message), then the reconcile
/// fails so that it is retried with backoff.
#[instrument(skip_all, fields(name = %app.name_any(), namespace = app.namespace().unwrap_or_default()))]
pub async fn reconcile_app(app: &SafeApp, ctx: &Context) -> Result<Action, Error> {
    // The status this operator last wrote, when the watch has not brought it back yet.
    let fresh = ctx.statuses.fresher(app);
    let app = fresh.as_ref().unwrap_or(app);
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    let name = app.name_any();
    if app.meta().deletion_timestamp.is_some() {
        // Children go with it through their ownerReferences.
        ctx.release_slot(&format!("{ns}/{name}"));
        if let Some(uid) = app.uid() {
            ctx.statuses.forget(&uid);
        }
        return Ok(Action::await_change());
    }
    let uid = app.uid().ok_or(Error::MissingUid)?;
    let now = Time(Timestamp::now());
    let previous = app.status.clone().unwrap_or_default();

    if ctx.policy.guardrails.denies_namespace(&ns) {
        let conds = outcome::namespace_denied(&ns);
        status::write(ctx, app, previous, &conds, &now).await?;
        ctx.release_slot(&format!("{ns}/{name}"));
        return Ok(Action::await_change());
    }

    // Reconciles read the children's caches once they have listed.
    let caches = ctx.ready_caches(crate::api::WorkloadKind::SafeApp).await;
    let previously = outcome::managed_keys(previous.managed_objects.as_deref());
    let sync = SyncCtx {
        own_change: false,
        client: &ctx.client,
        namespace: &ns,
        spec_changed: previous.observed_generation != app.metadata.generation,
        previously_managed: &previously,
        metrics: &ctx.metrics,
        caches,
    };

    if app.spec.paused == Some(true) {
        let live: Option<Deployment> = apply::read::<Deployment>(&sync, "Deployment", &name)
            .await?
            .and_then(|v| serde_json::from_value(v).ok());
        let conds = outcome::paused(rollout_ready(live.as_ref()));
        let base = status::with_deployment(previous, live.as_ref(), selector(&name));
        status::write(ctx, app, base, &conds, &now).await?;
        // A paused or invalid app cannot finish an upgrade: its slot goes to the next.
        ctx.release_slot(&format!("{ns}/{name}"));
        return Ok(Action::await_change());
    }

    let validated = match validate::validate(app, &ctx.policy) {
        Ok(v) => v,
        Err(problems) => {
            let conds = outcome::invalid_spec(app, ctx, &problems).await;
            status::write(ctx, app, previous, &conds, &now).await?;
            ctx.release_slot(&format!("{ns}/{name}"));
            // Nothing changes until the SafeApp does.
            return Ok(Action::await_change());
        }
    };
    // The namespace reconciler keeps the shared LimitRange/ResourceQuota for the apps
    // that have children.
    ctx.namespaces
        .observe(&ns, crate::api::WorkloadKind::SafeApp, &name, &uid);
    let Resources {
        mut deployment,
        service,
        pdb,
        hpa,
        network_policy,
        http_route,
        ingress,
    } = render::render(&validated, &ctx.policy);

    let own = Ownership::Controller { uid: &uid };
    let mut outcome = Outcome::default();

    // Autoscaling off: the HPA goes first, so it cannot scale the Deployment again after
    // the operator has set its count.
    let hpa_pruned = if hpa.is_none() {
        let synced = apply::sync::<HorizontalPodAutoscaler>(
            &sync,
            "HorizontalPodAutoscaler",
            &name,
            None,
            own,
        )
        .await;
        outcome.settle("autoscaling/v2", "HorizontalPodAutoscaler", &name, synced);
        outcome.changed("HorizontalPodAutoscaler") == Some(&Change::Pruned)
    } else {
        false
    };
    let live_dep = match apply::read::<Deployment>(&sync, "Deployment", &name).await {
        Ok(live) => Some(live),
        Err(e) => {
            outcome.fail("apps/v1", "Deployment", &name, e);
            None
        }
    };
    let held = held_replicas(&validated, &previous, hpa_pruned, live_dep.as_ref());
    if let (Some(count), Some(spec)) = (held, deployment.spec.as_mut()) {
        spec.replicas = Some(count);
    }
    // The referenced config's data hash goes on the pod template; without it (a read
    // failed) the Deployment is left as it is rather than rolled without the hash.
    let config = match config::state(
        &ctx.client,
        &ctx.config,
        ctx.watch_secrets,
        &ns,
        &name,
        &validated.config_refs,
    )
    .await
    {
        Ok(state) => Some(state),
        Err(e) => {
            outcome.fail("apps/v1", "Deployment", &name, e);
            None
        }
    };
    let template = config.as_ref().map(|state| {
        if let Some(hash) = &state.hash {
            render::set_config_hash(&mut deployment, hash);
        }
        let live = live_dep.as_ref().and_then(Option::as_ref);
        template_plan(app, ctx, &previous, &mut deployment, state, live)
    });
    let mut typed_dep = None;
    if let (Some(live), Some(plan)) = (live_dep, &template) {
        // The operator's own template change, when it goes, is an update (not drift),
        // applied even where the compare sees nothing (the pause it may drop). A held
        // change compares as usual: nothing is written while it waits.
        let sync = SyncCtx {
            spec_changed: sync.spec_changed || plan.force_apply,
            own_change: plan.cause == upgrade::Cause::Operator,
            ..sync
        };
        // The operator stops applying spec.replicas only on a spec change (autoscaling
        // turned on), so only then can ownership need handing over.
        let handover = if sync.spec_changed
            && deployment
                .spec
                .as_ref()
                .is_some_and(|s| s.replicas.is_none())
        {
            apply::hand_over_replicas(&sync, &name).await.map(|_| ())
        } else {
            Ok(())
        };
        match handover {
            Ok(()) => {
                let synced = apply::converge::<Deployment>(
                    &sync,
                    "Deployment",
                    &name,
                    Some(&deployment),
                    own,
                    live,
                )
                .await;
                // Only the Deployment is needed typed (its status drives the conditions).
                typed_dep = outcome
                    .settle("apps/v1", "Deployment", &name, synced)
                    .and_then(|s| s.live());
                if plan.cause == upgrade::Cause::Operator
                    && plan.held.is_none()
                    && outcome.changed("Deployment") == Some(&Change::Updated)
                {
                    outcome::template_upgraded(app, ctx, &plan.why).await;
                }
            }
            Err(e) => outcome.fail("apps/v1", "Deployment", &name, e),
        }
    }
    let synced = apply::sync::<Service>(&sync, "Service", &name, service.as_ref(), own).await;
    outcome.settle("v1", "Service", &name, synced);
    let synced =
        apply::sync::<PodDisruptionBudget>(&sync, "PodDisruptionBudget", &name, Some(&pdb), own)
            .await;
    outcome.settle("policy/v1", "PodDisruptionBudget", &name, synced);
    if hpa.is_some() {
        let synced = apply::sync::<HorizontalPodAutoscaler>(
            &sync,
            "HorizontalPodAutoscaler",
            &name,
            hpa.as_ref(),
            own,
        )
        .await;
        outcome.settle("autoscaling/v2", "HorizontalPodAutoscaler", &name, synced);
    }

    let synced =
        apply::sync::<NetworkPolicy>(&sync, "NetworkPolicy", &name, network_policy.as_ref(), own)
            .await;
    outcome.settle("networking.k8s.io/v1", "NetworkPolicy", &name, synced);
    let synced = apply::sync::<Ingress>(&sync, "Ingress", &name, ingress.as_ref(), own).await;
    let ingress_applied = outcome
        .settle("networking.k8s.io/v1", "Ingress", &name, synced)
        .is_some_and(|s| ingress.is_some() && s.live().is_some());
    // HTTPRoutes are read from the API: only for apps that have (or had) one.
    let mut exposed = None;
    if http_route.is_some() || previously.contains(&format!("HTTPRoute/{name}")) {
        let synced =
            apply::sync::<HTTPRoute>(&sync, "HTTPRoute", &name, http_route.as_ref(), own).await;
        exposed = match synced {
            Err(e) if http_route.is_some() && e.api_status() == Some(404) => {
                Some(traffic::gateway_api_missing())
            }
            synced => outcome
                .settle("gateway.networking.k8s.io/v1", "HTTPRoute", &name, synced)
                .and_then(|s| s.live())
                .filter(|_| http_route.is_some())
                .map(|route| traffic::route_condition(&route)),
        };
    }
    if ingress_applied {
        exposed = Some(traffic::ingress_condition());
    }
    if exposed.as_ref().is_some_and(|x| x.status)
        && traffic::ingress_blocked(&validated, &ctx.policy)
    {
        exposed = Some(traffic::blocked_by_network_policy());
    }

    let drift = announce(app, ctx, &outcome.reports, &now).await;
    let clean = outcome.clean();
    let conds = match outcome.blocked(app, ctx).await {
        Some(blocked) => blocked,
        None => status::rollout_conditions(
            typed_dep.as_ref(),
            &render::out_of_range(&validated.pod, &ctx.policy),
        ),
    };
    let managed = outcome.managed_objects();
    let mut conds = conds;
    let mut record = previous.template.clone();
    if let Some(plan) = &template {
        let key = format!("{ns}/{name}");
        if typed_dep.is_none() {
            // The Deployment could not be applied (a failure, a foreign object): the
            // upgrade cannot progress here, so its slot goes to the next.
            ctx.release_slot(&key);
        }
        if let Some(d) = &typed_dep {
            if plan.held.is_none() {
                record = Some(plan.record.clone());
            } else if record.is_none() {
                // Held before any record (an older operator's Deployment): a record that
                // matches no template keeps the change the operator's until it goes.
                record = Some(TemplateRecord {
                    hash: String::new(),
                    ..plan.record.clone()
                });
            }
            if ctx.upgrades.holds(&key) && plan.held.is_none() && status::rollout_settled(d) {
                ctx.release_slot(&key);
                info!("Upgrade slot freed");
            }
        }
        if clean {
            let user_paused = plan.held.is_none()
                && typed_dep
                    .as_ref()
                    .and_then(|d| d.spec.as_ref())
                    .and_then(|s| s.paused)
                    == Some(true);
            status::upgrade_conditions(&mut conds, plan.held, user_paused, ctx.upgrades.max());
        }
    }
    let (access, access_failure) = match traffic::access_condition(app, ctx).await {
        Ok(cond) => (cond, None),
        Err(e) => (None, Some(e)),
    };
    if clean {
        conds.extend(access);
        conds.extend(exposed.clone());
    }
    let gateway_missing = exposed
        .as_ref()
        .is_some_and(|x| x.reason == c::REASON_GATEWAY_API_MISSING);
    let missing = config.map(|c| c.missing).filter(|m| !m.is_empty());
    if clean && let Some(missing) = &missing {
        status::config_missing(&mut conds, missing);
    }
    // The slot this app holds, recorded for a leader that takes over.
    let upgrade_slot = ctx
        .upgrades
        .holds(&format!("{ns}/{name}"))
        .then(|| previous.upgrade_slot.clone().unwrap_or_else(|| now.clone()));
    let base = SafeAppStatus {
        upgrade_slot,
        managed_objects: Some(managed),
        last_drift_correction: drift.or(previous.last_drift_correction.clone()),
        held_replicas: held,
        template: record,
        missing_config: missing,
        ..status::with_deployment(previous, typed_dep.as_ref(), selector(&name))
    };
    status::write(ctx, app, base, &conds, &now).await?;
    match outcome.failures.into_iter().next().or(access_failure) {
        Some(e) => Err(e),
        None if gateway_missing => Ok(Action::requeue(traffic::GATEWAY_API_RETRY)),
        None => Ok(Action::requeue(with_jitter(ctx.resync, &uid))),
    }
}

/// How this reconcile treats the pod template (see `upgrade.rs`).
struct TemplatePlan {
    /// Who caused the template change, if there is one.
    cause: upgrade::Cause,
    /// What changed, for an operator-caused one (the `TemplateUpgraded` Event).
    why: String,
    /// Apply the Deployment even when the compare sees no difference.
    force_apply: bool,
    /// Why the rollout is held (the Deployment is applied paused), if it is.
    held: Option<upgrade::HoldReason>,
    /// What `status.template` becomes once the template is rolled out.
    record: TemplateRecord,
}

/// Classifies the rendered template against the last one rolled out, takes an upgrade
/// slot when the operator's change may go, and pauses the Deployment when it may not.
fn template_plan(
    app: &SafeApp,
    ctx: &Context,
    previous: &SafeAppStatus,
    deployment: &mut Deployment,
    config: &config::ConfigState,
    live: Option<&serde_json::Value>,
) -> TemplatePlan {
    let generation = app.metadata.generation.unwrap_or(0);
    let hash = render::template_hash(deployment);
    let config_hash = config.hash.clone().unwrap_or_default();
    // Only an app without a record needs the live template compared (the record says
    // the rest): no template serialization and compare on every reconcile.
    let live_differs = live.filter(|_| previous.template.is_none()).map(|l| {
        let desired =
            serde_json::to_value(deployment.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
        !drift::differences(&desired, &l["spec"]["template"]).is_empty()
    });
    let cause = upgrade::classify(
        previous.template.as_ref(),
        generation,
        previous.observed_generation,
        &hash,
        &config_hash,
        live_differs,
    );
    // A Deployment to create (new, or deleted) is never held: it would have no pods.
    let cause = if live.is_none() {
        upgrade::Cause::User
    } else {
        cause
    };
    let key = format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any());
    // A new leader gives out no slot before it knows who holds one; a deleted app keeps
    // none and blocks no queue.
    ctx.seed_slots();
    ctx.prune_slots();
    let annotation = app
        .annotations()
        .get(upgrade::UPGRADE_ANNOTATION)
        .map(String::as_str);
    // A Deployment someone paused (`kubectl rollout pause`) cannot roll: it takes no
    // slot; the change waits (and is applied, paused) until the pause is lifted.
    let we_held = previous
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == super::conditions::UPGRADE_PENDING && c.status == "True");
    let paused_by_someone = live.is_some_and(|l| l["spec"]["paused"] == true) && !we_held;
    let step =
        if cause == upgrade::Cause::Operator && paused_by_someone && annotation != Some("now") {
            upgrade::Step::Hold(upgrade::HoldReason::WaitingForSlot)
        } else {
            upgrade::step(cause, annotation, &ctx.upgrades, &key)
        };
    let held = match step {
        upgrade::Step::Hold(reason) => {
            if let Some(spec) = deployment.spec.as_mut() {
                spec.paused = Some(true);
            }
            if reason == upgrade::HoldReason::Deferred || paused_by_someone {
                // It cannot roll: it holds no slot, and waits for none.
                ctx.release_slot(&key);
            }
            info!(?reason, "Template upgrade held");
            Some(reason)
        }
        upgrade::Step::RollInSlot => {
            info!("Template upgrade takes a slot");
            None
        }
        upgrade::Step::Roll => None,
    };
    let (version, policy_hash) = &ctx.template_source;
    TemplatePlan {
        cause,
        why: upgrade::why(previous.template.as_ref(), version, policy_hash),
        force_apply: cause == upgrade::Cause::Operator && held.is_none(),
        held,
        record: TemplateRecord {
            hash,
            generation,
            config_hash,
            operator_version: version.clone(),
            policy_hash: policy_hash.clone(),
        },
    }
}

/// The resync period stretched by up to 10%, differently for each SafeApp (by its uid),
/// so that thousands of SafeApps created together do not resync in the same second.
pub fn with_jitter(resync: std::time::Duration, uid: &str) -> std::time::Duration {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    uid.hash(&mut h);
    let tenth = resync / 10;
    let millis = u64::try_from(tenth.as_millis()).unwrap_or(u64::MAX).max(1);
    resync + std::time::Duration::from_millis(h.finish() % millis)
}

/// The replica count kept when autoscaling was turned off without `spec.replicas`: on
/// the turn (the HPA was just pruned), what the Deployment has now, the HPA's last
/// count; afterwards, what the status recorded. None when `spec.replicas` is set (the
/// user's count applies, in one step) or autoscaling is on. Pure.
pub fn held_replicas(
    app: &crate::validate::ValidatedApp,
    previous: &SafeAppStatus,
    hpa_pruned: bool,
    live_dep: Option<&Option<serde_json::Value>>,
) -> Option<i32> {
    if app.spec.replicas.is_some() || app.autoscaling.is_some() {
        return None;
    }
    if hpa_pruned {
        let live = live_dep?.as_ref()?;
        return live["spec"]["replicas"]
            .as_i64()
            .and_then(|r| i32::try_from(r).ok());
    }
    previous.held_replicas
}

fn rollout_ready(deployment: Option<&Deployment>) -> bool {
    status::rollout_conditions(deployment, &[])
        .iter()
        .any(|x| x.type_ == c::READY && x.status)
}
