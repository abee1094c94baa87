//! Where reconciler modules come from and how they are swapped in.
//!
//! Three sources feed one [`registry::Registry`], which keeps the last good
//! version of each module running:
//!
//! - module files named on the command line (`--module`);
//! - a watched directory ([`dir`], `--modules-dir`), for local development;
//! - `ReconcilerModule` resources ([`resource`], fetched by [`source`] — from
//!   an OCI registry by [`oci`] — and reconciled by [`cluster`],
//!   `--modules-from-cluster`).
//!
//! [`staging`] stages a ReconcilerModule's `spec.rollout` candidate as a
//! shadow of its running controller.
//!
//! [`publish`] is the other side: what `bosun push` writes so that a
//! ReconcilerModule can fetch a component (a ConfigMap or an OCI artifact).

pub mod artifact;
pub mod class;
pub mod cluster;
pub mod dir;
pub mod oci;
pub mod publish;
pub mod registry;
pub mod resource;
pub mod source;
pub mod staging;
