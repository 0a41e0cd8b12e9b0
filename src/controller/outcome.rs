//! What a reconcile did, and how it is told: one report per child, the failures, the
//! Events (created, drift corrected, recreated, pruned, blocked) and the drift record
//! for the status. Shared by both kinds' reconcilers (SafeApp and SafeJob): they differ
//! in what they apply, not in how it is reported.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use tracing::{info, warn};

use super::apply::{Change, Synced};
use super::conditions::{self as c, Cond};
use super::events::{self, EventType};
use super::status::{self, Owner};
use super::{Context, Error};
use crate::api::v1alpha1::{DriftCorrection, ManagedObject};

/// One line per child, for events and status.
pub struct Report {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
}

/// What the sync of every child came to: one report per child, and the failures.
#[derive(Default)]
pub struct Outcome {
    pub reports: Vec<Report>,
    pub failures: Vec<Error>,
}

/// Status messages (failures, invalid specs) stay well inside what a condition may hold.
pub const FAILURE_MESSAGE_LIMIT: usize = 1024;

impl Outcome {
    /// Records a child's sync; returns the synced child when it succeeded.
    pub fn settle<K>(
        &mut self,
        api_version: &'static str,
        kind: &'static str,
        name: &str,
        result: Result<Synced<K>, Error>,
    ) -> Option<Synced<K>> {
        match result {
            Ok(s) => {
                self.reports.push(Report {
                    api_version,
                    kind,
                    name: s.name.clone(),
                    change: s.change.clone(),
                });
                Some(s)
            }
            Err(e) => {
                self.fail(api_version, kind, name, e);
                None
            }
        }
    }

    /// Records a child that was looked at and left as it is.
    pub fn record(
        &mut self,
        api_version: &'static str,
        kind: &'static str,
        name: &str,
        change: Change,
    ) {
        self.reports.push(Report {
            api_version,
            kind,
            name: name.into(),
            change,
        });
    }

    pub fn fail(&mut self, api_version: &'static str, kind: &'static str, name: &str, e: Error) {
        warn!(kind, name, error = %e, "Child failed");
        self.reports.push(Report {
            api_version,
            kind,
            name: name.into(),
            change: Change::Failed,
        });
        self.failures.push(e);
    }

    pub fn changed(&self, kind: &str) -> Option<&Change> {
        self.reports
            .iter()
            .find(|r| r.kind == kind)
            .map(|r| &r.change)
    }

    /// The objects in place after the sync, for `status.managedObjects`.
    pub fn managed_objects(&self) -> Vec<ManagedObject> {
        self.reports
            .iter()
            .filter(|r| {
                !matches!(
                    r.change,
                    Change::Absent | Change::Pruned | Change::Conflict { .. } | Change::Failed
                )
            })
            .map(|r| ManagedObject {
                api_version: r.api_version.into(),
                kind: r.kind.into(),
                name: r.name.clone(),
            })
            .collect()
    }

    /// Whether every child was synced and none is another owner's object.
    pub fn clean(&self) -> bool {
        self.failures.is_empty()
            && !self
                .reports
                .iter()
                .any(|r| matches!(r.change, Change::Conflict { .. }))
    }

