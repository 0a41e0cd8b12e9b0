//! The workload step of a SafeApp's reconcile: read the live workload, apply the
//! rendered one (an operator template change as an update, never as drift), and read its
//! rollout back from its status. The kind-specific parts live here and in
//! `render/workload.rs` only: everything after this step (the other children, the
//! upgrade slots, the status) takes a [`Live`] workload and its [`Rollout`].

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use serde_json::Value;

use crate::api::SafeApp;
use crate::controller::Context;
use crate::controller::apply::{self, Change, Ownership, SyncCtx};
use crate::controller::conditions::{self as c, Cond};
use crate::controller::outcome::{self, Outcome};
use crate::controller::status::degraded;
use crate::render::{Workload, WorkloadKind};

/// The workload as the API server has it.
#[derive(Clone, Debug)]
pub enum Live {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
}

impl Live {
    /// What its status says of its rollout.
    pub fn rollout(&self) -> Rollout {
        match self {
            Self::Deployment(d) => Rollout::of_deployment(d),
            Self::StatefulSet(s) => Rollout::of_stateful_set(s),
        }
    }
}

/// Reads the live workload of `kind` named `name` (from the cache when there is one):
/// `Ok(None)` when it does not exist.
pub async fn read(
    sync: &SyncCtx<'_>,
    kind: WorkloadKind,
    name: &str,
) -> Result<Option<Value>, crate::controller::Error> {
    match kind {
        WorkloadKind::Deployment => apply::read::<Deployment>(sync, "Deployment", name).await,
        WorkloadKind::StatefulSet => apply::read::<StatefulSet>(sync, "StatefulSet", name).await,
    }
}

/// The live workload of `kind` from its JSON, typed.
pub fn typed(kind: WorkloadKind, live: Option<Value>) -> Option<Live> {
    match kind {
        WorkloadKind::Deployment => serde_json::from_value(live?)
            .ok()
            .map(|d| Live::Deployment(Box::new(d))),
        WorkloadKind::StatefulSet => serde_json::from_value(live?)
            .ok()
            .map(|s| Live::StatefulSet(Box::new(s))),
    }
}

/// Fields the API server turned out to drop, learnt from its answers: a StatefulSet's
/// `rollingUpdate.maxUnavailable` is behind the `MaxUnavailableStatefulSet` gate (beta,
/// off on most servers), which drops it silently. Rendered where the server keeps it;
/// once an apply's answer lacks it, it is left out for the rest of the process, so it
/// never reads as drift.
#[derive(Debug, Default)]
pub struct ServerFields {
    drops_stateful_set_max_unavailable: std::sync::atomic::AtomicBool,
}

