//! `cargo xtask image`: the bosun container image, built without a daemon.
//!
//! The image is written as an OCI image layout (`oci/`) and the same layout
//! packed into one tar (`bosun.oci.tar`, skopeo's `oci-archive:`), from the
//! `bosun` binary and the build machine's shared libraries, loader and CA
//! bundle: no base image is pulled. Two builds from the same inputs (the
//! binary, those system files, `SOURCE_DATE_EPOCH` or the commit) give the
//! same bytes, so the same digest. The `Dockerfile` builds the same image
//! for those with a daemon; its config is kept in step with [`config`] by a
//! test.

mod rootfs;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use bosun_testenv::oci;
use serde_json::{Value, json};

pub use oci::{Blob, CONFIG, INDEX, LAYER, Layer, MANIFEST};

/// The container's command: the binary…
pub const ENTRYPOINT: [&str; 1] = ["/bosun"];
/// …and its default arguments, those of the Deployment in `deploy/base`
/// (which repeats them, so the pod spec says what runs).
pub const CMD: [&str; 3] = ["run", "--modules-from-cluster", "--leader-elect"];
/// `nonroot`, by number so that `runAsNonRoot` can verify it without
/// reading the image's `/etc/passwd`.
pub const USER: &str = "65532:65532";
/// The environment of the image's config.
pub const ENV: [&str; 2] = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "BOSUN_CACHE_DIR=/var/cache/bosun/modules",
];
/// The telemetry port (`/metrics`, `/healthz`, `/readyz`).
pub const TELEMETRY_PORT: u16 = 8080;
/// `org.opencontainers.image.title`.
pub const TITLE: &str = "bosun";
/// `org.opencontainers.image.description`.
pub const DESCRIPTION: &str =
    "A Kubernetes operator host that runs reconcilers as sandboxed WebAssembly components";

/// What to build the image from.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `bosun` binary to package.
    pub binary: PathBuf,
    /// Where `oci/` and `bosun.oci.tar` are written.
    pub out_dir: PathBuf,
    /// The name recorded for the image in the layout's index.
    pub tag: String,
    /// The image's creation time, in seconds since the epoch: also what the
    /// config says, so it is an input and never the clock.
    pub created: i64,
    /// `org.opencontainers.image.revision`, when the build is of a clean commit.
    pub revision: Option<String>,
    /// Drop the binary's DWARF (`objcopy --strip-debug`), keeping its
    /// symbols: panics still name functions, and the image is a fraction of
    /// the size (the release binary's line tables, the debug binary's
    /// everything).
    pub strip_debug: bool,
}

impl Options {
    /// Options for `binary` with the time and revision taken from the
    /// environment: `SOURCE_DATE_EPOCH` if set, else the commit's time; the
    /// commit when the work tree is clean.
    pub fn new(binary: PathBuf, out_dir: PathBuf) -> Result<Options> {
        let created = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a number"))?,
            Err(_) => git(&["log", "-1", "--format=%ct"])
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
        };
        let clean = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|status| status.is_empty());
        let revision = clean.then(|| git(&["rev-parse", "HEAD"])).flatten();
        Ok(Options {
            binary,
            out_dir,
            tag: env!("CARGO_PKG_VERSION").to_owned(),
            created,
            revision,
            strip_debug: true,
        })
    }
}

/// What was built.
#[derive(Debug, Clone)]
pub struct Image {
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// The layout as one tar.
    pub archive: PathBuf,
    /// The manifest: its digest is the image's.
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The base layer, then the binary's.
    pub layers: Vec<Layer>,
    /// The tag in the index.
    pub tag: String,
}

impl Image {
    /// The bytes a registry stores for it: the compressed layers and the config.
    pub fn compressed_size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.blob.size).sum::<u64>()
    }

    /// The unpacked root filesystem's size (the layers' tars).
    pub fn uncompressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }
}

/// The OCI labels, in one place for the image config and the Dockerfile test.
pub fn labels(options: &Options) -> Value {
    let mut labels = json!({
        "org.opencontainers.image.title": TITLE,
        "org.opencontainers.image.description": DESCRIPTION,
        "org.opencontainers.image.source": env!("CARGO_PKG_REPOSITORY"),
        "org.opencontainers.image.licenses": env!("CARGO_PKG_LICENSE"),
        "org.opencontainers.image.version": env!("CARGO_PKG_VERSION"),
        "org.opencontainers.image.created": rfc3339(options.created),
    });
    if let Some(revision) = &options.revision {
        labels["org.opencontainers.image.revision"] = json!(revision);
    }
    labels
}

