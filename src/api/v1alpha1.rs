//! `SafeApp` v1alpha1: the CRD types, their OpenAPI schema and CEL rules.
//!
//! The CEL rules (`x-kubernetes-validations`) catch at `kubectl apply` time what CEL can
//! express; `crate::validate` checks the rest. Every list a rule iterates has `maxItems`
//! and every string it touches has `maxLength`, so the API server's cost estimate stays
//! inside its budget (see SAFEAPP.md §7). No `deny_unknown_fields` here on purpose: the
//! operator must read objects written against a newer CRD; `render` reports unknown
//! fields itself.

// kube's printcolumn(...) entries repeat `type_ = ...` by design; clippy reads that as
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::pod::{ImagePullPolicy, Owner, PodFields, SecurityProfile};

/// Largest number of ports a SafeApp may declare (bounds the CEL uniqueness rules).
pub const MAX_PORTS: u32 = 32;
/// IANA service names are at most 15 characters.
pub const MAX_PORT_NAME: u32 = 15;
/// Longest image reference accepted.
pub const MAX_IMAGE: u32 = 512;
/// Most claim templates a stateful SafeApp may declare.
pub const MAX_CLAIMS: u32 = 8;

/// The CEL message when `spec.stateful` is added or removed (also used by the tests).
pub const STATEFUL_SWITCH_MESSAGE: &str = "spec.stateful: a SafeApp cannot switch between a Deployment and a StatefulSet once created (the pods, their names and their storage are different objects). To migrate, create a new SafeApp under another name with the wanted kind, move the traffic and the data to it, then delete this one";
/// The CEL message when a stateful SafeApp's claim templates change.
pub const CLAIMS_IMMUTABLE_MESSAGE: &str = "spec.stateful.volumeClaimTemplates: cannot change once created (a StatefulSet's claim templates are immutable, and every replica already has its claims). To resize, expand each PersistentVolumeClaim (kubectl edit pvc) where the storage class allows it; for anything else, create a new SafeApp under another name and move the data";
/// The CEL message when a stateful SafeApp's pod management policy changes.
pub const POD_MANAGEMENT_IMMUTABLE_MESSAGE: &str = "spec.stateful.podManagementPolicy: cannot change once created (a StatefulSet's is immutable). To change it, create a new SafeApp under another name and move the data";

/// Desired state of a SafeApp: one application, rendered into a Deployment, Service,
/// PodDisruptionBudget, HorizontalPodAutoscaler and namespace LimitRange that carry
/// production practices by default.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "safeapp.dev",
    version = "v1alpha1",
    kind = "SafeApp",
    plural = "safeapps",
    shortname = "sapp",
    namespaced,
    status = "SafeAppStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A SafeApp is one application run the way the best-run services are.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        priority = "1"
    )
)]
#[x_kube(validation = Rule::new("has(self.stateful) == has(oldSelf.stateful)")
    .message(STATEFUL_SWITCH_MESSAGE))]
#[x_kube(validation = Rule::new(
    "!has(self.service) || !has(self.service.enabled) || !self.service.enabled || (has(self.ports) && size(self.ports) > 0)"
).message("spec.service.enabled: a Service needs at least one entry in spec.ports"))]
#[x_kube(validation = Rule::new(
    "(has(self.ports) && size(self.ports) > 0) || has(self.healthCheck) || (has(self.probes) && (has(self.probes.readiness) || has(self.probes.liveness) || has(self.probes.startup)))"
).message("spec.probes: nothing tells Kubernetes when the app is ready; declare spec.ports, spec.healthCheck or spec.probes"))]
#[serde(rename_all = "camelCase")]
pub struct SafeAppSpec {
    /// The container and pod fields SafeApp shares with SafeJob (flattened: they sit
    /// directly under `spec`).
    #[serde(flatten)]
    pub pod: PodFields,

