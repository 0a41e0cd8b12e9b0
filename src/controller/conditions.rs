//! Condition types and reasons of `SafeApp.status.conditions` (and SafeJob's), the kstatus
//! rules that complete every condition list ([`kstatus`]), and the one helper that sets a
//! condition while keeping `lastTransitionTime` unless its status flips.
//!
//! The three conditions GitOps tools read (kstatus: Flux, kpt, Config Sync; the Argo CD
//! health checks in `config/argocd`) are on every status the operator writes:
//! - `Ready` (normal-true): everything the spec asks for is applied and available.
//! - `Reconciling` (abnormal-true): the operator, or the workload, is still working toward
//!   the spec; its reason says on what.
//! - `Stalled` (abnormal-true): nothing will change without a person ([`STALL_REASONS`]).
//!
//! Beside them, only conditions that say something these do not: `Degraded` (serving,
//! but something is wrong: a refused replica, resources outside the namespace's range, a
//! failed run of a schedule), `UpgradePending`, `AccessPoliciesMatched`, `Exposed`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
/// kstatus: still working toward the spec (abnormal-true).
pub const RECONCILING: &str = "Reconciling";
/// kstatus: stuck until a person acts (abnormal-true); the only condition Flux reads as Failed.
pub const STALLED: &str = "Stalled";
pub const DEGRADED: &str = "Degraded";
/// Whether the apps named in `spec.accessPolicy` declare the other side (`access.rs`).
pub const ACCESS_POLICIES_MATCHED: &str = "AccessPoliciesMatched";
/// Whether `spec.expose` is in effect (the Gateway accepted the route; the Ingress exists).
pub const EXPOSED: &str = "Exposed";
/// Prometheus scrapes the app (`spec.metrics`): its PodMonitor exists.
pub const MONITORED: &str = "Monitored";
/// An operator-caused pod-template change waits for its turn (`upgrade.rs`).
pub const UPGRADE_PENDING: &str = "UpgradePending";

pub const REASON_AVAILABLE: &str = "Available";
pub const REASON_ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
pub const REASON_ROLLOUT_COMPLETE: &str = "RolloutComplete";
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const REASON_REPLICA_FAILURE: &str = "ReplicaFailure";
/// A StatefulSet's rollout waits on a pod of the new revision that does not become
/// ready (an `OrderedReady` rollout waits for it forever).
pub const REASON_ROLLOUT_STUCK: &str = "RolloutStuck";
pub const REASON_RESOURCES_OUT_OF_RANGE: &str = "ResourcesOutOfRange";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// The SafeApp lives in a namespace the policy keeps the operator out of.
pub const REASON_NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
pub const REASON_NAME_CONFLICT: &str = "NameConflict";
pub const REASON_PAUSED: &str = "Paused";
/// The Deployment itself is paused (`kubectl rollout pause`).
pub const REASON_DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
pub const REASON_WAITING_FOR_SLOT: &str = "WaitingForSlot";
pub const REASON_DEFERRED: &str = "Deferred";
pub const REASON_UP_TO_DATE: &str = "UpToDate";
pub const REASON_MATCHED: &str = "Matched";
pub const REASON_MISSING_RULES: &str = "MissingRules";
pub const REASON_ROUTE_ACCEPTED: &str = "Accepted";
pub const REASON_ROUTE_PENDING: &str = "Pending";
pub const REASON_ROUTE_NOT_ACCEPTED: &str = "NotAccepted";
pub const REASON_REFS_NOT_RESOLVED: &str = "RefsNotResolved";
/// The HTTPRoute CRD (Gateway API) is not installed.
pub const REASON_GATEWAY_API_MISSING: &str = "GatewayAPIMissing";
/// The PodMonitor CRD (Prometheus Operator) is not installed.
pub const REASON_PROMETHEUS_OPERATOR_MISSING: &str = "PrometheusOperatorMissing";
/// The PodMonitor is in place.
pub const REASON_POD_MONITOR_READY: &str = "PodMonitorApplied";
pub const REASON_INGRESS_CREATED: &str = "IngressCreated";
/// The route exists, but the app's NetworkPolicy keeps the Gateway out.
pub const REASON_BLOCKED_BY_NETWORK_POLICY: &str = "BlockedByNetworkPolicy";
pub const REASON_AS_EXPECTED: &str = "AsExpected";
pub const REASON_WAITING: &str = "WaitingForDeployment";
/// A canary release walks its steps (`spec.rollout.canary`).
pub const REASON_CANARY_PROGRESSING: &str = "CanaryProgressing";
/// The canary passed: the stable Deployment rolls to its template.
pub const REASON_CANARY_PROMOTING: &str = "CanaryPromoting";
/// A canary's gate failed (or a person aborted it): the stable runs the old template.
pub const REASON_CANARY_ABORTED: &str = "CanaryAborted";
/// A ConfigMap or Secret the pods reference does not exist (yet).
pub const REASON_CONFIG_MISSING: &str = "ConfigMissing";

