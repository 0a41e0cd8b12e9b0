//! The report step of a SafeApp's reconcile: the Events of what changed, the conditions
//! (from the workload's rollout, the failures, the upgrade queue, access and exposure),
//! the upgrade slot given back once its rollout settled, and the one status write.

use kube::runtime::controller::Action;
use tracing::info;

use super::plan::Plan;
use super::target::Target;
use super::workload::{self, Live};
use super::{traffic, upgrade};
use crate::api::v1alpha1::TemplateRecord;
use crate::api::{SafeApp, SafeAppStatus};
use crate::controller::backoff::with_jitter;
use crate::controller::conditions::{self as c, Cond};
use crate::controller::outcome::{Outcome, announce};
use crate::controller::{Context, Error, status};
use crate::render;
use crate::validate::ValidatedApp;

/// What the apply step left: every child's result, the live workload, `Exposed`.
pub struct Applied {
    pub outcome: Outcome,
    pub workload_kind: &'static str,
    pub live: Option<Live>,
    /// The live workload's rollout (a StatefulSet's examined for stuck pods).
    pub rollout: Option<workload::Rollout>,
    /// When to look at a StatefulSet's pods again.
    pub recheck: Option<std::time::Duration>,
    /// `Exposed`, `Monitored`.
    pub conditions: super::children::ChildConditions,
    /// The canary release, with `spec.rollout.canary`.
    pub canary: Option<super::canary::CanaryPlan>,
}

/// Reports one reconcile of `app`: Events, conditions, the status write; the next
/// reconcile's time, or the first failure (retried with backoff).
pub async fn report(
    app: &SafeApp,
    ctx: &Context,
    target: &Target,
    validated: &ValidatedApp,
    plan: Plan,
    applied: Applied,
) -> Result<Action, Error> {
    let Applied {
        outcome,
        workload_kind,
        live,
        rollout,
        recheck,
        conditions,
        canary,
    } = applied;
    let Target {
        namespace: ns,
        name,
        uid,
        now,
        previous,
        ..
    } = target;
    let key = format!("{ns}/{name}");
    let drift = announce(app, ctx, &outcome.reports, now).await;
    let clean = outcome.clean();
    let mut conds = match outcome.blocked(app, ctx).await {
        Some(blocked) => blocked,
        None => workload::rollout_conditions(
            workload_kind,
            rollout.as_ref(),
            &render::out_of_range(&validated.pod, &ctx.policy),
        ),
    };
    let managed = outcome.managed_objects();
    let mut record = previous.template.clone();
    if let Some(template) = &plan.template {
        match &rollout {
            // The workload could not be applied (a failure, a foreign object): the
            // upgrade cannot progress here, so its slot goes to the next.
            None => ctx.release_slot(&key),
            Some(rollout) => {
                // A canary holds the stable's template: it has not rolled out.
                let canary_holds = canary.as_ref().is_some_and(|c| c.decision.hold_stable);
                if template.held.is_none() && !canary_holds {
                    record = Some(template.record.clone());
                } else if record.is_none() {
                    // Held before any record (an older operator's workload): a record
                    // that matches no template keeps the change the operator's until it
                    // goes.
                    record = Some(TemplateRecord {
                        hash: String::new(),
                        ..template.record.clone()
                    });
                }
                if ctx.upgrades.holds(&key) && template.held.is_none() && rollout.settled() {
                    ctx.release_slot(&key);
                    info!("Upgrade slot freed");
                }
            }
        }
        if clean {
            let user_paused = template.held.is_none() && rollout.as_ref().is_some_and(|r| r.paused);
            upgrade_conditions(&mut conds, template.held, user_paused, ctx.upgrades.max());
        }
    }
    let (access, access_failure) = match traffic::access_condition(app, ctx).await {
        Ok(cond) => (cond, None),
        Err(e) => (None, Some(e)),
    };
    let crd_missing = conditions.crd_missing();
    if clean {
        conds.extend(access);
        conds.extend(conditions.exposed);
        conds.extend(conditions.monitored);
    }
    // Without a canary step (the stable could not be read) the state stays as it was.
    let mut canary_status = match &canary {
        None if validated.canary.is_some() => previous.canary.clone(),
        None => None,
        Some(c) => c.decision.status.clone(),
    };
    // The route carries the step's weight once it was written.
    if let (Some(status), Some(c)) = (canary_status.as_mut(), &canary)
        && c.weight.is_some()
        && route_written(&outcome)
    {
        status.routed_weight = c.weight;
    }
    if clean {
        super::canary::conditions(&mut conds, canary_status.as_ref());
    }
    if let Some(event) = canary.as_ref().and_then(|c| c.decision.event.clone()) {
        super::canary::announce(app, ctx, event).await;
    }
    let missing = plan.config.map(|c| c.missing).filter(|m| !m.is_empty());
    if clean && let Some(missing) = &missing {
        config_missing(&mut conds, missing);
    }
    // The slot this app holds, recorded for a leader that takes over.
    let upgrade_slot = ctx
        .upgrades
        .holds(&key)
        .then(|| previous.upgrade_slot.clone().unwrap_or_else(|| now.clone()));
    let base = SafeAppStatus {
        upgrade_slot,
        managed_objects: Some(managed),
        last_drift_correction: drift.or(previous.last_drift_correction.clone()),
        held_replicas: plan.held_replicas,
        template: record,
        missing_config: missing,
        canary: canary_status,
        ..with_workload(previous.clone(), live.as_ref(), name)
    };
    status::write(ctx, app, base, &conds, now).await?;
    match outcome.failures.into_iter().next().or(access_failure) {
        Some(e) => Err(e),
        None if crd_missing => Ok(Action::requeue(traffic::GATEWAY_API_RETRY)),
        None => {
            let resync = with_jitter(ctx.resync, uid);
            let look = [recheck, canary.and_then(|c| c.requeue)]
                .into_iter()
                .flatten()
                .min();
            Ok(Action::requeue(look.map_or(resync, |r| r.min(resync))))
        }
    }
}

