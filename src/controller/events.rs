//! Events on transitions only: children created, drift corrected, spec became invalid,
//! name conflict, child pruned, a write refused. PascalCase reasons; publishing is best
//! effort (an Event that cannot be written never fails a reconcile).
//!
//! The operator writes `events.k8s.io/v1` Events itself instead of through kube's
//! `Recorder`: that one folds every Event with the same reason and object into one series
//! for minutes and keeps the first note, so a second `DriftCorrected` naming other fields
//! would show the old fields. Here an Event is folded into a series only when its note is
//! the same too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tracing::warn;

pub const CREATED: &str = "Created";
pub const DRIFT_CORRECTED: &str = "DriftCorrected";
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const NAME_CONFLICT: &str = "NameConflict";
pub const PRUNED: &str = "Pruned";
pub const APPLY_FAILED: &str = "ApplyFailed";
/// The operator rolls its own new pod template (a new version or policy): not drift.
pub const TEMPLATE_UPGRADED: &str = "TemplateUpgraded";
/// A pod stuck on a reverted revision was deleted so its StatefulSet recreates it.
pub const REPLACED_STUCK_POD: &str = "ReplacedStuckPod";
/// A StatefulSet's rollout waits on a pod that does not become ready.
pub const ROLLOUT_STUCK: &str = "RolloutStuck";

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// How long repeats of one Event are folded into its series (as the API server's own
/// event recorder does).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// The API's limit on an Event note.
const NOTE_LIMIT: usize = 1000;

/// (type, reason, object uid or path, note)
type Key = (EventType, String, String, String);

struct Sent {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// Writes Events for the operator; one per process, shared by every reconcile.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    sent: Mutex<HashMap<Key, Sent>>,
}

/// Cuts `text` to at most `limit` bytes on a character boundary, marking the cut.
pub fn bounded(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut cut = limit.saturating_sub(3);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// As many of `items` as fit in `limit` bytes, joined by "; ", and how many were left
/// out ("; and 3 more"): a status message must stay small whatever the input.
pub fn bounded_list(items: &[String], limit: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let rest = items.len() - i - 1;
        let tail = if rest > 0 {
            format!("; and {rest} more")
        } else {
            String::new()
        };
        let sep = if out.is_empty() { "" } else { "; " };
        if out.len() + sep.len() + item.len() + tail.len() > limit {
            let left = items.len() - i;
            if out.is_empty() {
                // Not even the first fits: cut it.
                return bounded(format!("{item} (and {} more)", left - 1), limit);
            }
            out.push_str(&format!("; and {left} more"));
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
    }
    out
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            instance: instance.unwrap_or_else(|| controller.to_string()),
            controller: controller.into(),
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes one Event about `regarding`. A repeat of the same Event (same note)
    /// within minutes increments its series instead of making a new one.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        if let Err(e) = self.try_publish(regarding, type_, reason, note).await {
            warn!(error = %e, reason, "Could not publish event");
        }
    }

    async fn try_publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let note = bounded(note, NOTE_LIMIT);
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let object = regarding
            .uid
            .clone()
            .unwrap_or_else(|| format!("{:?}/{:?}", regarding.kind, regarding.name));
        let key: Key = (type_, reason.to_string(), object, note.clone());
        let now = Timestamp::now();
        let repeat = {
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            sent.retain(|_, s| {
                now.duration_since(s.last).as_secs() < SERIES_WINDOW.as_secs() as i64
            });
            sent.get_mut(&key).map(|s| {
                s.count += 1;
                s.last = now;
                (s.name.clone(), s.namespace.clone(), s.count)
            })
        };
        if let Some((name, ns, count)) = repeat {
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            Api::<Event>::namespaced(self.client.clone(), &ns)
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "series": series })),
                )
                .await?;
            return Ok(());
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or("safeapp"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_.as_str().into()),
            reason: Some(reason.into()),
            action: Some(reason.into()),
            note: Some(note),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key,
            Sent {
                name,
                namespace,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

/// Publishes one Event about `app` (a SafeApp or a SafeJob).
pub async fn publish(
    recorder: &Recorder,
    app: &impl Resource<DynamicType = ()>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    recorder
        .publish(&app.object_ref(&()), type_, reason, note)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Problems that do not fit are counted, not cut in the middle.
    #[test]
    fn bounded_list_counts_the_rest() {
        let items: Vec<String> = (0..100)
            .map(|i| format!("spec.ports[{i}].name: too long"))
            .collect();
        let text = bounded_list(&items, 200);
        assert!(text.len() <= 200, "{}", text.len());
        assert!(text.starts_with("spec.ports[0].name: too long; spec.ports[1]"));
        let shown = text.matches("too long").count();
        assert!(
            text.ends_with(&format!("; and {} more", 100 - shown)),
            "{text}"
        );
        assert_eq!(
            bounded_list(&items[..2], 200),
            format!("{}; {}", items[0], items[1])
        );
        assert!(bounded_list(&["x".repeat(500)], 100).len() <= 100);
    }
}
