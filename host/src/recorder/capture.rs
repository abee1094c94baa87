//! The recording side: what one call is handed, kept as it is handed over.
//!
//! A [`Recorder`] is shared by the call's sandbox (clock, random, reads)
//! and its HTTP hook (exchanges and their bodies, which stream on tasks of
//! their own), so its state sits behind one mutex. Every addition is
//! charged against the recorder's byte cap first: past it the addition is
//! dropped and the recording marked truncated, so a guest that reads,
//! asks for random bytes or downloads without end never grows it.
//!
//! Credentials never enter it: the host adds a grant's header after the
//! request was captured, the guest's own `Authorization`, `Cookie` and
//! the like are replaced as they are captured, and the values of granted
//! secrets the host injected during the call are scrubbed from every byte
//! of the recording when it is finished. Those values are held only while
//! the call runs, to be scrubbed, and never written.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use super::format::{
    Body, Bytes, CallKind, Clock, Exchange, FORMAT_V1, HttpRequest, HttpResponse, ModuleId,
    REDACTED, Random, Read, ReadAnswer, ReadAsk, RecordedLimits, RecordedOutcome, RecordedRequest,
    Recording,
};

/// The cap `bosun reconcile --record` uses by default.
pub const DEFAULT_CAP_BYTES: usize = 16 << 20;

/// Headers whose values are credentials, whoever set them.
const SENSITIVE_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Keeps one call's inputs, within a byte cap.
pub struct Recorder {
    cap: usize,
    state: Mutex<State>,
}

/// An exchange while it is under way: bodies as raw bytes.
#[derive(Default)]
pub(super) struct Draft {
    pub(super) request: Option<HttpRequest>,
    pub(super) request_body: Vec<u8>,
    pub(super) status: Option<u16>,
    pub(super) response_headers: Vec<(String, String)>,
    pub(super) response_body: Vec<u8>,
    pub(super) body_error: Option<String>,
    pub(super) error: Option<String>,
}

#[derive(Default)]
struct State {
    bytes: usize,
    truncated: bool,
    fixed_clock: Option<u64>,
    readings: Vec<u64>,
    secure: Vec<u8>,
    insecure: Vec<u8>,
    insecure_seed: u128,
    reads: Vec<Read>,
    exchanges: Vec<Draft>,
    /// Granted secret values injected during the call, to be scrubbed.
    secrets: Vec<Vec<u8>>,
    redacted: BTreeSet<String>,
}

impl State {
    /// Charges `n` bytes; false (and truncated) when they do not fit.
    fn charge(&mut self, n: usize, cap: usize) -> bool {
        match self.bytes.checked_add(n) {
            Some(total) if total <= cap => {
                self.bytes = total;
                true
            }
            _ => {
                self.truncated = true;
                false
            }
        }
    }
}

/// Which random interface bytes were handed out through.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// `wasi:random/random`.
    Secure,
    /// `wasi:random/insecure`.
    Insecure,
}

/// What the call's caller knows and the sandbox does not.
pub struct Finish {
    /// The module.
    pub module: ModuleId,
    /// Which export.
    pub call: CallKind,
    /// The request.
    pub request: RecordedRequest,
    /// The bounds.
    pub limits: RecordedLimits,
    /// The host's time for the call.
    pub now: Timestamp,
    /// How it ended.
    pub outcome: RecordedOutcome,
}