// SafeJob: what its CronJob or Job is doing.
/// A scheduled SafeJob's CronJob is in place.
pub const REASON_SCHEDULED: &str = "Scheduled";
/// A scheduled SafeJob with `suspend: true`: no new runs.
pub const REASON_SUSPENDED: &str = "Suspended";
/// A run is going on.
pub const REASON_RUNNING: &str = "Running";
/// No run is going on.
pub const REASON_IDLE: &str = "Idle";
/// The one-off Job (or the last run) succeeded.
pub const REASON_SUCCEEDED: &str = "Succeeded";
/// A run failed: its Job's Failed reason, when it is one of Kubernetes' own.
pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
/// A one-off Job was removed before its outcome was seen.
pub const REASON_JOB_REMOVED: &str = "JobRemoved";
/// A run failed for a reason not listed above.
pub const REASON_JOB_FAILED: &str = "JobFailed";

/// The condition reason for a Job's Failed reason (a fixed set: reasons are constants).
pub fn job_failure_reason(reason: &str) -> &'static str {
    [
        REASON_BACKOFF_LIMIT_EXCEEDED,
        REASON_DEADLINE_EXCEEDED,
        REASON_POD_FAILURE_POLICY,
        REASON_MAX_FAILED_INDEXES_EXCEEDED,
        REASON_FAILED_INDEXES,
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or(REASON_JOB_FAILED)
}

// A child could not be read or written: the reason names the kind of failure.
pub const REASON_FORBIDDEN: &str = "Forbidden";
pub const REASON_INVALID: &str = "Invalid";
pub const REASON_CONFLICT: &str = "Conflict";
pub const REASON_NOT_FOUND: &str = "NotFound";
pub const REASON_BAD_REQUEST: &str = "BadRequest";
pub const REASON_TOO_MANY_REQUESTS: &str = "TooManyRequests";
pub const REASON_SERVER_ERROR: &str = "ServerError";
pub const REASON_API_UNREACHABLE: &str = "ApiUnreachable";

/// The condition reason for a failed call: the API's status code, by name (RBAC 403
/// `Forbidden`, admission or schema 422 `Invalid`, quota 403 `Forbidden`...).
pub fn failure_reason(error: &super::Error) -> &'static str {
    match error.api_status() {
        Some(403) => REASON_FORBIDDEN,
        Some(422) => REASON_INVALID,
        Some(409) => REASON_CONFLICT,
        Some(404) => REASON_NOT_FOUND,
        Some(400) => REASON_BAD_REQUEST,
        Some(429) => REASON_TOO_MANY_REQUESTS,
        Some(_) => REASON_SERVER_ERROR,
        None => REASON_API_UNREACHABLE,
    }
}

