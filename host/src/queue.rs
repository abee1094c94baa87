//! The work queue: one slot per object key, delayed entries, per-key
//! exponential backoff under a global token bucket, and a concurrency cap.

use std::time::Duration;

/// Receives the queue's measurements, as client-go's `MetricsProvider` does;
/// telemetry implements it per controller. Every method defaults to nothing.
pub trait QueueObserver: Send + Sync {
    /// A key was added (also when it merged with a pending one).
    fn added(&self) {}
    /// A key was re-added with backoff after an error.
    fn retried(&self) {}
    /// The number of keys waiting (ready or delayed), after a change.
    fn depth(&self, depth: usize) {
        let _ = depth;
    }
    /// How long a key waited between becoming ready and being handed out.
    fn waited(&self, latency: Duration) {
        let _ = latency;
    }
    /// How long a key was held by a worker.
    fn worked(&self, duration: Duration) {
        let _ = duration;
    }
    /// The number of keys being worked on, after a change.
    fn active(&self, workers: usize) {
        let _ = workers;
    }
}
