//! The OrderedReady trap of a stateful app. A StatefulSet rolls one pod at a time and
//! waits for each to become Ready; a pod of a broken template never does, and reverting
//! the spec does not replace it: Kubernetes waits for it, forever (kubernetes#67250).
//!
//! - **Stuck**: a pod of the update revision that has not been ready for longer than
//!   the app's `rollout.progressDeadlineSeconds` (default 600 s, the Deployment's
//!   bound) stalls the app: `Stalled=True`, reason `RolloutStuck`, naming the pod, what
//!   its containers say, and what to do.
//! - **Healed**: when the update revision is again the current one (the spec was
//!   reverted to the revision that was running) and a pod of another revision is not
//!   ready, the operator deletes that pod; the StatefulSet recreates it on the good
//!   revision. `spec.stateful.replaceStuckPods: false` turns this off.
//!
//! Pods are listed only while a StatefulSet has pods not ready: never at steady state.
//! Nothing is decided on revisions the StatefulSet controller has not computed for the
//! current spec, and a pod is deleted only when the StatefulSet read fresh from the API
//! server (after the pods) still says its revision was reverted.
//! [`examine`] is pure; [`check`] lists and deletes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams};
use tracing::{info, warn};

use super::workload::{Live, Rollout};
use crate::api::SafeApp;
use crate::controller::events::{self, EventType};
use crate::controller::{Context, Error};
use crate::render::DEFAULT_PROGRESS_DEADLINE_SECONDS;

/// The label a StatefulSet puts on each pod: the revision it runs.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the pods say of a StatefulSet's rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Examined {
    /// The rollout is stuck: the message for `RolloutStuck`.
    pub stuck: Option<String>,
    /// Pods to delete (stuck on a revision the spec went back from).
    pub replace: Vec<String>,
    /// When to look again (a pod of the new revision may become stuck then).
    pub recheck: Option<Duration>,
}

/// Examines `pods` of the StatefulSet named `owner` whose rollout is `rollout`, at
/// `now`. Pure.
pub fn examine(
    pods: &[Pod],
    owner: Option<&String>,
    rollout: &Rollout,
    bound: Duration,
    now: Timestamp,
) -> Examined {
    let mut out = Examined::default();
    // Revisions the StatefulSet controller has not computed for the current spec say
    // nothing about the pods (a stale read would have a good pod look stuck, or a
    // stuck one look good).
    if !rollout.caught_up {
        return out;
    }
    let (Some(current), Some(update)) = (&rollout.current_revision, &rollout.update_revision)
    else {
        return out;
    };
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() || ready(pod) {
            continue;
        }
        let revision = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .cloned()
            .unwrap_or_default();
        // Only a pod its StatefulSet controls is ever replaced (not one that merely
        // carries the app's labels).
        let controlled = pod.metadata.owner_references.iter().flatten().any(|o| {
            o.controller == Some(true) && o.kind == "StatefulSet" && Some(&o.name) == owner
        });
        if revision != *update && update == current && controlled {
            // The spec is back on the revision that was running: this pod of another
            // revision will never be replaced by the StatefulSet while it is not ready.
            out.replace.push(name);
            continue;
        }
        if revision != *update {
            continue;
        }
        let since = not_ready_since(pod);
        let waited = since
            .map(|t| now.duration_since(t).unsigned_abs())
            .unwrap_or_default();
        if waited >= bound {
            let why = waiting_reason(pod);
            out.stuck.get_or_insert_with(|| {
                format!(
                    "pod {name} of the new revision {update} has not become ready for {}s{why}; the rollout waits for it (OrderedReady). Fix the spec, or revert it to the last good one: the operator then replaces the stuck pod",
                    waited.as_secs()
                )
            });
        } else {
            let left = bound - waited;
            out.recheck = Some(out.recheck.map_or(left, |r| r.min(left)));
        }
    }
    out
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Since when the pod has not been ready: its Ready condition's last change, else its
/// creation.
fn not_ready_since(pod: &Pod) -> Option<Timestamp> {
    let from_condition = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    from_condition.or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// What the pod's containers say (`: ImagePullBackOff: ...`), or nothing.
fn waiting_reason(pod: &Pod) -> String {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            Some(match &waiting.message {
                Some(m) => format!(" ({}: {reason}: {m})", c.name),
                None => format!(" ({}: {reason})", c.name),
            })
        })
        .unwrap_or_default()
}

