//! `batch/v1` Jobs and CronJobs as a real API server (v1.33+) handles them, where the
//! in-memory API must agree with it:
//!
//! - **Defaults** (`pkg/apis/batch/v1/defaults.go`): a Job gets `completions`/
//!   `parallelism` 1 when both are absent, `parallelism` 1, `backoffLimit` 6 (MaxInt32
//!   with `backoffLimitPerIndex`), `completionMode: NonIndexed`, `suspend: false`,
//!   `podReplacementPolicy` (`Failed` with a pod failure policy, else
//!   `TerminatingOrFailed`), `manualSelector: false`, and the template's labels as its own
//!   when it has none. A CronJob gets `concurrencyPolicy: Allow`, `suspend: false` and
//!   history limits 3 and 1. Its `jobTemplate.spec` gets **no** Job defaults (the generated
//!   CronJob defaulter never calls `SetDefaults_Job`), only the pod template's.
//! - **Create** (`pkg/registry/batch/job/strategy.go`, `generateSelector`): without
//!   `manualSelector: true` a Job's selector gets `batch.kubernetes.io/controller-uid:
//!   <uid>` and its template the labels `batch.kubernetes.io/controller-uid`,
//!   `batch.kubernetes.io/job-name`, `controller-uid` and `job-name`. Status is cleared.
//! - **Spec / status split**: a write to the object keeps the old status; a write to
//!   `/status` keeps the old spec.
//! - **Validation** (`pkg/apis/batch/validation/validation.go`), refused with 422
//!   `Invalid`: a Job's `restartPolicy` must be `OnFailure` or `Never` (`Never` with a pod
//!   failure policy), its selector must match its template; once it exists,
//!   `spec.template`, `selector`, `completionMode`, `completions` (but for an elastic
//!   Indexed Job), `podFailurePolicy`, `backoffLimitPerIndex`, `managedBy` and
//!   `successPolicy` are immutable (a suspended Job that never started may change its
//!   scheduling directives and template labels/annotations). Status writes follow the
//!   job controller's rules (no `Complete` without `SuccessCriteriaMet` and
//!   `completionTime`, no `Failed` without `FailureTarget`, no way back from a terminal
//!   condition, counters never decrease...). A CronJob needs a valid 5-field schedule
//!   (or a descriptor) without `TZ=`, a name of at most 52 characters, a valid job
//!   template without a selector.

use serde_json::{Map, Value, json};

pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";

pub fn is_batch(plural: &str) -> bool {
    matches!(plural, "jobs" | "cronjobs")
}

// ---------------------------------------------------------------------------------------
// Field errors, as apimachinery's `field.Error` prints them.

#[derive(Clone, Debug, PartialEq)]
pub enum ErrorType {
    Invalid,
    Required,
    NotSupported(Vec<String>),
    Duplicate,
    Forbidden,
}

#[derive(Clone, Debug)]
pub struct FieldError {
    pub field: String,
    pub kind: ErrorType,
    /// The bad value; None where the server omits it.
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }

    fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Invalid,
            value: Some(value.clone()),
            detail: detail.into(),
        }
    }

    fn invalid_omit(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Invalid,
            value: None,
            detail: detail.into(),
        }
    }

    fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Required,
            value: None,
            detail: detail.into(),
        }
    }

    fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::NotSupported(supported.iter().map(|s| s.to_string()).collect()),
            value: Some(value.clone()),
            detail: String::new(),
        }
    }

    fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Duplicate,
            value: Some(value.clone()),
            detail: String::new(),
        }
    }

    fn immutable(field: impl Into<String>, value: &Value) -> Self {
        Self::invalid(field, value, "field is immutable")
    }

    /// `Invalid value: "x": detail`, as `ErrorBody()`.
    pub fn body(&self) -> String {
        let mut s = match (&self.kind, &self.value) {
            (ErrorType::Required, _) => "Required value".to_string(),
            (ErrorType::Invalid, None) => "Invalid value".to_string(),
            (ErrorType::Invalid, Some(v)) => format!("Invalid value: {}", show(v)),
            (ErrorType::NotSupported(_), v) => format!(
                "Unsupported value: {}",
                show(v.as_ref().unwrap_or(&Value::Null))
            ),
            (ErrorType::Duplicate, v) => format!(
                "Duplicate value: {}",
                show(v.as_ref().unwrap_or(&Value::Null))
            ),
            (ErrorType::Forbidden, _) => "Forbidden".to_string(),
        };
        if let ErrorType::NotSupported(values) = &self.kind {
            let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            s += &format!(": supported values: {}", quoted.join(", "));
        }
        if !self.detail.is_empty() {
            s += &format!(": {}", self.detail);
        }
        s
    }

    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::NotSupported(_) => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
        }
    }
}

