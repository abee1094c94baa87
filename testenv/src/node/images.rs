//! The images a node runs without pulling from the internet: the pause
//! image, and stand-ins for the public images the examples name.
//!
//! None of them can be pulled here, so each is built from what the
//! machine has, with the same deterministic OCI writer as the bosun image
//! ([`crate::oci`]), and imported into containerd's `k8s.io` namespace:
//!
//! - `registry.k8s.io/pause:3.10`: the static `pause` program `cargo xtask
//!   control-plane` builds (a few lines of Go: wait for a signal, reap).
//! - `docker.io/library/busybox:latest` and `:1.36`: Debian's
//!   `busybox-static` binary with a link per applet, so cnat's Pod runs a
//!   real `echo`.
//! - `docker.io/library/nginx:latest` and `:1.27`: **not nginx** — the
//!   same busybox, whose `httpd` serves a page on ports 80 (where nginx
//!   listens) and 8080 (the port the examples' WebApps declare).
//!
//! An untagged image (`busybox`, cnat's) defaults to `imagePullPolicy:
//! Always`, and the kubelet then asks the registry even when the image is
//! there; so the node also runs a registry [`Mirror`], a real
//! `docker-registry` holding the stand-ins, which containerd uses as
//! Docker Hub.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::error::NodeError;
use crate::oci::{CONFIG, Content, Layout, MANIFEST, Tree};

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// An image as an OCI archive, and the names it goes by on the node.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    /// The repository, fully qualified (`docker.io/library/busybox`).
    pub repository: String,
    /// The tag recorded in the archive.
    pub tag: String,
    /// More tags for the same image (`1.36` beside `latest`).
    pub also_tagged: Vec<String>,
    /// The archive (skopeo's `oci-archive:`, `ctr images import`).
    pub archive: PathBuf,
    /// The manifest's digest.
    pub digest: String,
}

impl ImageArchive {
    /// `repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Builds the pause image and the stand-ins into `dir`.
pub(crate) fn build(dir: &Path, pause: &Path) -> Result<Vec<ImageArchive>, NodeError> {
    let mut pause_tree = Tree::default();
    pause_tree.file("pause", 0o755, Content::File(pause.to_owned()));
    let pause = write(
        &dir.join("pause"),
        "registry.k8s.io/pause",
        "3.10",
        &[],
        &[pause_tree],
        json!({"Entrypoint": ["/pause"], "User": "65535:65535"}),
    )?;

    let busybox_layer = busybox()?;
    let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let busybox = write(
        &dir.join("busybox"),
        "docker.io/library/busybox",
        "latest",
        &["1.36"],
        std::slice::from_ref(&busybox_layer),
        json!({"Env": [path], "Cmd": ["sh"]}),
    )?;

    let mut site = Tree::default();
    site.file(
        "usr/share/nginx/html/index.html",
        0o644,
        Content::Bytes(
            b"<!doctype html><title>nginx stand-in</title>\n<p>Served by busybox httpd: bosun's test node's stand-in for nginx.</p>\n"
                .to_vec(),
        ),
    );
    let serve =
        "httpd -p 8080 -h /usr/share/nginx/html && exec httpd -f -p 80 -h /usr/share/nginx/html";
    let nginx = write(
        &dir.join("nginx"),
        "docker.io/library/nginx",
        "latest",
        &["1.27"],
        &[busybox_layer, site],
        json!({
            "Env": [path],
            "Entrypoint": ["/bin/sh", "-c", serve],
            "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}},
            "StopSignal": "SIGKILL",
        }),
    )?;
    Ok(vec![pause, busybox, nginx])
}

/// Debian's static busybox at `/bin/busybox`, a link per applet in
/// `/bin`, the accounts and a `/tmp`.
fn busybox() -> Result<Tree, NodeError> {
    let image_error = |message: String| NodeError::Image {
        name: "docker.io/library/busybox".into(),
        message,
    };
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|e| image_error(format!("running {BUSYBOX} --list: {e}")))?;
    if !list.status.success() {
        return Err(image_error(format!(
            "{BUSYBOX} --list failed ({})",
            list.status
        )));
    }
    let mut tree = Tree::default();
    tree.file("bin/busybox", 0o755, Content::File(BUSYBOX.into()));
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            tree.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    tree.file(
        "etc/passwd",
        0o644,
        Content::Bytes(
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
                .to_vec(),
        ),
    );
    tree.file(
        "etc/group",
        0o644,
        Content::Bytes(b"root:x:0:\nnogroup:x:65534:\n".to_vec()),
    );
    tree.dir("root", 0o700, 0);
    tree.dir("tmp", 0o1777, 0);
    Ok(tree)
}

