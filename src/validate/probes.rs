//! Probes and the healthCheck shortcut: one handler each, ports that exist, sane
//! thresholds; and where readiness comes from.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Problems, ReadinessSource};
use crate::api::SafeAppSpec;

/// Checks probes and the healthCheck shortcut; returns the readiness source.
pub(super) fn check_probes(
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
