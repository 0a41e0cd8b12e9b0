//! Rollout, autoscaling and the disruption budget: settings that let a rollout progress
//! and a node drain finish.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    DEFAULT_CPU_TARGET, DEFAULT_MIN_REPLICAS, DEFAULT_REPLICAS, Problems, ResolvedAutoscaling,
};
use crate::api::SafeAppSpec;

/// Checks replicas, rollout, autoscaling and the disruption budget; returns the
/// Deployment's replicas (None when the HPA owns them) and the resolved autoscaling.
pub(super) fn check_scaling(
    p: &mut Problems,
    spec: &SafeAppSpec,
) -> (Option<i32>, Option<ResolvedAutoscaling>) {
    if let Some(r) = spec.replicas
        && r < 0
    {
        p.add("spec.replicas", format!("{r} is negative"));
    }
    check_rollout(p, spec);
    let autoscaling = check_autoscaling(p, spec);
    let replicas = if autoscaling.is_some() {
        None
    } else {
        Some(spec.replicas.unwrap_or(DEFAULT_REPLICAS))
    };
    let floor = autoscaling
        .as_ref()
        .map(|a| a.min_replicas)
        .or(replicas)
        .unwrap_or(DEFAULT_REPLICAS);
    check_disruption_budget(p, spec, floor);
    (replicas, autoscaling)
}

/// Int or percent ("25%"); returns (value, is_percent).
fn int_or_percent(v: &IntOrString) -> Result<(i64, bool), String> {
    match v {
        IntOrString::Int(n) if *n < 0 => Err(format!("{n} is negative")),
        IntOrString::Int(n) => Ok((i64::from(*n), false)),
        IntOrString::String(s) => {
            let num = s
                .strip_suffix('%')
                .ok_or_else(|| format!("{s:?} must be a number or a percentage like \"25%\""))?;
            let n: i64 = num
                .parse()
                .map_err(|_| format!("{s:?} must be a number or a percentage like \"25%\""))?;
            if !(0..=100).contains(&n) {
                return Err(format!("{s:?} must be between 0% and 100%"));
            }
            Ok((n, true))
        }
    }
}

fn check_rollout(p: &mut Problems, spec: &SafeAppSpec) {
    let Some(r) = &spec.rollout else { return };
    let surge = r.max_surge.as_ref().map(int_or_percent);
    let unavailable = r.max_unavailable.as_ref().map(int_or_percent);
    if let Some(Err(e)) = &surge {
        p.add("spec.rollout.maxSurge", e.clone());
    }
    if let Some(Err(e)) = &unavailable {
        p.add("spec.rollout.maxUnavailable", e.clone());
    }
    let surge_zero = matches!(surge, Some(Ok((0, _))));
    let unavailable_zero = matches!(unavailable, None | Some(Ok((0, _))));
    if surge_zero && unavailable_zero {
        p.add(
            "spec.rollout.maxSurge",
            "maxSurge and maxUnavailable are both zero (maxUnavailable defaults to 0): a rollout could never progress",
        );
    }
    let min_ready = r.min_ready_seconds.unwrap_or(5);
    let deadline = r.progress_deadline_seconds.unwrap_or(600);
    if min_ready < 0 {
        p.add(
            "spec.rollout.minReadySeconds",
            format!("{min_ready} is negative"),
        );
    }
    if deadline <= min_ready {
        p.add(
            "spec.rollout.progressDeadlineSeconds",
            format!("{deadline} must be greater than minReadySeconds {min_ready}"),
        );
    }
    if let Some(h) = r.revision_history_limit
        && h < 0
    {
        p.add(
            "spec.rollout.revisionHistoryLimit",
            format!("{h} is negative"),
        );
    }
}

fn check_autoscaling(p: &mut Problems, spec: &SafeAppSpec) -> Option<ResolvedAutoscaling> {
    let a = spec.autoscaling.as_ref()?;
    if a.max_replicas < 1 {
        p.add(
            "spec.autoscaling.maxReplicas",
            format!("{} must be at least 1", a.max_replicas),
        );
    }
    let min = a
        .min_replicas
        .unwrap_or(DEFAULT_MIN_REPLICAS.min(a.max_replicas.max(1)));
    if min < 1 {
        p.add(
            "spec.autoscaling.minReplicas",
            format!("{min} must be at least 1"),
        );
    }
    if a.min_replicas.is_some() && min > a.max_replicas {
        p.add(
            "spec.autoscaling.minReplicas",
            format!("{min} is greater than maxReplicas {}", a.max_replicas),
        );
    }
    for (path, t) in [
        (
            "spec.autoscaling.targetCPUUtilizationPercentage",
            a.target_cpu_utilization_percentage,
        ),
        (
            "spec.autoscaling.targetMemoryUtilizationPercentage",
            a.target_memory_utilization_percentage,
        ),
    ] {
        if t.is_some_and(|t| t < 1) {
            p.add(path, "must be at least 1");
        }
    }
    let (cpu, mem) = match (
        a.target_cpu_utilization_percentage,
        a.target_memory_utilization_percentage,
    ) {
        (None, None) => (Some(DEFAULT_CPU_TARGET), None),
        other => other,
    };
    Some(ResolvedAutoscaling {
        min_replicas: min,
        max_replicas: a.max_replicas,
        cpu_target: cpu,
        memory_target: mem,
        custom: Vec::new(),
    })
}

/// A PDB that allows no voluntary eviction blocks every node drain: refuse it.
fn check_disruption_budget(p: &mut Problems, spec: &SafeAppSpec, replicas: i32) {
    let Some(b) = &spec.disruption_budget else {
        return;
    };
    if b.min_available.is_some() && b.max_unavailable.is_some() {
        p.add(
            "spec.disruptionBudget",
            "set minAvailable or maxUnavailable, not both",
        );
        return;
    }
    if let Some(v) = &b.max_unavailable {
        match int_or_percent(v) {
            Err(e) => p.add("spec.disruptionBudget.maxUnavailable", e),
            Ok((0, _)) => p.add(
                "spec.disruptionBudget.maxUnavailable",
                "0 allows no eviction and blocks every node drain; use at least 1",
            ),
            Ok(_) => {}
        }
    }
    if let Some(v) = &b.min_available {
        match int_or_percent(v) {
            Err(e) => p.add("spec.disruptionBudget.minAvailable", e),
            Ok((100, true)) => p.add(
                "spec.disruptionBudget.minAvailable",
                "100% allows no eviction and blocks every node drain",
            ),
            Ok((n, false)) if n >= i64::from(replicas) && replicas > 0 => p.add(
                "spec.disruptionBudget.minAvailable",
                format!(
                    "{n} is not below the replica count {replicas}: it blocks every node drain"
                ),
            ),
            Ok(_) => {}
        }
    }
}