    /// Desired replicas when not autoscaled. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// Ports the container listens on; each becomes a Service port. Names are unique
    /// (checked here); numbers are unique per protocol (checked by the operator, since
    /// the same number over TCP and UDP is legitimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(p, self.exists_one(q, q.name == p.name))")
            .message("spec.ports: port names must be unique")
    )]
    pub ports: Option<Vec<PortSpec>>,

    /// The Service in front of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// Shortcut for readiness and liveness probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,

    /// Full probes; each one overrides what healthCheck would produce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Probes>,

    /// Graceful shutdown: preStop pause and grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,

    /// Rolling update settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// Its presence turns a HorizontalPodAutoscaler on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// PodDisruptionBudget settings. Default maxUnavailable 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,

    /// When true the operator changes nothing and reports Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// Roll the pods when the data of a referenced ConfigMap or Secret changes.
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_on_config_change: Option<bool>,

    /// Per-reference settings for config rollouts, e.g. `{kind: ConfigMap, name:
    /// flags, rollOnChange: false}` for a file the app reloads itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub config_refs: Option<Vec<ConfigRefSettings>>,

    /// Who may call this app, and whom it may call: rendered as a NetworkPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy: Option<AccessPolicy>,

    /// Prometheus scrapes the app's pods on this port (a PodMonitor, when the
    /// Prometheus Operator is installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Run as a StatefulSet with per-replica storage instead of a Deployment (a
    /// database, a queue, a search node). Cannot be added or removed once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful: Option<Stateful>,
    /// How the app is reached from outside: an HTTPRoute (Gateway API) or an Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,
}

/// Inbound callers and outbound destinations of an app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicy {
    /// Who may call the app's ports: apps (`app`, with `namespace` for another
    /// namespace) or whole namespaces (`namespace` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub inbound: Option<Vec<AccessRule>>,
    /// Whom the app may call (enforced when the policy controls egress): apps,
    /// namespaces, or external `cidr`s, each with optional ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub outbound: Option<Vec<AccessRule>>,
}

/// One caller or destination: exactly one of `app` (optionally in `namespace`),
/// `namespace` alone, or `cidr` (outbound only).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.app) || has(self.__namespace__) || has(self.cidr)")
    .message("an access rule names exactly one of: app (optionally with namespace), namespace, or cidr"))]
#[x_kube(validation = Rule::new("!(has(self.app) && has(self.cidr))")
    .message("an access rule names exactly one of: app (optionally with namespace), namespace, or cidr"))]
#[x_kube(validation = Rule::new("!has(self.cidr) || !has(self.__namespace__)")
    .message("cidr cannot be combined with namespace"))]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// A SafeApp (its `app.kubernetes.io/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub app: Option<String>,
    /// The app's namespace (default: this SafeApp's), or a whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// An address block outside the cluster, e.g. `10.20.0.0/16` (outbound only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub cidr: Option<String>,
    /// Ports: inbound, names or numbers of this app's `ports` (default all of them);
    /// outbound, the destination's ports (default any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub ports: Option<Vec<AccessPort>>,
}

/// A port of an access rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPort {
    /// A number (1-65535) or, inbound, the name of one of `spec.ports`.
    pub port: IntOrString,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// How the app is reached from outside the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.gateway) != has(self.ingressClassName)")
    .message("spec.expose: set exactly one of gateway (an HTTPRoute) or ingressClassName (an Ingress)"))]
#[x_kube(validation = Rule::new("!has(self.tls) || has(self.ingressClassName)")
    .message("spec.expose.tls: TLS by Secret is for an Ingress; a Gateway terminates TLS on its listener"))]
#[serde(rename_all = "camelCase")]
pub struct Expose {
    /// Host names the app answers for (`*.example.com` allowed).
    #[schemars(length(min = 1, max = 16))]
    pub hosts: Vec<String>,
    /// Path prefixes (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub paths: Option<Vec<String>>,
    /// Name or number of the port in `spec.ports` to send traffic to (default the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// The Gateway to attach an HTTPRoute to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRef>,
    /// The IngressClass of an Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ingress_class_name: Option<String>,
    /// TLS for the Ingress, from a Secret in this namespace (the operator never reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ExposeTls>,
}

/// A Gateway (and optionally one of its listeners).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default: this SafeApp's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// A listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
}

/// TLS of an Ingress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposeTls {
    /// A `kubernetes.io/tls` Secret in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Kind of a referenced configuration object.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

impl ConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
        }
    }
}

/// Config-rollout settings for one referenced ConfigMap or Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRefSettings {
    /// ConfigMap or Secret.
    pub kind: ConfigKind,
    /// Its name, as referenced by env, envFrom or a volume.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// False: a change of its data does not roll the pods. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_on_change: Option<bool>,
}

/// Transport protocol of a port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Protocol {
    /// TCP (default).
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

