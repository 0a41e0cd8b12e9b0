//! The plan step of a SafeApp's reconcile: what the rendered workload becomes before it
//! is applied. The replica count held when autoscaling was turned off, the referenced
//! config's hash on the pod template, and the staged-upgrade decision (roll now, take a
//! slot, or hold: see `upgrade.rs`). Reads the live workload and the config; writes
//! nothing but the HPA it must prune first.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use serde_json::Value;
use tracing::info;

use super::{upgrade, workload};
use crate::api::v1alpha1::TemplateRecord;
use crate::api::{SafeApp, SafeAppStatus};
use crate::controller::apply::{self, Change, Ownership, SyncCtx};
use crate::controller::outcome::Outcome;
use crate::controller::{Context, config, drift};
use crate::render::Workload;
use crate::validate::ValidatedApp;

/// What the plan step decided.
pub struct Plan {
    /// The live workload (`None`: it could not be read; `Some(None)`: it does not exist).
    pub live: Option<Option<Value>>,
    /// The replica count kept when autoscaling was turned off (see [`held_replicas`]).
    pub held_replicas: Option<i32>,
    /// The referenced config (None: it could not be read, the workload is left as is).
    pub config: Option<config::ConfigState>,
    /// How the pod template goes (None without the config).
    pub template: Option<TemplatePlan>,
}

/// Plans the workload of `app`: prunes the HPA first when autoscaling is off (so it
/// cannot scale the workload again after the operator has set its count), reads the
/// live workload and the config, and shapes `workload` (replicas, config hash, hold).
/// Failures go to `outcome`; what they block is left out of the plan.
pub async fn plan(
    app: &SafeApp,
    ctx: &Context,
    sync: &SyncCtx<'_>,
    validated: &ValidatedApp,
    previous: &SafeAppStatus,
    workload: &mut Workload,
    outcome: &mut Outcome,
) -> Plan {
    let name = app.name_any();
    let ns = sync.namespace;
    let hpa_pruned = if validated.autoscaling.is_some() {
        false
    } else {
        let synced = apply::sync::<HorizontalPodAutoscaler>(
            sync,
            "HorizontalPodAutoscaler",
            &name,
            None,
            Ownership::Controller {
                uid: app.metadata.uid.as_deref().unwrap_or_default(),
            },
        )
        .await;
        outcome.settle("autoscaling/v2", "HorizontalPodAutoscaler", &name, synced);
        outcome.changed("HorizontalPodAutoscaler") == Some(&Change::Pruned)
    };
    let live = match workload::read(sync, workload.which(), &name).await {
        Ok(live) => Some(live),
        Err(e) => {
            outcome.fail(workload.api_version(), workload.kind(), &name, e);
            None
        }
    };
    let held = held_replicas(validated, previous, hpa_pruned, live.as_ref());
    if let Some(count) = held {
        workload.set_replicas(count);
    }
    // The referenced config's data hash goes on the pod template; without it (a read
    // failed) the workload is left as it is rather than rolled without the hash.
    let config = match config::state(
        &ctx.client,
        &ctx.config,
        ctx.watch_secrets,
        ns,
        &name,
        &validated.config_refs,
    )
    .await
    {
        Ok(state) => Some(state),
        Err(e) => {
            outcome.fail(workload.api_version(), workload.kind(), &name, e);
            None
        }
    };
    let template = config.as_ref().map(|state| {
        if let Some(hash) = &state.hash {
            workload.set_config_hash(hash);
        }
        let live = live.as_ref().and_then(Option::as_ref);
        template_plan(app, ctx, previous, workload, state, live)
    });
    Plan {
        live,
        held_replicas: held,
        config,
        template,
    }
}

/// How this reconcile treats the pod template (see `upgrade.rs`).
pub struct TemplatePlan {
    /// Who caused the template change, if there is one.
    pub cause: upgrade::Cause,
    /// What changed, for an operator-caused one (the `TemplateUpgraded` Event).
    pub why: String,
    /// Apply the Deployment even when the compare sees no difference.
    pub force_apply: bool,
    /// Why the rollout is held (the Deployment is applied paused), if it is.
    pub held: Option<upgrade::HoldReason>,
    /// What `status.template` becomes once the template is rolled out.
    pub record: TemplateRecord,
}

impl TemplatePlan {
    /// How the workload step applies the template.
    pub fn how(&self) -> workload::HowToApply<'_> {
        let operator = self.cause == upgrade::Cause::Operator;
        workload::HowToApply {
            force: self.force_apply,
            operator_change: operator,
            announce: (operator && self.held.is_none()).then_some(self.why.as_str()),
        }
    }
}

/// Classifies the rendered template against the last one rolled out, takes an upgrade
/// slot when the operator's change may go, and pauses the Deployment when it may not.
fn template_plan(
    app: &SafeApp,
    ctx: &Context,
    previous: &SafeAppStatus,
    workload: &mut Workload,
    config: &config::ConfigState,
    live: Option<&serde_json::Value>,
) -> TemplatePlan {
    let generation = app.metadata.generation.unwrap_or(0);
    let hash = workload.template_hash();
    let config_hash = config.hash.clone().unwrap_or_default();
    // Only an app without a record needs the live template compared (the record says
    // the rest): no template serialization and compare on every reconcile.
    let live_differs = live.filter(|_| previous.template.is_none()).map(|l| {
        let desired = serde_json::to_value(workload.template()).unwrap_or_default();
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
    // A workload to create (new, or deleted) is never held: it would have no pods.
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
    let we_held =
        previous.conditions.iter().flatten().any(|c| {
            c.type_ == crate::controller::conditions::UPGRADE_PENDING && c.status == "True"
        });
    let paused_by_someone = live.is_some_and(|l| l["spec"]["paused"] == true) && !we_held;
    let step =
        if cause == upgrade::Cause::Operator && paused_by_someone && annotation != Some("now") {
            upgrade::Step::Hold(upgrade::HoldReason::WaitingForSlot)
        } else {
            upgrade::step(cause, annotation, &ctx.upgrades, &key)
        };
    let held = match step {
        upgrade::Step::Hold(reason) => {
            workload.hold();
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

/// The replica count kept when autoscaling was turned off without `spec.replicas`: on
/// the turn (the HPA was just pruned), what the workload has now, the HPA's last
/// count; afterwards, what the status recorded. None when `spec.replicas` is set (the
/// user's count applies, in one step) or autoscaling is on. Pure.
pub fn held_replicas(
    app: &crate::validate::ValidatedApp,
    previous: &SafeAppStatus,
    hpa_pruned: bool,
    live: Option<&Option<serde_json::Value>>,
) -> Option<i32> {
    if app.spec.replicas.is_some() || app.autoscaling.is_some() {
        return None;
    }
    if hpa_pruned {
        let live = live?.as_ref()?;
        return live["spec"]["replicas"]
            .as_i64()
            .and_then(|r| i32::try_from(r).ok());
    }
    previous.held_replicas
}
