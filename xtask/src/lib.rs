//! The parts of `cargo xtask` that its tests call as a library: the
//! container image builder, the benchmark harness and the soak. Everything
//! else lives in the binary (`main.rs`).

pub mod bench;
pub mod image;
pub mod soak;
