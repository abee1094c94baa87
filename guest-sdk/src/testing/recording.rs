//! A bosun recording (`bosun reconcile --record`, `bosun record get`) as a
//! test fixture: the recorded request, clock, read answers and HTTP
//! answers loaded into a [`Harness`], so a call seen in a cluster becomes
//! a native test.
//!
//! The format is the host's `bosun.dev/recording/v1` (see the host's
//! `recorder::format`); only what the harness can stand in for is read:
//! the objects the reads returned become the harness's cache (its read
//! rules then answer as the host did), and each HTTP exchange becomes a
//! stub answering once, in order. Random bytes are not replayed natively:
//! a reconciler's own randomness is its own there.

use serde_json::Value;

use super::{Harness, HttpStub};
use crate::http::{HttpErrorKind, Method};
use crate::{Reconciler, Trigger};

/// The format this SDK reads.
const FORMAT_V1: &str = "bosun.dev/recording/v1";

/// The largest recording read, as `bosun reconcile --replay`'s cap.
pub const MAX_RECORDING_BYTES: usize = 64 << 20;

/// Why a recording cannot be loaded.
#[derive(Debug)]
pub struct RecordingError(String);

impl std::fmt::Display for RecordingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordingError {}

fn bad(message: impl Into<String>) -> RecordingError {
    RecordingError(message.into())
}

impl<R: Reconciler> Harness<R> {
    /// A harness holding what the recording in `json` holds — its clock,
    /// settings, children, trigger, the objects its reads returned and its
    /// HTTP answers, in order — and the recorded object, to pass to
    /// [`Harness::reconcile`] or [`Harness::finalize`].
    pub fn from_recording(json: &str) -> Result<(Self, R::Object), RecordingError> {
        if json.len() > MAX_RECORDING_BYTES {
            return Err(bad(format!(
                "the recording is {} bytes; a recording is at most {MAX_RECORDING_BYTES} bytes",
                json.len()
            )));
        }
        let recording: Value =
            serde_json::from_str(json).map_err(|e| bad(format!("not a bosun recording: {e}")))?;
        match recording.get("format").and_then(Value::as_str) {
            Some(FORMAT_V1) => {}
            Some(other) => {
                return Err(bad(format!(
                    "recording format {other:?} is not one this SDK reads (it reads {FORMAT_V1:?})"
                )));
            }
            None => return Err(bad("not a bosun recording: it has no \"format\"")),
        }
        let request = recording
            .get("request")
            .ok_or_else(|| bad("the recording has no request"))?;
        let text = |value: Option<&Value>, what: &str| {
            value
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("the recording's {what} is missing")))
        };
        let object: R::Object = serde_json::from_str(&text(request.get("object"), "object")?)
            .map_err(|e| {
                bad(format!(
                    "the recorded object is not a {}: {e}",
                    std::any::type_name::<R::Object>()
                ))
            })?;
        let mut harness = Harness::new();
        if let Some(now) = recording.get("now").and_then(Value::as_str) {
            harness.now = now
                .parse()
                .map_err(|e| bad(format!("the recording's now {now:?}: {e}")))?;
        }
        for child in request
            .get("children")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            harness.children.push(text(Some(child), "child")?);
        }
        harness.settings = request
            .get("settings")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let trigger = request
            .get("trigger")
            .and_then(Value::as_str)
            .unwrap_or("manual");
        harness.trigger = trigger_named(trigger)?;
        harness.attempt = request
            .get("attempt")
            .and_then(Value::as_u64)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1);
        for read in recording
            .get("reads")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for seen in read_objects(read) {
                let seen: Value = serde_json::from_str(seen)
                    .map_err(|e| bad(format!("a recorded read answer is not JSON: {e}")))?;
                if !harness.objects.contains(&seen) {
                    harness.objects.push(seen);
                }
            }
        }
        for exchange in recording
            .get("http")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            harness.stubs.push(stub(exchange)?);
        }
        Ok((harness, object))
    }

    /// [`Harness::from_recording`] of the file at `path`, read no further
    /// than [`MAX_RECORDING_BYTES`].
    pub fn from_recording_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<(Self, R::Object), RecordingError> {
        use std::io::Read as _;
        let path = path.as_ref();
        let cannot = |e: std::io::Error| bad(format!("cannot read {}: {e}", path.display()));
        let mut json = String::new();
        std::fs::File::open(path)
            .map_err(cannot)?
            .take(MAX_RECORDING_BYTES as u64 + 1)
            .read_to_string(&mut json)
            .map_err(cannot)?;
        if json.len() > MAX_RECORDING_BYTES {
            return Err(bad(format!(
                "the recording {} is larger than {MAX_RECORDING_BYTES} bytes, a recording's cap",
                path.display()
            )));
        }
        Self::from_recording(&json)
    }
}

