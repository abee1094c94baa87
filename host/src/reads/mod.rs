//! Event-driven reads: what each reconcile read, and which primaries to
//! reconcile again when something they read changes.
//!
//! The host answers every `get-object` and `list-objects` itself, so it
//! knows exactly what a call looked at. A [`ReadLog`] records one call's
//! reads — a `get` by kind, namespace and name, a miss included (so that
//! the object's creation triggers); a `list` by kind, namespace and label
//! selector — *before* each answer is read from the cache. The [`Tracker`]
//! keeps the logs of calls in flight and, once a call ends, its log as the
//! primary's last reads, indexed by kind/namespace/name and, for selectors,
//! by kind/namespace. A change of a cached object then costs work in
//! proportion to the primaries it concerns, not to all of them.
//!
//! Recording before answering closes the race a hand-written mapper has:
//! a change lands in the cache either before the read (and the guest sees
//! it) or after the read was recorded (and the change finds the log, in
//! flight or indexed). Nothing is lost in between.
//!
//! A guest decides how much it reads, so a log is capped
//! ([`ReadLog::new`]): reads past the cap are kept coarsely, as "any object
//! of this kind in this namespace", and the log says it overflowed.
//!
//! This module is a leaf: kinds are the controller's numbering
//! ([`KindId`]), primaries any key type, and nothing of the engine, the
//! informers or the API is imported.

mod index;
mod log;
#[cfg(test)]
mod testing;

pub use self::index::{Finished, TrackedChange, Tracker};
pub use self::log::{KindId, ReadLog};
