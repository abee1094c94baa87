//! bosun: a Kubernetes operator host that runs reconcilers as sandboxed
//! WebAssembly components.
//!
//! The library is organised by concern, and data flows one way through it:
//! a module is loaded by the [`engine`] (checked against the WIT world,
//! its [`meta`]data read once); a reconcile runs in a fresh instance with
//! reads answered from [`objects`]; what the guest returned is checked by
//! [`validate`] and turned into writes by [`plan`].
//!
//! In a cluster, a module runs only once its kinds are confirmed by
//! [`discovery`], its declaration fits what it was granted ([`grants`]),
//! and the host holds the permissions it needs ([`rbac`]).
//! The [`operator`] runs one [`controller`] per module over shared
//! [`informers`]: changes become keys in a work [`queue`], plans are
//! written by [`apply`], [`leader`] election decides which replica works,
//! and [`telemetry`] serves metrics and health. Two policies bound a
//! misbehaving module: [`quarantine`] and [`hotloop`].

pub mod apply;
pub mod cli;
pub mod controller;
pub mod discovery;
pub mod engine;
pub mod grants;
pub mod hotloop;
pub mod http;
pub mod informers;
pub mod leader;
pub mod limits;
pub mod manifest;
pub mod meta;
pub mod modules;
pub mod objects;
pub mod operator;
pub mod origin;
pub mod plan;
pub mod quarantine;
pub mod queue;
pub mod rbac;
pub mod reads;
pub mod recorder;
pub mod rollout;
pub mod shard;
pub mod telemetry;
pub mod validate;
