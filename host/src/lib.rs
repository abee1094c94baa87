//! bosun: a Kubernetes operator host that runs reconcilers as sandboxed
//! WebAssembly components.
//!
//! The library is organised by concern, and data flows one way through it:
//! a module is loaded by the [`engine`] (checked against the WIT world,
//! its [`meta`]data read once); a reconcile runs in a fresh instance with
//! reads answered from [`objects`]; what the guest returned is checked by
//! [`validate`] and turned into writes by [`plan`].

pub mod apply;
pub mod cli;
pub mod engine;
pub mod leader;
pub mod manifest;
pub mod meta;
pub mod objects;
pub mod plan;
pub mod queue;
pub mod telemetry;
pub mod validate;
