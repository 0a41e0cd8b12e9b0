//! Events on transitions only: children created, drift corrected, spec became invalid,
//! name conflict, child pruned. PascalCase reasons; publishing is best effort (an Event
//! that cannot be written never fails a reconcile).

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use crate::api::SafeApp;

pub const CREATED: &str = "Created";
pub const DRIFT_CORRECTED: &str = "DriftCorrected";
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const NAME_CONFLICT: &str = "NameConflict";
pub const PRUNED: &str = "Pruned";

/// Publishes one Event about `app`. Notes are cut to the API's 1 kB limit.
pub async fn publish(
    recorder: &Recorder,
    app: &SafeApp,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let mut note = note;
    if note.len() > 1000 {
        let mut cut = 997;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &app.object_ref(&())).await {
        warn!(error = %e, reason, "Could not publish event");
    }
}
