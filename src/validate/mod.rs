//! Validation, the first step of the pipeline: `&SafeApp` + policy → [`ValidatedApp`], or
//! every problem at once, each with its field path, so a user fixes a file in one pass.
//!
//! The CRD's CEL rules catch some of these at `kubectl apply` time; this module checks
//! all of them again (objects may predate a rule, and `render` has no API server) plus
//! what CEL cannot express: quantities, hostPath volumes, name lengths, label syntax.
//! Pure: no client, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Probe, ResourceRequirements, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::v1alpha1::{PreStopMode, SecurityProfile};
use crate::api::{SafeApp, SafeAppSpec};
use crate::names;
use crate::policy::Policy;
use crate::quantity;

/// Default replicas when not autoscaled.
pub const DEFAULT_REPLICAS: i32 = 2;
/// Default HPA floor (lowered to maxReplicas when that is smaller).
pub const DEFAULT_MIN_REPLICAS: i32 = 2;
/// Default HPA CPU target when no target is given.
pub const DEFAULT_CPU_TARGET: i32 = 70;
/// Name of the writable `/tmp` volume added under a read-only root filesystem.
pub const TMP_VOLUME: &str = "safeapp-tmp";
/// Label keys the operator sets itself; `spec.labels` may not override them.
pub const RESERVED_LABELS: &[&str] = &[
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "tier",
    "environment",
    "track",
    "tenant",
    "shard",
];
/// Annotation prefix the operator owns.
pub const RESERVED_ANNOTATION_PREFIX: &str = "safeapp.dev/";

/// One problem, with the path of the field that causes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Where the readiness probe comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadinessSource {
    /// `spec.probes.readiness`, used as given.
    Explicit(Probe),
    /// `spec.healthCheck.path` on a port.
    Http { path: String, port: IntOrString },
    /// A TCP connect on a port (healthCheck without path, or the first port).
    Tcp { port: IntOrString },
    /// Only a liveness probe was given: readiness reuses its handler.
    FromLiveness(Probe),
}

/// A SafeApp that passed validation, with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedApp {
    pub name: String,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub spec: SafeAppSpec,
    /// `app.kubernetes.io/version`: the tag, or a short digest, label-safe (None if neither yields one).
    pub version: Option<String>,
    /// Replicas for the Deployment; None when the HPA owns them.
    pub replicas: Option<i32>,
    pub autoscaling: Option<ResolvedAutoscaling>,
    pub pre_stop_sleep_seconds: i64,
    pub pre_stop_mode: PreStopMode,
    pub termination_grace_period_seconds: i64,
    pub security_profile: SecurityProfile,
    pub run_as_user: i64,
    pub run_as_group: i64,
    /// App container resources: the user's, filled in from the policy.
    pub resources: ResourceRequirements,
    pub readiness: ReadinessSource,
    pub service_enabled: bool,
}

/// Autoscaling with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedAutoscaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_target: Option<i32>,
    pub memory_target: Option<i32>,
}

/// Collects problems with their paths.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
    fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(e) = result {
            self.add(path, e);
        }
    }
}

