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
/// Prefix of the Lease writes' field manager. Each replica needs its own manager: lock
/// conflicts are detected by server-side apply, which sees none between writes of the
/// same manager (two replicas sharing one would both think they lead).
pub const LEASE_FIELD_MANAGER_PREFIX: &str = "safeapp-operator-lease";

/// This replica's identity: the pod name (Downward API `POD_NAME`), else host and pid.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!("{host}-{}", std::process::id())
    })
}

/// The field manager of this replica's Lease writes.
pub fn field_manager(identity: &str) -> String {
    format!("{LEASE_FIELD_MANAGER_PREFIX}-{identity}")
}

/// Builds the lease manager (creates the Lease if it does not exist yet).
pub async fn manager(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
) -> Result<LeaseManager, LeaseManagerError> {
    LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_field_manager(field_manager(identity))
        .with_identity(identity)
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .build()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two replicas never share a field manager (their lock conflicts would go unseen).
    #[test]
    fn field_managers_are_per_replica() {
        assert_ne!(field_manager("pod-a"), field_manager("pod-b"));
        assert!(field_manager("pod-a").starts_with(LEASE_FIELD_MANAGER_PREFIX));
    }
}
