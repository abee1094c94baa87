//! `bosun record get MODULE NS/NAME`: the newest recording the host kept of
//! a module's call about an object, fetched through the API server with
//! the user's own kubeconfig (the host keeps them as ConfigMaps in its
//! namespace, see `recorder::store`), ready for `bosun reconcile --replay`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::EXIT_BAD_INPUT;
use super::output::fail;
use crate::recorder::Recording;
use crate::recorder::store;

/// Arguments of `bosun record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RecordCommand,
}

/// The `bosun record` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RecordCommand {
    /// Fetch the newest recording of MODULE's calls about OBJECT
    /// (`namespace/name`, or `name` for a cluster-scoped kind).
    ///
    /// Exit status: 0 when found, 2 when there is none.
    Get(GetArgs),
}

/// Arguments of `bosun record get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The module's name (as `bosun inspect` prints it).
    pub module: String,
    /// The object: `namespace/name`, or `name` for a cluster-scoped kind.
    pub object: String,
    /// The host's namespace, where it keeps recordings.
    #[arg(
        long,
        short = 'n',
        value_name = "NAMESPACE",
        default_value = "bosun-system"
    )]
    pub namespace: String,
    /// Write the recording to FILE instead of standard output.
    #[arg(long = "output-file", short = 'f', value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

pub(super) fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        RecordCommand::Get(get) => run_get(get),
    }
}

fn run_get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let found = runtime.block_on(async {
        let config = kube::Config::infer()
            .await
            .context("reading the kubeconfig (set KUBECONFIG)")?;
        let client = kube::Client::try_from(config).context("connecting to the cluster")?;
        store::newest(&client, &args.namespace, &args.module, &args.object)
            .await
            .with_context(|| {
                format!(
                    "listing recordings in namespace {} (ConfigMaps labelled {}={})",
                    args.namespace,
                    store::MODULE_LABEL,
                    store::module_label(&args.module)
                )
            })
    })?;
    let Some((at, json)) = found else {
        let message = format!(
            "no recording of module {}'s calls about {} in namespace {}: the host keeps failed calls and a sample of successful ones",
            args.module, args.object, args.namespace
        );
        return Ok(fail(EXIT_BAD_INPUT, &message));
    };
    // What the ConfigMap holds is checked as `--replay` would check it.
    if let Err(error) = Recording::parse(json.as_bytes()) {
        let message = format!("the recording kept at {at} cannot be used: {error}");
        return Ok(fail(EXIT_BAD_INPUT, &message));
    }
    match &args.output_file {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("recorded at {at}; written to {}", path.display());
        }
        None => println!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}
