//! The controller: watches SafeApps and SafeJobs and every kind they own, and reconciles
//! each one with the pure validation and rendering of the library.
//!
//! The layout says who owns what. A folder per reconciler:
//! - `app/`: the SafeApp reconciler, a pipeline of named steps (namespace → validate →
//!   render → plan → apply → report; `app/mod.rs` reads as that list), with its workload
//!   step (`app/workload.rs`), the other children, staged upgrades, traffic and access;
//! - `job/`: the SafeJob reconciler;
//! - `namespace/`: the per-namespace reconciler of the shared LimitRange and quota.
//!
//! The files at this level are the machinery all three share, through one Context:
//! `watches` and `cache` (what is watched and cached), `apply` (the only writer of
//! children), `allows` and `drift` (the compare), `outcome` and `events` (reports and
//! Events), `status` and `conditions` (the status write and the kstatus rules), `config`
//! (config-data hashes), `backoff` (retries and resync jitter). Nothing here imports from
//! a reconciler's folder but the wiring in this file (and the upgrade slots' type, which
//! the Context holds).
//!
//! - SafeApps are watched through `DeserializeGuard`, so one malformed object cannot wedge
//!   the watch for the others (it gets a Warning Event instead).
//! - Deployments, Services, PDBs and HPAs are watched as owned children. The shared
//!   LimitRange and ResourceQuota have their own reconciler, keyed by namespace
//!   (`namespace.rs`), which runs beside the app controller and stops with it.
//! - Errors requeue with capped exponential backoff per object (1 s doubling to 5 min);
//!   conflicts retry after a second; invalid specs wait for a change.

pub mod allows;
pub mod app;
pub mod apply;
pub mod backoff;
pub mod cache;
pub mod conditions;
pub mod config;
pub mod drift;
pub mod events;
pub mod job;
pub mod namespace;
pub mod outcome;
pub mod status;
pub mod watches;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{SafeApp, SafeJob};
use crate::metrics::Metrics;
use crate::policy::Policy;

/// First retry delay after an error; doubles per failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Default resync period.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);
/// How long a reconcile waits for the caches' first list before reading from the API.
pub const CACHE_WAIT: Duration = Duration::from_secs(30);
/// Triggers for one SafeApp closer together than this run one reconcile (its children's
/// watch events after an apply arrive together). Short: a reconcile that its own writes'
/// events trigger writes nothing (`status::Written`, the caches' own-write records), and
/// every hop of a status change or an upgrade hand-over waits this long.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=safeapp-operator";

/// What the operator does with a kind it owns: watch, read before apply, server-side
/// apply (which is a `create` for a new object, §7b), prune.
const CHILD_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// Every API call the operator makes, as (API group, resource, verbs): the RBAC it
/// needs. `config/rbac` grants exactly these (a test checks it); keep them together.
pub const CLUSTER_PERMISSIONS: &[(&str, &str, &[&str])] = &[
    // The controller's watch and cache.
    ("safeapp.dev", "safeapps", &["get", "list", "watch"]),
    ("safeapp.dev", "safeapps/status", &["patch"]),
    ("safeapp.dev", "safejobs", &["get", "list", "watch"]),
    ("safeapp.dev", "safejobs/status", &["patch"]),
    // Children: watched, read before each apply, applied, pruned. A server-side apply
    // of an object that does not exist yet is authorized as `create` too (§7b).
    ("apps", "deployments", CHILD_VERBS),
    ("apps", "statefulsets", CHILD_VERBS),
    // A stateful app's pods: listed only while a rollout waits on a pod that is not
    // ready; one stuck on a reverted revision is deleted (its StatefulSet recreates it).
    ("", "pods", &["list", "delete"]),
    ("", "services", CHILD_VERBS),
    ("policy", "poddisruptionbudgets", CHILD_VERBS),
    ("autoscaling", "horizontalpodautoscalers", CHILD_VERBS),
    ("", "limitranges", CHILD_VERBS),
    ("", "resourcequotas", CHILD_VERBS),
    // kube's event Recorder creates events and patches their series.
    ("events.k8s.io", "events", &["create", "patch"]),
    // Config-change rollout: a metadata-only watch, and a read of referenced ones.
    ("", "configmaps", &["get", "list", "watch"]),
    // Traffic: one NetworkPolicy per SafeApp, and an Ingress or HTTPRoute when exposed.
    ("networking.k8s.io", "networkpolicies", CHILD_VERBS),
    ("networking.k8s.io", "ingresses", CHILD_VERBS),
    ("gateway.networking.k8s.io", "httproutes", CHILD_VERBS),
    // Metrics: the PodMonitor of an app with spec.metrics (Prometheus Operator).
    ("monitoring.coreos.com", "podmonitors", CHILD_VERBS),
    // SafeJob: a CronJob or a one-off Job; the runs of a CronJob are listed for status.
    ("batch", "cronjobs", CHILD_VERBS),
    ("batch", "jobs", CHILD_VERBS),
];

