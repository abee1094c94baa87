//! The Python cnat (`examples/cnat-python`) beside the Rust cnat on the
//! engine: component size, cold compile, load from the compile cache, one
//! call (a fresh pooled instance, then the reconcile of a due `At`), and the
//! smallest per-call memory cap that call fits in. The Rust cnat is the
//! baseline; each Python figure is printed with its ratio to it.
//!
//! `cargo bench -p bosun --bench python_guest` prints the table. Figures,
//! never assertions: the machine's load moves them.

use std::io::Write as _;
use std::time::{Duration, Instant};

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, CompileSource, Engine, EngineConfig, Module};

const NOW: &str = "2026-12-01T10:00:01Z";
const AT: &str = r#"{"apiVersion":"cnat.programming-kubernetes.info/v1alpha1","kind":"At",
"metadata":{"name":"bench","namespace":"default","uid":"0b7e4c1a-1111-4222-8333-444455556666","generation":1},
"spec":{"schedule":"2026-12-01T10:00:00Z","command":"echo YAY"}}"#;

struct Figures {
    size: usize,
    gzipped: usize,
    compile: Duration,
    from_cache: Duration,
    call: Duration,
    smallest_cap_mib: Option<usize>,
}

fn main() {
    // `cargo test --benches` runs this without --bench and only wants to
    // know that it runs; one round keeps that short.
    let rounds = if std::env::args().any(|arg| arg == "--bench") {
        41
    } else {
        1
    };
    let rust = measure("cnat", rounds);
    let python = measure("cnat-python", rounds);
    println!("\nthe Python cnat beside the Rust cnat (median of {rounds} where repeated):");
    let row = |what: &str, rust: String, python: String, ratio: f64| {
        println!("{what:>24} {rust:>12} {python:>12} {ratio:>8.1}x");
    };
    println!("{:>24} {:>12} {:>12} {:>9}", "", "Rust", "Python", "ratio");
    let mb = |bytes: usize| format!("{:.2} MB", bytes as f64 / 1e6);
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let ratio = |a: f64, b: f64| b / a;
    row(
        "component",
        mb(rust.size),
        mb(python.size),
        ratio(rust.size as f64, python.size as f64),
    );
    row(
        "gzipped",
        mb(rust.gzipped),
        mb(python.gzipped),
        ratio(rust.gzipped as f64, python.gzipped as f64),
    );
    for (what, r, p) in [
        ("cold compile", rust.compile, python.compile),
        ("load from cache", rust.from_cache, python.from_cache),
        ("one call (inst.+call)", rust.call, python.call),
    ] {
        row(what, ms(r), ms(p), ratio(r.as_secs_f64(), p.as_secs_f64()));
    }
    let cap = |mib: Option<usize>| mib.map_or("> 64 MiB".to_owned(), |m| format!("{m} MiB"));
    let (r, p) = (rust.smallest_cap_mib, python.smallest_cap_mib);
    row(
        "smallest memory cap",
        cap(r),
        cap(p),
        ratio(r.unwrap_or(0) as f64, p.unwrap_or(0) as f64),
    );
}

fn measure(package: &str, rounds: usize) -> Figures {
    let path = bosun_testenv::guests::path(package).expect("the guest builds");
    let bytes = std::fs::read(&path).expect("read the component");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).expect("gzip");
    let gzipped = gz.finish().expect("gzip").len();

    let cache = tempfile::tempdir().expect("a temporary cache directory");
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    })
    .expect("engine");
    let started = Instant::now();
    let module = engine.load(package, &bytes).expect("loads");
    let compile = started.elapsed();
    assert_eq!(module.compile_source(), CompileSource::Compiled);
    let from_cache = median(rounds.min(5), || {
        let module = engine.load(package, &bytes).expect("loads");
        assert_eq!(module.compile_source(), CompileSource::Cache);
    });

    let ctx = CallContext {
        clock: Some(NOW.parse().expect("a time")),
        ..CallContext::default()
    };
    let call = median(rounds, || {
        assert!(calls(&module, &ctx), "{package} reconciles a due At");
    });
    let smallest_cap_mib = (1..=64).find(|mib| {
        let mut capped = ctx.clone();
        capped.limits.memory_bytes = mib << 20;
        calls(&module, &capped)
    });
    Figures {
        size: bytes.len(),
        gzipped,
        compile,
        from_cache,
        call,
        smallest_cap_mib,
    }
}

/// One reconcile of the due `At`: true when it answered with the Pod.
fn calls(module: &Module, ctx: &CallContext) -> bool {
    let request = Request {
        object: AT.to_owned(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    };
    matches!(module.reconcile(&request, ctx), Ok(Ok(response)) if response.children.len() == 1)
}

fn median(rounds: usize, mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
