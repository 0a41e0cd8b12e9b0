//! The PodMonitor (Prometheus Operator) of an app with `spec.metrics`: its pods, by the
//! app's selector labels, scraped on the metrics port's name, path and interval.

use super::{labels, meta};
use crate::api::monitoring::{PodMetricsEndpoint, PodMonitor, PodMonitorSelector, PodMonitorSpec};
use crate::validate::ValidatedApp;

/// Builds the PodMonitor, or None without `spec.metrics`.
pub fn pod_monitor(app: &ValidatedApp) -> Option<PodMonitor> {
    let m = app.metrics.as_ref()?;
    Some(PodMonitor {
        metadata: meta::child_meta(&app.pod),
        spec: PodMonitorSpec {
            selector: PodMonitorSelector {
                match_labels: Some(labels::selector(&app.pod)),
            },
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                port: Some(m.port_name.clone()),
                path: Some(m.path.clone()),
                interval: m.interval.clone(),
            }],
            // A canary's analysis tells its series from the stable's by `track`.
            pod_target_labels: app
                .canary
                .as_ref()
                .map(|_| vec![super::canary::TRACK_LABEL.to_string()]),
        },
    })
}
