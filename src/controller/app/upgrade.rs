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
//! **Slots.** The leader keeps them in memory and writes each holder to its SafeApp's
//! `status.upgradeSlot`; a new leader reads those from its cache before it gives out
//! any ([`Slots::seed`]), so a failover never runs more than the limit. A slot is freed
//! by the Deployment's own status event: the reconcile it triggers sees the rollout
//! settled (available on the new template, or ProgressDeadlineExceeded, which shows in
//! the SafeApp's status) and frees it, and the waiting apps it names are reconciled at
//! once ([`Slots::release`]; no timer). It is also freed when the app can no longer
//! roll (paused, invalid, denied, deferred, its Deployment not appliable, deleted), or
//! after [`SLOT_TIMEOUT`] (a SafeApp that vanished without a last reconcile). A
//! deferred app, a paused or invalid one, and a Deployment someone else paused never
//! take a slot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::v1alpha1::TemplateRecord;

/// SafeApp annotation: `now` takes a pending upgrade at once, `defer` holds it.
pub const UPGRADE_ANNOTATION: &str = "safeapp.dev/upgrade";
/// A slot not freed by its rollout within this long is freed anyway.
pub const SLOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

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

/// The upgrade slots: who holds one (since when), and who waits for one, in the order
/// they asked. The holders are also written to each SafeApp's `status.upgradeSlot`, so a
/// new leader starts from them ([`Slots::seed`]) instead of from free slots.
pub struct Slots {
    max: usize,
    inner: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    holders: HashMap<String, Instant>,
    /// Waiting apps, oldest first.
    waiting: Vec<String>,
    /// Whether the holders recorded in the cluster were read (once, by a new leader).
    seeded: bool,
}

