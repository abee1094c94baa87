//! Concurrency: the native baseline runs at the host's limit (4) in the
//! other scenarios; a kube-rs user who never sets one runs kube-runtime's
//! default, `Config::default()`, which has none. This scenario sets that
//! default beside the host at each `--concurrency` given (default 4, the
//! host's own, and 16).
//!
//! N due cnat `At`s are created by 8 clients of their own in parallel,
//! each creating its share one after another (as 8 `kubectl create`s
//! would), with the controller already running; the figure is the time
//! from the last create's answer to every `At` seen converged on a watch,
//! with the CPU seconds spent from the first create to the last object
//! converged, and the resident memory then.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};

use super::controllers::{Binaries, Controller};
use super::mib;
use super::mirrors::{self, Marks};
use super::report::Row;
use super::scenario::{self, NAMESPACE};

/// Parallel clients creating the objects.
pub(super) const CLIENTS: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(900);

/// Which controller, at which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `native-controller --module cnat --concurrency 0`: kube-runtime's default.
    NativeUnbounded,
    /// The host at `--concurrency N`.
    Host(usize),
}

impl Setup {
    fn name(self) -> String {
        match self {
            Setup::NativeUnbounded => "native, unbounded".into(),
            Setup::Host(n) => format!("bosun --concurrency {n}"),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct ConcurrencyRun {
    /// From the last create's answer to every object converged.
    pub tail: Duration,
    /// From the first create to every object converged.
    pub total: Duration,
    /// CPU seconds over the run.
    pub cpu: f64,
    /// Resident memory once converged, and its peak, in bytes.
    pub rss: u64,
    pub rss_peak: u64,
}

fn marks(object: &DynamicObject) -> Vec<String> {
    if scenario::is_converged(object) {
        vec!["converged".into()]
    } else {
        Vec::new()
    }
}

/// Runs `setup` once on a control plane of its own.
pub async fn run(
    setup: Setup,
    binaries: &Binaries,
    objects: usize,
    out: &Path,
) -> Result<ConcurrencyRun> {
    burst_from_clients(objects, |kubeconfig| match setup {
        Setup::NativeUnbounded => Controller::native(
            binaries,
            &["--module", "cnat", "--concurrency", "0"],
            kubeconfig,
            &out.join("native-unbounded-concurrency.log"),
        ),
        Setup::Host(n) => Controller::host(
            binaries,
            std::slice::from_ref(&binaries.cnat),
            kubeconfig,
            &out.join(format!("bosun-concurrency-{n}.log")),
            &["--concurrency", &n.to_string()],
        ),
    })
    .await
}

/// On a control plane of its own, starts the controller `start` makes
/// (given the kubeconfig), converges a warmup `At`, then times `objects`
/// `At`s created by [`CLIENTS`] parallel clients.
pub(super) async fn burst_from_clients(
    objects: usize,
    start: impl FnOnce(&Path) -> Result<Controller>,
) -> Result<ConcurrencyRun> {
    let (env, client) = scenario::control_plane().await?;
    let kubeconfig = env
        .kubeconfig_path()
        .context("the control plane has no kubeconfig")?;
    let watch = Marks::start(&client, &scenario::at_resource(), NAMESPACE, marks).await?;
    let mut controller = start(kubeconfig)?;
    // Ready: one object converged (caches synced, module loaded).
    Api::<DynamicObject>::namespaced_with(client.clone(), NAMESPACE, &scenario::at_resource())
        .create(&PostParams::default(), &scenario::at("warmup")?)
        .await?;
    watch
        .wait_for(
            "warmup",
            "converged",
            Duration::from_secs(120),
            &mut controller,
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(
            env.new_client()
                .await
                .map_err(|e| anyhow::anyhow!("a client of the control plane: {e}"))?,
        );
    }
    let cpu_before = controller.cpu_seconds()?;
    let started = Instant::now();
    let creators = clients.into_iter().enumerate().map(|(c, client)| {
        tokio::spawn(async move {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client, NAMESPACE, &scenario::at_resource());
            let mut last = Instant::now();
            for i in (c..objects).step_by(CLIENTS) {
                api.create(
                    &PostParams::default(),
                    &scenario::at(&format!("at-{i:05}"))?,
                )
                .await?;
                last = Instant::now();
            }
            anyhow::Ok(last)
        })
    });
    let mut last_create = started;
    for creator in futures::future::join_all(creators).await {
        last_create = last_create.max(creator.context("a creating client panicked")??);
    }
    // The warmup object counts too.
    watch
        .wait_count("converged", objects + 1, TIMEOUT, &mut controller)
        .await?;
    let Some(converged) = watch.last("converged") else {
        bail!("nothing converged");
    };
    let cpu = controller.cpu_seconds()? - cpu_before;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss, rss_peak) = controller.rss()?;
    Ok(ConcurrencyRun {
        tail: converged.saturating_duration_since(last_create),
        total: converged.saturating_duration_since(started),
        cpu,
        rss,
        rss_peak,
    })
}

/// Runs every setup `repeats` times, alternating, and makes the rows: each
/// host limit against kube-runtime's unbounded default.
pub async fn rows(
    binaries: &Binaries,
    objects: usize,
    limits: &[usize],
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let mut setups = vec![Setup::NativeUnbounded];
    setups.extend(limits.iter().map(|&n| Setup::Host(n)));
    let mut runs: Vec<(Setup, ConcurrencyRun)> = Vec::new();
    for repeat in 0..repeats {
        for &setup in &setups {
            eprintln!(
                "bench: concurrency, {objects} Ats from {CLIENTS} clients, {} (repeat {}/{repeats}) …",
                setup.name(),
                repeat + 1
            );
            let run = mirrors::retried(&format!("concurrency, {}", setup.name()), || {
                run(setup, binaries, objects, out)
            })
            .await?;
            eprintln!(
                "bench:   last create → all converged {:.2}s, {:.1} CPU-s, {:.1} MiB",
                run.tail.as_secs_f64(),
                run.cpu,
                mib(run.rss)
            );
            runs.push((setup, run));
        }
    }
    let of = |setup: Setup, f: &dyn Fn(&ConcurrencyRun) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(s, _)| *s == setup)
            .map(|(_, r)| f(r))
            .collect()
    };
    let mut rows = Vec::new();
    type Figure = dyn Fn(&ConcurrencyRun) -> f64;
    let metrics: [(&str, &'static str, &Figure); 5] = [
        ("last create → every status", "s", &|r| {
            r.tail.as_secs_f64()
        }),
        ("first create → every status", "s", &|r| {
            r.total.as_secs_f64()
        }),
        ("CPU", "s", &|r| r.cpu),
        ("RSS once converged", "MiB", &|r| mib(r.rss)),
        ("peak RSS", "MiB", &|r| mib(r.rss_peak)),
    ];
    for (what, unit, f) in metrics {
        for &n in limits {
            rows.push(Row::new(
                format!("(j) {what}, {objects} Ats from {CLIENTS} clients: bosun --concurrency {n} vs native unbounded"),
                unit,
                of(Setup::Host(n), f),
                of(Setup::NativeUnbounded, f),
            ));
        }
    }
    let note = format!(
        "concurrency: {objects} cnat Ats created by {CLIENTS} parallel clients, native at kube-runtime's default (no limit) against bosun at --concurrency {}, {repeats} runs each",
        limits
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and ")
    );
    Ok((rows, note))
}
