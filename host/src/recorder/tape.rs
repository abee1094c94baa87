//! The guest's random source and wall clock under a tap: one pair of
//! adapters (wasmtime-wasi's `Rng` and `HostWallClock`) over whatever hands
//! the bytes and readings out — a [`Recorder`] drawing them from the
//! system and keeping them, or a [`Replayer`] giving back the recorded ones.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::HostWallClock;

use super::capture::Source;
use super::{Recorder, Replayer};

/// Where a tapped call's random bytes and clock readings come from.
pub trait Tape: Send + Sync + 'static {
    /// Fills `buf` with the next bytes of `source`.
    fn random(&self, source: Source, buf: &mut [u8]);
    /// The next wall-clock reading, since the Unix epoch.
    fn clock_reading(&self) -> Duration;
}

impl Tape for Recorder {
    fn random(&self, source: Source, buf: &mut [u8]) {
        Recorder::random(self, source, buf);
    }

    fn clock_reading(&self) -> Duration {
        Recorder::clock_reading(self)
    }
}

impl Tape for Replayer {
    fn random(&self, source: Source, buf: &mut [u8]) {
        Replayer::random(self, source, buf);
    }

    fn clock_reading(&self) -> Duration {
        Replayer::clock_reading(self)
    }
}

/// The guest's random source `source` under a tap.
pub struct TapedRng<T> {
    tape: Arc<T>,
    source: Source,
}

impl<T: Tape> TapedRng<T> {
    /// Bytes of `source` from `tape`.
    pub fn new(tape: Arc<T>, source: Source) -> Self {
        TapedRng { tape, source }
    }
}

impl<T: Tape> rand_core::TryRng for TapedRng<T> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut buf = [0u8; 4];
        self.tape.random(self.source, &mut buf);
        Ok(u32::from_le_bytes(buf))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut buf = [0u8; 8];
        self.tape.random(self.source, &mut buf);
        Ok(u64::from_le_bytes(buf))
    }
    fn try_fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), Infallible> {
        self.tape.random(self.source, buf);
        Ok(())
    }
}

/// The guest's wall clock under a tap.
pub struct TapedClock<T>(pub Arc<T>);

impl<T: Tape> HostWallClock for TapedClock<T> {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0.clock_reading()
    }
}
