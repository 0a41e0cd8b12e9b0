//! Status: conditions computed from the Deployment's own status and conditions, and the
//! patch of a SafeApp's or SafeJob's status ([`Owner`]), made only when something changed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Error;
use super::conditions::{self as c, Cond};
use crate::api::{SafeApp, SafeAppStatus, SafeJob, SafeJobStatus};

/// Ready, Reconciling and Degraded from the live Deployment (`Stalled` follows from them,
/// [`c::kstatus`]). `out_of_range` lists resources the namespace LimitRange would refuse.
///
/// Ready means the spec's template is rolled out and available at the spec's replicas:
/// a rollout in progress (old pods still serving) is not Ready, as kstatus reads a
/// Deployment. A paused Deployment (an operator upgrade waiting for its slot, or
/// `kubectl rollout pause`) never rolls, so there Ready is what runs being available.
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
                c::RECONCILING,
                true,
                c::REASON_WAITING,
                "creating the Deployment",
            ),
            degraded(None, out_of_range),
        ];
    };
    let rollout = Rollout::of(d);
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
    let summary = format!(
        "{} of {} updated, {} available",
        rollout.updated, rollout.want, rollout.available
    );
    let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
    let ready = if paused {
        rollout.caught_up && rollout.available >= rollout.want
    } else {
        rollout.complete()
    };

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
    let ready_cond = if ready {
        Cond::new(c::READY, true, c::REASON_AVAILABLE, summary.clone())
    } else if let Some(f) = &deadline {
        // Past its deadline the controller-manager stops trying: a person must act.
        Cond::new(
            c::READY,
            false,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED,
            f.message.clone().unwrap_or_default(),
        )
    } else if !out_of_range.is_empty() {
        Cond::new(
            c::READY,
            false,
            c::REASON_RESOURCES_OUT_OF_RANGE,
            format!(
                "admission will refuse the pods: {}",
                out_of_range.join("; ")
            ),
        )
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
    let reconciling = if ready {
        Cond::new(c::RECONCILING, false, c::REASON_ROLLOUT_COMPLETE, summary)
    } else if let Some(f) = &deadline {
        Cond::new(
            c::RECONCILING,
            false,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED,
            f.message.clone().unwrap_or_default(),
        )
    } else if let Some((reason, msg)) = failure.clone().filter(|_| deadline.is_none()) {
        // A refused replica (quota, admission) is retried by the controller-manager
        // until the progress deadline: still in progress.
        Cond::new(c::RECONCILING, true, reason, msg)
    } else {
        Cond::new(c::RECONCILING, true, c::REASON_ROLLOUT_IN_PROGRESS, summary)
    };
    vec![ready_cond, reconciling, degraded(failure, out_of_range)]
}

/// What a Deployment's status says of its rollout.
struct Rollout {
    want: i32,
    caught_up: bool,
    updated: i32,
    available: i32,
    total: i32,
}

impl Rollout {
    fn of(d: &Deployment) -> Self {
        let st = d.status.clone().unwrap_or_default();
        Self {
            want: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            caught_up: st.observed_generation >= d.metadata.generation,
            updated: st.updated_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            total: st.replicas.unwrap_or(0),
        }
    }

    /// The current template runs at the wanted count, available, old pods gone.
    fn complete(&self) -> bool {
        self.caught_up
            && self.updated >= self.want
            && self.total <= self.want
            && self.available >= self.want
    }
}

/// Whether a rollout has come to an end: complete on the current template, or failed
/// past its progress deadline. Frees an upgrade slot.
pub fn rollout_settled(d: &Deployment) -> bool {
    let rollout = Rollout::of(d);
    let failed = d
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
    rollout.complete() || (rollout.caught_up && failed)
}

/// `UpgradePending`, and `Reconciling` overridden while a rollout is held: by the
/// upgrade queue (True, `WaitingForSlot`: it will go by itself), by the app's
/// `safeapp.dev/upgrade=defer` (False, `Deferred`: the team chose to wait), or by a pause
/// someone else put on the Deployment (False, `DeploymentPaused`).
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