impl ServerFields {
    fn drops_max_unavailable(&self) -> bool {
        self.drops_stateful_set_max_unavailable
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Learns from `live`, the answer to applying `desired`.
    fn learn(&self, desired: &StatefulSet, live: Option<&StatefulSet>) {
        let max_unavailable = |s: &StatefulSet| {
            s.spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.clone())
        };
        if let Some(live) = live
            && max_unavailable(desired).is_some()
            && max_unavailable(live).is_none()
            && !self.drops_max_unavailable()
        {
            tracing::info!(
                "The API server drops a StatefulSet's maxUnavailable (MaxUnavailableStatefulSet is off): leaving it out (one pod at a time is its default)"
            );
            self.drops_stateful_set_max_unavailable
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `desired` as this server keeps it.
    fn as_kept(&self, desired: &StatefulSet) -> Option<StatefulSet> {
        if !self.drops_max_unavailable() {
            return None;
        }
        let mut kept = desired.clone();
        if let Some(ru) = kept
            .spec
            .as_mut()
            .and_then(|s| s.update_strategy.as_mut())
            .and_then(|u| u.rolling_update.as_mut())
        {
            ru.max_unavailable = None;
        }
        Some(kept)
    }
}

/// How the workload is applied (from the staged-upgrade plan, `plan.rs`).
#[derive(Clone, Copy, Debug)]
pub struct HowToApply<'a> {
    /// Apply even when the compare sees no difference (the pause a hold may drop).
    pub force: bool,
    /// What differs is the operator's own template change: an update, never drift.
    pub operator_change: bool,
    /// When the operator's change goes now: why, for the `TemplateUpgraded` Event.
    pub announce: Option<&'a str>,
}

/// Applies the workload (`live`: the object as it is, None when it does not exist) and
/// settles the result in `outcome`: the live workload after, when it could be applied.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    app: &SafeApp,
    ctx: &Context,
    sync: &SyncCtx<'_>,
    desired: &Workload,
    live: Option<Value>,
    how: HowToApply<'_>,
    own: Ownership<'_>,
    outcome: &mut Outcome,
) -> Option<Live> {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let sync = SyncCtx {
        spec_changed: sync.spec_changed || how.force,
        own_change: how.operator_change,
        ..*sync
    };
    // The operator stops applying the replica count only on a spec change (autoscaling
    // turned on), so only then can ownership need handing over.
    if sync.spec_changed && desired.replicas().is_none() {
        let handed = match desired {
            Workload::Deployment(_) => apply::hand_over_replicas(&sync, name).await,
            // Never autoscaled (validation refuses it): nothing to hand over.
            Workload::StatefulSet(_) => Ok(false),
        };
        if let Err(e) = handed {
            outcome.fail(desired.api_version(), desired.kind(), name, e);
            return None;
        }
    }
    let applied = match desired {
        Workload::Deployment(d) => {
            let synced =
                apply::converge::<Deployment>(&sync, "Deployment", name, Some(d), own, live).await;
            outcome
                .settle("apps/v1", "Deployment", name, synced)
                .and_then(|s| s.live())
                .map(|d| Live::Deployment(Box::new(d)))
        }
        Workload::StatefulSet(s) => {
            let kept = ctx.server.as_kept(s);
            let desired = kept.as_ref().unwrap_or(s);
            let synced = apply::converge::<StatefulSet>(
                &sync,
                "StatefulSet",
                name,
                Some(desired),
                own,
                live,
            )
            .await;
            let live = outcome
                .settle("apps/v1", "StatefulSet", name, synced)
                .and_then(|s| s.live());
            ctx.server.learn(desired, live.as_ref());
            live.map(|s| Live::StatefulSet(Box::new(s)))
        }
    };
    if let Some(why) = how.announce
        && outcome.changed(desired.kind()) == Some(&Change::Updated)
    {
        outcome::template_upgraded(app, ctx, why).await;
    }
    applied
}

/// What a workload's status says of its rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    /// The workload's kind, for the messages.
    pub kind: &'static str,
    pub want: i32,
    /// The controller has seen the current spec.
    pub caught_up: bool,
    pub updated: i32,
    pub available: i32,
    pub total: i32,
    /// A pause holds the template back.
    pub paused: bool,
    /// The rollout failed past its progress deadline: its message.
    pub deadline_exceeded: Option<String>,
    /// Pods refused (quota, admission): the message.
    pub replica_failure: Option<String>,
    /// A pod of the new revision has not become ready within the bound (`stuck.rs`):
    /// the message.
    pub stuck: Option<String>,
    /// A StatefulSet's revisions: what its pods ran before, what they roll to.
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
}

impl Rollout {
    fn of_deployment(d: &Deployment) -> Self {
        let st = d.status.clone().unwrap_or_default();
        let find = |t: &str, status: &str| {
            st.conditions
                .iter()
                .flatten()
                .find(|x| x.type_ == t && x.status == status)
                .cloned()
        };
        Self {
            kind: "Deployment",
            want: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            caught_up: st.observed_generation >= d.metadata.generation,
            updated: st.updated_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            total: st.replicas.unwrap_or(0),
            paused: d.spec.as_ref().and_then(|s| s.paused) == Some(true),
            deadline_exceeded: find("Progressing", "False")
                .filter(|x| x.reason.as_deref() == Some("ProgressDeadlineExceeded"))
                .map(|x| x.message.unwrap_or_default()),
            replica_failure: find("ReplicaFailure", "True").map(|x| x.message.unwrap_or_default()),
            stuck: None,
            current_revision: None,
            update_revision: None,
        }
    }

    /// A StatefulSet rolls pods at or above its partition (a partition at the replica
    /// count holds the template back: the staged upgrade's hold). It has no progress
    /// deadline: a pod that never becomes ready is found by `stuck.rs`.
    fn of_stateful_set(s: &StatefulSet) -> Self {
        let st = s.status.clone().unwrap_or_default();
        let spec = s.spec.as_ref();
        let want = spec.and_then(|s| s.replicas).unwrap_or(1);
        let partition = spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let rolled = st.current_revision.is_some() && st.current_revision == st.update_revision;
        Self {
            kind: "StatefulSet",
            want,
            caught_up: st.observed_generation >= s.metadata.generation,
            // Pods below the partition keep the current revision by design: they count
            // as updated once the partition's part has rolled.
            updated: if rolled {
                st.updated_replicas
                    .unwrap_or(0)
                    .max(st.current_replicas.unwrap_or(0))
            } else {
                st.updated_replicas.unwrap_or(0) + partition.min(want)
            },
            available: st.available_replicas.unwrap_or(0),
            total: st.replicas,
            paused: partition >= want && !rolled,
            deadline_exceeded: None,
            replica_failure: None,
            stuck: None,
            current_revision: st.current_revision,
            update_revision: st.update_revision,
        }
    }

