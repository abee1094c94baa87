//! Loading a module: compiled with Cranelift (a new version never seen
//! before) versus taken from the on-disk compile cache (a version this host
//! compiled before, e.g. after a restart or a swap back). This is the part of
//! a hot swap that grows with the component; the swap itself is a pointer
//! change and a re-enqueue of the module's objects.
//!
//! `cargo bench -p bosun --bench load` prints criterion's figures and a
//! summary line per component with its size.

use std::time::{Duration, Instant};

use bosun::engine::{CompileSource, Engine, EngineConfig};
use criterion::{BenchmarkId, Criterion};

fn main() {
    let cache = tempfile::tempdir().expect("a temporary cache directory");
    let cached = Engine::new(EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    })
    .expect("engine");
    let uncached = Engine::new(EngineConfig::default()).expect("engine");
    let components: Vec<(&str, Vec<u8>)> = ["cnat", "webapp"]
        .into_iter()
        .map(|name| {
            let path = bosun_testenv::guests::path(name).expect("the guests build");
            (name, std::fs::read(path).expect("read the component"))
        })
        .collect();
    // Fill the cache once.
    for (name, bytes) in &components {
        let module = cached.load(name, bytes).expect("loads");
        assert_eq!(module.compile_source(), CompileSource::Compiled);
    }

    let mut criterion = Criterion::default().configure_from_args().sample_size(10);
    let mut group = criterion.benchmark_group("load");
    for (name, bytes) in &components {
        group.bench_with_input(BenchmarkId::new("compile", name), bytes, |b, bytes| {
            b.iter(|| uncached.load(name, bytes).expect("loads"))
        });
        group.bench_with_input(BenchmarkId::new("from-cache", name), bytes, |b, bytes| {
            b.iter(|| {
                let module = cached.load(name, bytes).expect("loads");
                assert_eq!(module.compile_source(), CompileSource::Cache);
            })
        });
    }
    group.finish();
    criterion.final_summary();

    if std::env::args().any(|arg| arg == "--bench") {
        println!("\nmodule load, median of 5 (compile / from cache):");
        for (name, bytes) in &components {
            let median = |load: &dyn Fn()| {
                let mut times: Vec<Duration> = (0..5)
                    .map(|_| {
                        let started = Instant::now();
                        load();
                        started.elapsed()
                    })
                    .collect();
                times.sort();
                times[2]
            };
            let compile = median(&|| {
                uncached.load(name, bytes).expect("loads");
            });
            let from_cache = median(&|| {
                cached.load(name, bytes).expect("loads");
            });
            println!(
                "{name:>8} ({:.2} MB): {:>8.1} ms / {:>6.1} ms",
                bytes.len() as f64 / 1e6,
                compile.as_secs_f64() * 1e3,
                from_cache.as_secs_f64() * 1e3
            );
        }
    }
}
