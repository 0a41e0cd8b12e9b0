//! Validation, the first step of the pipeline: `&SafeApp` + policy → [`ValidatedApp`], or
//! every problem at once, each with its field path, so a user fixes a file in one pass.
//!
//! The CRD's CEL rules catch some of these at `kubectl apply` time; this module checks
//! all of them again (objects may predate a rule, and `render` has no API server) plus
//! what CEL cannot express: quantities, hostPath volumes, name lengths, label syntax,
//! and the platform team's guardrails (the policy's floors). Pure: no client, no I/O.
//!
//! One file per concern; this one only runs the steps in order and collects problems:
//! `metadata` (names, labels, annotations) → `image` → `ports` → `probes` →
//! `resources` → `shutdown` → `scaling` (rollout, autoscaling, disruption budget) →
//! `security` (profile, the pod's user, every container's securityContext; init
//! containers in `containers`) → `volumes` → `guardrails` (service type, service
//! account, priority class, pod annotations, namespace) → `config` (the ConfigMaps and
//! Secrets whose data rolls the pods) → `traffic` (access policy, expose) → `stateful`
//! (claim templates and the storage guardrails) → `canary` (steps and analysis) → `metrics` (scraping, and autoscaling
//! on the app's own metrics).
//!
//! The pod checks (names, image, env, resources, security, volumes, the pod guardrails)
//! are `pod.rs`, run for both kinds; `job.rs` validates a SafeJob with them and its
//! own `schedule.rs`.

mod canary;
mod config;
mod containers;
mod guardrails;
mod image;
mod job;
mod metadata;
pub mod metrics;
mod pod;
mod ports;
mod probes;
mod resources;
mod scaling;
pub mod schedule;
mod security;
mod shutdown;
mod stateful;
mod traffic;
mod volumes;

use std::fmt;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::v1alpha1::PreStopMode;
use crate::api::{SafeApp, SafeAppSpec, WorkloadKind};
use crate::policy::Policy;

pub use canary::{CANARY_TRACK, ResolvedCanary, ResolvedCheck, ResolvedStep, STABLE_TRACK};
pub use config::{ConfigRef, references};
pub use job::{ValidatedJob, validate_job};
pub use pod::ValidatedPod;
pub use resources::resolve_resources;
pub use security::{ALLOWED_SELINUX_TYPES, BASELINE_CAPABILITIES, RESTRICTED_VOLUME_TYPES};
pub use traffic::{OpenPort, ResolvedTraffic, check_cidr};

/// Default replicas when not autoscaled.
pub const DEFAULT_REPLICAS: i32 = 2;
/// Default HPA floor (lowered to maxReplicas when that is smaller).
pub const DEFAULT_MIN_REPLICAS: i32 = 2;
/// Default HPA CPU target when no target is given.
pub const DEFAULT_CPU_TARGET: i32 = 70;
/// Name of the writable `/tmp` volume added under a read-only root filesystem.
pub const TMP_VOLUME: &str = "safeapp-tmp";
/// Label keys the operator sets itself; `spec.labels` may not override them.
pub const RESERVED_LABELS: &[&str] = &[
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "tier",
    "environment",
    "track",
    "tenant",
    "shard",
];
/// Annotation prefix the operator owns.
pub const RESERVED_ANNOTATION_PREFIX: &str = "safeapp.dev/";

/// One problem, with the path of the field that causes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Where the readiness probe comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadinessSource {
    /// `spec.probes.readiness`, used as given.
    Explicit(Probe),
    /// `spec.healthCheck.path` on a port.
    Http { path: String, port: IntOrString },
    /// A TCP connect on a port (healthCheck without path, or the first port).
    Tcp { port: IntOrString },
    /// Only a liveness probe was given: readiness reuses its handler.
    FromLiveness(Probe),
}

