//! Leader election over a `coordination.k8s.io/v1` Lease (kube-lease-manager), so two
//! replicas can run: one reconciles, the other takes over within the lease duration
//! when the leader dies or exits.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};

/// Seconds a lease stays valid after its last renewal: the longest a standby waits
/// after the leader dies without releasing it.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The holder renews this many seconds before expiry (tolerated clock skew).
pub const LEASE_GRACE_SECONDS: u64 = 5;
/// Field manager of the Lease writes (distinct from the children's).
pub const LEASE_FIELD_MANAGER: &str = "safeapp-operator-lease";

/// This replica's identity: the pod name (Downward API `POD_NAME`), else host and pid.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Builds the lease manager (creates the Lease if it does not exist yet).
pub async fn manager(
    client: Client,
    namespace: &str,
    lease_name: &str,
) -> Result<LeaseManager, LeaseManagerError> {
    LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_identity(identity())
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .with_field_manager(LEASE_FIELD_MANAGER)
        .build()
        .await
}