/// The HTTPRoute was applied (or left as it is) without a failure.
fn route_written(outcome: &Outcome) -> bool {
    outcome.reports.iter().any(|r| {
        r.kind == "HTTPRoute"
            && !matches!(
                r.change,
                crate::controller::apply::Change::Failed
                    | crate::controller::apply::Change::Conflict { .. }
            )
    })
}

/// The pods' label selector (`status.selector`, for `kubectl scale` and the HPA).
fn selector(name: &str) -> String {
    format!("app.kubernetes.io/instance={name},app.kubernetes.io/name={name}")
}

/// Replica counts and selector from the live workload.
pub fn with_workload(mut status: SafeAppStatus, live: Option<&Live>, name: &str) -> SafeAppStatus {
    let (replicas, ready, updated) = workload::replica_counts(live);
    let rollout = live.map(Live::rollout);
    status.current_revision = rollout.as_ref().and_then(|r| r.current_revision.clone());
    status.update_revision = rollout.and_then(|r| r.update_revision);
    status.replicas = Some(replicas);
    status.ready_replicas = Some(ready);
    status.updated_replicas = Some(updated);
    status.selector = Some(selector(name));
    status
}

/// A paused SafeApp's status: its workload as it runs, nothing else changed.
pub async fn paused(
    app: &SafeApp,
    ctx: &Context,
    target: &Target,
    live: Option<Live>,
) -> Result<Action, Error> {
    let ready = live.as_ref().is_some_and(|l| l.rollout().ready());
    let conds = crate::controller::outcome::paused(ready);
    let base = with_workload(target.previous.clone(), live.as_ref(), &target.name);
    status::write(ctx, app, base, &conds, &target.now).await?;
    // A paused or invalid app cannot finish an upgrade: its slot goes to the next.
    ctx.release_slot(&target.key());
    Ok(Action::await_change())
}

/// `UpgradePending`, and `Reconciling` overridden while a rollout is held: by the
/// upgrade queue (True, `WaitingForSlot`: it will go by itself), by the app's
/// `safeapp.dev/upgrade=defer` (False, `Deferred`: the team chose to wait), or by a pause
/// someone else put on the Deployment (False, `DeploymentPaused`).
pub fn upgrade_conditions(
    conds: &mut Vec<Cond>,
    held: Option<upgrade::HoldReason>,
    user_paused: bool,
    slots: usize,
) {
    use upgrade::HoldReason;
    let pending = match held {
        Some(HoldReason::WaitingForSlot) => Cond::new(
            c::UPGRADE_PENDING,
            true,
            c::REASON_WAITING_FOR_SLOT,
            format!(
                "a new pod template from the operator (new version or policy) waits for one of {slots} upgrade slots; annotate safeapp.dev/upgrade=now to take it now"
            ),
        ),
        Some(HoldReason::Deferred) => Cond::new(
            c::UPGRADE_PENDING,
            true,
            c::REASON_DEFERRED,
            "a new pod template from the operator waits: safeapp.dev/upgrade=defer",
        ),
        None => Cond::new(c::UPGRADE_PENDING, false, c::REASON_UP_TO_DATE, ""),
    };
    let progressing = if let Some(reason) = held {
        Some(Cond::new(
            c::RECONCILING,
            reason == HoldReason::WaitingForSlot,
            pending.reason,
            pending.message.clone(),
        ))
    } else if user_paused {
        Some(Cond::new(
            c::RECONCILING,
            false,
            c::REASON_DEPLOYMENT_PAUSED,
            "the Deployment is paused (kubectl rollout pause): changes to the pod template do not roll out until kubectl rollout resume",
        ))
    } else {
        None
    };
    if let Some(p) = progressing {
        for cond in conds.iter_mut().filter(|x| x.type_ == c::RECONCILING) {
            *cond = p.clone();
        }
    }
    conds.push(pending);
}

/// While a referenced ConfigMap or Secret is missing, pods cannot start (or run without
/// it): until it appears, a not-Ready app is `Reconciling`, reason `ConfigMissing` (a
/// GitOps sync often applies the app before its config; it resolves itself).
pub fn config_missing(conds: &mut [Cond], missing: &[String]) {
    let ready = conds.iter().any(|x| x.type_ == c::READY && x.status);
    let message = format!("waiting for {}", missing.join(", "));
    for cond in conds.iter_mut().filter(|x| x.type_ == c::RECONCILING) {
        if !ready && cond.status {
            *cond = Cond::new(
                c::RECONCILING,
                true,
                c::REASON_CONFIG_MISSING,
                message.clone(),
            );
        }
    }
}
