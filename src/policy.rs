//! The operator policy: the platform team's knobs (`--policy FILE`), with built-in
//! defaults for whatever the file leaves out.
//!
//! ```yaml
//! defaults:
//!   resources:
//!     requests: {cpu: 100m, memory: 128Mi}
//!     limits: {cpu: 500m, memory: 256Mi}
//!   preStopSleepSeconds: 5
//!   terminationGracePeriodSeconds: 30
//!   securityProfile: restricted
//!   runAsUser: 10001
//!   runAsGroup: 10001
//! limitRange:            # default/defaultRequest fall back to defaults.resources
//!   min: {cpu: 10m, memory: 16Mi}
//!   max: {cpu: "4", memory: 8Gi}
//! resourceQuota:         # optional; no ResourceQuota without it
//!   hard: {requests.cpu: "20", requests.memory: 40Gi}
//! guardrails:            # what a SafeApp author may ask for (README "Guardrails")
//!   weakestSecurityProfile: restricted
//!   allowedVolumeTypes: [configMap, secret, emptyDir, projected, downwardAPI,
//!                        persistentVolumeClaim, ephemeral]
//!   allowedServiceTypes: [ClusterIP]
//!   allowedPriorityClasses: []      # patterns, `*` matches any run of characters
//!   allowedServiceAccounts: []      # patterns; "default" is always allowed
//!   forbiddenPodAnnotations: ["container.apparmor.security.beta.kubernetes.io/*", ...]
//!   deniedNamespaces: [kube-system, kube-public, kube-node-lease]
//!   denyOperatorNamespace: true     # adds the operator's own (POD_NAMESPACE)
//! upgrades:              # staged rollout of operator-caused template changes
//!   maxConcurrentTemplateUpgrades: 5
//! networkPolicy:         # README "Traffic"
//!   mode: ingress        # off | ingress | ingressAndEgress
//!   allowSameNamespace: false
//!   exposedFrom: []      # namespaces of the Gateway / ingress controller
//!   dnsNamespace: kube-system
//!   dnsPodLabels: {k8s-app: kube-dns}
//! canary:                # README "Canary releases"
//!   prometheusAddress: http://prometheus-operated.monitoring:9090
//!   queryTimeoutSeconds: 10
//! ```
//!
//! Unlike the CRD, the policy refuses unknown keys: it is read once at start, by the team
//! that wrote it, and a typo there would silently change every app in the cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

use crate::api::v1alpha1::{SecurityProfile, ServiceType};
use crate::quantity;

/// A resource list as in core (`cpu`, `memory`, ...).
pub type ResourceList = BTreeMap<String, Quantity>;

/// The whole policy file.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Policy {
    pub defaults: Defaults,
    pub limit_range: LimitRangePolicy,
    pub resource_quota: Option<ResourceQuotaPolicy>,
    pub guardrails: Guardrails,
    pub upgrades: UpgradePolicy,
    pub network_policy: NetworkPolicyPolicy,
    pub canary: CanaryPolicy,
}

/// Where canary releases read their metrics (`spec.rollout.canary.analysis`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CanaryPolicy {
    /// The Prometheus HTTP API (`http://host:port`, no trailing `/api`). Unset: a
    /// SafeApp with `analysis.prometheus` is refused, naming the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_address: Option<String>,
    /// How long one query may take before it counts as inconclusive.
    pub query_timeout_seconds: u64,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        Self {
            prometheus_address: None,
            query_timeout_seconds: 10,
        }
    }
}

/// What the NetworkPolicy of each SafeApp enforces.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum NetworkPolicyMode {
    /// No NetworkPolicy (and any the operator made is removed).
    Off,
    /// Ingress only from declared callers (and what the policy adds); egress open.
    #[default]
    Ingress,
    /// Ingress as above; egress only to declared destinations and DNS.
    IngressAndEgress,
}

/// The NetworkPolicy every SafeApp gets (`spec.accessPolicy` fills it in).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkPolicyPolicy {
    pub mode: NetworkPolicyMode,
    /// Every pod of the app's namespace may call its ports too.
    pub allow_same_namespace: bool,
    /// Namespaces whose pods may call apps that set `spec.expose` (where the Gateway or
    /// ingress controller runs).
    pub exposed_from: Vec<String>,
    /// Namespaces whose pods may scrape an app's metrics port (where Prometheus runs),
    /// on that port only.
    pub metrics_from: Vec<String>,
    /// Where cluster DNS runs; egress to it on port 53 is always allowed.
    pub dns_namespace: String,
    pub dns_pod_labels: BTreeMap<String, String>,
}

