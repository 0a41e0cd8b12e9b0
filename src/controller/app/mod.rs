//! The SafeApp reconciler. One reconcile is a pipeline, each step a function of its
//! own: namespace (deleted? allowed?) → validate → render → plan → apply → report.
//!
//! - validate and render are the pure library functions (`crate::validate`,
//!   `crate::render`);
//! - [`plan`] shapes the rendered workload (held replicas, config hash, staged upgrade);
//! - apply is [`workload::apply`] (and, for a StatefulSet, [`stuck::check`]) then
//!   [`children::apply`]: `crate::controller::apply` is the only writer of children;
//! - [`report`] writes the Events and the one status patch.
//!
//! The namespace-shared objects are the namespace reconciler's (`controller::namespace`).

pub mod access;
pub mod canary;
pub mod children;
pub mod plan;
pub mod report;
pub mod stuck;
pub mod target;
pub mod traffic;
pub mod upgrade;
pub mod workload;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::instrument;

use crate::api::{SafeApp, WorkloadKind};
use crate::controller::apply::{Ownership, SyncCtx};
use crate::controller::outcome::{self, Outcome};
use crate::controller::{Context, Error, status};
use crate::render;
use crate::validate::{self, ValidatedApp};
use report::Applied;
pub use target::Target;

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
    let target = match namespace(app, ctx).await? {
        Ok(target) => target,
        Err(done) => return Ok(done),
    };
    // Reconciles read the children's caches once they have listed.
    let caches = ctx.ready_caches(WorkloadKind::SafeApp).await;
    let previously = outcome::managed_keys(target.previous.managed_objects.as_deref());
    let sync = target.sync_ctx(ctx, &previously, caches);
    if app.spec.paused == Some(true) {
        return paused(app, ctx, &target, &sync).await;
    }
    let validated = match validate(app, ctx, &target).await? {
        Ok(validated) => validated,
        Err(done) => return Ok(done),
    };
    let (mut workload, mut children) = render::render(&validated, &ctx.policy).split();
    let own = Ownership::Controller { uid: &target.uid };
    let mut outcome = Outcome::default();
    let mut plan = plan::plan(
        app,
        ctx,
        &sync,
        &validated,
        &target.previous,
        &mut workload,
        &mut outcome,
    )
    .await;
    // A canary release holds the stable template, and splits the traffic.
    let canary = match (&plan.live, &plan.template) {
        (Some(live), Some(template)) => {
            let input = canary::Inputs {
                app,
                validated: &validated,
                previous: target.previous.canary.as_ref(),
                stable_hash: target.previous.template.as_ref().map(|t| t.hash.as_str()),
                config_hash: &template.record.config_hash,
                cause: template.cause,
                live: live.as_ref(),
            };
            // Boxed: its future (a Prometheus query among others) would otherwise sit
            // inside every reconcile's.
            Box::pin(canary::plan(
                ctx,
                &sync,
                input,
                &mut workload,
                &mut children,
                &mut outcome,
            ))
            .await
        }
        _ => None,
    };
    // Without the live workload or the config the workload is left as it is.
    let live = match (plan.live.take(), &plan.template) {
        (Some(live), Some(template)) => {
            let mut how = template.how();
            if canary.as_ref().is_some_and(|c| c.promotes_stable) {
                how.force = true;
                how.operator_change = true;
            }
            workload::apply(app, ctx, &sync, &workload, live, how, own, &mut outcome).await
        }
        _ => None,
    };
    let mut rollout = live.as_ref().map(workload::Live::rollout);
    let recheck = match rollout.as_mut() {
        Some(rollout) => stuck::check(app, ctx, &target.namespace, rollout)
            .await
            .unwrap_or_else(|e| {
                outcome.fail("v1", "Pod", &target.name, e);
                None
            }),
        None => None,
    };
    canary::apply(&sync, &target.name, canary.as_ref(), own, &mut outcome).await;
    let rewrite = match &canary {
        Some(c) => c.rewrite,
        // A canary turned off mid-way: the stable Service's pin is lifted.
        None => children::Rewrite {
            route: false,
            service: target.previous.canary.as_ref().is_some_and(canary::active),
        },
    };
    let conditions =
        children::apply(ctx, &sync, &validated, children, rewrite, own, &mut outcome).await;
    let applied = Applied {
        outcome,
        workload_kind: workload.kind(),
        live,
        rollout,
        recheck,
        conditions,
        canary,
    };
    report::report(app, ctx, &target, &validated, plan, applied).await
}

/// The namespace step: a deleted app lets its children go (through their
/// ownerReferences) and gives back its slot; an app in a namespace the policy denies
/// says so and gets nothing. `Err(action)` ends the reconcile there.
async fn namespace(app: &SafeApp, ctx: &Context) -> Result<Result<Target, Action>, Error> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    let name = app.name_any();
    if app.meta().deletion_timestamp.is_some() {
        ctx.release_slot(&format!("{ns}/{name}"));
        if let Some(uid) = app.uid() {
            ctx.statuses.forget(&uid);
        }
        return Ok(Err(Action::await_change()));
    }
    let target = Target {
        uid: app.uid().ok_or(Error::MissingUid)?,
        generation: app.metadata.generation,
        now: Time(Timestamp::now()),
        previous: app.status.clone().unwrap_or_default(),
        namespace: ns,
        name,
    };
    if ctx.policy.guardrails.denies_namespace(&target.namespace) {
        let conds = outcome::namespace_denied(&target.namespace);
        status::write(ctx, app, target.previous.clone(), &conds, &target.now).await?;
        ctx.release_slot(&target.key());
        return Ok(Err(Action::await_change()));
    }
    Ok(Ok(target))
}

/// A paused app: its status follows its workload as it runs; nothing is applied.
async fn paused(
    app: &SafeApp,
    ctx: &Context,
    target: &Target,
    sync: &SyncCtx<'_>,
) -> Result<Action, Error> {
    // What kind of workload it has is the spec's, valid or not.
    let kind = render::WorkloadKind::of(&app.spec);
    let live = workload::read(sync, kind, &target.name).await?;
    let live = workload::typed(kind, live);
    report::paused(app, ctx, target, live).await
}

/// The validate step: an invalid app says what is wrong, field by field, holds no
/// upgrade slot, and waits for a change; a valid one joins its namespace's shared
/// objects (the namespace reconciler keeps the LimitRange and ResourceQuota for them).
async fn validate(
    app: &SafeApp,
    ctx: &Context,
    target: &Target,
) -> Result<Result<ValidatedApp, Action>, Error> {
    match validate::validate(app, &ctx.policy) {
        Ok(validated) => {
            ctx.namespaces.observe(
                &target.namespace,
                WorkloadKind::SafeApp,
                &target.name,
                &target.uid,
            );
            Ok(Ok(validated))
        }
        Err(problems) => {
            let conds = outcome::invalid_spec(app, ctx, &problems).await;
            status::write(ctx, app, target.previous.clone(), &conds, &target.now).await?;
            ctx.release_slot(&target.key());
            // Nothing changes until the SafeApp does.
            Ok(Err(Action::await_change()))
        }
    }
}
