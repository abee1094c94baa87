//! `native-controller`: the benchmark's native baseline. One example
//! reconciler (cnat or webapp) run as a team would run it without bosun: a
//! kube-runtime `Controller` in its own process, with its own watches and
//! caches, writing by server-side apply under its own field manager.
//!
//! The reconcile logic is the example crate's, linked natively and called
//! through the SDK's native entry point (the path `bosun_sdk::testing::Harness`
//! takes), so both sides of the benchmark run literally the same code; only
//! what surrounds it differs. See `controller.rs` for what this process does
//! per object and `writes.rs` for the writes.

mod controller;
mod mapper;
mod metrics;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// Runs one example reconciler natively against the cluster of `KUBECONFIG`.
#[derive(Debug, Parser)]
#[command(name = "native-controller")]
struct Args {
    /// The example to run: `cnat`, `webapp` or `mirror` (with the mapper
    /// of `mapper.rs` for the ConfigMaps and Secrets it reads).
    #[arg(long)]
    module: String,
    /// Reconciles in flight at once: the host's default. 0 is
    /// kube-runtime's own default (`Config::default()`, no limit).
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Watch this namespace only (`Api::namespaced`), as a controller
    /// confined to one namespace is written; every namespace by default.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Serve the reconcile count on this address
    /// (`controller_runtime_reconcile_total`, as the host names it).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// The field manager; default `native/<module>`.
    #[arg(long)]
    field_manager: Option<String>,
    /// Runs cnat's logic for `fleet.bench.bosun.dev/v1alpha1` KIND (plural:
    /// KIND in lower case plus `s`) instead of `At`, as the benchmark's
    /// `cnat-fleet` guest does: one of the M controllers of the
    /// many-modules scenario.
    #[arg(long, value_name = "KIND")]
    fleet_kind: Option<String>,
}

/// A kind of the many-modules scenario, as `tests/guests/cnat-fleet` declares it.
fn fleet_kind(kind: &str) -> controller::Primary {
    controller::Primary {
        resource: kube::api::ApiResource {
            group: "fleet.bench.bosun.dev".into(),
            version: "v1alpha1".into(),
            api_version: "fleet.bench.bosun.dev/v1alpha1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        },
        name: format!("cnat-{}", kind.to_lowercase()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG)")?;
    let reconciles = Arc::new(metrics::Reconciles::default());
    if let Some(addr) = args.metrics_addr {
        metrics::serve(addr, args.module.clone(), reconciles.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    let options = controller::Options {
        concurrency: args.concurrency,
        field_manager: args.field_manager,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_secs(1000),
        primary: args.fleet_kind.as_deref().map(fleet_kind),
        namespace: args.namespace,
        reconciles,
    };
    match args.module.as_str() {
        "cnat" => controller::run::<cnat::Cnat>(client, options, None).await,
        "webapp" => controller::run::<webapp::WebApps>(client, options, None).await,
        "mirror" => {
            controller::run::<::mirror::Mirrors>(client, options, Some(mapper::mirror_readers))
                .await
        }
        other => anyhow::bail!("unknown module {other:?}: cnat, webapp or mirror"),
    }
}