/// One port of the app container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// IANA service name: lowercase letters, digits and '-', at most 15 characters.
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Port the container listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Port the Service exposes. Default: the container port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub service_port: Option<i32>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Kind of Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only (default).
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The Service in front of the pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// ClusterIP (default), NodePort or LoadBalancer.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Annotations for the Service only (load balancer settings, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Default: true when spec.ports is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Shortcut for readiness and liveness probes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// HTTP path; without it the probes open a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Port name or number. Default: the first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
}

/// Full core probes; each overrides what healthCheck would produce.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Probe>,
}

/// How the preStop pause is carried out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PreStopMode {
    /// The kubelet's native sleep action (no shell needed).
    Sleep,
    /// `sh -c "sleep N"` in the container, for images with a shell on old clusters.
    Exec,
}

/// Graceful shutdown settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "!has(self.terminationGracePeriodSeconds) || !has(self.preStopSleepSeconds) || self.terminationGracePeriodSeconds > self.preStopSleepSeconds"
).message("spec.shutdown.terminationGracePeriodSeconds: must be greater than preStopSleepSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// Pause before SIGTERM so endpoints are removed first. Default 5; 0 disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub pre_stop_sleep_seconds: Option<i64>,
    /// Sleep (default) or Exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop_mode: Option<PreStopMode>,
    /// Must be greater than the preStop sleep. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub termination_grace_period_seconds: Option<i64>,
}

/// Rolling update settings of the Deployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "!(has(self.maxSurge) && string(self.maxSurge) in ['0', '0%'] && (!has(self.maxUnavailable) || string(self.maxUnavailable) in ['0', '0%']))"
).message("spec.rollout: maxSurge and maxUnavailable cannot both be zero (maxUnavailable defaults to 0)"))]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Extra pods during a rollout, int or percent. Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods that may be unavailable during a rollout. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i32>,
    /// Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,
    /// Release a new pod template as a canary: it runs as `<name>-canary` beside the
    /// stable Deployment, takes a growing share of the traffic step by step, and is
    /// promoted when every step's gate passes, or aborted at the first that fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
}

/// A canary release: the steps it walks and the gate each must pass.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// The canary's share of the traffic, step by step, and how long each is watched.
    #[schemars(length(min = 1, max = 10))]
    pub steps: Vec<CanaryStep>,
    /// What must hold at every step besides the canary's pods being healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
}

/// One step: `weight` percent of the traffic goes to the canary for `pause`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percent of the traffic (1 to 100).
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// How long the step is watched before the next: `30s`, `2m`, `1h`.
    #[schemars(length(max = 16))]
    pub pause: String,
}

/// The metric checks of a canary.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// A PromQL query evaluated through the Prometheus the operator policy names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusCheck>,
}

/// A PromQL check: the query gives one number, which must lie within `min`/`max`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusCheck {
    /// Must give one sample (a scalar, or a vector of one series).
    #[schemars(length(max = 4096))]
    pub query: String,
    /// The value must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The value must be at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// How often the query is evaluated during a step. Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub interval: Option<String>,
    /// Failed evaluations tolerated over the whole canary; one more aborts it. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failure_limit: Option<i32>,
    /// How many requests the canary must have served for the value to count: below
    /// `min`, the evaluation is inconclusive (never a pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestsCheck>,
}

/// A second query giving the number of requests behind the checked value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestsCheck {
    #[schemars(length(max = 4096))]
    pub query: String,
    pub min: f64,
}

/// Where the app serves its metrics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// A port of `spec.ports` by name, or a number (a container port of its own, named
    /// `metrics`, when it is not one of `spec.ports`: not on the Service).
    pub port: IntOrString,
    /// Default `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub path: Option<String>,
    /// Scrape interval, e.g. `30s`, `1m`. Default: Prometheus's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub interval: Option<String>,
}