fn trigger_named(name: &str) -> Result<Trigger, RecordingError> {
    Ok(match name {
        "object-changed" => Trigger::ObjectChanged,
        "child-changed" => Trigger::ChildChanged,
        "read-changed" => Trigger::ReadChanged,
        "requeue" => Trigger::Requeue,
        "retry" => Trigger::Retry,
        "resync" => Trigger::Resync,
        "module-changed" => Trigger::ModuleChanged,
        "manual" => Trigger::Manual,
        other => return Err(bad(format!("the recording's trigger {other:?} is unknown"))),
    })
}

/// The object texts a recorded read answered with.
fn read_objects(read: &Value) -> Vec<&str> {
    let answer = read.get("answer");
    let found = answer
        .and_then(|a| a.get("found"))
        .and_then(Value::as_str)
        .into_iter();
    let items = answer
        .and_then(|a| a.get("items"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    found.chain(items).collect()
}

/// A stub answering the recorded exchange once.
fn stub(exchange: &Value) -> Result<HttpStub, RecordingError> {
    let request = exchange
        .get("request")
        .ok_or_else(|| bad("a recorded HTTP exchange has no request"))?;
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET");
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        other => return Err(bad(format!("a recorded HTTP method {other:?} is unknown"))),
    };
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a recorded HTTP request has no url"))?;
    let stub = HttpStub::new(method, url).once();
    let Some(response) = exchange.get("response").filter(|r| !r.is_null()) else {
        let error = exchange.get("error").and_then(Value::as_str).unwrap_or("");
        return Ok(match error {
            "HttpRequestDenied" => stub.refused(),
            "DnsTimeout"
            | "ConnectionTimeout"
            | "ConnectionReadTimeout"
            | "HttpResponseTimeout" => stub.timeout(),
            e if e.starts_with("Connection") || e.starts_with("Tls") => {
                stub.fail(HttpErrorKind::Connection, e)
            }
            e => stub.fail(HttpErrorKind::Protocol, e),
        });
    };
    let status = response
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| bad("a recorded HTTP response has no status"))?;
    let mut stub = stub.status(status);
    for header in response
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(value)) = (
            header.get(0).and_then(Value::as_str),
            header.get(1).and_then(Value::as_str),
        ) {
            stub = stub.header(name, value);
        }
    }
    let body = response.get("body");
    let bytes = match (
        body.and_then(|b| b.get("text")).and_then(Value::as_str),
        body.and_then(|b| b.get("base64")).and_then(Value::as_str),
    ) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => base64(encoded)?,
        (None, None) => Vec::new(),
    };
    Ok(stub.body(bytes))
}

/// Standard base64 with padding, as the host writes it.
fn base64(text: &str) -> Result<Vec<u8>, RecordingError> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = value(c).ok_or_else(|| bad("a recorded body is not valid base64"))?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_decodes_as_written() {
        assert_eq!(base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64("AAEC").unwrap(), vec![0, 1, 2]);
        assert!(base64("a*b").is_err());
    }
}