    /// The current template runs at the wanted count, available, old pods gone.
    pub fn complete(&self) -> bool {
        self.caught_up
            && self.updated >= self.want
            && self.total <= self.want
            && self.available >= self.want
    }

    /// Whether the rollout has come to an end: complete on the current template, or
    /// failed past its progress deadline. Frees an upgrade slot.
    pub fn settled(&self) -> bool {
        self.complete()
            || (self.caught_up && (self.deadline_exceeded.is_some() || self.stuck.is_some()))
    }

    /// Ready: the spec's template rolled out and available at the spec's replicas (a
    /// rollout in progress, old pods still serving, is not Ready, as kstatus reads it).
    /// A paused workload never rolls, so there Ready is what runs being available.
    pub fn ready(&self) -> bool {
        if self.paused {
            self.caught_up && self.available >= self.want
        } else {
            self.complete()
        }
    }
}

/// Ready, Reconciling and Degraded from the live workload's rollout (`Stalled` follows
/// from them, [`c::kstatus`]); `kind` names a workload that does not exist yet.
/// `out_of_range` lists resources the namespace LimitRange would refuse.
pub fn rollout_conditions(
    kind: &str,
    rollout: Option<&Rollout>,
    out_of_range: &[String],
) -> Vec<Cond> {
    let Some(rollout) = rollout else {
        return vec![
            Cond::new(
                c::READY,
                false,
                c::REASON_WAITING,
                format!("the {kind} does not exist yet"),
            ),
            Cond::new(
                c::RECONCILING,
                true,
                c::REASON_WAITING,
                format!("creating the {kind}"),
            ),
            degraded(None, out_of_range),
        ];
    };
    let summary = format!(
        "{} of {} updated, {} available",
        rollout.updated, rollout.want, rollout.available
    );
    let ready = rollout.ready();
    // Past the deadline, or stuck on a pod that never becomes ready, the workload's
    // controller stops trying: a person must act.
    let deadline = rollout
        .deadline_exceeded
        .as_ref()
        .map(|m| (c::REASON_PROGRESS_DEADLINE_EXCEEDED, m))
        .or_else(|| rollout.stuck.as_ref().map(|m| (c::REASON_ROLLOUT_STUCK, m)));
    let failure = rollout
        .replica_failure
        .as_ref()
        .map(|m| (c::REASON_REPLICA_FAILURE, m.clone()))
        .or_else(|| deadline.map(|(reason, m)| (reason, m.clone())));
    let ready_cond = if ready {
        Cond::new(c::READY, true, c::REASON_AVAILABLE, summary.clone())
    } else if let Some((reason, m)) = deadline {
        Cond::new(c::READY, false, reason, m.clone())
    } else if !out_of_range.is_empty() {
        Cond::new(
            c::READY,
            false,
            c::REASON_RESOURCES_OUT_OF_RANGE,
            format!(
                "admission will refuse the pods: {}",
                out_of_range.join("; ")
            ),
        )
    } else if let Some((reason, msg)) = &failure {
        Cond::new(c::READY, false, reason, msg.clone())
    } else {
        Cond::new(
            c::READY,
            false,
            c::REASON_ROLLOUT_IN_PROGRESS,
            summary.clone(),
        )
    };
    let reconciling = if ready {
        Cond::new(c::RECONCILING, false, c::REASON_ROLLOUT_COMPLETE, summary)
    } else if let Some((reason, m)) = deadline {
        Cond::new(c::RECONCILING, false, reason, m.clone())
    } else if let Some((reason, msg)) = failure.clone() {
        // A refused replica (quota, admission) is retried by the controller-manager
        // until the progress deadline: still in progress.
        Cond::new(c::RECONCILING, true, reason, msg)
    } else {
        Cond::new(c::RECONCILING, true, c::REASON_ROLLOUT_IN_PROGRESS, summary)
    };
    vec![ready_cond, reconciling, degraded(failure, out_of_range)]
}

