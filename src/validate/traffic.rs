//! Traffic: `spec.accessPolicy` rules (one target each, CIDRs that parse, ports that
//! exist) and `spec.expose` (valid hosts and paths, a port of the Service, one of
//! gateway or ingress class). Resolves the ports the NetworkPolicy and the route use.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Problems;
use crate::api::SafeAppSpec;
use crate::api::v1alpha1::{AccessRule, Protocol};
use crate::names;

/// A pod port a rule opens: number and protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenPort {
    pub port: IntOrString,
    pub protocol: Protocol,
}

/// Traffic settings with ports resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedTraffic {
    /// Per inbound rule, in order: the app's container ports it opens.
    pub inbound_ports: Vec<Vec<OpenPort>>,
    /// Every container port of the app (what same-namespace and exposed traffic reach).
    pub all_ports: Vec<OpenPort>,
    /// The Service port `spec.expose` sends traffic to.
    pub expose_port: Option<i32>,
}

pub(super) fn check_traffic(
    p: &mut Problems,
    spec: &SafeAppSpec,
    service_enabled: bool,
) -> ResolvedTraffic {
    let ports = spec.ports.as_deref().unwrap_or_default();
    let all_ports: Vec<OpenPort> = ports
        .iter()
        .map(|x| OpenPort {
            port: IntOrString::Int(x.port),
            protocol: x.protocol.unwrap_or(Protocol::Tcp),
        })
        .collect();
    let mut out = ResolvedTraffic {
        all_ports: all_ports.clone(),
        ..ResolvedTraffic::default()
    };
    if let Some(policy) = &spec.access_policy {
        for (i, rule) in policy.inbound.iter().flatten().enumerate() {
            let path = format!("spec.accessPolicy.inbound[{i}]");
            check_target(p, &path, rule, false);
            if rule.ports.as_ref().is_some_and(Vec::is_empty) {
                p.add(
                    format!("{path}.ports"),
                    "an empty list opens nothing; leave ports out to open all of spec.ports",
                );
            }
            let mut open = Vec::new();
            for (j, ap) in rule.ports.iter().flatten().enumerate() {
                let ppath = format!("{path}.ports[{j}].port");
                let found = ports.iter().find(|x| match &ap.port {
                    IntOrString::Int(n) => x.port == *n,
                    IntOrString::String(s) => x.name == *s,
                });
                match found {
                    Some(x) => open.push(OpenPort {
                        port: IntOrString::Int(x.port),
                        protocol: ap.protocol.or(x.protocol).unwrap_or(Protocol::Tcp),
                    }),
                    None => p.add(
                        ppath,
                        format!("{} is not one of this app's spec.ports", show(&ap.port)),
                    ),
                }
            }
            out.inbound_ports.push(if rule.ports.is_some() {
                open
            } else {
                all_ports.clone()
            });
        }
        for (i, rule) in policy.outbound.iter().flatten().enumerate() {
            let path = format!("spec.accessPolicy.outbound[{i}]");
            check_target(p, &path, rule, true);
            for (j, ap) in rule.ports.iter().flatten().enumerate() {
                let ppath = format!("{path}.ports[{j}].port");
                match &ap.port {
                    IntOrString::Int(n) if !(1..=65535).contains(n) => {
                        p.add(ppath, format!("{n} is outside 1-65535"));
                    }
                    IntOrString::String(s) => p.check(ppath, names::check_port_name(s)),
                    IntOrString::Int(_) => {}
                }
            }
        }
    }
    out.expose_port = check_expose(p, spec, service_enabled);
    out
}

fn show(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => format!("{s:?}"),
    }
}

