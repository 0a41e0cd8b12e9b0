//! Leader election over a `coordination.k8s.io/v1` Lease (kube-lease-manager), so two
//! replicas can run: one reconciles, the other takes over within the lease duration
//! when the leader dies or exits.
//!
//! kube-lease-manager keeps saying "leader" while its renewals fail (it only logs them),
//! so a leader cut off from the API server would go on writing after a standby took
//! over. [`renew_deadline`] closes that gap: it resolves when the Lease, as the API
//! server has it, is no longer held by this replica, or could not be confirmed before
//! its last renewal expired; the operator then stops reconciling at once. The lease
//! manager and this check use their own client, so reconcile traffic (and its rate limit)
//! never delays a renewal.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tracing::warn;

/// Seconds a lease stays valid after its last renewal: the longest a standby waits
/// after the leader dies without releasing it (the default of `--lease-duration-seconds`).
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The holder renews this many seconds before expiry (tolerated clock skew), at most.
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// How long a Lease lasts and how early its holder renews it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Seconds the Lease stays valid after its last renewal.
    pub duration: u64,
    /// The holder renews this many seconds before expiry.
    pub grace: u64,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self::with_duration(LEASE_DURATION_SECONDS)
    }
}

impl LeaseTiming {
    /// A lease of `duration` seconds (at least 2), renewed a third of it (at most
    /// [`LEASE_GRACE_SECONDS`], at least 1 s) before expiry: 15 s → renewed every 10 s.
    pub fn with_duration(duration: u64) -> Self {
        let duration = duration.max(2);
        Self {
            duration,
            grace: (duration / 3).clamp(1, LEASE_GRACE_SECONDS),
        }
    }

    /// The lease duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }
}
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
    timing: LeaseTiming,
) -> Result<LeaseManager, LeaseManagerError> {
    LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_field_manager(field_manager(identity))
        .with_identity(identity)
        .with_duration(timing.duration)
        .with_grace(timing.grace)
        .build()
        .await
}

/// When the Lease stops being this replica's: `Some(expiry)` while `identity` holds it
/// (its last renewal plus its duration), None when someone else holds it or it is free.
pub fn held_until(lease: &Lease, identity: &str) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = spec
        .lease_duration_seconds
        .map_or(LEASE_DURATION_SECONDS as i64, i64::from);
    renewed
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .ok()
}

/// Resolves when this replica can no longer be sure it leads: the Lease is held by
/// someone else, or its last renewal expired without a newer one being seen. It reads
/// the Lease shortly before each expiry (about once per renewal period), then every
/// second until a renewal shows up or the deadline passes.
pub async fn renew_deadline(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    timing: LeaseTiming,
) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let mut deadline: Option<Timestamp> = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(lease)) => match held_until(&lease, identity) {
                Some(until) => deadline = Some(until),
                None => {
                    warn!(lease = name, "The Lease is held by another replica");
                    return;
                }
            },
            Ok(None) => {
                warn!(lease = name, "The Lease is gone");
                return;
            }
            Err(e) => warn!(error = %e, "Cannot read the Lease to confirm leadership"),
        }
        let now = Timestamp::now();
        let Some(until) = deadline else {
            // Not confirmed even once yet: the lease manager just said we lead; give it
            // one lease duration to show it.
            deadline = now
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                    timing.duration as i64,
                ))
                .ok();
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if now >= until {
            warn!(
                lease = name,
                "The Lease expired without a renewal: stepping down"
            );
            return;
        }
        let left = until.duration_since(now).unsigned_abs();
        // Look again a second after the renewal is due, or every second once it is late.
        let renew_due = left.saturating_sub(Duration::from_secs(timing.grace));
        let wait = if renew_due > Duration::ZERO {
            renew_due + Duration::from_secs(1)
        } else {
            Duration::from_secs(1).min(left)
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64, duration: i32) -> Lease {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    // Held until the last renewal plus the lease duration; not held when someone else has it.
    #[test]
    fn lease_expiry() {
        let until = held_until(&lease("pod-a", 1_000, 15), "pod-a").unwrap();
        assert_eq!(until, Timestamp::from_second(1_015).unwrap());
        assert!(held_until(&lease("pod-b", 1_000, 15), "pod-a").is_none());
    }

    // Two replicas never share a field manager (their lock conflicts would go unseen).
    #[test]
    fn field_managers_are_per_replica() {
        assert_ne!(field_manager("pod-a"), field_manager("pod-b"));
        assert!(field_manager("pod-a").starts_with(LEASE_FIELD_MANAGER_PREFIX));
    }
}
