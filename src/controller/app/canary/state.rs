//! The canary release's state machine, pure: what one reconcile makes of
//! `status.canary` from what it observed ([`decide`]), when to evaluate the metric and
//! when to look again, and the conditions a canary sets. No client, no clock of its own:
//! `Observed::now` is the time.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::v1alpha1::{CanaryAnalysisResult, CanaryPhase, CanaryStatus};
use crate::controller::app::upgrade::Cause;
use crate::controller::conditions::{self as c, Cond};
use crate::prometheus::{Measurement, Verdict};
use crate::validate::ResolvedCanary;

/// SafeApp annotation: `promote` ends the canary now with a promotion, `abort` with an
/// abort.
pub const CANARY_ANNOTATION: &str = "safeapp.dev/canary";
/// How often the canary's pods are looked at while a step runs without a metric check
/// (the canary Deployment's own events wake the reconcile sooner).
pub const POD_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// How often a step whose pods are not all available yet is looked at.
pub const SERVING_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Whether the canary runs (walking its steps, or promoting): it takes traffic.
pub fn active(status: &CanaryStatus) -> bool {
    matches!(
        status.phase,
        CanaryPhase::Progressing | CanaryPhase::Promoting
    )
}

/// What the stable Deployment is, as the canary step needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stable {
    /// Its pods' `track` label.
    pub track: Option<String>,
    /// Rolled out and available on the rendered template.
    pub promoted: bool,
}

/// What the canary's pods and Deployment showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodHealth {
    /// The canary Deployment is rolled out on the current template and available.
    pub available: bool,
    /// Its progress deadline passed: the message.
    pub deadline_exceeded: Option<String>,
    /// Restarts of its pods' containers, summed.
    pub restarts: i32,
    /// A pod whose container restarted most, for the message.
    pub restarted_pod: Option<String>,
    /// A pod in `CrashLoopBackOff`.
    pub crash_looping: Option<String>,
}

/// Everything [`decide`] reads.
#[derive(Clone, Debug)]
pub struct Observed {
    pub now: Timestamp,
    pub generation: i64,
    /// The referenced config data's hash ("" without references).
    pub config_hash: String,
    /// The rendered template's hash.
    pub desired_hash: String,
    /// The template hash the stable Deployment last rolled out (`status.template`).
    pub stable_hash: Option<String>,
    pub cause: Cause,
    /// None when there is no stable Deployment yet.
    pub stable: Option<Stable>,
    /// The track the stable pods carry with a canary configured.
    pub stable_track: String,
    /// None when not looked at (no canary step running).
    pub pods: Option<PodHealth>,
    /// This reconcile's metric evaluation, when one was due.
    pub measurement: Option<Measurement>,
    pub annotation: Option<String>,
}

/// An Event to publish about a transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What [`decide`] concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: Option<CanaryStatus>,
    /// The stable Deployment keeps the template it runs.
    pub hold_stable: bool,
    pub event: Option<Announcement>,
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn since(then: &Time, now: Timestamp) -> Duration {
    now.duration_since(then.0).unsigned_abs()
}

fn step_message(canary: &ResolvedCanary, step: i32, weight: i32) -> String {
    let pause = canary
        .steps
        .get(usize::try_from(step).unwrap_or(0))
        .map_or(0, |s| s.pause.as_secs());
    format!(
        "canary step {} of {}: {weight}% of the traffic for {pause}s",
        step + 1,
        canary.steps.len()
    )
}

