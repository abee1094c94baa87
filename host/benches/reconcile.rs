//! One reconcile through the engine (a fresh pooled instance per call) beside
//! the same logic called natively, for objects of about 1 KB, 10 KB and 100 KB.
//!
//! Both sides do the same work: serialize the typed object to JSON, hand it
//! over, let cnat decode it and decide (a due `At` → a Pod and status
//! RUNNING), and encode the response. The native side is the SDK's test
//! harness; the engine side is `Module::reconcile` on the built component.
//!
//! `cargo bench -p bosun --bench reconcile` prints criterion's figures and,
//! at the end, the engine/native ratio for each size.

mod common;

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, Engine, EngineConfig, Module};
use bosun_sdk::testing::Harness;
use cnat::{At, Cnat};
use criterion::{BenchmarkId, Criterion, Throughput};

const SIZES_KB: [usize; 3] = [1, 10, 100];
const NOW: &str = "2026-12-01T10:00:01Z";

fn engine_call(module: &Module, ctx: &CallContext, at: &At) {
    let request = Request {
        object: serde_json::to_string(at).unwrap(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    };
    let response = module
        .reconcile(&request, ctx)
        .expect("the call succeeds")
        .expect("cnat succeeds");
    assert_eq!(response.children.len(), 1);
}

fn native_call(harness: &Harness<Cnat>, at: &At) {
    let outcome = harness.reconcile(at).expect("cnat succeeds");
    assert_eq!(outcome.children_json().len(), 1);
}

fn setup() -> (Engine, Module, CallContext) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let path = bosun_testenv::guests::path("cnat").expect("the cnat component builds");
    let module = engine.load_file(&path).expect("cnat loads");
    let ctx = CallContext {
        clock: Some(NOW.parse().unwrap()),
        ..CallContext::default()
    };
    (engine, module, ctx)
}

fn bench(c: &mut Criterion, module: &Module, ctx: &CallContext) {
    let harness = Harness::<Cnat>::new().now(NOW);
    let mut group = c.benchmark_group("reconcile");
    for kb in SIZES_KB {
        let at = common::at_of_size(kb);
        group.throughput(Throughput::Bytes(
            serde_json::to_vec(&at).unwrap().len() as u64
        ));
        group.bench_with_input(
            BenchmarkId::new("native", format!("{kb}KB")),
            &at,
            |b, at| b.iter(|| native_call(&harness, at)),
        );
        group.bench_with_input(
            BenchmarkId::new("engine-fresh-instance", format!("{kb}KB")),
            &at,
            |b, at| b.iter(|| engine_call(module, ctx, at)),
        );
    }
    group.finish();
}

/// The figures the project tracks: engine time over native time, per size,
/// measured in alternating rounds in this run (the ratio's quartiles show
/// how much the machine moved while it ran).
fn print_ratios(module: &Module, ctx: &CallContext) {
    let harness = Harness::<Cnat>::new().now(NOW);
    println!("\nengine (fresh pooled instance) vs native, median per call:");
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>14}",
        "object", "native", "engine", "ratio", "ratio p25-p75"
    );
    for kb in SIZES_KB {
        let at = common::at_of_size(kb);
        let batch = if kb >= 100 { 10 } else { 50 };
        let paired = common::paired(
            41,
            batch,
            || native_call(&harness, &at),
            || engine_call(module, ctx, &at),
        );
        println!(
            "{:>6}KB {:>10.1}µs {:>10.1}µs {:>7.2}x {:>6.2}-{:.2}x",
            kb,
            paired.a.as_secs_f64() * 1e6,
            paired.b.as_secs_f64() * 1e6,
            paired.ratio[1],
            paired.ratio[0],
            paired.ratio[2],
        );
    }
}

fn main() {
    let (_engine, module, ctx) = setup();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &module, &ctx);
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // only wants to know that the benchmark runs.
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios(&module, &ctx);
    }
}
