//! The only module that writes children: compare each rendered object with the live one,
//! then server-side apply it (field manager `safeapp-operator`, force) only when something
//! differs, delete what the spec no longer asks for, and never touch an object this
//! SafeApp does not own.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::info;

use super::Error;
use super::cache::{Cached, Caches};
use super::{allows, drift};
use crate::api::{FIELD_MANAGER, MANAGED_BY};
use crate::metrics::Metrics;
use crate::render::labels::MANAGED_BY_LABEL;

/// Who may be written: the SafeApp's own children carry its controller ownerReference;
/// the namespace-shared LimitRange and ResourceQuota carry the managed-by label.
#[derive(Clone, Copy, Debug)]
pub enum Ownership<'a> {
    Controller { uid: &'a str },
    Shared,
}

/// What happened to one child.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Live and rendered agree; nothing was written.
    Unchanged,
    /// Not there before; created.
    Created,
    /// The SafeApp changed; the child was re-applied.
    Updated,
    /// Someone changed the child while the SafeApp did not: put back.
    DriftCorrected {
        fields: Vec<String>,
        managers: Vec<String>,
    },
    /// Someone deleted the child while the SafeApp did not change: recreated.
    Recreated,
    /// No longer asked for by the spec: deleted.
    Pruned,
    /// Not asked for and not there.
    Absent,
    /// An object with this name exists and is not this SafeApp's: left alone.
    Conflict { reason: String },
    /// It could not be read or written (the failure is reported in status).
    Failed,
}

/// The outcome for one child, and the live object after the sync (None when absent).
pub struct Synced<K> {
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
    live: Option<Live<K>>,
}

/// A live object as the API returned it: typed after a write, raw JSON after a read
/// (most children are only compared, never needed typed, so they are not parsed twice).
enum Live<K> {
    Typed(K),
    Raw(Value),
}

impl<K: DeserializeOwned> Synced<K> {
    /// The live object, typed (parsed on demand).
    pub fn live(self) -> Option<K> {
        match self.live? {
            Live::Typed(k) => Some(k),
            Live::Raw(v) => serde_json::from_value(v).ok(),
        }
    }
}

/// What differs between a rendered child and the live one: the fields it renders that
/// are missing or changed, and the entries that would let more through (`allows.rs`).
/// An HTTPRoute's backend weights are a canary step's, not compared (`canary.rs`).
fn drifted(kind: &str, want: &Value, live: &Value) -> Vec<drift::Difference> {
    let unweighted;
    let want = if kind == "HTTPRoute" {
        unweighted = drift::without_route_weights(want);
        &unweighted
    } else {
        want
    };
    let mut diffs = drift::differences(want, live);
    for extra in allows::extras(kind, want, live) {
        if !diffs.iter().any(|d| d.path == extra.path) {
            diffs.push(extra);
        }
    }
    diffs
}

/// GET as raw JSON; None when it does not exist.
async fn get_raw<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    let request = kube::core::Request::new(K::url_path(&(), Some(namespace)))
        .get(name, &kube::api::GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    match client.request::<Value>(request).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `live` (raw JSON) belongs to `ownership`.
pub(crate) fn raw_owned(live: &Value, ownership: Ownership<'_>) -> bool {
    let meta = &live["metadata"];
    match ownership {
        Ownership::Controller { uid } => meta["ownerReferences"].as_array().is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["uid"] == uid)
        }),
        Ownership::Shared => meta["labels"][MANAGED_BY_LABEL] == MANAGED_BY,
    }
}

fn raw_managed_fields(live: &Value) -> Option<Vec<ManagedFieldsEntry>> {
    serde_json::from_value(live["metadata"]["managedFields"].clone()).ok()
}

/// What the sync of a child needs to know about its SafeApp.
pub struct SyncCtx<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    /// The SafeApp's generation differs from the one last observed: re-apply everything.
    pub spec_changed: bool,
    /// What differs is the operator's own change (a staged template upgrade): applied
    /// as an update, never reported as someone's drift.
    pub own_change: bool,
    /// `kind/name` of the objects the last status listed as managed.
    pub previously_managed: &'a [String],
    pub metrics: &'a Metrics,
    /// The controller's caches; None in tests that drive the reconcilers directly, which
    /// then read from the API.
    pub caches: Option<&'a Caches>,
}

