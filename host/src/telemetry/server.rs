//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.

use std::fmt::Write as _;
use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Health, Metrics, TelemetryError};

/// The `Content-Type` of [`Metrics::render`]'s output: the OpenMetrics text
/// format, which Prometheus scrapes natively.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

/// The telemetry routes, for callers that mount them in a server of their
/// own; [`serve`] serves exactly this.
///
/// - `GET /metrics`: 200, every metric in the OpenMetrics text format.
/// - `GET /healthz`: 200 `ok` while the process can answer (liveness).
/// - `GET /readyz`: 200 `ok` when every readiness check passes, else 503
///   listing the failing checks as `[-]name failed`; with `?verbose`, every
///   check is listed, passing ones as `[+]name ok`, as kube-apiserver does.
/// - anything else: 404.
pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .fallback(not_found)
        .with_state(AppState { metrics, health })
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops
/// accepting connections, lets requests in flight finish, and returns.
///
/// Taking a bound listener rather than an address lets the caller bind
/// port 0 and learn the port, and report a bind failure before starting.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TelemetryError> {
    match listener.local_addr() {
        Ok(address) => tracing::info!(%address, "serving /metrics, /healthz and /readyz"),
        Err(error) => tracing::warn!(%error, "serving telemetry on an unknown address"),
    }
    axum::serve(listener, router(metrics, health))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| TelemetryError::Serve { source })?;
    tracing::info!("telemetry server stopped");
    Ok(())
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz_handler() -> Response {
    ([(header::CONTENT_TYPE, TEXT_PLAIN)], "ok").into_response()
}

async fn readyz_handler(State(state): State<AppState>, uri: Uri) -> Response {
    let verbose = wants_verbose(&uri);
    let report = state.health.report();
    let ready = report.iter().all(|(_, passing)| *passing);

    if ready && !verbose {
        return ([(header::CONTENT_TYPE, TEXT_PLAIN)], "ok").into_response();
    }
    let mut body = String::new();
    for (name, passing) in &report {
        // Writing to a String cannot fail.
        let _ = if *passing {
            if !verbose {
                continue;
            }
            writeln!(body, "[+]{name} ok")
        } else {
            writeln!(body, "[-]{name} failed")
        };
    }
    let status = if ready {
        body.push_str("readyz check passed\n");
        StatusCode::OK
    } else {
        tracing::debug!(
            failing = ?report.iter().filter(|(_, p)| !p).map(|(n, _)| n).collect::<Vec<_>>(),
            "not ready"
        );
        body.push_str("readyz check failed\n");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, TEXT_PLAIN)], body).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, TEXT_PLAIN)],
        "404 page not found\n",
    )
        .into_response()
}

/// Whether the query has a `verbose` parameter (`?verbose`, `?verbose=1`),
/// parsed by hand since axum's `Query` needs a feature bosun does not enable.
fn wants_verbose(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("verbose"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_is_found_among_query_parameters() {
        let verbose = |s: &str| wants_verbose(&s.parse::<Uri>().expect("a valid URI"));
        assert!(verbose("/readyz?verbose"));
        assert!(verbose("/readyz?verbose=1"));
        assert!(verbose("/readyz?exclude=x&verbose"));
        assert!(!verbose("/readyz"));
        assert!(!verbose("/readyz?verbosely"));
    }
}
