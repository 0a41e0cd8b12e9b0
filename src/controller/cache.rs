//! Reflector caches of every kind the operator writes, so a reconcile reads its children
//! from memory and a resync where nothing changed sends no request at all.
//!
//! - **What is cached**: Deployments, StatefulSets, Services, PDBs, HPAs, NetworkPolicies, Ingresses,
//!   CronJobs and Jobs (a SafeJob's runs included), and the shared LimitRanges and
//!   ResourceQuotas, all by the `app.kubernetes.io/managed-by=safeapp-operator` label, as
//!   [`Compact`] objects: typed metadata without `managedFields` (most of an object's
//!   size, only needed to name the writer of a drift) and the rest as JSON text. A
//!   SafeApp's children are looked up by namespace and name.
//! - **Names of everything**: beside them, a metadata-only cache of *every* object of
//!   those kinds in the watched namespaces (names and labels, no spec), so the operator
//!   knows without a request whether a name it is about to create is taken by someone
//!   else's object.
//! - **A cache is trusted only to say "nothing to do"**: when a cached child differs from
//!   its rendered state, or is missing while the name is taken, the apply step reads it
//!   once from the API before writing (`apply::converge`). That read confirms the drift
//!   (a cache a few milliseconds behind our own last write is not drift) and brings the
//!   managedFields that name who changed it.
//! - **Triggers that mean something**: an owned object's event requeues its SafeApp only
//!   when what the operator compares or reports changed ([`fingerprint`]): a status-only
//!   update of an HPA, PDB or ResourceQuota (usage) is absorbed; a Deployment's status
//!   counts, since it drives the SafeApp's conditions. Deletions always count.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::apply::Child;
use crate::api::gateway::HTTPRoute;

/// An object of kind K as a cache keeps it: its metadata typed (for the keys and the
/// ownerReferences that map it to its SafeApp), the rest as compact JSON text. A typed
/// k8s-openapi Deployment is several times the size of its JSON (every optional field of
/// every nested struct takes room), and the compare works on JSON anyway.
#[derive(Clone, Debug)]
pub struct Compact<K> {
    pub metadata: ObjectMeta,
    /// The object without `metadata`, as JSON.
    body: Arc<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(d)?;
        let meta = value
            .as_object_mut()
            .and_then(|m| m.remove("metadata"))
            .unwrap_or(Value::Null);
        let mut metadata: ObjectMeta =
            serde_json::from_value(meta).map_err(serde::de::Error::custom)?;
        // Most of a live object's size, and only needed to name a drift's author (read
        // from the API when a drift is found).
        metadata.managed_fields = None;
        Ok(Self {
            metadata,
            body: value.to_string().into(),
            kind: PhantomData,
        })
    }
}

impl<K> Compact<K> {
    /// The whole object as JSON.
    pub fn to_value(&self) -> Value {
        let mut value: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "metadata".into(),
                serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
            );
        }
        value
    }
}

/// The caches of one kind: the operator's objects (compact), every object's name, and
/// the operator's own writes the watch has not brought back yet.
#[derive(Clone)]
pub struct KindCache<K: Resource<DynamicType = ()> + Clone + 'static> {
    pub objects: Store<Compact<K>>,
    pub names: Store<PartialObjectMeta<K>>,
    own: OwnWrites<K>,
}

/// The operator's own last write of an object, kept until its watch event arrives:
/// read-your-writes over an eventually consistent cache (the "expectations" of
/// Kubernetes' own controllers). A reconcile that runs between an apply and its watch
/// event — the created children's events trigger one at once — would otherwise find the
/// child missing (and create it again, reporting it deleted) or older than what was
/// just written (and write it again).
enum OwnWrite<K> {
    /// Applied: the object as the API server returned it.
    Applied(Box<Compact<K>>),
    /// Deleted: the resourceVersion it had; cached copies up to it are gone.
    Deleted(u64),
}

impl<K> OwnWrite<K> {
    fn version(&self) -> u64 {
        match self {
            Self::Applied(o) => rv(&o.metadata).unwrap_or(0),
            Self::Deleted(v) => *v,
        }
    }
}

type OwnWrites<K> = Arc<Mutex<HashMap<(String, String), OwnWrite<K>>>>;