/// Writes a single-manifest image of `layers` with `config` as its
/// runtime config, tagged `tag`, and packs it.
fn write(
    dir: &Path,
    repository: &str,
    tag: &str,
    also_tagged: &[&str],
    layers: &[Tree],
    config: Value,
) -> Result<ImageArchive, NodeError> {
    let image_error = |e: anyhow::Error| NodeError::Image {
        name: format!("{repository}:{tag}"),
        message: format!("{e:#}"),
    };
    let layout = Layout::create(&dir.join("oci")).map_err(image_error)?;
    let written = layers
        .iter()
        .map(|tree| layout.layer(tree))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(image_error)?;
    let platform = crate::oci::platform().map_err(image_error)?;
    let mut image = platform.clone();
    // Fixed, so the same machine always builds the same digests.
    image["created"] = json!("1970-01-01T00:00:00Z");
    image["config"] = config;
    image["rootfs"] = json!({
        "type": "layers",
        "diff_ids": written.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
    });
    let config = layout.json_blob(CONFIG, &image).map_err(image_error)?;
    let manifest = layout
        .json_blob(
            MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": config.descriptor(),
                "layers": written.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
            }),
        )
        .map_err(image_error)?;
    layout
        .index(&manifest, tag, &platform)
        .map_err(image_error)?;
    let archive = dir.join("image.oci.tar");
    layout.archive(&archive).map_err(image_error)?;
    Ok(ImageArchive {
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        also_tagged: also_tagged.iter().map(|t| (*t).to_owned()).collect(),
        archive,
        digest: manifest.digest,
    })
}

/// The node's stand-in for Docker Hub: a `docker-registry` on the host's
/// end of the node's link, holding the stand-ins, which containerd is
/// told to use for `docker.io` and nothing else.
#[derive(Debug)]
pub(crate) struct Mirror {
    registry: crate::Registry,
}

impl Mirror {
    /// Starts the registry on `ip` and pushes each `docker.io` image into it.
    pub fn start(ip: std::net::IpAddr, images: &[ImageArchive]) -> Result<Mirror, NodeError> {
        let registry = crate::Registry::start_on(ip).map_err(|e| NodeError::Setup {
            what: "starting the node's docker.io mirror (docker-registry)".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        for image in images {
            let Some(path) = image.repository.strip_prefix("docker.io/") else {
                continue;
            };
            for tag in std::iter::once(&image.tag).chain(&image.also_tagged) {
                let mut command = Command::new("skopeo");
                command
                    .args([
                        "--insecure-policy",
                        "copy",
                        "--quiet",
                        "--dest-tls-verify=false",
                    ])
                    .arg(format!("oci-archive:{}", image.archive.display()))
                    .arg(format!("docker://{}/{path}:{tag}", registry.address()));
                super::sandbox::output(command)?;
            }
        }
        Ok(Mirror { registry })
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.registry.pid()
    }

    /// `http://ip:port`, as `hosts.toml` names it.
    pub fn url(&self) -> String {
        format!("http://{}", self.registry.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_ins_are_built_the_same_twice_with_an_echo_in_busybox() {
        if !Path::new(BUSYBOX).is_file() {
            eprintln!("skipped: {BUSYBOX} (busybox-static) is not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pause = Path::new("/bin/true");
        let first = build(&dir.path().join("a"), pause).expect("the images build");
        let second = build(&dir.path().join("b"), pause).expect("the images build again");
        let references: Vec<String> = first.iter().map(ImageArchive::reference).collect();
        assert_eq!(
            references,
            [
                "registry.k8s.io/pause:3.10",
                "docker.io/library/busybox:latest",
                "docker.io/library/nginx:latest"
            ]
        );
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.digest, b.digest, "{} is reproducible", a.reference());
        }
        let tree = busybox().expect("the busybox tree");
        let echo = tree
            .entries()
            .find(|(path, _)| *path == "bin/echo")
            .expect("bin/echo");
        assert!(matches!(&echo.1.node, crate::oci::Node::Symlink(t) if t == "busybox"));
    }
}