/// Validates a SafeApp against the contract and the policy; returns every problem.
pub fn validate(app: &SafeApp, policy: &Policy) -> Result<ValidatedApp, Vec<FieldError>> {
    let mut p = Problems::default();
    let spec = &app.spec;

    let name = app.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        p.add("metadata.name", "required");
    } else {
        p.check("metadata.name", names::check_dns1035_label(&name).map_err(|e| {
            format!("{e}; it names the Deployment, Service, PodDisruptionBudget, HPA and container, and labels (63 characters at most)")
        }));
    }
    if let Some(ns) = &app.metadata.namespace {
        p.check("metadata.namespace", names::check_dns1123_label(ns));
    }

    let version = check_image(&mut p, &spec.image);
    if let Some(secrets) = &spec.image_pull_secrets {
        for (i, s) in secrets.iter().enumerate() {
            p.check(
                format!("spec.imagePullSecrets[{i}]"),
                names::check_dns1123_subdomain(s),
            );
        }
    }
    if let Some(env) = &spec.env {
        for (i, e) in env.iter().enumerate() {
            if e.name.is_empty() {
                p.add(format!("spec.env[{i}].name"), "required");
            }
        }
    }
    if let Some(r) = spec.replicas
        && r < 0
    {
        p.add("spec.replicas", format!("{r} is negative"));
    }

    let port_names = check_ports(&mut p, spec);
    let has_ports = !port_names.is_empty();
    let service_enabled = match spec.service.as_ref().and_then(|s| s.enabled) {
        Some(true) if !has_ports => {
            p.add(
                "spec.service.enabled",
                "a Service needs at least one entry in spec.ports",
            );
            false
        }
        Some(enabled) => enabled && has_ports,
        None => has_ports,
    };
    if let Some(svc) = &spec.service {
        check_annotation_keys(
            &mut p,
            "spec.service.annotations",
            svc.annotations.as_ref(),
            false,
        );
    }

    let readiness = check_probes(&mut p, spec, &port_names);

    let resources = check_resources(&mut p, "spec.resources", spec.resources.as_ref(), policy);

    // Shutdown: the grace period must outlast the preStop pause.
    let sd = spec.shutdown.clone().unwrap_or_default();
    let sleep = sd
        .pre_stop_sleep_seconds
        .unwrap_or(policy.defaults.pre_stop_sleep_seconds);
    let grace = sd
        .termination_grace_period_seconds
        .unwrap_or(policy.defaults.termination_grace_period_seconds);
    if sleep < 0 {
        p.add(
            "spec.shutdown.preStopSleepSeconds",
            format!("{sleep} is negative"),
        );
    }
    if grace <= sleep {
        let origin = if sd.termination_grace_period_seconds.is_some() {
            ""
        } else {
            " (the default)"
        };
        p.add(
            "spec.shutdown.terminationGracePeriodSeconds",
            format!("{grace}{origin} must be greater than preStopSleepSeconds {sleep}, or SIGKILL cuts the drain short"),
        );
    }

    check_rollout(&mut p, spec);
    let autoscaling = check_autoscaling(&mut p, spec);
    let replicas = if autoscaling.is_some() {
        None
    } else {
        Some(spec.replicas.unwrap_or(DEFAULT_REPLICAS))
    };
    let floor = autoscaling
        .as_ref()
        .map(|a| a.min_replicas)
        .or(replicas)
        .unwrap_or(DEFAULT_REPLICAS);
    check_disruption_budget(&mut p, spec, floor);

    // Label dimensions.
    let dims = [
        ("spec.tier", &spec.tier),
        ("spec.environment", &spec.environment),
        ("spec.track", &spec.track),
        ("spec.tenant", &spec.tenant),
        ("spec.shard", &spec.shard),
        ("spec.component", &spec.component),
        ("spec.partOf", &spec.part_of),
    ];
    for (path, value) in dims {
        if let Some(v) = value {
            p.check(path, names::check_label_value(v));
        }
    }
    if let Some(labels) = &spec.labels {
        for (k, v) in labels {
            let path = format!("spec.labels[{k}]");
            p.check(&path, names::check_qualified_name(k));
            p.check(&path, names::check_label_value(v));
            if RESERVED_LABELS.contains(&k.as_str()) {
                p.add(
                    &path,
                    format!("{k} is set by the operator; use the matching spec field instead"),
                );
            }
        }
    }
    check_annotation_keys(&mut p, "spec.annotations", spec.annotations.as_ref(), true);
    if let Some(deps) = &spec.depends_on {
        for (i, d) in deps.iter().enumerate() {
            p.check(
                format!("spec.dependsOn[{i}]"),
                names::check_dns1123_subdomain(d),
            );
        }
    }

    let security_profile = spec
        .security_profile
        .unwrap_or(policy.defaults.security_profile);
    let run_as_user = spec.run_as_user.unwrap_or(policy.defaults.run_as_user);
    let run_as_group = spec.run_as_group.unwrap_or(policy.defaults.run_as_group);
    for (path, id) in [
        ("spec.runAsUser", run_as_user),
        ("spec.runAsGroup", run_as_group),
    ] {
        if id < 0 {
            p.add(path, format!("{id} is negative"));
        } else if id == 0
            && security_profile == SecurityProfile::Restricted
            && path == "spec.runAsUser"
        {
            p.add(path, "0 is root; the restricted profile runs as a non-root user (10000 or more is advised)");
        }
    }

    check_volumes(&mut p, spec, security_profile);
    if let Some(init) = &spec.init_containers {
        check_init_containers(&mut p, init, &name, security_profile, policy);
    }
    if let Some(sa) = &spec.service_account_name {
        p.check(
            "spec.serviceAccountName",
            names::check_dns1123_subdomain(sa),
        );
    }
    if let Some(pc) = &spec.priority_class_name {
        p.check("spec.priorityClassName", names::check_dns1123_subdomain(pc));
    }

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(ValidatedApp {
        name,
        namespace: app.metadata.namespace.clone(),
        uid: app.metadata.uid.clone(),
        spec: spec.clone(),
        version,
        replicas,
        autoscaling,
        pre_stop_sleep_seconds: sleep,
        pre_stop_mode: sd.pre_stop_mode.unwrap_or(PreStopMode::Sleep),
        termination_grace_period_seconds: grace,
        security_profile,
        run_as_user,
        run_as_group,
        resources,
        // check_probes only returns None after recording a problem.
        readiness: readiness.unwrap_or(ReadinessSource::Tcp {
            port: IntOrString::Int(0),
        }),
        service_enabled,
    })
}

