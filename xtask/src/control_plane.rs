//! `cargo xtask control-plane`: builds (or reuses) `kube-apiserver` and
//! `etcd`, and the test node's `kubelet`, `kube-controller-manager`,
//! `kube-scheduler`, `kube-proxy` and `pause`.
//!
//! The sources are the Go module in `xtask/control-plane/` (upstream's mains,
//! pinned to one Kubernetes release; `pause` is a few lines of our own). The binaries go to the cache directory
//! chosen by [`bosun_testenv::assets`] (`~/.cache/bosun/control-plane/<version>/`
//! by default, outside `target/` so `cargo clean` keeps them), which is also
//! where the test harness looks for them. A stamp file records the versions and
//! a hash of the Go sources; when it matches, nothing is built. With
//! `KUBEBUILDER_ASSETS` set, those binaries are used and nothing is built.
//!
//! The Go build and module caches stay in Go's default locations, so a rebuild
//! after a source change (or a wiped cache directory) only relinks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bosun_testenv::assets::{self, AssetsError, AssetsOrigin};

#[derive(clap::Args)]
pub struct Args {
    /// Print only the directory holding the binaries on stdout (progress goes to stderr).
    #[arg(long)]
    print_dir: bool,
    /// Rebuild even when the cache is up to date.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let dir = ensure(args.force, Output::Verbose)?;
    if args.print_dir {
        println!("{}", dir.display());
    }
    Ok(())
}

/// How much of Go's build output to show.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Every package as go compiles it: the build is all that runs.
    Verbose,
    /// A line every minute or so: the build runs beside cargo's, whose
    /// output should stay readable.
    Background,
}