/// A value as the server prints it in an error: strings quoted, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// The API server's 422 for `errors` on the object `name` of `kind` (`Job`) in `group`:
/// `Job.batch "x" is invalid: spec.template: Invalid value: ...: field is immutable`.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let messages: Vec<String> = errors.iter().map(FieldError::message).collect();
    let aggregate = match messages.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field}))
        .collect();
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{kind}.{group} {name:?} is invalid: {aggregate}"),
           "reason": "Invalid",
           "details": {"name": name, "group": group, "kind": kind, "causes": causes},
           "code": 422})
}

// ---------------------------------------------------------------------------------------
// Small helpers over JSON objects.

fn absent(v: &Value, key: &str) -> bool {
    v.get(key).is_none_or(Value::is_null)
}

fn set_if_absent(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut()
        && map.get(key).is_none_or(Value::is_null)
    {
        map.insert(key.into(), value);
    }
}

/// Sets `key` of `obj` to `value`, or removes it when `value` is absent.
fn set_or_remove(obj: &mut Value, key: &str, value: Option<&Value>) {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object");
    match value {
        Some(v) if !v.is_null() => {
            map.insert(key.into(), v.clone());
        }
        _ => {
            map.remove(key);
        }
    }
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn string<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn is_true(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool) == Some(true)
}

