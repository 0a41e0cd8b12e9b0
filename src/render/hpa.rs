//! The HorizontalPodAutoscaler (autoscaling/v2), when `spec.autoscaling` is set.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, ExternalMetricSource, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::meta;
use crate::validate::ValidatedApp;

/// Scale-down stabilization window added when the user sets none: avoids flapping.
pub const SCALE_DOWN_WINDOW_SECONDS: i32 = 300;

/// Builds the HPA, or None when autoscaling is off.
pub fn hpa(app: &ValidatedApp) -> Option<HorizontalPodAutoscaler> {
    let a = app.autoscaling.as_ref()?;
    let metric = |name: &str, target: i32| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: name.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(target),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    let mut metrics: Vec<MetricSpec> = [("cpu", a.cpu_target), ("memory", a.memory_target)]
        .into_iter()
        .filter_map(|(name, t)| t.map(|t| metric(name, t)))
        .collect();
    // The app's own signals: a target average value per pod.
    metrics.extend(a.custom.iter().map(|m| {
        let identifier = MetricIdentifier {
            name: m.name.clone(),
            selector: m.selector.clone().map(|labels| LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            }),
        };
        let target = MetricTarget {
            type_: "AverageValue".into(),
            average_value: Some(Quantity(m.target_average_value.clone())),
            ..MetricTarget::default()
        };
        if m.external {
            MetricSpec {
                type_: "External".into(),
                external: Some(ExternalMetricSource {
                    metric: identifier,
                    target,
                }),
                ..MetricSpec::default()
            }
        } else {
            MetricSpec {
                type_: "Pods".into(),
                pods: Some(PodsMetricSource {
                    metric: identifier,
                    target,
                }),
                ..MetricSpec::default()
            }
        }
    }));
    let mut behavior = app
        .spec
        .autoscaling
        .as_ref()
        .and_then(|s| s.behavior.clone())
        .unwrap_or_default();
    let down = behavior
        .scale_down
        .get_or_insert_with(HPAScalingRules::default);
    down.stabilization_window_seconds
        .get_or_insert(SCALE_DOWN_WINDOW_SECONDS);
    Some(HorizontalPodAutoscaler {
        metadata: meta::child_meta(&app.pod),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: app.pod.name.clone(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: Some(HorizontalPodAutoscalerBehavior { ..behavior }),
        }),
        status: None,
    })
}
