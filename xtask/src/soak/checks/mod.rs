//! What the soak checks at the end, one concern each: every object
//! converged to what its module wants ([`converged`]), zero writes outside
//! any grant ([`grants`]), the hosts' memory and descriptors flat after
//! warm-up ([`resources`]). No reconcile lost is the [`Ledger`]'s
//! verdict.
//!
//! [`Ledger`]: super::ledger::Ledger

pub mod converged;
pub mod grants;
pub mod resources;