/// With `--watch-secrets` only (kustomize component `config/components/secret-rollout`):
/// Secret data counts in the config hash. Listing Secrets, even as metadata, is a right
/// to read them, so it is left out of the base install.
pub const SECRET_PERMISSIONS: &[(&str, &str, &[&str])] =
    &[("", "secrets", &["get", "list", "watch"])];

/// What leader election needs, in the operator's own namespace only.
pub const LEASE_PERMISSIONS: &[(&str, &str, &[&str])] =
    &[("coordination.k8s.io", "leases", &["get", "create", "patch"])];

/// Why a reconcile failed. Variants name the action that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the object has no namespace")]
    MissingNamespace,
    #[error("the object has no uid")]
    MissingUid,
    #[error("cannot read {kind} {name}: {source}")]
    GetChild {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("cannot apply {kind} {name}: {source}")]
    ApplyChild {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    DeleteChild {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("cannot read {kind} {name} (a config reference): {source}")]
    ReadConfig {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("cannot patch the status: {source}")]
    PatchStatus { source: kube::Error },
    #[error("cannot list the SafeApps of the namespace: {source}")]
    ListSafeApps { source: kube::Error },
    #[error("cannot serialize {kind}: {source}")]
    Serialize {
        kind: &'static str,
        source: serde_json::Error,
    },
}

impl Error {
    fn api_error(&self) -> Option<&kube::Error> {
        match self {
            Self::GetChild { source, .. }
            | Self::ApplyChild { source, .. }
            | Self::DeleteChild { source, .. }
            | Self::ReadConfig { source, .. }
            | Self::PatchStatus { source }
            | Self::ListSafeApps { source } => Some(source),
            _ => None,
        }
    }

    /// A 409 from the API server: someone else wrote first; retry soon.
    pub fn is_conflict(&self) -> bool {
        self.api_status() == Some(409)
    }

    /// One line for users: the action, and the API server's own message (kube's error
    /// text repeats the whole Status).
    pub fn summary(&self) -> String {
        let api_message = match self.api_error() {
            Some(kube::Error::Api(s)) => Some(s.message.clone()),
            _ => None,
        };
        match (self, api_message) {
            (Self::GetChild { kind, name, .. }, Some(m)) => {
                format!("cannot read {kind} {name}: {m}")
            }
            (Self::ReadConfig { kind, name, .. }, Some(m)) => {
                format!("cannot read {kind} {name} (a config reference): {m}")
            }
            (Self::ApplyChild { kind, name, .. }, Some(m)) => {
                format!("cannot apply {kind} {name}: {m}")
            }
            (Self::DeleteChild { kind, name, .. }, Some(m)) => {
                format!("cannot delete {kind} {name}: {m}")
            }
            (Self::PatchStatus { .. }, Some(m)) => {
                format!("cannot patch the status: {m}")
            }
            _ => self.to_string(),
        }
    }

