//! `spec.metrics` (where Prometheus scrapes the app) and `spec.autoscaling.metrics`
//! (the app's own signals for the HPA): names, quantities and targets with their field
//! paths, and the policy's guardrail on external metrics.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Problems;
use crate::api::SafeAppSpec;
use crate::api::v1alpha1::MetricSourceType;
use crate::policy::Policy;

/// Default scrape path.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
/// The container port's name when `spec.metrics.port` is a number not in `spec.ports`.
pub const METRICS_PORT_NAME: &str = "metrics";

/// Where the app's metrics are scraped, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedMetrics {
    /// The container port's name (a PodMonitor endpoint names its port).
    pub port_name: String,
    pub port: i32,
    /// The port is not one of `spec.ports`: the container gets it as `metrics`.
    pub own_port: bool,
    pub path: String,
    pub interval: Option<String>,
}

/// One autoscaling metric, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedMetric {
    pub external: bool,
    pub name: String,
    pub selector: Option<std::collections::BTreeMap<String, String>>,
    pub target_average_value: String,
}

/// Checks `spec.metrics`.
pub(super) fn check_metrics(p: &mut Problems, spec: &SafeAppSpec) -> Option<ResolvedMetrics> {
    let m = spec.metrics.as_ref()?;
    let ports = spec.ports.iter().flatten();
    let (port_name, port, own_port) = match &m.port {
        IntOrString::String(name) => match ports.clone().find(|p| &p.name == name) {
            Some(p) => (p.name.clone(), p.port, false),
            None => {
                p.add(
                    "spec.metrics.port",
                    format!("{name:?} is not the name of a port in spec.ports"),
                );
                return None;
            }
        },
        IntOrString::Int(n) => {
            if !(1..=65535).contains(n) {
                p.add("spec.metrics.port", format!("{n} is not a port (1-65535)"));
                return None;
            }
            match ports.clone().find(|p| p.port == *n) {
                Some(p) => (p.name.clone(), p.port, false),
                None => {
                    if ports.clone().any(|p| p.name == METRICS_PORT_NAME) {
                        p.add(
                            "spec.metrics.port",
                            format!(
                                "{n} is not in spec.ports, and the port name {METRICS_PORT_NAME:?} it would get is taken; name the port instead"
                            ),
                        );
                        return None;
                    }
                    (METRICS_PORT_NAME.to_string(), *n, true)
                }
            }
        }
    };
    let path = m
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_METRICS_PATH.into());
    if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
        p.add(
            "spec.metrics.path",
            format!("{path:?} must be an absolute URL path, e.g. /metrics"),
        );
    }
    if let Some(interval) = &m.interval
        && let Err(e) = check_interval(interval)
    {
        p.add("spec.metrics.interval", e);
    }
    Some(ResolvedMetrics {
        port_name,
        port,
        own_port,
        path,
        interval: m.interval.clone(),
    })
}

/// A Prometheus duration of at least 5 s: `30s`, `1m`, `1m30s`.
fn check_interval(s: &str) -> Result<(), String> {
    if parse_duration(s)? < std::time::Duration::from_secs(5) {
        return Err(format!(
            "{s} is shorter than 5s: every replica would be scraped too often"
        ));
    }
    Ok(())
}

/// A Prometheus-style duration: `500ms`, `30s`, `2m`, `1h`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total_ms: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err("must not be empty".into());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(format!("{s:?} is not a duration like 30s or 1m"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is too large"))?;
        let per = match &rest[digits..digits + unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => return Err(format!("{s:?}: unit {other:?} is not one of ms, s, m, h")),
        };
        total_ms = total_ms.saturating_add(n.saturating_mul(per));
        rest = &rest[digits + unit_len..];
    }
    Ok(std::time::Duration::from_millis(total_ms))
}

/// A metric name as the custom and external metrics APIs take it.
fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-' | '/'));
    if first_ok && rest_ok && name.len() <= 253 {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a metric name (a letter, '_' or ':' first, then letters, digits, '_', ':', '.', '-', '/'; at most 253)"
        ))
    }
}

/// Checks `spec.autoscaling.metrics` against the policy.
pub(super) fn check_autoscaling_metrics(
    p: &mut Problems,
    spec: &SafeAppSpec,
    policy: &Policy,
) -> Vec<ResolvedMetric> {
    let Some(metrics) = spec.autoscaling.as_ref().and_then(|a| a.metrics.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in metrics.iter().enumerate() {
        let path = format!("spec.autoscaling.metrics[{i}]");
        let external = m.type_ == MetricSourceType::External;
        let mut ok = true;
        if let Err(e) = check_metric_name(&m.name) {
            p.add(format!("{path}.name"), e);
            ok = false;
        } else if !seen.insert((external, m.name.clone(), m.selector.clone())) {
            p.add(
                format!("{path}.name"),
                format!("{:?} is listed twice", m.name),
            );
            ok = false;
        }
        if external && !policy.guardrails.allows_external_metric(&m.name) {
            p.add(
                format!("{path}.name"),
                format!(
                    "external metric {:?} is not allowed by the policy (guardrails.allowedExternalMetrics: {})",
                    m.name,
                    if policy.guardrails.allowed_external_metrics.is_empty() {
                        "none".to_string()
                    } else {
                        policy.guardrails.allowed_external_metrics.join(", ")
                    }
                ),
            );
            ok = false;
        }
        for (key, value) in m.selector.iter().flatten() {
            let key_path = format!("{path}.selector[{key:?}]");
            if let Err(e) = crate::names::check_qualified_name(key) {
                p.add(key_path.clone(), e);
                ok = false;
            }
            if let Err(e) = crate::names::check_label_value(value) {
                p.add(key_path, e);
                ok = false;
            }
        }
        match crate::quantity::parse(&m.target_average_value) {
            Ok(q) if q.0 > 0.0 => {}
            Ok(_) => {
                p.add(
                    format!("{path}.targetAverageValue"),
                    "must be greater than zero",
                );
                ok = false;
            }
            Err(e) => {
                p.add(format!("{path}.targetAverageValue"), e);
                ok = false;
            }
        }
        if ok {
            out.push(ResolvedMetric {
                external,
                name: m.name.clone(),
                selector: m.selector.clone(),
                target_average_value: m.target_average_value.clone(),
            });
        }
    }
    out
}
