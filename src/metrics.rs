//! Prometheus metrics of the operator. Label values are static strings (kinds, reasons),
//! never object names, so cardinality stays bounded.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// One static label.
pub type Label = [(&'static str, &'static str); 1];

/// The operator's metrics, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    /// `safeapp_reconciles_total`
    pub reconciles: Counter,
    /// `safeapp_reconcile_errors_total{reason}`
    pub reconcile_errors: Family<Label, Counter>,
    /// `safeapp_reconcile_duration_seconds`
    pub reconcile_duration: Histogram,
    /// `safeapp_drift_corrections_total{kind}`
    pub drift_corrections: Family<Label, Counter>,
    /// `safeapp_writes_total{kind}`: applies and deletes of children, status patches.
    pub writes: Family<Label, Counter>,
    /// `safeapp_managed_safeapps`: SafeApps in the controller's cache.
    pub managed: Gauge,
    /// `safeapp_leader`: 1 while this replica holds the lease (or runs without election).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("safeapp");
        let reconciles = Counter::default();
        let reconcile_errors = Family::<Label, Counter>::default();
        let buckets = [
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let reconcile_duration = Histogram::new(buckets);
        let drift_corrections = Family::<Label, Counter>::default();
        let writes = Family::<Label, Counter>::default();
        let managed = Gauge::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "drift_corrections",
            "Children put back after someone changed or deleted them, by kind",
            drift_corrections.clone(),
        );
        registry.register(
            "writes",
            "Writes to the API server, by kind",
            writes.clone(),
        );
        registry.register(
            "managed_safeapps",
            "SafeApps in the controller's cache",
            managed.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            drift_corrections,
            writes,
            managed,
            leader,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Count one drift correction of `kind`.
    pub fn drift(&self, kind: &'static str) {
        self.drift_corrections
            .get_or_create(&[("kind", kind)])
            .inc();
    }

    /// Count one write of `kind`.
    pub fn write(&self, kind: &'static str) {
        self.writes.get_or_create(&[("kind", kind)]).inc();
    }

    /// How many drift corrections of `kind` were counted.
    pub fn drift_count(&self, kind: &'static str) -> u64 {
        self.drift_corrections
            .get_or_create(&[("kind", kind)])
            .get()
    }

    /// How many writes were counted, all kinds together.
    pub fn write_count(&self) -> u64 {
        [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "LimitRange",
            "ResourceQuota",
            "SafeAppStatus",
        ]
        .iter()
        .map(|k| self.writes.get_or_create(&[("kind", *k)]).get())
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Counters show up in the text exposition under their full names and static labels.
    #[test]
    fn exposition_names() {
        let m = Metrics::default();
        m.drift("Deployment");
        m.write("Service");
        m.reconciles.inc();
        let text = m.encode();
        assert!(
            text.contains("safeapp_drift_corrections_total{kind=\"Deployment\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("safeapp_writes_total{kind=\"Service\"} 1"),
            "{text}"
        );
        assert!(text.contains("safeapp_reconciles_total 1"), "{text}");
        assert_eq!(m.drift_count("Deployment"), 1);
        assert_eq!(m.write_count(), 1);
    }
}