    /// The kind of child the failed call was about.
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            Self::GetChild { kind, .. }
            | Self::ApplyChild { kind, .. }
            | Self::DeleteChild { kind, .. }
            | Self::ReadConfig { kind, .. }
            | Self::Serialize { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The HTTP status the API server answered with, when it answered.
    pub fn api_status(&self) -> Option<u16> {
        match self.api_error() {
            Some(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }

    /// A static label for metrics.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::MissingNamespace | Self::MissingUid => "malformed",
            Self::GetChild { .. } | Self::ReadConfig { .. } => "get",
            Self::ApplyChild { .. } => "apply",
            Self::DeleteChild { .. } => "delete",
            Self::PatchStatus { .. } => "status",
            Self::ListSafeApps { .. } => "list",
            Self::Serialize { .. } => "serialize",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub policy: Policy,
    pub recorder: events::Recorder,
    pub metrics: Arc<Metrics>,
    pub resync: Duration,
    /// The SafeApps of each namespace, for the namespace reconciler.
    pub namespaces: namespace::Namespaces,
    /// Failures in a row per SafeApp (`namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The controller's SafeApp cache; None in tests that drive the reconcilers directly.
    safeapps: Option<Store<DeserializeGuard<SafeApp>>>,
    /// The SafeJob controller's cache; None in tests that drive the reconcilers directly.
    safejobs: Option<Store<DeserializeGuard<SafeJob>>>,
    /// The caches of the children; None in tests that drive the reconcilers directly.
    pub caches: Option<cache::Caches>,
    /// Referenced ConfigMaps/Secrets and their data digests (config-change rollout).
    pub config: Arc<config::ConfigIndex>,
    /// Whether Secret data counts in the config hash (`--watch-secrets`).
    pub watch_secrets: bool,
    /// Slots for operator-caused template upgrades (`upgrade.rs`).
    pub upgrades: app::upgrade::Slots,
    /// What the API server turned out to drop (a field behind a feature gate that is off).
    pub server: app::workload::ServerFields,
    /// What the rendered pod templates depend on besides the spec: this operator's
    /// version and its policy (hashed), recorded with each template rolled out so an
    /// upgrade says what caused it.
    pub template_source: (String, String),
    /// Each SafeApp's access rules as last seen, to re-check its peers on a change.
    pub access: app::access::AccessIndex,
    /// The statuses last written, until the cache has them (`status::Written`).
    pub statuses: status::Written,
    /// When each object (`namespace/kind/name`) last had its drift corrected.
    drift_seen: Mutex<HashMap<String, Instant>>,
    /// Reconciles asked for by other reconciles (peers of a changed access policy).
    retrigger: tokio::sync::mpsc::UnboundedSender<ObjectRef<DeserializeGuard<SafeApp>>>,
    retriggered:
        Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<ObjectRef<DeserializeGuard<SafeApp>>>>>,
}

impl Context {
    pub fn new(client: Client, policy: Policy, metrics: Arc<Metrics>, resync: Duration) -> Self {
        let upgrades = app::upgrade::Slots::new(
            usize::try_from(policy.upgrades.max_concurrent_template_upgrades).unwrap_or(1),
        );
        let (retrigger, retriggered) = tokio::sync::mpsc::unbounded_channel();
        let template_source = (
            env!("CARGO_PKG_VERSION").to_string(),
            crate::digest::of_json(&policy),
        );
        Self {
            recorder: events::Recorder::new(
                client.clone(),
                crate::api::FIELD_MANAGER,
                std::env::var("POD_NAME").ok(),
            ),
            client,
            policy,
            metrics,
            resync,
            namespaces: namespace::Namespaces::default(),
            failures: Mutex::new(HashMap::new()),
            safeapps: None,
            safejobs: None,
            caches: None,
            config: Arc::default(),
            watch_secrets: false,
            upgrades,
            server: app::workload::ServerFields::default(),
            template_source,
            access: app::access::AccessIndex::default(),
            drift_seen: Mutex::new(HashMap::new()),
            statuses: status::Written::default(),
            retrigger,
            retriggered: Mutex::new(Some(retriggered)),
        }
    }

    /// Records a drift correction of `namespace/kind/name`; counts it as a fight when the
    /// same object was corrected less than [`DRIFT_FIGHT_WINDOW`] before.
    pub fn drift_corrected(&self, namespace: &str, kind: &'static str, name: &str) {
        let key = format!("{namespace}/{kind}/{name}");
        let now = Instant::now();
        let mut seen = self.drift_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < DRIFT_FIGHT_WINDOW)
        {
            self.metrics.drift_fight(kind);
        }
        seen.insert(key, now);
        if seen.len() > 4096 {
            seen.retain(|_, t| now.duration_since(*t) < DRIFT_FIGHT_WINDOW);
        }
    }

    /// Asks for a reconcile of `namespace/name` (a no-op when nothing runs them).
    pub fn reconcile_later(&self, namespace: &str, name: &str) {
        let _ = self.retrigger.send(ObjectRef::new(name).within(namespace));
    }

    /// The stream of reconciles asked for with [`Context::reconcile_later`] (once).
    fn take_retriggers(
        &self,
    ) -> impl futures::Stream<Item = ObjectRef<DeserializeGuard<SafeApp>>> + Send + 'static {
        let receiver = self
            .retriggered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let next = receiver.recv().await?;
            Some((next, Some(receiver)))
        })
    }

    /// The SafeApps `keys` name that exist: from the cache, or read from the API when
    /// the reconcilers are driven without one (tests).
    pub async fn safeapps_named(
        &self,
        keys: impl IntoIterator<Item = app::access::AppKey>,
    ) -> Result<Vec<SafeApp>, Error> {
        let mut out = Vec::new();
        for (ns, name) in keys {
            if let Some(store) = &self.safeapps {
                let found = store.get(&ObjectRef::new(&name).within(&ns));
                out.extend(found.and_then(|g| g.0.as_ref().ok().cloned()));
                continue;
            }
            let api: Api<SafeApp> = Api::namespaced(self.client.clone(), &ns);
            let found = api
                .get_opt(&name)
                .await
                .map_err(|source| Error::ListSafeApps { source })?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Every SafeApp the operator watches (a scan: only when access rules change).
    pub async fn all_safeapps(&self) -> Result<Vec<SafeApp>, Error> {
        if let Some(store) = &self.safeapps {
            return Ok(store
                .state()
                .iter()
                .filter_map(|g| g.0.as_ref().ok().cloned())
                .collect());
        }
        Api::<SafeApp>::all(self.client.clone())
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .map_err(|source| Error::ListSafeApps { source })
    }

    /// Frees `key`'s upgrade slot (`namespace/name`) and stops it waiting; the apps
    /// waiting for the freed slot are reconciled at once.
    pub fn release_slot(&self, key: &str) {
        let woken = self.upgrades.release(key);
        self.wake(woken);
    }

    /// Forgets the slot holders and waiting apps whose SafeApp is gone from the cache
    /// (deleted without a last reconcile), so none blocks the queue.
    pub fn prune_slots(&self) {
        let Some(store) = &self.safeapps else {
            return;
        };
        let woken = self.upgrades.retain(|key| {
            key.split_once('/')
                .is_some_and(|(ns, name)| store.get(&ObjectRef::new(name).within(ns)).is_some())
        });
        self.wake(woken);
    }

    fn wake(&self, keys: Vec<String>) {
        for key in keys {
            if let Some((ns, name)) = key.split_once('/') {
                self.reconcile_later(ns, name);
            }
        }
    }

    /// Before the first slot is given out, the holders the cluster records (a new
    /// leader's start): the SafeApps whose `status.upgradeSlot` is set.
    pub fn seed_slots(&self) {
        if self.upgrades.seeded() {
            return;
        }
        let Some(store) = &self.safeapps else {
            self.upgrades.seed(std::iter::empty());
            return;
        };
        let holders: Vec<String> = store
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok())
            .filter(|app| {
                app.status
                    .as_ref()
                    .is_some_and(|s| s.upgrade_slot.is_some())
            })
            .map(|app| format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any()))
            .collect();
        if self.upgrades.seed(holders) {
            info!(
                holders = self.upgrades.in_use(),
                "Upgrade slots read from the cluster"
            );
        }
    }

    /// Keeps config digests in `index` (the watches' own, which outlive a term).
    pub fn with_config_index(mut self, index: Arc<config::ConfigIndex>) -> Self {
        self.config = index;
        self
    }

    /// Counts Secret data in the config hash (needs read access to Secrets).
    pub fn with_secrets(mut self, on: bool) -> Self {
        self.watch_secrets = on;
        self
    }

    /// The caches, once those `kind`'s reconciler reads have listed; None without
    /// caches, or when they have not listed within [`CACHE_WAIT`] (a list refused by
    /// RBAC, an unreachable API): the reconcile then reads from the API, whose errors
    /// reach the status.
    pub async fn ready_caches(&self, kind: crate::api::WorkloadKind) -> Option<&cache::Caches> {
        let caches = self.caches.as_ref()?;
        match tokio::time::timeout(CACHE_WAIT, caches.wait_until_ready(kind)).await {
            Ok(()) => Some(caches),
            Err(_) => {
                warn!("Caches have not listed yet: reading from the API");
                None
            }
        }
    }

    /// Read children from these caches instead of the API.
    pub fn with_caches(mut self, caches: cache::Caches) -> Self {
        self.caches = Some(caches);
        self
    }

    /// Use the SafeJob controller's cache to tell which known SafeJobs still exist.
    pub fn with_job_store(mut self, store: Store<DeserializeGuard<SafeJob>>) -> Self {
        self.safejobs = Some(store);
        self
    }

    /// Use the controller's SafeApp cache to tell which known SafeApps still exist.
    pub fn with_store(mut self, store: Store<DeserializeGuard<SafeApp>>) -> Self {
        self.safeapps = Some(store);
        self
    }

    /// The delay before retrying `key` after one more failure.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = BACKOFF_BASE
            .saturating_mul(1u32 << (*n).min(16))
            .min(BACKOFF_MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Counts a reconcile that starts.
    fn reconcile_started(&self) -> Instant {
        self.metrics.reconciles.inc();
        self.metrics.in_flight.inc();
        Instant::now()
    }

    /// Counts a reconcile that ended; a success forgets the failures of `key`.
    fn reconcile_finished(&self, started: Instant, key: &str, ok: bool) {
        self.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics.in_flight.dec();
        if ok {
            self.reset_backoff(key);
        }
    }

    /// Forget the failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// The backoff key of an object: kind, namespace and name (a SafeApp and a SafeJob may
/// share a name).
fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The reconciler the SafeApp Controller calls: a malformed object gets a Warning Event;
/// a well-formed one is reconciled.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<SafeApp>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = ctx.reconcile_started();
    let result = match &guard.0 {
        Ok(app) => app::reconcile_app(app, &ctx).await,
        Err(invalid) => malformed(&ctx, crate::api::WorkloadKind::SafeApp, invalid).await,
    };
    ctx.reconcile_finished(started, &key_of(guard.as_ref()), result.is_ok());
    result
}