/// The canary release's next state. Pure: one reconcile moves it at most one step.
pub fn decide(canary: &ResolvedCanary, prev: Option<&CanaryStatus>, o: &Observed) -> Decision {
    let keep = |status: Option<&CanaryStatus>, hold| Decision {
        status: status.cloned(),
        hold_stable: hold,
        event: None,
    };
    // Creating the app: its first template goes straight to the stable Deployment.
    let Some(stable) = &o.stable else {
        return keep(None, false);
    };
    // An aborted canary stays aborted, the stable held, until the user changes something:
    // a new generation, or new config data, starts over (the operator's own template
    // change does not).
    if let Some(aborted) = prev.filter(|s| {
        s.phase == CanaryPhase::Aborted
            && s.generation == o.generation
            && s.config_hash == o.config_hash
    }) {
        return keep(Some(aborted), true);
    }
    // The canary of the template now rendered.
    let current =
        prev.filter(|s| s.canary_hash == o.desired_hash && s.phase != CanaryPhase::Aborted);
    if let Some(status) = current {
        return match status.phase {
            CanaryPhase::Progressing => progress(canary, status, o),
            CanaryPhase::Promoting if stable.promoted => {
                let mut next = status.clone();
                next.phase = CanaryPhase::Succeeded;
                next.weight = 0;
                next.message = "promoted: the stable Deployment runs the new template".into();
                Decision {
                    event: Some(Announcement {
                        warning: false,
                        reason: "CanaryPromoted",
                        message: next.message.clone(),
                    }),
                    status: Some(next),
                    hold_stable: false,
                }
            }
            CanaryPhase::Promoting | CanaryPhase::Succeeded => keep(Some(status), false),
            // Filtered out above.
            CanaryPhase::Aborted => keep(Some(status), true),
        };
    }
    // Nothing to test: the stable runs this template already (a revert included), or
    // the change is the operator's own (staged by the upgrade slots instead).
    let same_as_stable = o.stable_hash.as_deref() == Some(o.desired_hash.as_str());
    if same_as_stable || o.stable_hash.is_none() || o.cause != Cause::User {
        let settled = prev.filter(|s| s.phase == CanaryPhase::Succeeded);
        return keep(settled, false);
    }
    // The first rollout with a canary configured: the stable pods gain their track.
    if stable.track.as_deref() != Some(o.stable_track.as_str()) {
        return keep(None, false);
    }
    // Validation refuses a canary without steps.
    let Some(first) = canary.steps.first() else {
        return keep(None, false);
    };
    let status = CanaryStatus {
        phase: CanaryPhase::Progressing,
        step: 0,
        weight: first.weight,
        stable_hash: o.stable_hash.clone().unwrap_or_default(),
        canary_hash: o.desired_hash.clone(),
        generation: o.generation,
        config_hash: o.config_hash.clone(),
        step_started: time(o.now),
        serving_since: None,
        restarts_at_step_start: 0,
        failed_checks: 0,
        last_analysis: None,
        routed_weight: prev.and_then(|p| p.routed_weight),
        annotation_seen: o.annotation.clone(),
        message: step_message(canary, 0, first.weight),
    };
    Decision {
        event: Some(Announcement {
            warning: false,
            reason: "CanaryStarted",
            message: format!("the new pod template runs as a canary: {}", status.message),
        }),
        status: Some(status),
        hold_stable: true,
    }
}

/// The canary stopped: weight 0, the stable held, a Warning naming `why`.
fn aborted(mut next: CanaryStatus, why: String) -> Decision {
    next.phase = CanaryPhase::Aborted;
    next.weight = 0;
    next.message = why;
    Decision {
        event: Some(Announcement {
            warning: true,
            reason: "CanaryAborted",
            message: next.message.clone(),
        }),
        status: Some(next),
        hold_stable: true,
    }
}

/// The canary passed: the stable Deployment takes its template.
fn promoting(mut next: CanaryStatus, why: String) -> Decision {
    next.phase = CanaryPhase::Promoting;
    next.message = why;
    Decision {
        event: Some(Announcement {
            warning: false,
            reason: "CanaryPromoting",
            message: next.message.clone(),
        }),
        status: Some(next),
        hold_stable: false,
    }
}

/// The step goes on: only its message changes.
fn waiting(mut next: CanaryStatus, message: String) -> Decision {
    next.message = message;
    Decision {
        status: Some(next),
        hold_stable: true,
        event: None,
    }
}