/// Checks that the image is pinned; returns the version label it yields.
fn check_image(p: &mut Problems, image: &str) -> Option<String> {
    const PATH: &str = "spec.image";
    if image.is_empty() {
        p.add(PATH, "required");
        return None;
    }
    if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add(PATH, format!("{image:?} is not an image reference"));
        return None;
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name_tag.rsplit('/').next().unwrap_or(name_tag);
    let tag = last.split_once(':').map(|(_, t)| t);
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            p.add(
                PATH,
                format!("{image:?} has a malformed digest (expected @sha256:<64 hex>)"),
            );
            return None;
        }
    }
    if let Some(t) = tag {
        let valid = !t.is_empty()
            && t.len() <= 128
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.starts_with('_'))
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            p.add(PATH, format!("{image:?} has an invalid tag {t:?}"));
            return None;
        }
        if t == "latest" && digest.is_none() {
            p.add(
                PATH,
                "the tag 'latest' is not a pinned version; use a version tag or a digest",
            );
            return None;
        }
    }
    match (tag, digest) {
        (Some(t), _) => Some(names::sanitize_label_value(t)).filter(|v| !v.is_empty()),
        (None, Some(d)) => {
            let (alg, hex) = d.split_once(':').unwrap_or(("sha256", d));
            Some(names::sanitize_label_value(&format!(
                "{alg}-{}",
                &hex[..hex.len().min(12)]
            )))
        }
        (None, None) => {
            p.add(
                PATH,
                format!(
                    "{image:?} has no tag or digest; pin a version (name:1.2.3 or name@sha256:...)"
                ),
            );
            None
        }
    }
}

/// Checks `spec.ports`; returns the declared port names, in order.
fn check_ports(p: &mut Problems, spec: &SafeAppSpec) -> Vec<String> {
    let Some(ports) = &spec.ports else {
        return Vec::new();
    };
    let mut names_seen = BTreeSet::new();
    let mut container = BTreeSet::new();
    let mut service = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        p.check(format!("{path}.name"), names::check_port_name(&port.name));
        if !names_seen.insert(port.name.clone()) {
            p.add(
                format!("{path}.name"),
                format!("duplicate port name {:?}", port.name),
            );
        }
        let proto = port.protocol.map(|x| x.as_str()).unwrap_or("TCP");
        if !(1..=65535).contains(&port.port) {
            p.add(
                format!("{path}.port"),
                format!("{} is outside 1-65535", port.port),
            );
        } else if !container.insert((port.port, proto)) {
            p.add(
                format!("{path}.port"),
                format!("duplicate container port {}/{proto}", port.port),
            );
        }
        let sp = port.service_port.unwrap_or(port.port);
        if !(1..=65535).contains(&sp) {
            p.add(
                format!("{path}.servicePort"),
                format!("{sp} is outside 1-65535"),
            );
        } else if !service.insert((sp, proto)) {
            p.add(
                format!("{path}.servicePort"),
                format!("duplicate service port {sp}/{proto}"),
            );
        }
    }
    ports.iter().map(|x| x.name.clone()).collect()
}

