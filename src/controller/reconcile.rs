//! One reconcile of one SafeApp: paused? → validate → render → sync each child →
//! events and metrics → status. Validation and rendering are the pure library
//! functions; `apply` is the only writer of children, `status` the only writer of status.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use super::apply::{self, Change, Ownership, SyncCtx, Synced};
use super::conditions::{self as c, Cond};
use super::{Context, Error, events, status};
use crate::api::v1alpha1::{DriftCorrection, ManagedObject};
use crate::api::{LIMIT_RANGE_NAME, RESOURCE_QUOTA_NAME, SafeApp, SafeAppStatus};
use crate::render::{self, Resources};
use crate::validate;

/// One line per child, for events and status.
struct Report {
    api_version: &'static str,
    kind: &'static str,
    name: String,
    change: Change,
}

fn report<K: serde::de::DeserializeOwned>(
    api_version: &'static str,
    s: Synced<K>,
) -> (Report, Synced<K>) {
    (
        Report {
            api_version,
            kind: s.kind,
            name: s.name.clone(),
            change: s.change.clone(),
        },
        s,
    )
}

fn selector(name: &str) -> String {
    format!("app.kubernetes.io/instance={name},app.kubernetes.io/name={name}")
}

/// Reconciles one SafeApp. Invalid and paused apps write nothing but their status and
/// wait for a change; everything else requeues after the resync period.
#[instrument(skip_all, fields(name = %app.name_any(), namespace = app.namespace().unwrap_or_default()))]
pub async fn reconcile_app(app: &SafeApp, ctx: &Context) -> Result<Action, Error> {
    let ns = app.namespace().ok_or(Error::MissingNamespace)?;
    let name = app.name_any();
    if app.meta().deletion_timestamp.is_some() {
        // Children go with it through their ownerReferences.
        return Ok(Action::await_change());
    }
    let now = Time(Timestamp::now());
    let previous = app.status.clone().unwrap_or_default();

    if app.spec.paused == Some(true) {
        let live = Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(|source| Error::GetChild {
                kind: "Deployment",
                name: name.clone(),
                source,
            })?;
        let ready = rollout_ready(live.as_ref());
        let conds = [
            Cond::new(
                c::READY,
                ready,
                c::REASON_PAUSED,
                "spec.paused is true: the operator changes nothing",
            ),
            Cond::new(
                c::PROGRESSING,
                false,
                c::REASON_PAUSED,
                "spec.paused is true",
            ),
            Cond::new(c::DEGRADED, false, c::REASON_PAUSED, ""),
        ];
        let base = status::with_deployment(previous, live.as_ref(), selector(&name));
        status::write(&ctx.client, app, base, &conds, &now, &ctx.metrics).await?;
        return Ok(Action::await_change());
    }

    let validated = match validate::validate(app, &ctx.policy) {
        Ok(v) => v,
        Err(problems) => {
            let message = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let before = ready_condition(app);
            if before != Some((c::REASON_INVALID_SPEC, message.as_str())) {
                events::publish(
                    &ctx.recorder,
                    app,
                    EventType::Warning,
                    events::INVALID_SPEC,
                    message.clone(),
                )
                .await;
            }
            info!(problems = problems.len(), "Invalid spec");
            let conds = status::blocked_conditions(c::REASON_INVALID_SPEC, &message);
            status::write(&ctx.client, app, previous, &conds, &now, &ctx.metrics).await?;
            // Nothing changes until the SafeApp does.
            return Ok(Action::await_change());
        }
    };
    let uid = app.uid().ok_or(Error::MissingUid)?;
    let Resources {
        deployment,
        service,
        pdb,
        hpa,
        mut limit_range,
        mut resource_quota,
    } = render::render(&validated, &ctx.policy);

    // The shared objects are owned by every SafeApp of the namespace.
    let owners = ctx.namespace_owners(&ns).await?;
    limit_range.metadata.owner_references = Some(owners.clone());
    if let Some(rq) = resource_quota.as_mut() {
        rq.metadata.owner_references = Some(owners);
    }

    let previously: Vec<String> = previous
        .managed_objects
        .iter()
        .flatten()
        .map(|m| format!("{}/{}", m.kind, m.name))
        .collect();
    let sync = SyncCtx {
        client: &ctx.client,
        namespace: &ns,
        spec_changed: previous.observed_generation != app.metadata.generation,
        previously_managed: &previously,
        metrics: &ctx.metrics,
    };
    let own = Ownership::Controller { uid: &uid };
    let shared = Ownership::Shared;
    // LimitRange first: admission must see it before the Deployment's pods.
    let (r_lr, _) = report(
        "v1",
        apply::sync::<LimitRange>(
            &sync,
            "LimitRange",
            LIMIT_RANGE_NAME,
            Some(&limit_range),
            shared,
        )
        .await?,
    );
    let (r_rq, _) = report(
        "v1",
        apply::sync::<ResourceQuota>(
            &sync,
            "ResourceQuota",
            RESOURCE_QUOTA_NAME,
            resource_quota.as_ref(),
            shared,
        )
        .await?,
    );
    // The operator stops applying spec.replicas only on a spec change (autoscaling
    // turned on), so only then can ownership need handing over.
    if sync.spec_changed
        && deployment
            .spec
            .as_ref()
            .is_some_and(|s| s.replicas.is_none())
    {
        apply::hand_over_replicas(&sync, &name).await?;
    }
    let (r_dep, synced_dep) = report(
        "apps/v1",
        apply::sync::<Deployment>(&sync, "Deployment", &name, Some(&deployment), own).await?,
    );
    // Only the Deployment is needed typed (its status drives the conditions).
    let live_dep = synced_dep.live();
    let (r_svc, _) = report(
        "v1",
        apply::sync::<Service>(&sync, "Service", &name, service.as_ref(), own).await?,
    );
    let (r_pdb, _) = report(
        "policy/v1",
        apply::sync::<PodDisruptionBudget>(&sync, "PodDisruptionBudget", &name, Some(&pdb), own)
            .await?,
    );
    let (r_hpa, _) = report(
        "autoscaling/v2",
        apply::sync::<HorizontalPodAutoscaler>(
            &sync,
            "HorizontalPodAutoscaler",
            &name,
            hpa.as_ref(),
            own,
        )
        .await?,
    );
    let reports = [r_lr, r_rq, r_dep, r_svc, r_pdb, r_hpa];

    let drift = announce(app, ctx, &reports, &now).await;
    let conflicts: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.change {
            Change::Conflict { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    let conds = if conflicts.is_empty() {
        status::rollout_conditions(
            live_dep.as_ref(),
            &render::out_of_range(&validated, &ctx.policy),
        )
    } else {
        let message = conflicts.join("; ");
        if ready_condition(app) != Some((c::REASON_NAME_CONFLICT, message.as_str())) {
            events::publish(
                &ctx.recorder,
                app,
                EventType::Warning,
                events::NAME_CONFLICT,
                message.clone(),
            )
            .await;
        }
        status::blocked_conditions(c::REASON_NAME_CONFLICT, &message)
    };
    let managed: Vec<ManagedObject> = reports
        .iter()
        .filter(|r| {
            !matches!(
                r.change,
                Change::Absent | Change::Pruned | Change::Conflict { .. }
            )
        })
        .map(|r| ManagedObject {
            api_version: r.api_version.into(),
            kind: r.kind.into(),
            name: r.name.clone(),
        })
        .collect();
    let base = SafeAppStatus {
        managed_objects: Some(managed),
        last_drift_correction: drift.or(previous.last_drift_correction.clone()),
        ..status::with_deployment(previous, live_dep.as_ref(), selector(&name))
    };
    status::write(&ctx.client, app, base, &conds, &now, &ctx.metrics).await?;
    Ok(Action::requeue(ctx.resync))
}

fn rollout_ready(deployment: Option<&Deployment>) -> bool {
    status::rollout_conditions(deployment, &[])
        .iter()
        .any(|x| x.type_ == c::READY && x.status)
}

fn ready_condition(app: &SafeApp) -> Option<(&str, &str)> {
    app.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|x| x.type_ == c::READY)
        .map(|x| (x.reason.as_str(), x.message.as_str()))
}

/// Events and metrics for what the sync did; returns the drift record for the status.
async fn announce(
    app: &SafeApp,
    ctx: &Context,
    reports: &[Report],
    now: &Time,
) -> Option<DriftCorrection> {
    let created: Vec<String> = reports
        .iter()
        .filter(|r| r.change == Change::Created)
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    if !created.is_empty() {
        events::publish(
            &ctx.recorder,
            app,
            EventType::Normal,
            events::CREATED,
            format!("Created {}", created.join(", ")),
        )
        .await;
    }
    let mut last = None;
    for r in reports {
        match &r.change {
            Change::DriftCorrected { fields, managers } => {
                let note = format!(
                    "{} {}: {} changed by {}; restored",
                    r.kind,
                    r.name,
                    fields.join(", "),
                    managers.join(", ")
                );
                info!(kind = r.kind, name = %r.name, fields = ?fields, managers = ?managers, "Drift corrected");
                last = Some(
                    drift_corrected(
                        app,
                        ctx,
                        r,
                        now,
                        note,
                        fields.clone(),
                        managers.first().cloned(),
                    )
                    .await,
                );
            }
            Change::Recreated => {
                let note = format!("{} {} was deleted; recreated", r.kind, r.name);
                let fields = vec!["(object deleted)".to_string()];
                last = Some(drift_corrected(app, ctx, r, now, note, fields, None).await);
            }
            Change::Pruned => {
                let note = format!(
                    "Deleted {} {}: the spec no longer asks for it",
                    r.kind, r.name
                );
                events::publish(&ctx.recorder, app, EventType::Normal, events::PRUNED, note).await;
            }
            _ => {}
        }
    }
    last
}

/// Counts, announces and records one drift correction.
async fn drift_corrected(
    app: &SafeApp,
    ctx: &Context,
    r: &Report,
    now: &Time,
    note: String,
    fields: Vec<String>,
    manager: Option<String>,
) -> DriftCorrection {
    ctx.metrics.drift(r.kind);
    events::publish(
        &ctx.recorder,
        app,
        EventType::Normal,
        events::DRIFT_CORRECTED,
        note,
    )
    .await;
    DriftCorrection {
        time: Some(now.clone()),
        kind: r.kind.into(),
        name: r.name.clone(),
        fields,
        manager,
    }
}

/// The non-controller ownerReferences of the namespace-shared objects: one per SafeApp.
pub fn shared_owner(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "safeapp.dev/v1alpha1".into(),
        kind: "SafeApp".into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(false),
        block_owner_deletion: None,
    }
}
