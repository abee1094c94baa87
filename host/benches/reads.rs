//! Memory per tracked read: how many bytes the event-driven reads index
//! (`bosun::reads::Tracker`) holds per read it tracks, filled through its
//! public API as the host fills it — a `ReadLog` per reconcile, its gets
//! and lists recorded, then `finish` — for K primaries × R reads each.
//!
//! A counting global allocator measures the heap the tracker holds once
//! every log is finished and dropped (its index only), divided by K × R.
//! Three shapes: every read a name no other primary reads (the worst case:
//! nothing interned is shared), every primary reading the same R names
//! (names interned once), and one list by selector per primary.
//!
//! `cargo bench -p bosun --bench reads` prints one line per shape and size.

mod common;

use bosun::limits::DEFAULT_MAX_TRACKED_READS;
use bosun::reads::{KindId, Tracker};

#[global_allocator]
static ALLOCATOR: common::counting::Counting = common::counting::Counting;

/// How each primary reads.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// R gets of names no other primary reads.
    DistinctNames,
    /// R gets of the same R names as every other primary.
    SharedNames,
    /// One list by a selector of its own (R is 1).
    Selector,
}

const CONFIG_MAP: KindId = KindId(1);

/// Heap bytes held by a tracker of `primaries` × `reads` reads of `shape`.
fn held(shape: Shape, primaries: usize, reads: usize) -> isize {
    let before = common::counting::live();
    let tracker: Tracker<String> = Tracker::default();
    for p in 0..primaries {
        // The host's keys are namespace/name of the primary.
        let key = format!("bench/mirror-{p:06}");
        let log = tracker.begin(&key, DEFAULT_MAX_TRACKED_READS as usize);
        match shape {
            Shape::DistinctNames => {
                for r in 0..reads {
                    log.get(CONFIG_MAP, Some("bench"), &format!("config-{p:06}-{r:03}"));
                }
            }
            Shape::SharedNames => {
                for r in 0..reads {
                    log.get(CONFIG_MAP, Some("bench"), &format!("shared-{r:03}"));
                }
            }
            Shape::Selector => {
                let text = format!("app=app-{p:06},tier in (web,api)");
                let selector = bosun_selector::parse(&text).expect("the selector parses");
                log.list(CONFIG_MAP, Some("bench"), &text, &selector);
            }
        }
        tracker.finish(&key, &log);
    }
    assert_eq!(
        tracker.tracked(),
        match shape {
            Shape::Selector => primaries,
            _ => primaries * reads,
        }
    );
    let held = common::counting::live() - before;
    drop(tracker);
    held
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // gets a small pass that only checks the bench runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let sizes: &[(usize, usize)] = if full {
        &[
            (1_000, 1),
            (1_000, 4),
            (1_000, 16),
            (10_000, 1),
            (10_000, 4),
            (10_000, 16),
        ]
    } else {
        &[(100, 2)]
    };
    println!("shape            primaries  reads/primary  held (KiB)  bytes per read");
    for shape in [Shape::DistinctNames, Shape::SharedNames, Shape::Selector] {
        let mut done = Vec::new();
        for &(primaries, reads) in sizes {
            // One list per primary: one run per primary count.
            let reads = if matches!(shape, Shape::Selector) {
                1
            } else {
                reads
            };
            if done.contains(&(primaries, reads)) {
                continue;
            }
            done.push((primaries, reads));
            let bytes = held(shape, primaries, reads);
            println!(
                "{:<16} {primaries:>10} {reads:>14} {:>11.1} {:>15.0}",
                format!("{shape:?}"),
                bytes as f64 / 1024.0,
                bytes as f64 / (primaries * reads) as f64,
            );
        }
    }
}
