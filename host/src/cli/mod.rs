//! The `bosun` command line: argument parsing and the subcommands.
//!
//! Each subcommand lives in a module of its own and returns an
//! [`ExitCode`]; `main` only sets up logging and reports errors.

mod build;
mod diff;
mod inspect;
mod new;
mod output;
mod push;
mod rbac;
mod reconcile;
mod record;
mod replay;
mod rollout;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{CompileLimits, Compiler, Engine, EngineConfig, THIS_EXECUTABLE};

pub use build::BuildArgs;
pub use diff::DiffArgs;
pub use inspect::InspectArgs;
pub use new::NewArgs;
pub use push::{EXIT_NOT_LOADED, PushArgs};
pub use rbac::RbacArgs;
pub use reconcile::ReconcileArgs;
pub use record::RecordArgs;
pub use rollout::{RolloutAction, RolloutArgs};
pub use run::RunArgs;

/// Exit status when a module could not be loaded.
pub const EXIT_LOAD_FAILED: u8 = 3;
/// Exit status when the guest trapped, timed out, ran out of memory or
/// returned output that failed validation.
pub const EXIT_CALL_FAILED: u8 = 4;
/// Exit status when the reconciler returned an error of its own.
pub const EXIT_RECONCILE_ERROR: u8 = 1;
/// Exit status for unreadable or invalid input files (clap also uses 2 for usage errors).
pub const EXIT_BAD_INPUT: u8 = 2;

/// `bosun --version`: the host's version and every version of the WIT
/// package its modules may target, newest first: the things to compare when
/// a module does not load.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (serves {})",
        env!("CARGO_PKG_VERSION"),
        crate::engine::Contract::served()
    )
});

/// bosun: run Kubernetes reconcilers as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "bosun", version = VERSION.as_str(), about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "BOSUN_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Where compiled modules are cached (default: ~/.cache/bosun/modules).
    #[arg(long, global = true, env = "BOSUN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every module afresh instead of using the on-disk cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// CPU time a module's compile may use (e.g. `60s`, whole seconds);
    /// past it the module fails to load with reason `CompileLimit`.
    #[arg(long, global = true, value_name = "DURATION", value_parser = run::parse_duration, default_value = "60s", env = "BOSUN_COMPILE_CPU_LIMIT")]
    pub compile_cpu_limit: std::time::Duration,
    /// Memory a module's compile may use, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = CompileLimits::default().memory_bytes >> 20, env = "BOSUN_COMPILE_MEMORY_LIMIT_MIB")]
    pub compile_memory_limit_mib: u64,
    /// The largest component compiled, in MiB; checked before anything
    /// parses it.
    #[arg(long, global = true, value_name = "MIB", default_value_t = CompileLimits::default().max_bytes >> 20, env = "BOSUN_COMPILE_MAX_SIZE_MIB")]
    pub compile_max_size_mib: usize,
    /// How many modules may compile at once, each on one core (default:
    /// half the cores, at least one).
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "BOSUN_COMPILE_CONCURRENCY"
    )]
    pub compile_concurrency: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one reconcile (or finalize) of an object through a module, offline,
    /// and print what the host would write.
    ///
    /// Exit status: 0 on success, 1 when the reconciler returned an error,
    /// 2 for bad input files, 3 when the module does not load, 4 when the
    /// call trapped or returned output that failed validation, 6 when a
    /// replayed call asked for something the recording does not hold.
    Reconcile(ReconcileArgs),
    /// Compare what two versions of a module would write, object by
    /// object, without writing anything: against the cluster's objects of
    /// the module's kind (lists only) or against --object files.
    ///
    /// Exit status: 0 when no object differs, 1 when some object differs
    /// or fails only with the new version, 2 when they could not be
    /// compared.
    Diff(DiffArgs),
    /// Fetch what the host's flight recorder kept of a module's calls
    /// (through the API server, with this kubeconfig), for
    /// `bosun reconcile --replay`.
    Record(RecordArgs),
    /// Print a module's metadata (name, version, kinds, finalizer) and the
    /// permissions it needs granted.
    Inspect(InspectArgs),
    /// Run the operator: watch the cluster and reconcile through the given
    /// modules until SIGTERM or Ctrl-C.
    Run(RunArgs),
    /// Create a reconciler crate: a custom resource, a reconciler for the
    /// kinds it owns, native tests, a sample and its CRD.
    New(NewArgs),
    /// Build a reconciler crate as a Wasm component, check it against the
    /// host's world, and print where it is, its size, digest, metadata and
    /// the permissions it needs.
    Build(BuildArgs),
    /// Publish a component (to a ConfigMap or an OCI registry), create or
    /// update its ReconcilerModule with the digest pinned, and wait for the
    /// host to load it.
    ///
    /// Exit status: 0 when it runs (or with --no-wait, once published), 2
    /// for bad input (a component too large for a ConfigMap), 3 when the
    /// module does not load here, 5 when the host did not load it.
    Push(PushArgs),
    /// A ReconcilerModule's staged candidate (`bosun push --shadow` or
    /// `--canary`): how its shadow run compares with the running version
    /// or where its canary stands, stepping a canary up, and promoting or
    /// dropping it.
    ///
    /// Exit status: 0 on success, 1 when no candidate is staged.
    Rollout(RolloutArgs),
    /// Print the ClusterRole the host needs to run the given modules (and,
    /// with --with-host, itself).
    Rbac(RbacArgs),
    /// Compile one component from standard input to an artifact on
    /// standard output, under the limits the host set: the host's compile
    /// worker, not for use by hand.
    #[command(name = crate::engine::WORKER_SUBCOMMAND, hide = true)]
    CompileWorker,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The format of a command's result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// YAML, like `kubectl get -o yaml`.
    Yaml,
    /// JSON.
    Json,
}

