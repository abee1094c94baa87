//! Where reconciler modules come from and how they are swapped in.
//!
//! A [`resource::ReconcilerModule`] names a component and how to run it.

pub mod resource;
