//! One reconcile of one SafeJob: namespace allowed? → paused? → validate → render →
//! sync its CronJob or Job → events → status. The same machinery as a SafeApp's
//! (`apply` to compare, write, prune and refuse foreign objects; `outcome` for reports
//! and Events; `status` for the patch): only the workload and the status differ.
//!
//! - **Scheduled** (a CronJob): updated in place and drift-repaired like any child.
//! - **One-off** (a Job): created once, then only read. `status.jobName` records the
//!   create in the same status write as everything else, whatever else failed; from then
//!   on the spec is immutable (CEL) and the SafeJob is only observed: not validated again
//!   (a policy rule added later does not turn a finished migration into InvalidSpec),
//!   not applied, and a Job that is gone (`ttlSecondsAfterFinished`, at least 60 s, or
//!   deleted by hand) is not created again. A re-run is a new SafeJob. The name is not
//!   recorded *before* the create on purpose: a create the API server refuses must leave
//!   the spec fixable. What is left: a status write that fails after the create *and* the
//!   Job deleted by hand before the retry (seconds later) would run it again.
//! - **Status**: the last schedule and success times and the active runs come from the
//!   CronJob's status or the Job's; the last failed run's reason from the Failed
//!   condition of the newest failed Job. Ready, Reconciling, Stalled and Degraded mean
//!   what they mean on a SafeApp (`conditions.rs`): done, something going on, a person
//!   must act, something failed.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::instrument;

use crate::api::safejob::JobFailure;
use crate::api::v1alpha1::ManagedObject;
use crate::api::{SafeJob, SafeJobStatus, WorkloadKind};
use crate::controller::apply::{self, Change, Ownership, SyncCtx};
use crate::controller::backoff::with_jitter;
use crate::controller::conditions::{self as c, Cond};
use crate::controller::outcome::{self, Outcome, announce};
use crate::controller::{Context, Error, events, status};
use crate::render::{self, JobResources};
use crate::validate::{self, ValidatedJob};

const BATCH: &str = "batch/v1";

