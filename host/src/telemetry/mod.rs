//! Telemetry: Prometheus metrics and the `/metrics`, `/healthz` and `/readyz`
//! endpoints.
//!
//! The metric names follow controller-runtime's (`controller_runtime_*`,
//! `workqueue_*`), so the dashboards and alerts written for Go operators work
//! on bosun unchanged; bosun's own measurements of its guests are under
//! `bosun_*`. Every series is labelled by module name: `controller` on the
//! controller metrics and `name` on the work-queue ones, as controller-runtime
//! labels them.
//!
//! [`Metrics`] is the one place measurements are recorded and rendered;
//! [`Health`] collects named readiness checks; [`serve`] exposes both over
//! HTTP until told to stop.
//!
//! ```no_run
//! # async fn run() -> Result<(), bosun::telemetry::TelemetryError> {
//! use bosun::telemetry::{Health, Metrics, serve};
//!
//! let metrics = Metrics::new();
//! let health = Health::new();
//! let synced = health.check("caches-synced");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(
//!     |source| bosun::telemetry::TelemetryError::Bind { source },
//! )?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(serve(listener, metrics.clone(), health.clone(), async {
//!     let _ = stopped.await;
//! }));
//! synced.set(true); // `/readyz` now answers 200
//! let _ = stop.send(());
//! # let _ = server.await;
//! # Ok(())
//! # }
//! ```

mod health;
mod metrics;
mod reads;
mod server;
pub mod trace;

pub use health::{Check, Health};
pub use metrics::{GuestCall, Metrics, ReconcileResult};
pub use server::{OPENMETRICS_CONTENT_TYPE, router, serve};

/// Why the telemetry server could not run.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The listening address could not be bound. [`serve`] takes a bound
    /// listener and never returns this; it is here for callers that bind
    /// one themselves and want a single error type.
    #[error("could not bind the telemetry listener: {source}; is the address in use?")]
    Bind {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the telemetry server failed: {source}")]
    Serve {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
