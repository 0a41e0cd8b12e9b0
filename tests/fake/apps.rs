//! `apps/v1` StatefulSets as the real API server and StatefulSet controller treat them
//! (kubernetes `pkg/apis/apps/validation`, `pkg/controller/statefulset`):
//!
//! - **Defaulting**: `podManagementPolicy: OrderedReady`, `updateStrategy:
//!   {type: RollingUpdate, rollingUpdate: {partition: 0}}`, `revisionHistoryLimit: 10`,
//!   `persistentVolumeClaimRetentionPolicy: {Retain, Retain}`, `replicas: 1`; each claim
//!   template gets `apiVersion: v1`, `kind: PersistentVolumeClaim`, `volumeMode:
//!   Filesystem` and `status: {phase: Pending}`.
//! - **Validation of an update**: only `replicas`, `ordinals`, `template`,
//!   `updateStrategy`, `persistentVolumeClaimRetentionPolicy` and `minReadySeconds` may
//!   change; anything else is the server's 422 (`spec: Forbidden: updates to statefulset
//!   spec for fields other than ...`). A spec write keeps the status.
//! - **The controller** ([`FakeApi::stateful_set_step`]): one sync of one StatefulSet.
//!   Claims per ordinal (`<template>-<set>-<N>`, never deleted); pods created in order,
//!   labelled with their revision (`controller-revision-hash`, a hash of the template);
//!   with `OrderedReady`, a pod that is not running and ready blocks everything after it
//!   *and the update* (kubernetes#67250: a revert does not replace it); the update deletes
//!   the highest ordinal at or above the partition not on the update revision, one at a
//!   time, waiting for each to be healthy. A pod whose image contains `broken` never
//!   becomes ready (`ImagePullBackOff`).
//! - **Deployments with pods** ([`FakeApi::deployment_step`]): one sync of one
//!   Deployment, its pods `<name>-<pod-template-hash>-<i>` replaced at once; a pod whose
//!   image contains `crash` is in `CrashLoopBackOff` with restarts (canary releases).

use serde_json::{Value, json};

use super::batch::{FieldError, invalid_status};
use super::{FakeApi, collection};

/// The spec fields an update may change.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Defaults a stored StatefulSet (the pod spec is defaulted by the caller).
pub fn default_stateful_set(spec: &mut Value) {
    let set = |spec: &mut Value, key: &str, v: Value| {
        if spec.get(key).is_none() {
            spec[key] = v;
        }
    };
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    set(spec, "revisionHistoryLimit", json!(10));
    set(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    );
    if spec["updateStrategy"]["type"] == "RollingUpdate"
        && spec["updateStrategy"]["rollingUpdate"]["partition"].is_null()
    {
        spec["updateStrategy"]["rollingUpdate"]["partition"] = json!(0);
    }
    set(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    if let Some(claims) = spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for claim in claims {
            set(claim, "apiVersion", json!("v1"));
            set(claim, "kind", json!("PersistentVolumeClaim"));
            if claim["spec"].is_object() {
                set(&mut claim["spec"], "volumeMode", json!("Filesystem"));
            }
            set(claim, "status", json!({"phase": "Pending"}));
        }
    }
}

/// The 422 of an update that changes an immutable StatefulSet field.
pub fn validate_update(obj: &Value, old: &Value) -> Option<Value> {
    let (Some(new), Some(was)) = (obj["spec"].as_object(), old["spec"].as_object()) else {
        return None;
    };
    let keys: std::collections::BTreeSet<&String> = new.keys().chain(was.keys()).collect();
    let changed = keys
        .into_iter()
        .any(|k| !MUTABLE.contains(&k.as_str()) && new.get(k) != was.get(k));
    if !changed {
        return None;
    }
    let error = FieldError::forbidden(
        "spec",
        "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
    );
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    Some(invalid_status("StatefulSet", "apps", name, &[error]))
}

