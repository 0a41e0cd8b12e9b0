//! What a real API server does to an object between the write and the next read, where
//! a compare of "rendered" against "live" must expect it (SAFEAPP.md §7b). The drift
//! compare (`controller::drift`) reads these rules, and so does the in-memory API of the
//! tests, so that both agree with the server in one place.
//!
//! - **`omitempty` drops.** Built-in objects are stored as Go structs. A field tagged
//!   `omitempty` whose value is the zero value (`""`, `0`, `false`, an empty list or map)
//!   is not serialized, so it never appears in the live object: `env[].value: ""`,
//!   `args: []`, `volumeMounts[].readOnly: false`, `minReadySeconds: 0`. The exception is a
//!   *pointer* field (`*bool`, `*int32`): its zero is a value and is kept
//!   (`automountServiceAccountToken: false`, `maxUnavailable: 0`, `runAsUser: 0`).
//! - **Quantities are canonicalised** (`0.5` → `500m`, `1024Mi` → `1Gi`): they compare by
//!   value, but only where the field is a quantity (a label `1.10` is not `1.1`).

use serde_json::Value;

/// Fields of the built-in kinds SafeApp renders that are Go pointers (or have no
/// `omitempty`), so a zero value is stored and read back. Every other zero scalar is
/// dropped by the server. Security-relevant ones are here on purpose: a removed
/// `allowPrivilegeEscalation: false` is drift, not an `omitempty` drop.
pub const KEPT_ZERO_FIELDS: &[&str] = &[
    // meta/v1 OwnerReference
    "controller",
    "blockOwnerDeletion",
    // apps/v1 DeploymentSpec, RollingUpdateDeployment
    "replicas",
    "maxSurge",
    "maxUnavailable",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    // apps/v1 StatefulSet: RollingUpdateStatefulSetStrategy
    "partition",
    // core/v1 PodSpec
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "shareProcessNamespace",
    "setHostnameAsFQDN",
    "hostUsers",
    "priority",
    // core/v1 (Pod)SecurityContext
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "privileged",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    // volumes and key selectors
    "defaultMode",
    "mode",
    "optional",
    "expirationSeconds",
    // core/v1 container ports and probes: required int fields, never omitted
    "containerPort",
    "port",
    "seconds",
    // policy/v1 PodDisruptionBudgetSpec
    "minAvailable",
    // autoscaling/v2
    "minReplicas",
    "maxReplicas",
    "stabilizationWindowSeconds",
    "averageUtilization",
    // batch/v1 JobSpec and CronJobSpec: pointers
    "parallelism",
    "completions",
    "backoffLimit",
    "ttlSecondsAfterFinished",
    "suspend",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "manualSelector",
    // batch/v1 JobStatus
    "ready",
    "terminating",
];

/// Whether `value` is a zero value that Go's `omitempty` would drop for a field named
/// `key` (empty strings, lists and maps always; `false` and `0` unless the field is a
/// pointer, see [`KEPT_ZERO_FIELDS`]).
pub fn dropped_when_zero(key: &str, value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Bool(b) => !*b && !KEPT_ZERO_FIELDS.contains(&key),
        Value::Number(n) => n.as_f64() == Some(0.0) && !KEPT_ZERO_FIELDS.contains(&key),
    }
}

/// Map fields whose values are all quantities (`resources.requests.cpu`,
/// LimitRange `max.memory`, ResourceQuota `hard.pods`).
pub const QUANTITY_MAPS: &[&str] = &[
    "requests",
    "limits",
    "default",
    "defaultRequest",
    "min",
    "max",
    "maxLimitRequestRatio",
    "hard",
    "overhead",
];

/// Whether the field `key` inside the object or map `parent` holds a quantity.
pub fn is_quantity(parent: Option<&str>, key: &str) -> bool {
    matches!(key, "sizeLimit" | "averageValue")
        || (key == "value" && parent == Some("target"))
        || parent.is_some_and(|p| QUANTITY_MAPS.contains(&p))
}

/// Removes, recursively, every field the API server would not store (see
/// [`dropped_when_zero`]); list items are kept (an empty string in `args` is a value).
pub fn drop_zero_values(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                drop_zero_values(v);
            }
            map.retain(|k, v| !dropped_when_zero(k, v));
        }
        Value::Array(items) => items.iter_mut().for_each(drop_zero_values),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The zero values of §7b are dropped; pointer zeros (security, rollout) are kept.
    #[test]
    fn drops_what_go_omits() {
        let mut v = json!({"minReadySeconds": 0, "replicas": 0, "template": {"spec": {
            "automountServiceAccountToken": false,
            "imagePullSecrets": [],
            "containers": [{"name": "a", "args": [], "env": [{"name": "E", "value": ""}],
                            "volumeMounts": [{"name": "t", "mountPath": "/t", "readOnly": false}],
                            "securityContext": {"allowPrivilegeEscalation": false}}]}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0}}});
        drop_zero_values(&mut v);
        assert_eq!(
            v,
            json!({"replicas": 0, "template": {"spec": {
                "automountServiceAccountToken": false,
                "containers": [{"name": "a", "env": [{"name": "E"}],
                                "volumeMounts": [{"name": "t", "mountPath": "/t"}],
                                "securityContext": {"allowPrivilegeEscalation": false}}]}},
                "strategy": {"rollingUpdate": {"maxUnavailable": 0}}})
        );
    }

    // Only quantity fields compare as quantities.
    #[test]
    fn quantity_fields() {
        assert!(is_quantity(Some("requests"), "cpu"));
        assert!(is_quantity(Some("hard"), "pods"));
        assert!(is_quantity(Some("target"), "value"));
        assert!(!is_quantity(Some("env"), "value"));
        assert!(!is_quantity(Some("labels"), "app.kubernetes.io/version"));
    }
}
