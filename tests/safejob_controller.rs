//! The SafeJob reconciler against the in-memory API (tests/fake): a scheduled SafeJob's
//! CronJob is created, kept with zero writes, drift-repaired, recreated and pruned by the
//! same machinery as a SafeApp's children; a one-off Job is created once and never
//! again; status follows the CronJob's and the Jobs' own.

mod fake;

use fake::harness::{Env, NS, cronjobs, env, jobs, safejobs};
use kube::runtime::controller::Action;
use safeapp::api::SafeJob;
use safeapp::controller::{self, Error};
use safeapp::policy::Policy;
use serde_json::{Value, json};

fn safejob(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeJob",
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn nightly() -> Value {
    json!({"image": "registry.example.com/report:2.1.0", "schedule": "30 2 * * *",
           "timeZone": "Europe/Oslo", "activeDeadlineSeconds": 3600, "tier": "batch"})
}

fn migration() -> Value {
    json!({"image": "registry.example.com/migrate:42", "activeDeadlineSeconds": 600,
           "backoffLimit": 1})
}

async fn reconcile(env: &Env, name: &str) -> Result<Action, Error> {
    let job: SafeJob =
        serde_json::from_value(env.fake.get(&safejobs(), name).expect("safejob")).expect("typed");
    controller::job::reconcile_job(&job, &env.ctx).await
}

fn status(env: &Env, name: &str) -> Value {
    env.fake.get(&safejobs(), name).expect("safejob")["status"].clone()
}

fn condition(env: &Env, name: &str, type_: &str) -> Value {
    status(env, name)["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// Plays the job controller: sets `status` on a stored Job or CronJob.
fn set_status(env: &Env, coll: &str, name: &str, status: Value) {
    env.fake
        .edit(coll, name, "kube-controller-manager", json!({}), |o| {
            o["status"] = status
        });
}

// A scheduled SafeJob becomes one CronJob owned by it, with the batch defaults; status
// says Scheduled; the next reconcile writes nothing.
#[tokio::test]
async fn scheduled_safejob_gets_a_cronjob_and_then_zero_writes() {
    let env = env();
    let created = env.fake.insert(&safejobs(), safejob("report", nightly()));
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    reconcile(&env, "report").await.expect("reconcile");

    let cron = env.fake.get(&cronjobs(), "report").expect("cronjob");
    let owner = &cron["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "SafeJob");
    assert_eq!(owner["uid"], uid.as_str());
    assert_eq!(owner["controller"], true);
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cron["spec"]["timeZone"], "Europe/Oslo");
    assert_eq!(cron["spec"]["startingDeadlineSeconds"], 300);
    let job_spec = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job_spec["backoffLimit"], 3);
    assert_eq!(job_spec["activeDeadlineSeconds"], 3600);
    assert_eq!(job_spec["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        cron["spec"]["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "safeapp-operator"
    );
    assert!(env.fake.get(&jobs(), "report").is_none());

    assert_eq!(condition(&env, "report", "Ready")["status"], "True");
    assert_eq!(condition(&env, "report", "Ready")["reason"], "Scheduled");
    assert_eq!(condition(&env, "report", "Degraded")["status"], "False");
    let st = status(&env, "report");
    assert_eq!(st["managedObjects"][0]["kind"], "CronJob");
    assert_eq!(st["observedGeneration"], 1);
    assert_eq!(env.event_posts(), 1, "one Created event");

    env.fake.clear_calls();
    reconcile(&env, "report").await.expect("second reconcile");
    assert!(env.child_writes().is_empty(), "{:?}", env.child_writes());
    assert_eq!(env.event_posts(), 0);
}

// Someone edits the CronJob: the change is put back and reported, like any child.
#[tokio::test]
async fn cronjob_drift_is_put_back_and_reported() {
    let env = env();
    env.fake.insert(&safejobs(), safejob("report", nightly()));
    reconcile(&env, "report").await.expect("reconcile");
    env.fake.edit(
        &cronjobs(),
        "report",
        "kubectl-edit",
        json!({"f:spec": {"f:concurrencyPolicy": {}}}),
        |c| c["spec"]["concurrencyPolicy"] = json!("Allow"),
    );
    env.fake.clear_calls();
    reconcile(&env, "report").await.expect("reconcile");
    let cron = env.fake.get(&cronjobs(), "report").unwrap();
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let drift = &status(&env, "report")["lastDriftCorrection"];
    assert_eq!(drift["kind"], "CronJob");
    assert_eq!(drift["manager"], "kubectl-edit");
    assert!(
        drift["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("concurrencyPolicy")),
        "{drift}"
    );
}

// A deleted CronJob is recreated; a CronJob of the same name made by someone else is
// never overwritten (NameConflict).
#[tokio::test]
async fn cronjob_recreated_and_foreign_one_left_alone() {
    let env = env();
    env.fake.insert(&safejobs(), safejob("report", nightly()));
    reconcile(&env, "report").await.expect("reconcile");
    env.fake.remove(&cronjobs(), "report");
    reconcile(&env, "report").await.expect("reconcile");
    assert!(env.fake.get(&cronjobs(), "report").is_some(), "recreated");

    env.fake.insert(
        &cronjobs(),
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "other", "namespace": NS},
               "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {}}}}}),
    );
    env.fake.insert(&safejobs(), safejob("other", nightly()));
    reconcile(&env, "other").await.expect("reconcile");
    let foreign = env.fake.get(&cronjobs(), "other").unwrap();
    assert_eq!(foreign["spec"]["schedule"], "* * * * *", "not overwritten");
    assert_eq!(condition(&env, "other", "Ready")["reason"], "NameConflict");
}

// A one-off SafeJob creates its Job once. It is never re-applied, and once it ran and
// was removed (ttlSecondsAfterFinished) it is not created again.
#[tokio::test]
async fn one_off_job_is_created_once() {
    let env = env();
    env.fake
        .insert(&safejobs(), safejob("migrate", migration()));
    reconcile(&env, "migrate").await.expect("reconcile");
    let job = env.fake.get(&jobs(), "migrate").expect("job");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "SafeJob");
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 86400);
    assert_eq!(job["spec"]["backoffLimit"], 1);
    assert_eq!(
        job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"],
        "DisruptionTarget"
    );
    assert_eq!(status(&env, "migrate")["jobName"], "migrate");
    assert_eq!(condition(&env, "migrate", "Ready")["reason"], "Running");
    assert_eq!(condition(&env, "migrate", "Reconciling")["status"], "True");

    // The job controller runs it to success.
    set_status(
        &env,
        &jobs(),
        "migrate",
        json!({"startTime": "2026-11-30T02:00:00Z", "completionTime": "2026-11-30T02:03:00Z",
               "succeeded": 1,
               "conditions": [{"type": "Complete", "status": "True",
                               "lastTransitionTime": "2026-11-30T02:03:00Z"}]}),
    );
    env.fake.clear_calls();
    reconcile(&env, "migrate").await.expect("reconcile");
    let writes = env.child_writes();
    assert!(
        writes.iter().all(|w| w.contains("/safejobs/")),
        "only the status changes: {writes:?}"
    );
    assert_eq!(condition(&env, "migrate", "Ready")["status"], "True");
    assert_eq!(condition(&env, "migrate", "Ready")["reason"], "Succeeded");
    assert_eq!(condition(&env, "migrate", "Reconciling")["status"], "False");
    let st = status(&env, "migrate");
    assert_eq!(st["lastSuccessfulTime"], "2026-11-30T02:03:00Z");
    assert_eq!(st["lastScheduleTime"], "2026-11-30T02:00:00Z");

    // The TTL controller removes it: it is not created again, the outcome stays.
    env.fake.remove(&jobs(), "migrate");
    env.fake.clear_calls();
    reconcile(&env, "migrate").await.expect("reconcile");
    assert!(env.fake.get(&jobs(), "migrate").is_none(), "never re-run");
    assert!(
        env.child_writes().iter().all(|w| !w.contains("/jobs")),
        "{:?}",
        env.child_writes()
    );
    assert_eq!(condition(&env, "migrate", "Ready")["reason"], "Succeeded");
    assert_eq!(condition(&env, "migrate", "Ready")["status"], "True");
}

// A failed one-off run: Ready false and Degraded true with the Job's own reason, and
// the reason and message in status.lastFailure.
#[tokio::test]
async fn one_off_failure_is_reported_with_its_reason() {
    let env = env();
    env.fake
        .insert(&safejobs(), safejob("migrate", migration()));
    reconcile(&env, "migrate").await.expect("reconcile");
    set_status(
        &env,
        &jobs(),
        "migrate",
        json!({"startTime": "2026-11-30T02:00:00Z", "failed": 2,
               "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                               "message": "Job has reached the specified backoff limit",
                               "lastTransitionTime": "2026-11-30T02:05:00Z"}]}),
    );
    reconcile(&env, "migrate").await.expect("reconcile");
    let degraded = condition(&env, "migrate", "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "BackoffLimitExceeded");
    assert_eq!(condition(&env, "migrate", "Ready")["status"], "False");
    let failure = &status(&env, "migrate")["lastFailure"];
    assert_eq!(failure["jobName"], "migrate");
    assert_eq!(failure["reason"], "BackoffLimitExceeded");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("backoff limit")
    );
}

