//! The one helper that makes every child's metadata, so no builder forgets a label,
//! the namespace or the ownerReference.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::labels;
use crate::validate::ValidatedPod;

/// Metadata of an object named after its SafeApp or SafeJob, controlled by it.
pub fn child_meta(app: &ValidatedPod) -> ObjectMeta {
    ObjectMeta {
        name: Some(app.name.clone()),
        namespace: app.namespace.clone(),
        labels: Some(labels::labels(app)),
        annotations: non_empty(labels::annotations(app)),
        owner_references: owner_reference(app, true).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// The ownerReference to the SafeApp or SafeJob. Only a SafeApp read from the API server has a
/// uid; `render` of a file has none, and then no ownerReference is emitted (one with an
/// empty uid would be refused by the API server).
pub fn owner_reference(app: &ValidatedPod, controller: bool) -> Option<OwnerReference> {
    let uid = app.uid.clone().filter(|u| !u.is_empty())?;
    Some(OwnerReference {
        api_version: app.kind.api_version().into(),
        kind: app.kind.as_str().into(),
        name: app.name.clone(),
        uid,
        controller: Some(controller),
        block_owner_deletion: None,
    })
}

pub fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}
