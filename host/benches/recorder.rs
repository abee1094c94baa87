//! The flight recorder's cost: per call, and in memory at its cap.
//!
//! - **Per call.** With a store configured every reconcile runs under a
//!   recorder (a call is known to fail only once it has), so what every
//!   call pays is the capture: [`recording::reconcile_recorded`] beside the
//!   plain [`Module::reconcile`] of the same cnat call, for objects of
//!   about 1, 10 and 100 KB, in alternating rounds; then what a kept call
//!   adds (its recording as JSON, written off the call's thread).
//! - **At the cap.** A burst of failing calls, each with a recording of
//!   about 600 KB, offered 500 a second to a [`RecordStore`] writing to a real API
//!   server (`bosun_testenv`): the heap above the baseline at its peak
//!   (a counting allocator), against the bound the store promises —
//!   [`MAX_WRITES_IN_FLIGHT`] recordings of at most `recording_bytes` in
//!   hand — and the recordings left in the cluster, against the per-module
//!   count and byte caps.
//!
//! `cargo bench -p bosun --bench recorder` prints both tables; without
//! `--bench` (`cargo test --benches`) it runs a few calls and skips the
//! cluster.

mod common;

use std::time::{Duration, Instant};

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::recording;
use bosun::engine::{CallContext, Engine, EngineConfig, Module};
use bosun::recorder::format::RecordedOutcome;
use bosun::recorder::store::{
    MAX_WRITES_IN_FLIGHT, MODULE_LABEL, RecordStore, StoreSettings, module_label,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

#[global_allocator]
static ALLOCATOR: common::counting::Counting = common::counting::Counting;

const NOW: &str = "2026-12-01T10:00:01Z";
const SIZES_KB: [usize; 3] = [1, 10, 100];

fn request_of(at: &cnat::At) -> Request {
    Request {
        object: serde_json::to_string(at).expect("an At serializes"),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    }
}

fn plain(module: &Module, ctx: &CallContext, request: &Request) {
    let response = module
        .reconcile(request, ctx)
        .expect("the call succeeds")
        .expect("cnat succeeds");
    assert_eq!(response.children.len(), 1);
}

fn recorded(module: &Module, ctx: &CallContext, request: &Request) -> bosun::recorder::Recording {
    let (result, recording) = recording::reconcile_recorded(module, request, ctx, 768 << 10);
    let response = result.expect("the call succeeds").expect("cnat succeeds");
    assert_eq!(response.children.len(), 1);
    recording
}

/// Recorded against plain, per object size.
fn per_call(module: &Module, ctx: &CallContext, full: bool) {
    println!("\nthe recorder's cost per call (cnat), median per call:");
    println!(
        "{:>8} {:>11} {:>11} {:>8} {:>14} {:>16}",
        "object", "plain", "recorded", "ratio", "ratio p25-p75", "+ JSON if kept"
    );
    for kb in SIZES_KB {
        let request = request_of(&common::at_of_size(kb));
        let (rounds, batch) = match (full, kb) {
            (false, _) => (3, 1),
            (true, 100) => (41, 10),
            (true, _) => (41, 50),
        };
        let paired = common::paired(
            rounds,
            batch,
            || plain(module, ctx, &request),
            || drop(recorded(module, ctx, &request)),
        );
        let kept = recorded(module, ctx, &request);
        let json = common::median_per_call(rounds, batch, || {
            std::hint::black_box(kept.to_json());
        });
        println!(
            "{:>6}KB {:>9.1}µs {:>9.1}µs {:>7.2}x {:>6.2}-{:.2}x {:>14.1}µs",
            kb,
            paired.a.as_secs_f64() * 1e6,
            paired.b.as_secs_f64() * 1e6,
            paired.ratio[1],
            paired.ratio[0],
            paired.ratio[2],
            json.as_secs_f64() * 1e6,
        );
    }
}

/// A burst of failing calls offered to a store over a real API server.
fn at_the_cap(module: &Module, ctx: &CallContext) {
    // A failing call with a recording of about 600 KB (its request). The
    // engine blocks on a runtime of its own: the call runs outside ours.
    let request = request_of(&common::at_of_size(600));
    let mut failing = recorded(module, ctx, &request);
    failing.outcome = RecordedOutcome::Failed("bench: a trap".to_owned());
    let recording_kb = failing.to_json().len() as f64 / 1024.0;

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let env = bosun_testenv::TestEnv::start()
            .await
            .expect("the control plane starts");
        let settings = StoreSettings::new("default".to_owned());
        let store = RecordStore::new(env.client(), settings.clone());

        // 500 failing calls a second: a module failing on every object.
        let offered = 1_000;
        let baseline = common::counting::live();
        common::counting::reset_peak();
        let started = Instant::now();
        let mut pace = tokio::time::interval(Duration::from_millis(2));
        for i in 0..offered {
            pace.tick().await;
            let mut recording = failing.clone();
            recording.module.name = "bench".to_owned();
            store.keep(&format!("default/at-{i}"), recording);
        }
        let burst = started.elapsed();
        // The writes in flight finish (and prune) within a few seconds.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let peak = common::counting::peak() - baseline;

        let api: Api<ConfigMap> = Api::namespaced(env.client(), "default");
        let kept = api
            .list(&ListParams::default().labels(&format!("{MODULE_LABEL}={}", module_label("bench"))))
            .await
            .expect("the recordings list");
        let kept_bytes: usize = kept
            .items
            .iter()
            .filter_map(|map| map.data.as_ref()?.values().next().map(String::len))
            .sum();
        let bound = MAX_WRITES_IN_FLIGHT * settings.recording_bytes;
        println!("\nthe recorder at its cap: {offered} failing calls in {burst:.2?}, recordings of {recording_kb:.0} KiB each");
        println!(
            "  heap above the baseline at its peak: {:.1} MiB (the store's bound: {} writes x {} KiB = {:.1} MiB of recordings in hand; {:.2}x of it)",
            peak as f64 / 1048576.0,
            MAX_WRITES_IN_FLIGHT,
            settings.recording_bytes >> 10,
            bound as f64 / 1048576.0,
            peak as f64 / bound as f64,
        );
        println!(
            "  recordings left in the cluster: {} ({:.1} MiB); caps {} and {:.0} MiB per module",
            kept.items.len(),
            kept_bytes as f64 / 1048576.0,
            settings.per_module,
            settings.bytes_per_module as f64 / 1048576.0,
        );
    });
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // only wants to know that the benchmark runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let path = bosun_testenv::guests::path("cnat").expect("the cnat component builds");
    let module = engine.load_file(&path).expect("cnat loads");
    let ctx = CallContext {
        clock: Some(NOW.parse().expect("a timestamp")),
        ..CallContext::default()
    };
    per_call(&module, &ctx, full);
    if full {
        at_the_cap(&module, &ctx);
    }
}