fn run(name: &str, cron_uid: &str, outcome: &str, reason: &str, at: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": NS,
                        "labels": {"app.kubernetes.io/instance": "report-job",
                                   "app.kubernetes.io/name": "report",
                                   "app.kubernetes.io/managed-by": "safeapp-operator"},
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                             "name": "report", "uid": cron_uid, "controller": true}]},
           "spec": {"template": {}},
           "status": {"conditions": [{"type": outcome, "status": "True", "reason": reason,
                                      "message": format!("{outcome} at {at}"),
                                      "lastTransitionTime": at}]}})
}

// The CronJob's status gives the last schedule, last success and active runs; the
// newest failed run gives the failure reason; a later success clears Degraded.
#[tokio::test]
async fn scheduled_status_follows_the_cronjob_and_its_runs() {
    let env = env();
    env.fake.insert(&safejobs(), safejob("report", nightly()));
    reconcile(&env, "report").await.expect("reconcile");
    let cron_uid = env.fake.get(&cronjobs(), "report").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    set_status(
        &env,
        &cronjobs(),
        "report",
        json!({"lastScheduleTime": "2026-11-29T01:30:00Z",
               "lastSuccessfulTime": "2026-11-28T01:40:00Z",
               "active": [{"kind": "Job", "name": "report-29411130", "namespace": NS}]}),
    );
    env.fake.insert(
        &jobs(),
        run(
            "report-29409690",
            &cron_uid,
            "Failed",
            "DeadlineExceeded",
            "2026-11-29T02:30:00Z",
        ),
    );
    // Another app's run, or one not controlled by this CronJob, is not counted.
    env.fake.insert(
        &jobs(),
        run(
            "stray",
            "someone-else",
            "Failed",
            "BackoffLimitExceeded",
            "2026-11-29T03:00:00Z",
        ),
    );
    reconcile(&env, "report").await.expect("reconcile");
    let st = status(&env, "report");
    assert_eq!(st["lastScheduleTime"], "2026-11-29T01:30:00Z");
    assert_eq!(st["lastSuccessfulTime"], "2026-11-28T01:40:00Z");
    assert_eq!(st["active"], 1);
    assert_eq!(st["lastFailure"]["jobName"], "report-29409690");
    assert_eq!(st["lastFailure"]["reason"], "DeadlineExceeded");
    assert_eq!(
        condition(&env, "report", "Degraded")["reason"],
        "DeadlineExceeded"
    );
    assert_eq!(
        condition(&env, "report", "Reconciling")["reason"],
        "Running"
    );
    assert_eq!(condition(&env, "report", "Ready")["status"], "True");

    // The next night succeeds: Degraded clears, the failure stays on record.
    set_status(
        &env,
        &cronjobs(),
        "report",
        json!({"lastScheduleTime": "2026-11-30T01:30:00Z",
               "lastSuccessfulTime": "2026-11-30T01:41:00Z"}),
    );
    reconcile(&env, "report").await.expect("reconcile");
    assert_eq!(condition(&env, "report", "Degraded")["status"], "False");
    assert_eq!(condition(&env, "report", "Reconciling")["reason"], "Idle");
    assert_eq!(
        status(&env, "report")["lastFailure"]["reason"],
        "DeadlineExceeded"
    );
}

