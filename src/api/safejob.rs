//! `SafeJob` v1alpha1: batch and scheduled work with the practices SafeApp applies to
//! services. The container and pod fields are SafeApp's own ([`PodFields`], flattened),
//! so both kinds share one schema for them, one validation and one pod builder; this
//! file holds only what a run needs: schedule, retries, deadlines, history, parallelism.
//!
//! A one-off SafeJob (no `schedule`) is immutable once its Job was created: the Job's pod
//! template cannot change, and re-running a migration because a label was edited would
//! be worse than refusing. The CEL rule on the object says so at `kubectl apply` time
//! (`status.jobName`, which the operator writes before it creates the Job, marks the
//! moment; until then a refused spec can still be fixed); a re-run is a new SafeJob (a
//! new name, e.g. `migrate-v43`), or a delete and create.

// kube's printcolumn(...) entries repeat `type_ = ...` by design; clippy reads that as
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pod::PodFields;
use super::v1alpha1::{DriftCorrection, ManagedObject};

/// The CEL message of the one-off immutability rule (also used by the tests).
pub const IMMUTABLE_MESSAGE: &str = "spec: a one-off SafeJob (no spec.schedule) cannot change once its Job was created (status.jobName): the Job ran or runs, and its pod template is immutable. To run again, create a SafeJob under a new name (e.g. migrate-v43), or delete this one and create it again";

/// The one-off immutability rule, on the whole object: the status (which a spec update
/// cannot change) says whether the Job was created.
pub const IMMUTABLE_RULE: &str = "has(oldSelf.spec.schedule) || !has(oldSelf.status) || !has(oldSelf.status.jobName) || self.spec == oldSelf.spec";

/// Desired state of a SafeJob: one batch workload, rendered into a `batch/v1` CronJob
/// when it has a `schedule`, or into one Job when it has none.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "safeapp.dev",
    version = "v1alpha1",
    kind = "SafeJob",
    plural = "safejobs",
    shortname = "sjob",
    namespaced,
    status = "SafeJobStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A SafeJob is batch or scheduled work run the way the best-run jobs are.",
    validation = Rule::new(IMMUTABLE_RULE).message(IMMUTABLE_MESSAGE),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(
        name = "Last Run",
        type_ = "date",
        json_path = ".status.lastScheduleTime"
    ),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessfulTime"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.schedule) || has(self.timeZone)")
    .message("spec.timeZone: required with spec.schedule (an IANA name such as Europe/Oslo or Etc/UTC); without it the schedule is read in the controller manager's zone"))]
#[x_kube(validation = Rule::new("has(self.schedule) || !has(self.timeZone)")
    .message("spec.timeZone: only means something with spec.schedule"))]
#[x_kube(validation = Rule::new("!has(self.parallelism) || !has(self.completions) || self.parallelism <= self.completions")
    .message("spec.parallelism: must not be greater than spec.completions"))]
#[serde(rename_all = "camelCase")]
pub struct SafeJobSpec {
    /// The container and pod fields SafeJob shares with SafeApp (flattened: they sit
    /// directly under `spec`).
    #[serde(flatten)]
    pub pod: PodFields,

    /// Cron schedule (5 fields, or @hourly, @daily, ...): renders a CronJob. Without it,
    /// one Job runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4})$')")
        .message("spec.schedule: five fields (minute hour day-of-month month day-of-week) or one of @yearly, @monthly, @weekly, @daily, @hourly"))]
    #[x_kube(validation = Rule::new("!self.contains('TZ=')")
        .message("spec.schedule: put the zone in spec.timeZone, not TZ= or CRON_TZ= in the schedule"))]
    pub schedule: Option<String>,

    /// IANA time zone the schedule is read in (e.g. Europe/Oslo, Etc/UTC). Required with
    /// `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,

    /// What a run does when the previous one is still going. Default Forbid: overlapping
    /// runs of work that is not idempotent corrupt data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,

    /// A run that could not start within this many seconds of its time is skipped, and a
    /// controller that was down does not fire a burst of missed runs. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10))]
    pub starting_deadline_seconds: Option<i64>,

    /// Stop scheduling new runs (running ones go on). Scheduled SafeJobs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Finished runs kept (CronJob). Default 3 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: Option<i32>,

    /// Retries of a failed pod before the run fails. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: Option<i32>,

    /// Longest a run may take, retries included, before it is stopped and failed.
    /// Required unless the operator policy sets `defaults.jobActiveDeadlineSeconds`: a
    /// job never runs forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds a finished one-off Job (and its pods' logs) is kept before it is deleted.
    /// Default 86400 (a day); at least 60, so the operator sees the outcome before the
    /// Job goes. Scheduled runs are kept by the history limits instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60))]
    pub ttl_seconds_after_finished: Option<i32>,

    /// Successful pods needed to finish (fixed-count work). Default: unset with
    /// `parallelism` (a work queue: done when any pod succeeds and none runs), else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub completions: Option<i32>,

    /// Pods running at once. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub parallelism: Option<i32>,

    /// Indexed gives each pod of a fixed-count job its index
    /// (`JOB_COMPLETION_INDEX`). Default NonIndexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<CompletionMode>,

    /// Never (default): a failed pod is replaced by a new one, which the pod failure
    /// policy can judge. OnFailure restarts the container in place, and then a node
    /// drain counts as a failure (Kubernetes allows the pod failure policy with Never
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<JobRestartPolicy>,

    /// Pod disruptions (node drain, preemption, eviction) do not count against
    /// `backoffLimit`. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_disruptions: Option<bool>,

    /// Exit codes of the app container that mean retrying cannot help (bad input, a
    /// migration already applied): the run fails at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub fail_on_exit_codes: Option<Vec<i32>>,

    /// Grace period of the pods on stop, in seconds. Default: the operator policy's
    /// (30 built in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub termination_grace_period_seconds: Option<i64>,

    /// When true the operator changes nothing and reports Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// What a scheduled run does when the previous one is still running.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip the new run (default).
    Forbid,
    /// Stop the running one and start the new one.
    Replace,
    /// Run both.
    Allow,
}

impl ConcurrencyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbid => "Forbid",
            Self::Replace => "Replace",
            Self::Allow => "Allow",
        }
    }
}

/// Job completion mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CompletionMode {
    NonIndexed,
    Indexed,
}

impl CompletionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NonIndexed => "NonIndexed",
            Self::Indexed => "Indexed",
        }
    }
}

/// Restart policy of a job's pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JobRestartPolicy {
    Never,
    OnFailure,
}

impl JobRestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "Never",
            Self::OnFailure => "OnFailure",
        }
    }
}

/// Observed state of a SafeJob, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SafeJobStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled (the kstatus conditions GitOps tools read), and
    /// Degraded, as on a SafeApp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// When the last run started (the CronJob's last schedule; the one-off Job's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a run last finished successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// Runs going on now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// The most recent failed run, and why it failed (from its Job's conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<JobFailure>,
    /// The Job a one-off SafeJob created. Set once: that Job is never created again,
    /// even after `ttlSecondsAfterFinished` has removed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// The objects this SafeJob manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_objects: Option<Vec<ManagedObject>>,
    /// The most recent drift the operator put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_correction: Option<DriftCorrection>,
}

/// One failed run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFailure {
    /// The Job of the run.
    pub job_name: String,
    /// Its Failed condition's reason: BackoffLimitExceeded, DeadlineExceeded,
    /// PodFailurePolicy, ...
    pub reason: String,
    /// Its Failed condition's message.
    #[serde(default)]
    pub message: String,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}