/// Reconciles one SafeJob. Invalid and paused ones write nothing but their status and
/// wait for a change; the others requeue after the resync period. A failure reaches the
/// status, then fails the reconcile so that it is retried with backoff.
#[instrument(skip_all, fields(name = %job.name_any(), namespace = job.namespace().unwrap_or_default()))]
pub async fn reconcile_job(job: &SafeJob, ctx: &Context) -> Result<Action, Error> {
    // The status this operator last wrote, when the watch has not brought it back yet.
    let fresh = ctx.statuses.fresher(job);
    let job = fresh.as_ref().unwrap_or(job);
    let ns = job.namespace().ok_or(Error::MissingNamespace)?;
    let name = job.name_any();
    if job.meta().deletion_timestamp.is_some() {
        // Its CronJob or Job (and their pods) go with it through their ownerReferences.
        return Ok(Action::await_change());
    }
    let uid = job.uid().ok_or(Error::MissingUid)?;
    let now = Time(Timestamp::now());
    let previous = job.status.clone().unwrap_or_default();

    if ctx.policy.guardrails.denies_namespace(&ns) {
        let conds = outcome::namespace_denied(&ns);
        status::write(ctx, job, previous, &conds, &now).await?;
        return Ok(Action::await_change());
    }
    if job.spec.schedule.is_none() && previous.job_name.as_deref() == Some(name.as_str()) {
        return observe_one_off(job, ctx, &ns, &name, &uid, previous, &now).await;
    }
    if job.spec.paused == Some(true) {
        // Whether a run is ready is not known without reading it: not claimed.
        let conds = outcome::paused(false);
        status::write(ctx, job, previous, &conds, &now).await?;
        return Ok(Action::await_change());
    }
    let validated = match validate::validate_job(job, &ctx.policy) {
        Ok(v) => v,
        Err(problems) => {
            let conds = outcome::invalid_spec(job, ctx, &problems).await;
            status::write(ctx, job, previous, &conds, &now).await?;
            return Ok(Action::await_change());
        }
    };

    // Its pods get the namespace's LimitRange (and ResourceQuota) as a SafeApp's do.
    ctx.namespaces
        .observe(&ns, WorkloadKind::SafeJob, &name, &uid);
    let caches = ctx.ready_caches(WorkloadKind::SafeJob).await;
    let previously = outcome::managed_keys(previous.managed_objects.as_deref());
    let sync = SyncCtx {
        spec_changed: previous.observed_generation != job.metadata.generation,
        previously_managed: &previously,
        ..SyncCtx::new(ctx, &ns, caches)
    };
    let own = Ownership::Controller { uid: &uid };
    let JobResources {
        cron_job,
        job: one_off,
    } = render::render_job(&validated, &ctx.policy);
    let mut outcome = Outcome::default();

    let synced = apply::sync::<CronJob>(&sync, "CronJob", &name, cron_job.as_ref(), own).await;
    let live_cron = outcome
        .settle(BATCH, "CronJob", &name, synced)
        .and_then(|s| s.live())
        .filter(|_| cron_job.is_some());
    let live_job = sync_one_off(&sync, &mut outcome, &name, one_off.as_ref(), own)
        .await
        .filter(|_| one_off.is_some());

    let drift = announce(job, ctx, &outcome.reports, &now).await;
    // The runs of a CronJob (one-off Jobs are their own run).
    let runs = match &live_cron {
        Some(cron) => match runs_of(ctx, &sync, &validated, cron).await {
            Ok(runs) => runs,
            Err(e) => {
                outcome.fail(BATCH, "Job", &name, e);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let mut base = SafeJobStatus {
        managed_objects: Some(outcome.managed_objects()),
        last_drift_correction: drift.or(previous.last_drift_correction.clone()),
        ..previous.clone()
    };
    // The Job this SafeJob made is recorded (status.jobName) even when something else
    // failed: it is never made again.
    if let Some(run) = &live_job {
        base = one_off_status(base, run);
    }
    let out_of_range = render::out_of_range(&validated.pod, &ctx.policy);
    let conds = if let Some(blocked) = outcome.blocked(job, ctx).await {
        blocked
    } else if let Some(cron) = &live_cron {
        base = scheduled_status(base, cron, &runs);
        scheduled_conditions(&validated, &base, &out_of_range)
    } else if let Some(run) = &live_job {
        one_off_conditions(run, &out_of_range)
    } else {
        vec![
            Cond::new(c::READY, false, c::REASON_RUNNING, "creating the Job"),
            Cond::new(c::RECONCILING, true, c::REASON_RUNNING, "creating the Job"),
            Cond::new(c::DEGRADED, false, c::REASON_AS_EXPECTED, ""),
        ]
    };
    status::write(ctx, job, base, &conds, &now).await?;
    match outcome.failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(Action::requeue(with_jitter(ctx.resync, &uid))),
    }
}

/// The one-off Job, before `status.jobName` recorded it (afterwards the SafeJob is only
/// observed, `observe_one_off`): created, or one already there (made by this SafeJob)
/// taken as it is, never re-applied. With no one-off Job wanted (a scheduled SafeJob),
/// one left over is pruned. Returns the live Job.
async fn sync_one_off(
    sync: &SyncCtx<'_>,
    outcome: &mut Outcome,
    name: &str,
    desired: Option<&Job>,
    own: Ownership<'_>,
) -> Option<Job> {
    let existing = match apply::read::<Job>(sync, "Job", name).await {
        Ok(existing) => existing,
        Err(e) => {
            outcome.fail(BATCH, "Job", name, e);
            return None;
        }
    };
    if let (Some(live), Some(_)) = (&existing, desired)
        && apply::raw_owned(live, own)
    {
        outcome.record(BATCH, "Job", name, Change::Unchanged);
        return serde_json::from_value(live.clone()).ok();
    }
    let synced = apply::converge::<Job>(sync, "Job", name, desired, own, existing).await;
    outcome
        .settle(BATCH, "Job", name, synced)
        .and_then(|s| s.live())
}

/// A one-off SafeJob whose Job was created: nothing to validate or apply (the spec is
/// immutable, the Job too), only the Job's outcome to report, whatever the policy says
/// now. A Job that is gone (its TTL) leaves the outcome the status recorded.
async fn observe_one_off(
    job: &SafeJob,
    ctx: &Context,
    ns: &str,
    name: &str,
    uid: &str,
    previous: SafeJobStatus,
    now: &Time,
) -> Result<Action, Error> {
    let sync = SyncCtx::new(ctx, ns, ctx.ready_caches(WorkloadKind::SafeJob).await);
    let live: Option<Job> = apply::read::<Job>(&sync, "Job", name)
        .await?
        .filter(|l| apply::raw_owned(l, Ownership::Controller { uid }))
        .and_then(|l| serde_json::from_value(l).ok());
    let (base, conds) = match &live {
        Some(run) => {
            let managed = ManagedObject {
                api_version: BATCH.into(),
                kind: "Job".into(),
                name: name.into(),
            };
            let base = SafeJobStatus {
                managed_objects: Some(vec![managed]),
                ..one_off_status(previous, run)
            };
            (base, one_off_conditions(run, &[]))
        }
        None => {
            let conds = finished_conditions(&previous);
            let base = SafeJobStatus {
                managed_objects: Some(Vec::new()),
                active: Some(0),
                ..previous
            };
            (base, conds)
        }
    };
    status::write(ctx, job, base, &conds, now).await?;
    Ok(Action::requeue(with_jitter(ctx.resync, uid)))
}

/// The runs of a SafeJob's CronJob: the Jobs labelled with its instance and controlled
/// by the CronJob, from the cache (or the API when there is none).
async fn runs_of(
    ctx: &Context,
    sync: &SyncCtx<'_>,
    job: &ValidatedJob,
    cron: &CronJob,
) -> Result<Vec<Job>, Error> {
    let instance = job.pod.instance();
    let raw: Vec<Value> = match sync.caches {
        Some(caches) => caches.jobs_labelled(sync.namespace, &instance),
        None => {
            let api: Api<Job> = Api::namespaced(ctx.client.clone(), sync.namespace);
            let selector = format!("{}={instance}", crate::render::labels::INSTANCE);
            api.list(&ListParams::default().labels(&selector))
                .await
                .map_err(|source| Error::GetChild {
                    kind: "Job",
                    name: format!("{instance} (runs)"),
                    source,
                })?
                .items
                .into_iter()
                .filter_map(|j| serde_json::to_value(j).ok())
                .collect()
        }
    };
    let cron_uid = cron.metadata.uid.as_deref().unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter(|j| apply::raw_owned(j, Ownership::Controller { uid: cron_uid }))
        .filter_map(|j| serde_json::from_value(j).ok())
        .collect())
}

/// Whether a Job has condition `type_` True; its transition time if so.
fn finished(job: &Job, type_: &str) -> Option<Option<Time>> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.last_transition_time.clone())
}