// Dropping the schedule prunes the CronJob and runs the Job instead (the one change
// CEL allows toward a one-off).
#[tokio::test]
async fn schedule_removed_prunes_the_cronjob() {
    let env = env();
    env.fake.insert(&safejobs(), safejob("report", nightly()));
    reconcile(&env, "report").await.expect("reconcile");
    env.fake
        .edit(&safejobs(), "report", "kubectl", json!({}), |j| {
            let spec = j["spec"].as_object_mut().unwrap();
            spec.remove("schedule");
            spec.remove("timeZone");
        });
    reconcile(&env, "report").await.expect("reconcile");
    assert!(env.fake.get(&cronjobs(), "report").is_none(), "pruned");
    assert!(env.fake.get(&jobs(), "report").is_some(), "runs once");
    let kinds: Vec<String> = status(&env, "report")["managedObjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["Job"]);
}

// An invalid SafeJob (no deadline, no policy default) writes nothing but its status;
// with the policy's default the same SafeJob runs.
#[tokio::test]
async fn invalid_safejob_writes_nothing_until_the_policy_allows_it() {
    let env = env();
    let mut spec = migration();
    spec.as_object_mut()
        .unwrap()
        .remove("activeDeadlineSeconds");
    env.fake
        .insert(&safejobs(), safejob("migrate", spec.clone()));
    let action = reconcile(&env, "migrate").await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    assert!(env.fake.get(&jobs(), "migrate").is_none());
    let ready = condition(&env, "migrate", "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("spec.activeDeadlineSeconds")
    );

    let mut policy = Policy::default();
    policy.defaults.job_active_deadline_seconds = Some(900);
    let env = env.reconfigure(policy);
    reconcile(&env, "migrate").await.expect("reconcile");
    let job = env.fake.get(&jobs(), "migrate").expect("job");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 900);
}

