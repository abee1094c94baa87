//! The recording format, `bosun.dev/recording/v1`: one guest call's
//! complete inputs and its outcome, as JSON.
//!
//! Everything the guest was handed is kept byte for byte as it was handed
//! over (objects as the JSON text the guest got, not re-serialised), so a
//! replay hands the same bytes again. A recording is read from files and
//! ConfigMaps a user controls: [`Recording::parse`] checks its size before
//! parsing and its format version before anything else.
//!
//! ```json
//! {
//!   "format": "bosun.dev/recording/v1",
//!   "module": {"name": "dnsrecord", "version": "0.1.0", "sha256": "…"},
//!   "call": "reconcile",
//!   "request": {"object": "{…}", "children": ["{…}"], "settings": null,
//!               "trigger": "manual", "attempt": 1},
//!   "limits": {"timeoutMs": 2000, "memoryBytes": 67108864},
//!   "now": "2026-12-07T07:00:00Z",
//!   "clock": {"fixed": 1796540400000000000},
//!   "random": {"secure": "base64…", "insecure": "base64…", "insecureSeed": "1234"},
//!   "reads": [{"get": {…}, "answer": {"found": "{…}"}}, …],
//!   "http": [{"request": {…}, "response": {…}}, …],
//!   "outcome": {"response": {…}},
//!   "truncated": false,
//!   "redacted": ["header authorization", …]
//! }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The format this host writes and reads.
pub const FORMAT_V1: &str = "bosun.dev/recording/v1";

/// The largest recording file `bosun reconcile --replay` reads.
pub const MAX_RECORDING_FILE_BYTES: usize = 64 << 20;

/// What replaces a redacted value, in headers and bodies alike.
pub const REDACTED: &str = "[redacted by bosun]";

/// One guest call, recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recording {
    /// Always [`FORMAT_V1`].
    pub format: String,
    /// The module that was called.
    pub module: ModuleId,
    /// `reconcile` or `finalize`.
    pub call: CallKind,
    /// The request exactly as the guest got it.
    pub request: RecordedRequest,
    /// The bounds the call ran under.
    pub limits: RecordedLimits,
    /// The host's time for the call (what planning used), RFC 3339.
    pub now: jiff::Timestamp,
    /// What the guest's wall clock said.
    pub clock: Clock,
    /// The random bytes the guest was handed.
    #[serde(default)]
    pub random: Random,
    /// Every `get-object` and `list-objects`, in order, with its answer.
    #[serde(default)]
    pub reads: Vec<Read>,
    /// Every outbound HTTP exchange, in the order the guest sent them.
    #[serde(default)]
    pub http: Vec<Exchange>,
    /// What the call ended with.
    pub outcome: RecordedOutcome,
    /// Whether something was left out to keep the recording within its
    /// cap; a replay of a truncated recording may diverge where it ends.
    #[serde(default)]
    pub truncated: bool,
    /// What was redacted (kind and name, never the value).
    #[serde(default)]
    pub redacted: Vec<String>,
}

/// A module's identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleId {
    /// The name its metadata declares.
    pub name: String,
    /// The version its metadata declares.
    pub version: String,
    /// The sha256 of the component, hex.
    pub sha256: String,
}

/// Which export was called.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    /// `reconcile`.
    Reconcile,
    /// `finalize`.
    Finalize,
}

/// The request as the guest got it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedRequest {
    /// The primary object's JSON text.
    pub object: String,
    /// The observed children's JSON texts.
    #[serde(default)]
    pub children: Vec<String>,
    /// The settings' JSON text.
    #[serde(default)]
    pub settings: Option<String>,
    /// What caused the call: `create`, `update`, `child-changed`,
    /// `read-changed`, `resync`, `requeue`, `retry` or `manual`.
    pub trigger: String,
    /// Which attempt this was.
    pub attempt: u32,
}

/// The call's bounds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedLimits {
    /// The deadline, in milliseconds.
    pub timeout_ms: u64,
    /// The memory cap, in bytes.
    pub memory_bytes: u64,
}

impl RecordedLimits {
    /// The bounds of a call run under `limits`.
    pub fn of(limits: &crate::limits::Limits) -> Self {
        RecordedLimits {
            timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            memory_bytes: limits.memory_bytes as u64,
        }
    }
}

/// The guest's wall clock: fixed for the call, or each reading in order
/// (nanoseconds since the Unix epoch).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Clock {
    /// Every reading was this.
    Fixed(u64),
    /// The readings, in order; a replay repeats the last once they run out.
    Readings(Vec<u64>),
}

/// Random bytes handed out, base64.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Random {
    /// `wasi:random/random`.
    #[serde(default)]
    pub secure: Bytes,
    /// `wasi:random/insecure`.
    #[serde(default)]
    pub insecure: Bytes,
    /// `wasi:random/insecure-seed`, a u128 in decimal.
    #[serde(default)]
    pub insecure_seed: String,
}

/// Bytes kept as base64 text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BASE64
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// One read and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Read {
    /// What the guest asked.
    pub ask: ReadAsk,
    /// What it was told.
    pub answer: ReadAnswer,
}

