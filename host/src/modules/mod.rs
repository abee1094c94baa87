//! Where reconciler modules come from and how they are swapped in. A module
//! source turns some outside store of `.wasm` components (for local
//! development, a watched directory: [`dir`]) into a stream of events saying
//! which module appeared, changed or went away, each with its bytes and
//! settings, so the host can load the new version beside the old one and
//! replace it only once it has loaded.

pub mod dir;
pub mod registry;