/// A step in progress: a person's decision, the gate, then the step's end.
fn progress(canary: &ResolvedCanary, status: &CanaryStatus, o: &Observed) -> Decision {
    let mut next = status.clone();
    if o.annotation != status.annotation_seen {
        next.annotation_seen = o.annotation.clone();
        match o.annotation.as_deref() {
            Some("abort") => return aborted(next, format!("aborted by {CANARY_ANNOTATION}=abort")),
            Some("promote") => {
                let why = format!(
                    "promoted early by {CANARY_ANNOTATION}=promote: the stable Deployment rolls to the new template"
                );
                return promoting(next, why);
            }
            _ => {}
        }
    }
    if let Some(why) = o.pods.as_ref().and_then(|p| pods_failed(p, status)) {
        return aborted(next, why);
    }
    // The step's watch starts when its pods all serve (the route gives them their share
    // only then).
    if next.serving_since.is_none() && o.pods.as_ref().is_some_and(|p| p.available) {
        next.serving_since = Some(time(o.now));
    }
    if let Some(m) = &o.measurement {
        next.last_analysis = Some(CanaryAnalysisResult {
            time: time(o.now),
            result: m.verdict.as_str().into(),
            value: m.value,
            message: m.message.clone(),
        });
        if m.verdict == Verdict::Fail {
            next.failed_checks += 1;
            if let Some(why) = metric_failed(canary, m, next.failed_checks) {
                return aborted(next, why);
            }
        }
    }
    step_end(canary, next, o)
}

/// Why the canary's pods fail the gate, if they do: a crash loop, a restart during the
/// step, or a rollout past its progress deadline.
fn pods_failed(pods: &PodHealth, status: &CanaryStatus) -> Option<String> {
    if let Some(pod) = &pods.crash_looping {
        return Some(format!(
            "check pods failed: canary pod {pod} is in CrashLoopBackOff"
        ));
    }
    if pods.restarts > status.restarts_at_step_start {
        return Some(format!(
            "check pods failed: canary pod {} restarted ({} restarts during step {})",
            pods.restarted_pod.as_deref().unwrap_or("?"),
            pods.restarts - status.restarts_at_step_start,
            status.step + 1
        ));
    }
    pods.deadline_exceeded
        .as_ref()
        .map(|m| format!("check pods failed: the canary's pods did not become ready: {m}"))
}

/// Why the metric aborts the canary, once its failures pass the limit.
fn metric_failed(canary: &ResolvedCanary, m: &Measurement, failures: i32) -> Option<String> {
    let check = canary.check.as_ref()?;
    (failures > check.failure_limit).then(|| {
        format!(
            "check prometheus failed: {} = {}: {} ({failures} failed of {} tolerated)",
            check.query,
            m.value.map_or_else(|| "no value".into(), |v| v.to_string()),
            m.message,
            check.failure_limit
        )
    })
}

/// The end of a step: once its pause is over and the gate holds (the canary available,
/// the last evaluation of this step a pass), the next step, or the promotion.
fn step_end(canary: &ResolvedCanary, mut next: CanaryStatus, o: &Observed) -> Decision {
    let step = usize::try_from(next.step).unwrap_or(0);
    let pause = canary.steps.get(step).map_or(Duration::ZERO, |s| s.pause);
    // No elapsed time in the message: a status that changes every reconcile is a write
    // every reconcile (`status.canary.stepStarted` says when it began).
    let base = step_message(canary, next.step, next.weight);
    let Some(serving) = next.serving_since.clone() else {
        let message = format!("{base}: waiting for the canary's pods to be available");
        return waiting(next, message);
    };
    if since(&serving, o.now) < pause {
        return waiting(next, base);
    }
    let this_step = next
        .last_analysis
        .as_ref()
        .filter(|a| a.time.0 >= serving.0);
    let metric = match (&canary.check, this_step) {
        (None, _) => None,
        (Some(_), Some(a)) if a.result == Verdict::Pass.as_str() => None,
        (Some(_), Some(a)) => Some(format!(
            "a passing analysis (last: {}: {})",
            a.result, a.message
        )),
        (Some(_), None) => Some("the first analysis of the step".to_string()),
    };
    let pods = (!o.pods.as_ref().is_some_and(|p| p.available))
        .then(|| "the canary's pods to be available".to_string());
    let missing: Vec<String> = [pods, metric].into_iter().flatten().collect();
    if !missing.is_empty() {
        return waiting(
            next,
            format!("{base}: waiting for {}", missing.join(" and ")),
        );
    }
    let Some(following) = canary.steps.get(step + 1) else {
        let why = format!(
            "all {} steps passed: the stable Deployment rolls to the new template",
            canary.steps.len()
        );
        return promoting(next, why);
    };
    let passed = next.step + 1;
    next.step += 1;
    next.weight = following.weight;
    next.step_started = time(o.now);
    next.serving_since = None;
    next.restarts_at_step_start = o.pods.as_ref().map_or(0, |p| p.restarts);
    next.message = step_message(canary, next.step, next.weight);
    Decision {
        event: Some(Announcement {
            warning: false,
            reason: "CanaryStepPassed",
            message: format!("step {passed} passed; {}", next.message),
        }),
        status: Some(next),
        hold_stable: true,
    }
}

