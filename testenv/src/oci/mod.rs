//! Writing an OCI image layout (and its archive) byte for byte the same
//! from the same inputs: what `cargo xtask image` builds the bosun image
//! with, and what the test node's stand-in images ([`crate::node`]) are
//! built with.
//!
//! Every source of drift is pinned: entries in byte order of their paths,
//! mtime 0, ownership and modes from the [`Tree`] rather than the build
//! machine, no user or group names, gzip with mtime 0 at a fixed level, and
//! JSON written from maps with a fixed key order.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod tree;

pub use tree::{Content, Entry, Node, Tree};

/// Media types of the OCI image spec.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The image config's media type.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A gzip-compressed layer's media type.
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The image index's media type.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The platform an image built here runs on: this machine's, whose
/// binaries and libraries it holds.
pub fn platform() -> Result<Value> {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => anyhow::bail!("no OCI architecture name known for {other}"),
    };
    Ok(json!({"architecture": architecture, "os": "linux"}))
}

/// A content-addressed blob in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its media type.
    pub media_type: &'static str,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Blob {
    /// The descriptor that points at it from a manifest or index.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// A layer: the compressed blob and the digest of its uncompressed tar
/// (the `diff_id` the config lists).
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzip blob.
    pub blob: Blob,
    /// `sha256:<hex>` of the tar.
    pub diff_id: String,
    /// The tar's size.
    pub uncompressed_size: u64,
}

/// An OCI image layout being written: `oci-layout`, `index.json`, `blobs/sha256/`.
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Starts an empty layout at `root`, replacing whatever was there so no
    /// stale blob of an earlier build stays behind.
    pub fn create(root: &Path) -> Result<Layout> {
        if root.exists() {
            std::fs::remove_dir_all(root)
                .with_context(|| format!("removing the old layout {}", root.display()))?;
        }
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        std::fs::write(
            root.join("oci-layout"),
            serde_json::to_vec(&json!({"imageLayoutVersion": "1.0.0"}))?,
        )
        .context("writing oci-layout")?;
        Ok(Layout {
            root: root.to_owned(),
        })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Writes bytes as a blob.
    pub fn blob(&self, media_type: &'static str, bytes: &[u8]) -> Result<Blob> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let path = self.blob_path(&digest);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(Blob {
            media_type,
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Writes a JSON document as a blob.
    pub fn json_blob(&self, media_type: &'static str, value: &Value) -> Result<Blob> {
        self.blob(media_type, &serde_json::to_vec(value)?)
    }

    /// Writes `tree` as a gzip-compressed tar layer.
    pub fn layer(&self, tree: &Tree) -> Result<Layer> {
        let partial = self.root.join("blobs/sha256/.layer.partial");
        let file =
            File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let compressed = Hashing::new(BufWriter::new(file));
        // Level 6, gzip's default; the header's mtime is 0 and its OS byte
        // fixed by flate2, so the same tar always compresses to the same bytes.
        let gzip = GzBuilder::new()
            .mtime(0)
            .write(compressed, Compression::new(6));
        let mut tar = tar::Builder::new(Hashing::new(gzip));
        for (path, entry) in tree.entries() {
            let mut header = tar::Header::new_ustar();
            header.set_mode(entry.mode);
            header.set_uid(u64::from(entry.owner));
            header.set_gid(u64::from(entry.owner));
            header.set_mtime(0);
            match &entry.node {
                Node::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), io::empty())
                        .with_context(|| format!("adding {path}/ to the layer"))?;
                }
                Node::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)
                        .with_context(|| format!("adding the link {path} to the layer"))?;
                }
                Node::File(Content::Bytes(bytes)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    tar.append_data(&mut header, path, bytes.as_slice())
                        .with_context(|| format!("adding {path} to the layer"))?;
                }
                Node::File(Content::File(source)) => {
                    let file = File::open(source)
                        .with_context(|| format!("opening {}", source.display()))?;
                    let size = file
                        .metadata()
                        .with_context(|| format!("reading {}", source.display()))?
                        .len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    tar.append_data(&mut header, path, file)
                        .with_context(|| format!("adding {} as {path}", source.display()))?;
                }
            }
        }
        let uncompressed = tar.into_inner().context("finishing the layer's tar")?;
        let (gzip, diff_id, uncompressed_size) = uncompressed.finish();
        let compressed = gzip.finish().context("finishing the layer's gzip")?;
        let (writer, digest, size) = compressed.finish();
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .context("writing the layer")?;
        let blob = Blob {
            media_type: LAYER,
            digest,
            size,
        };
        let path = self.blob_path(&blob.digest);
        std::fs::rename(&partial, &path)
            .with_context(|| format!("moving the layer to {}", path.display()))?;
        Ok(Layer {
            blob,
            diff_id,
            uncompressed_size,
        })
    }

    /// Writes `index.json`, naming the one manifest with `tag`.
    pub fn index(&self, manifest: &Blob, tag: &str, platform: &Value) -> Result<()> {
        let mut descriptor = manifest.descriptor();
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        descriptor["platform"] = platform.clone();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [descriptor],
        });
        std::fs::write(self.root.join("index.json"), serde_json::to_vec(&index)?)
            .context("writing index.json")
    }

    /// Packs the layout into one tar (what skopeo's `oci-archive:` reads),
    /// with the same fixed metadata as the layers.
    pub fn archive(&self, to: &Path) -> Result<()> {
        let mut files = Vec::new();
        collect(&self.root, &self.root, &mut files)?;
        files.sort();
        let file = File::create(to).with_context(|| format!("creating {}", to.display()))?;
        let mut tar = tar::Builder::new(BufWriter::new(file));
        for (relative, is_dir) in files {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let source = self.root.join(&relative);
            if is_dir {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{relative}/"), io::empty())?;
            } else {
                let file =
                    File::open(&source).with_context(|| format!("opening {}", source.display()))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(file.metadata()?.len());
                tar.append_data(&mut header, &relative, file)
                    .with_context(|| format!("archiving {relative}"))?;
            }
        }
        tar.into_inner()
            .context("finishing the archive")?
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .with_context(|| format!("writing {}", to.display()))
    }
}

/// Every file and directory under `dir`, as paths relative to `root` with
/// `/` separators, marked directory or not.
fn collect(root: &Path, dir: &Path, into: &mut Vec<(String, bool)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let relative = path
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .with_context(|| format!("{} is not a UTF-8 path in the layout", path.display()))?
            .to_owned();
        if path.is_dir() {
            into.push((relative, true));
            collect(root, &path, into)?;
        } else {
            into.push((relative, false));
        }
    }
    Ok(())
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, `sha256:<hex>` of what was written, and its length.
    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.written)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