fn rv(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

fn key(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Forgets own writes the watch has now seen (this version or a later one).
fn caught_up<K>(own: &OwnWrites<K>, meta: &ObjectMeta, deleted: bool) {
    let mut map = own.lock().unwrap_or_else(|p| p.into_inner());
    let k = key(meta);
    let seen = rv(meta).unwrap_or(u64::MAX);
    if map.get(&k).is_some_and(|w| deleted || seen >= w.version()) {
        map.remove(&k);
    }
}

/// The caches of the kinds the operator writes.
#[derive(Clone)]
pub struct Caches {
    pub deployments: KindCache<Deployment>,
    pub stateful_sets: KindCache<StatefulSet>,
    pub services: KindCache<Service>,
    pub pdbs: KindCache<PodDisruptionBudget>,
    pub hpas: KindCache<HorizontalPodAutoscaler>,
    pub limit_ranges: KindCache<LimitRange>,
    pub quotas: KindCache<ResourceQuota>,
    pub network_policies: KindCache<NetworkPolicy>,
    pub ingresses: KindCache<Ingress>,
    pub cron_jobs: KindCache<CronJob>,
    /// One-off Jobs and the runs of CronJobs (their template carries the labels).
    pub jobs: KindCache<Job>,
    /// Which caches have listed, kept by [`Caches::track_readiness`].
    pub listed: tokio::sync::watch::Receiver<Listed>,
}

/// A kind the operator writes, and its cache in [`Caches`] if it has one. HTTPRoutes
/// have none: their CRD may not be installed, and a cache that never lists would hold
/// every reconcile back; they are read from the API (only for apps that use them).
pub trait Cached: Child + Send + Sync + 'static {
    fn cache(caches: &Caches) -> Option<&KindCache<Self>>;
}

macro_rules! cached {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl Cached for $kind {
            fn cache(caches: &Caches) -> Option<&KindCache<Self>> {
                Some(&caches.$field)
            }
        })*
    };
}

impl Cached for HTTPRoute {
    fn cache(_: &Caches) -> Option<&KindCache<Self>> {
        None
    }
}

impl Cached for crate::api::monitoring::PodMonitor {
    fn cache(_: &Caches) -> Option<&KindCache<Self>> {
        None
    }
}

cached!(
    Deployment => deployments,
    StatefulSet => stateful_sets,
    Service => services,
    PodDisruptionBudget => pdbs,
    HorizontalPodAutoscaler => hpas,
    LimitRange => limit_ranges,
    ResourceQuota => quotas,
    NetworkPolicy => network_policies,
    Ingress => ingresses,
    CronJob => cron_jobs,
    Job => jobs,
);

impl<K> KindCache<K>
where
    K: Child + Send + Sync + 'static,
{
    /// A cache of `api`'s objects matching `selector` (in full) and of every object's
    /// metadata, and the streams that keep them: the first yields the full objects whose
    /// [`fingerprint`] changed (and deleted ones), the second must be polled too.
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        selector: watcher::Config,
        with_status: bool,
    ) -> (
        Self,
        impl Stream<Item = Compact<K>> + Send + 'static,
        impl Stream<Item = ()> + Send + 'static,
    ) {
        let (objects, writer) = reflector::store();
        let (names, names_writer) = reflector::store();
        let (api, names_api) = match namespace {
            Some(ns) => (
                Api::<Compact<K>>::namespaced(client.clone(), ns),
                Api::<PartialObjectMeta<K>>::namespaced(client.clone(), ns),
            ),
            None => (
                Api::<Compact<K>>::all(client.clone()),
                Api::<PartialObjectMeta<K>>::all(client.clone()),
            ),
        };
        let own: OwnWrites<K> = Arc::default();
        let changes = watch(api, selector, writer, with_status, own.clone());
        let names_feed = watcher(names_api, watcher::Config::default())
            .backoff(super::backoff::WatchBackoff::default())
            // Only the name is needed: whether it is taken.
            .modify(|m: &mut PartialObjectMeta<K>| {
                let keep = ObjectMeta {
                    name: m.metadata.name.take(),
                    namespace: m.metadata.namespace.take(),
                    ..ObjectMeta::default()
                };
                m.metadata = keep;
            })
            .reflect(names_writer)
            .map(|_| ());
        (
            Self {
                objects,
                names,
                own,
            },
            changes,
            names_feed,
        )
    }
}

