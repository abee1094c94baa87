//! `bosun reconcile MODULE --replay RECORDING`: a recorded call repeated
//! exactly — its request, clock, random bytes, read answers and HTTP
//! responses handed out again in order — and printed as `bosun reconcile`
//! prints a call. With another version of the module than the recorded
//! one, what it does on the same inputs is printed and compared with the
//! recorded outcome.
//!
//! The recording is a file the user was handed: read within a size cap,
//! its format version checked first, every object in it parsed before
//! anything runs.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::output::fail;
use super::reconcile::{Inputs, finalize, header, object_label, reconcile};
use super::{EXIT_BAD_INPUT, OutputFormat};
use crate::engine::{CallContext, Limits, Module, recording};
use crate::objects::StaticObjects;
use crate::recorder::format::{CallKind, MAX_RECORDING_FILE_BYTES, RecordedOutcome};
use crate::recorder::{Recording, Replayer, Tap};

/// Exit status when the module asked for something the recording does not
/// hold: what was printed is not a faithful replay.
pub const EXIT_REPLAY_DIVERGED: u8 = 6;

/// The longest a replayed call may be given, whatever the recording says.
const MAX_REPLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// The most differing fields printed.
const MAX_DIFF_LINES: usize = 200;

pub(super) fn run(module: &Module, path: &Path, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let recorded = match read(path) {
        Ok(recorded) => recorded,
        Err(message) => return Ok(fail(EXIT_BAD_INPUT, &message)),
    };
    let request = match recording::request_from(&recorded.request) {
        Ok(request) => request,
        Err(message) => return Ok(fail(EXIT_BAD_INPUT, &in_file(path, &message))),
    };
    let inputs = match inputs(&recorded) {
        Ok(inputs) => inputs,
        Err(message) => return Ok(fail(EXIT_BAD_INPUT, &in_file(path, &message))),
    };
    let meta = module.meta();
    let same_module = module.digest() == recorded.module.sha256;
    if !same_module {
        eprintln!(
            "replaying a call recorded with {} {} (sha256 {}) on {} {} (sha256 {})",
            recorded.module.name,
            recorded.module.version,
            short(&recorded.module.sha256),
            meta.name,
            meta.version,
            short(module.digest()),
        );
    }
    if recorded.truncated {
        eprintln!(
            "warning: the recording was truncated at its cap; the replay may diverge where it ends"
        );
    }
    let replayer = Replayer::new(&recorded);
    let ctx = CallContext {
        // Reads are answered from the recording; nothing else is readable.
        objects: Arc::new(StaticObjects::default()),
        clock: Some(recorded.now),
        limits: Limits {
            timeout: Duration::from_millis(recorded.limits.timeout_ms).min(MAX_REPLAY_TIMEOUT),
            memory_bytes: usize::try_from(recorded.limits.memory_bytes).unwrap_or(usize::MAX),
            ..Limits::default()
        },
        http: None,
        read_log: None,
    };
    let head = header(meta, &object_label(&inputs.object));
    let tap = Tap::Replay(replayer.clone());
    let (outcome, code) = match recorded.call {
        CallKind::Reconcile => {
            let result = module.reconcile_tapped(&request, &ctx, tap);
            let outcome = recording::reconcile_outcome(&result);
            let code = reconcile(module, result, &inputs, head, recorded.now, format)?;
            (outcome, code)
        }
        CallKind::Finalize => {
            let result = module.finalize_tapped(&request, &ctx, tap);
            let outcome = recording::finalize_outcome(&result);
            (outcome, finalize(module, result, head, format)?)
        }
    };
    let divergences = replayer.divergences();
    for divergence in &divergences {
        eprintln!("replay diverged: {divergence}");
    }
    let differences = diff_outcomes(&recorded.outcome, &outcome);
    if !differences.is_empty() {
        if same_module {
            eprintln!("the replay's outcome differs from the recorded one:");
        } else {
            eprintln!("differences from the recorded outcome (recorded → this version):");
        }
        for line in &differences {
            eprintln!("  {line}");
        }
    } else if !same_module {
        eprintln!("this version's outcome is the recorded one");
    }
    if !divergences.is_empty() {
        return Ok(ExitCode::from(EXIT_REPLAY_DIVERGED));
    }
    Ok(code)
}

/// The recording at `path`, read no further than the cap.
fn read(path: &Path) -> Result<Recording, String> {
    let file = std::fs::File::open(path)
        .map_err(|error| format!("cannot read the recording {}: {error}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_RECORDING_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read the recording {}: {error}", path.display()))?;
    if bytes.len() > MAX_RECORDING_FILE_BYTES {
        return Err(format!(
            "the recording {} is larger than {MAX_RECORDING_FILE_BYTES} bytes, more than any bosun writes",
            path.display()
        ));
    }
    Recording::parse(&bytes).map_err(|error| in_file(path, &error.to_string()))
}

fn in_file(path: &Path, message: &str) -> String {
    format!("{}: {message}", path.display())
}

/// The objects the recorded request holds, parsed as planning needs them.
fn inputs(recorded: &Recording) -> Result<Inputs, String> {
    let parse = |what: &str, text: &str| {
        serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| format!("the recorded {what} is not a JSON object"))
    };
    let object = parse("object", &recorded.request.object)?;
    let children = recorded
        .request
        .children
        .iter()
        .map(|child| parse("child", child))
        .collect::<Result<_, _>>()?;
    Ok(Inputs {
        object,
        children,
        objects: Vec::new(),
        settings: recorded.request.settings.clone(),
    })
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// The fields in which two outcomes differ, one line each, at most
/// [`MAX_DIFF_LINES`].
pub(super) fn diff_outcomes(recorded: &RecordedOutcome, now: &RecordedOutcome) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(recorded), serde_json::to_value(now)) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    diff("", &a, &b, &mut lines);
    if lines.len() > MAX_DIFF_LINES {
        let more = lines.len() - MAX_DIFF_LINES;
        lines.truncate(MAX_DIFF_LINES);
        lines.push(format!("… and {more} more"));
    }
    lines
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if out.len() > MAX_DIFF_LINES {
        return;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let at = format!("{path}/{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(&at, x, y, out),
                    (Some(x), None) => out.push(format!("{at}: {x} → (absent)")),
                    (None, Some(y)) => out.push(format!("{at}: (absent) → {y}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let at = format!("{path}/{i}");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => diff(&at, x, y, out),
                    (Some(x), None) => out.push(format!("{at}: {x} → (absent)")),
                    (None, Some(y)) => out.push(format!("{at}: (absent) → {y}")),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!(
            "{}: {a} → {b}",
            if path.is_empty() { "/" } else { path }
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_differ_by_field_path() {
        let a = RecordedOutcome::Response(json!({"status": {"phase": "Running"}, "children": []}));
        let b = RecordedOutcome::Response(json!({"status": {"phase": "Done"}, "children": []}));
        assert_eq!(
            diff_outcomes(&a, &b),
            vec![r#"/response/status/phase: "Running" → "Done""#]
        );
        assert!(diff_outcomes(&a, &a).is_empty());
    }
}