impl<'a> SyncCtx<'a> {
    /// The sync of children in `namespace` with `ctx`'s client and metrics, read from
    /// `caches`: no spec change, nothing listed as managed before (a reconciler that
    /// knows better sets those).
    pub fn new(ctx: &'a super::Context, namespace: &'a str, caches: Option<&'a Caches>) -> Self {
        Self {
            client: &ctx.client,
            namespace,
            spec_changed: false,
            own_change: false,
            previously_managed: &[],
            metrics: &ctx.metrics,
            caches,
        }
    }

    /// The caches, when kind K is read from them (and so must be confirmed before a
    /// write); None when K has no cache or there are no caches.
    fn caches_for<K: Cached>(&self) -> Option<&'a Caches> {
        self.caches.filter(|c| K::cache(c).is_some())
    }
}

/// Field manager that keeps `spec.replicas` while the HPA takes it over.
pub const HANDOVER_MANAGER: &str = "safeapp-operator-handover";

/// Before the first apply without `spec.replicas` (autoscaling just turned on), another
/// field manager applies the current value. Otherwise server-side apply would delete the
/// field the operator stops owning, the Deployment would default to 1 replica, and the
/// app would drop to one pod until the HPA scales it back up. Returns whether it wrote.
pub async fn hand_over_replicas(ctx: &SyncCtx<'_>, name: &str) -> Result<bool, Error> {
    use k8s_openapi::api::apps::v1::Deployment;
    // From the API, not a cache: the managedFields say who owns spec.replicas.
    let live = fetch::<Deployment>(ctx, "Deployment", name).await?;
    let Some(live) = live.as_ref() else {
        return Ok(false);
    };
    let Some(replicas) = live["spec"]["replicas"].as_i64() else {
        return Ok(false);
    };
    let we_own_replicas = raw_managed_fields(live).into_iter().flatten().any(|e| {
        e.manager.as_deref() == Some(FIELD_MANAGER)
            && e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    });
    if !we_own_replicas {
        return Ok(false);
    }
    let handover = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ctx.namespace},
        "spec": {"replicas": replicas},
    });
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ctx.namespace);
    api.patch(
        name,
        &PatchParams::apply(HANDOVER_MANAGER),
        &Patch::Apply(handover),
    )
    .await
    .map_err(|source| Error::ApplyChild {
        kind: "Deployment",
        name: name.into(),
        source,
    })?;
    ctx.metrics.write("Deployment");
    info!(name, replicas, "Handed spec.replicas over to the HPA");
    Ok(true)
}

/// Reads one child as raw JSON, from the cache when there is one; None when it does not
/// exist.
pub async fn read<K: Cached>(
    ctx: &SyncCtx<'_>,
    kind: &'static str,
    name: &str,
) -> Result<Option<Value>, Error> {
    if let Some(caches) = ctx.caches_for::<K>() {
        return Ok(caches.get::<K>(ctx.namespace, name));
    }
    fetch::<K>(ctx, kind, name).await
}

/// Reads one child as raw JSON from the API, whatever the caches say.
async fn fetch<K>(ctx: &SyncCtx<'_>, kind: &'static str, name: &str) -> Result<Option<Value>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    get_raw::<K>(ctx.client, ctx.namespace, name)
        .await
        .map_err(|source| Error::GetChild {
            kind,
            name: name.into(),
            source,
        })
}

/// A namespaced kind the operator writes.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
{
}

impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
{
}

/// Brings one child to its rendered state. `desired` None means "must not exist".
pub async fn sync<K: Cached>(
    ctx: &SyncCtx<'_>,
    kind: &'static str,
    name: &str,
    desired: Option<&K>,
    ownership: Ownership<'_>,
) -> Result<Synced<K>, Error> {
    let existing = read::<K>(ctx, kind, name).await?;
    converge(ctx, kind, name, desired, ownership, existing).await
}