impl Default for NetworkPolicyPolicy {
    fn default() -> Self {
        Self {
            mode: NetworkPolicyMode::Ingress,
            allow_same_namespace: false,
            exposed_from: Vec::new(),
            metrics_from: Vec::new(),
            dns_namespace: "kube-system".into(),
            dns_pod_labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
        }
    }
}

/// Staged rollout of pod-template changes the operator itself causes (a new operator
/// version, a new policy): how many Deployments may roll for such a change at once.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpgradePolicy {
    pub max_concurrent_template_upgrades: u32,
}

impl Default for UpgradePolicy {
    fn default() -> Self {
        Self {
            max_concurrent_template_upgrades: 5,
        }
    }
}

/// Defaults applied to every SafeApp that leaves the matching field out.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Defaults {
    pub resources: ResourceDefaults,
    pub pre_stop_sleep_seconds: i64,
    pub termination_grace_period_seconds: i64,
    pub security_profile: SecurityProfile,
    pub run_as_user: i64,
    pub run_as_group: i64,
    /// `activeDeadlineSeconds` of SafeJobs that leave it out. Unset (the default): each
    /// SafeJob must set its own, so no job runs forever by accident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_active_deadline_seconds: Option<i64>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            resources: ResourceDefaults::default(),
            pre_stop_sleep_seconds: 5,
            termination_grace_period_seconds: 30,
            security_profile: SecurityProfile::Restricted,
            run_as_user: 10001,
            run_as_group: 10001,
            job_active_deadline_seconds: None,
        }
    }
}

/// Default container requests and limits.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceDefaults {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

impl Default for ResourceDefaults {
    fn default() -> Self {
        Self {
            requests: list(&[("cpu", "100m"), ("memory", "128Mi")]),
            limits: list(&[("cpu", "500m"), ("memory", "256Mi")]),
        }
    }
}

/// Content of the namespace LimitRange `safeapp-limits` (type Container).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitRangePolicy {
    /// Default limits; falls back to `defaults.resources.limits`.
    pub default: Option<ResourceList>,
    /// Default requests; falls back to `defaults.resources.requests`.
    pub default_request: Option<ResourceList>,
    pub min: ResourceList,
    pub max: ResourceList,
}

impl Default for LimitRangePolicy {
    fn default() -> Self {
        Self {
            default: None,
            default_request: None,
            min: list(&[("cpu", "10m"), ("memory", "16Mi")]),
            max: list(&[("cpu", "4"), ("memory", "8Gi")]),
        }
    }
}

/// An optional namespace ResourceQuota `safeapp-quota`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaPolicy {
    pub hard: ResourceList,
}

/// Every volume source of a core `Volume`, by its field name.
pub const VOLUME_TYPES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// What a SafeApp author may ask for. SafeApp is often the only thing a team may create,
/// and the operator creates their pods with its own rights: anything a SafeApp can
/// express, the operator will do. Each floor has a safe default; the platform team
/// relaxes it here.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Guardrails {
    /// The weakest `securityProfile` a SafeApp may choose (restricted > baseline > none).
    pub weakest_security_profile: SecurityProfile,
    /// Volume sources a SafeApp may use (`hostPath` never).
    pub allowed_volume_types: Vec<String>,
    /// Service types a SafeApp may ask for.
    pub allowed_service_types: Vec<ServiceType>,
    /// PriorityClass names a SafeApp may use (patterns); empty: none.
    pub allowed_priority_classes: Vec<String>,
    /// ServiceAccount names a SafeApp may run as (patterns); the namespace's `default`
    /// is always allowed.
    pub allowed_service_accounts: Vec<String>,
    /// Annotation keys (patterns) that may not reach pods through `spec.annotations`.
    pub forbidden_pod_annotations: Vec<String>,
    /// Namespaces the operator never acts in.
    pub denied_namespaces: Vec<String>,
    /// Also never act in the operator's own namespace.
    pub deny_operator_namespace: bool,
    /// StorageClasses (patterns) a stateful SafeApp's claims may name. Default empty:
    /// only the cluster's default class (claims without `storageClassName`), so a team
    /// cannot pick an expensive or node-local class the platform did not offer.
    pub allowed_storage_classes: Vec<String>,
    /// The largest claim a stateful SafeApp may request. Default `100Gi`.
    pub max_claim_size: String,
    /// External metrics (patterns) an app may autoscale on. Default empty: none, since
    /// an external metric is shared by every namespace and says nothing of the app's
    /// own load unless the platform team vouches for it.
    pub allowed_external_metrics: Vec<String>,
}

