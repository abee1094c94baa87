//! The bounds on one guest call, read by every layer that enforces a part
//! of them: the engine (time, memory, output), the HTTP layer, the
//! controller (requeues, read tracking). Data at the bottom of the house:
//! this module imports nothing of the crate, as kube-runtime's
//! `watcher::Config` sits below everything that uses it. A grant's
//! overrides of them live with the grant ([`crate::grants::LimitOverrides`]).

use std::time::Duration;

/// The default floor of a requeue: a guest asking for 0 ms would otherwise
/// spin its object through the queue as fast as the host can go.
pub const DEFAULT_MIN_REQUEUE: Duration = Duration::from_millis(250);

/// The default cap on the reads tracked per call (see
/// [`Limits::tracked_reads`]): enough for a reconciler that reads its
/// dependencies by name, small enough that ten thousand primaries cost
/// megabytes, not gigabytes.
pub const DEFAULT_MAX_TRACKED_READS: u32 = 256;

/// Bounds on one call into a guest: its time, its memory, and what it may
/// return, in bytes and in count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time the call may run, computing or waiting in a host
    /// call; computing is stopped in steps of [`EPOCH_TICK`](crate::engine::EPOCH_TICK).
    pub timeout: Duration,
    /// Linear memory the instance may grow to. Host-side buffers a guest
    /// can size (random bytes, list results) are capped by it too.
    pub memory_bytes: usize,
    /// Total bytes of children, status and events the guest may return.
    pub output_bytes: usize,
    /// Desired children one reconcile may return.
    pub children: usize,
    /// Events one call may return.
    pub events: usize,
    /// Log lines one call may write; the rest are counted and dropped.
    pub log_lines: u32,
    /// The longest error message kept; longer ones are cut.
    pub message_bytes: usize,
    /// The shortest requeue a guest may ask for; shorter ones are raised to it.
    pub min_requeue: Duration,
    /// What one call may spend on outbound HTTP.
    pub http: HttpLimits,
    /// Reads of one call tracked precisely for event-driven reconciles;
    /// past them, reads are tracked per kind and namespace (see
    /// [`crate::reads::ReadLog`]).
    pub tracked_reads: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(2),
            memory_bytes: 64 << 20,
            output_bytes: 8 << 20,
            children: 256,
            events: 32,
            log_lines: 256,
            message_bytes: 4096,
            min_requeue: DEFAULT_MIN_REQUEUE,
            http: HttpLimits::default(),
            tracked_reads: DEFAULT_MAX_TRACKED_READS,
        }
    }
}

/// The defaults, overridable per module in the grant's `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests one call may send.
    pub requests: u32,
    /// Request body bytes one call may send, in total.
    pub request_bytes: u64,
    /// Response body bytes one call may receive, in total.
    pub response_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            requests: 16,
            request_bytes: 1 << 20,
            response_bytes: 4 << 20,
        }
    }
}