impl Slots {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            inner: Mutex::new(SlotState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the holders recorded in the cluster (the SafeApps whose status says they
    /// hold a slot), once: a new leader never runs more than the limit while the old
    /// leader's rollouts finish. Returns whether this call seeded.
    pub fn seed(&self, holders: impl IntoIterator<Item = String>) -> bool {
        let mut st = self.lock();
        if st.seeded {
            return false;
        }
        st.seeded = true;
        let now = Instant::now();
        for key in holders {
            st.holders.entry(key).or_insert(now);
        }
        true
    }

    /// Whether [`Slots::seed`] has run.
    pub fn seeded(&self) -> bool {
        self.lock().seeded
    }

    /// Takes a slot for `key` if one is free (or `key` already holds one); else `key`
    /// waits, and is woken when a slot is freed ([`Slots::release`]).
    pub fn try_acquire(&self, key: &str) -> bool {
        let mut st = self.lock();
        st.holders.retain(|_, since| since.elapsed() < SLOT_TIMEOUT);
        if st.holders.contains_key(key) {
            return true;
        }
        // A free slot goes to the longest waiting apps first: one that asks for the first
        // time queues behind them.
        let free = self.max.saturating_sub(st.holders.len());
        let position = st.waiting.iter().position(|w| w == key);
        if position.unwrap_or(st.waiting.len()) >= free {
            if position.is_none() {
                st.waiting.push(key.to_string());
            }
            return false;
        }
        st.waiting.retain(|w| w != key);
        st.holders.insert(key.to_string(), Instant::now());
        true
    }

    pub fn holds(&self, key: &str) -> bool {
        self.lock().holders.contains_key(key)
    }

    /// `key` no longer waits (it rolls without a slot, or defers).
    pub fn unwait(&self, key: &str) {
        self.lock().waiting.retain(|w| w != key);
    }

    /// Forgets the holders and waiting apps `exists` denies (SafeApps deleted without a
    /// last reconcile). Returns the waiting apps to wake for the slots that freed.
    #[must_use = "the apps to wake"]
    pub fn retain(&self, exists: impl Fn(&str) -> bool) -> Vec<String> {
        let mut st = self.lock();
        let before = st.holders.len();
        st.holders.retain(|k, _| exists(k));
        st.waiting.retain(|k| exists(k));
        if st.holders.len() == before {
            return Vec::new();
        }
        let free = self.max.saturating_sub(st.holders.len());
        st.waiting.iter().take(free).cloned().collect()
    }

    /// Frees `key`'s slot and stops it waiting. Returns the waiting apps to wake, as
    /// many as slots are now free, oldest first: they take the slot in their reconcile.
    #[must_use = "the apps to wake"]
    pub fn release(&self, key: &str) -> Vec<String> {
        let mut st = self.lock();
        st.waiting.retain(|w| w != key);
        if st.holders.remove(key).is_none() {
            return Vec::new();
        }
        let free = self.max.saturating_sub(st.holders.len());
        st.waiting.iter().take(free).cloned().collect()
    }

    /// The number of slots.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.lock().holders.len()
    }

    /// Apps waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// What made the operator render another template, from the record of the last one:
/// its version, its policy, or (for a record without them) its rendering.
pub fn why(record: Option<&TemplateRecord>, version: &str, policy_hash: &str) -> String {
    match record {
        Some(r) if !r.operator_version.is_empty() && r.operator_version != version => format!(
            "the operator was upgraded ({} to {version})",
            r.operator_version
        ),
        Some(r) if !r.policy_hash.is_empty() && r.policy_hash != policy_hash => {
            "the operator policy changed".to_string()
        }
        _ => "the operator renders the pod template differently (a new operator version or policy)"
            .to_string(),
    }
}

/// The step for a cause, taking a slot when the operator's change may go now.
pub fn step(cause: Cause, annotation: Option<&str>, slots: &Slots, key: &str) -> Step {
    match (cause, annotation) {
        (Cause::Unchanged | Cause::User, _) | (Cause::Operator, Some("now")) => {
            slots.unwait(key);
            Step::Roll
        }
        (Cause::Operator, Some("defer")) => {
            slots.unwait(key);
            Step::Hold(HoldReason::Deferred)
        }
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
            ..TemplateRecord::default()
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
        // c rolled at once (`now`): it waits no more. Freeing a slot names the app to
        // wake: the oldest waiting one.
        assert_eq!(slots.waiting(), 0);
        assert_eq!(
            step(Cause::Operator, None, &slots, "c"),
            Step::Hold(HoldReason::WaitingForSlot)
        );
        assert_eq!(slots.release("a"), ["c"]);
        assert_eq!(step(Cause::Operator, None, &slots, "c"), Step::RollInSlot);
        assert_eq!(slots.in_use(), 2);
        assert_eq!(slots.waiting(), 0);
        // Releasing what holds nothing wakes nobody.
        assert!(slots.release("zzz").is_empty());
    }

    // A freed slot goes to the app that waited longest, not to the first to ask again.
    #[test]
    fn slots_go_in_waiting_order() {
        let slots = Slots::new(1);
        assert!(slots.try_acquire("a"));
        assert!(!slots.try_acquire("b"));
        assert!(!slots.try_acquire("c"));
        assert_eq!(slots.release("a"), ["b"]);
        assert!(!slots.try_acquire("c"), "c waits behind b");
        assert!(!slots.try_acquire("d"), "a newcomer queues too");
        assert!(slots.try_acquire("b"));
        assert_eq!(slots.release("b"), ["c"]);
        assert!(slots.try_acquire("c"));
    }

    // The upgrade's Event says what changed: the operator's version, else its policy.
    #[test]
    fn why_an_upgrade() {
        let old = TemplateRecord {
            operator_version: "0.1.0".into(),
            policy_hash: "p1".into(),
            ..TemplateRecord::default()
        };
        assert!(why(Some(&old), "0.2.0", "p1").contains("0.1.0 to 0.2.0"));
        assert!(why(Some(&old), "0.1.0", "p2").contains("policy changed"));
        assert!(why(None, "0.1.0", "p2").contains("renders the pod template differently"));
    }

    // A deleted app neither holds a slot nor blocks the queue: forgetting it wakes the
    // next waiting app.
    #[test]
    fn deleted_apps_are_forgotten() {
        let slots = Slots::new(1);
        assert!(slots.try_acquire("gone-holder"));
        assert!(!slots.try_acquire("gone-waiter"));
        assert!(!slots.try_acquire("next"));
        assert_eq!(slots.retain(|k| !k.starts_with("gone")), ["next"]);
        assert!(slots.try_acquire("next"));
    }

    // A new leader starts from the holders recorded in the cluster, once.
    #[test]
    fn seeded_from_the_cluster() {
        let slots = Slots::new(2);
        assert!(slots.seed(["ns/a".to_string(), "ns/b".to_string()]));
        assert!(!slots.seed(["ns/c".to_string()]));
        assert_eq!(slots.in_use(), 2);
        assert!(!slots.try_acquire("ns/c"));
    }
}