// A paused SafeJob changes nothing; a SafeJob in a denied namespace gets no children.
#[tokio::test]
async fn paused_and_denied_write_nothing() {
    let env = env();
    let mut spec = nightly();
    spec["paused"] = json!(true);
    env.fake.insert(&safejobs(), safejob("report", spec));
    reconcile(&env, "report").await.expect("reconcile");
    assert!(env.fake.get(&cronjobs(), "report").is_none());
    assert_eq!(condition(&env, "report", "Ready")["reason"], "Paused");

    let mut policy = Policy::default();
    policy.guardrails.denied_namespaces.push(NS.into());
    let env = env.reconfigure(policy);
    env.fake.insert(&safejobs(), safejob("other", nightly()));
    reconcile(&env, "other").await.expect("reconcile");
    assert!(env.fake.get(&cronjobs(), "other").is_none());
    assert_eq!(
        condition(&env, "other", "Ready")["reason"],
        "NamespaceNotAllowed"
    );
}

// A SafeApp and a SafeJob of the same name live side by side: the job's pods never
// match the app's selector (instance `<name>-job`), and neither blocks the other.
#[tokio::test]
async fn safeapp_and_safejob_may_share_a_name() {
    let env = env();
    env.create("shop", fake::harness::web_spec());
    env.reconcile("shop").await.expect("app");
    env.fake.insert(&safejobs(), safejob("shop", nightly()));
    reconcile(&env, "shop").await.expect("job");
    let dep = env.fake.get(&fake::harness::deployments(), "shop").unwrap();
    let selector = dep["spec"]["selector"]["matchLabels"].clone();
    let cron = env.fake.get(&cronjobs(), "shop").unwrap();
    let pod_labels = &cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
    let matches = selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| &pod_labels[k] == v);
    assert!(!matches, "{selector} must not select {pod_labels}");
    assert_eq!(condition(&env, "shop", "Ready")["reason"], "Scheduled");
}

