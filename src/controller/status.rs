//! Status: conditions computed from the Deployment's own status and conditions, and the
//! patch of a SafeApp's or SafeJob's status ([`Owner`]), made only when something changed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Error;
use super::conditions::{self as c, Cond};
use crate::api::{SafeApp, SafeAppStatus, SafeJob, SafeJobStatus};
use crate::metrics::Metrics;

/// Ready, Progressing and Degraded from the live Deployment. `out_of_range` lists
/// resources the namespace LimitRange would refuse.
pub fn rollout_conditions(deployment: Option<&Deployment>, out_of_range: &[String]) -> Vec<Cond> {
    let Some(d) = deployment else {
        return vec![
            Cond::new(
                c::READY,
                false,
                c::REASON_WAITING,
                "the Deployment does not exist yet",
            ),
            Cond::new(
                c::PROGRESSING,
                true,
                c::REASON_ROLLOUT_IN_PROGRESS,
                "creating the Deployment",
            ),
            degraded(None, out_of_range),
        ];
    };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let find = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .find(|x| x.type_ == t)
            .cloned()
    };
    let deadline = find("Progressing")
        .filter(|x| x.status == "False" && x.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    let replica_failure = find("ReplicaFailure").filter(|x| x.status == "True");
    let caught_up = st.observed_generation >= d.metadata.generation;
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let complete = caught_up && updated >= want && total <= want && available >= want;
    let summary = format!("{updated} of {want} updated, {available} available");

    let failure = replica_failure
        .as_ref()
        .map(|f| {
            (
                c::REASON_REPLICA_FAILURE,
                f.message.clone().unwrap_or_default(),
            )
        })
        .or_else(|| {
            deadline.as_ref().map(|f| {
                (
                    c::REASON_PROGRESS_DEADLINE_EXCEEDED,
                    f.message.clone().unwrap_or_default(),
                )
            })
        });
    let ready = if available >= want && caught_up {
        Cond::new(c::READY, true, c::REASON_AVAILABLE, summary.clone())
    } else if let Some((reason, msg)) = &failure {
        Cond::new(c::READY, false, reason, msg.clone())
    } else {
        Cond::new(
            c::READY,
            false,
            c::REASON_ROLLOUT_IN_PROGRESS,
            summary.clone(),
        )
    };
    let progressing = if let Some(f) = &deadline {
        Cond::new(
            c::PROGRESSING,
            false,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED,
            f.message.clone().unwrap_or_default(),
        )
    } else if complete {
        Cond::new(c::PROGRESSING, false, c::REASON_ROLLOUT_COMPLETE, summary)
    } else {
        Cond::new(c::PROGRESSING, true, c::REASON_ROLLOUT_IN_PROGRESS, summary)
    };
    vec![ready, progressing, degraded(failure, out_of_range)]
}

/// Whether a rollout has come to an end: complete on the current template, or failed
/// past its progress deadline. Frees an upgrade slot.
pub fn rollout_settled(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let caught_up = st.observed_generation >= d.metadata.generation;
    let complete = caught_up
        && st.updated_replicas.unwrap_or(0) >= want
        && st.replicas.unwrap_or(0) <= want
        && st.available_replicas.unwrap_or(0) >= want;
    let failed = st.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    complete || (caught_up && failed)
}

/// `UpgradePending`, and `Progressing` overridden while a rollout is held: by the
/// upgrade queue, or by a pause someone else put on the Deployment.
pub fn upgrade_conditions(
    conds: &mut Vec<Cond>,
    held: Option<super::upgrade::HoldReason>,
    user_paused: bool,
    slots: usize,
) {
    use super::upgrade::HoldReason;
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
    let progressing = if held.is_some() {
        Some(Cond::new(
            c::PROGRESSING,
            false,
            c::UPGRADE_PENDING,
            pending.message.clone(),
        ))
    } else if user_paused {
        Some(Cond::new(
            c::PROGRESSING,
            false,
            c::REASON_DEPLOYMENT_PAUSED,
            "the Deployment is paused (kubectl rollout pause): changes to the pod template do not roll out until kubectl rollout resume",
        ))
    } else {
        None
    };
    if let Some(p) = progressing {
        for cond in conds.iter_mut().filter(|x| x.type_ == c::PROGRESSING) {
            *cond = p.clone();
        }
    }
    conds.push(pending);
}

