//! The container and pod fields both kinds share (`SafeApp` and `SafeJob`), as one Rust
//! type flattened into each spec: the same schema, CEL rules and bounds, and the same
//! validation and builders downstream (`validate::pod`, `render::pod`). A new pod field
//! goes here once and both kinds have it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvFromSource, EnvVar, ResourceRequirements, Toleration, Volume,
    VolumeMount,
};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The app container and its pod, as both kinds declare them: image, command, env,
/// resources, security profile, volumes, scheduling, labels and ownership.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodFields {
    /// Container image. Must be pinned: a tag other than `latest`, or a digest.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(
        "self.matches('@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$') || self.matches('^([^@]+/)?[^/:@]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')"
    ).message("spec.image: must be pinned with a tag (name:1.2.3) or a digest (name@sha256:...)"))]
    #[x_kube(validation = Rule::new("!self.matches('^([^@]+/)?[^/:@]+:latest$')")
        .message("spec.image: the tag 'latest' is not a pinned version; use a version tag or a digest"))]
    pub image: String,

    /// When the kubelet pulls the image. Default IfNotPresent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Names of Secrets holding registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,

    /// Entrypoint override, as in a core Container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments, as in a core Container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Environment variables, as in a core Container (valueFrom supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,

    /// Environment from ConfigMaps and Secrets, as in a core Container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,

    /// Container resources; the operator policy fills what is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Label dimension `tier` (frontend, backend, data, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub tier: Option<String>,

    /// Label dimension `environment` (dev, staging, production, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub environment: Option<String>,

    /// Label dimension `track`: stable, canary, blue or green.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub track: Option<String>,

    /// Label dimension `tenant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub tenant: Option<String>,

    /// Label dimension `shard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub shard: Option<String>,

    /// `app.kubernetes.io/component`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub component: Option<String>,

    /// `app.kubernetes.io/part-of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub part_of: Option<String>,

    /// Who runs this app; becomes `safeapp.dev/*` annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,

    /// UID for the restricted profile. Default 10001 (or the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_user: Option<i64>,

    /// GID for the restricted profile. Default 10001 (or the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_group: Option<i64>,

    /// Names of the services this app calls (annotation `safeapp.dev/depends-on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,

    /// Extra labels for every generated object and the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Extra annotations for every generated object and the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Pod volumes, as in core (hostPath is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,

    /// Mounts for the app container, as in core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,

    /// Init containers, as in core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<Container>>,

    /// ServiceAccount for the pods; naming one mounts its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Node selector, as in core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations, as in core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Affinity, as in core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// PriorityClass name, as in core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Pod security profile: restricted (default), baseline or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_profile: Option<SecurityProfile>,
}

/// Image pull policy of the app container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull only when the node lacks the image.
    IfNotPresent,
    /// Pull on every start.
    Always,
    /// Never pull; the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IfNotPresent => "IfNotPresent",
            Self::Always => "Always",
            Self::Never => "Never",
        }
    }
}

/// Ownership metadata, rendered as `safeapp.dev/*` annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// Owning team (`safeapp.dev/owner-team`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Email or chat handle (`safeapp.dev/contact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Runbook URL (`safeapp.dev/runbook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// Documentation URL (`safeapp.dev/docs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
}

/// Pod security profile.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecurityProfile {
    /// Pod Security Standard "restricted": non-root, no privilege escalation, all
    /// capabilities dropped, RuntimeDefault seccomp, read-only root filesystem.
    Restricted,
    /// Pod Security Standard "baseline": RuntimeDefault seccomp, no privilege escalation.
    Baseline,
    /// No security context is set.
    None,
}

impl SecurityProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restricted => "restricted",
            Self::Baseline => "baseline",
            Self::None => "none",
        }
    }

    /// How much the profile guards: restricted 2, baseline 1, none 0.
    pub fn strength(self) -> u8 {
        match self {
            Self::Restricted => 2,
            Self::Baseline => 1,
            Self::None => 0,
        }
    }
}
