//! The compile worker's side of the cage: what `bosun compile-worker`
//! runs, inside the limits [`super::cage`] set before it started.
//!
//! It reads one component from standard input, compiles it with the
//! host's compile settings ([`super::compile_config`], so the artifact
//! matches the host's engine) on this one thread, and writes the
//! serialized artifact to standard output. It opens nothing else and
//! keeps nothing. Its exit status says how it went (the `EXIT_*`
//! constants of the cage); any message goes to standard error.

use std::io::{Read, Write};
use std::process::ExitCode;

use super::cage::{EXIT_INVALID, EXIT_OUT_OF_MEMORY, EXIT_WORKER_FAILED};

/// Compiles the component on standard input to an artifact on standard
/// output. Meant to run only as the host's worker, under its limits.
pub fn serve() -> ExitCode {
    let fail = |code: i32, message: &dyn std::fmt::Display| {
        eprintln!("{message}");
        ExitCode::from(code as u8)
    };
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut bytes) {
        return fail(
            EXIT_WORKER_FAILED,
            &format!("cannot read the component: {error}"),
        );
    }
    let mut config = super::compile_config();
    // One thread: the host bounds how many compiles run at once, and
    // RLIMIT_CPU counts every thread's time anyway.
    config.parallel_compilation(false);
    let engine = match wasmtime::Engine::new(&config) {
        Ok(engine) => engine,
        Err(error) => {
            return fail(
                EXIT_WORKER_FAILED,
                &format!("cannot make the engine: {error:#}"),
            );
        }
    };
    let artifact = match engine.precompile_component(&bytes) {
        Ok(artifact) => artifact,
        Err(error) => {
            let message = format!("{error:#}");
            let code = if out_of_memory(&error) {
                EXIT_OUT_OF_MEMORY
            } else {
                EXIT_INVALID
            };
            return fail(code, &message);
        }
    };
    drop(bytes);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&artifact).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(
            EXIT_WORKER_FAILED,
            &format!("cannot write the artifact: {error}"),
        ),
    }
}

/// Whether a compile failed for want of memory (an mmap refused under
/// `RLIMIT_DATA`) rather than for what the component is.
fn out_of_memory(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOMEM))
            || cause.to_string().contains("Cannot allocate memory")
    })
}
