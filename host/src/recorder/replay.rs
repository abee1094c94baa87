//! The replaying side: a call answered from a recording instead of the
//! world — the same clock readings, random bytes, read answers and HTTP
//! responses, each handed out in the order it was recorded.
//!
//! A guest that asks for something the recording does not hold next (a
//! different read, another URL, more random bytes than were handed out)
//! has diverged from the recorded call: it is told so as it would be told
//! of a refusal, and the divergence is kept for the caller to report.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::capture::Source;
use super::format::{Clock, Exchange, ReadAnswer, ReadAsk, Recording};

/// Answers one call from a recording.
pub struct Replayer {
    clock: Clock,
    secure: Vec<u8>,
    insecure: Vec<u8>,
    insecure_seed: u128,
    reads: Vec<(ReadAsk, ReadAnswer)>,
    http: Vec<Exchange>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    clock_at: usize,
    secure_at: usize,
    insecure_at: usize,
    read_at: usize,
    http_at: usize,
    divergences: Vec<String>,
}

/// The most divergences kept: the first ones say what went differently.
const MAX_DIVERGENCES: usize = 32;

impl Replayer {
    /// A replayer handing out what `recording` holds.
    pub fn new(recording: &Recording) -> Arc<Replayer> {
        Arc::new(Replayer {
            clock: recording.clock.clone(),
            secure: recording.random.secure.0.clone(),
            insecure: recording.random.insecure.0.clone(),
            // A seed that does not parse was not written by a host: zero.
            insecure_seed: recording.random.insecure_seed.parse().unwrap_or(0),
            reads: recording
                .reads
                .iter()
                .map(|read| (read.ask.clone(), read.answer.clone()))
                .collect(),
            http: recording.http.clone(),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What went differently from the recorded call, in order.
    pub fn divergences(&self) -> Vec<String> {
        let state = self.state();
        let mut found = state.divergences.clone();
        if state.read_at < self.reads.len() {
            found.push(format!(
                "the guest made {} of the {} reads recorded",
                state.read_at,
                self.reads.len()
            ));
        }
        if state.http_at < self.http.len() {
            found.push(format!(
                "the guest sent {} of the {} HTTP requests recorded",
                state.http_at,
                self.http.len()
            ));
        }
        found
    }

    fn diverged(state: &mut State, what: String) {
        if state.divergences.len() < MAX_DIVERGENCES {
            state.divergences.push(what);
        }
    }

    /// The seed `wasi:random/insecure-seed` hands out.
    pub fn insecure_seed(&self) -> u128 {
        self.insecure_seed
    }

    /// The next read's answer, when the guest asks what was asked next.
    pub fn read(&self, ask: &ReadAsk) -> Result<ReadAnswer, String> {
        let mut state = self.state();
        match self.reads.get(state.read_at) {
            Some((recorded, answer)) if recorded == ask => {
                state.read_at += 1;
                Ok(answer.clone())
            }
            next => {
                let message = match next {
                    Some((recorded, _)) => format!(
                        "read {} is not in the recording: the recorded call read {} next",
                        describe(ask),
                        describe(recorded)
                    ),
                    None => format!(
                        "read {} is not in the recording: the recorded call made no more reads",
                        describe(ask)
                    ),
                };
                Self::diverged(&mut state, message.clone());
                Err(message)
            }
        }
    }

    /// The next exchange, when the guest sends what was sent next (same
    /// method and URL); else why not.
    pub fn http(&self, method: &str, url: &str) -> Result<Exchange, String> {
        let mut state = self.state();
        match self.http.get(state.http_at) {
            Some(exchange) if exchange.request.method == method && exchange.request.url == url => {
                state.http_at += 1;
                Ok(exchange.clone())
            }
            next => {
                let message = match next {
                    Some(recorded) => format!(
                        "HTTP {method} {url} is not in the recording: the recorded call sent {} {} next",
                        recorded.request.method, recorded.request.url
                    ),
                    None => format!(
                        "HTTP {method} {url} is not in the recording: the recorded call sent no more requests"
                    ),
                };
                Self::diverged(&mut state, message.clone());
                Err(message)
            }
        }
    }

    pub(super) fn random(&self, source: Source, buf: &mut [u8]) {
        let mut state = self.state();
        let (bytes, at) = match source {
            Source::Secure => (&self.secure, state.secure_at),
            Source::Insecure => (&self.insecure, state.insecure_at),
        };
        let available = bytes.len().saturating_sub(at).min(buf.len());
        buf[..available].copy_from_slice(&bytes[at..at + available]);
        // Past the recording: zeros, and said so once.
        buf[available..].fill(0);
        let short = available < buf.len();
        let at = at + available;
        match source {
            Source::Secure => state.secure_at = at,
            Source::Insecure => state.insecure_at = at,
        }
        if short && !state.divergences.iter().any(|d| d.contains("random bytes")) {
            Self::diverged(
                &mut state,
                format!(
                    "the guest asked for more {} random bytes than the recording holds ({}); it was given zeros",
                    match source {
                        Source::Secure => "secure",
                        Source::Insecure => "insecure",
                    },
                    bytes.len()
                ),
            );
        }
    }

    pub(super) fn clock_reading(&self) -> Duration {
        match &self.clock {
            Clock::Fixed(nanos) => Duration::from_nanos(*nanos),
            Clock::Readings(readings) => {
                let mut state = self.state();
                let reading = readings
                    .get(state.clock_at)
                    .or(readings.last())
                    .copied()
                    .unwrap_or(0);
                state.clock_at += 1;
                Duration::from_nanos(reading)
            }
        }
    }
}

fn describe(ask: &ReadAsk) -> String {
    match ask {
        ReadAsk::Get {
            api_version,
            kind,
            namespace,
            name,
        } => format!(
            "get {kind}.{api_version} {}{name}",
            namespace
                .as_deref()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default()
        ),
        ReadAsk::List {
            api_version,
            kind,
            namespace,
            label_selector,
        } => format!(
            "list {kind}.{api_version} in {} selecting {:?}",
            namespace.as_deref().unwrap_or("every namespace"),
            label_selector.as_deref().unwrap_or("")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::format::{Read, Recording};
    use crate::recorder::tape::TapedClock;
    use wasmtime_wasi::HostWallClock;

    fn recording() -> Recording {
        let text = serde_json::json!({
            "format": "bosun.dev/recording/v1",
            "module": {"name": "m", "version": "1", "sha256": "00"},
            "call": "reconcile",
            "request": {"object": "{}", "trigger": "manual", "attempt": 1},
            "limits": {"timeoutMs": 1, "memoryBytes": 1},
            "now": "2026-01-01T00:00:00Z",
            "clock": {"readings": [5, 7]},
            "random": {"secure": "AQID", "insecureSeed": "9"},
            "outcome": {"failed": "trap"}
        })
        .to_string();
        let mut recording = Recording::parse(text.as_bytes()).unwrap();
        recording.reads.push(Read {
            ask: ReadAsk::Get {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("a".into()),
                name: "x".into(),
            },
            answer: ReadAnswer::Found(None),
        });
        recording
    }

    #[test]
    fn answers_in_order_and_names_what_diverges() {
        let replayer = Replayer::new(&recording());
        let clock = TapedClock(replayer.clone());
        assert_eq!(clock.now(), Duration::from_nanos(5));
        assert_eq!(clock.now(), Duration::from_nanos(7));
        assert_eq!(clock.now(), Duration::from_nanos(7), "the last repeats");
        let mut buf = [0u8; 4];
        replayer.random(Source::Secure, &mut buf);
        assert_eq!(buf, [1, 2, 3, 0]);
        let other = ReadAsk::Get {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("a".into()),
            name: "y".into(),
        };
        let refused = replayer.read(&other).unwrap_err();
        assert!(refused.contains("is not in the recording"), "{refused}");
        assert!(replayer.http("GET", "http://a/").is_err());
        let divergences = replayer.divergences();
        assert_eq!(divergences.len(), 4, "{divergences:?}");
        assert!(divergences[0].contains("more secure random bytes"));
    }
}
