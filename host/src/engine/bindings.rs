//! Host-side bindings generated from `wit/reconciler.wit`, the current
//! contract; the rest of the host speaks only these types. Each earlier
//! released contract has bindings of its own in a submodule (`v0_1`), used
//! by the engine alone: `super::contract` calls components built against
//! them and `super::compat` converts at that boundary.
//!
//! The exports are called asynchronously: a guest blocked in a WASI call
//! (a sleep, a poll on a far deadline) is then a pending future that the
//! call's deadline can drop, where a synchronous call would hold its thread
//! until the guest chose to return. The host functions themselves never
//! block, so they stay synchronous; `trappable` lets them end a call that
//! overruns its budget.

pub(super) mod v0_1;

wasmtime::component::bindgen!({
    world: "reconciler",
    path: "../wit",
    additional_derives: [PartialEq],
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::bosun::reconciler::host::LogLevel;
pub use self::bosun::reconciler::types::{ApiKind, Event, EventType, Failure, Scope, Trigger};