impl Cli {
    /// How the chosen subcommand exports traces: only `bosun run` does.
    pub fn trace_config(&self) -> Option<crate::telemetry::trace::TraceConfig> {
        match &self.command {
            Command::Run(args) => Some(crate::telemetry::trace::TraceConfig {
                endpoint: args.otlp_endpoint.clone(),
                sample_ratio: args.trace_sample_ratio,
            }),
            _ => None,
        }
    }

    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let engine_unloading =
            |unload_idle_after: Option<std::time::Duration>| -> anyhow::Result<Engine> {
                let cache_dir = match (self.no_cache, &self.cache_dir) {
                    (true, _) => None,
                    (false, Some(dir)) => Some(dir.clone()),
                    (false, None) => EngineConfig::default_cache_dir(),
                };
                Engine::new(EngineConfig {
                    cache_dir,
                    unload_idle_after,
                    compiler: self.compiler(),
                    ..EngineConfig::default()
                })
            };
        let engine = || engine_unloading(None);
        match &self.command {
            Command::Reconcile(args) => reconcile::run(args, &engine()?),
            Command::Inspect(args) => inspect::run(args, &engine()?),
            Command::Diff(args) => diff::run(args, &engine()?),
            Command::Record(args) => record::run(args),
            Command::Run(args) => run::run(
                args,
                engine_unloading(Some(args.unload_idle_after).filter(|idle| !idle.is_zero()))?,
            ),
            Command::Rbac(args) => rbac::run(args, &engine()?),
            Command::New(args) => new::run(args),
            Command::Build(args) => build::run(args, &engine()?),
            Command::Push(args) => push::run(args, &engine()?),
            Command::Rollout(args) => rollout::run(args),
            Command::CompileWorker => Ok(crate::engine::serve_compile_worker()),
        }
    }

    /// Every subcommand compiles in the cage, re-executing this very binary
    /// as its worker, under the `--compile-*` limits.
    fn compiler(&self) -> Compiler {
        Compiler::Caged {
            program: THIS_EXECUTABLE.into(),
            limits: CompileLimits {
                max_bytes: self.compile_max_size_mib << 20,
                cpu_time: self.compile_cpu_limit,
                memory_bytes: self.compile_memory_limit_mib << 20,
            },
            concurrency: self
                .compile_concurrency
                .unwrap_or_else(Compiler::default_concurrency),
        }
    }
}