/// How a Job failed, from its Failed condition; None while it has not.
pub fn run_failure(job: &Job) -> Option<JobFailure> {
    let cond = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    Some(JobFailure {
        job_name: job.name_any(),
        reason: cond.reason.clone().unwrap_or_default(),
        message: events::bounded(cond.message.clone().unwrap_or_default(), 1024),
        time: cond.last_transition_time.clone(),
    })
}

/// When a Job succeeded; None while it has not.
fn run_success(job: &Job) -> Option<Time> {
    let st = job.status.as_ref()?;
    let time = finished(job, "Complete")?;
    st.completion_time.clone().or(time)
}

/// Status of a scheduled SafeJob from its CronJob and runs. A failure the history no
/// longer holds stays as recorded.
pub fn scheduled_status(mut base: SafeJobStatus, cron: &CronJob, runs: &[Job]) -> SafeJobStatus {
    let st = cron.status.clone().unwrap_or_default();
    base.last_schedule_time = st.last_schedule_time.or(base.last_schedule_time);
    base.last_successful_time = st.last_successful_time.or(base.last_successful_time);
    base.active = Some(i32::try_from(st.active.iter().flatten().count()).unwrap_or(i32::MAX));
    let newest_failure = runs
        .iter()
        .filter_map(run_failure)
        .max_by(|a, b| time_key(a.time.as_ref()).cmp(&time_key(b.time.as_ref())));
    if newest_failure.is_some() {
        base.last_failure = newest_failure;
    }
    base.job_name = None;
    base
}

/// Status of a one-off SafeJob from its Job.
pub fn one_off_status(mut base: SafeJobStatus, job: &Job) -> SafeJobStatus {
    let st = job.status.clone().unwrap_or_default();
    base.last_schedule_time = st
        .start_time
        .or(job.metadata.creation_timestamp.clone())
        .or(base.last_schedule_time);
    base.last_successful_time = run_success(job).or(base.last_successful_time);
    base.active = Some(st.active.unwrap_or(0));
    base.last_failure = run_failure(job).or(base.last_failure);
    base.job_name = Some(job.name_any());
    base
}

fn time_key(t: Option<&Time>) -> i64 {
    t.map_or(i64::MIN, |t| t.0.as_second())
}