impl Recorder {
    /// A recorder keeping at most `cap` bytes of what the guest is handed
    /// (its request and outcome are always kept: they are bounded by the
    /// call's own limits). `clock`: the guest's fixed wall clock, if any.
    pub fn new(cap: usize, clock: Option<Timestamp>) -> Arc<Recorder> {
        let mut seed = [0u8; 16];
        os_random(&mut seed);
        Arc::new(Recorder {
            cap,
            state: Mutex::new(State {
                fixed_clock: clock.map(nanos),
                insecure_seed: u128::from_le_bytes(seed),
                ..State::default()
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The seed `wasi:random/insecure-seed` hands out.
    pub fn insecure_seed(&self) -> u128 {
        self.state().insecure_seed
    }

    /// Fills `buf` from the system's source and keeps the bytes.
    pub(super) fn random(&self, source: Source, buf: &mut [u8]) {
        os_random(buf);
        let mut state = self.state();
        if state.charge(buf.len(), self.cap) {
            match source {
                Source::Secure => state.secure.extend_from_slice(buf),
                Source::Insecure => state.insecure.extend_from_slice(buf),
            }
        }
    }

    /// Keeps a read and what the guest was told.
    pub fn read(&self, ask: ReadAsk, answer: ReadAnswer) {
        let size = ask_size(&ask) + answer_size(&answer);
        let mut state = self.state();
        if state.charge(size, self.cap) {
            state.reads.push(Read { ask, answer });
        }
    }

    /// Starts an exchange: the request's head as the guest made it, its
    /// credential headers replaced. None once the cap is reached: the
    /// exchange is then not kept at all.
    pub fn http_request(
        &self,
        method: &str,
        url: &str,
        headers: &http::HeaderMap,
    ) -> Option<usize> {
        let mut state = self.state();
        let headers = captured_headers(headers, &mut state.redacted);
        let size = method.len() + url.len() + headers_size(&headers);
        if !state.charge(size, self.cap) {
            return None;
        }
        state.exchanges.push(Draft {
            request: Some(HttpRequest {
                method: method.to_owned(),
                url: url.to_owned(),
                headers,
                body: Body::default(),
            }),
            ..Draft::default()
        });
        Some(state.exchanges.len() - 1)
    }

    /// A granted secret value the host injected into a request: scrubbed
    /// from the recording when it is finished.
    pub fn secret(&self, value: &[u8]) {
        if value.is_empty() {
            return;
        }
        let mut state = self.state();
        if !state.secrets.iter().any(|known| known == value) {
            state.secrets.push(value.to_vec());
        }
    }

    /// Applies `f` to exchange `index`'s draft, charging `n` bytes first.
    pub(super) fn with_exchange(&self, index: usize, n: usize, f: impl FnOnce(&mut Draft)) {
        let mut state = self.state();
        if n > 0 && !state.charge(n, self.cap) {
            return;
        }
        if let Some(draft) = state.exchanges.get_mut(index) {
            f(draft);
        }
    }

    /// Records a response head.
    pub(super) fn response_head(&self, index: usize, status: u16, headers: &http::HeaderMap) {
        let mut state = self.state();
        let headers = captured_headers(headers, &mut state.redacted);
        if !state.charge(headers_size(&headers) + 4, self.cap) {
            return;
        }
        if let Some(draft) = state.exchanges.get_mut(index) {
            draft.status = Some(status);
            draft.response_headers = headers;
        }
    }

    /// A wall-clock reading handed to the guest.
    pub(super) fn clock_reading(&self) -> Duration {
        let mut state = self.state();
        if let Some(fixed) = state.fixed_clock {
            return Duration::from_nanos(fixed);
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let reading = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        // A reading costs its JSON digits; past the cap a replay repeats
        // the last reading kept.
        if state.charge(20, self.cap) {
            state.readings.push(reading);
        }
        Duration::from_nanos(reading)
    }

    /// The recording: what was kept, with credentials scrubbed.
    pub fn finish(&self, finish: Finish) -> Recording {
        let mut state = self.state();
        let secrets = std::mem::take(&mut state.secrets);
        let mut redacted = std::mem::take(&mut state.redacted);
        if !secrets.is_empty() {
            redacted.insert("granted secret values".to_owned());
        }
        let http = state
            .exchanges
            .drain(..)
            .filter_map(|draft| exchange(draft, &secrets))
            .collect();
        let recording = Recording {
            format: FORMAT_V1.to_owned(),
            module: finish.module,
            call: finish.call,
            request: finish.request,
            limits: finish.limits,
            now: finish.now,
            clock: match state.fixed_clock {
                Some(fixed) => Clock::Fixed(fixed),
                None => Clock::Readings(std::mem::take(&mut state.readings)),
            },
            random: Random {
                secure: Bytes(std::mem::take(&mut state.secure)),
                insecure: Bytes(std::mem::take(&mut state.insecure)),
                insecure_seed: state.insecure_seed.to_string(),
            },
            reads: std::mem::take(&mut state.reads),
            http,
            outcome: finish.outcome,
            truncated: state.truncated,
            redacted: redacted.into_iter().collect(),
        };
        scrub(recording, &secrets)
    }
}

/// The exchange a draft became, its bodies scrubbed of `secrets`.
fn exchange(draft: Draft, secrets: &[Vec<u8>]) -> Option<Exchange> {
    let mut request = draft.request?;
    request.body = Body::from_bytes(replace_all(draft.request_body, secrets));
    let response = draft.status.map(|status| HttpResponse {
        status,
        headers: draft.response_headers,
        body: Body::from_bytes(replace_all(draft.response_body, secrets)),
        body_error: draft.body_error,
    });
    Some(Exchange {
        request,
        response,
        error: draft.error,
    })
}

/// Replaces every occurrence of each secret in `bytes` with [`REDACTED`].
pub(super) fn replace_all(mut bytes: Vec<u8>, secrets: &[Vec<u8>]) -> Vec<u8> {
    for secret in secrets {
        if secret.is_empty() || bytes.len() < secret.len() {
            continue;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at..].starts_with(secret) {
                out.extend_from_slice(REDACTED.as_bytes());
                at += secret.len();
            } else {
                out.push(bytes[at]);
                at += 1;
            }
        }
        bytes = out;
    }
    bytes
}

/// The recording with every secret value gone from all its text (headers,
/// read answers, the outcome), as the guest may have copied one anywhere
/// once a server echoed it.
fn scrub(recording: Recording, secrets: &[Vec<u8>]) -> Recording {
    if secrets.is_empty() {
        return recording;
    }
    let Ok(text) = serde_json::to_string(&recording) else {
        return recording;
    };
    // A value appears in JSON text as itself, or escaped.
    let mut forms: Vec<Vec<u8>> = Vec::new();
    for secret in secrets {
        forms.push(secret.clone());
        if let Ok(text) = std::str::from_utf8(secret)
            && let Ok(escaped) = serde_json::to_string(text)
        {
            forms.push(escaped.trim_matches('"').as_bytes().to_vec());
        }
    }
    let scrubbed = replace_all(text.into_bytes(), &forms);
    match serde_json::from_slice(&scrubbed) {
        Ok(recording) => recording,
        // Scrubbing broke the JSON (a secret that is JSON syntax itself):
        // keep nothing rather than risk the value.
        Err(_) => Recording {
            reads: Vec::new(),
            http: Vec::new(),
            truncated: true,
            outcome: RecordedOutcome::Unfinished,
            ..recording_without_text()
        },
    }
}

fn recording_without_text() -> Recording {
    Recording {
        format: FORMAT_V1.to_owned(),
        module: ModuleId {
            name: String::new(),
            version: String::new(),
            sha256: String::new(),
        },
        call: CallKind::Reconcile,
        request: RecordedRequest {
            object: String::new(),
            children: Vec::new(),
            settings: None,
            trigger: String::new(),
            attempt: 0,
        },
        limits: RecordedLimits {
            timeout_ms: 0,
            memory_bytes: 0,
        },
        now: Timestamp::UNIX_EPOCH,
        clock: Clock::Readings(Vec::new()),
        random: Random::default(),
        reads: Vec::new(),
        http: Vec::new(),
        outcome: RecordedOutcome::Unfinished,
        truncated: true,
        redacted: vec!["everything: a secret value could not be scrubbed".to_owned()],
    }
}

fn captured_headers(
    headers: &http::HeaderMap,
    redacted: &mut BTreeSet<String>,
) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_owned();
            let value = if SENSITIVE_HEADERS.contains(&name.as_str()) || value.is_sensitive() {
                redacted.insert(format!("header {name}"));
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

fn headers_size(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len() + 8).sum()
}

fn ask_size(ask: &ReadAsk) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    match ask {
        ReadAsk::Get {
            api_version,
            kind,
            namespace,
            name,
        } => api_version.len() + kind.len() + opt(namespace) + name.len() + 64,
        ReadAsk::List {
            api_version,
            kind,
            namespace,
            label_selector,
        } => api_version.len() + kind.len() + opt(namespace) + opt(label_selector) + 64,
    }
}

fn answer_size(answer: &ReadAnswer) -> usize {
    match answer {
        ReadAnswer::Found(found) => found.as_ref().map_or(4, String::len),
        ReadAnswer::Items(items) => items.iter().map(|i| i.len() + 4).sum(),
        ReadAnswer::Refused(message) => message.len(),
    }
}

fn nanos(at: Timestamp) -> u64 {
    u64::try_from(at.as_nanosecond()).unwrap_or(0)
}

/// The operating system's random bytes. Its failure is not recoverable in
/// any useful way (wasmtime's own default generator panics on it too).
fn os_random(buf: &mut [u8]) {
    #[expect(
        clippy::expect_used,
        reason = "the OS random source does not fail on Linux"
    )]
    getrandom::fill(buf).expect("the operating system's random source");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(recorder: &Recorder) -> Recording {
        recorder.finish(Finish {
            module: ModuleId {
                name: "m".into(),
                version: "1".into(),
                sha256: "00".into(),
            },
            call: CallKind::Reconcile,
            request: RecordedRequest {
                object: "{}".into(),
                children: Vec::new(),
                settings: None,
                trigger: "manual".into(),
                attempt: 1,
            },
            limits: RecordedLimits {
                timeout_ms: 1,
                memory_bytes: 1,
            },
            now: Timestamp::UNIX_EPOCH,
            outcome: RecordedOutcome::Response(serde_json::json!({"status": "token=hunter22"})),
        })
    }

    #[test]
    fn what_would_pass_the_cap_is_dropped_and_the_recording_marked() {
        let recorder = Recorder::new(1000, None);
        let ask = || ReadAsk::Get {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: None,
            name: "a".into(),
        };
        recorder.read(ask(), ReadAnswer::Found(Some("x".repeat(100))));
        for _ in 0..100 {
            recorder.read(ask(), ReadAnswer::Found(Some("x".repeat(500))));
            let mut buf = [0u8; 64];
            recorder.random(Source::Secure, &mut buf);
        }
        let recording = finish(&recorder);
        assert!(recording.truncated);
        assert_eq!(recording.reads.len(), 1 + 1, "{:?}", recording.reads.len());
        assert!(recording.to_json().len() < 10_000);
    }

    #[test]
    fn injected_secrets_and_credential_headers_never_reach_the_recording() {
        let recorder = Recorder::new(1 << 20, None);
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Basic abc".parse().unwrap());
        headers.insert("x-echo", "hunter22".parse().unwrap());
        let index = recorder
            .http_request("GET", "http://a.example/", &headers)
            .unwrap();
        recorder.secret(b"hunter22");
        recorder.with_exchange(index, 20, |draft| {
            draft.response_body = b"key is hunter22!".to_vec();
            draft.status = Some(200);
        });
        let text = finish(&recorder).to_json();
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!text.contains("Basic abc"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
    }

    #[test]
    fn replace_all_replaces_every_occurrence() {
        assert_eq!(
            replace_all(b"aXbXX".to_vec(), &[b"X".to_vec()]),
            format!("a{REDACTED}b{REDACTED}{REDACTED}").into_bytes()
        );
    }
}