/// Checks probes and the healthCheck shortcut; returns the readiness source.
fn check_probes(
    p: &mut Problems,
    spec: &SafeAppSpec,
    port_names: &[String],
) -> Option<ReadinessSource> {
    let probes = spec.probes.clone().unwrap_or_default();
    let check_port_ref = |p: &mut Problems, path: &str, port: &IntOrString| match port {
        IntOrString::String(n) if !port_names.contains(n) => {
            p.add(path, format!("no port named {n:?} in spec.ports"));
        }
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            p.add(path, format!("{n} is outside 1-65535"));
        }
        _ => {}
    };
    for (field, probe) in [
        ("readiness", &probes.readiness),
        ("liveness", &probes.liveness),
        ("startup", &probes.startup),
    ] {
        let Some(probe) = probe else { continue };
        let path = format!("spec.probes.{field}");
        let handlers = [
            probe.exec.is_some(),
            probe.http_get.is_some(),
            probe.tcp_socket.is_some(),
            probe.grpc.is_some(),
        ];
        if handlers.iter().filter(|h| **h).count() != 1 {
            p.add(&path, "needs exactly one of exec, httpGet, tcpSocket, grpc");
        }
        if let Some(h) = &probe.http_get {
            check_port_ref(p, &format!("{path}.httpGet.port"), &h.port);
        }
        if let Some(t) = &probe.tcp_socket {
            check_port_ref(p, &format!("{path}.tcpSocket.port"), &t.port);
        }
        if let Some(e) = &probe.exec
            && e.command.as_ref().is_none_or(|c| c.is_empty())
        {
            p.add(format!("{path}.exec.command"), "required");
        }
        if field != "readiness" && probe.success_threshold.is_some_and(|s| s != 1) {
            p.add(
                format!("{path}.successThreshold"),
                "must be 1 for liveness and startup probes",
            );
        }
        for (name, v) in [
            ("initialDelaySeconds", probe.initial_delay_seconds),
            ("periodSeconds", probe.period_seconds),
            ("timeoutSeconds", probe.timeout_seconds),
            ("failureThreshold", probe.failure_threshold),
            ("successThreshold", probe.success_threshold),
        ] {
            if v.is_some_and(|v| v < 0 || (v == 0 && name != "initialDelaySeconds")) {
                p.add(format!("{path}.{name}"), "must be positive");
            }
        }
    }

    let hc_port = match &spec.health_check {
        Some(hc) => {
            if let Some(path) = &hc.path
                && !path.starts_with('/')
            {
                p.add(
                    "spec.healthCheck.path",
                    format!("{path:?} must start with '/'"),
                );
            }
            match &hc.port {
                Some(port) => {
                    check_port_ref(p, "spec.healthCheck.port", port);
                    Some(port.clone())
                }
                None => match port_names.first() {
                    Some(first) => Some(IntOrString::String(first.clone())),
                    None => {
                        p.add(
                            "spec.healthCheck.port",
                            "no port to probe; set it or declare spec.ports",
                        );
                        None
                    }
                },
            }
        }
        None => None,
    };

    if let Some(r) = probes.readiness {
        return Some(ReadinessSource::Explicit(r));
    }
    if let (Some(hc), Some(port)) = (&spec.health_check, hc_port) {
        return Some(match &hc.path {
            Some(path) => ReadinessSource::Http {
                path: path.clone(),
                port,
            },
            None => ReadinessSource::Tcp { port },
        });
    }
    if spec.health_check.is_some() {
        return None; // the missing port was reported above
    }
    if let Some(first) = port_names.first() {
        return Some(ReadinessSource::Tcp {
            port: IntOrString::String(first.clone()),
        });
    }
    if let Some(l) = probes.liveness {
        return Some(ReadinessSource::FromLiveness(l));
    }
    p.add(
        "spec.probes",
        "nothing tells Kubernetes when the app is ready: declare spec.ports, spec.healthCheck or spec.probes.readiness",
    );
    None
}

