//! The in-memory API (tests/fake) serves `batch/v1` Jobs and CronJobs as a real API
//! server (v1.33+) does: routes, defaults, the generated Job selector, immutability,
//! status writes a job controller may make, and RBAC. These are the fake's own tests: a
//! SafeJob test that passes against the fake should not fail against a cluster for a
//! rule the fake left out.

mod fake;

use std::time::Duration;

use fake::FakeApi;
use fake::apiserver::{Rbac, Rule};
use fake::batch::{CONTROLLER_UID, JOB_NAME, LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME};
use fake::harness::{NS, cronjobs, jobs};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Api;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

const OPERATOR: &str = "safeapp-operator";

fn job(name: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": name}},
           "spec": {"template": {
               "metadata": {"labels": {"app.kubernetes.io/name": name}},
               "spec": {"restartPolicy": "Never",
                        "containers": [{"name": "main", "image": image}]}}}})
}

fn cron_job(name: &str, schedule: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": name, "namespace": NS},
           "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {
               "metadata": {"labels": {"app.kubernetes.io/name": name}},
               "spec": {"restartPolicy": "OnFailure",
                        "containers": [{"name": "main", "image": "registry.example.com/report:1.0"}]}}}}}})
}

fn job_api(fake: &FakeApi) -> Api<Job> {
    Api::namespaced(fake.client(), NS)
}

fn cron_api(fake: &FakeApi) -> Api<CronJob> {
    Api::namespaced(fake.client(), NS)
}

fn apply() -> PatchParams {
    PatchParams::apply(OPERATOR)
}

/// The API's refusal: (code, reason, message).
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn create_job(fake: &FakeApi, value: Value) -> Job {
    job_api(fake)
        .create(
            &PostParams::default(),
            &serde_json::from_value(value).unwrap(),
        )
        .await
        .expect("create job")
}

