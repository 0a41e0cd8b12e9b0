//! Graceful shutdown: the grace period must outlast the preStop pause.

use super::Problems;
use crate::api::SafeAppSpec;
use crate::api::v1alpha1::PreStopMode;
use crate::policy::Policy;

/// Shutdown settings with the policy's defaults applied.
pub(super) struct ResolvedShutdown {
    pub pre_stop_sleep_seconds: i64,
    pub pre_stop_mode: PreStopMode,
    pub termination_grace_period_seconds: i64,
}

pub(super) fn check_shutdown(
    p: &mut Problems,
    spec: &SafeAppSpec,
    policy: &Policy,
) -> ResolvedShutdown {
    let sd = spec.shutdown.clone().unwrap_or_default();
    let sleep = sd
        .pre_stop_sleep_seconds
        .unwrap_or(policy.defaults.pre_stop_sleep_seconds);
    let grace = sd
        .termination_grace_period_seconds
        .unwrap_or(policy.defaults.termination_grace_period_seconds);
    if sleep < 0 {
        p.add(
            "spec.shutdown.preStopSleepSeconds",
            format!("{sleep} is negative"),
        );
    }
    if grace <= sleep {
        let origin = if sd.termination_grace_period_seconds.is_some() {
            ""
        } else {
            " (the default)"
        };
        p.add(
            "spec.shutdown.terminationGracePeriodSeconds",
            format!("{grace}{origin} must be greater than preStopSleepSeconds {sleep}, or SIGKILL cuts the drain short"),
        );
    }
    ResolvedShutdown {
        pre_stop_sleep_seconds: sleep,
        pre_stop_mode: sd.pre_stop_mode.unwrap_or(PreStopMode::Sleep),
        termination_grace_period_seconds: grace,
    }
}
