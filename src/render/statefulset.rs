//! The StatefulSet of a stateful SafeApp (`spec.stateful`): the same pod as a
//! Deployment's (`deployment::pod_template`: probes, preStop, grace, security, spread,
//! labels), each replica with its own claims mounted in the app container, and the
//! headless Service that gives every pod a stable DNS name for its peers.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServicePort, ServiceSpec,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::{DEFAULT_MIN_READY_SECONDS, DEFAULT_REVISION_HISTORY_LIMIT, pod_template};
use super::{labels, meta, pod};
use crate::api::v1alpha1::{AccessMode, PodManagementPolicy, RetentionPolicy, Stateful};
use crate::policy::Policy;
use crate::validate::ValidatedApp;

/// The headless Service's name: `<app>-headless` (pods are `<app>-0.<app>-headless`).
pub fn headless_name(app: &str) -> String {
    format!("{app}-headless")
}

/// Builds the StatefulSet (its spec is `stateful`).
pub fn stateful_set(app: &ValidatedApp, stateful: &Stateful, policy: &Policy) -> StatefulSet {
    let rollout = app.spec.rollout.clone().unwrap_or_default();
    let mut template = pod_template(app, policy);
    // Spread per revision as a Deployment's pods are (by pod-template-hash): a
    // StatefulSet's pods carry controller-revision-hash instead.
    for constraint in template
        .spec
        .iter_mut()
        .flat_map(|s| s.topology_spread_constraints.iter_mut().flatten())
    {
        if let Some(keys) = constraint.match_label_keys.as_mut() {
            for key in keys.iter_mut().filter(|k| *k == "pod-template-hash") {
                *key = "controller-revision-hash".into();
            }
        }
    }
    let claims = stateful.volume_claim_templates.clone().unwrap_or_default();
    if let Some(c) = pod::app_container_mut(&mut template) {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        mounts.extend(claims.iter().map(|claim| VolumeMount {
            name: claim.name.clone(),
            mount_path: claim.mount_path.clone(),
            sub_path: claim.sub_path.clone(),
            ..VolumeMount::default()
        }));
    }
    let retention = stateful.retention.clone().unwrap_or_default();
    let policy_of =
        |p: Option<RetentionPolicy>| p.unwrap_or(RetentionPolicy::Retain).as_str().to_string();
    StatefulSet {
        metadata: meta::child_meta(&app.pod),
        spec: Some(StatefulSetSpec {
            replicas: app.replicas,
            selector: LabelSelector {
                match_labels: Some(labels::selector(&app.pod)),
                match_expressions: None,
            },
            service_name: Some(headless_name(&app.pod.name)),
            pod_management_policy: Some(
                stateful
                    .pod_management_policy
                    .unwrap_or(PodManagementPolicy::OrderedReady)
                    .as_str()
                    .into(),
            ),
            // One pod at a time. A server without the MaxUnavailableStatefulSet gate
            // drops maxUnavailable (1 is its behaviour anyway); the controller learns
            // that from its answer and leaves the field out (`ServerFields`).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(stateful.partition.unwrap_or(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            min_ready_seconds: Some(
                rollout
                    .min_ready_seconds
                    .unwrap_or(DEFAULT_MIN_READY_SECONDS),
            ),
            revision_history_limit: Some(
                rollout
                    .revision_history_limit
                    .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT),
            ),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(policy_of(retention.when_deleted)),
                    when_scaled: Some(policy_of(retention.when_scaled)),
                },
            ),
            volume_claim_templates: (!claims.is_empty()).then(|| {
                claims
                    .iter()
                    .map(|claim| PersistentVolumeClaim {
                        metadata: ObjectMeta {
                            name: Some(claim.name.clone()),
                            labels: Some(labels::selector(&app.pod)),
                            ..ObjectMeta::default()
                        },
                        spec: Some(PersistentVolumeClaimSpec {
                            access_modes: Some(
                                claim
                                    .access_modes
                                    .clone()
                                    .unwrap_or_else(|| vec![AccessMode::ReadWriteOnce])
                                    .iter()
                                    .map(|m| m.as_str().to_string())
                                    .collect(),
                            ),
                            storage_class_name: claim.storage_class_name.clone(),
                            resources: Some(VolumeResourceRequirements {
                                requests: Some(BTreeMap::from([(
                                    "storage".to_string(),
                                    Quantity(claim.size.clone()),
                                )])),
                                limits: None,
                            }),
                            ..PersistentVolumeClaimSpec::default()
                        }),
                        status: None,
                    })
                    .collect()
            }),
            template,
            ordinals: None,
        }),
        status: None,
    }
}

/// The headless Service (`clusterIP: None`) every pod of a stateful app gets its DNS
/// name from, ready or not (`publishNotReadyAddresses`: peers find each other while
/// they start, as a cluster forming needs). Clients use the ordinary Service.
pub fn headless_service(app: &ValidatedApp) -> Option<Service> {
    app.spec.stateful.as_ref()?;
    let mut metadata = meta::child_meta(&app.pod);
    metadata.name = Some(headless_name(&app.pod.name));
    let ports: Vec<ServicePort> = app
        .spec
        .ports
        .iter()
        .flatten()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            port: p.port,
            target_port: Some(IntOrString::String(p.name.clone())),
            protocol: Some(p.protocol.map_or("TCP", |x| x.as_str()).into()),
            ..ServicePort::default()
        })
        .collect();
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels::selector(&app.pod)),
            // An empty list is dropped by the API server (omitempty): left out.
            ports: (!ports.is_empty()).then_some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}