/// A read as the guest asked it (before the host's rules applied).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ReadAsk {
    /// `get-object`.
    Get {
        /// As asked.
        api_version: String,
        /// As asked.
        kind: String,
        /// As asked.
        namespace: Option<String>,
        /// As asked.
        name: String,
    },
    /// `list-objects`.
    List {
        /// As asked.
        api_version: String,
        /// As asked.
        kind: String,
        /// As asked.
        namespace: Option<String>,
        /// As asked.
        label_selector: Option<String>,
    },
}

/// A read's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum ReadAnswer {
    /// A get's answer: the object's JSON text, or none.
    Found(Option<String>),
    /// A list's answer: the objects' JSON texts.
    Items(Vec<String>),
    /// The host refused the read, with this message.
    Refused(String),
}

/// One HTTP exchange.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exchange {
    /// What the guest sent (credentials the host added are not part of it).
    pub request: HttpRequest,
    /// What came back, when something did.
    #[serde(default)]
    pub response: Option<HttpResponse>,
    /// How the request failed, when it did (wasi-http's error code).
    #[serde(default)]
    pub error: Option<String>,
}

/// An HTTP request as the guest sent it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequest {
    /// The method.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Header names and values, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, as far as the host read it.
    #[serde(default)]
    pub body: Body,
}

/// An HTTP response as the guest got it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, as far as the guest read it.
    #[serde(default)]
    pub body: Body,
    /// How reading the body ended early, when it did.
    #[serde(default)]
    pub body_error: Option<String>,
}

/// A body: text when it is UTF-8, else base64.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Body {
    /// UTF-8 text.
    Text(String),
    /// Anything else.
    Base64(Bytes),
}

impl Default for Body {
    fn default() -> Self {
        Body::Text(String::new())
    }
}

impl Body {
    /// `bytes`, as text when they are UTF-8.
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        match String::from_utf8(bytes) {
            Ok(text) => Body::Text(text),
            Err(error) => Body::Base64(Bytes(error.into_bytes())),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Text(text) => text.as_bytes(),
            Body::Base64(bytes) => &bytes.0,
        }
    }
}

/// How the call ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum RecordedOutcome {
    /// The guest answered (`reconcile`'s or `finalize`'s response, as JSON).
    Response(serde_json::Value),
    /// The guest returned an error of its own.
    Error {
        /// `retryable` or `permanent`.
        class: String,
        /// Its reason.
        reason: String,
        /// Its message.
        message: String,
    },
    /// The call failed: a trap, a deadline, memory, invalid output.
    Failed(String),
    /// The host ended the recording before the call ended.
    Unfinished,
}

/// Why a recording cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Larger than a recording may be.
    #[error("the recording is {size} bytes; a recording is at most {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON, or not a recording.
    #[error("not a bosun recording: {0}")]
    Malformed(String),
    /// A format this host does not read.
    #[error("recording format {found:?} is not one this bosun reads (it reads {FORMAT_V1:?})")]
    Version {
        /// What the file says.
        found: String,
    },
}

impl Recording {
    /// Parses `bytes`, checking the size first and the format version
    /// before the rest.
    pub fn parse(bytes: &[u8]) -> Result<Recording, FormatError> {
        if bytes.len() > MAX_RECORDING_FILE_BYTES {
            return Err(FormatError::TooLarge {
                size: bytes.len(),
                limit: MAX_RECORDING_FILE_BYTES,
            });
        }
        #[derive(Deserialize)]
        struct Head {
            format: Option<serde_json::Value>,
        }
        let head: Head = serde_json::from_slice(bytes)
            .map_err(|error| FormatError::Malformed(error.to_string()))?;
        match head.format {
            Some(serde_json::Value::String(format)) if format == FORMAT_V1 => {}
            Some(serde_json::Value::String(found)) => return Err(FormatError::Version { found }),
            Some(other) => {
                return Err(FormatError::Malformed(format!(
                    "\"format\" is {other}, not a string"
                )));
            }
            None => {
                return Err(FormatError::Malformed(
                    "it has no \"format\" field".to_owned(),
                ));
            }
        }
        serde_json::from_slice(bytes).map_err(|error| FormatError::Malformed(error.to_string()))
    }

    /// The recording as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_checked_for_size_and_version_before_its_shape() {
        let too_large = vec![b' '; MAX_RECORDING_FILE_BYTES + 1];
        assert!(matches!(
            Recording::parse(&too_large),
            Err(FormatError::TooLarge { .. })
        ));
        assert!(matches!(
            Recording::parse(br#"{"format": "bosun.dev/recording/v2", "anything": 1}"#),
            Err(FormatError::Version { .. })
        ));
        assert!(matches!(
            Recording::parse(br#"{"format": 1}"#),
            Err(FormatError::Malformed(_))
        ));
        assert!(matches!(
            Recording::parse(br#"{"format": "bosun.dev/recording/v1"}"#),
            Err(FormatError::Malformed(_))
        ));
    }
}