fn check_target(p: &mut Problems, path: &str, rule: &AccessRule, outbound: bool) {
    let kinds = [
        rule.app.is_some(),
        rule.namespace.is_some() && rule.app.is_none(),
        rule.cidr.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1
        || (rule.cidr.is_some() && rule.namespace.is_some())
    {
        p.add(
            path,
            "name exactly one of: app (optionally with namespace), namespace, or cidr",
        );
    }
    if let Some(app) = &rule.app {
        p.check(format!("{path}.app"), names::check_dns1035_label(app));
    }
    if let Some(ns) = &rule.namespace {
        p.check(format!("{path}.namespace"), names::check_dns1123_label(ns));
    }
    if let Some(cidr) = &rule.cidr {
        if outbound {
            p.check(format!("{path}.cidr"), check_cidr(cidr));
        } else {
            p.add(
                format!("{path}.cidr"),
                "callers are named by app or namespace; cidr is for outbound rules",
            );
        }
    }
}

/// A CIDR in canonical form (`10.0.0.0/8`, `2001:db8::/32`).
pub fn check_cidr(cidr: &str) -> Result<(), String> {
    let bad = || format!("{cidr:?} is not a CIDR like 10.0.0.0/8");
    let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    let (bits, max) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if prefix > max {
        return Err(format!("{cidr:?}: the prefix is longer than {max}"));
    }
    let host_bits = max - prefix;
    let host_mask = match host_bits {
        0 => 0,
        128 => u128::MAX,
        n => (1u128 << n) - 1,
    };
    if bits & host_mask != 0 {
        return Err(format!(
            "{cidr:?} has host bits set; write the network address of the block"
        ));
    }
    Ok(())
}

fn check_expose(p: &mut Problems, spec: &SafeAppSpec, service_enabled: bool) -> Option<i32> {
    let expose = spec.expose.as_ref()?;
    if expose.gateway.is_some() == expose.ingress_class_name.is_some() {
        p.add(
            "spec.expose",
            "set exactly one of gateway (an HTTPRoute) or ingressClassName (an Ingress)",
        );
    }
    if expose.tls.is_some() && expose.ingress_class_name.is_none() {
        p.add(
            "spec.expose.tls",
            "TLS by Secret is for an Ingress; a Gateway terminates TLS on its listener",
        );
    }
    if let Some(tls) = &expose.tls {
        p.check(
            "spec.expose.tls.secretName",
            names::check_dns1123_subdomain(&tls.secret_name),
        );
    }
    if let Some(g) = &expose.gateway {
        p.check(
            "spec.expose.gateway.name",
            names::check_dns1123_subdomain(&g.name),
        );
        if let Some(ns) = &g.namespace {
            p.check(
                "spec.expose.gateway.namespace",
                names::check_dns1123_label(ns),
            );
        }
    }
    if expose.hosts.is_empty() {
        p.add("spec.expose.hosts", "at least one host");
    }
    let mut seen = BTreeSet::new();
    for (i, host) in expose.hosts.iter().enumerate() {
        let path = format!("spec.expose.hosts[{i}]");
        let plain = host.strip_prefix("*.").unwrap_or(host);
        match names::check_dns1123_subdomain(plain) {
            Err(e) => p.add(&path, format!("{host:?} is not a host name: {e}")),
            Ok(()) if !plain.contains('.') && plain != host => {
                p.add(
                    &path,
                    format!("{host:?}: a wildcard needs a domain below it"),
                );
            }
            Ok(()) => {}
        }
        if !seen.insert(host.as_str()) {
            p.add(&path, format!("duplicate host {host:?}"));
        }
    }
    for (i, path) in expose.paths.iter().flatten().enumerate() {
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.add(
                format!("spec.expose.paths[{i}]"),
                format!("{path:?} must start with '/' and hold no spaces"),
            );
        }
    }
    if !service_enabled {
        p.add(
            "spec.expose",
            "exposing needs the Service: declare spec.ports (and leave spec.service.enabled on)",
        );
        return None;
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    let chosen = match &expose.port {
        None => ports.first(),
        Some(IntOrString::String(name)) => ports.iter().find(|x| x.name == *name),
        Some(IntOrString::Int(n)) => ports
            .iter()
            .find(|x| x.service_port.unwrap_or(x.port) == *n || x.port == *n),
    };
    match chosen {
        Some(x) => Some(x.service_port.unwrap_or(x.port)),
        None => {
            p.add(
                "spec.expose.port",
                format!(
                    "{} is not one of spec.ports",
                    expose.port.as_ref().map(show).unwrap_or_default()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // CIDRs must parse, fit their family, and be written as the network address.
    #[test]
    fn cidrs() {
        for ok in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "192.168.1.7/32",
            "2001:db8::/32",
            "::/0",
        ] {
            assert_eq!(check_cidr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "banana/8",
            "2001:db8::1/32",
            "10.0.0.0/x",
        ] {
            assert!(check_cidr(bad).is_err(), "{bad}");
        }
    }
}
