//! SafeJob, without a cluster: every default of its CronJob or Job and how to override
//! it, every validation rule with its field path, the CRD's CEL rules (the one-off
//! immutability transition included), the pod it shares with SafeApp (same code, same
//! answers), and `render` of manifests that hold both kinds.

#[allow(dead_code)] // this crate uses only `permissive_policy` and `merged`
mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::cel::Validator;
use safeapp::api::safejob::IMMUTABLE_MESSAGE;
use safeapp::api::v1alpha1::SecurityProfile;
use safeapp::api::{SafeApp, SafeJob};
use safeapp::crd::safejob_crd;
use safeapp::manifest;
use safeapp::policy::Policy;
use safeapp::render::{self, JobResources};
use safeapp::validate::{FieldError, ValidatedJob, validate, validate_job};
use serde_json::{Value, json};

// --- fixtures ------------------------------------------------------------------------

/// A scheduled SafeJob read from the API server (it has a uid).
const SCHEDULED: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeJob
metadata: {name: report, namespace: shop, uid: 0b4e1c9a-1111-2222-3333-444455556666}
spec:
  image: registry.example.com/shop/report:1.2.0
  schedule: "30 2 * * *"
  timeZone: Europe/Oslo
  activeDeadlineSeconds: 3600
"#;

/// A one-off SafeJob read from the API server.
const ONE_OFF: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeJob
metadata: {name: report, namespace: shop, uid: 0b4e1c9a-1111-2222-3333-444455556666}
spec:
  image: registry.example.com/shop/report:1.2.0
  activeDeadlineSeconds: 900
"#;

/// A SafeApp of the same name and namespace, for the shared-pod comparisons.
const APP: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: report, namespace: shop, uid: 0b4e1c9a-1111-2222-3333-444455556666}
spec:
  image: registry.example.com/shop/report:1.2.0
  ports: [{name: http, port: 8080}]
  healthCheck: {path: /health}
"#;

/// `base` with the YAML mapping `extra` merged into its spec (a null value removes the
/// key), as JSON.
fn merged(base: &str, extra: &str) -> Value {
    serde_json::to_value(common::merged(base, extra)).expect("json")
}

fn job_with(base: &str, extra: &str) -> SafeJob {
    serde_json::from_value(merged(base, extra)).expect("a SafeJob")
}

fn app_with(extra: &str) -> SafeApp {
    serde_json::from_value(merged(APP, extra)).expect("a SafeApp")
}

fn valid(base: &str, extra: &str) -> ValidatedJob {
    validate_job(&job_with(base, extra), &Policy::default())
        .unwrap_or_else(|e| panic!("expected valid, got {e:#?}"))
}

fn errors_under(base: &str, extra: &str, policy: &Policy) -> Vec<FieldError> {
    match validate_job(&job_with(base, extra), policy) {
        Ok(_) => panic!("{extra}: accepted, expected problems"),
        Err(e) => e,
    }
}

fn errors(base: &str, extra: &str) -> Vec<FieldError> {
    errors_under(base, extra, &Policy::default())
}

/// Asserts a problem sits at `path` and its message contains `needle`.
fn assert_problem(errs: &[FieldError], path: &str, needle: &str) {
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "expected {path}: ...{needle}..., got {errs:#?}"
    );
}

fn rendered(base: &str, extra: &str) -> JobResources {
    render::render_job(&valid(base, extra), &Policy::default())
}

fn cron(extra: &str) -> CronJob {
    let r = rendered(SCHEDULED, extra);
    assert!(r.job.is_none(), "a scheduled SafeJob renders no Job");
    r.cron_job.expect("a CronJob")
}

fn one_off(extra: &str) -> Job {
    let r = rendered(ONE_OFF, extra);
    assert!(r.cron_job.is_none(), "a one-off SafeJob renders no CronJob");
    r.job.expect("a Job")
}

fn cron_run(c: &CronJob) -> JobSpec {
    c.spec
        .clone()
        .expect("spec")
        .job_template
        .spec
        .expect("jobTemplate.spec")
}

fn job_run(j: &Job) -> JobSpec {
    j.spec.clone().expect("spec")
}