// A Job created without a selector gets the server's defaults, its status cleared and
// the selector and template labels generated from its uid, whether created by POST or by
// server-side apply.
#[tokio::test]
async fn job_gets_defaults_and_a_generated_selector_on_create() {
    let fake = FakeApi::new();
    let mut posted = job("once", "registry.example.com/migrate:1.0");
    posted["status"] = json!({"succeeded": 5});
    let created = create_job(&fake, posted).await;
    let uid = created.metadata.uid.clone().expect("uid");
    let stored = fake.get(&jobs(), "once").expect("stored");
    assert_eq!(
        serde_json::to_value(&created).unwrap()["spec"],
        stored["spec"]
    );
    let spec = &stored["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {CONTROLLER_UID: uid.as_str()}})
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({"app.kubernetes.io/name": "once", CONTROLLER_UID: uid.as_str(), JOB_NAME: "once",
               LEGACY_CONTROLLER_UID: uid.as_str(), LEGACY_JOB_NAME: "once"})
    );
    // The pod template gets a Deployment's pod defaults.
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        pod["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(
        stored.get("status").is_none(),
        "status is cleared on create"
    );
    assert_eq!(stored["metadata"]["generation"], 1);
    // The Job's own labels stay as given.
    assert_eq!(
        stored["metadata"]["labels"],
        json!({"app.kubernetes.io/name": "once"})
    );

    // Server-side apply creates the same way, with its own uid.
    job_api(&fake)
        .patch("applied", &apply(), &Patch::Apply(job("applied", "img:1")))
        .await
        .expect("apply");
    let applied = fake.get(&jobs(), "applied").expect("applied");
    let uid = applied["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        applied["spec"]["selector"]["matchLabels"][CONTROLLER_UID],
        uid
    );
    assert_eq!(
        applied["spec"]["template"]["metadata"]["labels"][JOB_NAME],
        "applied"
    );

    // Pointer zeros are values; a pod failure policy makes pods replaced only once
    // failed; a Job without labels gets its template's (generated ones included).
    let mut explicit = job("explicit", "img:1");
    explicit["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    explicit["spec"]["backoffLimit"] = json!(0);
    explicit["spec"]["parallelism"] = json!(0);
    explicit["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(0);
    explicit["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]});
    create_job(&fake, explicit).await;
    let stored = fake.get(&jobs(), "explicit").unwrap();
    let spec = &stored["spec"];
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["parallelism"], 0);
    assert!(spec.get("completions").is_none(), "completions stays unset");
    assert_eq!(spec["template"]["spec"]["terminationGracePeriodSeconds"], 0);
    assert_eq!(spec["podReplacementPolicy"], "Failed");
    assert_eq!(
        spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    assert_eq!(
        stored["metadata"]["labels"],
        spec["template"]["metadata"]["labels"]
    );
    assert_eq!(stored["metadata"]["labels"][JOB_NAME], "explicit");

    // A dry run answers what would be stored, and stores nothing.
    job_api(&fake)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &serde_json::from_value(job("dry", "img:1")).unwrap(),
        )
        .await
        .expect("dry run");
    assert!(fake.get(&jobs(), "dry").is_none());

    // A second POST of the same name is a conflict, not a replacement.
    let (code, reason, message) = refusal(
        job_api(&fake)
            .create(
                &PostParams::default(),
                &serde_json::from_value(job("once", "img:2")).unwrap(),
            )
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(message, "jobs.batch \"once\" already exists");
}

// A Job the server cannot run is refused on create: restartPolicy Always (the pod
// default), a selector that does not select the template, no containers.
#[tokio::test]
async fn invalid_jobs_are_refused_on_create() {
    let fake = FakeApi::new();
    let mut always = job("always", "img:1");
    always["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("restartPolicy");
    let (code, reason, message) = refusal(
        job_api(&fake)
            .patch("always", &apply(), &Patch::Apply(always))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "Job.batch \"always\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    );
    assert!(fake.get(&jobs(), "always").is_none());

    let mut manual = job("manual", "img:1");
    manual["spec"]["manualSelector"] = json!(true);
    manual["spec"]["selector"] = json!({"matchLabels": {"other": "x"}});
    let (code, _, message) = refusal(
        job_api(&fake)
            .create(
                &PostParams::default(),
                &serde_json::from_value(manual).unwrap(),
            )
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.template.metadata.labels: Invalid value: ")
            && message.ends_with("`selector` does not match template `labels`"),
        "{message}"
    );

    let mut failure_policy = job("policy", "img:1");
    failure_policy["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    failure_policy["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 42]}}]});
    let (code, _, message) = refusal(
        job_api(&fake)
            .patch("policy", &apply(), &Patch::Apply(failure_policy))
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.starts_with("Job.batch \"policy\" is invalid: ["),
        "{message}"
    );
    assert!(message.contains("spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator"), "{message}");
    assert!(message.contains("spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified"), "{message}");
}

// Once a Job exists its pod template (after defaulting), selector, completion mode and
// pod failure policy cannot change: the server's 422 "field is immutable", nothing is
// stored. Its labels, and mutable spec fields, can change.
#[tokio::test]
async fn a_jobs_template_is_immutable_but_its_labels_are_not() {
    let fake = FakeApi::new();
    let api = job_api(&fake);
    api.patch("migrate", &apply(), &Patch::Apply(job("migrate", "img:1")))
        .await
        .expect("create");
    let before = fake.get(&jobs(), "migrate").unwrap();

    // The same apply again: nothing changes (the generated labels stay).
    api.patch("migrate", &apply(), &Patch::Apply(job("migrate", "img:1")))
        .await
        .expect("same apply");
    assert_eq!(
        fake.get(&jobs(), "migrate").unwrap()["spec"],
        before["spec"]
    );

    let (code, reason, message) = refusal(
        api.patch("migrate", &apply(), &Patch::Apply(job("migrate", "img:2")))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.starts_with("Job.batch \"migrate\" is invalid: spec.template: Invalid value: {")
            && message.ends_with(": field is immutable"),
        "{message}"
    );
    assert_eq!(
        fake.get(&jobs(), "migrate").unwrap(),
        before,
        "nothing stored"
    );

    // A merge patch of the template is refused the same way; so is one of the selector
    // or the completion mode.
    let (code, _, message) = refusal(
        api.patch(
            "migrate",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"activeDeadlineSeconds": 60}}}})),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.template: Invalid value"),
        "{message}"
    );
    let (code, _, message) = refusal(
        api.patch(
            "migrate",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
                                          "completionMode": "Indexed"}})),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.selector: Invalid value: "),
        "{message}"
    );
    assert!(
        message.contains("spec.completionMode: Invalid value: \"Indexed\": field is immutable"),
        "{message}"
    );

    // Template labels are part of the template.
    let mut relabelled = job("migrate", "img:1");
    relabelled["spec"]["template"]["metadata"]["labels"]["extra"] = json!("x");
    assert_eq!(
        refusal(
            api.patch("migrate", &apply(), &Patch::Apply(relabelled))
                .await
        )
        .0,
        422
    );

    // The Job's own labels may change: no new generation.
    let mut labelled = job("migrate", "img:1");
    labelled["metadata"]["labels"]["team"] = json!("data");
    api.patch("migrate", &apply(), &Patch::Apply(labelled))
        .await
        .expect("label change");
    let after = fake.get(&jobs(), "migrate").unwrap();
    assert_eq!(after["metadata"]["labels"]["team"], "data");
    assert_eq!(after["metadata"]["generation"], 1);
    assert_eq!(after["spec"], before["spec"]);

    // Mutable spec fields change, with a new generation.
    api.patch(
        "migrate",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"ttlSecondsAfterFinished": 60, "backoffLimit": 2}})),
    )
    .await
    .expect("mutable fields");
    let after = fake.get(&jobs(), "migrate").unwrap();
    assert_eq!(after["spec"]["ttlSecondsAfterFinished"], 60);
    assert_eq!(after["spec"]["backoffLimit"], 2);
    assert_eq!(after["metadata"]["generation"], 2);
}

