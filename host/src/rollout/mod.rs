//! Rolling out a new version of a module safely: what a candidate would do
//! beside what the running version does, before it writes anything.
//!
//! - [`canary`]: which objects a canary takes and when it steps up or is
//!   rolled back (pure decisions; the routing is `controller/canary.rs`).
//! - [`compare`]: two outcomes for one object into a bounded diff (a leaf).
//! - [`side`]: one version's call and plan, never a write; shared by the
//!   shadow and `bosun diff`.
//! - [`report`]: a diff as lines a person reads.
//! - [`shadow`]: a candidate run beside the live version, below live
//!   work, on every object the module reconciles.
//!
//! A canary's calls do write — they are real reconciles — but not from
//! here: [`canary`] only decides which version takes an object and when
//! the candidate steps up or goes; the controller makes the calls.
//!
//! The invariant every piece here keeps: **a shadow call never writes**.
//! Nothing in this module holds an [`crate::apply::Applier`], a read
//! tracker or a quarantine; a candidate's HTTP is refused (any request may
//! be a write somewhere else).

pub mod canary;
pub mod compare;
pub mod report;
pub mod shadow;
pub mod side;

use crate::meta::ModuleMeta;

/// Why a candidate cannot be staged beside the running version.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The candidate declares other kinds or another finalizer: the live
    /// version's requests would not be its requests.
    #[error(
        "the candidate {name} {version} cannot be staged beside the running version: {what} differ; a change of kinds is a new module, not a new version"
    )]
    KindsDiffer {
        /// The candidate's name.
        name: String,
        /// The candidate's version.
        version: String,
        /// What differs.
        what: &'static str,
    },
    /// The shadow's thread could not start.
    #[error("the shadow run's thread could not start: {0}")]
    Thread(#[source] std::io::Error),
}

/// Whether `candidate` reconciles, owns and reads what `live` does, with
/// the same finalizer: only then is one request the same for both.
///
/// # Errors
///
/// [`StageError::KindsDiffer`] naming what differs.
pub fn same_kinds(live: &ModuleMeta, candidate: &ModuleMeta) -> Result<(), StageError> {
    let what = if live.primary != candidate.primary {
        Some("the primary kinds")
    } else if live.owns != candidate.owns {
        Some("the owned kinds")
    } else if live.reads != candidate.reads {
        Some("the read kinds")
    } else if live.finalizer != candidate.finalizer {
        Some("the finalizers")
    } else {
        None
    };
    match what {
        Some(what) => Err(StageError::KindsDiffer {
            name: candidate.name.clone(),
            version: candidate.version.clone(),
            what,
        }),
        None => Ok(()),
    }
}
