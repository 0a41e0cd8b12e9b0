//! The namespace reconciler: the LimitRange `safeapp-limits` and the ResourceQuota
//! `safeapp-quota` that every SafeApp of a namespace shares, kept beside the per-app
//! reconciler instead of inside it.
//!
//! - **Keyed by namespace.** The app reconciler only records that an app lives in a
//!   namespace ([`Namespaces::observe`], O(1)); a namespace is synced when its set of
//!   SafeApps changes, when one of its shared objects changes (watched), and on the
//!   resync. So converging N new apps in a namespace writes its LimitRange once, not N
//!   times, and a failure here never stops an app's own children.
//! - **Ownership and garbage collection.** The shared objects carry non-controller
//!   ownerReferences to SafeApps of the namespace, so Kubernetes' garbage collector deletes
//!   them with the last one. The operator only *adds* references (up to
//!   [`MAX_SHARED_OWNERS`]); it never removes one: the garbage collector drops the
//!   reference of a deleted SafeApp itself. Two shards (`--selector`) therefore never
//!   undo each other's references, and a namespace with thousands of SafeApps does not
//!   grow an object towards etcd's 1.5 MiB limit: once the cap is reached a new app adds
//!   nothing, and when referenced apps are deleted the next sync tops the list up from
//!   the others. Should every referenced app go at once, the garbage collector deletes
//!   the object and the next sync (triggered by the watch) recreates it.
//! - **Bookkeeping is not drift.** Adding a reference is the operator's own change: no
//!   Event. A change someone else made to the spec is put back with a `DriftCorrected`
//!   Event on the shared object and the drift metric.
//! - **Someone else's object.** A `safeapp-limits` not labelled as ours is left alone and
//!   reported once per namespace (a Warning Event on that object); the apps of the
//!   namespace still get their own children.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use tokio::sync::Notify;
use tracing::{info, instrument, warn};

use crate::api::{LIMIT_RANGE_NAME, RESOURCE_QUOTA_NAME, SafeApp, SafeJob, WorkloadKind};
use crate::controller::apply::{self, Change, Ownership, SyncCtx};
use crate::controller::cache::Cached;
use crate::controller::events::{self, EventType};
use crate::controller::{Context, Error};
use crate::render;

/// At most this many SafeApps and SafeJobs are referenced as owners of a shared object.
pub const MAX_SHARED_OWNERS: usize = 100;

/// A SafeApp or SafeJob of a namespace: kind, name, uid.
pub type Member = (WorkloadKind, String, String);

#[derive(Default)]
struct Inner {
    /// namespace → (kind, name) → uid, as the app and job reconcilers saw them.
    members: HashMap<String, BTreeMap<(WorkloadKind, String), String>>,
    /// Namespaces waiting for a sync.
    dirty: BTreeSet<String>,
    /// (namespace, kind) of foreign shared objects already reported.
    reported: HashSet<(String, &'static str)>,
    /// The last sync failure reported per namespace.
    failures: HashMap<String, String>,
}

/// The SafeApps known per namespace, and the namespaces that need a sync.
#[derive(Default)]
pub struct Namespaces {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Namespaces {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the SafeApp or SafeJob `name` (`uid`) lives in `ns`; a new member
    /// marks the namespace for a sync.
    pub fn observe(&self, ns: &str, kind: WorkloadKind, name: &str, uid: &str) {
        let mut inner = self.lock();
        let members = inner.members.entry(ns.to_string()).or_default();
        let key = (kind, name.to_string());
        if members.get(&key).map(String::as_str) != Some(uid) {
            members.insert(key, uid.to_string());
            inner.dirty.insert(ns.to_string());
            drop(inner);
            self.changed.notify_one();
        }
    }

    /// Marks `ns` for a sync (a shared object changed, or the resync).
    pub fn mark(&self, ns: &str) {
        self.lock().dirty.insert(ns.to_string());
        self.changed.notify_one();
    }

    /// Marks every known namespace for a sync.
    pub fn mark_all(&self) {
        let mut inner = self.lock();
        let all: Vec<String> = inner.members.keys().cloned().collect();
        inner.dirty.extend(all);
        drop(inner);
        self.changed.notify_one();
    }

    /// The namespaces waiting for a sync; they are no longer waiting.
    pub fn take_dirty(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().dirty).into_iter().collect()
    }