/// The run (JobSpec) of both forms with the same extra settings: the CronJob's
/// jobTemplate and the one-off Job.
fn both_runs(extra: &str) -> [(&'static str, JobSpec); 2] {
    [
        ("CronJob", cron_run(&cron(extra))),
        ("Job", job_run(&one_off(extra))),
    ]
}

fn pod(run: &JobSpec) -> PodSpec {
    run.template.spec.clone().expect("pod spec")
}

fn ignore_disruptions() -> PodFailurePolicyRule {
    serde_json::from_value(json!({
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }))
    .expect("rule")
}

fn fail_job_on(container: &str, codes: &[i32]) -> PodFailurePolicyRule {
    serde_json::from_value(json!({
        "action": "FailJob",
        "onExitCodes": {"containerName": container, "operator": "In", "values": codes},
    }))
    .expect("rule")
}

// --- CronJob (scheduled) defaults ----------------------------------------------------

// A scheduled SafeJob gets a CronJob with Forbid, a 300 s starting deadline, suspend
// stated false, 3 + 3 runs kept, and its schedule and zone as written.
#[test]
fn cron_job_defaults() {
    let c = cron("");
    let s = c.spec.as_ref().expect("spec");
    assert_eq!(s.schedule, "30 2 * * *");
    assert_eq!(s.time_zone.as_deref(), Some("Europe/Oslo"));
    assert_eq!(s.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(s.starting_deadline_seconds, Some(300));
    assert_eq!(s.suspend, Some(false));
    assert_eq!(s.successful_jobs_history_limit, Some(3));
    assert_eq!(s.failed_jobs_history_limit, Some(3));
    assert_eq!(c.metadata.name.as_deref(), Some("report"));
    assert_eq!(c.metadata.namespace.as_deref(), Some("shop"));
}

// Each CronJob default gives way to the SafeJob's own setting.
#[test]
fn cron_job_settings_override_defaults() {
    let c = cron(
        "{concurrencyPolicy: Replace, startingDeadlineSeconds: 60, suspend: true, successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 7, timeZone: America/New_York, schedule: '*/15 9-17 * * MON-FRI'}",
    );
    let s = c.spec.as_ref().expect("spec");
    assert_eq!(s.schedule, "*/15 9-17 * * MON-FRI");
    assert_eq!(s.time_zone.as_deref(), Some("America/New_York"));
    assert_eq!(s.concurrency_policy.as_deref(), Some("Replace"));
    assert_eq!(s.starting_deadline_seconds, Some(60));
    assert_eq!(s.suspend, Some(true));
    assert_eq!(s.successful_jobs_history_limit, Some(1));
    assert_eq!(s.failed_jobs_history_limit, Some(7));
    let allow = cron("{concurrencyPolicy: Allow, successfulJobsHistoryLimit: 0}");
    let s = allow.spec.as_ref().expect("spec");
    assert_eq!(s.concurrency_policy.as_deref(), Some("Allow"));
    assert_eq!(s.successful_jobs_history_limit, Some(0));
}

// The runs a CronJob creates carry the pod's labels and annotations (they are found and
// cached by them), the same as the CronJob and its pod template.
#[test]
fn cron_job_template_carries_the_pod_labels() {
    let c = cron("{tier: batch, owner: {team: finance}}");
    let spec = c.spec.as_ref().expect("spec");
    let template_meta = spec
        .job_template
        .metadata
        .as_ref()
        .expect("jobTemplate.metadata");
    let pod_meta = cron_run(&c).template.metadata.expect("pod metadata");
    assert_eq!(template_meta.labels, pod_meta.labels);
    assert_eq!(template_meta.labels, c.metadata.labels);
    assert_eq!(template_meta.annotations, pod_meta.annotations);
    assert_eq!(
        template_meta
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("batch")
    );
}

// Scheduled runs are kept by the history limits: no ttlSecondsAfterFinished on the
// CronJob's jobTemplate.
#[test]
fn scheduled_runs_have_no_ttl() {
    assert_eq!(cron_run(&cron("")).ttl_seconds_after_finished, None);
}

// --- Job (one-off) defaults ----------------------------------------------------------

// A one-off SafeJob gets one Job, named after it, kept a day (86400 s) after it finishes.
#[test]
fn one_off_job_defaults() {
    let j = one_off("");
    assert_eq!(j.metadata.name.as_deref(), Some("report"));
    assert_eq!(j.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(job_run(&j).ttl_seconds_after_finished, Some(86400));
}

// ttlSecondsAfterFinished of a one-off SafeJob is passed on, from 60 s: below that the
// Job could go before the operator saw how it ended.
#[test]
fn one_off_ttl_is_overridable() {
    for ttl in [60, 600, 604_800] {
        let j = one_off(&format!("{{ttlSecondsAfterFinished: {ttl}}}"));
        assert_eq!(job_run(&j).ttl_seconds_after_finished, Some(ttl));
    }
    for ttl in [0, 59] {
        let errs = errors(ONE_OFF, &format!("{{ttlSecondsAfterFinished: {ttl}}}"));
        assert_problem(&errs, "spec.ttlSecondsAfterFinished", "at least 60");
    }
}

// --- both forms ----------------------------------------------------------------------

// Every run, scheduled or one-off: 3 retries, the spec's deadline, restartPolicy Never,
// a 30 s grace period, and a pod failure policy under which a disruption is no failure.
#[test]
fn run_defaults_on_both_forms() {
    let deadlines = [("CronJob", 3600), ("Job", 900)];
    for ((form, run), (_, deadline)) in both_runs("").into_iter().zip(deadlines) {
        assert_eq!(run.backoff_limit, Some(3), "{form}");
        assert_eq!(run.active_deadline_seconds, Some(deadline), "{form}");
        assert_eq!(run.completions, None, "{form}");
        assert_eq!(run.parallelism, None, "{form}");
        assert_eq!(run.completion_mode, None, "{form}");
        let policy = run.pod_failure_policy.as_ref().expect("podFailurePolicy");
        assert_eq!(policy.rules, vec![ignore_disruptions()], "{form}");
        let pod = pod(&run);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"), "{form}");
        assert_eq!(pod.termination_grace_period_seconds, Some(30), "{form}");
        assert_eq!(pod.automount_service_account_token, Some(false), "{form}");
        assert_eq!(pod.containers.len(), 1, "{form}: one app container");
    }
}

// backoffLimit and terminationGracePeriodSeconds give way to the SafeJob's own.
#[test]
fn retries_and_grace_are_overridable() {
    for (form, run) in both_runs("{backoffLimit: 0, terminationGracePeriodSeconds: 120}") {
        assert_eq!(run.backoff_limit, Some(0), "{form}");
        assert_eq!(
            pod(&run).termination_grace_period_seconds,
            Some(120),
            "{form}"
        );
    }
}

// Without spec.activeDeadlineSeconds the policy's defaults.jobActiveDeadlineSeconds
// applies (read from the policy file's own key); the spec's wins over it.
#[test]
fn deadline_from_policy_default() {
    let policy = Policy::from_yaml(
        "defaults:\n  jobActiveDeadlineSeconds: 7200\n",
        std::path::Path::new("tests/safejob.rs"),
    )
    .expect("policy");
    assert_eq!(policy.defaults.job_active_deadline_seconds, Some(7200));
    for base in [SCHEDULED, ONE_OFF] {
        let without = job_with(base, "{activeDeadlineSeconds: null}");
        let v = validate_job(&without, &policy).expect("valid with the policy's deadline");
        assert_eq!(v.active_deadline_seconds, 7200);
        let r = render::render_job(&v, &policy);
        let run = match (r.cron_job, r.job) {
            (Some(c), None) => cron_run(&c),
            (None, Some(j)) => job_run(&j),
            other => panic!("expected one CronJob or one Job, got {other:#?}"),
        };
        assert_eq!(run.active_deadline_seconds, Some(7200));
        let own =
            validate_job(&job_with(base, "{activeDeadlineSeconds: 60}"), &policy).expect("valid");
        assert_eq!(own.active_deadline_seconds, 60, "the spec's deadline wins");
    }
}

// With neither the spec's deadline nor the policy's default, the SafeJob is refused at
// spec.activeDeadlineSeconds: a job never runs forever.
#[test]
fn deadline_required_without_policy_default() {
    for base in [SCHEDULED, ONE_OFF] {
        let errs = errors(base, "{activeDeadlineSeconds: null}");
        assert_problem(&errs, "spec.activeDeadlineSeconds", "required");
        assert_problem(
            &errs,
            "spec.activeDeadlineSeconds",
            "defaults.jobActiveDeadlineSeconds",
        );
    }
    let errs = errors(ONE_OFF, "{activeDeadlineSeconds: 0}");
    assert_problem(&errs, "spec.activeDeadlineSeconds", "at least 1");
}

// `ignoreDisruptions: false` drops the Ignore rule (and with it the whole pod failure
// policy when no exit code is listed).
#[test]
fn ignore_disruptions_false_removes_the_rule() {
    for (form, run) in both_runs("{ignoreDisruptions: false}") {
        assert_eq!(run.pod_failure_policy, None, "{form}");
    }
    for (form, run) in both_runs("{ignoreDisruptions: false, failOnExitCodes: [3]}") {
        let rules = run.pod_failure_policy.expect("podFailurePolicy").rules;
        assert_eq!(rules, vec![fail_job_on("report", &[3])], "{form}");
    }
    for (form, run) in both_runs("{ignoreDisruptions: true}") {
        let rules = run.pod_failure_policy.expect("podFailurePolicy").rules;
        assert_eq!(rules, vec![ignore_disruptions()], "{form}");
    }
}

// failOnExitCodes adds a FailJob rule on the app container's exit codes, sorted, after
// the disruption rule.
#[test]
fn fail_on_exit_codes_add_a_sorted_fail_job_rule() {
    for (form, run) in both_runs("{failOnExitCodes: [42, 3, 7]}") {
        let rules = run
            .pod_failure_policy
            .clone()
            .expect("podFailurePolicy")
            .rules;
        assert_eq!(
            rules,
            vec![ignore_disruptions(), fail_job_on("report", &[3, 7, 42])],
            "{form}"
        );
        assert_eq!(pod(&run).containers[0].name, "report", "{form}");
    }
}

// restartPolicy OnFailure restarts in place: no pod failure policy (Kubernetes allows
// one with Never only), even when ignoreDisruptions is false.
#[test]
fn on_failure_has_no_pod_failure_policy() {
    for extra in [
        "{restartPolicy: OnFailure}",
        "{restartPolicy: OnFailure, ignoreDisruptions: false}",
    ] {
        for (form, run) in both_runs(extra) {
            assert_eq!(run.pod_failure_policy, None, "{form} {extra}");
            assert_eq!(
                pod(&run).restart_policy.as_deref(),
                Some("OnFailure"),
                "{form} {extra}"
            );
        }
    }
    for (form, run) in both_runs("{restartPolicy: Never}") {
        assert_eq!(pod(&run).restart_policy.as_deref(), Some("Never"), "{form}");
        assert!(run.pod_failure_policy.is_some(), "{form}");
    }
}

// restartPolicy OnFailure is refused together with failOnExitCodes or
// `ignoreDisruptions: true`, each at its own path.
#[test]
fn on_failure_refused_with_exit_codes_or_ignored_disruptions() {
    for base in [SCHEDULED, ONE_OFF] {
        let errs = errors(base, "{restartPolicy: OnFailure, failOnExitCodes: [3]}");
        assert_problem(&errs, "spec.failOnExitCodes", "restartPolicy Never");
        let errs = errors(base, "{restartPolicy: OnFailure, ignoreDisruptions: true}");
        assert_problem(&errs, "spec.ignoreDisruptions", "restartPolicy Never");
        let errs = errors(
            base,
            "{restartPolicy: OnFailure, ignoreDisruptions: true, failOnExitCodes: [3]}",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
    }
}

// completions and parallelism are passed on; parallelism alone leaves completions unset
// (a work queue: done when one pod succeeds and none runs); Indexed is passed on.
#[test]
fn completions_and_parallelism_passed_through() {
    for (form, run) in both_runs("{completions: 10, parallelism: 3}") {
        assert_eq!(
            (run.completions, run.parallelism),
            (Some(10), Some(3)),
            "{form}"
        );
        assert_eq!(run.completion_mode, None, "{form}");
    }
    for (form, run) in both_runs("{parallelism: 4}") {
        assert_eq!(
            (run.completions, run.parallelism),
            (None, Some(4)),
            "{form}"
        );
    }
    for (form, run) in both_runs("{completions: 5}") {
        assert_eq!(
            (run.completions, run.parallelism),
            (Some(5), None),
            "{form}"
        );
    }
    for (form, run) in both_runs("{completions: 5, completionMode: Indexed}") {
        assert_eq!(run.completion_mode.as_deref(), Some("Indexed"), "{form}");
    }
    for (form, run) in both_runs("{completionMode: NonIndexed}") {
        assert_eq!(run.completion_mode.as_deref(), Some("NonIndexed"), "{form}");
    }
}

// completionMode Indexed needs completions (the number of indexes).
#[test]
fn indexed_requires_completions() {
    for base in [SCHEDULED, ONE_OFF] {
        let errs = errors(base, "{completionMode: Indexed, parallelism: 2}");
        assert_problem(&errs, "spec.completionMode", "spec.completions");
    }
}

// The app container and every init container report why they died
// (terminationMessagePolicy FallbackToLogsOnError).
#[test]
fn termination_message_policy_on_every_container() {
    let extra = "{initContainers: [{name: wait-db, image: 'registry.example.com/tools/wait:1.0.0'}, {name: fetch, image: 'registry.example.com/tools/fetch:2.0.0'}]}";
    for (form, run) in both_runs(extra) {
        let pod = pod(&run);
        let all: Vec<&Container> = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .collect();
        assert_eq!(all.len(), 3, "{form}");
        for c in all {
            assert_eq!(
                c.termination_message_policy.as_deref(),
                Some("FallbackToLogsOnError"),
                "{form}: {}",
                c.name
            );
        }
    }
}

// The pod runs under the restricted profile by default, as a SafeApp's does: non-root
// UID/GID 10001, RuntimeDefault seccomp, no privilege escalation, no capabilities, a
// read-only root with a writable /tmp volume, for the app and the init containers.
#[test]
fn restricted_security_and_tmp_volume() {
    let extra =
        "{initContainers: [{name: wait-db, image: 'registry.example.com/tools/wait:1.0.0'}]}";
    for (form, run) in both_runs(extra) {
        let pod = pod(&run);
        let psc = pod.security_context.as_ref().expect("pod securityContext");
        assert_eq!(
            (
                psc.run_as_non_root,
                psc.run_as_user,
                psc.run_as_group,
                psc.fs_group
            ),
            (Some(true), Some(10001), Some(10001), Some(10001)),
            "{form}"
        );
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault"),
            "{form}"
        );
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = c
                .security_context
                .as_ref()
                .expect("container securityContext");
            assert_eq!(
                sc.allow_privilege_escalation,
                Some(false),
                "{form} {}",
                c.name
            );
            assert_eq!(
                sc.read_only_root_filesystem,
                Some(true),
                "{form} {}",
                c.name
            );
            assert_eq!(sc.run_as_non_root, Some(true), "{form} {}", c.name);
            assert_eq!(sc.privileged, Some(false), "{form} {}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_string()]),
                "{form} {}",
                c.name
            );
            let tmp = c
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == "/tmp")
                .unwrap_or_else(|| panic!("{form} {}: no /tmp mount", c.name));
            assert_eq!(tmp.name, "safeapp-tmp");
        }
        let tmp = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "safeapp-tmp")
            .expect("the /tmp volume");
        assert!(tmp.empty_dir.is_some(), "{form}: /tmp is an emptyDir");
    }
}