impl Caches {
    /// The cached object `ns/name` of kind K, as JSON; None when it is not there. The
    /// operator's own later write wins over a cached copy older than it.
    pub fn get<K: Cached>(&self, ns: &str, name: &str) -> Option<Value> {
        let cache = K::cache(self)?;
        let cached = cache.objects.get(&ObjectRef::new(name).within(ns));
        let own = cache.own.lock().unwrap_or_else(|p| p.into_inner());
        let older = |w: &OwnWrite<K>| {
            cached
                .as_ref()
                .is_none_or(|c| rv(&c.metadata).is_some_and(|v| v < w.version()))
        };
        match own.get(&(ns.to_string(), name.to_string())) {
            Some(w @ OwnWrite::Applied(o)) if older(w) => Some(o.to_value()),
            Some(w @ OwnWrite::Deleted(_)) if older(w) => None,
            _ => cached.map(|c| c.to_value()),
        }
    }

    /// Records the operator's own write of `obj` (as the API server returned it).
    pub fn wrote<K: Cached>(&self, obj: &Value) {
        let Some(cache) = K::cache(self) else { return };
        let Ok(compact) = serde_json::from_value::<Compact<K>>(obj.clone()) else {
            return;
        };
        let k = key(&compact.metadata);
        let mut own = cache.own.lock().unwrap_or_else(|p| p.into_inner());
        own.insert(k, OwnWrite::Applied(Box::new(compact)));
    }

    /// Records the operator's own delete of `obj` (its last known state).
    pub fn deleted<K: Cached>(&self, obj: &Value) {
        let Some(cache) = K::cache(self) else { return };
        let Ok(meta) = serde_json::from_value::<ObjectMeta>(obj["metadata"].clone()) else {
            return;
        };
        let Some(version) = rv(&meta) else { return };
        let mut own = cache.own.lock().unwrap_or_else(|p| p.into_inner());
        own.insert(key(&meta), OwnWrite::Deleted(version));
    }

    /// Whether any object of kind K is called `ns/name` (someone else's included).
    pub fn name_taken<K: Cached>(&self, ns: &str, name: &str) -> bool {
        K::cache(self).is_some_and(|c| c.names.get(&ObjectRef::new(name).within(ns)).is_some())
    }

