//! Prometheus metrics of the operator. Label values are static strings (kinds, reasons),
//! never object names, so cardinality stays bounded.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// One static label.
pub type Label = [(&'static str, &'static str); 1];

/// Every value of the `verb` label.
pub const VERBS: &[&str] = &[
    "get", "list", "watch", "create", "patch", "update", "delete", "other",
];
/// Every value of the `kind` label of drift metrics: the kinds the operator writes.
pub const CHILD_KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "Ingress",
    "HTTPRoute",
    "LimitRange",
    "ResourceQuota",
    "CronJob",
    "Job",
];
/// The status writes, counted with the children's.
pub const STATUS_KINDS: &[&str] = &["SafeAppStatus", "SafeJobStatus"];
/// Every value of the `reason` label of reconcile errors (`controller::Error::metric_reason`).
pub const ERROR_REASONS: &[&str] = &[
    "malformed",
    "get",
    "apply",
    "delete",
    "status",
    "list",
    "serialize",
];

/// Every value of the `event` label of `safeapp_canary_events_total`.
pub const CANARY_EVENTS: &[&str] = &[
    "CanaryStarted",
    "CanaryStepPassed",
    "CanaryPromoting",
    "CanaryPromoted",
    "CanaryAborted",
];

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
    /// `safeapp_leader_synced`: 1 while this replica leads with its watches synced (set
    /// when scraped). `safeapp_leader == 1` with this 0 for long is a stuck start-up.
    pub leader_synced: Gauge,
    /// `safeapp_api_requests_total{verb}`: requests to the API server by verb (get,
    /// list, watch, create, patch, delete, other).
    pub api_requests: Family<[(&'static str, &'static str); 1], Counter>,
    /// `safeapp_safeapps{ready}`: SafeApps by their Ready condition (true, false,
    /// unknown), counted from the cache every 15 s.
    pub safeapps: Family<[(&'static str, &'static str); 1], Gauge>,
    /// `safeapp_reconciles_in_flight`: reconciles running now.
    pub in_flight: Gauge,
    /// `safeapp_reconcile_concurrency`: reconciles allowed at once (`--concurrency`).
    pub concurrency: Gauge,
    /// `safeapp_drift_fights_total{kind}`: drift corrected again on an object corrected
    /// less than an hour before (someone or something fights the operator).
    pub drift_fights: Family<Label, Counter>,
    /// `safeapp_process_resident_memory_bytes`: the operator's resident memory.
    pub resident_memory: Gauge,
    /// `safeapp_canary_events_total{event}`: canary releases started, steps passed,
    /// promotions and aborts (`CANARY_EVENTS`).
    pub canary_events: Family<[(&'static str, &'static str); 1], Counter>,
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
        let leader_synced = Gauge::default();
        let api_requests = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let safeapps = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        let in_flight = Gauge::default();
        let concurrency = Gauge::default();
        let drift_fights = Family::<Label, Counter>::default();
        let resident_memory = Gauge::default();
        let canary_events = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API server, by verb",
            api_requests.clone(),
        );
        registry.register(
            "safeapps",
            "SafeApps by their Ready condition",
            safeapps.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now",
            in_flight.clone(),
        );
        registry.register(
            "reconcile_concurrency",
            "Reconciles allowed to run at once",
            concurrency.clone(),
        );
        registry.register(
            "drift_fights",
            "Drift corrected again within an hour on the same object, by kind",
            drift_fights.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the operator process",
            resident_memory.clone(),
        );
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
        registry.register(
            "leader_synced",
            "1 while this replica leads with its watches synced",
            leader_synced.clone(),
        );
        // Every label value exists from the start, at 0: the series are there for
        // dashboards and for rate() before the first event.
        for verb in VERBS {
            let _ = api_requests.get_or_create(&[("verb", verb)]);
        }
        for kind in CHILD_KINDS {
            let _ = drift_corrections.get_or_create(&[("kind", kind)]);
            let _ = drift_fights.get_or_create(&[("kind", kind)]);
        }
        for reason in ERROR_REASONS {
            let _ = reconcile_errors.get_or_create(&[("reason", reason)]);
        }
        for ready in ["true", "false", "unknown"] {
            let _ = safeapps.get_or_create(&[("ready", ready)]);
        }
        for event in CANARY_EVENTS {
            let _ = canary_events.get_or_create(&[("event", event)]);
        }
        registry.register(
            "canary_events",
            "Canary releases started, steps passed, promoted and aborted, by event",
            canary_events.clone(),
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
            leader_synced,
            api_requests,
            safeapps,
            in_flight,
            concurrency,
            drift_fights,
            resident_memory,
            canary_events,
        }
    }
}

