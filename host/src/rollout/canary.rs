//! Canaries: a candidate version reconciling a share of the objects for
//! real, judged against the live version over the same window. Pure
//! decisions only — which objects are the canary's, what each version's
//! calls came to, and whether to go on, step up or roll back — so that
//! every rule is unit-tested without a cluster; the controller's routing
//! lives in `controller/canary.rs`.
//!
//! Which objects: the primary's `namespace/name` hashed (FNV-1a, 64 bits,
//! written out here so that no library upgrade moves an object between
//! versions) into [`BUCKETS`] buckets; an object is the canary's when its
//! bucket is below the step's percent. A larger percent is therefore a
//! superset of a smaller one: stepping up only adds objects, and a
//! rollback returns exactly the objects the canary held.

use std::time::{Duration, Instant};

/// How many buckets keys are hashed into: one per percent.
pub const BUCKETS: u8 = 100;

/// The bucket of the primary `namespace/name` (`name` alone when
/// cluster-scoped), in `0..BUCKETS`. Stable across releases and hosts.
pub fn bucket(namespace: Option<&str>, name: &str) -> u8 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let bytes = namespace
        .into_iter()
        .flat_map(|ns| ns.bytes().chain(std::iter::once(b'/')))
        .chain(name.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % u64::from(BUCKETS)) as u8
}

/// Whether an object in `bucket` is the canary's at `percent`.
pub fn in_canary(bucket: u8, percent: u8) -> bool {
    bucket < percent
}

/// Whether an object with `labels` carries every label of `selector`
/// (an empty selector selects everything).
pub fn selected(
    selector: &std::collections::BTreeMap<String, String>,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Which version a call ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The running version, on the objects outside the canary.
    Live,
    /// The candidate, on the canary's objects.
    Candidate,
}

/// How one call ended, as the canary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Planned and applied.
    Success,
    /// The guest returned an error (retryable or permanent) or output the
    /// host refused.
    Error,
    /// The call trapped, timed out or ran out of memory.
    Trap,
    /// A key's own writes keep reconciling it (counted besides its call).
    HotLoop,
}

/// One version's calls over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls that ran.
    pub calls: u64,
    /// Guest errors and refused output.
    pub errors: u64,
    /// Traps, timeouts, memory limits.
    pub traps: u64,
    /// Keys that entered a hot loop.
    pub hot_loops: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.calls += 1,
            Outcome::Error => {
                self.calls += 1;
                self.errors += 1;
            }
            Outcome::Trap => {
                self.calls += 1;
                self.traps += 1;
            }
            Outcome::HotLoop => self.hot_loops += 1,
        }
    }

    /// Errors and traps per call; 0 without calls.
    pub fn failure_ratio(&self) -> f64 {
        ratio(self.errors + self.traps, self.calls)
    }

    /// Hot loops per call; 0 without calls.
    pub fn hot_loop_ratio(&self) -> f64 {
        ratio(self.hot_loops, self.calls)
    }
}

fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

/// What a canary is judged by (validated from the spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Percents of the objects, ascending, each in 1..=100.
    pub steps: Vec<u8>,
    /// How long each window is.
    pub window: Duration,
    /// How far the candidate's failure ratio may exceed the live
    /// version's before it is rolled back (0.1: ten points).
    pub max_failure_ratio: f64,
    /// Hot loops the candidate may enter in a window (and more only when
    /// its hot-loop rate is no worse than the live version's).
    pub max_hot_loops: u64,
    /// The candidate's calls in a window before it is judged either way.
    pub min_calls: u64,
    /// Step up after a clean window without anyone asking.
    pub automatic: bool,
}

/// Where a canary stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Taking its share of the objects.
    Running,
    /// Rolled back by the host: it takes no object any more.
    RolledBack {
        /// Why, with the rates.
        reason: String,
    },
}

