//! The checks both kinds share, on their common [`PodFields`]: the object's name, label
//! dimensions and annotations, the image, env, resources, the security profile and every
//! container's settings, volumes, and the guardrails on what a pod runs with. A SafeApp
//! and a SafeJob with the same pod fields get the same answers, with the same paths.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Problems, guardrails, image, metadata, resources, security, volumes};
use crate::api::WorkloadKind;
use crate::api::pod::{PodFields, SecurityProfile};
use crate::policy::Policy;

/// The pod of a SafeApp or SafeJob that passed the shared checks, defaults resolved:
/// what the shared builders (`render::pod`, labels, metadata) need.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedPod {
    pub kind: WorkloadKind,
    pub name: String,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub fields: PodFields,
    /// `app.kubernetes.io/version`: the tag, or a short digest, label-safe (None if neither yields one).
    pub version: Option<String>,
    pub security_profile: SecurityProfile,
    pub run_as_user: i64,
    pub run_as_group: i64,
    /// App container resources: the user's, filled in from the policy.
    pub resources: ResourceRequirements,
}

impl ValidatedPod {
    /// `app.kubernetes.io/instance` of everything this object makes.
    pub fn instance(&self) -> String {
        self.kind.instance(&self.name)
    }
}

/// Runs the shared checks, adding problems to `p`; the result is only meaningful when
/// `p` stayed empty.
pub(super) fn check_pod(
    p: &mut Problems,
    kind: WorkloadKind,
    meta: &ObjectMeta,
    fields: &PodFields,
    policy: &Policy,
) -> ValidatedPod {
    let name = metadata::check_object_meta(p, kind, meta);
    metadata::check_spec_metadata(p, fields);
    let version = image::check_image(p, &fields.image);
    image::check_pull_secrets(p, fields);
    if let Some(env) = &fields.env {
        for (i, e) in env.iter().enumerate() {
            if e.name.is_empty() {
                p.add(format!("spec.env[{i}].name"), "required");
            }
        }
    }
    let resources =
        resources::check_resources(p, "spec.resources", fields.resources.as_ref(), policy);
    let security = security::check_security(p, fields, &name, policy);
    volumes::check_volumes(p, fields, security.profile, policy);
    guardrails::check_guardrails(p, meta.namespace.as_deref(), fields, policy);
    ValidatedPod {
        kind,
        name,
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        fields: fields.clone(),
        version,
        security_profile: security.profile,
        run_as_user: security.run_as_user,
        run_as_group: security.run_as_group,
        resources,
    }
}
