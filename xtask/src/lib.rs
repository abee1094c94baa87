//! The parts of `cargo xtask` that its tests call as a library: the
//! container image builder and the benchmark harness. Everything else lives
//! in the binary (`main.rs`).

pub mod bench;
pub mod image;
