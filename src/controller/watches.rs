//! The watches and caches the controllers read, started once per process and kept warm
//! while a standby waits for the lease (as controller-runtime's managers start their
//! informers before leader election, their controllers after). A watch's events reach a
//! controller only while it leads ([`Gate`]); between terms they only keep the caches.
//! So a new leader starts from caches that already hold every object, and a takeover
//! costs no list at all.

use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::{Predicate, PredicateConfig};
use kube::runtime::{WatchStreamExt, predicates, watcher};

use super::cache::{self, Compact};
use super::config::ConfigIndex;
use super::{MANAGED_SELECTOR, RunConfig, api, backoff, without_errors};
use crate::api::gateway::HTTPRoute;
use crate::api::monitoring::PodMonitor;
use crate::api::{SafeApp, SafeJob};

/// A task aborted when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stream polled all the time (keeping its cache), whose items go to a controller only
/// while one is attached ([`Gate::open`]).
pub struct Gate<T> {
    sink: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<T>>>>,
}

impl<T: Send + 'static> Gate<T> {
    fn pump(stream: impl Stream<Item = T> + Send + 'static, tasks: &mut Vec<Task>) -> Self {
        let sink: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<T>>>> = Arc::default();
        let to = sink.clone();
        tasks.push(Task(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let guard = to.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(tx) = guard.as_ref() {
                    let _ = tx.send(item);
                }
            }
        })));
        Self { sink }
    }

    /// The items from now on, for one controller term (replaces the last term's).
    pub fn open(&self) -> impl Stream<Item = T> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
    }

    /// No controller takes the items any more: they only keep the caches.
    pub fn close(&self) {
        *self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// The objects of a watched kind whose spec, labels or annotations changed, its cache
/// kept by `writer`: a status-only update (the operator's own status patch among them)
/// only refreshes the cache.
fn spec_changes<K>(
    api: kube::Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> impl Stream<Item = K> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    without_errors(
        watcher(api, config)
            .backoff(backoff::WatchBackoff::default())
            .reflect(writer)
            .applied_objects()
            .predicate_filter(
                predicates::generation
                    .combine(predicates::labels)
                    .combine(predicates::annotations),
                PredicateConfig::default(),
            ),
    )
    .filter_map(|r| futures::future::ready(r.ok()))
}

/// Every watch of the operator, with its cache.
pub struct Watches {
    pub apps: Store<DeserializeGuard<SafeApp>>,
    pub jobs: Store<DeserializeGuard<SafeJob>>,
    pub caches: cache::Caches,
    pub app_events: Gate<DeserializeGuard<SafeApp>>,
    pub job_events: Gate<DeserializeGuard<SafeJob>>,
    pub deployments: Gate<Compact<Deployment>>,
    pub stateful_sets: Gate<Compact<StatefulSet>>,
    pub services: Gate<Compact<Service>>,
    pub pdbs: Gate<Compact<PodDisruptionBudget>>,
    pub hpas: Gate<Compact<HorizontalPodAutoscaler>>,
    pub network_policies: Gate<Compact<NetworkPolicy>>,
    pub ingresses: Gate<Compact<Ingress>>,
    pub cron_jobs: Gate<Compact<CronJob>>,
    pub runs: Gate<Compact<Job>>,
    /// Namespaces whose shared LimitRange or ResourceQuota changed.
    pub shared: Gate<Option<String>>,
    /// HTTPRoutes: not cached (their CRD may be missing); the watch only triggers the
    /// owner (drift, the Gateway's verdict in status), retrying until the CRD exists.
    pub http_routes: Gate<HTTPRoute>,
    /// PodMonitors: no cache (their CRD may be missing), a watch for drift.
    pub pod_monitors: Gate<PodMonitor>,
    /// Referenced ConfigMaps/Secrets and their data digests (`config.rs`), and the apps
    /// a change of one triggers.
    pub config_index: Arc<ConfigIndex>,
    pub config_triggers: Gate<ObjectRef<DeserializeGuard<SafeApp>>>,
    /// The tasks that poll the watches: held only to be aborted with the watches.
    _tasks: Vec<Task>,
}

impl Watches {
    /// Starts every watch (they list, then follow) and keeps them until dropped.
    pub fn start(client: &Client, config: &RunConfig) -> Self {
        let ns = config.namespace.as_deref();
        let mut tasks = Vec::new();
        let mut app_watch = watcher::Config::default().any_semantic();
        if let Some(selector) = &config.selector {
            app_watch = app_watch.labels(selector);
        }
        let (apps, writer) = reflector::store();
        let app_events = spec_changes(
            api::<DeserializeGuard<SafeApp>>(client, ns),
            app_watch.clone(),
            writer,
        );
        let (jobs, job_writer) = reflector::store();
        let job_events = spec_changes(
            api::<DeserializeGuard<SafeJob>>(client, ns),
            app_watch,
            job_writer,
        );
        let managed = || watcher::Config::default().labels(MANAGED_SELECTOR);
        // The children's caches: reconciles read them instead of the API. A workload's
        // (Deployment's, StatefulSet's) status drives the SafeApp's conditions; the other children's status does not.
        let (deployments, dep_changes, dep_names) =
            cache::KindCache::<Deployment>::watch(client, ns, managed(), true);
        let (stateful_sets, sts_changes, sts_names) =
            cache::KindCache::<StatefulSet>::watch(client, ns, managed(), true);
        let (services, svc_changes, svc_names) =
            cache::KindCache::<Service>::watch(client, ns, managed(), false);
        let (pdbs, pdb_changes, pdb_names) =
            cache::KindCache::<PodDisruptionBudget>::watch(client, ns, managed(), false);
        let (hpas, hpa_changes, hpa_names) =
            cache::KindCache::<HorizontalPodAutoscaler>::watch(client, ns, managed(), false);
        let (limit_ranges, lr_changes, lr_names) =
            cache::KindCache::<LimitRange>::watch(client, ns, managed(), false);
        let (quotas, rq_changes, rq_names) =
            cache::KindCache::<ResourceQuota>::watch(client, ns, managed(), false);
        let (network_policies, np_changes, np_names) =
            cache::KindCache::<NetworkPolicy>::watch(client, ns, managed(), false);
        // An Ingress's status (its load balancer address) is not reported: spec only.
        let (ingresses, ing_changes, ing_names) =
            cache::KindCache::<Ingress>::watch(client, ns, managed(), false);
        // A CronJob's status (last schedule, active runs) and a Job's (its outcome)
        // drive the SafeJob's status: both count.
        let (cron_jobs, cj_changes, cj_names) =
            cache::KindCache::<CronJob>::watch(client, ns, managed(), true);
        let (job_caches, job_changes, job_names) =
            cache::KindCache::<Job>::watch(client, ns, managed(), true);
        let (listed_tx, listed) = tokio::sync::watch::channel(cache::Listed::default());
        let caches = cache::Caches {
            listed,
            cron_jobs,
            jobs: job_caches,
            deployments,
            stateful_sets,
            services,
            pdbs,
            hpas,
            limit_ranges,
            quotas,
            network_policies,
            ingresses,
        };
        let readiness = caches.clone();
        tasks.push(Task(tokio::spawn(async move {
            readiness.track_readiness(listed_tx).await;
        })));
        let names = futures::stream::select_all([
            dep_names.boxed(),
            sts_names.boxed(),
            svc_names.boxed(),
            pdb_names.boxed(),
            hpa_names.boxed(),
            lr_names.boxed(),
            rq_names.boxed(),
            np_names.boxed(),
            ing_names.boxed(),
            cj_names.boxed(),
            job_names.boxed(),
        ]);
        tasks.push(Task(tokio::spawn(names.for_each(|()| async {}))));
        let shared = futures::stream::select(
            lr_changes.map(|o| o.metadata.namespace),
            rq_changes.map(|o| o.metadata.namespace),
        );
        let http_routes = without_errors(
            watcher(api::<HTTPRoute>(client, ns), managed().any_semantic())
                .backoff(backoff::WatchBackoff::default())
                .touched_objects(),
        )
        .filter_map(|r| futures::future::ready(r.ok()));
        let pod_monitors = without_errors(
            watcher(api::<PodMonitor>(client, ns), managed().any_semantic())
                .backoff(backoff::WatchBackoff::default())
                .touched_objects(),
        )
        .filter_map(|r| futures::future::ready(r.ok()));
        let config_index = Arc::<ConfigIndex>::default();
        let config_triggers =
            super::config::triggers(client, ns, config.watch_secrets, config_index.clone());
        Self {
            http_routes: Gate::pump(http_routes, &mut tasks),
            pod_monitors: Gate::pump(pod_monitors, &mut tasks),
            config_triggers: Gate::pump(config_triggers, &mut tasks),
            config_index,
            app_events: Gate::pump(app_events, &mut tasks),
            job_events: Gate::pump(job_events, &mut tasks),
            deployments: Gate::pump(dep_changes, &mut tasks),
            stateful_sets: Gate::pump(sts_changes, &mut tasks),
            services: Gate::pump(svc_changes, &mut tasks),
            pdbs: Gate::pump(pdb_changes, &mut tasks),
            hpas: Gate::pump(hpa_changes, &mut tasks),
            network_policies: Gate::pump(np_changes, &mut tasks),
            ingresses: Gate::pump(ing_changes, &mut tasks),
            cron_jobs: Gate::pump(cj_changes, &mut tasks),
            runs: Gate::pump(job_changes, &mut tasks),
            shared: Gate::pump(shared, &mut tasks),
            apps,
            jobs,
            caches,
            _tasks: tasks,
        }
    }

    /// Ends a controller term: the events only keep the caches again.
    pub fn close(&self) {
        self.app_events.close();
        self.job_events.close();
        self.deployments.close();
        self.stateful_sets.close();
        self.services.close();
        self.pdbs.close();
        self.hpas.close();
        self.network_policies.close();
        self.ingresses.close();
        self.cron_jobs.close();
        self.runs.close();
        self.shared.close();
        self.http_routes.close();
        self.pod_monitors.close();
        self.config_triggers.close();
    }
}
