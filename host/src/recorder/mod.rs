//! The flight recorder: one guest call's complete inputs kept as they are
//! handed over, and a call answered from such a recording instead of the
//! world (deterministic replay).
//!
//! A guest is a function of what the host hands it: its request, the wall
//! clock, random bytes, the answers to its reads and to its HTTP requests.
//! Recording all of them, in order, is enough to run the call again and
//! get the same outcome, offline; running another version of the module on
//! them shows what that version would have done.
//!
//! The engine's host-call layer takes a [`Tap`]: off, recording into a
//! [`Recorder`], or replaying from a [`Replayer`]. The recorder is bounded
//! (its cap, in bytes, whatever the guest does) and never holds a
//! credential value past the call (see [`capture`]). The format is
//! [`format`]; the cluster's store of recordings is [`store`].

pub mod capture;
pub mod format;
pub mod http;
pub mod replay;
pub mod store;
pub mod tape;

use std::sync::Arc;

pub use capture::{Finish, Recorder};
pub use format::{FormatError, Recording};
pub use replay::Replayer;

/// What a call's host functions do besides answering.
#[derive(Clone, Default)]
pub enum Tap {
    /// Nothing: the ordinary call.
    #[default]
    Off,
    /// Keep everything handed to the guest.
    Record(Arc<Recorder>),
    /// Answer from a recording instead of the world.
    Replay(Arc<Replayer>),
}