/// The verb of a request, as RBAC names it (a GET with `watch=true` is a watch, a GET of
/// a collection a list).
pub fn verb_of(method: &http::Method, path: &str, query: Option<&str>) -> &'static str {
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET => {
            // /api/v1/namespaces/ns/pods -> a collection: an even number of segments
            // after the group/version prefix.
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let prefix = if segments.first() == Some(&"api") {
                2
            } else {
                3
            };
            let rest = &segments[prefix.min(segments.len())..];
            // [namespaces, ns,] resource [, name [, subresource]]
            let rest = match rest {
                ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
                other => other,
            };
            if rest.len() == 1 { "list" } else { "get" }
        }
        http::Method::POST => "create",
        http::Method::PATCH => "patch",
        http::Method::PUT => "update",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// The resident memory of this process in bytes (Linux; 0 elsewhere), from `VmRSS`
/// (in kB, whatever the page size).
pub fn resident_memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
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

    /// Count one request to the API server.
    pub fn request(&self, verb: &'static str) {
        self.api_requests.get_or_create(&[("verb", verb)]).inc();
    }

    /// Count a drift correction that repeats one made less than an hour before.
    /// Counts a canary transition (one of [`CANARY_EVENTS`]).
    pub fn canary(&self, event: &'static str) {
        self.canary_events.get_or_create(&[("event", event)]).inc();
    }

    pub fn drift_fight(&self, kind: &'static str) {
        self.drift_fights.get_or_create(&[("kind", kind)]).inc();
    }

    /// Sets the SafeApps-by-readiness gauges.
    pub fn set_readiness(&self, ready: i64, not_ready: i64, unknown: i64) {
        for (label, n) in [("true", ready), ("false", not_ready), ("unknown", unknown)] {
            self.safeapps.get_or_create(&[("ready", label)]).set(n);
        }
    }

    /// How many drift corrections of `kind` were counted.
    pub fn drift_count(&self, kind: &'static str) -> u64 {
        self.drift_corrections
            .get_or_create(&[("kind", kind)])
            .get()
    }

    /// How many writes were counted, all kinds together.
    pub fn write_count(&self) -> u64 {
        CHILD_KINDS
            .iter()
            .chain(STATUS_KINDS)
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

#[cfg(test)]
mod verb_tests {
    use super::*;

    // Requests are counted by the verb RBAC would name.
    #[test]
    fn verbs() {
        use http::Method;
        assert_eq!(
            verb_of(&Method::GET, "/api/v1/namespaces/a/services/web", None),
            "get"
        );
        assert_eq!(
            verb_of(&Method::GET, "/api/v1/namespaces/a/services", None),
            "list"
        );
        assert_eq!(
            verb_of(&Method::GET, "/api/v1/services", Some("limit=500")),
            "list"
        );
        assert_eq!(
            verb_of(
                &Method::GET,
                "/apis/apps/v1/deployments",
                Some("watch=true&resourceVersion=1")
            ),
            "watch"
        );
        assert_eq!(
            verb_of(
                &Method::GET,
                "/apis/apps/v1/namespaces/a/deployments/web",
                None
            ),
            "get"
        );
        assert_eq!(
            verb_of(
                &Method::PATCH,
                "/apis/apps/v1/namespaces/a/deployments/web",
                None
            ),
            "patch"
        );
        assert_eq!(
            verb_of(
                &Method::POST,
                "/apis/events.k8s.io/v1/namespaces/a/events",
                None
            ),
            "create"
        );
        assert_eq!(
            verb_of(&Method::DELETE, "/api/v1/namespaces/a/services/web", None),
            "delete"
        );
        assert_eq!(
            verb_of(
                &Method::GET,
                "/apis/apps/v1/namespaces/a/deployments/web/status",
                None
            ),
            "get"
        );
        assert_eq!(verb_of(&Method::GET, "/api/v1/namespaces", None), "list");
        assert_eq!(verb_of(&Method::GET, "/api/v1/namespaces/a", None), "get");
        assert!(resident_memory_bytes() > 0);
    }
}

/// A tower layer that counts every request of the client it wraps, by verb.
#[derive(Clone)]
pub struct CountRequestsLayer(pub std::sync::Arc<Metrics>);

impl<S> tower::Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service of [`CountRequestsLayer`].
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    metrics: std::sync::Arc<Metrics>,
}

impl<S, B> tower::Service<http::Request<B>> for CountRequests<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let uri = request.uri();
        self.metrics
            .request(verb_of(request.method(), uri.path(), uri.query()));
        self.inner.call(request)
    }
}
