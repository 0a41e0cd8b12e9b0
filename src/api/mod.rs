//! The SafeApp API (`safeapp.dev/v1alpha1`) and the constants every layer shares.

pub mod gateway;
pub mod monitoring;
pub mod pod;
pub mod safejob;
pub mod v1alpha1;

/// API group of the SafeApp CRD.
pub const GROUP: &str = "safeapp.dev";
/// The one field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "safeapp-operator";
/// Value of `app.kubernetes.io/managed-by` on every generated object.
pub const MANAGED_BY: &str = "safeapp-operator";
/// Name of the per-namespace LimitRange shared by every SafeApp of the namespace.
pub const LIMIT_RANGE_NAME: &str = "safeapp-limits";
/// Name of the per-namespace ResourceQuota (only when the policy defines one).
pub const RESOURCE_QUOTA_NAME: &str = "safeapp-quota";

pub use safejob::{SafeJob, SafeJobSpec, SafeJobStatus};
pub use v1alpha1::{SafeApp, SafeAppSpec, SafeAppStatus};

/// The two kinds that run pods. What differs between them in the shared pod pipeline
/// (validation, labels, ownerReferences) is asked of this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    SafeApp,
    SafeJob,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SafeApp => "SafeApp",
            Self::SafeJob => "SafeJob",
        }
    }

    /// apiVersion of both kinds.
    pub fn api_version(self) -> &'static str {
        "safeapp.dev/v1alpha1"
    }

    /// Longest object name. A SafeApp's name is a Service name (63); a SafeJob's names
    /// a CronJob, whose Jobs add an 11-character suffix within 63 (52).
    pub fn max_name_len(self) -> usize {
        match self {
            Self::SafeApp => 63,
            Self::SafeJob => 52,
        }
    }

    /// The `app.kubernetes.io/instance` label of the pods. A SafeJob's is `<name>-job`,
    /// so its pods never carry `name == instance`, the selector of every SafeApp's
    /// Deployment, Service, PodDisruptionBudget and NetworkPolicy: a SafeJob named like
    /// a SafeApp of its namespace can never receive that app's traffic or count in its
    /// disruption budget.
    pub fn instance(self, name: &str) -> String {
        match self {
            Self::SafeApp => name.to_string(),
            Self::SafeJob => format!("{name}-job"),
        }
    }
}
