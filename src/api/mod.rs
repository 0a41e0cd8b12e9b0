//! The SafeApp API (`safeapp.dev/v1alpha1`) and the constants every layer shares.

pub mod gateway;
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

pub use v1alpha1::{SafeApp, SafeAppSpec, SafeAppStatus};