/// Brings one child, whose live state is `existing`, to its rendered state.
pub async fn converge<K: Cached>(
    ctx: &SyncCtx<'_>,
    kind: &'static str,
    name: &str,
    desired: Option<&K>,
    ownership: Ownership<'_>,
    existing: Option<Value>,
) -> Result<Synced<K>, Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ctx.namespace);
    let done = |change, live| Synced {
        kind,
        name: name.into(),
        change,
        live,
    };
    let want = desired
        .map(serde_json::to_value)
        .transpose()
        .map_err(|source| Error::Serialize { kind, source })?;
    // A cache is trusted only to say "nothing to do": anything else is confirmed with
    // one read from the API (a cache behind our own last write is not drift), which also
    // brings the managedFields the cache strips. An object the cache lacks is looked up
    // before it is created when the name is taken (the metadata cache knows every name):
    // the full cache holds only objects labelled as ours, and one of the same name made
    // by someone else must not be overwritten.
    let mut existing = existing;
    if let Some(caches) = ctx.caches_for::<K>() {
        let confirm = match (&existing, &want) {
            (None, Some(_)) => caches.name_taken::<K>(ctx.namespace, name),
            (Some(live), Some(want)) => !ctx.spec_changed && !drifted(kind, want, live).is_empty(),
            _ => false,
        };
        if confirm {
            existing = fetch::<K>(ctx, kind, name).await?;
        }
    }
    if let Some(live) = &existing
        && !raw_owned(live, ownership)
    {
        // Not wanted and not ours: nothing to prune, and nothing to report.
        if desired.is_none() {
            return Ok(done(Change::Absent, None));
        }
        let reason = match ownership {
            Ownership::Controller { .. } => {
                format!("{kind} {name} exists and is not controlled by this SafeApp")
            }
            Ownership::Shared => format!("{kind} {name} exists and is not managed by {MANAGED_BY}"),
        };
        return Ok(done(Change::Conflict { reason }, None));
    }
    let (Some(desired), Some(want)) = (desired, want) else {
        if existing.is_none() {
            return Ok(done(Change::Absent, None));
        }
        // Background: the object's own dependents go too (a batch/v1 Job's default is
        // to orphan its pods).
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {
                if let (Some(caches), Some(gone)) = (ctx.caches_for::<K>(), &existing) {
                    caches.deleted::<K>(gone);
                }
            }
            // Already gone (a cache a moment behind).
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(done(Change::Absent, None)),
            Err(source) => {
                return Err(Error::DeleteChild {
                    kind,
                    name: name.into(),
                    source,
                });
            }
        }
        ctx.metrics.write(kind);
        info!(kind, name, "Pruned");
        return Ok(done(Change::Pruned, None));
    };

    let change = match &existing {
        None if !ctx.spec_changed && ctx.previously_managed.contains(&format!("{kind}/{name}")) => {
            Change::Recreated
        }
        None => Change::Created,
        Some(live) => {
            let diffs = drifted(kind, &want, live);
            match (diffs.is_empty(), ctx.spec_changed) {
                (true, false) => return Ok(done(Change::Unchanged, existing.map(Live::Raw))),
                (_, true) => Change::Updated,
                (false, false) if ctx.own_change => Change::Updated,
                (false, false) => Change::DriftCorrected {
                    managers: drift::managers_of(raw_managed_fields(live).as_ref(), &diffs),
                    fields: diffs.into_iter().map(|d| d.path).collect(),
                },
            }
        }
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = |source| Error::ApplyChild {
        kind,
        name: name.into(),
        source,
    };
    let mut live = api
        .patch(name, &params, &Patch::Apply(desired))
        .await
        .map_err(applied)?;
    ctx.metrics.write(kind);
    // What the apply cannot take back: entries another manager added to a field the
    // operator leaves out or owns only in part (`allows.rs`). A merge patch replaces them
    // with the rendered value.
    let after = serde_json::to_value(&live).map_err(|source| Error::Serialize { kind, source })?;
    if let Some(patch) = allows::restore_patch(kind, &want, &after) {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        live = api
            .patch(name, &params, &Patch::Merge(patch))
            .await
            .map_err(applied)?;
        ctx.metrics.write(kind);
    }
    if let Some(caches) = ctx.caches_for::<K>() {
        caches.wrote::<K>(&serde_json::to_value(&live).unwrap_or_default());
    }
    info!(kind, name, change = ?change, "Applied");
    Ok(done(change, Some(Live::Typed(live))))
}
