use std::time::Duration;

/// Why a module could not be loaded. Nothing of it runs; whatever ran before keeps running.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component.
    #[error(
        "{source_name} is not a WebAssembly component: {reason}; build the reconciler with `cargo build --target wasm32-wasip2` (a core module from wasm32-unknown-unknown or wasm32-wasip1 will not do)"
    )]
    NotAComponent {
        /// Where the bytes came from.
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The component did not compile.
    #[error("{source_name} failed to compile: {reason:#}")]
    Compile {
        /// Where the bytes came from.
        source_name: String,
        /// The compiler's complaint.
        reason: wasmtime::Error,
    },
    /// The component does not implement the `bosun:reconciler/reconciler` world.
    #[error(
        "{source_name} does not implement the bosun:reconciler/reconciler world: {reason:#}; build it with the bosun-sdk crate and `bosun_sdk::export!`"
    )]
    WrongWorld {
        /// Where the bytes came from.
        source_name: String,
        /// Which import is unknown or which export is missing or mistyped.
        reason: wasmtime::Error,
    },
    /// Calling `metadata` failed.
    #[error("{source_name}: calling `metadata` failed: {source}")]
    Metadata {
        /// Where the bytes came from.
        source_name: String,
        /// How the call failed.
        #[source]
        source: Box<CallError>,
    },
    /// The metadata the module exports breaks a rule.
    #[error("{source_name} declares invalid metadata: {reason}")]
    InvalidMetadata {
        /// Where the bytes came from.
        source_name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The module file could not be read.
    #[error("cannot read module {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Why one call into a guest failed. The call's output is discarded and
/// nothing is written; the module keeps serving further calls.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest ran past its deadline (epoch interruption).
    #[error(
        "module {module} ran past its {limit:?} deadline and was stopped; it may loop forever — if it needs longer, raise the module's timeout"
    )]
    Timeout {
        /// The module's name.
        module: String,
        /// The deadline it had.
        limit: Duration,
    },
    /// The guest tried to grow its memory past its cap.
    #[error(
        "module {module} tried to use more than its {limit_mib} MiB memory cap and was stopped; if it needs more, raise the module's memory limit"
    )]
    MemoryLimit {
        /// The module's name.
        module: String,
        /// The cap, in MiB.
        limit_mib: usize,
    },
    /// The guest panicked.
    #[error("module {module} panicked: {message}")]
    Panic {
        /// The module's name.
        module: String,
        /// The panic message the guest printed.
        message: String,
    },
    /// The guest trapped for another reason.
    #[error("module {module} trapped: {reason:#}")]
    Trap {
        /// The module's name.
        module: String,
        /// The trap, with the guest's backtrace when available.
        reason: wasmtime::Error,
    },
    /// The guest returned more bytes than allowed.
    #[error(
        "module {module} returned {size} bytes, more than the {limit} byte limit; return fewer or smaller objects"
    )]
    OutputTooLarge {
        /// The module's name.
        module: String,
        /// How much it returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A fresh instance could not be created.
    #[error("module {module} could not be instantiated: {reason:#}")]
    Instantiate {
        /// The module's name.
        module: String,
        /// Why: usually the instance pool is exhausted.
        reason: wasmtime::Error,
    },
}

impl CallError {
    /// A short CamelCase name for the kind of failure, used as a metric label
    /// and an event reason.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } => "Timeout",
            CallError::MemoryLimit { .. } => "MemoryLimit",
            CallError::Panic { .. } => "Panic",
            CallError::Trap { .. } => "Trap",
            CallError::OutputTooLarge { .. } => "OutputTooLarge",
            CallError::Instantiate { .. } => "Instantiate",
        }
    }
}