/// Returns the directory with usable binaries, building them if needed.
pub fn ensure(force: bool, output: Output) -> Result<PathBuf> {
    let kube =
        assets::kube_version().context("xtask/control-plane/go.mod lacks k8s.io/kubernetes")?;
    let etcd = assets::etcd_version().unwrap_or("unknown");
    if std::env::var_os(assets::KUBEBUILDER_ASSETS).is_some_and(|v| !v.is_empty()) {
        let found = assets::locate()?;
        eprintln!(
            "control-plane: using {}={} (nothing to build)",
            assets::KUBEBUILDER_ASSETS,
            found.dir.display()
        );
        return Ok(found.dir);
    }
    let dir = assets::cache_dir()?;
    if !force {
        match assets::locate() {
            Ok(found) if found.origin == AssetsOrigin::Cache => {
                eprintln!(
                    "control-plane: kube-apiserver, etcd and the node's binaries ({kube}, etcd {etcd}) are up to date in {}",
                    found.dir.display()
                );
                return Ok(found.dir);
            }
            Ok(_) => {}
            Err(AssetsError::Stale { .. }) => {
                eprintln!("control-plane: Go sources changed since the last build; rebuilding")
            }
            Err(AssetsError::NotBuilt { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    build(&dir, kube, etcd, output)?;
    Ok(dir)
}

fn build(dir: &Path, kube: &str, etcd: &str, go_output: Output) -> Result<()> {
    let started = Instant::now();
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("control-plane");
    eprintln!(
        "control-plane: building kube-apiserver, kubelet, kube-controller-manager, kube-scheduler, kube-proxy {kube}, etcd {etcd} and pause from {}\n\
         control-plane: into {}\n\
         control-plane: a cold build takes about 6 minutes alone (3.5 for kube-apiserver and etcd, 2.7 more for the node's), 9 beside the Rust build, and 2 GB of memory on 2 cores; later builds reuse Go's caches",
        module.display(),
        dir.display()
    );

    let go = go_version()?;
    eprintln!("control-plane: [1/4] toolchain: {go}");

    eprintln!(
        "control-plane: [2/4] go mod download (module cache: {})",
        go_env("GOMODCACHE")
    );
    let status = Command::new("go")
        .args(["mod", "download"])
        .current_dir(&module)
        .status()
        .context("running `go mod download`")?;
    if !status.success() {
        bail!("`go mod download` failed ({status})");
    }

    let parent = dir.parent().context("cache directory has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(".{kube}.partial-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;

    eprintln!(
        "control-plane: [3/4] go build -trimpath (CGO_ENABLED=0; build cache: {})",
        go_env("GOCACHE")
    );
    let result = go_build(&module, &staging, kube, go_output);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }

    eprintln!("control-plane: [4/4] checking the binaries");
    let apiserver_version = output(&staging.join(assets::KUBE_APISERVER), &["--version"])?;
    if !apiserver_version.contains(kube) {
        bail!("built kube-apiserver reports {apiserver_version:?}, expected {kube}");
    }
    for binary in [
        assets::KUBELET,
        assets::KUBE_CONTROLLER_MANAGER,
        assets::KUBE_SCHEDULER,
        assets::KUBE_PROXY,
    ] {
        let version = output(&staging.join(binary), &["--version"])?;
        if !version.contains(kube) {
            bail!("built {binary} reports {version:?}, expected {kube}");
        }
    }
    if !staging.join(assets::PAUSE).is_file() {
        bail!("go build wrote no {}", assets::PAUSE);
    }
    let etcd_version = output(&staging.join(assets::ETCD), &["--version"])?;
    if !etcd_version.contains(etcd.trim_start_matches('v')) {
        bail!("built etcd reports {etcd_version:?}, expected {etcd}");
    }
    std::fs::write(staging.join(assets::STAMP_FILE), assets::expected_stamp())
        .context("writing the stamp file")?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing old {}", dir.display()))?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("moving {} to {}", staging.display(), dir.display()))?;
    eprintln!(
        "control-plane: built in {} -> {}\n  {}\n  {}",
        mmss(started.elapsed()),
        dir.display(),
        apiserver_version.trim(),
        etcd_version.lines().next().unwrap_or_default()
    );
    Ok(())
}

/// Runs `go build -v`, echoing each compiled package with the elapsed time and
/// printing a heartbeat while go is quiet (linking takes a while).
fn go_build(module: &Path, out: &Path, kube: &str, output: Output) -> Result<()> {
    let minor = kube
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("0");
    let mut ldflags = vec!["-s".to_string(), "-w".to_string()];
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        ldflags.push(format!("-X={pkg}.gitVersion={kube}"));
        ldflags.push(format!("-X={pkg}.gitMajor=1"));
        ldflags.push(format!("-X={pkg}.gitMinor={minor}"));
        ldflags.push(format!("-X={pkg}.gitTreeState=clean"));
    }
    let mut out_arg = out.as_os_str().to_owned();
    out_arg.push("/");
    let mut child = Command::new("go")
        .arg("build")
        .args(["-trimpath", "-buildvcs=false", "-v"])
        .arg(format!("-ldflags={}", ldflags.join(" ")))
        .arg("-o")
        .arg(out_arg)
        .args(assets::BINARIES.map(|binary| format!("./cmd/{binary}")))
        .env("CGO_ENABLED", "0")
        .current_dir(module)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `go build` (is Go installed and on PATH?)")?;

    let started = Instant::now();
    let quiet_for = match output {
        Output::Verbose => Duration::from_secs(20),
        Output::Background => Duration::from_secs(60),
    };
    let last_line = Arc::new(Mutex::new((Instant::now(), 0usize)));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeat = {
        let last_line = Arc::clone(&last_line);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let Ok(mut guard) = last_line.lock() else {
                    return;
                };
                if guard.0.elapsed() >= quiet_for {
                    eprintln!(
                        "control-plane: [{}] still building ({} packages compiled so far; linking is silent)",
                        mmss(started.elapsed()),
                        guard.1
                    );
                    guard.0 = Instant::now();
                }
            }
        })
    };
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading go build output")?;
            let count = match last_line.lock() {
                Ok(mut guard) => {
                    guard.1 += 1;
                    if output == Output::Verbose {
                        guard.0 = Instant::now();
                    }
                    guard.1
                }
                Err(_) => 0,
            };
            if output == Output::Verbose {
                eprintln!("      [{}] {count:>4} {line}", mmss(started.elapsed()));
            }
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().context("waiting for go build")?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = heartbeat.join();
    if !status.success() {
        bail!(
            "go build failed ({status}); its last output:\n{}",
            tail.join("\n")
        );
    }
    Ok(())
}

fn go_version() -> Result<String> {
    let version = output(Path::new("go"), &["version"])
        .context("Go is needed to build the control plane: install Go 1.25 or newer")?;
    Ok(version.trim().to_string())
}

fn go_env(name: &str) -> String {
    output(Path::new("go"), &["env", name])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn output(program: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} {}", program.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({})",
            program.display(),
            args.join(" "),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mmss(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}