/// Reasons that mean nothing will change without a person: a spec the operator refuses,
/// an object in the way, a namespace it may not act in, a rollout past its deadline,
/// pods admission will refuse, a child the API server refuses (RBAC, schema, admission),
/// a one-off Job that failed or vanished. Transient failures (server errors, throttling,
/// conflicts, an unreachable API) are retried: they are `Reconciling`, not `Stalled`.
pub const STALL_REASONS: &[&str] = &[
    REASON_INVALID_SPEC,
    REASON_NAME_CONFLICT,
    REASON_NAMESPACE_NOT_ALLOWED,
    REASON_PROGRESS_DEADLINE_EXCEEDED,
    REASON_ROLLOUT_STUCK,
    REASON_CANARY_ABORTED,
    REASON_RESOURCES_OUT_OF_RANGE,
    REASON_FORBIDDEN,
    REASON_INVALID,
    REASON_BAD_REQUEST,
    REASON_BACKOFF_LIMIT_EXCEEDED,
    REASON_DEADLINE_EXCEEDED,
    REASON_POD_FAILURE_POLICY,
    REASON_MAX_FAILED_INDEXES_EXCEEDED,
    REASON_FAILED_INDEXES,
    REASON_JOB_FAILED,
    REASON_JOB_REMOVED,
];

/// Completes a condition list by the kstatus rules, so that every status says the same
/// thing in the same way: `Ready`, `Reconciling` and `Stalled` first, in that order, then
/// the others as given. `Stalled` is True when `Ready` is False for a reason of
/// [`STALL_REASONS`] (or `Reconciling` gave one up for such a reason); then `Reconciling`
/// is False with the same reason, since nothing is in progress. Pure.
pub fn kstatus(wanted: Vec<Cond>) -> Vec<Cond> {
    let find = |t: &str| wanted.iter().find(|x| x.type_ == t);
    let ready = find(READY)
        .cloned()
        .unwrap_or_else(|| Cond::new(READY, false, REASON_WAITING, ""));
    let reconciling = find(RECONCILING).cloned();
    let stall = if ready.status {
        None
    } else {
        [Some(&ready), reconciling.as_ref()]
            .into_iter()
            .flatten()
            .find(|x| STALL_REASONS.contains(&x.reason))
            .map(|x| (x.reason, x.message.clone()))
    };
    let (reconciling, stalled) = match stall {
        Some((reason, message)) => (
            Cond::new(RECONCILING, false, reason, message.clone()),
            Cond::new(STALLED, true, reason, message),
        ),
        None => (
            reconciling.unwrap_or_else(|| {
                Cond::new(
                    RECONCILING,
                    !ready.status,
                    ready.reason,
                    ready.message.clone(),
                )
            }),
            Cond::new(STALLED, false, REASON_AS_EXPECTED, ""),
        ),
    };
    let mut out = vec![ready, reconciling, stalled];
    out.extend(
        wanted
            .into_iter()
            .filter(|x| ![READY, RECONCILING, STALLED].contains(&x.type_)),
    );
    out
}

/// A condition without its transition time (filled in by [`merge`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The new condition list: each of `wanted` keeps the old `lastTransitionTime` when its
/// status did not change, and gets `now` when it did (or is new).
pub fn merge(
    old: Option<&[Condition]>,
    wanted: &[Cond],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let previous = old.into_iter().flatten().find(|o| o.type_ == c.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: c.type_.into(),
                status: status.into(),
                reason: c.reason.into(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    // lastTransitionTime moves only when a condition's status flips.
    #[test]
    fn transition_time_moves_only_on_flip() {
        let t0 = Time(Timestamp::from_second(1_000).unwrap());
        let t1 = Time(Timestamp::from_second(2_000).unwrap());
        let first = merge(
            None,
            &[Cond::new(READY, false, REASON_WAITING, "")],
            Some(1),
            &t0,
        );
        assert_eq!(first[0].last_transition_time, t0);
        let same = merge(
            Some(&first),
            &[Cond::new(READY, false, REASON_ROLLOUT_IN_PROGRESS, "x")],
            Some(2),
            &t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(same[0].reason, REASON_ROLLOUT_IN_PROGRESS);
        let flipped = merge(
            Some(&same),
            &[Cond::new(READY, true, REASON_AVAILABLE, "")],
            Some(2),
            &t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
    }
}
