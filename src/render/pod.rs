//! The pod both kinds run: the app container (image, command, env, resources, the
//! profile's security context, `FallbackToLogsOnError`), init containers hardened the
//! same way, the `/tmp` volume under a read-only root, the pod's identity and
//! scheduling, and its labels and annotations. The Deployment adds what serving needs
//! (ports, probes, the preStop pause, spreading); a Job adds its restart policy.

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, LocalObjectReference,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{labels, meta, security};
use crate::api::pod::SecurityProfile;
use crate::policy::Policy;
use crate::validate::{self, TMP_VOLUME, ValidatedPod};

/// Why a container stopped, in `kubectl describe`, even when it wrote no message file.
pub const TERMINATION_MESSAGE_POLICY: &str = "FallbackToLogsOnError";

/// The pod template: one app container (`containers[0]`) and the shared pod settings.
pub fn template(pod: &ValidatedPod, policy: &Policy) -> PodTemplateSpec {
    let fields = &pod.fields;
    let read_only_root = pod.security_profile == SecurityProfile::Restricted;
    let mut volumes = fields.volumes.clone().unwrap_or_default();
    if read_only_root {
        volumes.push(Volume {
            name: TMP_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    let init_containers = fields.init_containers.clone().map(|list| {
        list.into_iter()
            .map(|c| harden_init_container(pod, policy, c, read_only_root))
            .collect()
    });
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::labels(pod)),
            annotations: meta::non_empty(labels::annotations(pod)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![app_container(pod, read_only_root)],
            init_containers,
            volumes: (!volumes.is_empty()).then_some(volumes),
            security_context: security::pod(pod),
            // No API token in pods that never asked for an identity.
            automount_service_account_token: fields.service_account_name.is_none().then_some(false),
            service_account_name: fields.service_account_name.clone(),
            image_pull_secrets: fields.image_pull_secrets.as_ref().map(|names| {
                names
                    .iter()
                    .map(|n| LocalObjectReference { name: n.clone() })
                    .collect()
            }),
            node_selector: fields.node_selector.clone(),
            tolerations: fields.tolerations.clone(),
            affinity: fields.affinity.clone(),
            priority_class_name: fields.priority_class_name.clone(),
            ..PodSpec::default()
        }),
    }
}

/// The app container of a template made by [`template`].
pub fn app_container_mut(template: &mut PodTemplateSpec) -> Option<&mut Container> {
    template.spec.as_mut()?.containers.first_mut()
}

fn app_container(pod: &ValidatedPod, read_only_root: bool) -> Container {
    let fields = &pod.fields;
    let mut mounts = fields.volume_mounts.clone().unwrap_or_default();
    if read_only_root {
        add_tmp_mount(&mut mounts);
    }
    Container {
        name: pod.name.clone(),
        image: Some(fields.image.clone()),
        image_pull_policy: Some(
            fields
                .image_pull_policy
                .map_or("IfNotPresent", |p| p.as_str())
                .into(),
        ),
        command: fields.command.clone(),
        args: fields.args.clone(),
        env: Some(env(pod)),
        env_from: fields.env_from.clone(),
        resources: Some(pod.resources.clone()),
        security_context: security::container(pod.security_profile),
        termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.into()),
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
    pod: &ValidatedPod,
    policy: &Policy,
    mut c: Container,
    read_only_root: bool,
) -> Container {
    c.resources = Some(validate::resolve_resources(c.resources.as_ref(), policy));
    c.security_context = security::merge_into(pod.security_profile, c.security_context.take());
    c.termination_message_policy
        .get_or_insert_with(|| TERMINATION_MESSAGE_POLICY.into());
    if read_only_root {
        let mut mounts = c.volume_mounts.take().unwrap_or_default();
        add_tmp_mount(&mut mounts);
        c.volume_mounts = Some(mounts);
    }
    c
}

/// Downward API variables first, then the user's (a user variable of the same name wins).
fn env(pod: &ValidatedPod) -> Vec<EnvVar> {
    let user = pod.fields.env.clone().unwrap_or_default();
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
