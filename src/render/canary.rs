//! The objects of a canary release (`spec.rollout.canary`), derived from the rendered
//! stable ones: the `<name>-canary` Deployment (label `track: canary`, its own selector),
//! its Service for a Gateway's second backend, the HTTPRoute split by weight, and the
//! replica count that gives the canary its share. Pure, like the rest of `render`; the
//! controller decides the weight (`controller::app::canary`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use crate::api::gateway::HTTPRoute;
use crate::validate::CANARY_TRACK;

/// The label every pod carries its track in.
pub const TRACK_LABEL: &str = "track";

/// `<name>-canary`: the canary Deployment and its Service.
pub fn name(app: &str) -> String {
    format!("{app}-canary")
}

fn set_track(labels: &mut Option<std::collections::BTreeMap<String, String>>, track: &str) {
    labels
        .get_or_insert_with(Default::default)
        .insert(TRACK_LABEL.into(), track.into());
}

/// The canary Deployment: the stable one as rendered (the new template), renamed, its
/// pods and selector on `track: canary`, at `replicas`.
pub fn deployment(stable: &Deployment, app: &str, replicas: i32) -> Deployment {
    let mut d = stable.clone();
    d.metadata.name = Some(name(app));
    set_track(&mut d.metadata.labels, CANARY_TRACK);
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(replicas);
        spec.paused = None;
        set_track(&mut spec.selector.match_labels, CANARY_TRACK);
        if let Some(meta) = spec.template.metadata.as_mut() {
            set_track(&mut meta.labels, CANARY_TRACK);
        }
    }
    d
}

/// The canary's Service (a Gateway's second backend): the stable one's ports, on the
/// canary pods only, always `ClusterIP` (no node ports or load balancer of its own).
pub fn service(stable: &Service, app: &str) -> Service {
    let mut s = stable.clone();
    s.metadata.name = Some(name(app));
    set_track(&mut s.metadata.labels, CANARY_TRACK);
    if let Some(spec) = s.spec.as_mut() {
        spec.type_ = Some("ClusterIP".into());
        spec.external_traffic_policy = None;
        spec.load_balancer_class = None;
        spec.load_balancer_source_ranges = None;
        set_track(&mut spec.selector, CANARY_TRACK);
        for port in spec.ports.iter_mut().flatten() {
            port.node_port = None;
        }
    }
    s
}

/// The stable Service during a canary behind a Gateway: on the stable pods only, so the
/// route's weights are the real split.
pub fn pin_to_track(service: &mut Service, track: &str) {
    if let Some(spec) = service.spec.as_mut() {
        set_track(&mut spec.selector, track);
    }
}

/// Splits every rule of the route between the stable Service (`100 - weight`) and the
/// canary's (`weight`).
pub fn split_route(route: &mut HTTPRoute, app: &str, weight: i32) {
    let weight = weight.clamp(0, 100);
    for rule in route.spec.rules.iter_mut().flatten() {
        let Some(stable) = rule
            .backend_refs
            .as_ref()
            .and_then(|refs| refs.iter().find(|r| r.name == app))
            .cloned()
        else {
            continue;
        };
        let canary = crate::api::gateway::HTTPBackendRef {
            name: name(app),
            weight: Some(weight),
            ..stable.clone()
        };
        let stable = crate::api::gateway::HTTPBackendRef {
            weight: Some(100 - weight),
            ..stable
        };
        rule.backend_refs = Some(vec![stable, canary]);
    }
}

/// The canary's replicas for `weight` percent beside `stable` replicas. Behind a
/// Gateway the weight splits the traffic, so the canary is sized for its share (at
/// least one pod). Without one, the one Service spreads requests over all pods, so the
/// share is the canary's part of the pods: `c / (stable + c)` as close to the weight as
/// whole pods allow, at least one pod and at most as many as the stable (approximate:
/// README "Canary releases").
pub fn replicas(stable: i32, weight: i32, routed: bool) -> i32 {
    let stable = stable.max(1);
    let weight = weight.clamp(0, 100);
    if weight == 0 {
        return 0;
    }
    if routed {
        let share = (i64::from(stable) * i64::from(weight) + 99) / 100;
        return i32::try_from(share).unwrap_or(i32::MAX).max(1);
    }
    if weight >= 100 {
        return stable;
    }
    let exact = f64::from(stable) * f64::from(weight) / f64::from(100 - weight);
    (exact.round() as i32).clamp(1, stable)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Behind a Gateway the canary is sized for its share; by replica ratio its part of
    // the pods comes as close to the weight as whole pods allow.
    #[test]
    fn replicas_follow_the_weight() {
        assert_eq!(replicas(10, 10, true), 1);
        assert_eq!(replicas(10, 50, true), 5);
        assert_eq!(replicas(3, 10, true), 1);
        assert_eq!(replicas(4, 0, true), 0);
        // 4 stable pods: 10% -> 1 of 5 (20%), 50% -> 4 of 8.
        assert_eq!(replicas(4, 10, false), 1);
        assert_eq!(replicas(4, 50, false), 4);
        assert_eq!(replicas(9, 10, false), 1);
        assert_eq!(replicas(18, 10, false), 2);
        assert_eq!(replicas(2, 90, false), 2);
        assert_eq!(replicas(2, 100, false), 2);
    }
}
