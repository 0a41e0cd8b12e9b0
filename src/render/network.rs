//! The NetworkPolicy: who may call the app (and, when the policy controls egress, whom
//! it may call), from `spec.accessPolicy` and the policy's `networkPolicy` section.
//!
//! - Ingress: each inbound rule's callers to the app's declared ports (a rule's own
//!   ports, or all of `spec.ports`); with `allowSameNamespace`, every pod of the
//!   namespace; with `spec.expose`, the policy's `exposedFrom` namespaces. An app with
//!   no ports accepts nothing. Apps are selected by `app.kubernetes.io/name` (every
//!   SafeApp pod carries it), namespaces by `kubernetes.io/metadata.name`.
//! - Egress (`ingressAndEgress` only): DNS to the cluster DNS pods on port 53 always;
//!   then each outbound rule's apps, namespaces or CIDRs, on its ports (any when none).

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{labels, meta};
use crate::api::v1alpha1::{AccessRule, Protocol};
use crate::policy::{NetworkPolicyMode, Policy};
use crate::validate::{OpenPort, ValidatedApp};

/// Label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The label rules select apps by.
pub const APP_NAME_LABEL: &str = "app.kubernetes.io/name";

fn selector(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        ),
        match_expressions: None,
    })
}

/// The peer a rule names: an app (in this or another namespace), a namespace, a CIDR.
fn peer(rule: &AccessRule) -> NetworkPolicyPeer {
    let namespace = rule
        .namespace
        .as_deref()
        .and_then(|ns| selector(&[(NAMESPACE_NAME_LABEL, ns)]));
    match (&rule.app, &rule.cidr) {
        (Some(app), _) => NetworkPolicyPeer {
            pod_selector: selector(&[(APP_NAME_LABEL, app)]),
            namespace_selector: namespace,
            ..NetworkPolicyPeer::default()
        },
        (None, Some(cidr)) => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        },
        (None, None) => NetworkPolicyPeer {
            namespace_selector: namespace,
            ..NetworkPolicyPeer::default()
        },
    }
}

fn policy_port(port: IntOrString, protocol: Protocol) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(port),
        protocol: Some(protocol.as_str().into()),
        end_port: None,
    }
}

fn open(ports: &[OpenPort]) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|p| policy_port(p.port.clone(), p.protocol))
        .collect()
}

/// Builds the NetworkPolicy; None when the policy turns them off.
pub fn network_policy(app: &ValidatedApp, policy: &Policy) -> Option<NetworkPolicy> {
    let np = &policy.network_policy;
    if np.mode == NetworkPolicyMode::Off {
        return None;
    }
    let access = app.spec.access_policy.clone().unwrap_or_default();
    let traffic = &app.traffic;
    let mut ingress = Vec::new();
    // Nothing listens without declared ports: a rule with no ports would open them all.
    let mut allow = |from: Vec<NetworkPolicyPeer>, ports: &[OpenPort]| {
        if !ports.is_empty() {
            ingress.push(NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(open(ports)),
            });
        }
    };
    for (rule, ports) in access.inbound.iter().flatten().zip(&traffic.inbound_ports) {
        allow(vec![peer(rule)], ports);
    }
    // A stateful app's replicas talk to each other (replication, gossip, quorum) on
    // its ports, whatever the access policy says of other callers.
    if app.spec.stateful.is_some() {
        allow(
            vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(labels::selector(&app.pod)),
                    match_expressions: None,
                }),
                ..NetworkPolicyPeer::default()
            }],
            &traffic.all_ports,
        );
    }
    // The scraper's namespaces, on the metrics port only.
    if let Some(m) = &app.metrics {
        for ns in &np.metrics_from {
            allow(
                vec![NetworkPolicyPeer {
                    namespace_selector: selector(&[(NAMESPACE_NAME_LABEL, ns)]),
                    ..NetworkPolicyPeer::default()
                }],
                &[OpenPort {
                    port: IntOrString::Int(m.port),
                    protocol: Protocol::Tcp,
                }],
            );
        }
    }
    if np.allow_same_namespace {
        allow(
            vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..NetworkPolicyPeer::default()
            }],
            &traffic.all_ports,
        );
    }
    if app.spec.expose.is_some() {
        for ns in &np.exposed_from {
            allow(
                vec![NetworkPolicyPeer {
                    namespace_selector: selector(&[(NAMESPACE_NAME_LABEL, ns)]),
                    ..NetworkPolicyPeer::default()
                }],
                &traffic.all_ports,
            );
        }
    }
    let (policy_types, egress) = match np.mode {
        NetworkPolicyMode::IngressAndEgress => {
            let dns_labels: Vec<(&str, &str)> = np
                .dns_pod_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut egress = vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: selector(&[(NAMESPACE_NAME_LABEL, &np.dns_namespace)]),
                    pod_selector: selector(&dns_labels),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![
                    policy_port(IntOrString::Int(53), Protocol::Udp),
                    policy_port(IntOrString::Int(53), Protocol::Tcp),
                ]),
            }];
            // ...and reach each other: the peers' side of the rule above.
            if app.spec.stateful.is_some() && !traffic.all_ports.is_empty() {
                egress.push(NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(labels::selector(&app.pod)),
                            match_expressions: None,
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(open(&traffic.all_ports)),
                });
            }
            for rule in access.outbound.iter().flatten() {
                let ports: Vec<NetworkPolicyPort> = rule
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| policy_port(p.port.clone(), p.protocol.unwrap_or(Protocol::Tcp)))
                    .collect();
                egress.push(NetworkPolicyEgressRule {
                    to: Some(vec![peer(rule)]),
                    ports: (!ports.is_empty()).then_some(ports),
                });
            }
            (
                vec!["Ingress".to_string(), "Egress".to_string()],
                Some(egress),
            )
        }
        _ => (vec!["Ingress".to_string()], None),
    };
    Some(NetworkPolicy {
        metadata: meta::child_meta(&app.pod),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&app.pod)),
                match_expressions: None,
            }),
            policy_types: Some(policy_types),
            ingress: (!ingress.is_empty()).then_some(ingress),
            egress,
        }),
    })
}