/// The revision name of a template: `<set>-<hash>`, as the controller's
/// ControllerRevisions are named.
fn revision(set: &str, template: &Value) -> String {
    let hash = safeapp::digest::of_json(template);
    format!("{set}-{}", &hash[..10.min(hash.len())])
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

impl FakeApi {
    /// One sync of StatefulSet `name` in `ns` by the StatefulSet controller (see the
    /// module doc). Returns what it did, for the tests' logs: `created web-2`, `deleted
    /// web-1`, `waiting for web-0`, or `synced`.
    pub fn stateful_set_step(&self, ns: &str, name: &str) -> String {
        let sets = collection("apps/v1", ns, "statefulsets");
        let pods_coll = collection("v1", ns, "pods");
        let claims_coll = collection("v1", ns, "persistentvolumeclaims");
        let Some(set) = self.get(&sets, name) else {
            return "no StatefulSet".into();
        };
        let spec = &set["spec"];
        let replicas = spec["replicas"].as_i64().unwrap_or(1);
        let partition = spec["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .unwrap_or(0);
        let ordered = spec["podManagementPolicy"] != "Parallel";
        let update = revision(name, &spec["template"]);
        let current = set["status"]["currentRevision"]
            .as_str()
            .map_or_else(|| update.clone(), str::to_string);
        let pod_of = |i: i64| self.get(&pods_coll, &format!("{name}-{i}"));
        let mut action = "synced".to_string();
        'sync: {
            for i in 0..replicas {
                // Claims first: a pod never starts without its storage.
                for claim in spec["volumeClaimTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let claim_name = format!(
                        "{}-{name}-{i}",
                        claim["metadata"]["name"].as_str().unwrap_or("data")
                    );
                    if self.get(&claims_coll, &claim_name).is_none() {
                        let mut labels = claim["metadata"]["labels"].clone();
                        if !labels.is_object() {
                            labels = json!({});
                        }
                        self.insert(
                            &claims_coll,
                            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                   "metadata": {"name": claim_name, "namespace": ns, "labels": labels},
                                   "spec": claim["spec"].clone(),
                                   "status": {"phase": "Bound"}}),
                        );
                    }
                }
                match pod_of(i) {
                    None => {
                        let rev = if i < partition { &current } else { &update };
                        let template = if rev == &update {
                            spec["template"].clone()
                        } else {
                            // The current revision's template: what the other pods run.
                            (0..replicas)
                                .filter_map(pod_of)
                                .find(|p| {
                                    p["metadata"]["labels"]["controller-revision-hash"] == *rev
                                })
                                .map_or_else(
                                    || spec["template"].clone(),
                                    |p| p["x-template"].clone(),
                                )
                        };
                        self.create_pod(ns, name, i, rev, &template, &set);
                        action = format!("created {name}-{i}");
                        if ordered {
                            break 'sync;
                        }
                    }
                    Some(pod) if ordered && !pod_ready(&pod) => {
                        action = format!("waiting for {name}-{i}");
                        break 'sync;
                    }
                    Some(_) => {}
                }
            }
            // Condemned pods (scaled down): the highest first. Their claims stay.
            let mut extra = replicas;
            while pod_of(extra).is_some() {
                extra += 1;
            }
            if extra > replicas {
                self.remove(&pods_coll, &format!("{name}-{}", extra - 1));
                action = format!("deleted {name}-{}", extra - 1);
                break 'sync;
            }
            // The update: the highest ordinal at or above the partition not on the update
            // revision is deleted (and recreated by the next sync); an unhealthy pod waits.
            for i in (partition.max(0)..replicas).rev() {
                let Some(pod) = pod_of(i) else {
                    break 'sync;
                };
                if pod["metadata"]["labels"]["controller-revision-hash"] != *update {
                    self.remove(&pods_coll, &format!("{name}-{i}"));
                    action = format!("deleted {name}-{i}");
                    break 'sync;
                }
                if !pod_ready(&pod) {
                    action = format!("waiting for {name}-{i}");
                    break 'sync;
                }
            }
        }
        // Status.
        let pods: Vec<Value> = (0..replicas).filter_map(pod_of).collect();
        let count = |f: &dyn Fn(&Value) -> bool| pods.iter().filter(|p| f(p)).count() as i64;
        let ready = count(&|p| pod_ready(p));
        let updated = count(&|p| p["metadata"]["labels"]["controller-revision-hash"] == *update);
        let current_count =
            count(&|p| p["metadata"]["labels"]["controller-revision-hash"] == *current);
        let all_updated = updated == replicas && ready == replicas;
        let current_rev = if all_updated {
            update.clone()
        } else {
            current.clone()
        };
        let generation = set["metadata"]["generation"].clone();
        let status = json!({
            "observedGeneration": generation,
            "replicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": if all_updated { updated } else { current_count },
            "updatedReplicas": updated,
            "currentRevision": current_rev,
            "updateRevision": update,
            "collisionCount": 0,
        });
        if set["status"] != status {
            self.edit(&sets, name, "kube-controller-manager", json!({}), |s| {
                s["status"] = status;
            });
        }
        action
    }

    fn create_pod(&self, ns: &str, set: &str, i: i64, rev: &str, template: &Value, owner: &Value) {
        let extra = [
            ("controller-revision-hash", rev.to_string()),
            ("statefulset.kubernetes.io/pod-name", format!("{set}-{i}")),
        ];
        let owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                           "name": set, "uid": owner["metadata"]["uid"], "controller": true});
        self.insert_pod(ns, &format!("{set}-{i}"), template, &extra, owner);
    }

    /// A pod made from `template` (its labels plus `extra`), owned by `owner`: running
    /// and ready, unless its image contains `broken` (`ImagePullBackOff`, never ready)
    /// or `crash` (`CrashLoopBackOff`, restarted 3 times). Keeps the template it was
    /// made from (`x-template`, the fake's ControllerRevision).
    fn insert_pod(
        &self,
        ns: &str,
        name: &str,
        template: &Value,
        extra: &[(&str, String)],
        owner: Value,
    ) {
        let image = template["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let container = template["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("app")
            .to_string();
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        for (k, v) in extra {
            labels[*k] = json!(v);
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let waiting = |reason: &str, message: String, restarts: i64| {
            json!({"phase": "Pending",
                   "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now,
                                   "reason": "ContainersNotReady"}],
                   "containerStatuses": [{"name": container, "ready": false, "restartCount": restarts,
                       "image": image, "imageID": "",
                       "state": {"waiting": {"reason": reason, "message": message}}}]})
        };
        let status = if image.contains("broken") {
            waiting(
                "ImagePullBackOff",
                format!("Back-off pulling image \"{image}\""),
                0,
            )
        } else if image.contains("crash") {
            waiting(
                "CrashLoopBackOff",
                format!("back-off 40s restarting failed container={container}"),
                3,
            )
        } else {
            json!({"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                   "containerStatuses": [{"name": container, "ready": true, "restartCount": 0, "image": image,
                       "imageID": "", "state": {"running": {"startedAt": now}}}]})
        };
        self.insert(
            &collection("v1", ns, "pods"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": ns, "labels": labels,
                                "creationTimestamp": now, "ownerReferences": [owner]},
                   "spec": template["spec"].clone(),
                   "x-template": template.clone(),
                   "status": status}),
        );
    }
}

