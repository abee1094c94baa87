//! Host-side bindings generated from `wit/reconciler.wit`.
//!
//! The exports are called asynchronously: a guest blocked in a WASI call
//! (a sleep, a poll on a far deadline) is then a pending future that the
//! call's deadline can drop, where a synchronous call would hold its thread
//! until the guest chose to return. The host functions themselves never
//! block, so they stay synchronous; `trappable` lets them end a call that
//! overruns its budget.

wasmtime::component::bindgen!({
    world: "reconciler",
    path: "../wit",
    additional_derives: [PartialEq],
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::bosun::reconciler::host::LogLevel;
pub use self::bosun::reconciler::types::{ApiKind, Event, EventType, Failure, Scope, Trigger};

/// The WIT package this host serves (`bosun:reconciler@0.1.0`), read from the
/// same file the bindings above are generated from, so the version `bosun
/// --version` reports cannot drift from the contract it was built against.
pub fn wit_package() -> &'static str {
    const WIT: &str = include_str!("../../../wit/reconciler.wit");
    WIT.lines()
        .find_map(|line| line.trim().strip_prefix("package "))
        .map(|rest| rest.trim_end_matches(';').trim())
        .unwrap_or("bosun:reconciler (version unknown)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_wit_package_is_named_with_its_version() {
        let package = super::wit_package();
        let version = package
            .strip_prefix("bosun:reconciler@")
            .unwrap_or_else(|| panic!("{package:?} names the bosun:reconciler package"));
        assert_eq!(version.split('.').count(), 3, "{package:?} has a semver");
    }
}