/// What a call or a tick decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing changes.
    Continue,
    /// The canary took a larger share: objects in buckets `from..to` are
    /// the candidate's now.
    Advanced {
        /// The percent before.
        from: u8,
        /// The percent now.
        to: u8,
    },
    /// Rolled back: the objects below `percent` return to the live
    /// version.
    RolledBack {
        /// The percent the canary held.
        percent: u8,
        /// Why.
        reason: String,
    },
}

/// A canary as the host reports it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The candidate's sha256.
    pub digest: String,
    /// The version it declares.
    pub version: String,
    /// Its step, counts and verdict.
    pub judge: Judge,
}

/// One canary's judge: the current step, the window's counts of both
/// versions, and the verdict.
#[derive(Debug, Clone)]
pub struct Judge {
    policy: Policy,
    step: usize,
    window_started: Instant,
    live: Counts,
    candidate: Counts,
    phase: Phase,
}

impl Judge {
    /// A canary at its first step (or at `step`, when asked for one
    /// further on), its window starting `now`.
    pub fn new(policy: Policy, step: usize, now: Instant) -> Judge {
        let step = step.min(policy.steps.len().saturating_sub(1));
        Judge {
            policy,
            step,
            window_started: now,
            live: Counts::default(),
            candidate: Counts::default(),
            phase: Phase::Running,
        }
    }

    /// The share of objects the candidate takes now: 0 once rolled back.
    pub fn percent(&self) -> u8 {
        match self.phase {
            Phase::RolledBack { .. } => 0,
            Phase::Running => self.policy.steps.get(self.step).copied().unwrap_or(0),
        }
    }

    /// True once the candidate was rolled back.
    pub fn is_rolled_back(&self) -> bool {
        matches!(self.phase, Phase::RolledBack { .. })
    }

    /// The index of the current step.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Where the canary stands.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The window's counts: (live, candidate).
    pub fn counts(&self) -> (Counts, Counts) {
        (self.live, self.candidate)
    }

    /// A new policy for the same candidate (the spec changed): the counts
    /// stay; a manual step further on than the current one is taken.
    pub fn update(&mut self, policy: Policy, step: usize) -> Decision {
        let from = self.percent();
        self.policy = policy;
        self.step = self
            .step
            .max(step)
            .min(self.policy.steps.len().saturating_sub(1));
        self.moved(from)
    }

    /// Counts a call of `side` and judges at once: a candidate past the
    /// threshold is rolled back without waiting for the window's end.
    pub fn record(&mut self, side: Side, outcome: Outcome, now: Instant) -> Decision {
        if self.phase != Phase::Running {
            return Decision::Continue;
        }
        match side {
            Side::Live => self.live.add(outcome),
            Side::Candidate => self.candidate.add(outcome),
        }
        self.judge(now)
    }

    /// Judges at `now` without a call: a window may have ended.
    pub fn tick(&mut self, now: Instant) -> Decision {
        if self.phase != Phase::Running {
            return Decision::Continue;
        }
        self.judge(now)
    }

    fn judge(&mut self, now: Instant) -> Decision {
        if self.candidate.calls < self.policy.min_calls {
            return Decision::Continue;
        }
        if let Some(reason) = self.breach() {
            let percent = self.percent();
            self.phase = Phase::RolledBack {
                reason: reason.clone(),
            };
            return Decision::RolledBack { percent, reason };
        }
        if now.saturating_duration_since(self.window_started) < self.policy.window {
            return Decision::Continue;
        }
        // A clean window: a new one starts, one step up when automatic.
        let from = self.percent();
        self.window_started = now;
        self.live = Counts::default();
        self.candidate = Counts::default();
        if self.policy.automatic && self.step + 1 < self.policy.steps.len() {
            self.step += 1;
        }
        self.moved(from)
    }

    fn moved(&self, from: u8) -> Decision {
        let to = self.percent();
        if to > from {
            Decision::Advanced { from, to }
        } else {
            Decision::Continue
        }
    }

