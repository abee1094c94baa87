//! cnat in each language the SDKs cover (Rust, Python, TypeScript, Go),
//! on the engine, beside the Rust cnat and beside the same logic called
//! natively: component size, cold compile, load from the compile cache,
//! one call (a fresh pooled instance, then the reconcile of a due `At` of
//! about 1, 10 and 100 KB), the
//! smallest per-call memory cap that call fits in, and the resident memory
//! each loaded module adds to the host (loaded, reconciled once, and idle
//! once its code is let go, as `bosun run --unload-idle-after` does). Every figure is printed with its
//! ratio to the Rust guest's; calls also with their ratio to native.
//!
//! `cargo bench -p bosun --bench languages` prints the table. Figures,
//! never assertions: the machine's load moves them.

use std::io::Write as _;
use std::time::{Duration, Instant};

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, CompileSource, Engine, EngineConfig, Module};
use bosun_sdk::testing::Harness;
use cnat::{At, Cnat};

const NOW: &str = "2026-12-01T10:00:01Z";
const SIZES_KB: [usize; 3] = [1, 10, 100];
/// Modules loaded at once to measure what each adds to the host's memory.
const RESIDENT_MODULES: usize = 10;
/// How long a module goes uncalled before the unloading engine lets its
/// code go.
const IDLE: Duration = Duration::from_millis(400);

/// cnat's packages, the Rust one first (the baseline).
const GUESTS: [(&str, &str); 4] = [
    ("Rust", "cnat"),
    ("Python", "cnat-python"),
    ("TypeScript", "cnat-typescript"),
    ("Go", "cnat-go"),
];

/// One figure as printed, its value for the ratio to the Rust guest, and
/// the native value to compare with, if any.
type Cell = (String, f64, Option<f64>);

struct Figures {
    size: usize,
    gzipped: usize,
    compile: Duration,
    from_cache: Duration,
    calls: Vec<Duration>,
    smallest_cap_mib: Option<usize>,
    loaded_mib: f64,
    resident_mib: f64,
    idle_mib: f64,
}

