//! A SafeJob's one workload object: a `batch/v1` CronJob when it has a schedule, else a
//! Job. Both run the shared pod (`pod.rs`) with `restartPolicy: Never` and a pod failure
//! policy under which a node drain or a preemption is not a failure; each default below
//! is named where it is applied. No Service, PodDisruptionBudget or HPA: a run is not
//! served traffic, and a disruption budget would block node drains for its whole run.

use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec, PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{labels, meta, pod};
use crate::api::safejob::{ConcurrencyPolicy, JobRestartPolicy};
use crate::policy::Policy;
use crate::validate::ValidatedJob;

/// Overlapping runs of work that is not idempotent corrupt data: skip a run while the
/// last one still runs.
pub const DEFAULT_CONCURRENCY_POLICY: ConcurrencyPolicy = ConcurrencyPolicy::Forbid;
/// A run that cannot start within 5 minutes of its time is skipped; a controller that was
/// down does not fire every missed run at once (nor stop after 100 missed ones).
pub const DEFAULT_STARTING_DEADLINE_SECONDS: i64 = 300;
/// Enough retries for a flaky dependency, few enough that a broken job fails soon.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 3;
/// A finished one-off Job (and its pods' logs) stays a day for debugging, then goes.
pub const DEFAULT_TTL_SECONDS_AFTER_FINISHED: i32 = 86_400;
/// Scheduled runs kept: enough to compare the last few, of each outcome.
pub const DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT: i32 = 3;
pub const DEFAULT_FAILED_JOBS_HISTORY_LIMIT: i32 = 3;
/// The pod condition Kubernetes sets on a pod it disrupts (drain, preemption, eviction).
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

/// The CronJob of a scheduled SafeJob; None for a one-off one.
pub fn cron_job(job: &ValidatedJob, policy: &Policy) -> Option<CronJob> {
    let spec = &job.spec;
    let schedule = spec.schedule.clone()?;
    Some(CronJob {
        metadata: meta::child_meta(&job.pod),
        spec: Some(CronJobSpec {
            schedule,
            time_zone: spec.time_zone.clone(),
            concurrency_policy: Some(
                spec.concurrency_policy
                    .unwrap_or(DEFAULT_CONCURRENCY_POLICY)
                    .as_str()
                    .into(),
            ),
            starting_deadline_seconds: Some(
                spec.starting_deadline_seconds
                    .unwrap_or(DEFAULT_STARTING_DEADLINE_SECONDS),
            ),
            // Stated, so a `kubectl patch` that suspends it is put back: the SafeJob says.
            suspend: Some(spec.suspend.unwrap_or(false)),
            successful_jobs_history_limit: Some(
                spec.successful_jobs_history_limit
                    .unwrap_or(DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT),
            ),
            failed_jobs_history_limit: Some(
                spec.failed_jobs_history_limit
                    .unwrap_or(DEFAULT_FAILED_JOBS_HISTORY_LIMIT),
            ),
            job_template: JobTemplateSpec {
                // The runs carry the labels too: they are found, and cached, by them.
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(&job.pod)),
                    annotations: meta::non_empty(labels::annotations(&job.pod)),
                    ..ObjectMeta::default()
                }),
                spec: Some(job_spec(job, policy)),
            },
        }),
        status: None,
    })
}

/// The Job of a one-off SafeJob; None for a scheduled one.
pub fn job(job: &ValidatedJob, policy: &Policy) -> Option<Job> {
    if job.is_scheduled() {
        return None;
    }
    let mut spec = job_spec(job, policy);
    spec.ttl_seconds_after_finished = Some(
        job.spec
            .ttl_seconds_after_finished
            .unwrap_or(DEFAULT_TTL_SECONDS_AFTER_FINISHED),
    );
    Some(Job {
        metadata: meta::child_meta(&job.pod),
        spec: Some(spec),
        status: None,
    })
}

/// What every run is: the shared pod, retries, deadline, parallelism.
fn job_spec(job: &ValidatedJob, policy: &Policy) -> JobSpec {
    let spec = &job.spec;
    let restart = spec.restart_policy.unwrap_or(JobRestartPolicy::Never);
    let mut template = pod::template(&job.pod, policy);
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some(restart.as_str().into());
        pod.termination_grace_period_seconds = Some(
            // The policy's default, as for a SafeApp (stated: the template is complete).
            spec.termination_grace_period_seconds
                .unwrap_or(policy.defaults.termination_grace_period_seconds),
        );
    }
    JobSpec {
        // Required or from the policy (validation): a job never runs forever.
        active_deadline_seconds: Some(job.active_deadline_seconds),
        backoff_limit: Some(spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
        // Unset with parallelism alone: the work-queue pattern (done when a pod succeeds
        // and none runs). Kubernetes defaults both to 1 otherwise.
        completions: spec.completions,
        parallelism: spec.parallelism,
        completion_mode: spec.completion_mode.map(|m| m.as_str().into()),
        pod_failure_policy: pod_failure_policy(job, restart),
        template,
        ..JobSpec::default()
    }
}

/// Disruptions are not failures (default), and the listed exit codes fail the run at
/// once. Kubernetes allows a pod failure policy only with `restartPolicy: Never`.
fn pod_failure_policy(job: &ValidatedJob, restart: JobRestartPolicy) -> Option<PodFailurePolicy> {
    if restart != JobRestartPolicy::Never {
        return None;
    }
    let spec = &job.spec;
    let mut rules = Vec::new();
    if spec.ignore_disruptions.unwrap_or(true) {
        rules.push(PodFailurePolicyRule {
            action: "Ignore".into(),
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: DISRUPTION_TARGET.into(),
                status: "True".into(),
            }]),
            on_exit_codes: None,
        });
    }
    let mut codes = spec.fail_on_exit_codes.clone().unwrap_or_default();
    codes.sort_unstable();
    codes.dedup();
    if !codes.is_empty() {
        rules.push(PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some(job.pod.name.clone()),
                operator: "In".into(),
                values: codes,
            }),
            on_pod_conditions: None,
        });
    }
    (!rules.is_empty()).then_some(PodFailurePolicy { rules })
}