/// Checks user quantities (they must parse, be non-negative, requests within limits),
/// then fills the rest from the policy with [`resolve_resources`].
fn check_resources(
    p: &mut Problems,
    path: &str,
    user: Option<&ResourceRequirements>,
    policy: &Policy,
) -> ResourceRequirements {
    let empty = BTreeMap::new();
    let user_req = user.and_then(|r| r.requests.as_ref()).unwrap_or(&empty);
    let user_lim = user.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let mut ok = true;
    for (section, list) in [("requests", user_req), ("limits", user_lim)] {
        for (key, q) in list {
            let qpath = format!("{path}.{section}.{key}");
            match quantity::parse(&q.0) {
                Ok(v) if v.0 < 0.0 => {
                    p.add(qpath, format!("{:?} is negative", q.0));
                    ok = false;
                }
                Ok(_) => {}
                Err(e) => {
                    p.add(qpath, e);
                    ok = false;
                }
            }
        }
    }
    if let Some(claims) = user.and_then(|r| r.claims.as_ref())
        && !claims.is_empty()
    {
        p.add(
            format!("{path}.claims"),
            "resource claims are not supported",
        );
    }
    if !ok {
        return ResourceRequirements::default();
    }
    for (key, req) in user_req {
        if let Some(lim) = user_lim.get(key)
            && parse_or_zero(req).cmp_value(&parse_or_zero(lim)).is_gt()
        {
            p.add(
                format!("{path}.requests.{key}"),
                format!("{} exceeds the limit {}", req.0, lim.0),
            );
        }
    }
    resolve_resources(user, policy)
}

/// Fills container resources from the policy: every container gets cpu and memory
/// requests and limits. A user request above a default limit raises that limit to the
/// request (and a user limit below a default request lowers the request), so the user's
/// value always wins and the result stays consistent. Quantities must already be valid.
pub fn resolve_resources(
    user: Option<&ResourceRequirements>,
    policy: &Policy,
) -> ResourceRequirements {
    let empty = BTreeMap::new();
    let user_req = user.and_then(|r| r.requests.as_ref()).unwrap_or(&empty);
    let user_lim = user.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    let mut requests = user_req.clone();
    let mut limits = user_lim.clone();
    let d = &policy.defaults.resources;
    for key in ["cpu", "memory"] {
        match (user_req.get(key), user_lim.get(key)) {
            (Some(_), Some(_)) => {}
            (Some(req), None) => {
                let def = d.limits.get(key).cloned().unwrap_or_else(|| req.clone());
                limits.insert(key.into(), max_q(req, &def));
            }
            (None, Some(lim)) => {
                let def = d.requests.get(key).cloned().unwrap_or_else(|| lim.clone());
                requests.insert(key.into(), min_q(lim, &def));
            }
            (None, None) => {
                if let Some(v) = d.requests.get(key) {
                    requests.insert(key.into(), v.clone());
                }
                if let Some(v) = d.limits.get(key) {
                    limits.insert(key.into(), v.clone());
                }
            }
        }
    }
    ResourceRequirements {
        claims: None,
        limits: Some(limits),
        requests: Some(requests),
    }
}

fn parse_or_zero(q: &Quantity) -> quantity::ParsedQuantity {
    quantity::parse(&q.0).unwrap_or(quantity::ParsedQuantity(0.0))
}

fn max_q(a: &Quantity, b: &Quantity) -> Quantity {
    if parse_or_zero(a).cmp_value(&parse_or_zero(b)).is_ge() {
        a.clone()
    } else {
        b.clone()
    }
}

fn min_q(a: &Quantity, b: &Quantity) -> Quantity {
    if parse_or_zero(a).cmp_value(&parse_or_zero(b)).is_le() {
        a.clone()
    } else {
        b.clone()
    }
}

/// Int or percent ("25%"); returns (value, is_percent).
fn int_or_percent(v: &IntOrString) -> Result<(i64, bool), String> {
    match v {
        IntOrString::Int(n) if *n < 0 => Err(format!("{n} is negative")),
        IntOrString::Int(n) => Ok((i64::from(*n), false)),
        IntOrString::String(s) => {
            let num = s
                .strip_suffix('%')
                .ok_or_else(|| format!("{s:?} must be a number or a percentage like \"25%\""))?;
            let n: i64 = num
                .parse()
                .map_err(|_| format!("{s:?} must be a number or a percentage like \"25%\""))?;
            if !(0..=100).contains(&n) {
                return Err(format!("{s:?} must be between 0% and 100%"));
            }
            Ok((n, true))
        }
    }
}

