//! The `bosun` binary: parses the command line, sets up logging, and runs the
//! chosen subcommand from the library's [`bosun::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use bosun::cli::{Cli, LogFormat};
use bosun::telemetry::trace::{TraceConfig, TraceError, Tracing};

fn main() -> ExitCode {
    bound_retained_heap();
    let cli = Cli::parse();
    let tracing = match init_logging(cli.log_format, cli.trace_config()) {
        Ok(tracing) => tracing,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    // The last batch of spans leaves before the process does.
    drop(tracing);
    code
}

/// Logs go to stderr, so stdout carries only the command's result. By default
/// the host is quiet but guests' own log lines show; `RUST_LOG` overrides.
/// With traces configured, the host's spans also go to the OTLP endpoint,
/// filtered apart from the log (see `bosun::telemetry::trace`).
fn init_logging(
    format: LogFormat,
    traces: Option<TraceConfig>,
) -> Result<Option<Tracing>, TraceError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,bosun::guest=info"));
    // Colours only for a person at a terminal, never into files or pipes.
    let log = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Text => log.with_filter(filter).boxed(),
        LogFormat::Json => log.json().with_filter(filter).boxed(),
    };
    let traces = match traces {
        Some(config) => bosun::telemetry::trace::layer(&config)?,
        None => None,
    };
    let (traces, tracing) = traces.unzip();
    tracing_subscriber::registry().with(log).with(traces).init();
    Ok(tracing)
}

/// Keeps glibc's malloc from holding on to what the host frees. By default
/// it raises its mmap threshold to the largest block freed so far (up to
/// 32 MiB) and its trim threshold to twice that, in each of up to eight
/// arenas per core: after a guest's 32 MiB status or 64 MiB of random bytes
/// had passed through, every arena kept up to 64 MiB it would never give
/// back, and the soak's long-running host grew for as long as it ran.
/// A fixed threshold puts large blocks in their own mappings, returned on
/// free, and two arenas bound what the rest can strand. (Both as the
/// `MALLOC_MMAP_THRESHOLD_` and `MALLOC_ARENA_MAX` variables would set
/// them; this way the shipped host has them without its environment.)
fn bound_retained_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's own tunables, before any thread
    // starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
