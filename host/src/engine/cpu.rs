//! Whose fault a missed deadline is: the CPU a call (and its module) had.
//!
//! A call's deadline is wall time, and on a busy host wall time passes
//! without the call running. A deadline counts against a guest only when
//! the guest had the time to use: when the call's thread had at least half
//! its deadline of CPU, or when the module's calls together did while this
//! one ran. The second clause closes a dodge: a module that starves its own
//! calls (a loop at a concurrency above the core count) spent the time
//! itself, and is held to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The CPU time every call of one module has been seen to use, summed.
/// Sampled while calls run (every epoch tick), so that a call can tell
/// what its siblings used during its own life.
#[derive(Debug, Default, Clone)]
pub(super) struct ModuleCpu(Arc<AtomicU64>);

impl ModuleCpu {
    fn nanos(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The CPU one call uses, measured on the thread that runs it (guest code
/// and the host functions it calls alike run there).
pub(super) struct CallMeter {
    module: ModuleCpu,
    module_start: u64,
    thread_start: Option<Duration>,
    sampled: Option<Duration>,
}

/// What a call had, once it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CpuHad {
    /// The call's own thread CPU time.
    pub call: Duration,
    /// What the module's calls together used while this one ran (this one
    /// included).
    pub module: Duration,
}

impl CpuHad {
    /// Whether a call with `limit` of wall time was starved: neither it nor
    /// its module had half of it.
    pub fn starved(&self, limit: Duration) -> bool {
        self.call < limit / 2 && self.module < limit / 2
    }
}

impl CallMeter {
    /// Starts metering a call of the module whose calls `module` sums, on
    /// the current thread.
    pub fn start(module: &ModuleCpu) -> Self {
        let now = thread_cpu_time();
        CallMeter {
            module: module.clone(),
            module_start: module.nanos(),
            thread_start: now,
            sampled: now,
        }
    }

    /// Adds the CPU used since the last sample to the module's sum. Called
    /// on the call's thread (from the epoch callback), so that siblings
    /// ending meanwhile see it.
    pub fn sample(&mut self) {
        let (Some(last), Some(now)) = (self.sampled, thread_cpu_time()) else {
            return;
        };
        self.module.add(now.saturating_sub(last));
        self.sampled = Some(now);
    }

    /// Ends metering, on the call's thread. None when the platform could
    /// not say (then a deadline counts against the guest, as it did before
    /// anyone measured).
    pub fn finish(&mut self) -> Option<CpuHad> {
        self.sample();
        let call = thread_cpu_time()?.saturating_sub(self.thread_start?);
        let module = Duration::from_nanos(self.module.nanos().saturating_sub(self.module_start));
        Some(CpuHad { call, module })
    }
}

/// The CPU time the calling thread has used, or None where the clock is
/// missing.
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computes until this thread has had `cpu` of CPU time, however busy
    /// the machine is (wall time would make the figures depend on load).
    fn spin(cpu: Duration) {
        let start = thread_cpu_time().expect("the thread clock exists on Linux");
        while thread_cpu_time()
            .expect("thread clock")
            .saturating_sub(start)
            < cpu
        {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn a_call_that_computes_is_not_starved() {
        let module = ModuleCpu::default();
        let mut meter = CallMeter::start(&module);
        spin(Duration::from_millis(60));
        let had = meter.finish().expect("the thread clock exists on Linux");
        assert!(had.call >= Duration::from_millis(30), "{had:?}");
        assert!(!had.starved(Duration::from_millis(100)), "{had:?}");
    }

    #[test]
    fn a_call_that_slept_through_its_deadline_was_starved() {
        let module = ModuleCpu::default();
        let mut meter = CallMeter::start(&module);
        std::thread::sleep(Duration::from_millis(60));
        let had = meter.finish().expect("the thread clock exists on Linux");
        assert!(had.starved(Duration::from_millis(60)), "{had:?}");
    }

    #[test]
    fn siblings_that_used_the_time_make_the_module_answer_for_it() {
        let module = ModuleCpu::default();
        let mut meter = CallMeter::start(&module);
        // Four sibling calls of the same module compute meanwhile, each
        // sampling as the epoch callback does.
        let siblings: Vec<_> = (0..4)
            .map(|_| {
                let module = module.clone();
                std::thread::spawn(move || {
                    let mut sibling = CallMeter::start(&module);
                    for _ in 0..10 {
                        spin(Duration::from_millis(5));
                        sibling.sample();
                    }
                    sibling.finish()
                })
            })
            .collect();
        for sibling in siblings {
            sibling.join().expect("sibling thread");
        }
        let had = meter.finish().expect("the thread clock exists on Linux");
        assert!(had.call < Duration::from_millis(5), "{had:?}");
        assert!(had.module >= Duration::from_millis(100), "{had:?}");
        assert!(!had.starved(Duration::from_millis(100)), "{had:?}");
    }
}
