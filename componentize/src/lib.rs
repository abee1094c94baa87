//! Making a component of a core module built by mainline Go
//! (`GOOS=wasip1 GOARCH=wasm -buildmode=c-shared`), as `wasm-tools
//! component embed` then `wasm-tools component new --adapt` would, without
//! the tool: the WIT world's type information is embedded in the module,
//! and the WASI preview1 imports Go's runtime makes are served by the
//! *reactor* adapter (a c-shared module has `_initialize`, no `_start`)
//! that wasmtime publishes as the crate
//! `wasi-preview1-component-adapter-provider`, of the host's wasmtime
//! version.
//!
//! The adapter allocates its state through the module's `cabi_realloc`
//! during `_initialize`, before Go's runtime is up; the SDK's glue
//! (`sdks/go/abi_wasip1.go`) serves those first allocations from a static
//! area. (wit-component's `realloc_via_memory_grow` would grow memory
//! behind Go's allocator, which assumes it owns every page above its data.)

use std::path::Path;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

/// The world a reconciler component targets.
pub const WORLD: &str = "reconciler";

/// `reconciler` with `wasi:http/outgoing-handler`, the world of the
/// published `wit/http` package (the Go SDK's WIT), chosen when the
/// package has it. wit-component imports only what the module calls, so a
/// module that never sends imports no wasi:http even so.
pub const HTTP_WORLD: &str = "reconciler-http";

/// Why a Go module could not be made a component.
#[derive(Debug, thiserror::Error)]
#[error("making a component of a Go module: {what}: {cause}")]
pub struct ComponentizeError {
    /// The step that failed.
    what: String,
    /// wit-component's error, its causes joined.
    cause: String,
}

/// The component made from `core` (a Go c-shared module) against the world
/// [`HTTP_WORLD`] of the WIT package in `wit_dir`, or [`WORLD`] when it has
/// none.
pub fn componentize(core: &[u8], wit_dir: &Path) -> Result<Vec<u8>, ComponentizeError> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit_dir)
        .map_err(|e| failed(&format!("reading {}", wit_dir.display()), e))?;
    let name = if resolve.packages[package].worlds.contains_key(HTTP_WORLD) {
        HTTP_WORLD
    } else {
        WORLD
    };
    let world = resolve
        .select_world(&[package], Some(name))
        .map_err(|e| failed("selecting the world", e))?;
    let mut module = core.to_vec();
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| failed("embedding the world", e))?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(|e| failed("reading the module", e))?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(|e| failed("adding the preview1 reactor adapter", e))?
        .encode()
        .map_err(|e| failed("encoding", e))
}

/// `e` (wit-component's error, its causes joined by `{:#}`) while doing `what`.
fn failed(what: &str, e: impl std::fmt::Display) -> ComponentizeError {
    ComponentizeError {
        what: what.to_owned(),
        cause: format!("{e:#}"),
    }
}