/// A stateful app: its pods get stable names (`<name>-0`, `<name>-1`, ...), a headless
/// Service for peer discovery, and each its own claims.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "has(self.volumeClaimTemplates) == has(oldSelf.volumeClaimTemplates) && (!has(self.volumeClaimTemplates) || self.volumeClaimTemplates == oldSelf.volumeClaimTemplates)"
).message(CLAIMS_IMMUTABLE_MESSAGE))]
#[x_kube(validation = Rule::new(
    "(has(self.podManagementPolicy) ? self.podManagementPolicy : 'OrderedReady') == (has(oldSelf.podManagementPolicy) ? oldSelf.podManagementPolicy : 'OrderedReady')"
).message(POD_MANAGEMENT_IMMUTABLE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct Stateful {
    /// Storage per replica: one PersistentVolumeClaim per template and pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub volume_claim_templates: Option<Vec<ClaimTemplate>>,
    /// `OrderedReady` (default: one pod at a time, in order) or `Parallel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<PodManagementPolicy>,
    /// Only pods with an ordinal at or above this are updated (staged rollouts by
    /// hand). Default 0: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub partition: Option<i32>,
    /// What happens to the claims when the SafeApp is deleted or scaled down. Default
    /// Retain for both: the operator never deletes data by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<ClaimRetention>,
    /// When the spec is reverted to the revision that was running while a pod of the
    /// failed revision is stuck not ready (an `OrderedReady` rollout waits for it
    /// forever), the operator deletes that pod so it comes back on the good revision.
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_stuck_pods: Option<bool>,
}

/// One claim each replica gets, mounted into the app's container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTemplate {
    /// The claim's name (the PVC of pod N is `<name>-<app>-<N>`), a DNS label.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Requested storage, e.g. `10Gi`.
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// The StorageClass; default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// Default `[ReadWriteOnce]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4))]
    pub access_modes: Option<Vec<AccessMode>>,
    /// Where the claim is mounted in the app's container (absolute).
    #[schemars(length(min = 1, max = 512))]
    pub mount_path: String,
    /// A sub-path of the volume to mount (relative, no `..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub sub_path: Option<String>,
}

/// A PersistentVolumeClaim access mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadWriteOncePod,
    ReadOnlyMany,
    ReadWriteMany,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWriteOnce => "ReadWriteOnce",
            Self::ReadWriteOncePod => "ReadWriteOncePod",
            Self::ReadOnlyMany => "ReadOnlyMany",
            Self::ReadWriteMany => "ReadWriteMany",
        }
    }
}

/// How a StatefulSet creates and deletes its pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PodManagementPolicy {
    /// One at a time, in ordinal order, each Ready before the next.
    OrderedReady,
    /// All at once.
    Parallel,
}

impl PodManagementPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderedReady => "OrderedReady",
            Self::Parallel => "Parallel",
        }
    }
}

/// What happens to the claims of a stateful app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRetention {
    /// When the SafeApp (and so its StatefulSet) is deleted. Default Retain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<RetentionPolicy>,
    /// When replicas are scaled down. Default Retain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_scaled: Option<RetentionPolicy>,
}

/// Keep or delete a claim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RetentionPolicy {
    Retain,
    Delete,
}

impl RetentionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retain => "Retain",
            Self::Delete => "Delete",
        }
    }
}

/// Horizontal autoscaling; its presence creates an HPA and lets it own the replica count.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas")
    .message("spec.autoscaling.minReplicas: must not be greater than maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Default 2 (or maxReplicas when that is lower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Upper bound of the replica count.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Target average CPU utilization (percent of requests). Default 70 when no target is set.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Target average memory utilization (percent of requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// HPA behavior, as in autoscaling/v2. A scale-down window of 300 s is added when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    /// The app's own signals, beside CPU and memory: a per-pod metric (`Pods`, from
    /// the custom metrics API) or one from outside the cluster (`External`: a queue's
    /// depth), each with a target average value per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub metrics: Option<Vec<AutoscalingMetric>>,
}

/// One metric the HPA scales on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingMetric {
    /// `Pods` or `External`.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// The metric's name, e.g. `http_requests_in_flight`, `queue_messages_ready`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Labels that pick the series (`matchLabels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// Target average value per pod, a quantity (`10`, `500m`, `2k`).
    #[schemars(length(min = 1, max = 32))]
    pub target_average_value: String,
}

/// Where an autoscaling metric comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MetricSourceType {
    /// Per pod, from the custom metrics API (e.g. prometheus-adapter).
    #[default]
    Pods,
    /// From outside the cluster, from the external metrics API.
    External,
}

