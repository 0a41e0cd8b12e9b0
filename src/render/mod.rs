//! Rendering, the second step of the pipeline: a [`ValidatedApp`] and the policy → the
//! typed objects of SAFEAPP.md §2. Pure: no client, no I/O, deterministic (every map is
//! a BTreeMap), and every object carries apiVersion/kind so the controller can
//! server-side apply it as is.

pub mod canary;
mod deployment;
mod hpa;
pub mod job;
pub mod labels;
mod limits;
mod meta;
mod monitoring;
mod network;
mod pdb;
pub mod pod;
mod probes;
mod route;
mod security;
mod service;
pub mod statefulset;
mod workload;

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::api::gateway::HTTPRoute;
use crate::api::monitoring::PodMonitor;

pub use deployment::{
    CONFIG_HASH_ANNOTATION, DEFAULT_MAX_SURGE, DEFAULT_MAX_UNAVAILABLE, DEFAULT_MIN_READY_SECONDS,
    DEFAULT_PROGRESS_DEADLINE_SECONDS, DEFAULT_REVISION_HISTORY_LIMIT,
};
pub use hpa::SCALE_DOWN_WINDOW_SECONDS;
pub use limits::out_of_range;
pub use network::{APP_NAME_LABEL, NAMESPACE_NAME_LABEL};
pub use probes::liveness_from;
pub use workload::{Kind as WorkloadKind, Workload};

use crate::policy::Policy;
use crate::validate::{ValidatedApp, ValidatedJob};
use crate::yaml;

/// Everything one SafeApp produces. `None` means "must not exist" (the controller prunes
/// it). [`Resources::split`] and the output writer destructure this without `..`, so a
/// new kind cannot be built and silently never applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Resources {
    /// The object that runs the pods.
    pub workload: Workload,
    /// A stateful app's headless Service (its pods' DNS names, for peers).
    pub headless_service: Option<Service>,
    pub service: Option<Service>,
    pub pdb: PodDisruptionBudget,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub network_policy: Option<NetworkPolicy>,
    pub http_route: Option<HTTPRoute>,
    pub ingress: Option<Ingress>,
    /// The PodMonitor of an app with `spec.metrics`.
    pub pod_monitor: Option<PodMonitor>,
}

/// The children of one SafeApp other than its workload (`None`: must not exist): what
/// the controller applies after the workload step.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub headless_service: Option<Service>,
    pub service: Option<Service>,
    pub pdb: PodDisruptionBudget,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub network_policy: Option<NetworkPolicy>,
    pub http_route: Option<HTTPRoute>,
    pub ingress: Option<Ingress>,
    pub pod_monitor: Option<PodMonitor>,
}

impl Resources {
    /// The workload, and the children applied after it. Destructures without `..`: a
    /// new kind cannot be rendered and silently never applied.
    pub fn split(self) -> (Workload, Children) {
        let Resources {
            workload,
            headless_service,
            service,
            pdb,
            hpa,
            network_policy,
            http_route,
            ingress,
            pod_monitor,
        } = self;
        let children = Children {
            headless_service,
            service,
            pdb,
            hpa,
            network_policy,
            http_route,
            ingress,
            pod_monitor,
        };
        (workload, children)
    }
}

/// Renders every object of one SafeApp (the namespace-shared ones come from
/// [`namespace_objects`]).
pub fn render(app: &ValidatedApp, policy: &Policy) -> Resources {
    Resources {
        workload: match &app.spec.stateful {
            Some(stateful) => {
                Workload::StatefulSet(Box::new(statefulset::stateful_set(app, stateful, policy)))
            }
            None => Workload::Deployment(Box::new(deployment::deployment(app, policy))),
        },
        headless_service: statefulset::headless_service(app),
        service: service::service(app),
        pdb: pdb::pdb(app),
        hpa: hpa::hpa(app),
        network_policy: network::network_policy(app, policy),
        http_route: route::http_route(app),
        ingress: route::ingress(app),
        pod_monitor: monitoring::pod_monitor(app),
    }
}

/// Everything one SafeJob produces: exactly one of the two (the other is pruned).
#[derive(Clone, Debug, PartialEq)]
pub struct JobResources {
    pub cron_job: Option<CronJob>,
    pub job: Option<Job>,
}

/// Renders the workload of one SafeJob.
pub fn render_job(job: &ValidatedJob, policy: &Policy) -> JobResources {
    JobResources {
        cron_job: job::cron_job(job, policy),
        job: job::job(job, policy),
    }
}

/// The objects every SafeApp of a namespace shares: its LimitRange and, when the policy
/// defines one, its ResourceQuota. Without ownerReferences: the controller adds them.
pub fn namespace_objects(namespace: &str, policy: &Policy) -> (LimitRange, Option<ResourceQuota>) {
    (
        limits::limit_range(Some(namespace), policy),
        limits::resource_quota(Some(namespace), policy),
    )
}