/// The reconciler the SafeJob Controller calls, as [`reconcile`] for SafeApps.
pub async fn reconcile_safejob(
    guard: Arc<DeserializeGuard<SafeJob>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = ctx.reconcile_started();
    let result = match &guard.0 {
        Ok(job) => job::reconcile_job(job, &ctx).await,
        Err(invalid) => malformed(&ctx, crate::api::WorkloadKind::SafeJob, invalid).await,
    };
    ctx.reconcile_finished(started, &key_of(guard.as_ref()), result.is_ok());
    result
}

/// A Warning Event about an object that does not match its kind's schema; it waits for
/// a change.
async fn malformed(
    ctx: &Context,
    kind: crate::api::WorkloadKind,
    invalid: &kube::core::error_boundary::InvalidObject,
) -> Result<Action, Error> {
    warn!(kind = kind.as_str(), name = ?invalid.metadata.name, error = %invalid.error, "Malformed object");
    let reference = ObjectReference {
        api_version: Some(kind.api_version().into()),
        kind: Some(kind.as_str().into()),
        name: invalid.metadata.name.clone(),
        namespace: invalid.metadata.namespace.clone(),
        uid: invalid.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let note = format!(
        "the object does not match the {} schema: {}",
        kind.as_str(),
        invalid.error
    );
    ctx.recorder
        .publish(
            &reference,
            events::EventType::Warning,
            events::INVALID_SPEC,
            note,
        )
        .await;
    Ok(Action::await_change())
}

/// A drift correction within this long of the last one on the same object is a fight.
pub const DRIFT_FIGHT_WINDOW: Duration = Duration::from_secs(3600);

/// How often the SafeApps-by-readiness and memory gauges are refreshed.
pub const FLEET_GAUGES_EVERY: Duration = Duration::from_secs(15);

/// Refreshes `safeapp_safeapps{ready}` (counted from the cache) and the resident memory
/// every [`FLEET_GAUGES_EVERY`], at once first.
async fn fleet_gauges(store: Store<DeserializeGuard<SafeApp>>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(FLEET_GAUGES_EVERY);
    loop {
        tick.tick().await;
        let (mut ready, mut not_ready, mut unknown) = (0, 0, 0);
        for guard in store.state() {
            let status = guard.0.as_ref().ok().and_then(|app| {
                app.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == conditions::READY)
                    .map(|c| c.status.clone())
            });
            match status.as_deref() {
                Some("True") => ready += 1,
                Some("False") => not_ready += 1,
                _ => unknown += 1,
            }
        }
        metrics.set_readiness(ready, not_ready, unknown);
        metrics
            .resident_memory
            .set(crate::metrics::resident_memory_bytes());
    }
}