/// The image config (without `rootfs`, which needs the layers).
pub fn config(options: &Options) -> Value {
    json!({
        "User": USER,
        "Entrypoint": ENTRYPOINT,
        "Cmd": CMD,
        "Env": ENV,
        "WorkingDir": "/",
        "ExposedPorts": {format!("{TELEMETRY_PORT}/tcp"): {}},
        "Labels": labels(options),
    })
}

/// The platform the image runs on: the build machine's, whose binary and
/// libraries it holds.
pub fn platform() -> Result<Value> {
    oci::platform()
}

/// Builds the image.
pub fn build(options: &Options) -> Result<Image> {
    if !options.binary.is_file() {
        bail!("{} is not a file", options.binary.display());
    }
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    let stripped = options.out_dir.join("bosun.stripped");
    let binary = if options.strip_debug {
        strip_debug(&options.binary, &stripped)?
    } else {
        options.binary.clone()
    };
    let layout_dir = options.out_dir.join("oci");
    let layout = oci::Layout::create(&layout_dir)?;
    let base = rootfs::base(&binary)?;
    let layers = vec![layout.layer(&base)?, layout.layer(&rootfs::app(&binary))?];
    let created = rfc3339(options.created);
    let platform = platform()?;
    let mut config = platform.clone();
    config["created"] = json!(created);
    config["config"] = self::config(options);
    config["rootfs"] = json!({
        "type": "layers",
        "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
    });
    config["history"] = json!([
        {"created": created, "created_by": "cargo xtask image: shared libraries, loader, CA certificates, nonroot user"},
        {"created": created, "created_by": "cargo xtask image: /bosun"},
    ]);
    let config = layout.json_blob(CONFIG, &config)?;
    let manifest = layout.json_blob(
        MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        }),
    )?;
    layout.index(&manifest, &options.tag, &platform)?;
    let archive = options.out_dir.join("bosun.oci.tar");
    layout.archive(&archive)?;
    if options.strip_debug {
        std::fs::remove_file(&stripped)
            .with_context(|| format!("removing {}", stripped.display()))?;
    }
    Ok(Image {
        layout: layout_dir,
        archive,
        manifest,
        config,
        layers,
        tag: options.tag.clone(),
    })
}

/// A copy of `binary` without its DWARF sections, at `to`.
fn strip_debug(binary: &Path, to: &Path) -> Result<PathBuf> {
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(to)
        .status()
        .context("running objcopy (binutils) to strip the binary's debug info")?;
    if !status.success() {
        bail!(
            "objcopy --strip-debug {} failed ({status})",
            binary.display()
        );
    }
    Ok(to.to_owned())
}

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// `git …` in the workspace, trimmed; None when git or the repository is missing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(workspace_root())
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The command line of `cargo xtask image`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Package this `bosun` binary instead of building the release one.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Where to write `oci/` and `bosun.oci.tar` (default: `<target dir>/image`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The tag recorded in the layout (default: the workspace version).
    #[arg(long)]
    pub tag: Option<String>,
    /// Keep the binary's debug info (by default only its symbols are kept).
    #[arg(long)]
    pub keep_debug_info: bool,
}

/// Runs `cargo xtask image`.
pub fn run(args: Args) -> Result<()> {
    let binary = match args.binary {
        Some(binary) => binary,
        None => {
            eprintln!("image: cargo build --release --package bosun");
            bosun_testenv::guests::host_binary_release().context("building bosun")?
        }
    };
    let out_dir = args
        .out
        .unwrap_or_else(|| bosun_testenv::guests::target_dir().join("image"));
    let mut options = Options::new(binary, out_dir)?;
    if let Some(tag) = args.tag {
        options.tag = tag;
    }
    options.strip_debug = !args.keep_debug_info;
    let started = std::time::Instant::now();
    let image = build(&options)?;
    eprintln!(
        "image: {} layers, {:.1} MiB compressed ({:.1} MiB unpacked), in {:.1}s",
        image.layers.len(),
        image.compressed_size() as f64 / (1 << 20) as f64,
        image.uncompressed_size() as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    println!("{}", image.manifest.digest);
    eprintln!(
        "image: OCI layout {} (tag {}), archive {}",
        image.layout.display(),
        image.tag,
        image.archive.display()
    );
    eprintln!(
        "image: push with  skopeo copy oci-archive:{} docker://REGISTRY/bosun:{}",
        image.archive.display(),
        image.tag
    );
    Ok(())
}