// A suspended Job that never started may change its scheduling directives and its
// template's labels and annotations (KEP-2926), and nothing else of its template.
#[tokio::test]
async fn a_suspended_job_may_change_its_scheduling_directives() {
    let fake = FakeApi::new();
    let api = job_api(&fake);
    let mut suspended = job("later", "img:1");
    suspended["spec"]["suspend"] = json!(true);
    api.patch("later", &apply(), &Patch::Apply(suspended.clone()))
        .await
        .expect("create");
    let mut placed = suspended.clone();
    placed["spec"]["template"]["spec"]["nodeSelector"] = json!({"pool": "batch"});
    placed["spec"]["template"]["metadata"]["annotations"] = json!({"queue": "night"});
    api.patch("later", &apply(), &Patch::Apply(placed.clone()))
        .await
        .expect("scheduling directives");
    let mut image = placed;
    image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img:2");
    assert_eq!(
        refusal(api.patch("later", &apply(), &Patch::Apply(image)).await).0,
        422
    );
    // Once it started, even the scheduling directives are fixed.
    api.patch_status(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"startTime": "2026-06-01T00:00:00Z"}})),
    )
    .await
    .expect("started");
    let mut moved = suspended;
    moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"pool": "other"});
    assert_eq!(
        refusal(api.patch("later", &apply(), &Patch::Apply(moved)).await).0,
        422
    );
}

