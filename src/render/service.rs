//! The Service: one port per `spec.ports` entry, targetPort by name, stable selector.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{labels, meta};
use crate::validate::ValidatedApp;

/// Builds the Service, or None when the app has no ports or turned it off.
pub fn service(app: &ValidatedApp) -> Option<Service> {
    if !app.service_enabled {
        return None;
    }
    let ports = app.spec.ports.as_ref()?;
    let svc = app.spec.service.clone().unwrap_or_default();
    let mut metadata = meta::child_meta(&app.pod);
    if let Some(extra) = svc.annotations {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .extend(extra);
    }
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(svc.type_.map_or("ClusterIP", |t| t.as_str()).into()),
            selector: Some(labels::selector(&app.pod)),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.name.clone()),
                        port: p.service_port.unwrap_or(p.port),
                        target_port: Some(IntOrString::String(p.name.clone())),
                        protocol: Some(p.protocol.map_or("TCP", |x| x.as_str()).into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}