/// Conditions for a SafeApp or SafeJob that cannot be applied at all (invalid spec,
/// conflict, a failed call): Stalled for a reason that needs a person, else Reconciling
/// (a transient failure is retried with backoff).
pub fn blocked_conditions(reason: &'static str, message: &str) -> Vec<Cond> {
    let retried = !c::STALL_REASONS.contains(&reason);
    vec![
        Cond::new(c::READY, false, reason, message),
        Cond::new(c::RECONCILING, retried, reason, message),
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
    type Status: Serialize + DeserializeOwned + PartialEq;
    /// Names its status writes in the metrics.
    const STATUS_LABEL: &'static str;
    /// The status it was read with.
    fn status(&self) -> Option<&Self::Status>;
    /// Its status, to replace (with a fresher one the operator wrote).
    fn status_mut(&mut self) -> &mut Option<Self::Status>;
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
    fn status_mut(&mut self) -> &mut Option<SafeAppStatus> {
        &mut self.status
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
    fn status_mut(&mut self) -> &mut Option<SafeJobStatus> {
        &mut self.status
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

/// The new status: `base` with the conditions, completed by the kstatus rules, merged
/// over the old ones.
pub fn build<K: Owner>(obj: &K, base: K::Status, wanted: &[Cond], now: &Time) -> K::Status {
    let generation = obj.meta().generation;
    let wanted = c::kstatus(wanted.to_vec());
    let conditions = c::merge(obj.conditions(), &wanted, generation, now);
    K::observed(base, generation, conditions)
}

/// Builds the new status of a SafeApp or SafeJob from `base` and `wanted`, and patches
/// it when it changed. Returns whether it wrote.
pub async fn write<K: Owner>(
    ctx: &super::Context,
    obj: &K,
    base: K::Status,
    wanted: &[Cond],
    now: &Time,
) -> Result<bool, Error> {
    let status = build(obj, base, wanted, now);
    let old = obj.status();
    if old == Some(&status) {
        return Ok(false);
    }
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let mut patch = serde_json::to_value(&status).map_err(|source| Error::Serialize {
        kind: K::STATUS_LABEL,
        source,
    })?;
    if let Some(old) = old {
        clear_dropped(&mut patch, &serde_json::to_value(old).unwrap_or_default());
    }
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": patch })),
        )
        .await
        .map_err(|source| Error::PatchStatus { source })?;
    ctx.metrics.write(K::STATUS_LABEL);
    ctx.statuses.wrote(&written);
    Ok(true)
}

/// The statuses the operator last wrote, with the resourceVersion each write produced:
/// read-your-writes over the controller's cache. A reconcile that starts before the
/// watch has brought back the operator's own last status patch (the children it just
/// created trigger one at once, and under load the SafeApp's watch event comes later)
/// would otherwise take the older status for the current one: see the spec as changed
/// and re-apply every child, patch the same status again, repeat the Events. An entry
/// goes as soon as the cache holds the write (or something newer).
#[derive(Default)]
pub struct Written {
    by_uid: Mutex<HashMap<String, (u64, serde_json::Value)>>,
}

impl Written {
    /// Records the status of `obj` as the API server returned it after a write.
    fn wrote<K: Owner>(&self, obj: &K) {
        let (Some(uid), Some(rv)) = (obj.meta().uid.clone(), resource_version(obj.meta())) else {
            return;
        };
        let Ok(status) = serde_json::to_value(obj.status()) else {
            return;
        };
        let mut map = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(uid, (rv, status));
    }

    /// `obj` with the status the operator last wrote, when the cache's copy is older than
    /// that write; `obj` as it is otherwise (and the record is forgotten).
    pub fn fresher<K: Owner>(&self, obj: &K) -> Option<K> {
        let uid = obj.meta().uid.as_deref()?;
        let mut map = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        let (rv, status) = map.get(uid)?;
        match resource_version(obj.meta()) {
            Some(seen) if seen < *rv => {
                let status = serde_json::from_value(status.clone()).ok()?;
                let mut fresh = obj.clone();
                *fresh.status_mut() = status;
                Some(fresh)
            }
            _ => {
                map.remove(uid);
                None
            }
        }
    }

    /// Forgets an object (deleted).
    pub fn forget(&self, uid: &str) {
        let mut map = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(uid);
    }
}

/// A resourceVersion as a number: the API server's are etcd revisions, which only grow.
/// None when it is not a number (the record is then never used).
pub fn resource_version(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
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
            get(&conds, c::RECONCILING).reason,
            c::REASON_ROLLOUT_IN_PROGRESS
        );
        assert!(get(&conds, c::RECONCILING).status);
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
            get(&conds, c::RECONCILING).reason,
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
        let conds = c::kstatus(rollout_conditions(Some(&d), &[]));
        let degraded = get(&conds, c::DEGRADED);
        assert!(degraded.status);
        // Past the deadline nothing changes by itself: Stalled, not Reconciling.
        assert!(get(&conds, c::STALLED).status);
        assert_eq!(
            get(&conds, c::STALLED).reason,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED
        );
        assert!(!get(&conds, c::RECONCILING).status);
        assert_eq!(degraded.reason, c::REASON_REPLICA_FAILURE);
        assert!(degraded.message.contains("exceeded quota"));
        assert_eq!(
            get(&conds, c::RECONCILING).reason,
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