    /// The cached Jobs of `ns` labelled `app.kubernetes.io/instance=instance`, as JSON.
    pub fn jobs_labelled(&self, ns: &str, instance: &str) -> Vec<Value> {
        self.jobs
            .objects
            .state()
            .iter()
            .filter(|j| {
                j.metadata.namespace.as_deref() == Some(ns)
                    && j.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(crate::render::labels::INSTANCE))
                        .is_some_and(|v| v == instance)
            })
            .map(|j| j.to_value())
            .collect()
    }

    /// Resolves once every cache `kind`'s reconciler reads has listed: a SafeApp's
    /// children and the shared objects, or a SafeJob's CronJobs and Jobs. One kind's
    /// caches that cannot list (a permission missing) do not hold the other kind back.
    ///
    /// Any number of reconciles may wait here at once: they wait on a watch channel that
    /// one task ([`Caches::track_readiness`]) keeps, never on the stores' own readiness
    /// futures, which keep a single waker — with concurrent waiters all but one slept
    /// until their timeout (a new leader's reconciles stood still for 30 s each).
    pub async fn wait_until_ready(&self, kind: crate::api::WorkloadKind) {
        let mut listed = self.listed.clone();
        let _ = listed
            .wait_for(|l| match kind {
                crate::api::WorkloadKind::SafeApp => l.apps,
                crate::api::WorkloadKind::SafeJob => l.jobs,
            })
            .await;
    }

    /// Follows the stores' first lists (polling, so no waker is shared) and tells
    /// [`Caches::wait_until_ready`]. Runs until both kinds' caches have listed.
    pub async fn track_readiness(&self, tell: tokio::sync::watch::Sender<Listed>) {
        async fn listed<K: Cached>(c: &KindCache<K>) -> bool {
            use futures::FutureExt;
            c.objects.wait_until_ready().now_or_never().is_some()
                && c.names.wait_until_ready().now_or_never().is_some()
        }
        loop {
            let apps = listed(&self.deployments).await
                && listed(&self.stateful_sets).await
                && listed(&self.services).await
                && listed(&self.pdbs).await
                && listed(&self.hpas).await
                && listed(&self.limit_ranges).await
                && listed(&self.quotas).await
                && listed(&self.network_policies).await
                && listed(&self.ingresses).await;
            let jobs = listed(&self.cron_jobs).await && listed(&self.jobs).await;
            tell.send_if_modified(|l| {
                let changed = l.apps != apps || l.jobs != jobs;
                *l = Listed { apps, jobs };
                changed
            });
            if apps && jobs {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Which reconcilers' caches have listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub apps: bool,
    pub jobs: bool,
}

/// What the operator compares or reports of an object, hashed: its spec (or whole body
/// for kinds without one), labels, annotations, ownerReferences and deletion mark, and
/// its status only when `with_status`. `managedFields`, `resourceVersion` and the like
/// are left out, so a no-op write of someone else's triggers nothing.
pub fn fingerprint<K>(obj: &Compact<K>, with_status: bool) -> u64 {
    let mut v = obj.to_value();
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
fn watch<K>(
    api: Api<Compact<K>>,
    config: watcher::Config,
    writer: Writer<Compact<K>>,
    with_status: bool,
    own: OwnWrites<K>,
) -> impl Stream<Item = Compact<K>> + Send
where
    K: Child + Send + Sync + 'static,
{
    let mut seen: HashMap<ObjectRef<Compact<K>>, u64> = HashMap::new();
    watcher(api, config)
        .backoff(super::backoff::WatchBackoff::default())
        .reflect(writer)
        .filter_map(move |event| {
            let out = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    caught_up(&own, &o.metadata, false);
                    let print = fingerprint(&o, with_status);
                    (seen.insert(ObjectRef::from_obj(&o), print) != Some(print)).then_some(o)
                }
                Ok(watcher::Event::Delete(o)) => {
                    caught_up(&own, &o.metadata, true);
                    seen.remove(&ObjectRef::from_obj(&o));
                    Some(o)
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => None,
            };
            future::ready(out)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn live() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                            "labels": {"app.kubernetes.io/name": "web"},
                            "ownerReferences": [{"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp",
                                                 "name": "web", "uid": "a1", "controller": true}],
                            "managedFields": [{"manager": "kubectl-edit", "operation": "Update"}]},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "a:1"}]}}},
               "status": {"replicas": 2}})
    }

    // A compact object gives back the whole object but its managedFields.
    #[test]
    fn compact_round_trip() {
        let c: Compact<Deployment> = serde_json::from_value(live()).expect("compact");
        let mut want = live();
        want["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(c.to_value(), want);
        assert_eq!(c.meta().owner_references.as_ref().unwrap()[0].uid, "a1");
    }

    // Status and managedFields changes leave the fingerprint alone (unless the status
    // counts); spec and label changes do not.
    #[test]
    fn fingerprint_sees_what_counts() {
        let base: Compact<Deployment> = serde_json::from_value(live()).unwrap();
        let mut v = live();
        v["status"]["replicas"] = json!(3);
        v["metadata"]["resourceVersion"] = json!("99");
        let status_only: Compact<Deployment> = serde_json::from_value(v).unwrap();
        assert_eq!(fingerprint(&base, false), fingerprint(&status_only, false));
        assert_ne!(fingerprint(&base, true), fingerprint(&status_only, true));
        let mut v = live();
        v["spec"]["replicas"] = json!(5);
        let spec: Compact<Deployment> = serde_json::from_value(v).unwrap();
        assert_ne!(fingerprint(&base, false), fingerprint(&spec, false));
        let mut v = live();
        v["metadata"]["labels"]["tier"] = json!("x");
        let labels: Compact<Deployment> = serde_json::from_value(v).unwrap();
        assert_ne!(fingerprint(&base, false), fingerprint(&labels, false));
    }
}
