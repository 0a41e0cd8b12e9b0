//! Status, for SafeApps and SafeJobs alike ([`Owner`]): the conditions every failure
//! gives, and the status patch, made only when something changed (with the last one
//! written kept until the watch brings it back: [`Written`]).

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
