//! Warning events on the objects the informers skip, so that whoever wrote
//! one sees on the object why nothing acts on it.
//!
//! An event needs only the object's kind, namespace, name and uid, which
//! decoding reads even from an object it skips (see `decode.rs`). Like
//! every write, events wait until this host leads: a standby records
//! nothing, and what it skipped meanwhile is recorded once it leads (at
//! most [`PENDING`] events wait; the log and the metrics count every
//! skipped object all the same).
//!
//! Each write of an undecodable object is a new version the informers
//! report, so an author rewriting one could make the host write an event
//! per write: an object gets at most one `Undecodable` event per
//! [`QUIET`], and at most [`MAX_RECENT`] objects are remembered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::CacheObserver;
use super::decode::{MAX_DEPTH, MAX_OBJECT_BYTES, SkippedObject};
use crate::meta::{Kind, truncate_at_char_boundary};

/// The event's reason.
pub const REASON: &str = "Undecodable";

/// Events waiting to be recorded, at most.
pub const PENDING: usize = 256;

/// The Events API takes notes of at most this many bytes.
const MAX_NOTE_BYTES: usize = 1024;

/// How long after an object's `Undecodable` event another one for it is
/// not recorded (kube-runtime's recorder folds repeats for 6 minutes).
pub const QUIET: Duration = Duration::from_secs(600);

/// The most objects whose last event time is remembered.
pub const MAX_RECENT: usize = 4096;

/// Records a Warning event `Undecodable` on each object the informers skip
/// (at most one per object every [`QUIET`]), while this host leads. A
/// [`CacheObserver`].
pub struct SkipEvents {
    pending: mpsc::Sender<(Kind, SkippedObject)>,
    task: JoinHandle<()>,
}

impl SkipEvents {
    /// Records through `client` as reporter `bosun`, whenever `leading` is
    /// true.
    pub fn start(client: kube::Client, leading: watch::Receiver<bool>) -> Self {
        let (pending, receiver) = mpsc::channel(PENDING);
        let recorder = Recorder::new(client, Reporter::from("bosun"));
        let task = tokio::spawn(record(recorder, leading, receiver));
        SkipEvents { pending, task }
    }
}

impl Drop for SkipEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CacheObserver for SkipEvents {
    fn undecodable(&self, kind: &Kind, _namespace: Option<&str>, object: &SkippedObject) {
        if object.metadata.name.is_none() {
            // Nothing to record it on; the log line and metrics say it.
            return;
        }
        if self
            .pending
            .try_send((kind.clone(), object.clone()))
            .is_err()
        {
            tracing::debug!(kind = %kind, object = %object.describe(), "too many Undecodable events waiting; not recording this one");
        }
    }
}

async fn record(
    recorder: Recorder,
    mut leading: watch::Receiver<bool>,
    mut pending: mpsc::Receiver<(Kind, SkippedObject)>,
) {
    let mut recent = Recent::default();
    while let Some((kind, object)) = pending.recv().await {
        // A standby writes nothing; a host that lost the lease, nothing more.
        if leading.wait_for(|leads| *leads).await.is_err() {
            return;
        }
        if !recent.admit(&kind, &object, Instant::now()) {
            continue;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: REASON.to_owned(),
            note: Some(note(&kind, &object)),
            action: "Decode".to_owned(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference(&kind, &object)).await {
            tracing::warn!(kind = %kind, object = %object.describe(), %error, "could not record the Undecodable event");
        }
    }
}

/// What the event says: why, the bounds, and what it takes.
fn note(kind: &Kind, object: &SkippedObject) -> String {
    let note = format!(
        "bosun skipped this {}: {}. bosun reads objects nested at most {MAX_DEPTH} levels deep and of at most {MAX_OBJECT_BYTES} bytes; this one is not cached, and no module reconciles or reads it, until a version within those bounds replaces it.",
        kind.kind, object.reason
    );
    truncate_at_char_boundary(&note, MAX_NOTE_BYTES).to_owned()
}

/// When each object last got an event.
#[derive(Default)]
struct Recent {
    at: HashMap<(String, String), Instant>,
}

impl Recent {
    /// Whether `object` may get an event at `now`; if so, notes it.
    fn admit(&mut self, kind: &Kind, object: &SkippedObject, now: Instant) -> bool {
        let who = object
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| object.describe());
        let key = (kind.to_string(), who);
        if self
            .at
            .get(&key)
            .is_some_and(|last| now.duration_since(*last) < QUIET)
        {
            return false;
        }
        if self.at.len() >= MAX_RECENT {
            self.at.retain(|_, last| now.duration_since(*last) < QUIET);
        }
        if self.at.len() >= MAX_RECENT {
            // Every one is recent: the oldest goes.
            let oldest = self
                .at
                .iter()
                .min_by_key(|(_, last)| **last)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.at.remove(&oldest);
            }
        }
        self.at.insert(key, now);
        true
    }
}

fn reference(kind: &Kind, object: &SkippedObject) -> ObjectReference {
    ObjectReference {
        api_version: Some(kind.api_version()),
        kind: Some(kind.kind.clone()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::super::decode::Undecodable;
    use super::*;
    use crate::meta::Scope;

    fn skipped(reason: Undecodable) -> SkippedObject {
        SkippedObject {
            metadata: ObjectMeta {
                name: Some("deep".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                resource_version: Some("9".into()),
                ..ObjectMeta::default()
            },
            reason,
        }
    }

    #[test]
    fn the_event_names_the_object_and_says_why_and_what_it_takes() {
        let kind = Kind::for_test("tests.bosun.dev", "Misbehave", Scope::Namespaced);
        let object = skipped(Undecodable::TooDeep { limit: 100 });
        let reference = reference(&kind, &object);
        assert_eq!(reference.api_version.as_deref(), Some("tests.bosun.dev/v1"));
        assert_eq!(reference.kind.as_deref(), Some("Misbehave"));
        assert_eq!(reference.namespace.as_deref(), Some("shop"));
        assert_eq!(reference.uid.as_deref(), Some("u1"));
        assert_eq!(
            reference.resource_version, None,
            "events of one object fold into a series across its versions"
        );
        let said = note(&kind, &object);
        assert!(
            said.contains("Misbehave: it is nested deeper than 100 levels."),
            "{said}"
        );
        assert!(
            said.contains("until a version within those bounds replaces it"),
            "{said}"
        );

        let long = skipped(Undecodable::Malformed {
            reason: "x".repeat(4096),
        });
        assert!(note(&kind, &long).len() <= MAX_NOTE_BYTES);
    }

    #[test]
    fn an_object_rewritten_again_and_again_gets_one_event_per_quiet_period() {
        let kind = Kind::for_test("tests.bosun.dev", "Misbehave", Scope::Namespaced);
        let object = skipped(Undecodable::TooDeep { limit: 100 });
        let mut recent = Recent::default();
        let start = Instant::now();
        assert!(recent.admit(&kind, &object, start));
        for second in 1..600 {
            let now = start + Duration::from_secs(second);
            assert!(!recent.admit(&kind, &object, now), "at {second} s");
        }
        assert!(recent.admit(&kind, &object, start + QUIET));

        // Memory stays bounded however many objects there are.
        for n in 0..MAX_RECENT + 10 {
            let mut other = object.clone();
            other.metadata.uid = Some(format!("u-{n}"));
            assert!(recent.admit(&kind, &other, start + QUIET));
        }
        assert_eq!(recent.at.len(), MAX_RECENT);
    }
}