// Tests play the job controller through `/status`: status writes keep the spec, spec
// writes keep the status, and only transitions the controller could make are accepted.
#[tokio::test]
async fn status_writes_follow_the_job_controller() {
    let fake = FakeApi::new();
    let api = job_api(&fake);
    create_job(&fake, job("run", "img:1")).await;
    let status = |s: Value| Patch::Merge(json!({"status": s}));
    let pp = PatchParams::default();

    let running = api
        .patch_status(
            "run",
            &pp,
            &Patch::Merge(json!({"spec": {"parallelism": 5},
                                 "status": {"startTime": "2026-06-01T00:00:00Z", "active": 1, "ready": 0}})),
        )
        .await
        .expect("running");
    assert_eq!(running.spec.unwrap().parallelism, Some(1), "spec kept");
    let stored = fake.get(&jobs(), "run").unwrap();
    assert_eq!(stored["status"]["active"], 1);
    assert_eq!(
        stored["status"]["ready"], 0,
        "ready is a pointer: its zero is kept"
    );
    assert_eq!(stored["metadata"]["generation"], 1);

    // A spec write does not touch the status.
    api.patch(
        "run",
        &apply(),
        &Patch::Apply(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "run"},
                             "spec": {"activeDeadlineSeconds": 600},
                             "status": {"active": 7}}),
        ),
    )
    .await
    .expect("spec write");
    assert_eq!(fake.get(&jobs(), "run").unwrap()["status"]["active"], 1);

    // Complete needs SuccessCriteriaMet, a completionTime and no active pods.
    let complete = json!({"type": "Complete", "status": "True"});
    let met = json!({"type": "SuccessCriteriaMet", "status": "True"});
    let (code, _, message) = refusal(
        api.patch_status(
            "run",
            &pp,
            &status(json!({"conditions": [complete.clone()]})),
        )
        .await,
    );
    assert_eq!(code, 422);
    for part in [
        "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        "status.completionTime: Required value: completionTime is required for Complete jobs",
        "status.active: Invalid value: 1: active>0 is invalid for finished job",
    ] {
        assert!(message.contains(part), "{message}");
    }
    api.patch_status(
        "run",
        &pp,
        &status(
            json!({"conditions": [met.clone(), complete.clone()], "active": 0, "ready": 0,
                       "succeeded": 1, "completionTime": "2026-06-01T00:05:00Z"}),
        ),
    )
    .await
    .expect("complete");
    let done = fake.get(&jobs(), "run").unwrap();
    assert!(
        done["status"].get("active").is_none(),
        "active: 0 is omitted"
    );
    assert_eq!(done["status"]["succeeded"], 1);

    // No way back from a terminal condition, no decreasing counter.
    let (code, _, message) = refusal(
        api.patch_status("run", &pp, &status(json!({"conditions": [met.clone()]})))
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("cannot disable the terminal Complete=True condition"),
        "{message}"
    );
    let (code, _, message) = refusal(
        api.patch_status("run", &pp, &status(json!({"succeeded": 0})))
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("cannot decrease the succeeded counter"),
        "{message}"
    );

    // Failed needs FailureTarget.
    create_job(&fake, job("broken", "img:1")).await;
    let failed = json!({"type": "Failed", "status": "True"});
    let (code, _, message) = refusal(
        api.patch_status(
            "broken",
            &pp,
            &status(json!({"startTime": "2026-06-01T00:00:00Z", "conditions": [failed.clone()]})),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("without the FailureTarget=true condition"),
        "{message}"
    );
    api.patch_status(
        "broken",
        &pp,
        &status(
            json!({"startTime": "2026-06-01T00:00:00Z", "failed": 1, "conditions": [
            {"type": "FailureTarget", "status": "True"}, failed]}),
        ),
    )
    .await
    .expect("failed");

    // Status of a missing Job: 404 with the server's message.
    let (code, reason, message) = refusal(
        api.patch_status("nope", &pp, &status(json!({"active": 1})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(message, "jobs.batch \"nope\" not found");
}

// CronJobs: defaults (none inside the job template but the pod's), validation of the
// schedule, the name and the template; the template may change; status patches work.
#[tokio::test]
async fn cron_jobs_are_defaulted_and_validated() {
    let fake = FakeApi::new();
    let api = cron_api(&fake);
    api.patch(
        "report",
        &apply(),
        &Patch::Apply(cron_job("report", "*/15 1-5 * jan-jun MON-FRI")),
    )
    .await
    .expect("create");
    let stored = fake.get(&cronjobs(), "report").unwrap();
    let spec = &stored["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    let job_spec = &spec["jobTemplate"]["spec"];
    for field in [
        "backoffLimit",
        "completions",
        "parallelism",
        "completionMode",
        "suspend",
        "manualSelector",
        "podReplacementPolicy",
        "selector",
    ] {
        assert!(
            job_spec.get(field).is_none(),
            "jobTemplate.spec.{field} is not defaulted"
        );
    }
    assert_eq!(job_spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        job_spec["template"]["metadata"]["labels"],
        json!({"app.kubernetes.io/name": "report"}),
        "no generated labels in a template"
    );

    // Zeros are kept (pointers); set fields are not defaulted.
    let mut kept = cron_job("kept", "@hourly");
    kept["spec"]["successfulJobsHistoryLimit"] = json!(0);
    kept["spec"]["concurrencyPolicy"] = json!("Forbid");
    api.patch("kept", &apply(), &Patch::Apply(kept))
        .await
        .expect("kept");
    let stored = fake.get(&cronjobs(), "kept").unwrap();
    assert_eq!(stored["spec"]["successfulJobsHistoryLimit"], 0);
    assert_eq!(stored["spec"]["concurrencyPolicy"], "Forbid");

    for (name, schedule, expected) in [
        (
            "fields",
            "* * *",
            "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]",
        ),
        (
            "minute",
            "60 * * * *",
            "end of range (60) above maximum (59): 60",
        ),
        (
            "word",
            "@fortnightly",
            "unrecognized descriptor: @fortnightly",
        ),
        (
            "tz",
            "TZ=UTC 0 * * * *",
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        ("empty", "", "spec.schedule: Required value"),
    ] {
        let (code, _, message) = refusal(
            api.patch(name, &apply(), &Patch::Apply(cron_job(name, schedule)))
                .await,
        );
        assert_eq!(code, 422, "{schedule}");
        assert!(message.contains(expected), "{schedule}: {message}");
    }
    let long = "x".repeat(53);
    let (code, _, message) = refusal(
        api.patch(&long, &apply(), &Patch::Apply(cron_job(&long, "@daily")))
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("must be no more than 52 characters"),
        "{message}"
    );
    let mut selector = cron_job("selector", "@daily");
    selector["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
    selector["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let (code, _, message) = refusal(
        api.patch("selector", &apply(), &Patch::Apply(selector))
            .await,
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.jobTemplate.spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` will be auto-generated"), "{message}");
    assert!(
        message.contains("spec.jobTemplate.spec.template.spec.restartPolicy: Required value"),
        "{message}"
    );
    let mut zone = cron_job("zone", "@daily");
    zone["spec"]["timeZone"] = json!("Local");
    assert_eq!(
        refusal(api.patch("zone", &apply(), &Patch::Apply(zone)).await).0,
        422
    );

    // Unlike a Job's, a CronJob's template can change (the next run uses it).
    let mut changed = cron_job("report", "*/15 1-5 * jan-jun MON-FRI");
    changed["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/report:2.0");
    api.patch("report", &apply(), &Patch::Apply(changed))
        .await
        .expect("template change");
    assert_eq!(
        fake.get(&cronjobs(), "report").unwrap()["metadata"]["generation"],
        2
    );

    // The cronjob controller's status write.
    let status = api
        .patch_status(
            "report",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": "2026-06-01T01:00:00Z"}})),
        )
        .await
        .expect("status")
        .status
        .expect("status");
    assert!(status.last_schedule_time.is_some());
    assert_eq!(
        fake.get(&cronjobs(), "report").unwrap()["metadata"]["generation"],
        2
    );
}

// Lists and watches, in one namespace and across all; delete.
#[tokio::test]
async fn jobs_and_cron_jobs_list_watch_and_delete() {
    let fake = FakeApi::new();
    let all: Api<Job> = Api::all(fake.client());
    let mut events = all
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    create_job(&fake, job("a", "img:1")).await;
    let event = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("an event")
        .expect("ok")
        .expect("some");
    match event {
        WatchEvent::Added(j) => assert_eq!(j.metadata.name.as_deref(), Some("a")),
        other => panic!("{other:?}"),
    }
    let other_ns: Api<Job> = Api::namespaced(fake.client(), "elsewhere");
    other_ns
        .create(
            &PostParams::default(),
            &serde_json::from_value(job("b", "img:1")).unwrap(),
        )
        .await
        .expect("other namespace");
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    assert_eq!(
        job_api(&fake)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let selected = job_api(&fake)
        .list(&ListParams::default().labels("app.kubernetes.io/name=a"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);

    cron_api(&fake)
        .create(
            &PostParams::default(),
            &serde_json::from_value(cron_job("c", "@daily")).unwrap(),
        )
        .await
        .expect("cron job");
    let all_cron: Api<CronJob> = Api::all(fake.client());
    assert_eq!(
        all_cron
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    job_api(&fake)
        .delete("a", &DeleteParams::background())
        .await
        .expect("delete");
    assert!(fake.get(&jobs(), "a").is_none());
    match tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("an event")
        .expect("ok")
        .expect("some")
    {
        WatchEvent::Added(j) => assert_eq!(j.metadata.name.as_deref(), Some("b")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), events.try_next()).await,
        Ok(Ok(Some(WatchEvent::Deleted(_))))
    ));
    cron_api(&fake)
        .delete("c", &DeleteParams::default())
        .await
        .expect("delete cron job");
    assert!(fake.get(&cronjobs(), "c").is_none());
}

/// The operator's role as shipped, plus the batch rule the SafeJob reconciler needs when
/// `config/rbac/role.yaml` does not have it yet.
fn operator_rbac() -> Rbac {
    let mut rbac = Rbac::operator();
    let has_batch = rbac
        .rules
        .iter()
        .any(|r| r.groups.iter().any(|g| g == "batch"));
    if !has_batch {
        rbac.rules.push(Rule {
            groups: vec!["batch".into()],
            resources: vec!["jobs".into(), "cronjobs".into()],
            verbs: ["get", "list", "watch", "create", "patch", "delete"]
                .map(String::from)
                .to_vec(),
        });
    }
    rbac
}

// RBAC is enforced for jobs and cronjobs as for every other resource: the operator's
// verbs work, a status write needs `jobs/status`, an apply that creates needs `create`.
#[tokio::test]
async fn rbac_is_enforced_for_jobs_and_cron_jobs() {
    let fake = FakeApi::with_rbac(operator_rbac());
    let api = job_api(&fake);
    api.patch("run", &apply(), &Patch::Apply(job("run", "img:1")))
        .await
        .expect("operator creates a job");
    cron_api(&fake)
        .patch(
            "nightly",
            &apply(),
            &Patch::Apply(cron_job("nightly", "@daily")),
        )
        .await
        .expect("operator creates a cron job");
    api.list(&ListParams::default()).await.expect("list");
    api.get("run").await.expect("get");
    let (code, reason, message) = refusal(
        api.patch_status(
            "run",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"active": 1}})),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "jobs.batch \"run\" is forbidden: User \"system:serviceaccount:safeapp-system:safeapp-operator\" \
         cannot patch resource \"jobs/status\" in API group \"batch\" in the namespace \"shop\""
    );

    // The job controller (another identity) may write the status.
    let controller = fake.with_user(Rbac {
        user: "system:serviceaccount:kube-system:job-controller".into(),
        rules: vec![Rule {
            groups: vec!["batch".into()],
            resources: vec!["jobs/status".into()],
            verbs: vec!["patch".into()],
        }],
    });
    job_api(&controller)
        .patch_status(
            "run",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"startTime": "2026-06-01T00:00:00Z", "active": 1}})),
        )
        .await
        .expect("controller writes status");

    // Without `create`, an apply updates but never creates.
    let mut no_create = operator_rbac();
    for rule in &mut no_create.rules {
        if rule.groups.iter().any(|g| g == "batch") {
            rule.verbs.retain(|v| v != "create");
        }
    }
    let limited = fake.with_user(no_create);
    let mut labelled = job("run", "img:1");
    labelled["metadata"]["labels"]["team"] = json!("data");
    job_api(&limited)
        .patch("run", &apply(), &Patch::Apply(labelled))
        .await
        .expect("update without create");
    let (code, _, message) = refusal(
        cron_api(&limited)
            .patch(
                "weekly",
                &apply(),
                &Patch::Apply(cron_job("weekly", "@weekly")),
            )
            .await,
    );
    assert_eq!(code, 403);
    assert!(
        message.contains("cannot create resource \"cronjobs\" in API group \"batch\""),
        "{message}"
    );
    // Nothing at all for an identity without batch rules.
    let nobody = fake.with_user(Rbac {
        user: "nobody".into(),
        rules: vec![],
    });
    let all: Api<Job> = Api::all(nobody.client());
    let (code, _, message) = refusal(all.list(&ListParams::default()).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "jobs.batch is forbidden: User \"nobody\" cannot list resource \"jobs\" in API group \"batch\" at the cluster scope"
    );
    let result = Api::<Job>::all(nobody.client())
        .watch(&WatchParams::default(), "0")
        .await;
    match result {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        Ok(stream) => {
            let first = stream.boxed().next().await;
            assert!(
                matches!(first, Some(Err(_)) | Some(Ok(WatchEvent::Error(_))) | None),
                "{first:?}"
            );
        }
        Err(other) => panic!("{other:?}"),
    }
}