fn labels_of(meta: &Value) -> Map<String, Value> {
    meta.get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Defaults.

fn default_pod_failure_policy(spec: &mut Value) {
    if let Some(rules) = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
        .and_then(Value::as_array_mut)
    {
        for rule in rules {
            if let Some(patterns) = rule
                .get_mut("onPodConditions")
                .and_then(Value::as_array_mut)
            {
                for p in patterns {
                    if string(p, "status").is_none_or(str::is_empty) {
                        p["status"] = json!("True");
                    }
                }
            }
        }
    }
}

/// `SetDefaults_Job`: the Job's own fields (the pod template is defaulted by the caller).
pub fn default_job(job: &mut Value) {
    let Some(spec) = job.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if absent(spec, "completions") && absent(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_if_absent(spec, "parallelism", json!(1));
    let backoff = if absent(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX as i64
    };
    set_if_absent(spec, "backoffLimit", json!(backoff));
    set_if_absent(spec, "completionMode", json!("NonIndexed"));
    set_if_absent(spec, "suspend", json!(false));
    default_pod_failure_policy(spec);
    let replacement = if absent(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set_if_absent(spec, "podReplacementPolicy", json!(replacement));
    set_if_absent(spec, "manualSelector", json!(false));
    // The Job's labels default to its template's (after selector generation: the server
    // applies its defaults again on every read of the stored object).
    let template_labels = labels_of(&spec["template"]["metadata"]);
    if !template_labels.is_empty() && labels_of(&job["metadata"]).is_empty() {
        super::apiserver::meta_mut(job).insert("labels".into(), Value::Object(template_labels));
    }
}

/// `SetDefaults_CronJob`; the job template gets only its type-level defaults.
pub fn default_cron_job(cron_job: &mut Value) {
    let Some(spec) = cron_job.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if string(spec, "concurrencyPolicy").is_none_or(str::is_empty) {
        spec["concurrencyPolicy"] = json!("Allow");
    }
    set_if_absent(spec, "suspend", json!(false));
    set_if_absent(spec, "successfulJobsHistoryLimit", json!(3));
    set_if_absent(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = spec
        .get_mut("jobTemplate")
        .and_then(|t| t.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        default_pod_failure_policy(job_spec);
    }
}

// ---------------------------------------------------------------------------------------
// Registry strategies.

/// `PrepareForCreate`: status cleared, generation 1, and a Job's selector generated.
/// `obj` already has its name and uid.
pub fn prepare_for_create(plural: &str, obj: &mut Value) {
    if !is_batch(plural) {
        return;
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    let meta = super::apiserver::meta_mut(obj);
    meta.insert("generation".into(), json!(1));
    meta.entry("creationTimestamp")
        .or_insert(json!("2026-01-01T00:00:00Z"));
    if plural == "jobs" && !is_true(&obj["spec"], "manualSelector") {
        generate_selector(obj);
    }
}

/// `generateSelector`: the labels that tie a Job's pods to it alone.
fn generate_selector(job: &mut Value) {
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    let labels = labels.as_object_mut().expect("labels");
    for key in [LEGACY_JOB_NAME, JOB_NAME] {
        labels.entry(key).or_insert(json!(name));
    }
    for key in [LEGACY_CONTROLLER_UID, CONTROLLER_UID] {
        labels.entry(key).or_insert(json!(uid));
    }
    let selector = &mut job["spec"]["selector"];
    if !selector.is_object() {
        *selector = json!({});
    }
    let match_labels = &mut selector["matchLabels"];
    if !match_labels.is_object() {
        *match_labels = json!({});
    }
    match_labels
        .as_object_mut()
        .expect("matchLabels")
        .entry(CONTROLLER_UID)
        .or_insert(json!(uid));
}

/// `PrepareForUpdate`: a write to the object keeps the old status, a write to `/status`
/// (`sub`) keeps the old spec.
pub fn prepare_for_update(plural: &str, sub: Option<&str>, new: &mut Value, old: &Value) {
    if !is_batch(plural) || !new.is_object() {
        return;
    }
    let keep = if sub == Some("status") {
        "spec"
    } else {
        "status"
    };
    set_or_remove(new, keep, old.get(keep));
}

// ---------------------------------------------------------------------------------------
// Validation.

/// The API server's validation of a write of `obj` (`old`: the stored object of an
/// update) to `plural` (`sub`: a subresource): the 422 Status, or None.
pub fn validate(
    plural: &str,
    sub: Option<&str>,
    obj: &Value,
    old: Option<&Value>,
) -> Option<Value> {
    let (kind, errors) = match (plural, sub, old) {
        ("jobs", None, _) => {
            let mut errors = validate_job(obj, old);
            if let Some(old) = old {
                errors.extend(validate_job_spec_update(obj, old));
            }
            ("Job", errors)
        }
        ("jobs", Some("status"), Some(old)) => ("Job", validate_job_status_update(obj, old)),
        ("cronjobs", None, _) => ("CronJob", validate_cron_job(obj, old)),
        _ => return None,
    };
    if errors.is_empty() {
        return None;
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    Some(invalid_status(kind, "batch", name, &errors))
}

fn non_negative(spec: &Value, path: &str, keys: &[&str], errors: &mut Vec<FieldError>) {
    for key in keys {
        if let Some(n) = int(spec, key)
            && n < 0
        {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A label value's errors (`IsValidLabelValue`).
fn label_value_errors(v: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters");
    }
    let ok = v.is_empty()
        || (v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && v.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric()));
    if !ok {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
    }
    errs
}

/// Whether a LabelSelector (matchLabels, matchExpressions) selects `labels`.
fn selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let have = labels.get(key).and_then(Value::as_str);
            match e["operator"].as_str() {
                Some("In") => have.is_some_and(|h| values.contains(&h)),
                Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// `ValidateJob`: the object on its own.
fn validate_job(job: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let meta = &job["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let uid = meta["uid"].as_str().unwrap_or("");
    if !is_dns1123_subdomain(name) {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            DNS1123_SUBDOMAIN,
        ));
    }
    let spec = &job["spec"];
    let template_labels = labels_of(&spec["template"]["metadata"]);
    // validateGeneratedSelector: the generated labels must be there, and the selector
    // must select them. Old Jobs without the prefixed labels are not required to have
    // them.
    if !is_true(spec, "manualSelector") && spec["selector"].is_object() {
        if uid.is_empty() {
            errors.push(FieldError::required("metadata.uid", ""));
        }
        let require_prefixed = old.is_none_or(|o| {
            let l = labels_of(&o["spec"]["template"]["metadata"]);
            l.contains_key(JOB_NAME) && l.contains_key(CONTROLLER_UID)
        });
        let mut expected = vec![(LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)];
        if require_prefixed {
            expected.push((CONTROLLER_UID, uid));
            expected.push((JOB_NAME, name));
        }
        let mut expected_labels = Map::new();
        for (key, want) in expected {
            let path = format!("spec.template.metadata.labels[{key}]");
            match template_labels.get(key).and_then(Value::as_str) {
                None => errors.push(FieldError::required(path, want)),
                Some(have) if have != want => errors.push(FieldError::invalid(
                    path,
                    &Value::Object(template_labels.clone()),
                    format!("must be '{want}'"),
                )),
                Some(_) => {}
            }
            expected_labels.insert(key.into(), json!(want));
        }
        if !selector_matches(&spec["selector"], &expected_labels) {
            errors.push(FieldError::invalid(
                "spec.selector",
                &spec["selector"],
                "`selector` not auto-generated",
            ));
        }
    }
    // ValidateJobSpec.
    errors.extend(validate_job_spec(spec, "spec"));
    if !spec["selector"].is_object() {
        errors.push(FieldError::required("spec.selector", ""));
    } else if !selector_matches(&spec["selector"], &template_labels) {
        errors.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &Value::Object(template_labels.clone()),
            "`selector` does not match template `labels`",
        ));
    }
    if string(spec, "completionMode") == Some("Indexed")
        && let Some(completions) = int(spec, "completions").filter(|c| *c > 0)
    {
        let hostname = format!("{name}-{}", completions - 1);
        if !is_dns1123_label(&hostname) {
            errors.push(FieldError::invalid(
                "metadata.name",
                &json!(name),
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    errors
}

/// `validateJobSpec`: a Job's spec, or a CronJob's `jobTemplate.spec` (`path`).
fn validate_job_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    non_negative(
        spec,
        path,
        &[
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
            "ttlSecondsAfterFinished",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
        ],
        &mut errors,
    );
    if !absent(spec, "maxFailedIndexes") && absent(spec, "backoffLimitPerIndex") {
        errors.push(FieldError::required(
            format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = string(spec, "completionMode").unwrap_or("NonIndexed");
    match mode {
        "NonIndexed" => {
            for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
                if !absent(spec, key) {
                    errors.push(FieldError::invalid(
                        format!("{path}.{key}"),
                        &spec[key],
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        "Indexed" => {
            if absent(spec, "completions") {
                errors.push(FieldError::required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            format!("{path}.completionMode"),
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    let pod_failure_policy = !absent(spec, "podFailurePolicy");
    if pod_failure_policy {
        errors.extend(validate_pod_failure_policy(
            spec,
            &format!("{path}.podFailurePolicy"),
        ));
    }
    if !absent(spec, "successPolicy") && mode != "Indexed" {
        errors.push(FieldError::invalid(
            format!("{path}.successPolicy"),
            &spec["successPolicy"],
            "requires indexed completion mode",
        ));
    }
    if let Some(policy) = string(spec, "podReplacementPolicy") {
        if pod_failure_policy && policy != "Failed" {
            errors.push(FieldError::not_supported(
                format!("{path}.podReplacementPolicy"),
                &json!(policy),
                &["Failed"],
            ));
        } else if !matches!(policy, "Failed" | "TerminatingOrFailed") {
            errors.push(FieldError::not_supported(
                format!("{path}.podReplacementPolicy"),
                &json!(policy),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    errors.extend(validate_pod_template(
        &spec["template"],
        &format!("{path}.template"),
    ));
    let restart_path = format!("{path}.template.spec.restartPolicy");
    match string(&spec["template"]["spec"], "restartPolicy").unwrap_or("") {
        "" | "Always" => errors.push(FieldError::required(
            restart_path,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" if pod_failure_policy => errors.push(FieldError::invalid(
            restart_path,
            &json!("OnFailure"),
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => errors.push(FieldError::not_supported(
            restart_path,
            &json!(other),
            &["OnFailure", "Never"],
        )),
    }
    errors
}

/// The parts of `ValidatePodTemplateSpec` a Job's template most often gets wrong.
fn validate_pod_template(template: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in labels_of(&template["metadata"]) {
        let v = value.as_str().unwrap_or("");
        for detail in label_value_errors(v) {
            errors.push(FieldError::invalid(
                format!("{path}.metadata.labels"),
                &json!(v),
                detail,
            ));
        }
        if key.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.metadata.labels"),
                &json!(key),
                "name part must be non-empty",
            ));
        }
    }
    let containers = template["spec"]["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(format!("{path}.spec.containers"), ""));
    }
    let mut names = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in template["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{path}.spec.{list}[{i}]");
            match string(c, "name").filter(|n| !n.is_empty()) {
                None => errors.push(FieldError::required(format!("{at}.name"), "")),
                Some(n) if names.contains(&n) => {
                    errors.push(FieldError::duplicate(format!("{at}.name"), &json!(n)))
                }
                Some(n) => names.push(n),
            }
            if string(c, "image").is_none_or(|i| i.trim().is_empty()) {
                errors.push(FieldError::required(format!("{at}.image"), ""));
            }
        }
    }
    errors
}

fn validate_pod_failure_policy(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let rules = spec["podFailurePolicy"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.len() > 20 {
        errors.push(FieldError::invalid(
            format!("{path}.rules"),
            &json!(rules.len()),
            "must have at most 20 items",
        ));
    }
    let containers: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| {
            spec["template"]["spec"][*l]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|c| string(c, "name"))
        .collect();
    const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.rules[{i}]");
        match string(rule, "action").unwrap_or("") {
            "" => errors.push(FieldError::required(
                format!("{at}.action"),
                "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            )),
            "FailIndex" if absent(spec, "backoffLimitPerIndex") => {
                errors.push(FieldError::invalid(
                    format!("{at}.action"),
                    &json!("FailIndex"),
                    "requires the backoffLimitPerIndex to be set",
                ))
            }
            a if !ACTIONS.contains(&a) => errors.push(FieldError::not_supported(
                format!("{at}.action"),
                &json!(a),
                ACTIONS,
            )),
            _ => {}
        }
        let exit_codes = rule.get("onExitCodes").filter(|v| !v.is_null());
        let conditions = rule["onPodConditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(req) = exit_codes {
            let at = format!("{at}.onExitCodes");
            let op = string(req, "operator").unwrap_or("");
            match op {
                "" => errors.push(FieldError::required(
                    format!("{at}.operator"),
                    "valid values: [\"In\" \"NotIn\"]",
                )),
                "In" | "NotIn" => {}
                other => errors.push(FieldError::not_supported(
                    format!("{at}.operator"),
                    &json!(other),
                    &["In", "NotIn"],
                )),
            }
            if let Some(c) = string(req, "containerName")
                && !containers.contains(&c)
            {
                errors.push(FieldError::invalid(
                    format!("{at}.containerName"),
                    &json!(c),
                    "must be one of the container or initContainer names in the pod template",
                ));
            }
            let values: Vec<i64> = req["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            if values.is_empty() {
                errors.push(FieldError::invalid(
                    format!("{at}.values"),
                    &req["values"],
                    "at least one value is required",
                ));
            } else if values.len() > 255 {
                errors.push(FieldError::invalid(
                    format!("{at}.values"),
                    &json!(values.len()),
                    "must have at most 255 items",
                ));
            }
            for (j, v) in values.iter().enumerate() {
                if op == "In" && *v == 0 {
                    errors.push(FieldError::invalid(
                        format!("{at}.values[{j}]"),
                        &json!(v),
                        "must not be 0 for the In operator",
                    ));
                }
                if values[..j].contains(v) {
                    errors.push(FieldError::duplicate(
                        format!("{at}.values[{j}]"),
                        &json!(v),
                    ));
                }
            }
            if values.windows(2).any(|w| w[0] > w[1]) {
                errors.push(FieldError::invalid(
                    format!("{at}.values"),
                    &req["values"],
                    "must be ordered",
                ));
            }
        }
        for (j, pattern) in conditions.iter().enumerate() {
            let at = format!("{at}.onPodConditions[{j}]");
            if string(pattern, "type").is_none_or(str::is_empty) {
                errors.push(FieldError::required(format!("{at}.type"), ""));
            }
            match string(pattern, "status").unwrap_or("") {
                "True" | "False" | "Unknown" => {}
                "" => errors.push(FieldError::required(
                    format!("{at}.status"),
                    "valid values: [\"False\" \"True\" \"Unknown\"]",
                )),
                other => errors.push(FieldError::not_supported(
                    format!("{at}.status"),
                    &json!(other),
                    &["False", "True", "Unknown"],
                )),
            }
        }
        if exit_codes.is_some() && !conditions.is_empty() {
            errors.push(FieldError::invalid_omit(
                at.clone(),
                "specifying both OnExitCodes and OnPodConditions is not supported",
            ));
        }
        if exit_codes.is_none() && conditions.is_empty() {
            errors.push(FieldError::invalid_omit(
                at,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
    errors
}

/// `ValidateJobSpecUpdate`: what a Job may not change once it exists.
fn validate_job_spec_update(job: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let (spec, old_spec) = (&job["spec"], &old["spec"]);
    // completions: immutable, but for an Indexed Job scaled with its parallelism.
    if spec.get("completions") != old_spec.get("completions") {
        let indexed = string(spec, "completionMode") == Some("Indexed");
        match int(spec, "completions") {
            _ if !indexed => errors.push(FieldError::immutable(
                "spec.completions",
                &spec["completions"],
            )),
            None => {}
            Some(c) if Some(c) != int(spec, "parallelism") => errors.push(FieldError::invalid(
                "spec.completions",
                &json!(c),
                "can only be modified in tandem with spec.parallelism",
            )),
            Some(_) => {}
        }
    }
    if spec.get("selector") != old_spec.get("selector") {
        errors.push(FieldError::immutable("spec.selector", &spec["selector"]));
    }
    // The template, but for the scheduling directives of a suspended Job that never ran.
    let mut old_template = old_spec["template"].clone();
    let template = &spec["template"];
    let suspended = is_true(old_spec, "suspend");
    let never_started = absent(&old["status"], "startTime");
    if suspended && never_started {
        if !old_template.is_object() {
            old_template = json!({});
        }
        let new_affinity = template["spec"].get("affinity").filter(|a| !a.is_null());
        let old_affinity = old_template["spec"]
            .get("affinity")
            .filter(|a| !a.is_null())
            .cloned();
        match (new_affinity, old_affinity) {
            (None, Some(mut a)) => {
                set_or_remove(&mut a, "nodeAffinity", None);
                let empty = a.as_object().is_none_or(Map::is_empty);
                set_or_remove(
                    &mut old_template["spec"],
                    "affinity",
                    (!empty).then_some(&a),
                );
            }
            (Some(n), None) => {
                let mut a = json!({});
                set_or_remove(&mut a, "nodeAffinity", n.get("nodeAffinity"));
                set_or_remove(&mut old_template["spec"], "affinity", Some(&a));
            }
            (Some(n), Some(mut a)) => {
                set_or_remove(&mut a, "nodeAffinity", n.get("nodeAffinity"));
                set_or_remove(&mut old_template["spec"], "affinity", Some(&a));
            }
            (None, None) => {}
        }
        for key in ["nodeSelector", "tolerations", "schedulingGates"] {
            set_or_remove(&mut old_template["spec"], key, template["spec"].get(key));
        }
        for key in ["annotations", "labels"] {
            set_or_remove(
                &mut old_template["metadata"],
                key,
                template["metadata"].get(key),
            );
        }
        // An empty metadata is no metadata (omitempty).
        if old_template["metadata"]
            .as_object()
            .is_some_and(Map::is_empty)
            && template.get("metadata").is_none()
        {
            old_template
                .as_object_mut()
                .expect("template")
                .remove("metadata");
        }
    }
    if *template != old_template {
        errors.push(FieldError::immutable("spec.template", template));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if spec.get(key) != old_spec.get(key) {
            errors.push(FieldError::immutable(format!("spec.{key}"), &spec[key]));
        }
    }
    errors
}

fn condition_true(job: &Value, type_: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

/// `ValidateJobUpdateStatus` with the options the job registry uses since `JobManagedBy`
/// (on by default): a status write must be one the job controller could make. A rule is
/// checked only when a field it looks at changed, as the server does.
fn validate_job_status_update(job: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let (status, old_status) = (&job["status"], &old["status"]);
    let changed = |key: &str| status.get(key) != old_status.get(key);
    let count = |s: &Value, key: &str| int(s, key).unwrap_or(0);
    let complete = condition_true(job, "Complete");
    let failed = condition_true(job, "Failed");
    let failure_target = condition_true(job, "FailureTarget");
    let success_met = condition_true(job, "SuccessCriteriaMet");
    let finished = complete || failed;
    let was_complete = condition_true(old, "Complete");
    let was_failed = condition_true(old, "Failed");
    let was_success_met = condition_true(old, "SuccessCriteriaMet");
    let complete_changed = complete != was_complete;
    let failed_changed = failed != was_failed;
    let finished_changed = finished != (was_complete || was_failed);
    let failure_target_changed = failure_target != condition_true(old, "FailureTarget");
    let success_met_changed = success_met != was_success_met;
    let spec = &job["spec"];
    let indexed = string(spec, "completionMode") == Some("Indexed");

    non_negative(
        status,
        "status",
        &["active", "succeeded", "failed", "ready", "terminating"],
        &mut errors,
    );
    if let Some(uncounted) = status.get("uncountedTerminatedPods") {
        let mut seen = Vec::new();
        for list in ["succeeded", "failed"] {
            for (i, uid) in uncounted[list].as_array().into_iter().flatten().enumerate() {
                let at = format!("status.uncountedTerminatedPods.{list}[{i}]");
                match uid.as_str().unwrap_or("") {
                    "" => errors.push(FieldError::invalid(at, uid, "must not be empty")),
                    u if seen.contains(&u) => errors.push(FieldError::duplicate(at, uid)),
                    u => seen.push(u),
                }
            }
        }
    }
    let omit = |detail: &str| FieldError::invalid_omit("status.conditions", detail);
    if (complete_changed || failed_changed) && complete && failed {
        errors.push(omit("cannot set Complete=True and Failed=true conditions"));
    }
    if (complete_changed || failure_target_changed) && complete && failure_target {
        errors.push(omit(
            "cannot set Complete=True and FailureTarget=true conditions",
        ));
    }
    let completion_changed = changed("completionTime");
    let start_changed = changed("startTime");
    if (complete_changed || completion_changed) && !absent(status, "completionTime") && !complete {
        errors.push(FieldError::invalid(
            "status.completionTime",
            &status["completionTime"],
            "cannot set completionTime when there is no Complete=True condition",
        ));
    }
    if (complete_changed || completion_changed) && absent(status, "completionTime") && complete {
        errors.push(FieldError::required(
            "status.completionTime",
            "completionTime is required for Complete jobs",
        ));
    }
    if (start_changed || completion_changed)
        && let (Some(start), Some(end)) = (
            string(status, "startTime"),
            string(status, "completionTime"),
        )
        && end < start
    {
        errors.push(FieldError::invalid(
            "status.completionTime",
            &json!(end),
            "completionTime cannot be set before startTime",
        ));
    }
    if (failed_changed || changed("failedIndexes")) && failed && !failure_target {
        errors.push(omit(
            "cannot set Failed=True condition without the FailureTarget=true condition",
        ));
    }
    if (complete_changed || success_met_changed) && complete && !success_met {
        errors.push(omit(
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        ));
    }
    if (finished_changed || changed("active")) && finished && count(status, "active") > 0 {
        errors.push(FieldError::invalid(
            "status.active",
            &status["active"],
            "active>0 is invalid for finished job",
        ));
    }
    let suspended_without_completions =
        is_true(spec, "suspend") && int(spec, "completions") == Some(0);
    if (finished_changed || start_changed)
        && !suspended_without_completions
        && finished
        && absent(status, "startTime")
    {
        errors.push(FieldError::required(
            "status.startTime",
            "startTime is required for finished job",
        ));
    }
    if (finished_changed || changed("uncountedTerminatedPods")) && finished {
        let uncounted = &status["uncountedTerminatedPods"];
        let n = ["succeeded", "failed"]
            .iter()
            .map(|l| uncounted[*l].as_array().map_or(0, Vec::len))
            .sum::<usize>();
        if n > 0 {
            errors.push(FieldError::invalid(
                "status.uncountedTerminatedPods",
                uncounted,
                "uncountedTerminatedPods needs to be empty for finished job",
            ));
        }
    }
    if changed("completedIndexes")
        && !indexed
        && string(status, "completedIndexes").is_some_and(|s| !s.is_empty())
    {
        errors.push(FieldError::invalid(
            "status.completedIndexes",
            &status["completedIndexes"],
            "cannot set non-empty completedIndexes when non-indexed completion mode",
        ));
    }
    if changed("failedIndexes")
        && absent(spec, "backoffLimitPerIndex")
        && !absent(status, "failedIndexes")
    {
        errors.push(FieldError::invalid(
            "status.failedIndexes",
            &status["failedIndexes"],
            "cannot set non-null failedIndexes when backoffLimitPerIndex is null",
        ));
    }
    if (finished_changed || changed("terminating")) && finished && count(status, "terminating") > 0
    {
        errors.push(FieldError::invalid(
            "status.terminating",
            &status["terminating"],
            "terminating>0 is invalid for finished job",
        ));
    }
    if (changed("ready") || changed("active"))
        && let Some(ready) = int(status, "ready")
        && ready > count(status, "active")
    {
        errors.push(FieldError::invalid(
            "status.ready",
            &json!(ready),
            "cannot set more ready pods than active",
        ));
    }
    if success_met && failed {
        errors.push(omit(
            "cannot set SuccessCriteriaMet=True and Failed=true conditions",
        ));
    }
    if success_met && failure_target {
        errors.push(omit(
            "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions",
        ));
    }
    if !absent(spec, "successPolicy") && !success_met && complete {
        errors.push(omit(
            "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True",
        ));
    }
    // Transitions from the old status.
    for type_ in ["Failed", "Complete", "FailureTarget"] {
        if condition_true(old, type_) && !condition_true(job, type_) {
            errors.push(omit(&format!(
                "cannot disable the terminal {type_}=True condition"
            )));
        }
    }
    if count(status, "failed") < count(old_status, "failed") {
        errors.push(FieldError::invalid(
            "status.failed",
            &json!(count(status, "failed")),
            "cannot decrease the failed counter",
        ));
    }
    let scalable = indexed && spec.get("completions") == spec.get("parallelism");
    if !scalable && count(status, "succeeded") < count(old_status, "succeeded") {
        errors.push(FieldError::invalid(
            "status.succeeded",
            &json!(count(status, "succeeded")),
            "cannot decrease the succeeded counter",
        ));
    }
    if !absent(status, "completionTime")
        && !absent(old_status, "completionTime")
        && completion_changed
    {
        errors.push(FieldError::invalid(
            "status.completionTime",
            &status["completionTime"],
            "completionTime cannot be mutated",
        ));
    }
    if start_changed && !absent(old_status, "startTime") && !is_true(spec, "suspend") {
        errors.push(FieldError::required(
            "status.startTime",
            "startTime cannot be removed for unsuspended job",
        ));
    }
    if was_success_met && !success_met {
        errors.push(omit("cannot disable the SuccessCriteriaMet=True condition"));
    }
    if was_complete && !was_success_met && success_met {
        errors.push(omit(
            "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions",
        ));
    }
    errors
}

/// `ValidateCronJobCreate` / `ValidateCronJobUpdate`.
fn validate_cron_job(cron_job: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = cron_job["metadata"]["name"].as_str().unwrap_or("");
    if !is_dns1123_subdomain(name) {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            DNS1123_SUBDOMAIN,
        ));
    }
    // The controller appends an 11-character suffix to a run's name: 63 - 11.
    if old.is_none() && name.len() > 52 {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be no more than 52 characters",
        ));
    }
    let spec = &cron_job["spec"];
    let old_spec = old.map(|o| &o["spec"]);
    match string(spec, "schedule").unwrap_or("") {
        "" => errors.push(FieldError::required("spec.schedule", "")),
        schedule => {
            if let Err(e) = parse_schedule(schedule) {
                errors.push(FieldError::invalid("spec.schedule", &json!(schedule), e));
            }
            let allow_tz = old_spec
                .and_then(|o| string(o, "schedule"))
                .is_some_and(|s| s.contains("TZ"));
            if allow_tz && schedule.contains("TZ") && !absent(spec, "timeZone") {
                errors.push(FieldError::invalid(
                    "spec.schedule",
                    &json!(schedule),
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            } else if !allow_tz && schedule.contains("TZ") {
                errors.push(FieldError::invalid(
                    "spec.schedule",
                    &json!(schedule),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
    }
    non_negative(
        spec,
        "spec",
        &[
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ],
        &mut errors,
    );
    if old_spec.is_none_or(|o| o.get("timeZone") != spec.get("timeZone"))
        && let Some(tz) = spec.get("timeZone").filter(|t| !t.is_null())
    {
        errors.extend(validate_time_zone(tz));
    }
    match string(spec, "concurrencyPolicy").unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errors.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errors.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            &json!(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec = &spec["jobTemplate"]["spec"];
    errors.extend(validate_job_spec(job_spec, "spec.jobTemplate.spec"));
    if !absent(job_spec, "selector") {
        errors.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            &job_spec["selector"],
            "`selector` will be auto-generated",
        ));
    }
    if is_true(job_spec, "manualSelector") {
        errors.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &json!(true),
            &["nil", "false"],
        ));
    }
    errors
}

fn validate_time_zone(tz: &Value) -> Vec<FieldError> {
    let path = "spec.timeZone";
    let Some(name) = tz.as_str() else {
        return vec![FieldError::invalid(path, tz, "must be a string")];
    };
    if name.is_empty() {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if !name.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            path,
            tz,
            format!("unknown time zone {name}"),
        )];
    }
    if name.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    Vec::new()
}

/// `cron.ParseStandard` (robfig/cron v3): five fields (minute, hour, day of month,
/// month, day of week) or a descriptor; the error text is the parser's.
pub fn parse_schedule(schedule: &str) -> Result<(), String> {
    let mut spec = schedule.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some(i) = spec.find(' ') else {
            return Err(format!("provided bad location {spec}"));
        };
        spec = spec[i..].trim();
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => {
                let duration = d["every ".len()..].trim();
                if is_go_duration(duration) {
                    Ok(())
                } else {
                    Err(format!(
                        "failed to parse duration {spec}: time: invalid duration {duration:?}"
                    ))
                }
            }
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(i64, i64, &[&str], i64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for expr in field.split(',') {
            parse_range(expr, min, max, names, first)?;
        }
    }
    Ok(())
}

fn parse_range(expr: &str, min: i64, max: i64, names: &[&str], first: i64) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let number = |s: &str| -> Result<i64, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(first + i as i64);
        }
        let n: i64 = s.parse().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
        })?;
        if n < 0 {
            return Err(format!("negative number ({n}) not allowed: {s}"));
        }
        Ok(n)
    };
    let (start, mut end) = if matches!(low_and_high[0], "*" | "?") {
        (min, max)
    } else {
        let start = number(low_and_high[0])?;
        match low_and_high.len() {
            1 => (start, start),
            2 => (start, number(low_and_high[1])?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = number(range_and_step[1])?;
            // `N/step` means `N-max/step`.
            if single && !matches!(low_and_high[0], "*" | "?") {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

/// Go's `time.ParseDuration` syntax: `1h30m`, `90s`, `1.5h`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 || rest[..digits].matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}