/// A SafeApp that passed validation, with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedApp {
    /// The pod, as both kinds validate it.
    pub pod: ValidatedPod,
    pub spec: SafeAppSpec,
    /// Replicas for the Deployment; None when the HPA owns them.
    pub replicas: Option<i32>,
    pub autoscaling: Option<ResolvedAutoscaling>,
    pub pre_stop_sleep_seconds: i64,
    pub pre_stop_mode: PreStopMode,
    pub termination_grace_period_seconds: i64,
    pub readiness: ReadinessSource,
    pub service_enabled: bool,
    /// ConfigMaps and Secrets whose data rolls the pods (opt-outs removed).
    pub config_refs: Vec<ConfigRef>,
    /// Access-policy ports and the exposed Service port, resolved.
    pub traffic: ResolvedTraffic,
    /// Where Prometheus scrapes the app (`spec.metrics`), resolved.
    pub metrics: Option<metrics::ResolvedMetrics>,
    /// The canary release settings (`spec.rollout.canary`), resolved.
    pub canary: Option<canary::ResolvedCanary>,
}

/// Autoscaling with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedAutoscaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_target: Option<i32>,
    pub memory_target: Option<i32>,
    /// The app's own metrics (`autoscaling.metrics`).
    pub custom: Vec<metrics::ResolvedMetric>,
}

/// Collects problems with their paths.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
    pub(crate) fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(e) = result {
            self.add(path, e);
        }
    }
}

/// Validates a SafeApp against the contract and the policy; returns every problem.
pub fn validate(app: &SafeApp, policy: &Policy) -> Result<ValidatedApp, Vec<FieldError>> {
    let mut p = Problems::default();
    let spec = &app.spec;

    let mut pod = pod::check_pod(
        &mut p,
        WorkloadKind::SafeApp,
        &app.metadata,
        &spec.pod,
        policy,
    );
    metadata::check_service_annotations(&mut p, spec);
    let port_names = ports::check_ports(&mut p, spec);
    let service_enabled = ports::service_enabled(&mut p, spec, !port_names.is_empty());
    let readiness = probes::check_probes(&mut p, spec, &port_names);
    let shutdown = shutdown::check_shutdown(&mut p, spec, policy);
    let (replicas, mut autoscaling) = scaling::check_scaling(&mut p, spec);
    let scraped = metrics::check_metrics(&mut p, spec);
    if let Some(a) = autoscaling.as_mut() {
        a.custom = metrics::check_autoscaling_metrics(&mut p, spec, policy);
        // CPU 70 is the default only when nothing else says when to scale.
        if !a.custom.is_empty()
            && spec.autoscaling.as_ref().is_some_and(|s| {
                s.target_cpu_utilization_percentage.is_none()
                    && s.target_memory_utilization_percentage.is_none()
            })
        {
            a.cpu_target = None;
        }
    }

    security::check_probes(&mut p, spec, pod.security_profile);
    guardrails::check_service_type(&mut p, spec, policy);
    stateful::check_stateful(&mut p, spec, policy);
    let canary = canary::check_canary(&mut p, spec, &pod.name, policy);
    let config_refs = config::check_config(&mut p, spec);
    let traffic = traffic::check_traffic(&mut p, spec, service_enabled);

    if !p.0.is_empty() {
        return Err(p.0);
    }
    // With a canary the stable pods carry a track too, so that a Gateway's stable
    // backend can select them without the canary's (README "Canary releases").
    if canary.is_some() && pod.fields.track.is_none() {
        pod.fields.track = Some(STABLE_TRACK.into());
    }
    Ok(ValidatedApp {
        pod,
        spec: spec.clone(),
        replicas,
        autoscaling,
        pre_stop_sleep_seconds: shutdown.pre_stop_sleep_seconds,
        pre_stop_mode: shutdown.pre_stop_mode,
        termination_grace_period_seconds: shutdown.termination_grace_period_seconds,
        // check_probes only returns None after recording a problem.
        readiness: readiness.unwrap_or(ReadinessSource::Tcp {
            port: IntOrString::Int(0),
        }),
        service_enabled,
        config_refs,
        traffic,
        metrics: scraped,
        canary,
    })
}