/// What to do after a failed reconcile (of a SafeApp or a SafeJob).
pub fn error_policy<K: Resource<DynamicType = ()>>(
    guard: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&[("reason", error.metric_reason())])
        .inc();
    warn!(name = %guard.name_any(), error = %error, "Reconcile failed");
    if error.is_conflict() {
        return Action::requeue(BACKOFF_BASE);
    }
    Action::requeue(ctx.next_backoff(&key_of(guard.as_ref())))
}

/// How the controller is configured.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub policy: Policy,
    pub resync: Duration,
    pub concurrency: u16,
    /// Watch one namespace only.
    pub namespace: Option<String>,
    /// Reconcile only the SafeApps matching this label selector (sharding).
    pub selector: Option<String>,
    /// Count Secret data in the config hash (needs [`SECRET_PERMISSIONS`]).
    pub watch_secrets: bool,
}

pub(crate) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch's events without its errors (each watch retries by itself, `backoff.rs`).
/// kube-runtime's Controller puts the whole merged trigger stream — every owned kind's
/// events included — behind one backoff that grows to 30 s on any trigger error: after
/// an API server restart (or a 403 while its RBAC syncs) no trigger at all was taken for
/// up to half a minute, and a new leader stood still.
fn without_errors<K: Send + 'static>(
    events: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    events.filter_map(|event| {
        futures::future::ready(match event {
            Ok(obj) => Some(Ok(obj)),
            Err(e) => {
                tracing::debug!(error = %e, "Watch error (retried)");
                None
            }
        })
    })
}

