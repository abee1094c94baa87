//! `cargo xtask go-component CORE -o OUT`: makes the core module mainline
//! Go builds for a reconciler (`GOOS=wasip1 GOARCH=wasm go build
//! -buildmode=c-shared`) a component, with the Go SDK's WIT and the WASI
//! preview1 reactor adapter (`bosun_testenv::go_component`, what the tests'
//! builder uses), so a clone of this repository needs no wasm-tools.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The core module `go build -buildmode=c-shared` wrote.
    core: PathBuf,
    /// Where to write the component.
    #[arg(short, long)]
    output: PathBuf,
    /// The WIT package to embed (default: the Go SDK's, sdks/go/wit, the
    /// published reconciler-http world: a module imports only the wasi:http
    /// it calls).
    #[arg(long)]
    wit: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let wit = args.wit.unwrap_or_else(|| {
        bosun_testenv::guests::workspace_root()
            .join("sdks")
            .join("go")
            .join("wit")
    });
    let core =
        std::fs::read(&args.core).with_context(|| format!("reading {}", args.core.display()))?;
    let component = bosun_testenv::go_component::componentize(&core, &wit)?;
    std::fs::write(&args.output, &component)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "go-component: {} ({} bytes) from {} with the preview1 reactor adapter",
        args.output.display(),
        component.len(),
        args.core.display()
    );
    Ok(())
}
