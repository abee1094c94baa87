//! Rolling out a new version of a module safely: what a candidate would do
//! beside what the running version does, before it writes anything.
//!
//! - [`compare`]: two outcomes for one object into a bounded diff (a leaf).
//! - [`side`]: one version's call and plan, never a write; shared by the
//!   shadow and `bosun diff`.
//! - [`report`]: a diff as lines a person reads.
//!
//! The invariant every piece here keeps: **a shadow call never writes**.
//! Nothing in this module holds an [`crate::apply::Applier`], a read
//! tracker or a quarantine; a candidate's HTTP is refused (any request may
//! be a write somewhere else).

pub mod compare;
pub mod report;
pub mod side;
