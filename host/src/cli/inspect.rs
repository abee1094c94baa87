//! `bosun inspect`: what a module declares, as the host reads it at load time.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::output::{fail, print};
use super::{EXIT_LOAD_FAILED, OutputFormat};
use crate::engine::{CompileSource, Engine};

/// Arguments of `bosun inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The reconciler component (`.wasm`).
    pub module: PathBuf,
    /// Print only the grant the module needs, as a grant file for
    /// `bosun run --grant` (its `permissions` block is what a
    /// ReconcilerModule's `spec.permissions` takes).
    #[arg(long)]
    pub grant: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

pub(super) fn run(args: &InspectArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    let module = match engine.load_file(&args.module) {
        Ok(module) => module,
        Err(error) => return Ok(fail(EXIT_LOAD_FAILED, &error)),
    };
    let permissions = crate::grants::requested(module.meta());
    if args.grant {
        let grant = crate::grants::GrantFile {
            module: module.meta().name.clone(),
            permissions,
        };
        print(args.output, &grant)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = json!({
        "module": module.meta(),
        "permissions": permissions,
        "fieldManager": module.meta().field_manager(),
        "sha256": module.digest(),
        "contract": module.contract().package(),
        "loadedFrom": match module.compile_source() {
            CompileSource::Compiled => "compiled",
            CompileSource::Cache => "cache",
        },
        "loadTimeMs": module.load_time().as_secs_f64() * 1000.0,
    });
    print(args.output, &report)?;
    Ok(ExitCode::SUCCESS)
}