// Once its Job exists, a one-off SafeJob is only observed: a policy that would now
// refuse its spec does not turn it into InvalidSpec, and nothing is applied.
#[tokio::test]
async fn created_one_off_is_observed_not_revalidated() {
    let mut policy = Policy::default();
    policy.defaults.job_active_deadline_seconds = Some(900);
    let env = fake::harness::env_with(policy);
    let mut spec = migration();
    spec.as_object_mut()
        .unwrap()
        .remove("activeDeadlineSeconds");
    env.fake.insert(&safejobs(), safejob("migrate", spec));
    reconcile(&env, "migrate").await.expect("reconcile");
    assert!(env.fake.get(&jobs(), "migrate").is_some());

    // The platform team drops the default: the spec alone would now be refused.
    let env = env.reconfigure(Policy::default());
    env.fake.clear_calls();
    reconcile(&env, "migrate").await.expect("reconcile");
    assert_eq!(condition(&env, "migrate", "Ready")["reason"], "Running");
    assert!(
        env.child_writes().iter().all(|w| !w.contains("/jobs")),
        "{:?}",
        env.child_writes()
    );
}

// A Job deleted while it ran is not created again; the SafeJob says it was removed
// before its outcome was seen.
#[tokio::test]
async fn one_off_removed_before_its_outcome_is_not_rerun() {
    let env = env();
    env.fake
        .insert(&safejobs(), safejob("migrate", migration()));
    reconcile(&env, "migrate").await.expect("reconcile");
    env.fake.remove(&jobs(), "migrate");
    reconcile(&env, "migrate").await.expect("reconcile");
    assert!(env.fake.get(&jobs(), "migrate").is_none(), "never re-run");
    let ready = condition(&env, "migrate", "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "JobRemoved");
    assert_eq!(condition(&env, "migrate", "Degraded")["status"], "True");
    assert_eq!(status(&env, "migrate")["managedObjects"], json!([]));
}

// The Job is recorded (status.jobName) even when another part of the sync failed, so a
// later reconcile never creates it a second time.
#[tokio::test]
async fn job_name_recorded_even_when_the_sync_fails() {
    let env = env();
    env.fake
        .insert(&safejobs(), safejob("migrate", migration()));
    // The CronJob check (a one-off SafeJob wants none) fails; the Job is created.
    env.fake
        .fail(http::Method::GET, "/cronjobs/migrate", 500, 1);
    let result = reconcile(&env, "migrate").await;
    assert!(result.is_err(), "the failure is returned for a retry");
    assert!(env.fake.get(&jobs(), "migrate").is_some());
    assert_eq!(status(&env, "migrate")["jobName"], "migrate");
    assert_eq!(condition(&env, "migrate", "Ready")["status"], "False");

    env.fake.remove(&jobs(), "migrate");
    reconcile(&env, "migrate").await.expect("reconcile");
    assert!(env.fake.get(&jobs(), "migrate").is_none(), "never re-run");
}

// A SafeJob's namespace gets the shared LimitRange, owned (not controlled) by the
// SafeJob, beside the SafeApps of the namespace.
#[tokio::test]
async fn safejob_namespace_gets_the_shared_limit_range() {
    let env = env();
    let created = env.fake.insert(&safejobs(), safejob("report", nightly()));
    reconcile(&env, "report").await.expect("reconcile");
    env.sync_namespaces().await;
    let lr = env
        .fake
        .get(&fake::harness::limit_ranges(), "safeapp-limits")
        .expect("limit range");
    let owner = &lr["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "SafeJob");
    assert_eq!(owner["uid"], created["metadata"]["uid"]);
    assert_eq!(owner["controller"], false);

    env.create("web", fake::harness::web_spec());
    env.reconcile("web").await.expect("app");
    let lr = env
        .fake
        .get(&fake::harness::limit_ranges(), "safeapp-limits")
        .unwrap();
    let mut kinds: Vec<&str> = lr["metadata"]["ownerReferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["SafeApp", "SafeJob"]);
}
