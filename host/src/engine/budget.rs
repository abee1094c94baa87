//! What one call may produce: the bounds on a guest's output in count as
//! well as bytes, checked (or cut) before anything leaves the engine.
//!
//! Bytes alone do not bound the host's work: two million tiny events fit in
//! 8 MiB, and each is an API request. So counts are capped too. What a
//! guest could only get wrong by being careless (an over-long error
//! message, a requeue of zero) is cut or raised to the bound rather than
//! failing the call; what it returns in bulk (children, events) beyond the
//! bound fails the call, since dropping part of a desired state would make
//! the host write something the guest never asked for.

use super::CallError;
use super::bindings::{Event, FinalizeResponse, ReconcileError, Response};
use crate::limits::Limits;
use crate::meta::truncate_at_char_boundary;

/// Checks a reconcile's response against `limits` and settles what can be
/// settled: the requeue is raised to the floor.
pub(super) fn check_response(
    module: &str,
    response: &mut Response,
    limits: &Limits,
) -> Result<(), CallError> {
    count(module, "children", response.children.len(), limits.children)?;
    count(module, "events", response.events.len(), limits.events)?;
    let size = response.children.iter().map(String::len).sum::<usize>()
        + response.status.as_ref().map_or(0, String::len)
        + events_size(&response.events);
    bytes(module, size, limits.output_bytes)?;
    response.requeue_after_ms = raise_requeue(module, response.requeue_after_ms, limits);
    Ok(())
}

/// Checks a finalize's response against `limits`, as [`check_response`].
pub(super) fn check_finalize(
    module: &str,
    response: &mut FinalizeResponse,
    limits: &Limits,
) -> Result<(), CallError> {
    count(module, "events", response.events.len(), limits.events)?;
    bytes(module, events_size(&response.events), limits.output_bytes)?;
    response.requeue_after_ms = raise_requeue(module, response.requeue_after_ms, limits);
    Ok(())
}

/// Cuts the reason and message of a guest's error to what a condition and
/// an event can hold.
pub(super) fn cut_error(error: &mut ReconcileError, limits: &Limits) {
    let failure = match error {
        ReconcileError::Retryable(f) | ReconcileError::Permanent(f) => f,
    };
    cut(&mut failure.message, limits.message_bytes);
    cut(&mut failure.reason, MAX_REASON_BYTES);
}

/// A condition's `reason` holds at most 1024 bytes; event reasons far less,
/// and those are cut where they are written.
const MAX_REASON_BYTES: usize = 1024;

fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let kept = truncate_at_char_boundary(text, max.saturating_sub('…'.len_utf8())).len();
        text.truncate(kept);
        text.push('…');
    }
}

fn events_size(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| e.reason.len() + e.note.len() + e.action.len())
        .sum()
}

fn count(module: &str, what: &'static str, count: usize, limit: usize) -> Result<(), CallError> {
    if count > limit {
        return Err(CallError::TooMany {
            module: module.to_owned(),
            what,
            count,
            limit,
        });
    }
    Ok(())
}

fn bytes(module: &str, size: usize, limit: usize) -> Result<(), CallError> {
    if size > limit {
        return Err(CallError::OutputTooLarge {
            module: module.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

fn raise_requeue(module: &str, requeue_after_ms: Option<u64>, limits: &Limits) -> Option<u64> {
    let floor = u64::try_from(limits.min_requeue.as_millis()).unwrap_or(u64::MAX);
    requeue_after_ms.map(|ms| {
        if ms < floor {
            tracing::debug!(
                module,
                asked_ms = ms,
                floor_ms = floor,
                "requeue raised to the floor"
            );
            floor
        } else {
            ms
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bindings::{EventType, Failure};
    use crate::limits::DEFAULT_MIN_REQUEUE;

    fn event() -> Event {
        Event {
            event_type: EventType::Normal,
            reason: "Made".into(),
            note: String::new(),
            action: "Reconcile".into(),
        }
    }

    fn response(children: usize, events: usize, requeue: Option<u64>) -> Response {
        Response {
            children: vec!["{}".into(); children],
            status: None,
            requeue_after_ms: requeue,
            events: vec![event(); events],
        }
    }

    #[test]
    fn counts_are_bounded_not_only_bytes() {
        let limits = Limits::default();
        let mut many_children = response(limits.children + 1, 0, None);
        let err = check_response("m", &mut many_children, &limits).unwrap_err();
        assert!(err.to_string().contains("children"), "{err}");
        let mut many_events = response(0, limits.events + 1, None);
        let err = check_response("m", &mut many_events, &limits).unwrap_err();
        assert!(err.to_string().contains("events"), "{err}");
        let mut fine = response(limits.children, limits.events, None);
        check_response("m", &mut fine, &limits).unwrap();
    }

    #[test]
    fn a_requeue_below_the_floor_is_raised_to_it() {
        let limits = Limits::default();
        let mut zero = response(0, 0, Some(0));
        check_response("m", &mut zero, &limits).unwrap();
        assert_eq!(
            zero.requeue_after_ms,
            Some(DEFAULT_MIN_REQUEUE.as_millis() as u64)
        );
        let mut later = response(0, 0, Some(60_000));
        check_response("m", &mut later, &limits).unwrap();
        assert_eq!(later.requeue_after_ms, Some(60_000));
        let mut finalize = FinalizeResponse {
            done: false,
            requeue_after_ms: Some(1),
            events: vec![],
        };
        check_finalize("m", &mut finalize, &limits).unwrap();
        assert_eq!(
            finalize.requeue_after_ms,
            Some(DEFAULT_MIN_REQUEUE.as_millis() as u64)
        );
    }

    #[test]
    fn error_messages_are_cut_on_a_character_boundary() {
        let limits = Limits::default();
        let mut error = ReconcileError::Permanent(Failure {
            reason: "R".repeat(5000),
            message: "é".repeat(limits.message_bytes),
        });
        cut_error(&mut error, &limits);
        let ReconcileError::Permanent(failure) = error else {
            unreachable!()
        };
        assert!(failure.message.len() <= limits.message_bytes);
        assert!(failure.message.ends_with('…'));
        assert!(failure.reason.len() <= MAX_REASON_BYTES);
    }
}