/// Default of `guardrails.maxClaimSize`.
pub const DEFAULT_MAX_CLAIM_SIZE: &str = "100Gi";

impl Default for Guardrails {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_string()).collect();
        Self {
            weakest_security_profile: SecurityProfile::Restricted,
            allowed_volume_types: strings(&[
                "configMap",
                "secret",
                "emptyDir",
                "projected",
                "downwardAPI",
                "persistentVolumeClaim",
                "ephemeral",
            ]),
            allowed_service_types: vec![ServiceType::ClusterIP],
            allowed_priority_classes: Vec::new(),
            allowed_service_accounts: Vec::new(),
            forbidden_pod_annotations: strings(&[
                // Legacy AppArmor and seccomp settings: "unconfined" escapes the profile.
                "container.apparmor.security.beta.kubernetes.io/*",
                "seccomp.security.alpha.kubernetes.io/*",
                "container.seccomp.security.alpha.kubernetes.io/*",
                // CRI-O runtime knobs (devices, user namespaces, cgroups).
                "io.kubernetes.cri-o.*",
                // Opting out of the service mesh skips its mTLS and authorization.
                "sidecar.istio.io/inject",
                "traffic.sidecar.istio.io/*",
                "linkerd.io/inject",
                "config.linkerd.io/skip-*",
            ]),
            denied_namespaces: strings(&["kube-system", "kube-public", "kube-node-lease"]),
            deny_operator_namespace: true,
            allowed_storage_classes: Vec::new(),
            max_claim_size: DEFAULT_MAX_CLAIM_SIZE.into(),
            allowed_external_metrics: Vec::new(),
        }
    }
}

impl Guardrails {
    /// Whether the operator must leave this namespace alone.
    pub fn denies_namespace(&self, namespace: &str) -> bool {
        self.denied_namespaces.iter().any(|n| n == namespace)
    }

    /// Whether a SafeApp may choose this profile.
    pub fn allows_profile(&self, profile: SecurityProfile) -> bool {
        profile.strength() >= self.weakest_security_profile.strength()
    }

    /// Whether a SafeApp may run as this ServiceAccount.
    pub fn allows_service_account(&self, name: &str) -> bool {
        name == "default" || any_match(&self.allowed_service_accounts, name)
    }

    /// Whether an app may autoscale on this external metric.
    pub fn allows_external_metric(&self, name: &str) -> bool {
        any_match(&self.allowed_external_metrics, name)
    }

    /// Whether a stateful SafeApp's claim may name this StorageClass.
    pub fn allows_storage_class(&self, name: &str) -> bool {
        any_match(&self.allowed_storage_classes, name)
    }

    /// Whether this PriorityClass may be used.
    pub fn allows_priority_class(&self, name: &str) -> bool {
        any_match(&self.allowed_priority_classes, name)
    }

    /// Whether this annotation key may reach pods.
    pub fn forbids_pod_annotation(&self, key: &str) -> bool {
        any_match(&self.forbidden_pod_annotations, key)
    }
}

fn any_match(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, value))
}

/// A pattern is literal text where `*` matches any run of characters (none included).
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: the whole value must equal the pattern
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn list(items: &[(&str, &str)]) -> ResourceList {
    items
        .iter()
        .map(|(k, v)| ((*k).to_string(), Quantity((*v).to_string())))
        .collect()
}