/// Whether the metric is evaluated this reconcile: during a step, every `interval`.
pub fn measurement_due(
    canary: &ResolvedCanary,
    status: Option<&CanaryStatus>,
    now: Timestamp,
) -> bool {
    let (Some(check), Some(status)) = (&canary.check, status) else {
        return false;
    };
    let Some(serving) = status
        .serving_since
        .as_ref()
        .filter(|_| status.phase == CanaryPhase::Progressing)
    else {
        // Not before the canary serves: there would be nothing to measure.
        return false;
    };
    match &status.last_analysis {
        Some(a) if a.time.0 >= serving.0 => since(&a.time, now) >= check.interval,
        _ => true,
    }
}

/// When to look again: the step's end, the next evaluation, or the pods' next check.
pub fn next_look(
    canary: &ResolvedCanary,
    status: Option<&CanaryStatus>,
    now: Timestamp,
) -> Option<Duration> {
    let status = status.filter(|s| s.phase == CanaryPhase::Progressing)?;
    let pause = canary
        .steps
        .get(usize::try_from(status.step).unwrap_or(0))
        .map_or(Duration::ZERO, |s| s.pause);
    // Until the step's pods all serve, a closer look (a scale that changed nothing
    // brings no event).
    let Some(serving) = &status.serving_since else {
        return Some(SERVING_CHECK_INTERVAL);
    };
    let elapsed = since(serving, now);
    let mut next = POD_CHECK_INTERVAL;
    if elapsed < pause {
        next = next.min(pause - elapsed + Duration::from_millis(100));
    }
    if let Some(check) = &canary.check {
        let since_last = status
            .last_analysis
            .as_ref()
            .filter(|a| a.time.0 >= serving.0)
            .map_or(check.interval, |a| since(&a.time, now));
        next = next.min(
            check
                .interval
                .saturating_sub(since_last)
                .max(Duration::from_secs(1)),
        );
    }
    Some(next)
}

