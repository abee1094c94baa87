//! The bounds on one compile, and which of them a compile went past.

use std::time::Duration;

/// The bounds on compiling one component in the cage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompileLimits {
    /// The largest component compiled, in bytes; checked before anything
    /// parses it.
    pub max_bytes: usize,
    /// CPU time the compile may use (whole seconds: `RLIMIT_CPU`'s unit,
    /// rounded up).
    pub cpu_time: Duration,
    /// Memory the compile may map (`RLIMIT_DATA`), in bytes; also the
    /// largest artifact accepted.
    pub memory_bytes: u64,
}

impl Default for CompileLimits {
    /// Room for interpreted guests, whose components carry their runtime:
    /// a componentize-py guest of 18.5 MB compiles here in 14.4 s of CPU
    /// with 334 MiB of data (the Rust examples in under 2 s and 50 MiB).
    /// 64 MiB is also what a fetched source may be; 60 s and 768 MiB leave
    /// four and two times the Python guest's needs. ARCHITECTURE.md
    /// ("Compile limits") has the figures.
    fn default() -> Self {
        CompileLimits {
            max_bytes: 64 << 20,
            cpu_time: Duration::from_secs(60),
            memory_bytes: 768 << 20,
        }
    }
}

impl CompileLimits {
    /// The CPU time limit in whole seconds, as `RLIMIT_CPU` takes it
    /// (rounded up; at least one).
    pub fn cpu_seconds(&self) -> u64 {
        (self.cpu_time.as_secs() + u64::from(self.cpu_time.subsec_nanos() > 0)).max(1)
    }

    /// How long the host waits for a worker before it kills it: three
    /// times the CPU time plus 30 s. `RLIMIT_CPU` ends a compile that
    /// computes too long; this ends one that gets no CPU (it runs niced,
    /// behind the calls, on a busy host) or waits on nothing, so that it
    /// cannot hold a compile slot for ever. A worker killed here without
    /// having used its CPU time is the host's trouble, not the
    /// component's: the load is tried again, and nothing is remembered.
    pub fn wall_clock(&self) -> Duration {
        Duration::from_secs(self.cpu_seconds() * 3 + 30)
    }

    /// A short fingerprint of the limits, for the refusal markers' names:
    /// a refusal holds only under the limits it was made under.
    pub(in crate::engine) fn fingerprint(&self) -> String {
        format!(
            "b{}-c{}-m{}",
            self.max_bytes,
            self.cpu_seconds(),
            self.memory_bytes
        )
    }
}
/// Which limit a compile went past, with the limit's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "limit")]
pub enum LimitHit {
    /// The component is larger than the size cap.
    Size {
        /// Its size in bytes.
        size: usize,
        /// The cap in bytes.
        max: usize,
    },
    /// The compile used up its CPU time.
    Time {
        /// The CPU time allowed, in seconds.
        seconds: u64,
    },
    /// The compile needed more memory than allowed.
    Memory {
        /// The memory allowed, in bytes.
        bytes: u64,
    },
}

impl LimitHit {
    /// The flag of `bosun run` (and the other subcommands) that sets the limit.
    pub fn flag(&self) -> &'static str {
        match self {
            LimitHit::Size { .. } => "--compile-max-size-mib",
            LimitHit::Time { .. } => "--compile-cpu-limit",
            LimitHit::Memory { .. } => "--compile-memory-limit-mib",
        }
    }
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::Size { size, max } => write!(
                f,
                "it is {:.1} MiB, over the {} MiB compile size limit",
                *size as f64 / (1 << 20) as f64,
                max >> 20
            ),
            LimitHit::Time { seconds } => {
                write!(f, "compiling it took more than its {seconds} s of CPU time")
            }
            LimitHit::Memory { bytes } => write!(
                f,
                "compiling it needed more than its {} MiB of memory",
                bytes >> 20
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_rounds_up_to_whole_seconds_and_the_wall_clock_leaves_room() {
        let limits = CompileLimits {
            cpu_time: Duration::from_millis(2500),
            ..CompileLimits::default()
        };
        assert_eq!(limits.cpu_seconds(), 3);
        assert_eq!(limits.wall_clock(), Duration::from_secs(39));
        assert_ne!(
            limits.fingerprint(),
            CompileLimits::default().fingerprint(),
            "other limits, another marker"
        );
    }
}