/// Degraded: a failure, else resources outside the namespace's range, else as expected.
pub fn degraded(failure: Option<(&'static str, String)>, out_of_range: &[String]) -> Cond {
    match failure {
        Some((reason, msg)) => Cond::new(c::DEGRADED, true, reason, msg),
        None if !out_of_range.is_empty() => Cond::new(
            c::DEGRADED,
            true,
            c::REASON_RESOURCES_OUT_OF_RANGE,
            format!(
                "admission will refuse the pods: {}",
                out_of_range.join("; ")
            ),
        ),
        None => Cond::new(c::DEGRADED, false, c::REASON_AS_EXPECTED, ""),
    }
}

/// Conditions for a SafeApp or SafeJob that cannot be applied at all (invalid spec, conflict).
pub fn blocked_conditions(reason: &'static str, message: &str) -> Vec<Cond> {
    vec![
        Cond::new(c::READY, false, reason, message),
        Cond::new(c::PROGRESSING, false, reason, message),
        Cond::new(c::DEGRADED, true, reason, message),
    ]
}

/// Replica counts and selector from the live Deployment.
pub fn with_deployment(
    mut status: SafeAppStatus,
    deployment: Option<&Deployment>,
    selector: String,
) -> SafeAppStatus {
    let st = deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    status.replicas = Some(st.replicas.unwrap_or(0));
    status.ready_replicas = Some(st.ready_replicas.unwrap_or(0));
    status.updated_replicas = Some(st.updated_replicas.unwrap_or(0));
    status.selector = Some(selector);
    status
}

/// A SafeApp or a SafeJob, as its status and its reports see it.
pub trait Owner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug
{
    type Status: Serialize + PartialEq;
    /// Names its status writes in the metrics.
    const STATUS_LABEL: &'static str;
    /// The status it was read with.
    fn status(&self) -> Option<&Self::Status>;
    /// Its current conditions (from the status it was read with).
    fn conditions(&self) -> Option<&[Condition]>;
    /// `base` with `conditions`, describing `generation`.
    fn observed(
        base: Self::Status,
        generation: Option<i64>,
        conditions: Vec<Condition>,
    ) -> Self::Status;
}

impl Owner for SafeApp {
    type Status = SafeAppStatus;
    const STATUS_LABEL: &'static str = "SafeAppStatus";
    fn status(&self) -> Option<&SafeAppStatus> {
        self.status.as_ref()
    }
    fn conditions(&self) -> Option<&[Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
    fn observed(base: SafeAppStatus, generation: Option<i64>, c: Vec<Condition>) -> SafeAppStatus {
        SafeAppStatus {
            observed_generation: generation,
            conditions: Some(c),
            ..base
        }
    }
}

impl Owner for SafeJob {
    type Status = SafeJobStatus;
    const STATUS_LABEL: &'static str = "SafeJobStatus";
    fn status(&self) -> Option<&SafeJobStatus> {
        self.status.as_ref()
    }
    fn conditions(&self) -> Option<&[Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
    fn observed(base: SafeJobStatus, generation: Option<i64>, c: Vec<Condition>) -> SafeJobStatus {
        SafeJobStatus {
            observed_generation: generation,
            conditions: Some(c),
            ..base
        }
    }
}

/// The new status: `base` with the conditions merged over the old ones.
pub fn build<K: Owner>(obj: &K, base: K::Status, wanted: &[Cond], now: &Time) -> K::Status {
    let generation = obj.meta().generation;
    let conditions = c::merge(obj.conditions(), wanted, generation, now);
    K::observed(base, generation, conditions)
}

/// Builds the new status of a SafeApp or SafeJob from `base` and `wanted`, and patches
/// it when it changed.
pub async fn write<K: Owner>(
    client: &Client,
    obj: &K,
    base: K::Status,
    wanted: &[Cond],
    now: &Time,
    metrics: &Metrics,
) -> Result<bool, Error> {
    let status = build(obj, base, wanted, now);
    patch_if_changed(client, obj, obj.status(), &status, K::STATUS_LABEL, metrics).await
}

/// Patches the status subresource of `obj` (a SafeApp or a SafeJob) to `status`, only
/// when it differs from `old`, the status `obj` was read with. `label` names the write
/// in the metrics.
async fn patch_if_changed<K, S>(
    client: &Client,
    obj: &K,
    old: Option<&S>,
    status: &S,
    label: &'static str,
    metrics: &Metrics,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    S: Serialize + PartialEq,
{
    if old == Some(status) {
        return Ok(false);
    }

    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let mut patch = serde_json::to_value(status).map_err(|source| Error::Serialize {
        kind: label,
        source,
    })?;
    if let Some(old) = old {
        clear_dropped(&mut patch, &serde_json::to_value(old).unwrap_or_default());
    }
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": patch })),
    )
    .await
    .map_err(|source| Error::PatchStatus { source })?;
    metrics.write(label);
    Ok(true)
}

/// A merge patch keeps what it does not mention: a field the new status no longer has
/// (None, skipped when serialized) must be sent as null to be removed.
fn clear_dropped(new: &mut serde_json::Value, old: &serde_json::Value) {
    let (Some(new), Some(old)) = (new.as_object_mut(), old.as_object()) else {
        return;
    };
    for (key, old_value) in old {
        match new.get_mut(key) {
            None => {
                new.insert(key.clone(), serde_json::Value::Null);
            }
            Some(v) => clear_dropped(v, old_value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(status),
        }
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..DeploymentCondition::default()
        }
    }

    fn get<'a>(conds: &'a [Cond], t: &str) -> &'a Cond {
        conds.iter().find(|x| x.type_ == t).expect("condition")
    }

    // A rollout in progress: not ready, progressing, not degraded.
    #[test]
    fn progressing_rollout() {
        let d = deployment(
            3,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(4),
                updated_replicas: Some(1),
                available_replicas: Some(2),
                ..DeploymentStatus::default()
            },
        );
        let conds = rollout_conditions(Some(&d), &[]);
        assert!(!get(&conds, c::READY).status);
        assert_eq!(
            get(&conds, c::PROGRESSING).reason,
            c::REASON_ROLLOUT_IN_PROGRESS
        );
        assert!(get(&conds, c::PROGRESSING).status);
        assert!(!get(&conds, c::DEGRADED).status);
    }

    // A complete rollout: ready, no longer progressing.
    #[test]
    fn complete_rollout() {
        let d = deployment(
            3,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(3),
                updated_replicas: Some(3),
                ready_replicas: Some(3),
                available_replicas: Some(3),
                ..DeploymentStatus::default()
            },
        );
        let conds = rollout_conditions(Some(&d), &[]);
        assert!(get(&conds, c::READY).status);
        assert_eq!(get(&conds, c::READY).reason, c::REASON_AVAILABLE);
        assert_eq!(
            get(&conds, c::PROGRESSING).reason,
            c::REASON_ROLLOUT_COMPLETE
        );
        assert!(!get(&conds, c::DEGRADED).status);
    }

    // A failed rollout (deadline exceeded, quota refusal) is Degraded with the API's message.
    #[test]
    fn failed_rollout() {
        let d = deployment(
            3,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(1),
                updated_replicas: Some(1),
                available_replicas: Some(0),
                conditions: Some(vec![
                    cond(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        "ReplicaSet \"web-1\" has timed out progressing.",
                    ),
                    cond(
                        "ReplicaFailure",
                        "True",
                        "FailedCreate",
                        "pods \"web-1-x\" is forbidden: exceeded quota: safeapp-quota",
                    ),
                ]),
                ..DeploymentStatus::default()
            },
        );
        let conds = rollout_conditions(Some(&d), &[]);
        let degraded = get(&conds, c::DEGRADED);
        assert!(degraded.status);
        assert_eq!(degraded.reason, c::REASON_REPLICA_FAILURE);
        assert!(degraded.message.contains("exceeded quota"));
        assert_eq!(
            get(&conds, c::PROGRESSING).reason,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED
        );
        assert!(!get(&conds, c::READY).status);
    }

    // Resources outside the LimitRange are reported as Degraded/ResourcesOutOfRange.
    #[test]
    fn out_of_range_is_degraded() {
        let conds = rollout_conditions(
            None,
            &["spec.resources.limits.cpu: 8 is above the namespace maximum 4".into()],
        );
        let degraded = get(&conds, c::DEGRADED);
        assert_eq!(degraded.reason, c::REASON_RESOURCES_OUT_OF_RANGE);
        assert!(degraded.message.contains("limits.cpu"));
    }

    // A field the new status drops is sent as null (a merge patch would keep it), at
    // any depth; what is kept is untouched.
    #[test]
    fn dropped_fields_are_cleared() {
        let old = json!({"heldReplicas": 3, "missingConfig": ["ConfigMap/a"],
                         "lastDriftCorrection": {"kind": "Service", "manager": "helm"}});
        let mut new = json!({"lastDriftCorrection": {"kind": "Service"}, "replicas": 2});
        clear_dropped(&mut new, &old);
        assert_eq!(
            new,
            json!({"heldReplicas": null, "missingConfig": null, "replicas": 2,
                   "lastDriftCorrection": {"kind": "Service", "manager": null}})
        );
    }
}