/// Looks at the pods of `app`'s StatefulSet while some are not ready: replaces the ones
/// stuck on a reverted revision (unless opted out), and marks `rollout` stuck. The time
/// to look again, if a pod may become stuck.
pub async fn check(
    app: &SafeApp,
    ctx: &Context,
    namespace: &str,
    rollout: &mut Rollout,
) -> Result<Option<Duration>, Error> {
    let Some(stateful) = &app.spec.stateful else {
        return Ok(None);
    };
    // Rolled out as far as the partition asks, every pod available: nothing to look at
    // (a partition held below the replica count is a steady state too).
    if rollout.complete() || rollout.update_revision.is_none() {
        return Ok(None);
    }
    let name = app.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!("app.kubernetes.io/instance={name},app.kubernetes.io/name={name}");
    let pods = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::GetChild {
            kind: "Pod",
            name: selector.clone(),
            source,
        })?;
    let bound = Duration::from_secs(
        app.spec
            .rollout
            .as_ref()
            .and_then(|r| r.progress_deadline_seconds)
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
            .max(1)
            .unsigned_abs()
            .into(),
    );
    let owner = Some(&name);
    let mut examined = examine(&pods.items, owner, rollout, bound, Timestamp::now());
    if !examined.replace.is_empty() {
        // A pod is only ever deleted on the StatefulSet as the API server has it now
        // (read after the pods), not as a cache had it.
        let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
        let fresh = sets
            .get_opt(&name)
            .await
            .map_err(|source| Error::GetChild {
                kind: "StatefulSet",
                name: name.clone(),
                source,
            })?;
        examined.replace = match fresh {
            Some(set) => {
                let fresh = Live::StatefulSet(Box::new(set)).rollout();
                examine(&pods.items, owner, &fresh, bound, Timestamp::now()).replace
            }
            None => Vec::new(),
        };
    }
    if stateful.replace_stuck_pods != Some(false) {
        for pod in &examined.replace {
            info!(pod, "Replacing a pod stuck on a reverted revision");
            match api.delete(pod, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.metrics.write("Pod");
                    events::publish(
                        &ctx.recorder,
                        app,
                        EventType::Normal,
                        events::REPLACED_STUCK_POD,
                        format!(
                            "Deleted pod {pod}: it was stuck not ready on a revision the spec went back from; the StatefulSet recreates it on the current revision"
                        ),
                    )
                    .await;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => warn!(pod, error = %e, "Cannot replace the stuck pod"),
            }
        }
    }
    rollout.stuck = examined.stuck;
    Ok(examined.recheck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, revision: &str, ready: bool, since: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {REVISION_LABEL: revision},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                              "uid": "u", "controller": true}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                       "lastTransitionTime": since}],
                       "containerStatuses": [{"name": "db", "ready": ready, "restartCount": 0, "image": "x", "imageID": "",
                           "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }))
        .expect("pod")
    }

    fn rollout(current: &str, update: &str, caught_up: bool) -> Rollout {
        Rollout {
            kind: "StatefulSet",
            want: 3,
            caught_up,
            current_revision: Some(current.into()),
            update_revision: Some(update.into()),
            ..Rollout::default()
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    // A new-revision pod not ready past the bound is stuck (named, with its containers'
    // reason); before the bound, a look again at the bound.
    #[test]
    fn stuck_after_the_bound() {
        let pods = [
            pod("db-2", "db-bad", false, "2026-01-01T00:00:00Z"),
            pod("db-1", "db-good", true, "2026-01-01T00:00:00Z"),
        ];
        let r = rollout("db-good", "db-bad", true);
        let later = examine(
            &pods,
            Some(&"db".into()),
            &r,
            Duration::from_secs(600),
            at("2026-01-01T00:11:00Z"),
        );
        let message = later.stuck.expect("stuck");
        assert!(
            message.contains("db-2") && message.contains("CrashLoopBackOff"),
            "{message}"
        );
        assert!(later.replace.is_empty());
        let early = examine(
            &pods,
            Some(&"db".into()),
            &r,
            Duration::from_secs(600),
            at("2026-01-01T00:04:00Z"),
        );
        assert_eq!(early.stuck, None);
        assert_eq!(early.recheck, Some(Duration::from_secs(360)));
    }

    // Reverted (update revision = current again): the pod of the other revision that is
    // not ready is replaced; a ready one is left to the StatefulSet, and so is a pod the
    // StatefulSet does not control.
    #[test]
    fn reverted_pods_are_replaced() {
        let pods = [
            pod("db-2", "db-bad", false, "2026-01-01T00:00:00Z"),
            pod("db-1", "db-bad", true, "2026-01-01T00:00:00Z"),
            pod("db-0", "db-good", true, "2026-01-01T00:00:00Z"),
        ];
        let r = rollout("db-good", "db-good", true);
        let out = examine(
            &pods,
            Some(&"db".into()),
            &r,
            Duration::from_secs(600),
            at("2026-01-01T00:01:00Z"),
        );
        assert_eq!(out.replace, ["db-2"]);
        assert_eq!(out.stuck, None);
        // A pod that only carries the labels (another owner, or none) is never replaced.
        let mut foreign = pods[0].clone();
        foreign.metadata.owner_references = None;
        let owner = "db".to_string();
        let out = examine(
            &[foreign],
            Some(&owner),
            &r,
            Duration::from_secs(600),
            at("2026-01-01T00:01:00Z"),
        );
        assert!(out.replace.is_empty());
    }

    // Revisions the controller has not computed for the current spec decide nothing.
    #[test]
    fn stale_revisions_decide_nothing() {
        let pods = [pod("db-2", "db-bad", false, "2026-01-01T00:00:00Z")];
        let stale = rollout("db-good", "db-good", false);
        let out = examine(
            &pods,
            Some(&"db".into()),
            &stale,
            Duration::from_secs(1),
            at("2026-01-01T01:00:00Z"),
        );
        assert_eq!(out, Examined::default());
    }
}
