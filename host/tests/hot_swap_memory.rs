//! A host that hot-swaps a module again and again keeps its memory flat.
//!
//! Its own process: the figure is the process's resident size, which other
//! tests running beside it would move.
//!
//! Each swap is a new module to the instance pool, whose slots keep the
//! pages a call dirtied (up to 8 MiB each) for the next call. Before the
//! pool's idle slots were bounded, every swap took fresh slots and left the
//! old ones resident: 8 MiB a swap of a guest that used its memory, and
//! ~440 MiB after 55 swaps.

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, Engine, EngineConfig};
use serde_json::json;

/// The resident memory of this process.
fn resident_mib() -> u64 {
    bosun_testenv::node::resident_bytes_of(std::process::id()) >> 20
}

#[test]
fn memory_stays_flat_over_hot_swaps_of_a_module_that_uses_its_memory() {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let bytes = std::fs::read(bosun_testenv::guests::path("misbehave").expect("guests build"))
        .expect("the component");
    // A guest that allocates to its memory cap, so each call dirties all
    // the pool lets a slot keep.
    let hog = Request {
        object: json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
            "metadata": {"name": "hog", "namespace": "demo", "uid": "c0ffee00-0000-4000-8000-000000000003"},
            "spec": {"mode": "hog"}})
        .to_string(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    };
    let swap = || {
        // What a hot swap is to the engine: the new bytes loaded as a new
        // module, then called; the old module is dropped.
        let module = engine.load("misbehave", &bytes).expect("loads");
        let _trapped = module.reconcile(&hog, &CallContext::default());
    };
    for _ in 0..15 {
        swap();
    }
    let warm = resident_mib();
    for _ in 0..45 {
        swap();
    }
    let after = resident_mib();
    assert!(
        after <= warm + 16,
        "45 more hot swaps grew the host from {warm} to {after} MiB"
    );
}
