//! Where reconciler modules come from and how they are swapped in.
//!
//! Three sources feed one [`registry::Registry`], which keeps the last good
//! version of each module running:
//!
//! - module files named on the command line (`--module`);
//! - a watched directory ([`dir`], `--modules-dir`), for local development;
//! - `ReconcilerModule` resources ([`resource`], fetched by [`source`] and
//!   reconciled by [`cluster`], `--modules-from-cluster`).

pub mod cluster;
pub mod dir;
pub mod registry;
pub mod resource;
pub mod source;
