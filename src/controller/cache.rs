//! Reflector caches of every kind the operator writes, so a reconcile reads its children
//! from memory and a resync where nothing changed sends no request at all.
//!
//! - **What is cached**: Deployments, Services, PDBs, HPAs, and the shared LimitRanges and
//!   ResourceQuotas, all by the `app.kubernetes.io/managed-by=safeapp-operator` label, with
//!   `managedFields` stripped (they are most of an object's size and only needed to name
//!   the writer of a drift). A SafeApp's children are looked up by namespace and name.
//! - **A cache is trusted only to say "nothing to do"**: when a cached child differs from
//!   its rendered state, or is missing while it should exist, the apply step reads it
//!   once from the API before writing (`apply::converge`). That read confirms the drift
//!   (a cache a few milliseconds behind our own last write is not drift) and brings the
//!   managedFields that name who changed it.
//! - **Triggers that mean something**: an owned object's event requeues its SafeApp only
//!   when what the operator compares or reports changed ([`fingerprint`]): a status-only
//!   update of an HPA, PDB or ResourceQuota (usage) is absorbed; a Deployment's status
//!   counts, since it drives the SafeApp's conditions. Deletions always count.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::Value;

use super::apply::Child;

/// The caches of the kinds the operator writes.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub limit_ranges: Store<LimitRange>,
    pub quotas: Store<ResourceQuota>,
}

/// A kind with a cache in [`Caches`].
pub trait Cached: Child + Send + Sync + 'static {
    fn store(caches: &Caches) -> &Store<Self>;
}

macro_rules! cached {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl Cached for $kind {
            fn store(caches: &Caches) -> &Store<Self> {
                &caches.$field
            }
        })*
    };
}

cached!(
    Deployment => deployments,
    Service => services,
    PodDisruptionBudget => pdbs,
    HorizontalPodAutoscaler => hpas,
    LimitRange => limit_ranges,
    ResourceQuota => quotas,
);

impl Caches {
    /// The cached object `ns/name` of kind K, as JSON; None when it is not there.
    pub fn get<K: Cached>(&self, ns: &str, name: &str) -> Option<Value> {
        let obj = K::store(self).get(&ObjectRef::new(name).within(ns))?;
        serde_json::to_value(obj.as_ref()).ok()
    }

    /// Whether every cache has listed once.
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pdbs.wait_until_ready(),
            self.hpas.wait_until_ready(),
            self.limit_ranges.wait_until_ready(),
            self.quotas.wait_until_ready(),
        );
    }
}

/// What the operator compares or reports of an object, hashed: its spec (or whole body
/// for kinds without one), labels, annotations, ownerReferences and deletion mark, and
/// its status only when `with_status`. `managedFields`, `resourceVersion` and the like
/// are left out, so a no-op write of someone else's triggers nothing.
pub fn fingerprint<K: Serialize>(obj: &K, with_status: bool) -> u64 {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "labels" | "annotations" | "ownerReferences" | "deletionTimestamp"
                )
            });
        }
        if !with_status {
            map.remove("status");
        }
    }
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// A watch of `api` (objects matching `config`) that keeps `writer`'s cache, with
/// managedFields stripped, and yields the objects whose [`fingerprint`] changed, and the
/// deleted ones.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    with_status: bool,
) -> impl Stream<Item = K> + Send
where
    K: Child + Send + Sync + 'static,
{
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    watcher(api, config)
        .default_backoff()
        .modify(|o: &mut K| o.managed_fields_mut().clear())
        .reflect(writer)
        .filter_map(move |event| {
            let out = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let print = fingerprint(&o, with_status);
                    (seen.insert(ObjectRef::from_obj(&o), print) != Some(print)).then_some(o)
                }
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&ObjectRef::from_obj(&o));
                    Some(o)
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => None,
            };
            future::ready(out)
        })
}
