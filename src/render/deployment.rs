//! The Deployment: one app container carrying every practice of SAFEAPP.md §2.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, Lifecycle,
    LifecycleHandler, LocalObjectReference, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    SleepAction, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{labels, meta, probes, security};
use crate::api::v1alpha1::{PreStopMode, SecurityProfile};
use crate::policy::Policy;
use crate::validate::{self, TMP_VOLUME, ValidatedApp};

pub const DEFAULT_MAX_SURGE: &str = "25%";
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 0;
pub const DEFAULT_MIN_READY_SECONDS: i32 = 5;
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Pod-template annotation carrying the hash of the referenced ConfigMap and Secret
/// data: when the data changes, the template changes, and the Deployment rolls.
pub const CONFIG_HASH_ANNOTATION: &str = "safeapp.dev/config-hash";

/// Stamps the config-data hash on the pod template (the controller computes it; `render`
/// without a cluster has none).
pub fn set_config_hash(deployment: &mut Deployment, hash: &str) {
    let Some(spec) = deployment.spec.as_mut() else {
        return;
    };
    spec.template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(CONFIG_HASH_ANNOTATION.into(), hash.into());
}

/// Hash of the pod template as rendered: what staged upgrades compare.
pub fn template_hash(deployment: &Deployment) -> String {
    crate::digest::of_json(&deployment.spec.as_ref().map(|s| &s.template))
}

/// Builds the Deployment.
pub fn deployment(app: &ValidatedApp, policy: &Policy) -> Deployment {
    let rollout = app.spec.rollout.clone().unwrap_or_default();
    Deployment {
        metadata: meta::child_meta(app),
        spec: Some(DeploymentSpec {
            // Omitted when autoscaled: the HPA owns the replica count.
            replicas: app.replicas,
            selector: LabelSelector {
                match_labels: Some(labels::selector(app)),
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

fn pod_template(app: &ValidatedApp, policy: &Policy) -> PodTemplateSpec {
    let spec = &app.spec;
    let read_only_root = app.security_profile == SecurityProfile::Restricted;
    let mut volumes = spec.volumes.clone().unwrap_or_default();
    if read_only_root {
        volumes.push(Volume {
            name: TMP_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    let init_containers = spec.init_containers.clone().map(|list| {
        list.into_iter()
            .map(|c| harden_init_container(app, policy, c, read_only_root))
            .collect()
    });
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::labels(app)),
            annotations: meta::non_empty(labels::annotations(app)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![app_container(app, read_only_root)],
            init_containers,
            volumes: (!volumes.is_empty()).then_some(volumes),
            termination_grace_period_seconds: Some(app.termination_grace_period_seconds),
            security_context: security::pod(app),
            // No API token in pods that never asked for an identity.
            automount_service_account_token: spec.service_account_name.is_none().then_some(false),
            service_account_name: spec.service_account_name.clone(),
            image_pull_secrets: spec.image_pull_secrets.as_ref().map(|names| {
                names
                    .iter()
                    .map(|n| LocalObjectReference { name: n.clone() })
                    .collect()
            }),
            node_selector: spec.node_selector.clone(),
            tolerations: spec.tolerations.clone(),
            affinity: spec.affinity.clone(),
            priority_class_name: spec.priority_class_name.clone(),
            topology_spread_constraints: Some(topology_spread(app)),
            ..PodSpec::default()
        }),
    }
}

fn app_container(app: &ValidatedApp, read_only_root: bool) -> Container {
    let spec = &app.spec;
    let (readiness, liveness, startup) = probes::probes(app);
    let mut mounts = spec.volume_mounts.clone().unwrap_or_default();
    if read_only_root {
        add_tmp_mount(&mut mounts);
    }
    Container {
        name: app.name.clone(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(
            spec.image_pull_policy
                .map_or("IfNotPresent", |p| p.as_str())
                .into(),
        ),
        command: spec.command.clone(),
        args: spec.args.clone(),
        env: Some(env(app)),
        env_from: spec.env_from.clone(),
        ports: spec.ports.as_ref().map(|ports| {
            ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.port,
                    protocol: Some(p.protocol.map_or("TCP", |x| x.as_str()).into()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        readiness_probe: Some(readiness),
        liveness_probe: Some(liveness),
        startup_probe: startup,
        lifecycle: pre_stop(app),
        resources: Some(app.resources.clone()),
        security_context: security::container(app.security_profile),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    }
}

fn add_tmp_mount(mounts: &mut Vec<VolumeMount>) {
    if !mounts.iter().any(|m| m.mount_path == "/tmp") {
        mounts.push(VolumeMount {
            name: TMP_VOLUME.into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        });
    }
}

fn harden_init_container(
    app: &ValidatedApp,
    policy: &Policy,
    mut c: Container,
    read_only_root: bool,
) -> Container {
    c.resources = Some(validate::resolve_resources(c.resources.as_ref(), policy));
    c.security_context = security::merge_into(app.security_profile, c.security_context.take());
    c.termination_message_policy
        .get_or_insert_with(|| "FallbackToLogsOnError".into());
    if read_only_root {
        let mut mounts = c.volume_mounts.take().unwrap_or_default();
        add_tmp_mount(&mut mounts);
        c.volume_mounts = Some(mounts);
    }
    c
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

/// Downward API variables first, then the user's (a user variable of the same name wins).
fn env(app: &ValidatedApp) -> Vec<EnvVar> {
    let user = app.spec.env.clone().unwrap_or_default();
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: path.into(),
            }),
            ..EnvVarSource::default()
        }),
    };
    let mut out: Vec<EnvVar> = [
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("POD_IP", "status.podIP"),
    ]
    .into_iter()
    .filter(|d| !user.iter().any(|u| u.name == d.name))
    .collect();
    out.extend(user);
    out
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
                match_labels: Some(labels::selector(app)),
                match_expressions: None,
            }),
            // Spread each ReplicaSet on its own, so a rollout does not skew the spread.
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}
