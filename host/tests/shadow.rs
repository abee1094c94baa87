//! A shadow run through the real engine: a candidate that loops, hogs
//! memory, floods or panics is cut off and reported by reason, beside a
//! live version that answers; one that does what the live version does is
//! identical; the shadow starts no call while a live call holds the only
//! guest slot, and gives every slot back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use bosun::discovery::StatusRoom;
use bosun::engine::{Engine, EngineConfig, Limits, Module};
use bosun::informers::ObjectKey;
use bosun::objects::StaticObjects;
use bosun::rollout::shadow::{Report, Shadow, Subject, Subjects};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(EngineConfig::default()).expect("engine"));

/// The misbehave component, loaded off the test's runtime (the engine's
/// API is synchronous) the first time.
async fn loaded() -> Module {
    tokio::task::spawn_blocking(misbehave).await.unwrap()
}

fn misbehave() -> Module {
    static MODULE: LazyLock<Module> = LazyLock::new(|| {
        let path = bosun_testenv::guests::path("misbehave").expect("guests build");
        ENGINE.load_file(&path).expect("misbehave loads")
    });
    MODULE.clone()
}

fn object(name: &str) -> Value {
    json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "generation": 1},
        "spec": {},
    })
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: Some("ns".into()),
        name: name.into(),
    }
}

async fn until(report: impl Fn() -> Report, done: impl Fn(&Report) -> bool) -> Report {
    let started = Instant::now();
    loop {
        let now = report();
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the shadow did not finish: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Misbehave objects without a mode of their own, so each side's settings
/// decide what it does: the live version's say `ok`.
struct Objects {
    names: Vec<&'static str>,
    /// Whether the live version has reconciles in flight.
    busy: AtomicBool,
}

fn objects(names: &[&'static str]) -> Arc<Objects> {
    Arc::new(Objects {
        names: names.to_vec(),
        busy: AtomicBool::new(false),
    })
}

impl Subjects for Objects {
    fn keys(&self) -> Vec<ObjectKey> {
        self.names.iter().map(|name| key(name)).collect()
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    fn subject(&self, key: &ObjectKey) -> Option<Subject> {
        let name = self.names.iter().find(|name| **name == key.name)?;
        Some(Subject {
            object: object(name),
            observed: Vec::new(),
            live: misbehave(),
            settings: Some(json!({"mode": "ok"}).to_string()),
            limits: Limits {
                timeout: Duration::from_millis(500),
                memory_bytes: 32 << 20,
                ..Limits::default()
            },
            objects: Arc::new(StaticObjects::default()),
            status: StatusRoom::ANY,
            namespaces: Vec::new(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_doing_what_the_live_version_does_is_identical() {
    let subjects: Arc<dyn Subjects> = objects(&["a", "b", "c"]);
    let slots = Arc::new(Semaphore::new(2));
    // No settings of its own: the live version's.
    let shadow = Shadow::start(
        loaded().await,
        "digest".into(),
        None,
        Arc::downgrade(&subjects),
        slots.clone(),
    )
    .unwrap();
    let report = until(|| shadow.report(), |r| r.compared == 3).await;
    assert_eq!((report.identical, report.differing), (3, 0), "{report:#?}");
    assert!(report.examples.is_empty());
    shadow.offer(key("a"));
    shadow.offer(key("a"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shadow.report().compared, 3, "an object counts once");
    assert_eq!(slots.available_permits(), 2, "every slot given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misbehaviour_of_a_candidate_is_reported_by_its_reason() {
    for (mode, reason) in [
        ("loop", "Timeout"),
        ("hog", "MemoryLimit"),
        ("many-children", "OutputTooLarge"),
        ("panic", "Panic"),
        ("garbage", "InvalidOutput"),
        ("retry", "RetryableError"),
    ] {
        let subjects: Arc<dyn Subjects> = objects(&["x"]);
        let slots = Arc::new(Semaphore::new(1));
        let shadow = Shadow::start(
            loaded().await,
            "digest".into(),
            Some(json!({"mode": mode}).to_string()),
            Arc::downgrade(&subjects),
            slots.clone(),
        )
        .unwrap();
        let report = until(|| shadow.report(), |r| r.compared == 1).await;
        assert_eq!(report.failing.get(reason), Some(&1), "{mode}: {report:#?}");
        let (object, diff) = &report.examples[0];
        assert_eq!(object, "ns/x");
        assert_eq!(diff.failure.as_ref().unwrap().reason, reason);
        assert_eq!(slots.available_permits(), 1, "{mode}: the slot given back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_starts_no_call_while_live_work_runs_or_holds_the_only_slot() {
    let live = objects(&["x"]);
    let subjects: Arc<dyn Subjects> = live.clone();
    let slots = Arc::new(Semaphore::new(1));
    // The live version is reconciling, and a live call holds the only slot.
    live.busy.store(true, Ordering::SeqCst);
    let held = slots.clone().acquire_owned().await.unwrap();
    let shadow = Shadow::start(
        loaded().await,
        "digest".into(),
        Some(json!({"mode": "status"}).to_string()),
        Arc::downgrade(&subjects),
        slots.clone(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shadow.report().compared, 0, "no call while live work runs");
    live.busy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        shadow.report().compared,
        0,
        "no call while the slot is taken"
    );
    drop(held);
    let report = until(|| shadow.report(), |r| r.compared == 1).await;
    assert_eq!(report.differing, 1, "{report:#?}");

    // Dropped: its thread stops and lets go of the live side.
    drop(shadow);
    let weak: Weak<dyn Subjects> = Arc::downgrade(&subjects);
    drop((subjects, live));
    assert!(weak.upgrade().is_none());
}
