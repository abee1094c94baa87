use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::bindings::bosun::reconciler::types as wit;

/// The type of a Kubernetes Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something the user should look at.
    Warning,
}

/// A Kubernetes Event the host records against the reconciled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or warning.
    pub event_type: EventType,
    /// A short CamelCase reason, e.g. `PodCreated`.
    pub reason: String,
    /// A human-readable description.
    pub note: String,
    /// What was done, CamelCase; defaults to `Reconcile`.
    pub action: String,
}

impl Event {
    /// A `Normal` event.
    pub fn normal(reason: impl Into<String>, note: impl Into<String>) -> Self {
        Event {
            event_type: EventType::Normal,
            reason: reason.into(),
            note: note.into(),
            action: "Reconcile".to_owned(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: impl Into<String>, note: impl Into<String>) -> Self {
        Event {
            event_type: EventType::Warning,
            ..Event::normal(reason, note)
        }
    }

    /// Sets the action (what was done), e.g. `Scheduling`.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = action.into();
        self
    }

    pub(crate) fn into_wit(self) -> wit::Event {
        wit::Event {
            event_type: match self.event_type {
                EventType::Normal => wit::EventType::Normal,
                EventType::Warning => wit::EventType::Warning,
            },
            reason: self.reason,
            note: self.note,
            action: self.action,
        }
    }

    pub(crate) fn from_wit(event: wit::Event) -> Self {
        Event {
            event_type: match event.event_type {
                wit::EventType::Normal => EventType::Normal,
                wit::EventType::Warning => EventType::Warning,
            },
            reason: event.reason,
            note: event.note,
            action: event.action,
        }
    }
}

/// The desired state for one object: built up with chained calls and
/// returned from [`Reconciler::reconcile`](crate::Reconciler::reconcile).
///
/// Return every child you want on every call; the host prunes the children
/// it observed that you no longer return.
#[derive(Debug, Default)]
#[must_use]
pub struct Response {
    children: Vec<String>,
    status: Option<String>,
    requeue_after: Option<Duration>,
    events: Vec<Event>,
    // Serialization failures surface when the response is returned, so that
    // building it stays a chain of calls.
    error: Option<Error>,
}

impl Response {
    /// An empty response: no children, status untouched, no requeue.
    pub fn new() -> Self {
        Response::default()
    }

    /// Adds a desired child. The host fills in its namespace and the
    /// controller ownerReference; set only what you want to own.
    pub fn child<K>(mut self, child: K) -> Self
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        let encoded = serde_json::to_value(&child).and_then(|mut value| {
            if let Value::Object(fields) = &mut value {
                fields
                    .entry("apiVersion")
                    .or_insert_with(|| Value::String(K::api_version(&()).into_owned()));
                fields
                    .entry("kind")
                    .or_insert_with(|| Value::String(K::kind(&()).into_owned()));
            }
            serde_json::to_string(&value)
        });
        match encoded {
            Ok(json) => self.children.push(json),
            Err(e) => self.fail(format!(
                "a desired {} does not serialize: {e}",
                K::kind(&())
            )),
        }
        self
    }

    /// Sets the desired status of the object. The host writes it to the
    /// status subresource and sets `observedGeneration`.
    pub fn status<S: Serialize>(mut self, status: S) -> Self {
        match serde_json::to_string(&status) {
            Ok(json) => self.status = Some(json),
            Err(e) => self.fail(format!("the status does not serialize: {e}")),
        }
        self
    }

    /// Asks the host to reconcile this object again after `delay`, even if
    /// nothing changes.
    pub fn requeue_after(mut self, delay: Duration) -> Self {
        self.requeue_after = Some(delay);
        self
    }

    /// Records an event against the object.
    pub fn event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    fn fail(&mut self, message: String) {
        self.error
            .get_or_insert_with(|| Error::retryable("SerializationFailed", message));
    }

    pub(crate) fn into_wit(self) -> Result<wit::Response, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(wit::Response {
            children: self.children,
            status: self.status,
            requeue_after_ms: self.requeue_after.map(duration_ms),
            events: self.events.into_iter().map(Event::into_wit).collect(),
        })
    }
}

/// The answer to [`Reconciler::finalize`](crate::Reconciler::finalize).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Finalized {
    done: bool,
    requeue_after: Option<Duration>,
    events: Vec<Event>,
}

impl Finalized {
    /// Cleanup is complete: the host removes the finalizer.
    pub fn done() -> Self {
        Finalized {
            done: true,
            ..Finalized::default()
        }
    }

    /// Cleanup is still under way: call `finalize` again after `delay`.
    pub fn pending(delay: Duration) -> Self {
        Finalized {
            done: false,
            requeue_after: Some(delay),
            events: Vec::new(),
        }
    }

    /// Records an event against the object.
    pub fn event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    pub(crate) fn into_wit(self) -> wit::FinalizeResponse {
        wit::FinalizeResponse {
            done: self.done,
            requeue_after_ms: self.requeue_after.map(duration_ms),
            events: self.events.into_iter().map(Event::into_wit).collect(),
        }
    }
}

/// Rounds up, so that a requeue never comes due before the time asked for.
fn duration_ms(delay: Duration) -> u64 {
    u64::try_from(delay.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}