    /// Why the candidate must go, if it must.
    fn breach(&self) -> Option<String> {
        let (live, candidate) = (self.live, self.candidate);
        let allowed = live.failure_ratio() + self.policy.max_failure_ratio;
        if candidate.failure_ratio() > allowed {
            return Some(format!(
                "the candidate failed {} of {} calls ({} errors, {} traps: {:.0}%) against the live version's {} of {} ({:.0}%) in the same window; more than maxFailureRatio {:.2} over the live rate",
                candidate.errors + candidate.traps,
                candidate.calls,
                candidate.errors,
                candidate.traps,
                candidate.failure_ratio() * 100.0,
                live.errors + live.traps,
                live.calls,
                live.failure_ratio() * 100.0,
                self.policy.max_failure_ratio,
            ));
        }
        if candidate.hot_loops > self.policy.max_hot_loops
            && candidate.hot_loop_ratio() > live.hot_loop_ratio()
        {
            return Some(format!(
                "the candidate sent {} objects into a hot loop in {} calls against the live version's {} in {} calls; more than maxHotLoops {}",
                candidate.hot_loops,
                candidate.calls,
                live.hot_loops,
                live.calls,
                self.policy.max_hot_loops,
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(steps: &[u8], automatic: bool) -> Policy {
        Policy {
            steps: steps.to_vec(),
            window: Duration::from_secs(60),
            max_failure_ratio: 0.1,
            max_hot_loops: 0,
            min_calls: 4,
            automatic,
        }
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        // Fixed values: a change here moves objects between versions.
        assert_eq!(bucket(Some("default"), "web-0"), 62);
        assert_eq!(bucket(Some("ns"), "a"), 34);
        assert_eq!(bucket(None, ""), 37);
        let mut seen = [0u32; 100];
        for i in 0..10_000 {
            seen[usize::from(bucket(Some("ns"), &format!("web-{i}")))] += 1;
        }
        assert!(seen.iter().all(|n| (50..=150).contains(n)), "{seen:?}");
    }

    #[test]
    fn a_larger_percent_is_a_superset() {
        for i in 0..1000 {
            let b = bucket(Some("ns"), &format!("o-{i}"));
            for (small, large) in [(10, 50), (20, 50), (50, 100), (1, 2)] {
                assert!(!in_canary(b, small) || in_canary(b, large));
            }
            assert!(in_canary(b, 100));
            assert!(!in_canary(b, 0));
        }
        let share = (0..1000)
            .filter(|i| in_canary(bucket(Some("ns"), &format!("o-{i}")), 20))
            .count();
        assert!((150..=250).contains(&share), "{share}");
    }

    #[test]
    fn a_selector_needs_every_label() {
        let map = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let labels = map(&[("tier", "web"), ("team", "a")]);
        assert!(selected(&map(&[]), None));
        assert!(selected(&map(&[("tier", "web")]), Some(&labels)));
        assert!(!selected(&map(&[("tier", "db")]), Some(&labels)));
        assert!(!selected(
            &map(&[("tier", "web"), ("x", "y")]),
            Some(&labels)
        ));
        assert!(!selected(&map(&[("tier", "web")]), None));
    }

    #[test]
    fn a_failing_candidate_is_rolled_back_once_it_has_min_calls() {
        let now = Instant::now();
        let mut judge = Judge::new(policy(&[20, 100], false), 0, now);
        for _ in 0..20 {
            assert_eq!(
                judge.record(Side::Live, Outcome::Success, now),
                Decision::Continue
            );
        }
        for _ in 0..3 {
            assert_eq!(
                judge.record(Side::Candidate, Outcome::Error, now),
                Decision::Continue
            );
        }
        let Decision::RolledBack { percent, reason } =
            judge.record(Side::Candidate, Outcome::Trap, now)
        else {
            panic!("rolled back");
        };
        assert_eq!(percent, 20);
        assert!(
            reason.contains("failed 4 of 4 calls (3 errors, 1 traps"),
            "{reason}"
        );
        assert_eq!(judge.percent(), 0);
        assert!(matches!(judge.phase(), Phase::RolledBack { .. }));
        // Nothing counts any more.
        assert_eq!(
            judge.record(Side::Candidate, Outcome::Error, now),
            Decision::Continue
        );
        assert_eq!(
            judge.tick(now + Duration::from_secs(600)),
            Decision::Continue
        );
    }

    #[test]
    fn the_threshold_is_over_the_live_rate() {
        let now = Instant::now();
        let mut judge = Judge::new(policy(&[50], false), 0, now);
        // Live fails a quarter of its calls; the candidate a third: within
        // ten points.
        for outcome in [
            Outcome::Error,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
        ] {
            judge.record(Side::Live, outcome, now);
        }
        for outcome in [Outcome::Error, Outcome::Success, Outcome::Success] {
            assert_eq!(
                judge.record(Side::Candidate, outcome, now),
                Decision::Continue
            );
        }
        assert_eq!(
            judge.record(Side::Candidate, Outcome::Success, now),
            Decision::Continue
        );
        // Two failures in five: 40% > 25% + 10%.
        assert!(matches!(
            judge.record(Side::Candidate, Outcome::Error, now),
            Decision::RolledBack { .. }
        ));
    }

    #[test]
    fn hot_loops_past_the_live_rate_roll_back() {
        let now = Instant::now();
        let mut judge = Judge::new(policy(&[10], false), 0, now);
        for _ in 0..4 {
            judge.record(Side::Candidate, Outcome::Success, now);
        }
        let Decision::RolledBack { reason, .. } =
            judge.record(Side::Candidate, Outcome::HotLoop, now)
        else {
            panic!("rolled back");
        };
        assert!(reason.contains("hot loop"), "{reason}");
    }

    #[test]
    fn a_clean_window_steps_up_when_automatic() {
        let start = Instant::now();
        let mut judge = Judge::new(policy(&[10, 50, 100], true), 0, start);
        for _ in 0..4 {
            judge.record(Side::Candidate, Outcome::Success, start);
        }
        // Not before the window ends.
        assert_eq!(
            judge.tick(start + Duration::from_secs(59)),
            Decision::Continue
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(judge.tick(later), Decision::Advanced { from: 10, to: 50 });
        // A new window, empty: too few calls to judge either way.
        assert_eq!(judge.counts(), (Counts::default(), Counts::default()));
        assert_eq!(
            judge.tick(later + Duration::from_secs(120)),
            Decision::Continue
        );
        for _ in 0..4 {
            judge.record(Side::Candidate, Outcome::Success, later);
        }
        let last = later + Duration::from_secs(120);
        assert_eq!(judge.tick(last), Decision::Advanced { from: 50, to: 100 });
        for _ in 0..4 {
            judge.record(Side::Candidate, Outcome::Success, last);
        }
        // The last step stays.
        assert_eq!(
            judge.tick(last + Duration::from_secs(60)),
            Decision::Continue
        );
        assert_eq!(judge.percent(), 100);
    }

    #[test]
    fn manual_steps_wait_for_the_spec() {
        let start = Instant::now();
        let mut judge = Judge::new(policy(&[10, 50, 100], false), 0, start);
        for _ in 0..4 {
            judge.record(Side::Candidate, Outcome::Success, start);
        }
        assert_eq!(
            judge.tick(start + Duration::from_secs(60)),
            Decision::Continue
        );
        assert_eq!(judge.percent(), 10);
        assert_eq!(
            judge.update(policy(&[10, 50, 100], false), 1),
            Decision::Advanced { from: 10, to: 50 }
        );
        // A step past the last is the last; a step back is not taken.
        assert_eq!(
            judge.update(policy(&[10, 50, 100], false), 9),
            Decision::Advanced { from: 50, to: 100 }
        );
        assert_eq!(
            judge.update(policy(&[10, 50, 100], false), 0),
            Decision::Continue
        );
        assert_eq!(judge.percent(), 100);
    }
}