    /// The conditions of a sync that failed or met a foreign object, announced (a
    /// Warning Event on a new problem); None when every child is in place.
    pub async fn blocked(&self, obj: &impl Owner, ctx: &Context) -> Option<Vec<Cond>> {
        if let Some(first) = self.failures.first() {
            let reason = c::failure_reason(first);
            let message = self.failure_message();
            announce_blocked(obj, ctx, reason, events::APPLY_FAILED, &message).await;
            return Some(status::blocked_conditions(reason, &message));
        }
        let conflicts: Vec<String> = self
            .reports
            .iter()
            .filter_map(|r| match &r.change {
                Change::Conflict { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        if conflicts.is_empty() {
            return None;
        }
        let message = conflicts.join("; ");
        announce_blocked(
            obj,
            ctx,
            c::REASON_NAME_CONFLICT,
            events::NAME_CONFLICT,
            &message,
        )
        .await;
        Some(status::blocked_conditions(
            c::REASON_NAME_CONFLICT,
            &message,
        ))
    }

    fn failure_message(&self) -> String {
        let lines: Vec<String> = self.failures.iter().map(Error::summary).collect();
        events::bounded_list(&lines, FAILURE_MESSAGE_LIMIT)
    }
}

/// `kind/name` of the objects a status lists as managed (what a sync compares a missing
/// child against: recreated, or created).
pub fn managed_keys(managed: Option<&[ManagedObject]>) -> Vec<String> {
    managed
        .into_iter()
        .flatten()
        .map(|m| format!("{}/{}", m.kind, m.name))
        .collect()
}

/// The conditions of an object whose spec is refused, announced: every problem on one
/// bounded line (a Warning Event on a new refusal).
pub async fn invalid_spec(
    obj: &impl Owner,
    ctx: &Context,
    problems: &[crate::validate::FieldError],
) -> Vec<Cond> {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let message = events::bounded_list(&lines, FAILURE_MESSAGE_LIMIT);
    announce_blocked(
        obj,
        ctx,
        c::REASON_INVALID_SPEC,
        events::INVALID_SPEC,
        &message,
    )
    .await;
    info!(problems = problems.len(), "Invalid spec");
    status::blocked_conditions(c::REASON_INVALID_SPEC, &message)
}

/// The conditions of an object in a namespace the policy keeps the operator out of:
/// nothing is read or written there but its status (no Event either).
pub fn namespace_denied(ns: &str) -> Vec<Cond> {
    let message = format!(
        "the operator does not act in namespace {ns} (policy guardrails.deniedNamespaces); nothing is created or changed here"
    );
    info!("Namespace not allowed");
    status::blocked_conditions(c::REASON_NAMESPACE_NOT_ALLOWED, &message)
}

/// The conditions of an object with `spec.paused: true`; `ready` is whether what runs
/// is ready.
pub fn paused(ready: bool) -> Vec<Cond> {
    vec![
        Cond::new(
            c::READY,
            ready,
            c::REASON_PAUSED,
            "spec.paused is true: the operator changes nothing",
        ),
        Cond::new(
            c::RECONCILING,
            false,
            c::REASON_PAUSED,
            "spec.paused is true",
        ),
        Cond::new(c::DEGRADED, false, c::REASON_PAUSED, ""),
    ]
}

/// The operator's own pod-template change goes out (its slot taken, or
/// `safeapp.dev/upgrade=now`): a Normal Event `TemplateUpgraded` saying why, never a
/// `DriftCorrected`.
pub async fn template_upgraded(app: &impl Owner, ctx: &Context, why: &str) {
    info!(why, "Template upgraded");
    events::publish(
        &ctx.recorder,
        app,
        EventType::Normal,
        events::TEMPLATE_UPGRADED,
        format!("Rolling out a new pod template: {why}"),
    )
    .await;
}

/// A Warning Event when the object becomes blocked, or blocked for another reason:
/// not on every retry of the same problem.
pub async fn announce_blocked(
    app: &impl Owner,
    ctx: &Context,
    reason: &str,
    event_reason: &str,
    message: &str,
) {
    if ready_condition(app) != Some((reason, message)) {
        events::publish(
            &ctx.recorder,
            app,
            EventType::Warning,
            event_reason,
            message.to_string(),
        )
        .await;
    }
}

fn ready_condition(app: &impl Owner) -> Option<(&str, &str)> {
    app.conditions()?
        .iter()
        .find(|x| x.type_ == c::READY)
        .map(|x| (x.reason.as_str(), x.message.as_str()))
}

/// Events and metrics for what the sync did; returns the drift record for the status.
pub async fn announce(
    app: &impl Owner,
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

/// Field paths kept in `status.lastDriftCorrection.fields` (the CRD allows 128 of at
/// most 1 KiB each); the last entry counts the rest.
const MAX_DRIFT_FIELDS: usize = 32;
const MAX_DRIFT_FIELD_LEN: usize = 512;

/// The drift paths as status records them: at most [`MAX_DRIFT_FIELDS`], each bounded.
fn bounded_fields(fields: Vec<String>) -> Vec<String> {
    let total = fields.len();
    let keep = if total > MAX_DRIFT_FIELDS {
        MAX_DRIFT_FIELDS - 1
    } else {
        total
    };
    let mut out: Vec<String> = fields
        .into_iter()
        .take(keep)
        .map(|f| events::bounded(f, MAX_DRIFT_FIELD_LEN))
        .collect();
    if total > keep {
        out.push(format!("(and {} more)", total - keep));
    }
    out
}

/// Counts, announces and records one drift correction.
async fn drift_corrected(
    app: &impl Owner,
    ctx: &Context,
    r: &Report,
    now: &Time,
    note: String,
    fields: Vec<String>,
    manager: Option<String>,
) -> DriftCorrection {
    ctx.metrics.drift(r.kind);
    ctx.drift_corrected(&app.namespace().unwrap_or_default(), r.kind, &r.name);
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
        fields: bounded_fields(fields),
        manager,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Status keeps at most MAX_DRIFT_FIELDS drift paths, the last one counting the rest,
    // so a huge drift never makes the status write exceed the CRD's bounds.
    #[test]
    fn drift_fields_are_bounded() {
        let few: Vec<String> = (0..3).map(|i| format!("spec.f{i}")).collect();
        assert_eq!(bounded_fields(few.clone()), few);
        let many: Vec<String> = (0..500).map(|i| format!("spec.f{i}")).collect();
        let kept = bounded_fields(many);
        assert_eq!(kept.len(), MAX_DRIFT_FIELDS);
        assert_eq!(kept.last().unwrap(), "(and 469 more)");
        let long = bounded_fields(vec!["x".repeat(5000)]);
        assert!(long[0].len() <= MAX_DRIFT_FIELD_LEN);
    }
}