/// PodDisruptionBudget settings: one of minAvailable or maxUnavailable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))")
    .message("spec.disruptionBudget: set minAvailable or maxUnavailable, not both"))]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Observed state of a SafeApp, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SafeAppStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current replicas of the Deployment (serves the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// A stateful app's revisions: the one its pods ran before the rollout in progress,
    /// and the one it rolls to (equal when no rollout is in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// Label selector of the pods, as a string (serves the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Ready, Reconciling and Stalled (the kstatus conditions GitOps tools read), then
    /// Degraded, UpgradePending, AccessPoliciesMatched and Exposed where they apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The objects this SafeApp manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_objects: Option<Vec<ManagedObject>>,
    /// The most recent drift the operator put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_correction: Option<DriftCorrection>,
    /// Replicas kept from the HPA when autoscaling was turned off without
    /// `spec.replicas`: the Deployment stays at the count the HPA had reached instead of
    /// dropping to the default. Cleared when `spec.replicas` is set or autoscaling is
    /// turned back on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_replicas: Option<i32>,
    /// The pod template last rolled out, and why it was what it was: the staged
    /// rollout of operator-caused changes compares against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRecord>,
    /// Referenced ConfigMaps and Secrets that do not exist (`optional: true` ones are
    /// not listed), as `Kind/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_config: Option<Vec<String>>,
    /// Since when this app holds one of the operator's upgrade slots (its Deployment
    /// rolls an operator-caused template change); read by a new leader so that a
    /// failover never runs more upgrades than the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_slot: Option<Time>,
    /// The canary release in progress or last run (`spec.rollout.canary`): where it is,
    /// so that a restarted or failed-over operator resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
}

/// Where a canary release is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CanaryPhase {
    /// Walking the steps.
    #[default]
    Progressing,
    /// Every step passed (or `safeapp.dev/canary: promote`): the stable Deployment rolls
    /// to the new template; the traffic stays split until it is available.
    Promoting,
    /// Promoted: the stable Deployment runs the new template, the canary is at 0.
    Succeeded,
    /// A gate failed (or `safeapp.dev/canary: abort`): the canary is at 0 and takes no
    /// traffic; the stable Deployment was never touched. A new generation starts over.
    Aborted,
}

/// The state of one canary release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    pub phase: CanaryPhase,
    /// The step in progress, from 0 (the last one once promoting).
    pub step: i32,
    /// The canary's share of the traffic now, in percent.
    pub weight: i32,
    /// The template hash the stable Deployment runs.
    pub stable_hash: String,
    /// The template hash under test.
    pub canary_hash: String,
    /// The SafeApp generation the canary was started for.
    pub generation: i64,
    /// The hash of the referenced config data it runs with ("" without references): an
    /// aborted canary starts over when the generation or this changes.
    #[serde(default)]
    pub config_hash: String,
    /// When the step in progress started.
    pub step_started: Time,
    /// When the step's canary pods were first all available: its pause, and the
    /// analyses that count for it, run from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_since: Option<Time>,
    /// The canary pods' restarts when the step started (a restart during the step fails
    /// the gate).
    #[serde(default)]
    pub restarts_at_step_start: i32,
    /// Failed metric evaluations so far (aborted past `failureLimit`).
    #[serde(default)]
    pub failed_checks: i32,
    /// The last metric evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<CanaryAnalysisResult>,
    /// The weight the HTTPRoute was last written with (drift repair leaves the weights
    /// alone; the steps set them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_weight: Option<i32>,
    /// The `safeapp.dev/canary` annotation as it was when the canary started or last
    /// acted on it: only a new value decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_seen: Option<String>,
    /// What happened last, in words (why it aborted, what it waits for).
    #[serde(default)]
    pub message: String,
}

/// One evaluation of the canary's metric check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysisResult {
    pub time: Time,
    /// `Pass`, `Fail` or `Inconclusive`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default)]
    pub message: String,
}

/// The pod template the Deployment last rolled out to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRecord {
    /// Hash of the rendered pod template (config hash included).
    pub hash: String,
    /// The SafeApp generation it was rendered from.
    pub generation: i64,
    /// The hash of the referenced config data it carried ("" without references).
    #[serde(default)]
    pub config_hash: String,
    /// The operator version that rendered it (an upgrade's Event says what changed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub operator_version: String,
    /// The hash of the operator policy it was rendered with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub policy_hash: String,
}

/// A reference to a generated object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// Record of one drift correction.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftCorrection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    pub kind: String,
    pub name: String,
    /// Field paths that differed.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Field manager that last wrote them (kubectl-edit, helm, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
}
