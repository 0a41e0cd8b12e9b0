//! The Deployment: the shared pod (`pod.rs`) plus what serving needs, carrying every
//! practice of SAFEAPP.md §2.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ContainerPort, ExecAction, Lifecycle, LifecycleHandler, PodTemplateSpec, SleepAction,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{labels, meta, pod, probes};
use crate::api::v1alpha1::PreStopMode;
use crate::policy::Policy;
use crate::validate::ValidatedApp;

pub const DEFAULT_MAX_SURGE: &str = "25%";
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 0;
pub const DEFAULT_MIN_READY_SECONDS: i32 = 5;
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Pod-template annotation carrying the hash of the referenced ConfigMap and Secret
/// data: when the data changes, the template changes, and the Deployment rolls.
pub const CONFIG_HASH_ANNOTATION: &str = "safeapp.dev/config-hash";

/// Builds the Deployment.
pub fn deployment(app: &ValidatedApp, policy: &Policy) -> Deployment {
    let rollout = app.spec.rollout.clone().unwrap_or_default();
    Deployment {
        metadata: meta::child_meta(&app.pod),
        spec: Some(DeploymentSpec {
            // Omitted when autoscaled: the HPA owns the replica count.
            replicas: app.replicas,
            selector: LabelSelector {
                match_labels: Some(labels::selector(&app.pod)),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(
                        rollout
                            .max_surge
                            .unwrap_or_else(|| IntOrString::String(DEFAULT_MAX_SURGE.into())),
                    ),
                    max_unavailable: Some(
                        rollout
                            .max_unavailable
                            .unwrap_or(IntOrString::Int(DEFAULT_MAX_UNAVAILABLE)),
                    ),
                }),
            }),
            min_ready_seconds: Some(
                rollout
                    .min_ready_seconds
                    .unwrap_or(DEFAULT_MIN_READY_SECONDS),
            ),
            progress_deadline_seconds: Some(
                rollout
                    .progress_deadline_seconds
                    .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
            ),
            revision_history_limit: Some(
                rollout
                    .revision_history_limit
                    .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT),
            ),
            paused: None,
            template: pod_template(app, policy),
        }),
        status: None,
    }
}

/// The shared pod template, plus what a served app needs: its ports, probes and
/// preStop pause on the app container; the grace period and the spread over nodes and
/// zones on the pod.
pub(super) fn pod_template(app: &ValidatedApp, policy: &Policy) -> PodTemplateSpec {
    let mut template = pod::template(&app.pod, policy);
    if let Some(c) = pod::app_container_mut(&mut template) {
        let (readiness, liveness, startup) = probes::probes(app);
        c.ports = app.spec.ports.as_ref().map(|ports| {
            ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.port,
                    protocol: Some(p.protocol.map_or("TCP", |x| x.as_str()).into()),
                    ..ContainerPort::default()
                })
                .collect()
        });
        // A metrics port outside spec.ports: on the container (the PodMonitor names
        // it), not on the Service.
        if let Some(m) = app.metrics.as_ref().filter(|m| m.own_port) {
            c.ports.get_or_insert_with(Vec::new).push(ContainerPort {
                name: Some(m.port_name.clone()),
                container_port: m.port,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            });
        }
        c.readiness_probe = Some(readiness);
        c.liveness_probe = Some(liveness);
        c.startup_probe = startup;
        c.lifecycle = pre_stop(app);
    }
    if let Some(spec) = template.spec.as_mut() {
        spec.termination_grace_period_seconds = Some(app.termination_grace_period_seconds);
        spec.topology_spread_constraints = Some(topology_spread(app));
    }
    template
}

/// The preStop pause that lets endpoints drain before SIGTERM (none when 0).
fn pre_stop(app: &ValidatedApp) -> Option<Lifecycle> {
    let seconds = app.pre_stop_sleep_seconds;
    if seconds <= 0 {
        return None;
    }
    let handler = match app.pre_stop_mode {
        PreStopMode::Sleep => LifecycleHandler {
            sleep: Some(SleepAction { seconds }),
            ..LifecycleHandler::default()
        },
        PreStopMode::Exec => LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), format!("sleep {seconds}")]),
            }),
            ..LifecycleHandler::default()
        },
    };
    Some(Lifecycle {
        pre_stop: Some(handler),
        ..Lifecycle::default()
    })
}

/// Spread over nodes and zones, but never refuse to schedule (ScheduleAnyway).
fn topology_spread(app: &ValidatedApp) -> Vec<TopologySpreadConstraint> {
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&app.pod)),
                match_expressions: None,
            }),
            // Spread each ReplicaSet on its own, so a rollout does not skew the spread.
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}