/// Why a policy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {path} is not valid policy YAML: {source}")]
    ParseFile {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("policy file {path} is invalid:\n  {}", problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl Policy {
    /// Reads, parses and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and checks policy YAML; `origin` names it in errors. An empty document
    /// means "all built-in defaults".
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self, PolicyError> {
        let policy: Policy = if text.trim().is_empty() {
            Policy::default()
        } else {
            serde_yaml_ng::from_str::<Option<Policy>>(text)
                .map_err(|source| PolicyError::ParseFile {
                    path: origin.to_path_buf(),
                    source,
                })?
                .unwrap_or_default()
        };
        let problems = policy.problems();
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::Invalid {
                path: origin.to_path_buf(),
                problems,
            })
        }
    }

    /// LimitRange default limits (explicit, or the default resources).
    pub fn limit_range_default(&self) -> &ResourceList {
        self.limit_range
            .default
            .as_ref()
            .unwrap_or(&self.defaults.resources.limits)
    }

    /// LimitRange default requests (explicit, or the default resources).
    pub fn limit_range_default_request(&self) -> &ResourceList {
        self.limit_range
            .default_request
            .as_ref()
            .unwrap_or(&self.defaults.resources.requests)
    }

    /// The policy in force when the operator runs in `namespace`: with
    /// `guardrails.denyOperatorNamespace`, that namespace joins the denied ones.
    pub fn for_operator_namespace(mut self, namespace: &str) -> Self {
        let g = &mut self.guardrails;
        if g.deny_operator_namespace && !g.denies_namespace(namespace) {
            g.denied_namespaces.push(namespace.to_string());
        }
        self
    }

    /// Every problem of the policy, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.guardrail_problems();
        let guardrail_problems = out.len();
        let d = &self.defaults;
        let lists: [(&str, &ResourceList); 6] = [
            ("defaults.resources.requests", &d.resources.requests),
            ("defaults.resources.limits", &d.resources.limits),
            ("limitRange.default", self.limit_range_default()),
            (
                "limitRange.defaultRequest",
                self.limit_range_default_request(),
            ),
            ("limitRange.min", &self.limit_range.min),
            ("limitRange.max", &self.limit_range.max),
        ];
        for (path, list) in lists {
            for (key, q) in list {
                match quantity::parse(&q.0) {
                    Ok(v) if v.0 < 0.0 => out.push(format!("{path}.{key}: must not be negative")),
                    Ok(_) => {}
                    Err(e) => out.push(format!("{path}.{key}: {e}")),
                }
            }
        }
        if let Some(address) = &self.canary.prometheus_address
            && !(address.starts_with("http://") && address.len() > "http://".len())
        {
            out.push(format!(
                "canary.prometheusAddress: {address:?} is not an http:// address (https is not supported; reach Prometheus in-cluster or through a local proxy)"
            ));
        }
        if self.canary.query_timeout_seconds == 0 {
            out.push("canary.queryTimeoutSeconds: must be at least 1".into());
        }
        if let Some(rq) = &self.resource_quota {
            for (key, q) in &rq.hard {
                if let Err(e) = quantity::parse(&q.0) {
                    out.push(format!("resourceQuota.hard.{key}: {e}"));
                }
            }
        }
        for key in ["cpu", "memory"] {
            for (path, list) in [
                ("defaults.resources.requests", &d.resources.requests),
                ("defaults.resources.limits", &d.resources.limits),
            ] {
                if !list.contains_key(key) {
                    out.push(format!(
                        "{path}.{key}: required (every container gets cpu and memory)"
                    ));
                }
            }
        }
        if out.len() > guardrail_problems {
            return out;
        }
        let cmp = |a: &ResourceList, b: &ResourceList, key: &str| -> Option<std::cmp::Ordering> {
            let x = quantity::parse(&a.get(key)?.0).ok()?;
            let y = quantity::parse(&b.get(key)?.0).ok()?;
            Some(x.cmp_value(&y))
        };
        use std::cmp::Ordering::{Greater, Less};
        for key in ["cpu", "memory"] {
            if cmp(&d.resources.requests, &d.resources.limits, key) == Some(Greater) {
                out.push(format!(
                    "defaults.resources.requests.{key}: must not exceed defaults.resources.limits.{key}"
                ));
            }
            for (path, list) in [
                ("defaults.resources.requests", &d.resources.requests),
                ("defaults.resources.limits", &d.resources.limits),
            ] {
                if cmp(list, &self.limit_range.min, key) == Some(Less) {
                    out.push(format!("{path}.{key}: below limitRange.min.{key}"));
                }
                if cmp(list, &self.limit_range.max, key) == Some(Greater) {
                    out.push(format!("{path}.{key}: above limitRange.max.{key}"));
                }
            }
        }
        if d.job_active_deadline_seconds.is_some_and(|s| s < 1) {
            out.push("defaults.jobActiveDeadlineSeconds: must be at least 1".into());
        }
        if d.pre_stop_sleep_seconds < 0 {
            out.push("defaults.preStopSleepSeconds: must not be negative".into());
        }
        if d.termination_grace_period_seconds <= d.pre_stop_sleep_seconds {
            out.push(
                "defaults.terminationGracePeriodSeconds: must be greater than defaults.preStopSleepSeconds"
                    .into(),
            );
        }
        if d.run_as_user < 1 {
            out.push(
                "defaults.runAsUser: must be a non-root UID (10000 or more is advised)".into(),
            );
        }
        if d.run_as_group < 1 {
            out.push("defaults.runAsGroup: must be a non-root GID".into());
        }
        out
    }

    fn guardrail_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.upgrades.max_concurrent_template_upgrades == 0 {
            out.push(
                "upgrades.maxConcurrentTemplateUpgrades: must be at least 1 (0 would never roll an operator upgrade)"
                    .into(),
            );
        }
        let g = &self.guardrails;
        if !g.allows_profile(self.defaults.security_profile) {
            out.push(format!(
                "defaults.securityProfile: {} is weaker than guardrails.weakestSecurityProfile {}",
                self.defaults.security_profile.as_str(),
                g.weakest_security_profile.as_str()
            ));
        }
        for (i, t) in g.allowed_volume_types.iter().enumerate() {
            let path = format!("guardrails.allowedVolumeTypes[{i}]");
            if t == "hostPath" {
                out.push(format!(
                    "{path}: hostPath is never allowed: a SafeApp may not touch the node's disk"
                ));
            } else if !VOLUME_TYPES.contains(&t.as_str()) {
                out.push(format!(
                    "{path}: {t:?} is not a volume type (one of {})",
                    VOLUME_TYPES.join(", ")
                ));
            }
        }
        for (key, patterns) in [
            ("allowedPriorityClasses", &g.allowed_priority_classes),
            ("allowedStorageClasses", &g.allowed_storage_classes),
            ("allowedExternalMetrics", &g.allowed_external_metrics),
            ("allowedServiceAccounts", &g.allowed_service_accounts),
            ("forbiddenPodAnnotations", &g.forbidden_pod_annotations),
        ] {
            for (i, pattern) in patterns.iter().enumerate() {
                if pattern.is_empty() {
                    out.push(format!("guardrails.{key}[{i}]: empty pattern"));
                }
            }
        }
        match crate::quantity::parse(&g.max_claim_size) {
            Ok(q) if q.0 > 0.0 => {}
            Ok(_) => out.push("guardrails.maxClaimSize: must be greater than zero".into()),
            Err(e) => out.push(format!("guardrails.maxClaimSize: {e}")),
        }
        let np = &self.network_policy;
        for (i, ns) in np.exposed_from.iter().enumerate() {
            if let Err(e) = crate::names::check_dns1123_label(ns) {
                out.push(format!("networkPolicy.exposedFrom[{i}]: {e}"));
            }
        }
        for (i, ns) in np.metrics_from.iter().enumerate() {
            if let Err(e) = crate::names::check_dns1123_label(ns) {
                out.push(format!("networkPolicy.metricsFrom[{i}]: {e}"));
            }
        }
        if let Err(e) = crate::names::check_dns1123_label(&np.dns_namespace) {
            out.push(format!("networkPolicy.dnsNamespace: {e}"));
        }
        for (i, ns) in g.denied_namespaces.iter().enumerate() {
            if let Err(e) = crate::names::check_dns1123_label(ns) {
                out.push(format!("guardrails.deniedNamespaces[{i}]: {e}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_yaml(text, Path::new("policy.yaml"))
    }

    // An empty file means the built-in defaults, and they are consistent.
    #[test]
    fn empty_file_is_builtin_defaults() {
        assert_eq!(load("").unwrap(), Policy::default());
        assert!(Policy::default().problems().is_empty());
    }

    // A partial file overrides only what it names.
    #[test]
    fn partial_file_keeps_other_defaults() {
        let p = load("defaults:\n  preStopSleepSeconds: 10\n").unwrap();
        assert_eq!(p.defaults.pre_stop_sleep_seconds, 10);
        assert_eq!(p.defaults.termination_grace_period_seconds, 30);
        assert_eq!(p.limit_range, LimitRangePolicy::default());
    }

    // A typo in a key is an error naming the key, not a silent default.
    #[test]
    fn unknown_key_is_refused() {
        let err = load("defaults:\n  preStopSleep: 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("preStopSleep"), "{err}");
    }

    // A bad quantity and an inconsistent grace period are both reported with their keys.
    #[test]
    fn invalid_values_are_named() {
        let err = load(
            "defaults:\n  resources:\n    requests: {cpu: banana, memory: 1Gi}\n  terminationGracePeriodSeconds: 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("defaults.resources.requests.cpu"), "{err}");
        let err = load("defaults:\n  terminationGracePeriodSeconds: 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaults.terminationGracePeriodSeconds"),
            "{err}"
        );
    }

    // Default resources outside the LimitRange would make every pod inadmissible.
    #[test]
    fn defaults_must_fit_limit_range() {
        let err = load("limitRange:\n  max: {cpu: 100m, memory: 8Gi}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaults.resources.limits.cpu: above limitRange.max.cpu"),
            "{err}"
        );
    }

    // A missing file is a clear read error naming the path.
    #[test]
    fn missing_file() {
        let err = Policy::load(Path::new("/nonexistent/policy.yaml")).unwrap_err();
        assert!(matches!(err, PolicyError::ReadFile { .. }));
        assert!(err.to_string().contains("/nonexistent/policy.yaml"));
    }
}