/// One rendered object, ready to print.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    LimitRange(LimitRange),
    ResourceQuota(ResourceQuota),
    NetworkPolicy(NetworkPolicy),
    HTTPRoute(HTTPRoute),
    Ingress(Ingress),
    PodMonitor(PodMonitor),
    CronJob(Box<CronJob>),
    Job(Box<Job>),
}

impl Object {
    /// The object as JSON, as it would be sent to the API server.
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Self::Deployment(o) => serde_json::to_value(o),
            Self::StatefulSet(o) => serde_json::to_value(o),
            Self::Service(o) => serde_json::to_value(o),
            Self::PodDisruptionBudget(o) => serde_json::to_value(o),
            Self::HorizontalPodAutoscaler(o) => serde_json::to_value(o),
            Self::LimitRange(o) => serde_json::to_value(o),
            Self::ResourceQuota(o) => serde_json::to_value(o),
            Self::NetworkPolicy(o) => serde_json::to_value(o),
            Self::HTTPRoute(o) => serde_json::to_value(o),
            Self::Ingress(o) => serde_json::to_value(o),
            Self::PodMonitor(o) => serde_json::to_value(o),
            Self::CronJob(o) => serde_json::to_value(o),
            Self::Job(o) => serde_json::to_value(o),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    fn write_yaml(&self, out: &mut String) -> Result<(), yaml::Error> {
        match self {
            Self::Deployment(o) => yaml::write_document(out, o),
            Self::StatefulSet(o) => yaml::write_document(out, o),
            Self::Service(o) => yaml::write_document(out, o),
            Self::PodDisruptionBudget(o) => yaml::write_document(out, o),
            Self::HorizontalPodAutoscaler(o) => yaml::write_document(out, o),
            Self::LimitRange(o) => yaml::write_document(out, o),
            Self::ResourceQuota(o) => yaml::write_document(out, o),
            Self::NetworkPolicy(o) => yaml::write_document(out, o),
            Self::HTTPRoute(o) => yaml::write_document(out, o),
            Self::Ingress(o) => yaml::write_document(out, o),
            Self::PodMonitor(o) => yaml::write_document(out, o),
            Self::CronJob(o) => yaml::write_document(out, o),
            Self::Job(o) => yaml::write_document(out, o),
        }
    }
}

/// Renders many SafeApps into one stable list: per namespace (sorted) the shared
/// LimitRange and ResourceQuota; then each app's Deployment, Service,
/// PodDisruptionBudget, HPA, NetworkPolicy and HTTPRoute or Ingress, in input order.
pub fn render_all(apps: &[ValidatedApp], policy: &Policy) -> Vec<Object> {
    render_stream(apps, &[], policy)
}

/// [`render_all`] of the SafeApps, then each SafeJob's CronJob or Job, in input order:
/// one stream for a manifest that holds both kinds. Every namespace with a SafeApp or a
/// SafeJob gets the shared LimitRange (and ResourceQuota), as the controller makes it.
pub fn render_stream(apps: &[ValidatedApp], jobs: &[ValidatedJob], policy: &Policy) -> Vec<Object> {
    let by_namespace: BTreeSet<Option<&str>> = apps
        .iter()
        .map(|a| &a.pod)
        .chain(jobs.iter().map(|j| &j.pod))
        .map(|p| p.namespace.as_deref())
        .collect();
    let mut out = Vec::new();
    for namespace in &by_namespace {
        out.push(Object::LimitRange(limits::limit_range(*namespace, policy)));
        out.extend(limits::resource_quota(*namespace, policy).map(Object::ResourceQuota));
    }
    for app in apps {
        let Resources {
            workload,
            headless_service,
            service,
            pdb,
            hpa,
            network_policy,
            http_route,
            ingress,
            pod_monitor,
        } = render(app, policy);
        out.push(workload.into_object());
        out.extend(headless_service.map(Object::Service));
        out.extend(service.map(Object::Service));
        out.push(Object::PodDisruptionBudget(pdb));
        out.extend(hpa.map(Object::HorizontalPodAutoscaler));
        out.extend(network_policy.map(Object::NetworkPolicy));
        out.extend(http_route.map(Object::HTTPRoute));
        out.extend(ingress.map(Object::Ingress));
        out.extend(pod_monitor.map(Object::PodMonitor));
    }
    for job in jobs {
        let JobResources { cron_job, job } = render_job(job, policy);
        out.extend(cron_job.map(|c| Object::CronJob(Box::new(c))));
        out.extend(job.map(|j| Object::Job(Box::new(j))));
    }
    out
}

/// Multi-document YAML of the objects, each document starting with `---`.
pub fn to_yaml(objects: &[Object]) -> Result<String, yaml::Error> {
    let mut out = String::with_capacity(objects.len() * 2048);
    for o in objects {
        out.push_str("---\n");
        o.write_yaml(&mut out)?;
    }
    Ok(out)
}