/// The conditions a canary overrides, when one is under way or aborted.
pub fn conditions(conds: &mut [Cond], status: Option<&CanaryStatus>) {
    let Some(status) = status else { return };
    let (ready, reconciling) = match status.phase {
        CanaryPhase::Progressing => (
            Some(Cond::new(
                c::READY,
                false,
                c::REASON_CANARY_PROGRESSING,
                status.message.clone(),
            )),
            Cond::new(
                c::RECONCILING,
                true,
                c::REASON_CANARY_PROGRESSING,
                status.message.clone(),
            ),
        ),
        CanaryPhase::Promoting => (
            None,
            Cond::new(
                c::RECONCILING,
                true,
                c::REASON_CANARY_PROMOTING,
                status.message.clone(),
            ),
        ),
        CanaryPhase::Aborted => (
            Some(Cond::new(
                c::READY,
                false,
                c::REASON_CANARY_ABORTED,
                status.message.clone(),
            )),
            Cond::new(
                c::RECONCILING,
                false,
                c::REASON_CANARY_ABORTED,
                status.message.clone(),
            ),
        ),
        CanaryPhase::Succeeded => return,
    };
    for cond in conds.iter_mut() {
        if cond.type_ == c::RECONCILING {
            *cond = reconciling.clone();
        } else if let Some(ready) = ready.as_ref().filter(|_| cond.type_ == c::READY) {
            *cond = ready.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus;
    use crate::validate::{ResolvedCheck, ResolvedStep};

    fn canary(check: bool) -> ResolvedCanary {
        ResolvedCanary {
            steps: vec![
                ResolvedStep {
                    weight: 10,
                    pause: Duration::from_secs(60),
                },
                ResolvedStep {
                    weight: 50,
                    pause: Duration::from_secs(120),
                },
            ],
            check: check.then(|| ResolvedCheck {
                query: "errors".into(),
                min: None,
                max: Some(0.01),
                interval: Duration::from_secs(30),
                failure_limit: 1,
                requests: None,
            }),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + s).unwrap()
    }

    fn observed(now: i64) -> Observed {
        Observed {
            now: at(now),
            generation: 2,
            config_hash: String::new(),
            desired_hash: "new".into(),
            stable_hash: Some("old".into()),
            cause: Cause::User,
            stable: Some(Stable {
                track: Some("stable".into()),
                promoted: false,
            }),
            stable_track: "stable".into(),
            pods: Some(PodHealth {
                available: true,
                ..PodHealth::default()
            }),
            measurement: None,
            annotation: None,
        }
    }

    /// A canary started at 0 whose pods serve from 0.
    fn serving(c: &ResolvedCanary) -> CanaryStatus {
        let s = decide(c, None, &observed(0)).status.unwrap();
        decide(c, Some(&s), &observed(0)).status.unwrap()
    }

    fn pass(v: f64) -> Option<Measurement> {
        Some(prometheus::judge(v, None, Some(0.01)))
    }

    // A whole canary: start, wait out the step, advance one step per reconcile, promote,
    // succeed once the stable Deployment has rolled.
    #[test]
    fn walks_the_steps_and_promotes() {
        let c = canary(false);
        let start = decide(&c, None, &observed(0));
        assert!(start.hold_stable);
        let s = start.status.unwrap();
        assert_eq!(
            (s.phase, s.step, s.weight),
            (CanaryPhase::Progressing, 0, 10)
        );
        assert_eq!(start.event.unwrap().reason, "CanaryStarted");
        assert_eq!(s.serving_since, None);
        // Its pods are available: the step's watch starts.
        let s = decide(&c, Some(&s), &observed(0)).status.unwrap();
        assert_eq!(s.serving_since, Some(time(at(0))));
        // Mid-step: nothing moves.
        let mid = decide(&c, Some(&s), &observed(30));
        assert_eq!(mid.status.as_ref().unwrap().step, 0);
        assert_eq!(
            mid.status.unwrap().message,
            "canary step 1 of 2: 10% of the traffic for 60s"
        );
        // Past the pause with healthy pods: the next step, and only one.
        let s1 = decide(&c, Some(&s), &observed(61)).status.unwrap();
        assert_eq!((s1.step, s1.weight), (1, 50));
        assert_eq!(
            s1.serving_since, None,
            "the new step's pods must serve first"
        );
        let again = decide(&c, Some(&s1), &observed(62)).status.unwrap();
        assert_eq!(again.step, 1);
        assert_eq!(again.serving_since, Some(time(at(62))));
        // Its pause counts from then.
        let early = decide(&c, Some(&again), &observed(181)).status.unwrap();
        assert_eq!(early.phase, CanaryPhase::Progressing);
        // The last step passed: promoting, the stable no longer held.
        let promoting = decide(&c, Some(&again), &observed(183));
        assert!(!promoting.hold_stable);
        let p = promoting.status.unwrap();
        assert_eq!(p.phase, CanaryPhase::Promoting);
        assert_eq!(
            p.weight, 50,
            "the traffic stays split until the stable is rolled"
        );
        let mut rolled = observed(200);
        rolled.stable = Some(Stable {
            track: Some("stable".into()),
            promoted: true,
        });
        let done = decide(&c, Some(&p), &rolled).status.unwrap();
        assert_eq!((done.phase, done.weight), (CanaryPhase::Succeeded, 0));
        // Settled: the same template stays succeeded, nothing held.
        let after = decide(&c, Some(&done), &rolled);
        assert_eq!(after.status.unwrap().phase, CanaryPhase::Succeeded);
        assert!(!after.hold_stable);
    }

    // Pods that are not available hold the step past its pause.
    #[test]
    fn a_step_waits_for_available_pods() {
        let c = canary(false);
        let s = decide(&c, None, &observed(0)).status.unwrap();
        let mut o = observed(90);
        o.pods = Some(PodHealth::default());
        let waiting = decide(&c, Some(&s), &o).status.unwrap();
        assert_eq!(waiting.step, 0);
        assert!(
            waiting.message.contains("waiting for the canary's pods"),
            "{}",
            waiting.message
        );
    }

    // A crash loop or a restart during the step aborts, naming the pod; the stable stays held.
    #[test]
    fn unhealthy_pods_abort() {
        let c = canary(false);
        let s = decide(&c, None, &observed(0)).status.unwrap();
        let mut o = observed(5);
        o.pods = Some(PodHealth {
            crash_looping: Some("web-canary-abc".into()),
            ..PodHealth::default()
        });
        let d = decide(&c, Some(&s), &o);
        let a = d.status.unwrap();
        assert_eq!((a.phase, a.weight), (CanaryPhase::Aborted, 0));
        assert!(a.message.contains("web-canary-abc is in CrashLoopBackOff"));
        assert!(d.hold_stable);
        assert!(d.event.unwrap().warning);
        let mut o = observed(5);
        o.pods = Some(PodHealth {
            available: true,
            restarts: 1,
            restarted_pod: Some("web-canary-x".into()),
            ..PodHealth::default()
        });
        let a = decide(&c, Some(&s), &o).status.unwrap();
        assert!(
            a.message.contains("web-canary-x restarted"),
            "{}",
            a.message
        );
        // Aborted stays aborted for its generation; a new generation starts over.
        let stays = decide(&c, Some(&a), &observed(100)).status.unwrap();
        assert_eq!(stays.phase, CanaryPhase::Aborted);
        let mut next_gen = observed(100);
        next_gen.generation = 3;
        let again = decide(&c, Some(&a), &next_gen).status.unwrap();
        assert_eq!((again.phase, again.step), (CanaryPhase::Progressing, 0));
        // New config data starts over too; the operator's own template change does not.
        let mut new_config = observed(100);
        new_config.config_hash = "cfg-2".into();
        new_config.desired_hash = "newer".into();
        let again = decide(&c, Some(&a), &new_config).status.unwrap();
        assert_eq!(again.phase, CanaryPhase::Progressing);
        let mut operator = observed(100);
        operator.desired_hash = "re-rendered".into();
        let kept = decide(&c, Some(&a), &operator);
        assert_eq!(kept.status.unwrap().phase, CanaryPhase::Aborted);
        assert!(kept.hold_stable);
    }

    // The metric: a pass is needed to advance, inconclusive waits, failures past the limit abort.
    #[test]
    fn the_metric_gates_each_step() {
        let c = canary(true);
        let s = serving(&c);
        // Past the pause, never measured: waits.
        let w = decide(&c, Some(&s), &observed(61)).status.unwrap();
        assert_eq!(w.step, 0);
        assert!(w.message.contains("the first analysis"), "{}", w.message);
        // Inconclusive: never a pass.
        let mut o = observed(61);
        o.measurement = Some(Measurement {
            verdict: Verdict::Inconclusive,
            value: None,
            message: "no data for query errors".into(),
        });
        let inc = decide(&c, Some(&s), &o).status.unwrap();
        assert_eq!(inc.step, 0);
        assert!(
            inc.message.contains("Inconclusive: no data"),
            "{}",
            inc.message
        );
        // A pass moves on.
        let mut o = observed(62);
        o.measurement = pass(0.001);
        assert_eq!(decide(&c, Some(&inc), &o).status.unwrap().step, 1);
        // One failure is tolerated (failureLimit 1), the second aborts with the value.
        let mut o = observed(10);
        o.measurement = pass(0.5);
        let f1 = decide(&c, Some(&s), &o).status.unwrap();
        assert_eq!((f1.phase, f1.failed_checks), (CanaryPhase::Progressing, 1));
        let mut o = observed(40);
        o.measurement = pass(0.7);
        let f2 = decide(&c, Some(&f1), &o).status.unwrap();
        assert_eq!(f2.phase, CanaryPhase::Aborted);
        assert!(f2.message.contains("errors = 0.7"), "{}", f2.message);
        assert!(
            f2.message.contains("2 failed of 1 tolerated"),
            "{}",
            f2.message
        );
    }

    // The annotation decides once per value; a value present at the start is no decision.
    #[test]
    fn the_annotation_promotes_or_aborts_once() {
        let c = canary(false);
        let mut o = observed(0);
        o.annotation = Some("abort".into());
        let s = decide(&c, None, &o).status.unwrap();
        assert_eq!(s.phase, CanaryPhase::Progressing);
        let mut o = observed(5);
        o.annotation = Some("abort".into());
        assert_eq!(
            decide(&c, Some(&s), &o).status.unwrap().phase,
            CanaryPhase::Progressing
        );
        o.annotation = Some("promote".into());
        let p = decide(&c, Some(&s), &o);
        assert_eq!(p.status.unwrap().phase, CanaryPhase::Promoting);
        assert!(!p.hold_stable);
        let fresh = decide(&c, None, &observed(0)).status.unwrap();
        let mut o = observed(5);
        o.annotation = Some("abort".into());
        let a = decide(&c, Some(&fresh), &o).status.unwrap();
        assert_eq!(a.phase, CanaryPhase::Aborted);
        assert!(a.message.contains("safeapp.dev/canary=abort"));
    }

    // No canary for a new app, a template the stable runs, the operator's own change, or
    // a stable whose pods do not carry their track yet.
    #[test]
    fn when_there_is_no_canary() {
        let c = canary(false);
        let mut o = observed(0);
        o.stable = None;
        assert_eq!(decide(&c, None, &o).status, None);
        let mut o = observed(0);
        o.desired_hash = "old".into();
        assert_eq!(decide(&c, None, &o).status, None);
        let mut o = observed(0);
        o.cause = Cause::Operator;
        assert!(!decide(&c, None, &o).hold_stable);
        let mut o = observed(0);
        o.stable = Some(Stable::default());
        assert_eq!(decide(&c, None, &o).status, None);
    }

    // Evaluations come every interval within a step, the next look at the earliest due.
    #[test]
    fn evaluations_and_looks_are_timed() {
        let c = canary(true);
        // Nothing is measured, and the pods are looked at often, until they serve.
        let waiting = decide(&c, None, &observed(0)).status.unwrap();
        assert!(!measurement_due(&c, Some(&waiting), at(0)));
        assert_eq!(
            next_look(&c, Some(&waiting), at(0)),
            Some(SERVING_CHECK_INTERVAL)
        );
        let s = serving(&c);
        assert!(measurement_due(&c, Some(&s), at(0)));
        let mut measured = s.clone();
        measured.last_analysis = Some(CanaryAnalysisResult {
            time: time(at(10)),
            result: "Pass".into(),
            value: Some(0.0),
            message: String::new(),
        });
        assert!(!measurement_due(&c, Some(&measured), at(20)));
        assert!(measurement_due(&c, Some(&measured), at(40)));
        // The pods are looked at every 15 s; the next evaluation 30 s after the last.
        let look = next_look(&c, Some(&measured), at(20)).unwrap();
        assert_eq!(look, POD_CHECK_INTERVAL);
        let look = next_look(&c, Some(&measured), at(35)).unwrap();
        assert_eq!(look, Duration::from_secs(5));
        let no_check = canary(false);
        let look = next_look(&no_check, Some(&s), at(55)).unwrap();
        assert!(look <= Duration::from_secs(6), "{look:?}");
    }
}