// A SafeJob renders only its CronJob or Job (and its namespace's shared LimitRange):
// no Service, PodDisruptionBudget, HPA or anything else a served app gets.
#[test]
fn a_safejob_renders_only_its_workload() {
    for (base, kind) in [(SCHEDULED, "CronJob"), (ONE_OFF, "Job")] {
        let text = serde_yaml_ng::to_string(&merged(base, "")).expect("yaml");
        let out = manifest::render_manifest(&text, &Policy::default()).expect("renders");
        assert_eq!(kinds(&out.objects), ["LimitRange", kind]);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }
}

fn kinds(objects: &[render::Object]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o.to_json()["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

// Labels: name = the SafeJob's name, instance = `<name>-job` (never name == instance,
// a SafeApp's selector), managed-by, version, every dimension set, and spec.labels; on
// the workload, the jobTemplate and the pod alike.
#[test]
fn labels_of_every_object() {
    let extra = "{tier: batch, environment: production, track: stable, tenant: acme, shard: eu-1, component: report, partOf: reporting, labels: {cost-center: cc-1234}}";
    let expected: BTreeMap<String, String> = [
        ("app.kubernetes.io/name", "report"),
        ("app.kubernetes.io/instance", "report-job"),
        ("app.kubernetes.io/managed-by", "safeapp-operator"),
        ("app.kubernetes.io/version", "1.2.0"),
        ("app.kubernetes.io/component", "report"),
        ("app.kubernetes.io/part-of", "reporting"),
        ("tier", "batch"),
        ("environment", "production"),
        ("track", "stable"),
        ("tenant", "acme"),
        ("shard", "eu-1"),
        ("cost-center", "cc-1234"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (what, meta) in every_meta(extra) {
        let labels = meta.labels;
        assert_eq!(labels.as_ref(), Some(&expected), "{what}");
    }
}

// A SafeJob named like a SafeApp of its namespace never matches that app's selector
// (Deployment, Service, PDB, NetworkPolicy): its pods get none of the app's traffic and
// do not count in its disruption budget.
#[test]
fn a_safejob_pod_never_matches_a_safeapp_selector() {
    let app = validate(&app_with(""), &common::permissive_policy()).expect("valid app");
    let selector = render::render(&app, &Policy::default())
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .expect("deployment spec")
        .selector
        .match_labels
        .expect("matchLabels");
    for (form, run) in both_runs("") {
        let labels = run
            .template
            .metadata
            .and_then(|m| m.labels)
            .expect("labels");
        assert_eq!(
            labels["app.kubernetes.io/name"],
            selector["app.kubernetes.io/name"]
        );
        let matches = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        assert!(
            !matches,
            "{form}: the pod {labels:?} matches the app selector {selector:?}"
        );
    }
}

/// The metadata of every object and pod template a SafeJob with `extra` makes, in
/// both forms: the CronJob, its jobTemplate and pod, the Job and its pod.
fn every_meta(extra: &str) -> Vec<(&'static str, ObjectMeta)> {
    let c = cron(extra);
    let j = one_off(extra);
    let template_meta = c
        .spec
        .as_ref()
        .and_then(|s| s.job_template.metadata.clone())
        .expect("jobTemplate metadata");
    vec![
        ("CronJob", c.metadata.clone()),
        ("jobTemplate", template_meta),
        ("CronJob pod", cron_run(&c).template.metadata.expect("meta")),
        ("Job", j.metadata.clone()),
        ("Job pod", job_run(&j).template.metadata.expect("meta")),
    ]
}

// owner and dependsOn become the safeapp.dev/* annotations, with spec.annotations, on
// the workload, the jobTemplate and the pod.
#[test]
fn owner_annotations() {
    let extra = "{owner: {team: finance, contact: '#finance-oncall', runbook: 'https://runbooks.example.com/report', docs: 'https://docs.example.com/report'}, dependsOn: [warehouse, mailer], annotations: {example.com/review: approved}}";
    let expected: BTreeMap<String, String> = [
        ("safeapp.dev/owner-team", "finance"),
        ("safeapp.dev/contact", "#finance-oncall"),
        ("safeapp.dev/runbook", "https://runbooks.example.com/report"),
        ("safeapp.dev/docs", "https://docs.example.com/report"),
        ("safeapp.dev/depends-on", "warehouse,mailer"),
        ("example.com/review", "approved"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (what, meta) in every_meta(extra) {
        let annotations = meta.annotations;
        assert_eq!(annotations.as_ref(), Some(&expected), "{what}");
    }
    // No owner, no annotations at all (not an empty map).
    assert_eq!(one_off("").metadata.annotations, None);
}

// A SafeJob read from the API server (with a uid) controls its CronJob or Job through an
// ownerReference of kind SafeJob; one from a file (no uid) gets none.
#[test]
fn owner_reference_kind_safejob() {
    let expected = json!([{
        "apiVersion": "safeapp.dev/v1alpha1",
        "kind": "SafeJob",
        "name": "report",
        "uid": "0b4e1c9a-1111-2222-3333-444455556666",
        "controller": true,
    }]);
    let c = cron("");
    let j = one_off("");
    for (what, refs) in [
        ("CronJob", &c.metadata.owner_references),
        ("Job", &j.metadata.owner_references),
    ] {
        assert_eq!(serde_json::to_value(refs).unwrap(), expected, "{what}");
    }
    for base in [SCHEDULED, ONE_OFF] {
        let mut job = job_with(base, "");
        job.metadata.uid = None;
        let v = validate_job(&job, &Policy::default()).expect("valid");
        let r = render::render_job(&v, &Policy::default());
        let meta = r
            .cron_job
            .map(|c| c.metadata)
            .or(r.job.map(|j| j.metadata))
            .expect("one object");
        assert_eq!(meta.owner_references, None);
    }
}

// --- shared with SafeApp -------------------------------------------------------------

/// Pod fields exercising every shared builder: identity, env, resources, volumes,
/// scheduling, init containers with their own partial security contexts.
const POD_FIELDS: &str = r#"
image: registry.example.com/shop/report:1.2.0
imagePullPolicy: Always
imagePullSecrets: [registry-credentials]
command: [/bin/report]
args: [--period, yesterday]
env:
  - {name: MODE, value: batch}
  - name: PASSWORD
    valueFrom: {secretKeyRef: {name: report-secrets, key: password}}
  - {name: POD_IP, value: overridden}
envFrom:
  - configMapRef: {name: report-config}
resources:
  requests: {cpu: 200m, memory: 256Mi}
  limits: {memory: 512Mi}
runAsUser: 20000
runAsGroup: 20001
volumes:
  - name: config
    configMap: {name: report-config}
  - name: scratch
    emptyDir: {sizeLimit: 1Gi}
volumeMounts:
  - {name: config, mountPath: /etc/report, readOnly: true}
  - {name: scratch, mountPath: /scratch}
initContainers:
  - name: wait-db
    image: registry.example.com/tools/wait:1.0.0
    args: [--host, db]
    securityContext: {runAsUser: 30000}
  - name: fetch
    image: registry.example.com/tools/fetch:2.0.0
    terminationMessagePolicy: File
    resources: {requests: {cpu: 50m}}
serviceAccountName: report-runner
nodeSelector: {kubernetes.io/os: linux}
tolerations:
  - {key: batch, operator: Exists, effect: NoSchedule}
affinity:
  nodeAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        preference:
          matchExpressions: [{key: pool, operator: In, values: [batch]}]
priorityClassName: low
tier: batch
owner: {team: finance}
"#;

/// The SafeApp's and the SafeJob's pod templates for the same pod fields and profile.
fn twin_templates(profile: &str) -> (PodTemplateSpec, PodTemplateSpec) {
    let policy = common::permissive_policy();
    let fields = format!("{POD_FIELDS}securityProfile: {profile}\n");
    let app = validate(&app_with(&fields), &policy).unwrap_or_else(|e| panic!("{e:#?}"));
    let job =
        validate_job(&job_with(ONE_OFF, &fields), &policy).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(app.pod.fields, job.pod.fields, "the same PodFields");
    let app_template = render::render(&app, &policy)
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .expect("deployment spec")
        .template;
    let job_template = render::render_job(&job, &policy)
        .job
        .and_then(|j| j.spec)
        .expect("job spec")
        .template;
    (app_template, job_template)
}

// The same pod fields give a SafeApp and a SafeJob the same app container (except the
// ports, probes and preStop a served app adds), init containers, pod security context,
// volumes, identity and scheduling, under every profile: one pod builder.
#[test]
fn same_pod_fields_same_pod() {
    for profile in ["restricted", "baseline", "none"] {
        let (app, job) = twin_templates(profile);
        let mut app_pod = app.spec.expect("app pod");
        let mut job_pod = job.spec.expect("job pod");

        let mut app_container = app_pod.containers.remove(0);
        let job_container = job_pod.containers.remove(0);
        assert!(app_container.ports.is_some() && app_container.readiness_probe.is_some());
        app_container.ports = None;
        app_container.readiness_probe = None;
        app_container.liveness_probe = None;
        app_container.startup_probe = None;
        app_container.lifecycle = None;
        assert_eq!(app_container, job_container, "{profile}: app container");
        assert!(app_pod.containers.is_empty() && job_pod.containers.is_empty());

        // What each workload adds on its own.
        assert!(app_pod.topology_spread_constraints.take().is_some());
        assert_eq!(job_pod.restart_policy.take().as_deref(), Some("Never"));
        assert_eq!(app_pod.termination_grace_period_seconds.take(), Some(30));
        assert_eq!(job_pod.termination_grace_period_seconds.take(), Some(30));
        // Everything else, init containers and security contexts included, is equal.
        assert_eq!(app_pod, job_pod, "{profile}: pod spec");

        // The pod metadata differs only in the instance label.
        let app_meta = app.metadata.expect("app pod metadata");
        let job_meta = job.metadata.expect("job pod metadata");
        assert_eq!(app_meta.annotations, job_meta.annotations, "{profile}");
        let mut app_labels = app_meta.labels.expect("labels");
        let mut job_labels = job_meta.labels.expect("labels");
        assert_eq!(
            app_labels.remove("app.kubernetes.io/instance").as_deref(),
            Some("report")
        );
        assert_eq!(
            job_labels.remove("app.kubernetes.io/instance").as_deref(),
            Some("report-job")
        );
        assert_eq!(app_labels, job_labels, "{profile}: labels");
    }
}

/// Problems of the shared fields, each tried on a valid SafeApp and a valid SafeJob.
const SHARED_PROBLEMS: &[(&str, &str)] = &[
    (
        "{image: 'registry.example.com/shop/report:latest'}",
        "spec.image",
    ),
    ("{image: 'registry.example.com/shop/report'}", "spec.image"),
    (
        "{volumes: [{name: host, hostPath: {path: /var/run}}]}",
        "spec.volumes[0].hostPath",
    ),
    (
        "{serviceAccountName: deploy-bot}",
        "spec.serviceAccountName",
    ),
    (
        "{priorityClassName: system-node-critical}",
        "spec.priorityClassName",
    ),
    (
        "{initContainers: [{name: setup, image: 'busybox:1.36', securityContext: {privileged: true}}]}",
        "spec.initContainers[0].securityContext.privileged",
    ),
    ("{securityProfile: baseline}", "spec.securityProfile"),
    ("{securityProfile: none}", "spec.securityProfile"),
    ("{runAsUser: 0}", "spec.runAsUser"),
    ("{env: [{name: '', value: x}]}", "spec.env[0].name"),
    ("{labels: {tier: sneaky}}", "spec.labels[tier]"),
    ("{tier: 'not a label value'}", "spec.tier"),
    (
        "{resources: {requests: {cpu: lots}}}",
        "spec.resources.requests.cpu",
    ),
    (
        "{volumes: [{name: safeapp-tmp, emptyDir: {}}]}",
        "spec.volumes[0].name",
    ),
    (
        "{annotations: {container.apparmor.security.beta.kubernetes.io/report: unconfined}}",
        "spec.annotations[container.apparmor.security.beta.kubernetes.io/report]",
    ),
];

fn sorted(mut errs: Vec<FieldError>) -> Vec<FieldError> {
    errs.sort();
    errs
}

// A problem in a shared field is the same problem, at the same path with the same
// message, on a SafeApp and on a SafeJob (one validation), also all at once.
#[test]
fn same_pod_fields_same_errors() {
    let policy = Policy::default();
    let mut all = serde_yaml_ng::Mapping::new();
    for (extra, path) in SHARED_PROBLEMS {
        let app_errs = validate(&app_with(extra), &policy).expect_err(extra);
        let job_errs = errors_under(ONE_OFF, extra, &policy);
        assert!(
            job_errs.iter().any(|e| e.path == *path),
            "{extra}: expected a problem at {path}, got {job_errs:#?}"
        );
        assert_eq!(sorted(app_errs), sorted(job_errs), "{extra}");
        let patch: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(extra).expect("mapping");
        for (k, v) in patch {
            // One image and one volume list: the first of each; the profile stays restricted.
            let skip = ["image", "volumes", "securityProfile"];
            if !k.as_str().is_some_and(|k| skip.contains(&k)) {
                all.insert(k, v);
            }
        }
    }
    let all = serde_yaml_ng::to_string(&all).expect("yaml");
    let app_errs = validate(&app_with(&all), &policy).expect_err("all at once");
    let job_errs = errors_under(SCHEDULED, &all, &policy);
    assert!(job_errs.len() >= 8, "{job_errs:#?}");
    assert_eq!(sorted(app_errs), sorted(job_errs));
}

// The policy's profile floor judges both kinds alike: under `weakestSecurityProfile:
// baseline`, `none` is refused with the same problem and `baseline` is accepted.
#[test]
fn same_profile_floor_for_both_kinds() {
    let policy = Policy::from_yaml(
        "guardrails:\n  weakestSecurityProfile: baseline\n",
        std::path::Path::new("tests/safejob.rs"),
    )
    .expect("policy");
    let app_errs = validate(&app_with("{securityProfile: none}"), &policy).expect_err("none");
    let job_errs = errors_under(SCHEDULED, "{securityProfile: none}", &policy);
    assert_problem(
        &job_errs,
        "spec.securityProfile",
        "weakestSecurityProfile: baseline",
    );
    assert_eq!(sorted(app_errs), sorted(job_errs));
    let app = validate(&app_with("{securityProfile: baseline}"), &policy).expect("baseline");
    let job = validate_job(&job_with(SCHEDULED, "{securityProfile: baseline}"), &policy)
        .expect("baseline");
    assert_eq!(app.pod.security_profile, SecurityProfile::Baseline);
    assert_eq!(job.pod.security_profile, SecurityProfile::Baseline);
}

// A profile that does not exist is refused when the manifest is read, for both kinds.
#[test]
fn unknown_security_profile_refused_for_both_kinds() {
    for (base, kind) in [(APP, "SafeApp"), (ONE_OFF, "SafeJob")] {
        let text =
            serde_yaml_ng::to_string(&merged(base, "{securityProfile: privileged}")).expect("yaml");
        let errs = manifest::render_manifest(&text, &Policy::default()).expect_err(kind);
        assert_eq!(errs.len(), 1, "{kind}: {errs:?}");
        assert!(
            errs[0].starts_with("document 1: ") && errs[0].contains("unknown variant `privileged`"),
            "{kind}: {errs:?}"
        );
    }
}

// The shared pod fields carry the same CEL rules in both CRDs: an unpinned or `latest`
// image is refused at apply time with the same message.
#[test]
fn cel_shared_image_rules() {
    let app_schema = {
        let crd = safeapp::crd::safeapp_crd();
        serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema"),
        )
        .expect("json")
    };
    for (image, needle) in [
        (
            "registry.example.com/shop/report",
            "spec.image: must be pinned",
        ),
        (
            "registry.example.com/shop/report:latest",
            "spec.image: the tag 'latest'",
        ),
    ] {
        let extra = format!("{{image: '{image}'}}");
        let job_errs = cel_errors(&job_json(ONE_OFF, &extra));
        let app_errs = messages(Validator::new().validate(&app_schema, &merged(APP, &extra), None));
        assert!(
            job_errs.iter().any(|e| e.contains(needle)),
            "{image}: {job_errs:?}"
        );
        assert_eq!(app_errs, job_errs, "{image}");
    }
}

// The name-length limit is the kind's own: 52 for a SafeJob (a CronJob's Jobs add 11
// characters within 63), 63 for a SafeApp.
#[test]
fn name_longer_than_52_refused() {
    let name = |n: usize| "a".repeat(n);
    for base in [SCHEDULED, ONE_OFF] {
        let mut job = job_with(base, "");
        job.metadata.name = Some(name(53));
        let errs = validate_job(&job, &Policy::default()).expect_err("53 characters");
        assert_problem(&errs, "metadata.name", "52");
        job.metadata.name = Some(name(52));
        let v = validate_job(&job, &Policy::default()).expect("52 characters");
        assert_eq!(
            v.pod.instance().len(),
            56,
            "`<name>-job` stays a label value"
        );
    }
    let mut app = app_with("");
    app.metadata.name = Some(name(53));
    validate(&app, &common::permissive_policy()).expect("a SafeApp may have 53");
}

// --- validation: schedule, zone, form-specific settings ------------------------------

// A malformed schedule is refused at spec.schedule, the message naming the cron field.
#[test]
fn schedule_shape_errors_name_the_field() {
    for (schedule, needle) in [
        ("0 2 * *", "has 4 fields"),
        ("0 2 * * * *", "has 6 fields"),
        ("61 * * * *", "minute field"),
        ("0 25 * * *", "hour field"),
        ("0 0 32 * *", "day of month field"),
        ("0 0 * 13 *", "month field"),
        ("0 0 * * 8", "day of week field"),
        ("*/0 * * * *", "step of 0"),
        ("@every 5m", "not a descriptor"),
        ("TZ=Europe/Oslo 0 2 * * *", "spec.timeZone"),
        ("CRON_TZ=UTC 0 2 * * *", "spec.timeZone"),
    ] {
        let errs = errors(SCHEDULED, &format!("{{schedule: '{schedule}'}}"));
        assert_problem(&errs, "spec.schedule", needle);
    }
    for ok in [
        "0 2 * * *",
        "*/15 9-17 * * MON-FRI",
        "@daily",
        "@hourly",
        "0 0 1 JAN *",
    ] {
        valid(SCHEDULED, &format!("{{schedule: '{ok}'}}"));
    }
}

// A schedule without timeZone is refused: it would be read in the controller manager's
// zone.
#[test]
fn time_zone_required_with_schedule() {
    let errs = errors(SCHEDULED, "{timeZone: null}");
    assert_problem(&errs, "spec.timeZone", "required with spec.schedule");
}

// timeZone is an IANA name spelled exactly: unknown names are refused, a wrong case
// suggests the right spelling, Local is refused.
#[test]
fn time_zone_must_be_iana() {
    let errs = errors(SCHEDULED, "{timeZone: Mars/Olympus}");
    assert_problem(&errs, "spec.timeZone", "not an IANA time zone");
    let errs = errors(SCHEDULED, "{timeZone: europe/oslo}");
    assert_problem(&errs, "spec.timeZone", "did you mean Europe/Oslo?");
    let errs = errors(SCHEDULED, "{timeZone: Local}");
    assert_problem(&errs, "spec.timeZone", "Local");
    for ok in ["Etc/UTC", "UTC", "America/New_York", "Asia/Kolkata"] {
        valid(SCHEDULED, &format!("{{timeZone: {ok}}}"));
    }
}

// timeZone without a schedule means nothing and is refused.
#[test]
fn time_zone_without_schedule_refused() {
    let errs = errors(ONE_OFF, "{timeZone: Europe/Oslo}");
    assert_problem(
        &errs,
        "spec.timeZone",
        "only means something with spec.schedule",
    );
}

// The CronJob-only settings are refused on a one-off SafeJob, each at its path.
#[test]
fn scheduled_only_fields_refused_on_one_off() {
    for (extra, path) in [
        ("{concurrencyPolicy: Forbid}", "spec.concurrencyPolicy"),
        (
            "{startingDeadlineSeconds: 300}",
            "spec.startingDeadlineSeconds",
        ),
        ("{suspend: false}", "spec.suspend"),
        (
            "{successfulJobsHistoryLimit: 3}",
            "spec.successfulJobsHistoryLimit",
        ),
        ("{failedJobsHistoryLimit: 3}", "spec.failedJobsHistoryLimit"),
    ] {
        let errs = errors(ONE_OFF, extra);
        assert_eq!(errs.len(), 1, "{extra}: {errs:#?}");
        assert_problem(&errs, path, "only means something with spec.schedule");
    }
}

// ttlSecondsAfterFinished is refused on a scheduled SafeJob (its runs are kept by the
// history limits).
#[test]
fn ttl_refused_on_scheduled() {
    let errs = errors(SCHEDULED, "{ttlSecondsAfterFinished: 600}");
    assert_problem(&errs, "spec.ttlSecondsAfterFinished", "one-off");
}

// startingDeadlineSeconds under 10 could miss every run (the CronJob controller looks
// every 10 s); 10 is accepted.
#[test]
fn starting_deadline_at_least_10() {
    let errs = errors(SCHEDULED, "{startingDeadlineSeconds: 9}");
    assert_problem(&errs, "spec.startingDeadlineSeconds", "at least 10");
    let c = cron("{startingDeadlineSeconds: 10}");
    assert_eq!(c.spec.unwrap().starting_deadline_seconds, Some(10));
}

// parallelism above completions is refused (the extra pods could never run); equal is
// fine.
#[test]
fn parallelism_not_above_completions() {
    for base in [SCHEDULED, ONE_OFF] {
        let errs = errors(base, "{completions: 3, parallelism: 5}");
        assert_problem(
            &errs,
            "spec.parallelism",
            "greater than spec.completions (3)",
        );
        valid(base, "{completions: 3, parallelism: 3}");
    }
}

// failOnExitCodes are failing exit codes (1-255), each listed once; each problem names
// its index.
#[test]
fn fail_on_exit_codes_in_range_and_unique() {
    for (codes, path, needle) in [
        ("[0]", "spec.failOnExitCodes[0]", "1-255"),
        ("[3, 256]", "spec.failOnExitCodes[1]", "1-255"),
        ("[-1]", "spec.failOnExitCodes[0]", "1-255"),
        ("[3, 4, 3]", "spec.failOnExitCodes[2]", "listed twice"),
    ] {
        for base in [SCHEDULED, ONE_OFF] {
            let errs = errors(base, &format!("{{failOnExitCodes: {codes}}}"));
            assert_eq!(errs.len(), 1, "{codes}: {errs:#?}");
            assert_problem(&errs, path, needle);
        }
    }
    valid(ONE_OFF, "{failOnExitCodes: [1, 255]}");
}

// Every problem of a SafeJob comes back at once, shared and job-specific alike.
#[test]
fn all_problems_at_once() {
    let errs = errors(
        SCHEDULED,
        "{image: 'r.example.com/x:latest', timeZone: null, ttlSecondsAfterFinished: 1, completions: 1, parallelism: 2, failOnExitCodes: [0], activeDeadlineSeconds: null}",
    );
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for path in [
        "spec.image",
        "spec.timeZone",
        "spec.ttlSecondsAfterFinished",
        "spec.parallelism",
        "spec.failOnExitCodes[0]",
        "spec.activeDeadlineSeconds",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
}

// A schedule that the CRD's CEL rule and the CronJob controller both refuse is refused
// by validation too, so `render` does not pass what `kubectl apply` refuses:
// descriptors are case-sensitive (robfig/cron's parseDescriptor is a plain `switch`),
// and a space before a descriptor makes it a one-field schedule.
#[test]
fn validation_agrees_with_cel_on_descriptors() {
    let mut accepted = Vec::new();
    for schedule in ["@Hourly", "@DAILY", " @daily", "0 2 * * * "] {
        let extra = format!("{{schedule: '{schedule}'}}");
        let cel = cel_errors(&job_json(SCHEDULED, &extra));
        assert!(!cel.is_empty(), "{schedule:?}: CEL accepts it");
        if validate_job(&job_with(SCHEDULED, &extra), &Policy::default()).is_ok() {
            accepted.push(schedule);
        }
    }
    assert!(
        accepted.is_empty(),
        "validation accepts schedules CEL and the CronJob controller refuse: {accepted:?}"
    );
}

// --- CEL (the CRD's rules, as the API server runs them) ------------------------------

/// The shipped SafeJob CRD's schema (what `kubectl apply -f crds/` installs).
fn schema() -> Value {
    let crd = safejob_crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json")
}

fn job_json(base: &str, extra: &str) -> Value {
    merged(base, extra)
}

fn messages(result: Result<(), kube::core::cel::ValidationErrors>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// The CEL messages the API server would return on create.
fn cel_errors(object: &Value) -> Vec<String> {
    messages(Validator::new().validate(&schema(), object, None))
}

/// The CEL messages the API server would return on an update from `old` to `new`.
fn cel_update_errors(new: &Value, old: &Value) -> Vec<String> {
    messages(Validator::new().validate(&schema(), new, Some(old)))
}

fn assert_cel_refused(object: &Value, needle: &str) {
    let errs = cel_errors(object);
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "expected a CEL error containing {needle:?}, got {errs:?}"
    );
}

// Both forms of the fixtures pass every CEL rule, and so do both samples.
#[test]
fn cel_accepts_valid_safejobs() {
    for base in [SCHEDULED, ONE_OFF] {
        assert_eq!(cel_errors(&job_json(base, "")), Vec::<String>::new());
    }
    for sample in ["nightly-report", "db-migration"] {
        let path = format!(
            "{}/config/samples/{sample}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("sample");
        let value: Value = serde_yaml_ng::from_str(&text).expect("yaml");
        assert_eq!(cel_errors(&value), Vec::<String>::new(), "{sample}");
    }
}

// The schedule's CEL rule: five fields or a descriptor.
#[test]
fn cel_schedule_shape() {
    for bad in ["0 2 * *", "0 2 * * * *", "@every 5m", "@sometimes"] {
        assert_cel_refused(
            &job_json(SCHEDULED, &format!("{{schedule: '{bad}'}}")),
            "spec.schedule: five fields",
        );
    }
    for ok in ["0 2 * * *", "*/15  9-17 * * MON-FRI", "@daily", "@annually"] {
        let errs = cel_errors(&job_json(SCHEDULED, &format!("{{schedule: '{ok}'}}")));
        assert!(errs.is_empty(), "{ok}: {errs:?}");
    }
}

// TZ= and CRON_TZ= in the schedule are refused by CEL: the zone goes in spec.timeZone.
#[test]
fn cel_tz_in_schedule_refused() {
    for bad in ["TZ=Europe/Oslo 0 2 * * *", "CRON_TZ=UTC 0 2 * * *"] {
        assert_cel_refused(
            &job_json(SCHEDULED, &format!("{{schedule: '{bad}'}}")),
            "spec.schedule: put the zone in spec.timeZone",
        );
    }
}

// CEL requires timeZone with a schedule and refuses it without one.
#[test]
fn cel_time_zone_with_schedule_only() {
    assert_cel_refused(
        &job_json(SCHEDULED, "{timeZone: null}"),
        "spec.timeZone: required with spec.schedule",
    );
    assert_cel_refused(
        &job_json(ONE_OFF, "{timeZone: Europe/Oslo}"),
        "spec.timeZone: only means something with spec.schedule",
    );
}

// CEL refuses parallelism above completions; either alone, or equal, passes.
#[test]
fn cel_parallelism_not_above_completions() {
    assert_cel_refused(
        &job_json(ONE_OFF, "{completions: 2, parallelism: 3}"),
        "spec.parallelism: must not be greater than spec.completions",
    );
    for ok in [
        "{completions: 3, parallelism: 3}",
        "{parallelism: 3}",
        "{completions: 1}",
    ] {
        assert!(cel_errors(&job_json(ONE_OFF, ok)).is_empty(), "{ok}");
    }
}

// A one-off SafeJob's spec cannot change once created (its Job ran or runs): a new image
// is refused with IMMUTABLE_MESSAGE; re-applying the same spec, or changing metadata
// only, is accepted.
#[test]
fn cel_one_off_is_immutable() {
    // Created: the operator recorded its Job (status.jobName) before creating it.
    let created = |mut v: Value| {
        v["status"] = json!({"jobName": v["metadata"]["name"].clone()});
        v
    };
    let old = created(job_json(ONE_OFF, ""));
    for change in [
        "{image: 'registry.example.com/shop/report:1.3.0'}",
        "{backoffLimit: 5}",
        "{tier: batch}",
        "{schedule: '0 3 * * *', timeZone: Etc/UTC}",
    ] {
        let new = created(job_json(ONE_OFF, change));
        let errs = cel_update_errors(&new, &old);
        assert!(
            errs.iter().any(|e| e == IMMUTABLE_MESSAGE),
            "{change}: expected the immutability message, got {errs:?}"
        );
        // Before its Job was created (a spec the operator refused, say), it can be fixed.
        let before = job_json(ONE_OFF, "");
        assert_eq!(
            cel_update_errors(&job_json(ONE_OFF, change), &before),
            Vec::<String>::new(),
            "{change}: a SafeJob whose Job does not exist yet may change"
        );
    }
    assert_eq!(cel_update_errors(&old, &old), Vec::<String>::new());
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"team": "finance"});
    assert_eq!(cel_update_errors(&relabelled, &old), Vec::<String>::new());
    // The rule is a transition rule: a create is not judged by it.
    assert_eq!(
        cel_errors(&job_json(ONE_OFF, "{backoffLimit: 5}")),
        Vec::<String>::new()
    );
}

// A scheduled SafeJob may change (each run takes the current template), and may become
// a one-off one.
#[test]
fn cel_scheduled_may_change() {
    let old = job_json(SCHEDULED, "");
    for change in [
        "{image: 'registry.example.com/shop/report:1.3.0'}",
        "{schedule: '0 4 * * *', suspend: true}",
        "{schedule: null, timeZone: null}",
    ] {
        let new = job_json(SCHEDULED, change);
        assert_eq!(
            cel_update_errors(&new, &old),
            Vec::<String>::new(),
            "{change}"
        );
    }
}

// kube's derived-CRD helper (`validate_cel_update`) reads the same transition rule as
// the shipped CRD: both refuse changing a one-off SafeJob and accept the same spec.
#[test]
fn cel_update_through_the_derived_crd() {
    let created = |mut j: SafeJob| {
        j.status = Some(safeapp::api::SafeJobStatus {
            job_name: j.metadata.name.clone(),
            ..Default::default()
        });
        j
    };
    let old = created(job_with(ONE_OFF, ""));
    let new = created(job_with(
        ONE_OFF,
        "{image: 'registry.example.com/shop/report:1.3.0'}",
    ));
    let errs = messages(kube::core::cel::validate_cel_update(&new, &old));
    assert!(errs.iter().any(|e| e == IMMUTABLE_MESSAGE), "{errs:?}");
    assert_eq!(
        messages(kube::core::cel::validate_cel_update(&old, &old)),
        Vec::<String>::new()
    );
    let old = job_with(SCHEDULED, "");
    let new = job_with(SCHEDULED, "{schedule: null, timeZone: null}");
    assert_eq!(
        messages(kube::core::cel::validate_cel_update(&new, &old)),
        Vec::<String>::new()
    );
}

// --- render: manifests with both kinds -----------------------------------------------

const MIXED: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: report, namespace: shop}
spec:
  image: registry.example.com/shop/report-ui:1.0.0
  ports: [{name: http, port: 8080}]
  healthCheck: {path: /health}
---
apiVersion: safeapp.dev/v1alpha1
kind: SafeJob
metadata: {name: report, namespace: shop}
spec:
  image: registry.example.com/shop/report:1.2.0
  schedule: "30 2 * * *"
  timeZone: Europe/Oslo
  activeDeadlineSeconds: 3600
---
apiVersion: safeapp.dev/v1alpha1
kind: SafeJob
metadata: {name: migrate, namespace: shop}
spec:
  image: registry.example.com/shop/migrate:1.2.0
  activeDeadlineSeconds: 600
"#;

// A manifest holding a SafeApp and SafeJobs renders in one stream: the namespace's
// LimitRange, the app's objects, then each SafeJob's CronJob or Job in input order. A
// SafeApp and a SafeJob may share a name (different kinds).
#[test]
fn manifest_with_both_kinds_renders_one_stream() {
    let out = manifest::render_manifest(MIXED, &Policy::default()).expect("renders");
    assert_eq!(
        kinds(&out.objects),
        [
            "LimitRange",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "CronJob",
            "Job"
        ]
    );
    let names: Vec<Value> = out
        .objects
        .iter()
        .map(|o| o.to_json()["metadata"]["name"].clone())
        .collect();
    assert_eq!(names[5], "report");
    assert_eq!(names[6], "migrate");
    let yaml = render::to_yaml(&out.objects).expect("yaml");
    assert_eq!(yaml.matches("\n---\n").count() + 1, 7);
    assert!(yaml.contains("kind: CronJob") && yaml.contains("kind: Job"));
}

// Two SafeJobs of one name in one namespace are reported, naming the second document.
#[test]
fn duplicate_safejob_names_reported() {
    let text = format!(
        "{MIXED}---\napiVersion: safeapp.dev/v1alpha1\nkind: SafeJob\nmetadata: {{name: migrate, namespace: shop}}\nspec:\n  image: registry.example.com/shop/migrate:1.3.0\n  activeDeadlineSeconds: 600\n"
    );
    let errs = manifest::render_manifest(&text, &Policy::default()).expect_err("duplicate");
    assert_eq!(
        errs,
        ["document 4 (shop/migrate): metadata.name: a SafeJob of this name appears twice"]
    );
}

// An unknown field of a SafeJob is named with its path, at the top of the spec and
// inside the shared pod fields alike; nothing is rendered.
#[test]
fn unknown_fields_named() {
    for (extra, expected) in [
        (
            "{schedul: '0 3 * * *'}",
            "document 1: spec.schedul: unknown field",
        ),
        (
            "{env: [{name: MODE, vaule: batch}]}",
            "document 1: spec.env[0].vaule: unknown field",
        ),
        (
            "{initContainers: [{name: init, image: 'busybox:1.36', securityContex: {}}]}",
            "document 1: spec.initContainers[0].securityContex: unknown field",
        ),
    ] {
        let text = serde_yaml_ng::to_string(&merged(SCHEDULED, extra)).expect("yaml");
        let errs = manifest::render_manifest(&text, &Policy::default()).expect_err(extra);
        assert_eq!(errs, [expected], "{extra}");
    }
}