/// How long a graceful stop may take before what is left is cancelled: a reconcile
/// takes milliseconds, so this only matters when the API server is unreachable and
/// nothing in flight can finish; SIGTERM then still ends the process within 5 s.
pub const GRACEFUL_STOP_LIMIT: Duration = Duration::from_secs(4);

/// Runs the controller until `stop` resolves (stop taking new work, finish the
/// reconciles in flight, at most [`GRACEFUL_STOP_LIMIT`]) or `abort` resolves (the lease
/// was lost: stop at once, cancelling what is in flight). `ready` turns true once the
/// SafeApp watch has synced and the children's caches have listed.
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: impl Future<Output = ()> + Clone + Send + Sync + 'static,
    abort: impl Future<Output = ()> + Send + 'static,
) {
    let watches = watches::Watches::start(&client, &config);
    lead(&watches, client, config, metrics, ready, stop, abort).await;
}

/// One term of the controllers over watches that are already running (and, for a
/// standby that just won the lease, already synced): every SafeApp and SafeJob the
/// caches hold is reconciled once at the start (the events of the time between terms
/// only kept the caches), then every change as it comes. Stops as [`run`] does.
pub async fn lead(
    watches: &watches::Watches,
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: impl Future<Output = ()> + Clone + Send + Sync + 'static,
    abort: impl Future<Output = ()> + Send + 'static,
) {
    let overdue = {
        let stop = stop.clone();
        let ready = ready.clone();
        async move {
            stop.await;
            // Before the watches synced no reconcile has started (kube-runtime holds them
            // until then), and kube-runtime would wait for the sync: stop at once.
            if ready.load(Ordering::Relaxed) {
                tokio::time::sleep(GRACEFUL_STOP_LIMIT).await;
                warn!("Graceful stop took too long: cancelling what is left");
            }
        }
    };
    // Both controllers stop on it.
    let abort = futures::future::select(Box::pin(abort), Box::pin(overdue))
        .map(|_| ())
        .shared();
    let ns = config.namespace.as_deref();
    let store = watches.apps.clone();
    let sync_store = store.clone();
    let sync_ready = ready.clone();
    let mut children_listed = watches.caches.listed.clone();
    let synced = tokio::spawn(async move {
        synced(&sync_store).await;
        // Ready (/readyz) once the SafeApps' children are cached too: a leader that
        // cannot see them cannot repair them, and says so.
        let _ = children_listed.wait_for(|l| l.apps).await;
        sync_ready.store(true, Ordering::Relaxed);
        info!("Watches synced");
    });
    // Every SafeApp the cache holds; with --selector that is this shard's only, which the
    // namespace reconciler allows for (it only adds owners to the shared objects).
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            config.policy,
            metrics.clone(),
            config.resync,
        )
        .with_store(store.clone())
        .with_job_store(watches.jobs.clone())
        .with_caches(watches.caches.clone())
        .with_config_index(watches.config_index.clone())
        .with_secrets(config.watch_secrets),
    );
    let retriggers = ctx.take_retriggers();
    info!(
        namespace = ns.unwrap_or("<all>"),
        selector = config.selector.as_deref().unwrap_or(""),
        "Starting controller"
    );
    let shared_objects = namespace::run(ctx.clone(), watches.shared.open());
    let apps = Controller::for_stream(watches.app_events.open().map(Ok), store.clone())
        .trigger_backoff(backoff::WatchBackoff::default())
        .reconcile_all_on(once_synced(store.clone()))
        .owns_stream(watches.deployments.open().map(Ok))
        .owns_stream(watches.stateful_sets.open().map(Ok))
        .owns_stream(watches.services.open().map(Ok))
        .owns_stream(watches.pdbs.open().map(Ok))
        .owns_stream(watches.hpas.open().map(Ok))
        .owns_stream(watches.network_policies.open().map(Ok))
        .owns_stream(watches.ingresses.open().map(Ok))
        .owns_stream(watches.http_routes.open().map(Ok))
        .owns_stream(watches.pod_monitors.open().map(Ok))
        .reconcile_on(watches.config_triggers.open())
        .reconcile_on(retriggers)
        .with_config(controller_config(config.concurrency))
        .graceful_shutdown_on(stop.clone())
        .run(reconcile, error_policy, ctx.clone())
        .take_until(abort.clone())
        .for_each(|result| {
            metrics
                .managed
                .set(i64::try_from(store.len()).unwrap_or(i64::MAX));
            async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(name = %obj.name, "Reconciled"),
                    Err(e) => tracing::debug!(error = %e, "Reconcile error"),
                }
            }
        });
    // SafeJobs: their own Controller on the same Context, caches and concurrency setting;
    // a CronJob or a one-off Job is an owned child. The runs of a CronJob are owned by
    // it, not by the SafeJob: the CronJob's status change on each start and end brings
    // the SafeJob's reconcile.
    let safejobs = Controller::for_stream(watches.job_events.open().map(Ok), watches.jobs.clone())
        .trigger_backoff(backoff::WatchBackoff::default())
        .reconcile_all_on(once_synced(watches.jobs.clone()))
        .owns_stream(watches.cron_jobs.open().map(Ok))
        .owns_stream(watches.runs.open().map(Ok))
        .with_config(controller_config(config.concurrency))
        .graceful_shutdown_on(stop.clone())
        .run(reconcile_safejob, error_policy, ctx.clone())
        .take_until(abort)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(name = %obj.name, "Reconciled SafeJob"),
                Err(e) => tracing::debug!(error = %e, "Reconcile error"),
            }
        });
    metrics.concurrency.set(i64::from(config.concurrency));
    let gauges = fleet_gauges(store.clone(), metrics.clone());
    // The namespace reconciler and the fleet gauges run beside the controllers and stop
    // with them; the watches go on (a standby keeps them warm).
    tokio::select! {
        ((), ()) = futures::future::join(apps, safejobs) => {}
        () = shared_objects => {}
        () = gauges => {}
    }
    watches.close();
    synced.abort();
    ready.store(false, Ordering::Relaxed);
    info!("Controller stopped");
}

/// Resolves once `store` has listed. kube-runtime's readiness latch keeps one waker:
/// when the controller's own runner also waits on it, a second waiter is never woken.
/// Re-poll on a short timer instead.
async fn synced<K>(store: &Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready()).await {
            Ok(_) => return,
            Err(_) => continue,
        }
    }
}

/// Both controllers' settings: `concurrency` reconciles at once, [`DEBOUNCE`].
fn controller_config(concurrency: u16) -> ControllerConfig {
    ControllerConfig::default()
        .concurrency(concurrency)
        .debounce(DEBOUNCE)
}

/// One trigger, once `store` has listed: reconcile everything it holds.
fn once_synced<K>(store: Store<K>) -> impl futures::Stream<Item = ()> + Send + 'static
where
    K: kube::runtime::reflector::Lookup + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    futures::stream::once(async move { synced(&store).await })
}
