//! `spec.rollout.canary`: the steps (a weight of 1 to 100 and a pause each) and the
//! Prometheus check. A canary runs beside a Deployment only: a stateful app, or one
//! whose own `track` is `canary`, is refused; an analysis needs the policy's Prometheus.

use std::time::Duration;

use super::Problems;
use super::metrics::parse_duration;
use crate::api::SafeAppSpec;
use crate::policy::Policy;

/// The `track` label of the canary's pods.
pub const CANARY_TRACK: &str = "canary";
/// The `track` label of the stable pods of an app with a canary and no track of its own.
pub const STABLE_TRACK: &str = "stable";

/// The shortest step: a gate needs a few evaluations to mean anything.
pub const MIN_PAUSE: Duration = Duration::from_secs(10);
/// How often the metric is evaluated when `interval` is left out.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The canary settings with defaults applied and durations parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedCanary {
    pub steps: Vec<ResolvedStep>,
    pub check: Option<ResolvedCheck>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedStep {
    pub weight: i32,
    pub pause: Duration,
}

/// The Prometheus check, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedCheck {
    pub query: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub interval: Duration,
    pub failure_limit: i32,
    /// The requests query and its minimum.
    pub requests: Option<(String, f64)>,
}

pub(super) fn check_canary(
    p: &mut Problems,
    spec: &SafeAppSpec,
    name: &str,
    policy: &Policy,
) -> Option<ResolvedCanary> {
    let canary = spec.rollout.as_ref()?.canary.as_ref()?;
    let path = "spec.rollout.canary";
    if spec.stateful.is_some() {
        p.add(
            path,
            "a canary release runs a second Deployment beside the first; a stateful app's pods own their storage and cannot be doubled (use spec.stateful.partition to update some replicas first)",
        );
    }
    if spec.pod.track.as_deref() == Some(CANARY_TRACK) {
        p.add(
            "spec.track",
            "\"canary\" is the track of the canary pods spec.rollout.canary runs; the app's own track must be another (stable, the default with a canary, blue, green)",
        );
    }
    let canary_name = format!("{name}-canary");
    if canary_name.len() > 63 {
        p.add(
            "metadata.name",
            format!("with spec.rollout.canary the name must be at most 56 characters: the canary's Service {canary_name} must fit in 63"),
        );
    }
    if canary.steps.is_empty() {
        p.add(format!("{path}.steps"), "at least one step is needed");
    }
    let mut steps = Vec::new();
    for (i, s) in canary.steps.iter().enumerate() {
        if !(1..=100).contains(&s.weight) {
            p.add(
                format!("{path}.steps[{i}].weight"),
                format!("{} is not a percentage from 1 to 100", s.weight),
            );
        }
        match parse_duration(&s.pause) {
            Ok(d) if d < MIN_PAUSE => p.add(
                format!("{path}.steps[{i}].pause"),
                format!("{} is shorter than 10s: too short to watch a step", s.pause),
            ),
            Ok(d) => steps.push(ResolvedStep {
                weight: s.weight,
                pause: d,
            }),
            Err(e) => p.add(format!("{path}.steps[{i}].pause"), e),
        }
    }
    let check = canary
        .analysis
        .as_ref()
        .and_then(|a| a.prometheus.as_ref())
        .and_then(|c| {
            let path = format!("{path}.analysis.prometheus");
            let before = p.0.len();
            if policy.canary.prometheus_address.is_none() {
                p.add(
                    &path,
                    "the operator policy sets no canary.prometheusAddress: ask the platform team to name the Prometheus the analysis reads",
                );
            }
            if c.query.trim().is_empty() {
                p.add(format!("{path}.query"), "must not be empty");
            }
            match (c.min, c.max) {
                (None, None) => p.add(&path, "set min, max or both: the bounds the value must stay within"),
                (Some(lo), Some(hi)) if lo > hi => p.add(
                    format!("{path}.min"),
                    format!("{lo} is above max {hi}: no value could pass"),
                ),
                _ => {}
            }
            for (field, v) in [("min", c.min), ("max", c.max)] {
                if v.is_some_and(|v| !v.is_finite()) {
                    p.add(format!("{path}.{field}"), "must be a finite number");
                }
            }
            let interval = match c.interval.as_deref().map(parse_duration) {
                None => DEFAULT_INTERVAL,
                Some(Ok(d)) if d >= Duration::from_secs(5) => d,
                Some(Ok(_)) => {
                    p.add(format!("{path}.interval"), "must be at least 5s");
                    DEFAULT_INTERVAL
                }
                Some(Err(e)) => {
                    p.add(format!("{path}.interval"), e);
                    DEFAULT_INTERVAL
                }
            };
            if c.failure_limit.is_some_and(|f| f < 0) {
                p.add(format!("{path}.failureLimit"), "must not be negative");
            }
            if let Some(r) = &c.requests {
                if r.query.trim().is_empty() {
                    p.add(format!("{path}.requests.query"), "must not be empty");
                }
                if !r.min.is_finite() || r.min < 0.0 {
                    p.add(
                        format!("{path}.requests.min"),
                        "must be a number of requests, 0 or more",
                    );
                }
            }
            (p.0.len() == before).then(|| ResolvedCheck {
                query: c.query.clone(),
                min: c.min,
                max: c.max,
                interval,
                failure_limit: c.failure_limit.unwrap_or(0),
                requests: c.requests.as_ref().map(|r| (r.query.clone(), r.min)),
            })
        });
    Some(ResolvedCanary { steps, check })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::{Canary, CanaryAnalysis, CanaryStep, PrometheusCheck, Rollout};

    fn spec(canary: Canary) -> SafeAppSpec {
        SafeAppSpec {
            rollout: Some(Rollout {
                canary: Some(canary),
                ..Rollout::default()
            }),
            ..SafeAppSpec::default()
        }
    }

    fn run(spec: &SafeAppSpec, policy: &Policy) -> (Option<ResolvedCanary>, Vec<String>) {
        let mut p = Problems::default();
        let out = check_canary(&mut p, spec, "web", policy);
        (
            out,
            p.0.iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        )
    }

    fn step(weight: i32, pause: &str) -> CanaryStep {
        CanaryStep {
            weight,
            pause: pause.into(),
        }
    }

    // Steps resolve with their pauses; a bad weight or pause names its step.
    #[test]
    fn steps_resolve_and_bad_ones_name_their_field() {
        let good = spec(Canary {
            steps: vec![step(10, "2m"), step(50, "5m")],
            analysis: None,
        });
        let (out, problems) = run(&good, &Policy::default());
        assert!(problems.is_empty(), "{problems:?}");
        let out = out.unwrap();
        assert_eq!(out.steps[1].pause, Duration::from_secs(300));
        assert_eq!(out.steps[0].weight, 10);
        let bad = spec(Canary {
            steps: vec![step(0, "2m"), step(50, "5s"), step(60, "soon")],
            analysis: None,
        });
        let (_, problems) = run(&bad, &Policy::default());
        assert!(problems[0].starts_with("spec.rollout.canary.steps[0].weight"));
        assert!(problems[1].starts_with("spec.rollout.canary.steps[1].pause"));
        assert!(problems[2].starts_with("spec.rollout.canary.steps[2].pause"));
        let empty = spec(Canary::default());
        assert!(run(&empty, &Policy::default()).1[0].contains("at least one step"));
    }

    // An analysis needs the policy's Prometheus and a bound; defaults fill the rest.
    #[test]
    fn analysis_needs_a_prometheus_and_a_bound() {
        let with = |c: PrometheusCheck| {
            spec(Canary {
                steps: vec![step(10, "1m")],
                analysis: Some(CanaryAnalysis {
                    prometheus: Some(c),
                }),
            })
        };
        let check = PrometheusCheck {
            query: "sum(rate(errors[1m]))".into(),
            max: Some(0.01),
            ..PrometheusCheck::default()
        };
        let (_, problems) = run(&with(check.clone()), &Policy::default());
        assert!(
            problems[0].contains("canary.prometheusAddress"),
            "{problems:?}"
        );
        let mut policy = Policy::default();
        policy.canary.prometheus_address = Some("http://prometheus:9090".into());
        let (out, problems) = run(&with(check.clone()), &policy);
        assert!(problems.is_empty(), "{problems:?}");
        let resolved = out.unwrap().check.unwrap();
        assert_eq!(resolved.interval, DEFAULT_INTERVAL);
        assert_eq!(resolved.failure_limit, 0);
        let unbounded = PrometheusCheck {
            max: None,
            ..check.clone()
        };
        assert!(run(&with(unbounded), &policy).1[0].contains("set min, max or both"));
        let inverted = PrometheusCheck {
            min: Some(2.0),
            max: Some(1.0),
            ..check
        };
        assert!(
            run(&with(inverted), &policy).1[0]
                .starts_with("spec.rollout.canary.analysis.prometheus.min")
        );
    }

    // A stateful app, or an app whose own track is canary, cannot have one.
    #[test]
    fn refused_for_stateful_apps_and_the_canary_track() {
        let mut s = spec(Canary {
            steps: vec![step(10, "1m")],
            analysis: None,
        });
        s.stateful = Some(Default::default());
        s.pod.track = Some("canary".into());
        let (_, problems) = run(&s, &Policy::default());
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("spec.rollout.canary: "))
        );
        assert!(problems.iter().any(|p| p.starts_with("spec.track: ")));
    }
}
