//! Validation of a SafeJob: the shared pod checks (`pod.rs`, the same as a SafeApp's),
//! then what a run needs: schedule and zone, deadlines, retries, parallelism, and
//! settings that only mean something for one form (scheduled or one-off).

use super::pod::{ValidatedPod, check_pod};
use super::{FieldError, Problems, schedule};
use crate::api::safejob::{CompletionMode, JobRestartPolicy};
use crate::api::{SafeJob, SafeJobSpec, WorkloadKind};
use crate::policy::Policy;

/// A SafeJob that passed validation, with the deadline resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedJob {
    /// The pod, as both kinds validate it.
    pub pod: ValidatedPod,
    pub spec: SafeJobSpec,
    /// `spec.activeDeadlineSeconds`, or the policy's default.
    pub active_deadline_seconds: i64,
}

impl ValidatedJob {
    /// Scheduled (a CronJob) or one-off (a Job).
    pub fn is_scheduled(&self) -> bool {
        self.spec.schedule.is_some()
    }
}

/// Validates a SafeJob against the contract and the policy; returns every problem.
pub fn validate_job(job: &SafeJob, policy: &Policy) -> Result<ValidatedJob, Vec<FieldError>> {
    let mut p = Problems::default();
    let spec = &job.spec;
    let pod = check_pod(
        &mut p,
        WorkloadKind::SafeJob,
        &job.metadata,
        &spec.pod,
        policy,
    );
    check_schedule(&mut p, spec);
    let active_deadline_seconds = check_run(&mut p, spec, policy);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(ValidatedJob {
        pod,
        spec: spec.clone(),
        active_deadline_seconds,
    })
}

/// The schedule and zone, and the settings that belong to one form only.
fn check_schedule(p: &mut Problems, spec: &SafeJobSpec) {
    match &spec.schedule {
        Some(s) => {
            p.check("spec.schedule", schedule::check_schedule(s));
            match &spec.time_zone {
                Some(zone) => p.check("spec.timeZone", schedule::check_time_zone(zone)),
                None => p.add(
                    "spec.timeZone",
                    "required with spec.schedule (an IANA name such as Europe/Oslo or Etc/UTC); without it the schedule is read in the controller manager's zone",
                ),
            }
            if spec.ttl_seconds_after_finished.is_some() {
                p.add(
                    "spec.ttlSecondsAfterFinished",
                    "for one-off SafeJobs only; scheduled runs are kept by successfulJobsHistoryLimit and failedJobsHistoryLimit",
                );
            }
            if spec.starting_deadline_seconds.is_some_and(|s| s < 10) {
                p.add(
                    "spec.startingDeadlineSeconds",
                    "must be at least 10: the CronJob controller looks every 10 seconds, so a shorter deadline can miss every run",
                );
            }
        }
        None => {
            let scheduled_only = [
                ("spec.timeZone", spec.time_zone.is_some()),
                ("spec.concurrencyPolicy", spec.concurrency_policy.is_some()),
                (
                    "spec.startingDeadlineSeconds",
                    spec.starting_deadline_seconds.is_some(),
                ),
                ("spec.suspend", spec.suspend.is_some()),
                (
                    "spec.successfulJobsHistoryLimit",
                    spec.successful_jobs_history_limit.is_some(),
                ),
                (
                    "spec.failedJobsHistoryLimit",
                    spec.failed_jobs_history_limit.is_some(),
                ),
            ];
            for (path, set) in scheduled_only {
                if set {
                    p.add(
                        path,
                        "only means something with spec.schedule (this SafeJob runs once)",
                    );
                }
            }
        }
    }
}

/// Deadlines, retries and parallelism; returns the active deadline.
fn check_run(p: &mut Problems, spec: &SafeJobSpec, policy: &Policy) -> i64 {
    let deadline = spec
        .active_deadline_seconds
        .or(policy.defaults.job_active_deadline_seconds);
    match deadline {
        Some(s) if s < 1 => p.add("spec.activeDeadlineSeconds", "must be at least 1"),
        Some(_) => {}
        None => p.add(
            "spec.activeDeadlineSeconds",
            "required (the operator policy sets no defaults.jobActiveDeadlineSeconds): the longest a run may take, so a stuck job does not run forever",
        ),
    }
    for (path, value, min) in [
        ("spec.backoffLimit", spec.backoff_limit, 0),
        ("spec.completions", spec.completions, 1),
        ("spec.parallelism", spec.parallelism, 1),
        (
            "spec.successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
            0,
        ),
        (
            "spec.failedJobsHistoryLimit",
            spec.failed_jobs_history_limit,
            0,
        ),
        // The operator must see the outcome before the Job goes.
        (
            "spec.ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished,
            60,
        ),
    ] {
        if value.is_some_and(|v| v < min) {
            p.add(path, format!("must be at least {min}"));
        }
    }
    if spec.termination_grace_period_seconds.is_some_and(|s| s < 1) {
        p.add("spec.terminationGracePeriodSeconds", "must be at least 1");
    }
    if let (Some(par), Some(comp)) = (spec.parallelism, spec.completions)
        && par > comp
    {
        p.add(
            "spec.parallelism",
            format!(
                "{par} is greater than spec.completions ({comp}): the extra pods could never run"
            ),
        );
    }
    if spec.completion_mode == Some(CompletionMode::Indexed) && spec.completions.is_none() {
        p.add(
            "spec.completionMode",
            "Indexed needs spec.completions (the number of indexes)",
        );
    }
    let on_failure = spec.restart_policy == Some(JobRestartPolicy::OnFailure);
    if on_failure && spec.ignore_disruptions == Some(true) {
        p.add(
            "spec.ignoreDisruptions",
            "needs restartPolicy Never: Kubernetes judges pod failures (and so disruptions) only for pods that are not restarted in place",
        );
    }
    let codes = spec.fail_on_exit_codes.as_deref().unwrap_or_default();
    if on_failure && !codes.is_empty() {
        p.add(
            "spec.failOnExitCodes",
            "needs restartPolicy Never (a pod failure policy judges exit codes of pods that are not restarted in place)",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, code) in codes.iter().enumerate() {
        if !(1..=255).contains(code) {
            p.add(
                format!("spec.failOnExitCodes[{i}]"),
                format!("{code} is not a failing exit code (1-255)"),
            );
        } else if !seen.insert(*code) {
            p.add(
                format!("spec.failOnExitCodes[{i}]"),
                format!("{code} is listed twice"),
            );
        }
    }
    deadline.unwrap_or(0)
}
