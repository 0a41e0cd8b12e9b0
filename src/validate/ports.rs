//! Ports: valid IANA names, unique names, unique numbers per protocol.

use std::collections::BTreeSet;

use super::Problems;
use crate::api::SafeAppSpec;
use crate::names;

/// Checks `spec.ports`; returns the declared port names, in order.
pub(super) fn check_ports(p: &mut Problems, spec: &SafeAppSpec) -> Vec<String> {
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

/// Whether a Service is rendered: asked for explicitly, or by default when ports exist.
pub(super) fn service_enabled(p: &mut Problems, spec: &SafeAppSpec, has_ports: bool) -> bool {
    match spec.service.as_ref().and_then(|s| s.enabled) {
        Some(true) if !has_ports => {
            p.add(
                "spec.service.enabled",
                "a Service needs at least one entry in spec.ports",
            );
            false
        }
        Some(enabled) => enabled && has_ports,
        None => has_ports,
    }
}