    /// Resolves when a namespace was marked since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn members(&self, ns: &str) -> Vec<Member> {
        self.lock()
            .members
            .get(ns)
            .map(|m| {
                m.iter()
                    .map(|((k, n), u)| (*k, n.clone(), u.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn forget(&self, ns: &str, kind: WorkloadKind, name: &str) {
        if let Some(m) = self.lock().members.get_mut(ns) {
            m.remove(&(kind, name.to_string()));
        }
    }

    /// Records the outcome of a sync; true when it is a failure not reported yet.
    fn failure_is_new(&self, ns: &str, failure: Option<String>) -> bool {
        let mut inner = self.lock();
        match failure {
            None => {
                inner.failures.remove(ns);
                false
            }
            Some(message) => {
                inner.failures.insert(ns.to_string(), message.clone()) != Some(message)
            }
        }
    }

    /// True the first time a foreign object is reported for (ns, kind).
    fn first_report(&self, ns: &str, kind: &'static str) -> bool {
        self.lock().reported.insert((ns.to_string(), kind))
    }
}

/// The owners a shared object should carry: the SafeApps and SafeJobs it references now
/// (the garbage collector removes deleted ones) plus known members, up to
/// [`MAX_SHARED_OWNERS`], sorted by kind and name. Pure.
pub fn shared_owners(live: Option<&Value>, members: &[Member]) -> Vec<OwnerReference> {
    let mut owners: BTreeMap<(String, String), OwnerReference> = live
        .and_then(|l| l["metadata"]["ownerReferences"].as_array())
        .into_iter()
        .flatten()
        .filter(|r| {
            (r["kind"] == "SafeApp" || r["kind"] == "SafeJob")
                && r["apiVersion"] == "safeapp.dev/v1alpha1"
        })
        .filter_map(|r| serde_json::from_value::<OwnerReference>(r.clone()).ok())
        .map(|r| ((r.kind.clone(), r.name.clone()), r))
        .collect();
    for (kind, name, uid) in members {
        if owners.len() >= MAX_SHARED_OWNERS {
            break;
        }
        owners
            .entry((kind.as_str().to_string(), name.clone()))
            .or_insert_with(|| shared_owner(*kind, name, uid));
    }
    owners.into_values().collect()
}

/// The non-controller ownerReference of a shared object to one SafeApp or SafeJob.
pub fn shared_owner(kind: WorkloadKind, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: kind.api_version().into(),
        kind: kind.as_str().into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(false),
        block_owner_deletion: None,
    }
}

/// Members that still exist, according to the controllers' SafeApp and SafeJob caches
/// (all of them when there is none, as in tests that drive the reconcilers directly).
fn live_members(ns: &str, ctx: &Context) -> Vec<Member> {
    use kube::core::DeserializeGuard;
    ctx.namespaces
        .members(ns)
        .into_iter()
        .filter(|(kind, name, uid)| {
            let uid_now = match kind {
                WorkloadKind::SafeApp => match &ctx.safeapps {
                    Some(store) => store
                        .get(&ObjectRef::<DeserializeGuard<SafeApp>>::new(name).within(ns))
                        .and_then(|g| g.uid()),
                    None => return true,
                },
                WorkloadKind::SafeJob => match &ctx.safejobs {
                    Some(store) => store
                        .get(&ObjectRef::<DeserializeGuard<SafeJob>>::new(name).within(ns))
                        .and_then(|g| g.uid()),
                    None => return true,
                },
            };
            let exists = uid_now.as_deref() == Some(uid.as_str());
            if !exists {
                ctx.namespaces.forget(ns, *kind, name);
            }
            exists
        })
        .collect()
}

fn reference(kind: &str, ns: &str, name: &str, live: Option<&Value>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some(ns.into()),
        uid: live.and_then(|l| l["metadata"]["uid"].as_str().map(str::to_string)),
        ..ObjectReference::default()
    }
}

/// Brings the shared objects of `ns` to their rendered state.
#[instrument(skip_all, fields(namespace = ns))]
pub async fn reconcile_namespace(ns: &str, ctx: &Context) -> Result<(), Error> {
    if ctx.policy.guardrails.denies_namespace(ns) {
        // The operator never acts there (its apps report NamespaceNotAllowed).
        return Ok(());
    }
    let members = live_members(ns, ctx);
    if members.is_empty() {
        // Nothing to own them: the garbage collector removes them with the last app.
        return Ok(());
    }
    let caches = ctx.ready_caches(crate::api::WorkloadKind::SafeApp).await;
    let sync = SyncCtx::new(ctx, ns, caches);
    let (limit_range, quota) = render::namespace_objects(ns, &ctx.policy);

    sync_shared(
        ctx,
        &sync,
        "LimitRange",
        LIMIT_RANGE_NAME,
        Some(limit_range),
        &members,
    )
    .await?;
    sync_shared(
        ctx,
        &sync,
        "ResourceQuota",
        RESOURCE_QUOTA_NAME,
        quota,
        &members,
    )
    .await?;
    Ok(())
}

/// Brings one shared object (None: must not exist) to its rendered state, with the
/// owners it should carry.
async fn sync_shared<K: Cached>(
    ctx: &Context,
    sync: &SyncCtx<'_>,
    kind: &'static str,
    name: &str,
    mut desired: Option<K>,
    members: &[Member],
) -> Result<(), Error> {
    let live = apply::read::<K>(sync, kind, name).await?;
    if let Some(obj) = desired.as_mut() {
        obj.meta_mut().owner_references = Some(shared_owners(live.as_ref(), members));
    }
    let synced = apply::converge::<K>(
        sync,
        kind,
        name,
        desired.as_ref(),
        Ownership::Shared,
        live.clone(),
    )
    .await?;
    report(
        ctx,
        sync.namespace,
        kind,
        name,
        live.as_ref(),
        &synced.change,
    )
    .await;
    Ok(())
}

/// Events and metrics for one shared object: drift someone else made, a foreign object
/// (once). Adding owners is bookkeeping and says nothing.
async fn report(
    ctx: &Context,
    ns: &str,
    kind: &'static str,
    name: &str,
    live: Option<&Value>,
    change: &Change,
) {
    let regarding = || reference(kind, ns, name, live);
    match change {
        Change::DriftCorrected { fields, managers } => {
            let own = fields.iter().all(|f| f == "metadata.ownerReferences");
            if own {
                return;
            }
            let fields: Vec<&str> = fields
                .iter()
                .map(String::as_str)
                .filter(|f| *f != "metadata.ownerReferences")
                .collect();
            ctx.metrics.drift(kind);
            info!(kind, name, ?fields, "Drift corrected");
            let note = format!(
                "{kind} {name}: {} changed by {}; restored",
                fields.join(", "),
                managers.join(", ")
            );
            ctx.recorder
                .publish(
                    &regarding(),
                    EventType::Normal,
                    events::DRIFT_CORRECTED,
                    note,
                )
                .await;
        }
        Change::Conflict { reason } if ctx.namespaces.first_report(ns, kind) => {
            info!(
                kind,
                name, "Shared object belongs to someone else: left alone"
            );
            let note = format!(
                "{reason}; the SafeApps of this namespace get their own objects, but the operator leaves this {kind} alone"
            );
            ctx.recorder
                .publish(
                    &regarding(),
                    EventType::Warning,
                    events::NAME_CONFLICT,
                    note,
                )
                .await;
        }
        _ => {}
    }
}

/// How long the namespace reconciler waits for more changes before a sync, so a burst
/// (the first list of N SafeApps, a mass apply) costs one write per namespace.
pub const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs the namespace reconciler until dropped: it syncs the namespaces the app
/// reconciler marked, those whose shared objects changed (`triggers`, from their cached
/// watches), and
/// every known namespace once per resync period. A failed sync is retried with backoff.
pub async fn run(ctx: Arc<Context>, triggers: impl Stream<Item = Option<String>>) {
    let mut triggers = std::pin::pin!(triggers);
    let mut resync = tokio::time::interval(ctx.resync);
    resync.tick().await;
    loop {
        tokio::select! {
            Some(ns) = triggers.next() => {
                if let Some(ns) = ns {
                    ctx.namespaces.mark(&ns);
                }
            }
            () = ctx.namespaces.changed() => {
                tokio::time::sleep(DEBOUNCE).await;
                for ns in ctx.namespaces.take_dirty() {
                    sync_with_retry(&ctx, &ns).await;
                }
            }
            _ = resync.tick() => ctx.namespaces.mark_all(),
        }
    }
}

async fn sync_with_retry(ctx: &Arc<Context>, ns: &str) {
    let key = format!("namespace/{ns}");
    match reconcile_namespace(ns, ctx).await {
        Ok(()) => {
            ctx.reset_backoff(&key);
            ctx.namespaces.failure_is_new(ns, None);
        }
        Err(e) => {
            if ctx.namespaces.failure_is_new(ns, Some(e.summary())) {
                // No SafeApp's status carries it (the apps are fine): an Event on the
                // shared object, once per new failure.
                let kind = e.kind().unwrap_or("LimitRange");
                let name = if kind == "ResourceQuota" {
                    RESOURCE_QUOTA_NAME
                } else {
                    LIMIT_RANGE_NAME
                };
                ctx.recorder
                    .publish(
                        &reference(kind, ns, name, None),
                        EventType::Warning,
                        events::APPLY_FAILED,
                        e.summary(),
                    )
                    .await;
            }
            ctx.metrics
                .reconcile_errors
                .get_or_create(&[("reason", e.metric_reason())])
                .inc();
            let delay = ctx.next_backoff(&key);
            warn!(namespace = ns, error = %e, ?delay, "Namespace sync failed");
            let ctx = ctx.clone();
            let ns = ns.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                ctx.namespaces.mark(&ns);
            });
        }
    }
}
