//! Host-side bindings generated from `wit/reconciler.wit`.

wasmtime::component::bindgen!({
    world: "reconciler",
    path: "../wit",
    additional_derives: [PartialEq],
});

pub use self::bosun::reconciler::host::LogLevel;
pub use self::bosun::reconciler::types::{ApiKind, Event, EventType, Failure, Scope, Trigger};
