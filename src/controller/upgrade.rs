//! Staged rollout of operator-caused pod-template changes: a new operator version or a
//! new policy that changes the rendered template rolls at most
//! `upgrades.maxConcurrentTemplateUpgrades` Deployments at a time, the next starting
//! when an upgraded Deployment is available again.
//!
//! **How the operator knows who caused a change.** `status.template` records the hash of
//! the pod template last rolled out, the SafeApp generation it was rendered from and the
//! config-data hash it carried. A newly rendered template with another hash is
//! - the user's, when the generation or the config hash moved since (rolls at once);
//! - the operator's, when neither did: the same spec and the same config now render
//!   differently, so the renderer (operator version) or the policy changed (staged).
//!
//! A SafeApp without a record (created by an operator before this one) counts as
//! unchanged by its user when its status has already observed its current generation;
//! its Deployment then stages if the live template differs from the rendered one.
//!
//! **How a change waits.** A waiting SafeApp is reconciled in full, the new template
//! included, with `spec.paused: true` on its Deployment: every other field is
//! drift-repaired, nothing rolls, and status says `UpgradePending=True`. Taking the slot
//! drops the pause, and the Deployment rolls with its usual strategy. The annotation
//! `safeapp.dev/upgrade: now` skips the queue; `defer` waits until it is removed.
//!
//! Slots live in the leader's memory. After a failover the new leader starts with
//! free slots while the old one's rollouts finish: briefly up to twice the limit. A slot
//! is freed when the Deployment is available on the new template, when it reports
//! ProgressDeadlineExceeded (the failure shows in the SafeApp's status), when the app
//! can no longer roll (paused, invalid, denied, its Deployment not appliable, deleted),
//! or after [`SLOT_TIMEOUT`] (a SafeApp that vanished without a last reconcile). A
//! Deployment someone else paused takes no slot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::v1alpha1::TemplateRecord;

/// SafeApp annotation: `now` takes a pending upgrade at once, `defer` holds it.
pub const UPGRADE_ANNOTATION: &str = "safeapp.dev/upgrade";
/// A slot not freed by its rollout within this long is freed anyway.
pub const SLOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often a waiting SafeApp asks for a slot again.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(10);

/// Why the rendered template differs from the one last rolled out, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Same template (any live difference is drift, repaired as usual).
    Unchanged,
    /// The SafeApp's spec or its referenced config changed, or it is new: roll at once.
    User,
    /// Same spec, same config, another rendering: the operator's change, staged.
    Operator,
}

/// What the Deployment apply does with the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Apply as rendered; record the template as rolled out.
    Roll,
    /// Apply as rendered in a slot just taken; record it.
    RollInSlot,
    /// Apply as rendered but paused; keep the old record.
    Hold(HoldReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    /// Every slot is taken.
    WaitingForSlot,
    /// The SafeApp says `safeapp.dev/upgrade: defer`.
    Deferred,
}

/// What the record and the app say about the newly rendered template. Pure.
pub fn classify(
    record: Option<&TemplateRecord>,
    generation: i64,
    observed_generation: Option<i64>,
    new_hash: &str,
    config_hash: &str,
    live_template_differs: Option<bool>,
) -> Cause {
    match record {
        Some(r) if r.hash == new_hash => Cause::Unchanged,
        Some(r) if r.generation != generation || r.config_hash != config_hash => Cause::User,
        Some(_) => Cause::Operator,
        // No record: a Deployment from an earlier operator, or none yet.
        None => match live_template_differs {
            Some(true) if observed_generation == Some(generation) => Cause::Operator,
            Some(false) => Cause::Unchanged,
            _ => Cause::User,
        },
    }
}

/// The in-memory upgrade slots (the leader's).
pub struct Slots {
    max: usize,
    holders: Mutex<HashMap<String, Instant>>,
}

impl Slots {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            holders: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for `key` if one is free (or `key` already holds one).
    pub fn try_acquire(&self, key: &str) -> bool {
        let mut holders = self.lock();
        holders.retain(|_, since| since.elapsed() < SLOT_TIMEOUT);
        if holders.contains_key(key) {
            return true;
        }
        if holders.len() >= self.max {
            return false;
        }
        holders.insert(key.to_string(), Instant::now());
        true
    }

    pub fn holds(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub fn release(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The number of slots.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.lock().len()
    }
}

/// The step for a cause, taking a slot when the operator's change may go now.
pub fn step(cause: Cause, annotation: Option<&str>, slots: &Slots, key: &str) -> Step {
    match (cause, annotation) {
        (Cause::Unchanged | Cause::User, _) | (Cause::Operator, Some("now")) => Step::Roll,
        (Cause::Operator, Some("defer")) => Step::Hold(HoldReason::Deferred),
        (Cause::Operator, _) if slots.try_acquire(key) => Step::RollInSlot,
        (Cause::Operator, _) => Step::Hold(HoldReason::WaitingForSlot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, generation: i64, config: &str) -> TemplateRecord {
        TemplateRecord {
            hash: hash.into(),
            generation,
            config_hash: config.into(),
        }
    }

    // A new hash is the user's when the spec or the config moved, the operator's when
    // neither did; the same hash is no change.
    #[test]
    fn causes() {
        let r = record("h1", 3, "c1");
        assert_eq!(
            classify(Some(&r), 3, Some(3), "h1", "c1", None),
            Cause::Unchanged
        );
        assert_eq!(
            classify(Some(&r), 4, Some(3), "h2", "c1", None),
            Cause::User
        );
        assert_eq!(
            classify(Some(&r), 3, Some(3), "h2", "c2", None),
            Cause::User
        );
        assert_eq!(
            classify(Some(&r), 3, Some(3), "h2", "c1", None),
            Cause::Operator
        );
        // Without a record: a new app, an edited one, or an older operator's Deployment.
        assert_eq!(classify(None, 1, None, "h", "", None), Cause::User);
        assert_eq!(classify(None, 2, Some(1), "h", "", Some(true)), Cause::User);
        assert_eq!(
            classify(None, 2, Some(2), "h", "", Some(true)),
            Cause::Operator
        );
        assert_eq!(
            classify(None, 2, Some(2), "h", "", Some(false)),
            Cause::Unchanged
        );
    }

    // At most `max` operator-caused upgrades hold a slot; `now` and `defer` bypass it;
    // a released slot goes to the next.
    #[test]
    fn slots_bound_operator_upgrades() {
        let slots = Slots::new(2);
        assert_eq!(step(Cause::Operator, None, &slots, "a"), Step::RollInSlot);
        assert_eq!(step(Cause::Operator, None, &slots, "b"), Step::RollInSlot);
        assert_eq!(step(Cause::Operator, None, &slots, "a"), Step::RollInSlot);
        assert_eq!(
            step(Cause::Operator, None, &slots, "c"),
            Step::Hold(HoldReason::WaitingForSlot)
        );
        assert_eq!(step(Cause::Operator, Some("now"), &slots, "c"), Step::Roll);
        assert_eq!(
            step(Cause::Operator, Some("defer"), &slots, "d"),
            Step::Hold(HoldReason::Deferred)
        );
        assert_eq!(step(Cause::User, None, &slots, "e"), Step::Roll);
        slots.release("a");
        assert_eq!(step(Cause::Operator, None, &slots, "c"), Step::RollInSlot);
        assert_eq!(slots.in_use(), 2);
    }
}