fn check_rollout(p: &mut Problems, spec: &SafeAppSpec) {
    let Some(r) = &spec.rollout else { return };
    let surge = r.max_surge.as_ref().map(int_or_percent);
    let unavailable = r.max_unavailable.as_ref().map(int_or_percent);
    if let Some(Err(e)) = &surge {
        p.add("spec.rollout.maxSurge", e.clone());
    }
    if let Some(Err(e)) = &unavailable {
        p.add("spec.rollout.maxUnavailable", e.clone());
    }
    let surge_zero = matches!(surge, Some(Ok((0, _))));
    let unavailable_zero = matches!(unavailable, None | Some(Ok((0, _))));
    if surge_zero && unavailable_zero {
        p.add(
            "spec.rollout.maxSurge",
            "maxSurge and maxUnavailable are both zero (maxUnavailable defaults to 0): a rollout could never progress",
        );
    }
    let min_ready = r.min_ready_seconds.unwrap_or(5);
    let deadline = r.progress_deadline_seconds.unwrap_or(600);
    if min_ready < 0 {
        p.add(
            "spec.rollout.minReadySeconds",
            format!("{min_ready} is negative"),
        );
    }
    if deadline <= min_ready {
        p.add(
            "spec.rollout.progressDeadlineSeconds",
            format!("{deadline} must be greater than minReadySeconds {min_ready}"),
        );
    }
    if let Some(h) = r.revision_history_limit
        && h < 0
    {
        p.add(
            "spec.rollout.revisionHistoryLimit",
            format!("{h} is negative"),
        );
    }
}

fn check_autoscaling(p: &mut Problems, spec: &SafeAppSpec) -> Option<ResolvedAutoscaling> {
    let a = spec.autoscaling.as_ref()?;
    if a.max_replicas < 1 {
        p.add(
            "spec.autoscaling.maxReplicas",
            format!("{} must be at least 1", a.max_replicas),
        );
    }
    let min = a
        .min_replicas
        .unwrap_or(DEFAULT_MIN_REPLICAS.min(a.max_replicas.max(1)));
    if min < 1 {
        p.add(
            "spec.autoscaling.minReplicas",
            format!("{min} must be at least 1"),
        );
    }
    if a.min_replicas.is_some() && min > a.max_replicas {
        p.add(
            "spec.autoscaling.minReplicas",
            format!("{min} is greater than maxReplicas {}", a.max_replicas),
        );
    }
    for (path, t) in [
        (
            "spec.autoscaling.targetCPUUtilizationPercentage",
            a.target_cpu_utilization_percentage,
        ),
        (
            "spec.autoscaling.targetMemoryUtilizationPercentage",
            a.target_memory_utilization_percentage,
        ),
    ] {
        if t.is_some_and(|t| t < 1) {
            p.add(path, "must be at least 1");
        }
    }
    let (cpu, mem) = match (
        a.target_cpu_utilization_percentage,
        a.target_memory_utilization_percentage,
    ) {
        (None, None) => (Some(DEFAULT_CPU_TARGET), None),
        other => other,
    };
    Some(ResolvedAutoscaling {
        min_replicas: min,
        max_replicas: a.max_replicas,
        cpu_target: cpu,
        memory_target: mem,
    })
}

/// A PDB that allows no voluntary eviction blocks every node drain: refuse it.
fn check_disruption_budget(p: &mut Problems, spec: &SafeAppSpec, replicas: i32) {
    let Some(b) = &spec.disruption_budget else {
        return;
    };
    if b.min_available.is_some() && b.max_unavailable.is_some() {
        p.add(
            "spec.disruptionBudget",
            "set minAvailable or maxUnavailable, not both",
        );
        return;
    }
    if let Some(v) = &b.max_unavailable {
        match int_or_percent(v) {
            Err(e) => p.add("spec.disruptionBudget.maxUnavailable", e),
            Ok((0, _)) => p.add(
                "spec.disruptionBudget.maxUnavailable",
                "0 allows no eviction and blocks every node drain; use at least 1",
            ),
            Ok(_) => {}
        }
    }
    if let Some(v) = &b.min_available {
        match int_or_percent(v) {
            Err(e) => p.add("spec.disruptionBudget.minAvailable", e),
            Ok((100, true)) => p.add(
                "spec.disruptionBudget.minAvailable",
                "100% allows no eviction and blocks every node drain",
            ),
            Ok((n, false)) if n >= i64::from(replicas) && replicas > 0 => p.add(
                "spec.disruptionBudget.minAvailable",
                format!(
                    "{n} is not below the replica count {replicas}: it blocks every node drain"
                ),
            ),
            Ok(_) => {}
        }
    }
}