impl FakeApi {
    /// One sync of Deployment `name` in `ns` by the Deployment and ReplicaSet controllers,
    /// with pods: each pod is `<name>-<hash>-<i>`, labelled with its template's
    /// `pod-template-hash`; pods of another template and pods past the replica count go,
    /// missing ones are made (the whole rollout in one step; a paused Deployment keeps
    /// the pods it has). A pod whose image contains `broken` never becomes ready
    /// (`ImagePullBackOff`); one whose image contains `crash` is in `CrashLoopBackOff`
    /// with restarts. The status follows the pods.
    pub fn deployment_step(&self, ns: &str, name: &str) {
        let coll = collection("apps/v1", ns, "deployments");
        let pods_coll = collection("v1", ns, "pods");
        let Some(d) = self.get(&coll, name) else {
            return;
        };
        let spec = &d["spec"];
        let replicas = spec["replicas"].as_i64().unwrap_or(1);
        let rendered_hash = {
            let h = safeapp::digest::of_json(&spec["template"]);
            h[..10.min(h.len())].to_string()
        };
        let hash = rendered_hash.clone();
        let owned: Vec<Value> = self
            .list(&pods_coll)
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .is_some_and(|o| o.rsplit_once('-').is_some_and(|(d, _)| d == name))
            })
            .collect();
        let paused = spec["paused"] == true;
        let running_hash = owned
            .first()
            .and_then(|p| p["metadata"]["labels"]["pod-template-hash"].as_str())
            .map(str::to_string);
        // A paused Deployment rolls nothing: it keeps what runs.
        let hash = match (&running_hash, paused) {
            (Some(h), true) => h.clone(),
            _ => hash,
        };
        for p in &owned {
            let pod_name = p["metadata"]["name"].as_str().unwrap_or_default();
            let index = pod_name
                .rsplit('-')
                .next()
                .and_then(|i| i.parse::<i64>().ok())
                .unwrap_or(0);
            if p["metadata"]["labels"]["pod-template-hash"] != *hash || index >= replicas {
                self.remove(&pods_coll, pod_name);
            }
        }
        let template = if paused && running_hash.is_some() {
            owned[0]["x-template"].clone()
        } else {
            spec["template"].clone()
        };
        for i in 0..replicas {
            let pod_name = format!("{name}-{hash}-{i}");
            if self.get(&pods_coll, &pod_name).is_some() {
                continue;
            }
            let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                               "name": format!("{name}-{hash}"), "uid": format!("rs-{hash}"),
                               "controller": true});
            self.insert_pod(
                ns,
                &pod_name,
                &template,
                &[("pod-template-hash", hash.clone())],
                owner,
            );
        }
        let pods: Vec<Value> = self
            .list(&pods_coll)
            .into_iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == format!("{name}-{hash}"))
            .collect();
        let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
        let status = json!({
            "observedGeneration": d["metadata"]["generation"].clone(),
            "replicas": pods.len(),
            "updatedReplicas": if hash == rendered_hash { pods.len() } else { 0 },
            "readyReplicas": ready,
            "availableReplicas": ready,
        });
        if d["status"] != status {
            self.edit(&coll, name, "kube-controller-manager", json!({}), |d| {
                d["status"] = status;
            });
        }
    }
}
