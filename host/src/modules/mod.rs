//! Where reconciler modules come from and how they are swapped in.
//!
//! A [`resource::ReconcilerModule`] names a component and how to run it;
//! [`source::fetch`] reads the component's bytes from where the spec says.

pub mod resource;
pub mod source;