fn check_annotation_keys(
    p: &mut Problems,
    path: &str,
    annotations: Option<&BTreeMap<String, String>>,
    reserve_prefix: bool,
) {
    let Some(map) = annotations else { return };
    for k in map.keys() {
        let kpath = format!("{path}[{k}]");
        p.check(&kpath, names::check_qualified_name(k));
        if reserve_prefix && k.starts_with(RESERVED_ANNOTATION_PREFIX) {
            p.add(
                &kpath,
                format!("the {RESERVED_ANNOTATION_PREFIX} prefix is the operator's; use spec.owner or spec.dependsOn"),
            );
        }
    }
}

fn check_volumes(p: &mut Problems, spec: &SafeAppSpec, profile: SecurityProfile) {
    let mut seen = BTreeSet::new();
    if let Some(volumes) = &spec.volumes {
        for (i, v) in volumes.iter().enumerate() {
            let path = format!("spec.volumes[{i}]");
            p.check(format!("{path}.name"), names::check_dns1123_label(&v.name));
            if !seen.insert(v.name.clone()) {
                p.add(
                    format!("{path}.name"),
                    format!("duplicate volume name {:?}", v.name),
                );
            }
            if v.name == TMP_VOLUME {
                p.add(
                    format!("{path}.name"),
                    format!("{TMP_VOLUME:?} is reserved for the operator's /tmp volume"),
                );
            }
            if v.host_path.is_some() {
                p.add(
                    format!("{path}.hostPath"),
                    "hostPath volumes are not allowed: a SafeApp may not touch the node's disk",
                );
            }
        }
    }
    if let Some(mounts) = &spec.volume_mounts {
        for (i, m) in mounts.iter().enumerate() {
            let allowed_tmp = m.name == TMP_VOLUME && profile == SecurityProfile::Restricted;
            if !seen.contains(&m.name) && !allowed_tmp {
                p.add(
                    format!("spec.volumeMounts[{i}].name"),
                    format!("no volume named {:?} in spec.volumes", m.name),
                );
            }
        }
    }
}

fn check_init_containers(
    p: &mut Problems,
    init: &[Container],
    app_name: &str,
    profile: SecurityProfile,
    policy: &Policy,
) {
    let mut seen = BTreeSet::new();
    for (i, c) in init.iter().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        p.check(format!("{path}.name"), names::check_dns1123_label(&c.name));
        if c.name == app_name || !seen.insert(c.name.clone()) {
            p.add(
                format!("{path}.name"),
                format!("duplicate container name {:?}", c.name),
            );
        }
        if c.image.as_deref().is_none_or(str::is_empty) {
            p.add(format!("{path}.image"), "required");
        }
        check_resources(
            p,
            &format!("{path}.resources"),
            c.resources.as_ref(),
            policy,
        );
        if profile != SecurityProfile::None
            && let Some(sc) = &c.security_context
        {
            check_container_security(p, &format!("{path}.securityContext"), sc, profile);
        }
    }
}

/// Refuses explicit settings that break the chosen Pod Security profile.
fn check_container_security(
    p: &mut Problems,
    path: &str,
    sc: &SecurityContext,
    profile: SecurityProfile,
) {
    if sc.privileged == Some(true) {
        p.add(
            format!("{path}.privileged"),
            "privileged containers break the security profile",
        );
    }
    if profile == SecurityProfile::Restricted {
        if sc.allow_privilege_escalation == Some(true) {
            p.add(
                format!("{path}.allowPrivilegeEscalation"),
                "must be false under the restricted profile",
            );
        }
        if sc.run_as_non_root == Some(false) || sc.run_as_user == Some(0) {
            p.add(
                format!("{path}.runAsUser"),
                "root is not allowed under the restricted profile",
            );
        }
        if let Some(add) = sc.capabilities.as_ref().and_then(|c| c.add.as_ref())
            && add.iter().any(|c| c != "NET_BIND_SERVICE")
        {
            p.add(
                format!("{path}.capabilities.add"),
                "only NET_BIND_SERVICE may be added under the restricted profile",
            );
        }
    }
}
