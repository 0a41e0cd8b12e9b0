//! The part of the Prometheus Operator's `PodMonitor` (monitoring.coreos.com/v1) the
//! operator writes: which pods (by the app's selector labels) and which endpoint (a
//! named container port, a path, an interval).
//!
//! Not the `prometheus-operator` / `kube-custom-resources-rs` crates: they are built on
//! other kube majors, which would put a second kube in the tree. These types hold only
//! what SafeApp renders; fields other managers add are ignored when read, and
//! server-side apply leaves them alone.
//!
//! A PodMonitor rather than a ServiceMonitor: it selects the pods themselves, so every
//! replica is scraped whether or not the app has a Service (a queue worker has none) and
//! without putting the metrics port on the Service clients use.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Spec of a PodMonitor, as SafeApp renders it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PodMonitor",
    plural = "podmonitors",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    /// The pods to scrape.
    pub selector: PodMonitorSelector,
    /// How to scrape them.
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
    /// Pod labels copied onto every scraped series (`track`, for a canary's analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_target_labels: Option<Vec<String>>,
}

/// A label selector (match labels only).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// One scrape endpoint of the selected pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    /// The container port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}