fn main() {
    // `cargo test --benches` runs this without --bench and only wants to
    // know that it runs; one round keeps that short.
    let rounds = if std::env::args().any(|arg| arg == "--bench") {
        41
    } else {
        1
    };
    let objects: Vec<String> = SIZES_KB.iter().map(|kb| at_of_size(*kb)).collect();
    let native = native_calls(&objects, rounds);
    let measured: Vec<(&str, Figures)> = GUESTS
        .iter()
        .map(|(language, package)| (*language, measure(package, &objects, rounds)))
        .collect();
    let rust = &measured[0].1;

    println!(
        "\ncnat in each language, on the engine (median of {rounds} where repeated); (x) is the ratio to the Rust guest, [x] to native:"
    );
    print!("{:>26}", "");
    for (language, _) in &measured {
        print!(" {language:>24}");
    }
    println!();
    let row = |what: &str, cell: &dyn Fn(&Figures) -> Cell| {
        print!("{what:>26}");
        let (_, base, _) = cell(rust);
        for (_, figures) in &measured {
            let (text, value, native) = cell(figures);
            let vs_native = native.map_or(String::new(), |n| format!(" [{:.0}x]", value / n));
            print!(
                " {:>24}",
                format!("{text} ({:.1}x){vs_native}", value / base)
            );
        }
        println!();
    };
    let mb = |bytes: usize| format!("{:.2} MB", bytes as f64 / 1e6);
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    row("component", &|f| (mb(f.size), f.size as f64, None));
    row("gzipped", &|f| (mb(f.gzipped), f.gzipped as f64, None));
    row("cold compile", &|f| {
        (ms(f.compile), f.compile.as_secs_f64(), None)
    });
    row("load from cache", &|f| {
        (ms(f.from_cache), f.from_cache.as_secs_f64(), None)
    });
    for (at, kb) in SIZES_KB.iter().enumerate() {
        let native = native[at].as_secs_f64();
        row(&format!("one call, {kb} KB object"), &|f| {
            (ms(f.calls[at]), f.calls[at].as_secs_f64(), Some(native))
        });
    }
    row("smallest memory cap", &|f| {
        let mib = f.smallest_cap_mib.unwrap_or(0);
        (
            f.smallest_cap_mib
                .map_or("> 64 MiB".to_owned(), |m| format!("{m} MiB")),
            mib as f64,
            None,
        )
    });
    row("resident per module, loaded", &|f| {
        (format!("{:.1} MiB", f.loaded_mib), f.loaded_mib, None)
    });
    row("… and reconciled once", &|f| {
        (format!("{:.1} MiB", f.resident_mib), f.resident_mib, None)
    });
    row("… idle, code let go", &|f| {
        (format!("{:.1} MiB", f.idle_mib), f.idle_mib, None)
    });
    println!(
        "{:>26} {}",
        "native (the Harness)",
        native
            .iter()
            .zip(SIZES_KB)
            .map(|(d, kb)| format!("{kb} KB: {}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// A due `At` whose JSON is about `kb` KiB, padded with annotations as
/// real objects are (last-applied-configuration, tooling notes).
fn at_of_size(kb: usize) -> String {
    let mut at = serde_json::json!({
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
        "metadata": {"name": "bench", "namespace": "default",
                     "uid": "0b7e4c1a-1111-4222-8333-444455556666", "generation": 1,
                     "annotations": {}},
        "spec": {"schedule": "2026-12-01T10:00:00Z", "command": "echo YAY"},
    });
    let mut i = 0;
    while at.to_string().len() < kb * 1024 {
        at["metadata"]["annotations"][format!("bench.bosun.dev/note-{i}")] = "x".repeat(100).into();
        i += 1;
    }
    at.to_string()
}

/// The Rust cnat's logic called natively through the SDK's harness: the
/// same decode, decision and encode, without the engine.
fn native_calls(objects: &[String], rounds: usize) -> Vec<Duration> {
    let harness = Harness::<Cnat>::new().now(NOW);
    objects
        .iter()
        .map(|object| {
            let at: At = serde_json::from_str(object).expect("an At");
            median(rounds, || {
                let outcome = harness.reconcile(&at).expect("cnat succeeds");
                assert_eq!(outcome.children_json().len(), 1);
            })
        })
        .collect()
}

fn measure(package: &str, objects: &[String], rounds: usize) -> Figures {
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
    let call_times = objects
        .iter()
        .map(|object| {
            median(rounds, || {
                assert!(
                    calls(&module, object, &ctx),
                    "{package} reconciles a due At"
                );
            })
        })
        .collect();
    let smallest_cap_mib = (1..=64).find(|mib| {
        let mut capped = ctx.clone();
        capped.limits.memory_bytes = mib << 20;
        calls(&module, &objects[0], &capped)
    });
    // What each loaded module adds, as a host holds them: loaded from the
    // cache (as after a restart; a load calls `metadata` once), then each
    // reconciling once — the second figure adds what a reconcile leaves
    // (more code paged in, more of its instance's pool slot).
    let before = resident_mib();
    let held: Vec<Module> = (0..RESIDENT_MODULES)
        .map(|i| {
            engine
                .load(&format!("{package}-{i}"), &bytes)
                .expect("loads")
        })
        .collect();
    let loaded_mib = (resident_mib() - before) / RESIDENT_MODULES as f64;
    for module in &held {
        assert!(calls(module, &objects[0], &ctx));
    }
    let reconciled_mib = (resident_mib() - before) / RESIDENT_MODULES as f64;
    drop(held);
    // The same, in an engine that lets idle modules' code go (`bosun run
    // --unload-idle-after`): what an idle module costs once unloaded. The
    // first engine goes first, and the heap it freed back to the system
    // (the unloader trims it too), so the baseline holds none of it.
    drop(module);
    drop(engine);
    trim_heap();
    let unloading = Engine::new(EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        unload_idle_after: Some(IDLE),
        ..EngineConfig::default()
    })
    .expect("engine");
    let before = resident_mib();
    let held: Vec<Module> = (0..RESIDENT_MODULES)
        .map(|i| {
            unloading
                .load(&format!("{package}-idle-{i}"), &bytes)
                .expect("loads")
        })
        .collect();
    for module in &held {
        assert!(calls(module, &objects[0], &ctx));
    }
    let deadline = Instant::now() + IDLE * 20;
    while held.iter().any(Module::is_resident) && Instant::now() < deadline {
        std::thread::sleep(IDLE / 4);
    }
    assert!(
        !held.iter().any(Module::is_resident),
        "{package}: idle modules let their code go"
    );
    let idle_mib = (resident_mib() - before) / RESIDENT_MODULES as f64;
    drop(held);
    Figures {
        size: bytes.len(),
        gzipped,
        compile,
        from_cache,
        calls: call_times,
        smallest_cap_mib,
        loaded_mib,
        resident_mib: reconciled_mib,
        idle_mib,
    }
}

/// One reconcile of the due `At`: true when it answered with the Pod.
fn calls(module: &Module, object: &str, ctx: &CallContext) -> bool {
    let request = Request {
        object: object.to_owned(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    };
    matches!(module.reconcile(&request, ctx), Ok(Ok(response)) if response.children.len() == 1)
}

/// Hands freed heap back to the system, as the host's unloader does after
/// letting modules go.
fn trim_heap() {
    // SAFETY: malloc_trim only walks and trims glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's resident memory, MiB (`/proc/self/statm`).
fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
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
