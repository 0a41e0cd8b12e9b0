//! How the app is reached from outside (`spec.expose`): an HTTPRoute attached to a
//! Gateway, or an Ingress of an IngressClass; path-prefix rules for each host to the
//! app's Service port. TLS is by reference only (a Secret for the Ingress, the Gateway's
//! listener for a route): the operator never reads either.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::meta;
use crate::api::gateway::{
    HTTPBackendRef, HTTPPathMatch, HTTPRoute, HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec,
    ParentReference,
};
use crate::validate::ValidatedApp;

fn paths(app: &ValidatedApp) -> Vec<String> {
    app.spec
        .expose
        .as_ref()
        .and_then(|e| e.paths.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| vec!["/".into()])
}

/// The HTTPRoute, when the app is exposed through a Gateway.
pub fn http_route(app: &ValidatedApp) -> Option<HTTPRoute> {
    let expose = app.spec.expose.as_ref()?;
    let gateway = expose.gateway.as_ref()?;
    let port = app.traffic.expose_port?;
    let meta = meta::child_meta(&app.pod);
    let mut route = HTTPRoute::new(
        &app.pod.name,
        HTTPRouteSpec {
            parent_refs: Some(vec![ParentReference {
                group: Some("gateway.networking.k8s.io".into()),
                kind: Some("Gateway".into()),
                name: gateway.name.clone(),
                namespace: gateway.namespace.clone(),
                section_name: gateway.section_name.clone(),
            }]),
            hostnames: Some(expose.hosts.clone()),
            rules: Some(vec![HTTPRouteRule {
                matches: Some(
                    paths(app)
                        .into_iter()
                        .map(|p| HTTPRouteMatch {
                            path: Some(HTTPPathMatch {
                                type_: Some("PathPrefix".into()),
                                value: Some(p),
                            }),
                        })
                        .collect(),
                ),
                backend_refs: Some(vec![HTTPBackendRef {
                    group: None,
                    kind: None,
                    name: app.pod.name.clone(),
                    port: Some(port),
                    weight: None,
                }]),
            }]),
        },
    );
    route.metadata = meta;
    Some(route)
}

/// The Ingress, when the app is exposed through an IngressClass.
pub fn ingress(app: &ValidatedApp) -> Option<Ingress> {
    let expose = app.spec.expose.as_ref()?;
    let class = expose.ingress_class_name.clone()?;
    let port = app.traffic.expose_port?;
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: app.pod.name.clone(),
            port: Some(ServiceBackendPort {
                number: Some(port),
                name: None,
            }),
        }),
        resource: None,
    };
    let http = HTTPIngressRuleValue {
        paths: paths(app)
            .into_iter()
            .map(|p| HTTPIngressPath {
                path: Some(p),
                path_type: "Prefix".into(),
                backend: backend.clone(),
            })
            .collect(),
    };
    Some(Ingress {
        metadata: meta::child_meta(&app.pod),
        spec: Some(IngressSpec {
            ingress_class_name: Some(class),
            rules: Some(
                expose
                    .hosts
                    .iter()
                    .map(|h| IngressRule {
                        host: Some(h.clone()),
                        http: Some(http.clone()),
                    })
                    .collect(),
            ),
            tls: expose.tls.as_ref().map(|t| {
                vec![IngressTLS {
                    hosts: Some(expose.hosts.clone()),
                    secret_name: Some(t.secret_name.clone()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}