/// Ready (the CronJob is in place: scheduled or suspended), Reconciling False (reason
/// `Running` while a run goes on, else `Idle`), Degraded (the newest finished run failed,
/// or the resources are out of the namespace's range). A failed run of a schedule is not
/// Stalled: the next one may succeed.
pub fn scheduled_conditions(
    job: &ValidatedJob,
    status: &SafeJobStatus,
    out_of_range: &[String],
) -> Vec<Cond> {
    let schedule = job.spec.schedule.as_deref().unwrap_or_default();
    let zone = job.spec.time_zone.as_deref().unwrap_or_default();
    let ready = if job.spec.suspend == Some(true) {
        Cond::new(
            c::READY,
            true,
            c::REASON_SUSPENDED,
            format!("suspended: no new runs of {schedule:?} ({zone})"),
        )
    } else {
        Cond::new(
            c::READY,
            true,
            c::REASON_SCHEDULED,
            format!("runs on {schedule:?} ({zone})"),
        )
    };
    let active = status.active.unwrap_or(0);
    // The operator has nothing left to do once the CronJob is in place: a run going on
    // is the schedule working, not the SafeJob converging (kstatus: Current).
    let progressing = if active > 0 {
        Cond::new(
            c::RECONCILING,
            false,
            c::REASON_RUNNING,
            format!("{active} run(s) going on"),
        )
    } else {
        Cond::new(c::RECONCILING, false, c::REASON_IDLE, "no run is going on")
    };
    // The newest finished run decides: a success after a failure clears Degraded.
    let failed_last = status
        .last_failure
        .as_ref()
        .filter(|f| time_key(f.time.as_ref()) >= time_key(status.last_successful_time.as_ref()));
    let degraded = match failed_last {
        Some(f) => Cond::new(
            c::DEGRADED,
            true,
            c::job_failure_reason(&f.reason),
            format!("run {} failed: {}", f.job_name, f.message),
        ),
        None => status::degraded(None, out_of_range),
    };
    vec![ready, progressing, degraded]
}

/// Ready when the Job succeeded; Reconciling while it runs; Stalled (and Degraded) when it
/// failed: a one-off Job is never run again.
pub fn one_off_conditions(job: &Job, out_of_range: &[String]) -> Vec<Cond> {
    if let Some(f) = run_failure(job) {
        return failed_conditions(&f);
    }
    if run_success(job).is_some() {
        return succeeded_conditions(&job.name_any());
    }
    let active = job.status.as_ref().and_then(|s| s.active).unwrap_or(0);
    let message = format!("Job {} is running ({active} pod(s) active)", job.name_any());
    vec![
        Cond::new(c::READY, false, c::REASON_RUNNING, message.clone()),
        Cond::new(c::RECONCILING, true, c::REASON_RUNNING, message),
        status::degraded(None, out_of_range),
    ]
}

fn failed_conditions(f: &JobFailure) -> Vec<Cond> {
    let reason = c::job_failure_reason(&f.reason);
    let message = format!("Job {} failed: {}", f.job_name, f.message);
    vec![
        Cond::new(c::READY, false, reason, message.clone()),
        Cond::new(c::RECONCILING, false, reason, message.clone()),
        Cond::new(c::DEGRADED, true, reason, message),
    ]
}

fn succeeded_conditions(job_name: &str) -> Vec<Cond> {
    let message = format!("Job {job_name} succeeded");
    vec![
        Cond::new(c::READY, true, c::REASON_SUCCEEDED, message.clone()),
        Cond::new(c::RECONCILING, false, c::REASON_SUCCEEDED, message),
        status::degraded(None, &[]),
    ]
}

/// The outcome of a one-off Job that is gone, from what the status recorded: the newer
/// of its success and its failure, or `JobRemoved` when the operator never saw either
/// (the Job was deleted while it ran).
pub fn finished_conditions(status: &SafeJobStatus) -> Vec<Cond> {
    let name = status.job_name.clone().unwrap_or_default();
    let success = status.last_successful_time.as_ref();
    match &status.last_failure {
        Some(f) if time_key(f.time.as_ref()) >= time_key(success) => failed_conditions(f),
        _ if success.is_some() => succeeded_conditions(&name),
        _ => {
            let message = format!(
                "Job {name} was removed before the operator saw how it ended; it is not run again (create a SafeJob under a new name to run it)"
            );
            vec![
                Cond::new(c::READY, false, c::REASON_JOB_REMOVED, message.clone()),
                Cond::new(
                    c::RECONCILING,
                    false,
                    c::REASON_JOB_REMOVED,
                    message.clone(),
                ),
                Cond::new(c::DEGRADED, true, c::REASON_JOB_REMOVED, message),
            ]
        }
    }
}
