//! Go guests made components for the tests, through the same
//! `bosun-componentize` that `bosun build` uses.

use std::path::Path;

use crate::guests::BuildError;

pub use bosun_componentize::{HTTP_WORLD, WORLD};

/// The component made from `core` (a Go c-shared module) against the world
/// [`HTTP_WORLD`] (or [`WORLD`]) of the WIT package in `wit_dir`.
pub fn componentize(core: &[u8], wit_dir: &Path) -> Result<Vec<u8>, BuildError> {
    bosun_componentize::componentize(core, wit_dir).map_err(|e| BuildError::new(e.to_string()))
}