/// Replica counts from the live workload.
pub fn replica_counts(live: Option<&Live>) -> (i32, i32, i32) {
    match live {
        Some(Live::Deployment(d)) => {
            let st = d.status.clone().unwrap_or_default();
            (
                st.replicas.unwrap_or(0),
                st.ready_replicas.unwrap_or(0),
                st.updated_replicas.unwrap_or(0),
            )
        }
        Some(Live::StatefulSet(s)) => {
            let st = s.status.clone().unwrap_or_default();
            (
                st.replicas,
                st.ready_replicas.unwrap_or(0),
                st.updated_replicas.unwrap_or(0),
            )
        }
        None => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(status),
        }
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..DeploymentCondition::default()
        }
    }

    fn get<'a>(conds: &'a [Cond], t: &str) -> &'a Cond {
        conds.iter().find(|x| x.type_ == t).expect("condition")
    }

    // A rollout in progress: not ready, progressing, not degraded.
    #[test]
    fn progressing_rollout() {
        let d = deployment(
            3,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(4),
                updated_replicas: Some(1),
                available_replicas: Some(2),
                ..DeploymentStatus::default()
            },
        );
        let conds = rollout_conditions(
            "Deployment",
            Some(&Live::Deployment(Box::new(d)).rollout()),
            &[],
        );
        assert!(!get(&conds, c::READY).status);
        assert_eq!(
            get(&conds, c::RECONCILING).reason,
            c::REASON_ROLLOUT_IN_PROGRESS
        );
        assert!(get(&conds, c::RECONCILING).status);
        assert!(!get(&conds, c::DEGRADED).status);
    }

    // A complete rollout: ready, no longer progressing.
    #[test]
    fn complete_rollout() {
        let d = deployment(
            3,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(3),
                updated_replicas: Some(3),
                ready_replicas: Some(3),
                available_replicas: Some(3),
                ..DeploymentStatus::default()
            },
        );
        let conds = rollout_conditions(
            "Deployment",
            Some(&Live::Deployment(Box::new(d)).rollout()),
            &[],
        );
        assert!(get(&conds, c::READY).status);
        assert_eq!(get(&conds, c::READY).reason, c::REASON_AVAILABLE);
        assert_eq!(
            get(&conds, c::RECONCILING).reason,
            c::REASON_ROLLOUT_COMPLETE
        );
        assert!(!get(&conds, c::DEGRADED).status);
    }

    // A failed rollout (deadline exceeded, quota refusal) is Degraded with the API's message.
    #[test]
    fn failed_rollout() {
        let d = deployment(
            3,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(1),
                updated_replicas: Some(1),
                available_replicas: Some(0),
                conditions: Some(vec![
                    cond(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        "ReplicaSet \"web-1\" has timed out progressing.",
                    ),
                    cond(
                        "ReplicaFailure",
                        "True",
                        "FailedCreate",
                        "pods \"web-1-x\" is forbidden: exceeded quota: safeapp-quota",
                    ),
                ]),
                ..DeploymentStatus::default()
            },
        );
        let conds = c::kstatus(rollout_conditions(
            "Deployment",
            Some(&Live::Deployment(Box::new(d)).rollout()),
            &[],
        ));
        let degraded = get(&conds, c::DEGRADED);
        assert!(degraded.status);
        // Past the deadline nothing changes by itself: Stalled, not Reconciling.
        assert!(get(&conds, c::STALLED).status);
        assert_eq!(
            get(&conds, c::STALLED).reason,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED
        );
        assert!(!get(&conds, c::RECONCILING).status);
        assert_eq!(degraded.reason, c::REASON_REPLICA_FAILURE);
        assert!(degraded.message.contains("exceeded quota"));
        assert_eq!(
            get(&conds, c::RECONCILING).reason,
            c::REASON_PROGRESS_DEADLINE_EXCEEDED
        );
        assert!(!get(&conds, c::READY).status);
    }

    // Resources outside the LimitRange are reported as Degraded/ResourcesOutOfRange.
    #[test]
    fn out_of_range_is_degraded() {
        let conds = rollout_conditions(
            "Deployment",
            None,
            &["spec.resources.limits.cpu: 8 is above the namespace maximum 4".into()],
        );
        let degraded = get(&conds, c::DEGRADED);
        assert_eq!(degraded.reason, c::REASON_RESOURCES_OUT_OF_RANGE);
        assert!(degraded.message.contains("limits.cpu"));
    }
}
