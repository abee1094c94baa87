//! A span per write to the API server, carrying its result: what a trace
//! shows between the guest's answer and the next reconcile (see
//! `telemetry::trace`). Below the log level unless traces are on.

use std::future::Future;

use tracing::Instrument as _;

/// Runs `write` (a `verb` of `object`) in a span of its own, recording
/// `ok` or the API server's status code, or `error` when it never answered.
pub(super) async fn traced<T>(
    verb: &'static str,
    object: &str,
    write: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    let span =
        tracing::debug_span!("write", verb, object = %object, result = tracing::field::Empty);
    let result = write.instrument(span.clone()).await;
    match &result {
        Ok(_) => span.record("result", "ok"),
        Err(kube::Error::Api(status)) => span.record("result", status.code),
        Err(_) => span.record("result", "error"),
    };
    result
}
