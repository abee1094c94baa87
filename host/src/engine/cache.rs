//! The on-disk compile cache: compiled components keyed by the sha256 of
//! their bytes and by the engine's compatibility hash, so that a restart or
//! a reload of the same module skips Cranelift entirely.
//!
//! What the cache holds is native code the host will run, so the cache
//! trusts nothing it did not write itself:
//!
//! - the directory must belong to the host's user and be writable by no
//!   one else (it is created so; an existing one that is not is refused,
//!   and the host compiles every module instead);
//! - every entry carries an HMAC-SHA256 of its bytes under a key that only
//!   this cache knows (`key`, created on first use, readable by its owner
//!   alone), in a file beside it (`.tag`): an entry someone else put there,
//!   or a damaged one, fails the check and is dropped.
//!
//! A verified entry is mapped from the file rather than read into memory,
//! so only the pages a module's calls touch stay resident: a host running
//! many modules would otherwise hold every artifact whole (2.6 MB for
//! cnat). It is mapped through the descriptor it was verified through, and
//! entries are only ever replaced by rename, never written in place.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// The length of the key and of each entry's tag.
pub(super) const TAG_BYTES: usize = 32;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    /// The HMAC key, once the directory passed its checks; the reason the
    /// cache is off otherwise.
    key: std::sync::Arc<OnceLock<Result<[u8; TAG_BYTES], String>>>,
}

/// Why the cache refuses its directory.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory is not the host's own.
    #[error(
        "the compile cache {dir} is not private to this host ({why}); compiling every module instead: give the host a directory of its own, mode 0700"
    )]
    NotPrivate {
        /// The directory.
        dir: String,
        /// What is wrong with it.
        why: String,
    },
    /// The directory or its key could not be made or read.
    #[error("the compile cache {dir} is unusable ({source}); compiling every module instead")]
    Io {
        /// The directory.
        dir: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`. The directory
    /// is created (mode 0700) on first use.
    pub fn new(dir: impl Into<PathBuf>, engine: &wasmtime::Engine) -> Self {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir: dir.into(),
            engine_key: format!("{:016x}", hasher.finish()),
            key: std::sync::Arc::default(),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    fn tag_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm.tag", self.engine_key))
    }

    fn drop_entry(&self, digest: &str) {
        let _ = fs::remove_file(self.path(digest));
        let _ = fs::remove_file(self.tag_path(digest));
    }

    /// The engine's compatibility key, part of every entry's name.
    pub(super) fn engine_key(&self) -> &str {
        &self.engine_key
    }

    /// The key, checking the directory the first time; None (logged once)
    /// when the cache is refused.
    pub(super) fn key(&self) -> Option<&[u8; TAG_BYTES]> {
        let key = self.key.get_or_init(|| {
            open(&self.dir).map_err(|error| {
                tracing::warn!(%error, "compile cache disabled");
                error.to_string()
            })
        });
        key.as_ref().ok()
    }

    /// Why the cache is refused, once it has been used; None while it works.
    pub fn refused(&self) -> Option<String> {
        self.key();
        self.key.get().and_then(|k| k.as_ref().err().cloned())
    }

    /// Whether the cache holds an entry for this digest (not yet checked:
    /// [`CompileCache::get`] does that).
    pub fn contains(&self, digest: &str) -> bool {
        self.key().is_some() && self.path(digest).is_file() && self.tag_path(digest).is_file()
    }

    /// The cached compilation of the component with this digest, if any.
    /// An entry that fails its integrity check or does not deserialize is
    /// removed and reported as a miss.
    pub fn get(&self, engine: &wasmtime::Engine, digest: &str) -> Option<Component> {
        let key = self.key()?;
        let path = self.path(digest);
        let file = fs::File::open(&path).ok()?;
        let tag = fs::read(self.tag_path(digest)).unwrap_or_default();
        let verified = hmac_sha256(key, &file).is_ok_and(|mac| mac[..] == tag[..]);
        if !verified {
            tracing::warn!(path = %path.display(), "dropping a compile cache entry that this host did not write (or that is damaged)");
            self.drop_entry(digest);
            return None;
        }
        // The descriptor the bytes were verified through: a rename of
        // another file to this name since then maps nothing new.
        let verified_file = format!("/proc/self/fd/{}", file.as_raw_fd());
        // SAFETY: the file is an artifact this host serialized itself (its
        // tag is under this cache's own key); wasmtime also checks the
        // artifact's engine compatibility and refuses a mismatch. The cache
        // replaces entries by rename only, so the mapped file is never
        // modified while a module uses it; only the host's own user could,
        // in a directory no one else may write.
        match unsafe { Component::deserialize_file(engine, &verified_file) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "dropping unusable compile cache entry");
                self.drop_entry(digest);
                None
            }
        }
    }

    /// Whether the cache works (its directory passed its checks).
    pub fn is_usable(&self) -> bool {
        self.key().is_some()
    }

    /// Stores a compiled component. Failures are logged, not returned: the
    /// cache only ever saves time.
    pub fn put(&self, digest: &str, component: &Component) {
        let Some(key) = self.key() else {
            return;
        };
        let result = (|| -> anyhow::Result<()> {
            let bytes = component.serialize()?;
            let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
            file.write_all(&bytes)?;
            self.install(digest, file, hmac_sha256(key, &bytes[..])?)
        })();
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "could not write the compile cache");
        }
    }

    /// Takes an artifact the compile worker returned as an entry, to be
    /// loaded by [`CompileCache::get`] with every check a cached entry
    /// gets. `artifact` must be a file in the cache's directory that this
    /// process alone has open (the cage copies the worker's pipe into it),
    /// so the bytes tagged are the bytes mapped later. False (logged) when
    /// the cache could not take it.
    pub(super) fn admit(&self, digest: &str, mut artifact: tempfile::NamedTempFile) -> bool {
        let Some(key) = self.key() else {
            return false;
        };
        let result = (|| -> anyhow::Result<()> {
            artifact.as_file_mut().seek(io::SeekFrom::Start(0))?;
            let tag = hmac_sha256(key, artifact.as_file())?;
            self.install(digest, artifact, tag)
        })();
        if let Err(error) = &result {
            tracing::warn!(dir = %self.dir.display(), %error, "could not write the compile cache");
        }
        result.is_ok()
    }

    /// Renames an artifact and then its tag into place, so that a
    /// concurrent reader never sees half a file (and a mapped entry is
    /// never written in place); a reader between the two renames finds a
    /// tag that does not match and compiles.
    fn install(
        &self,
        digest: &str,
        artifact: tempfile::NamedTempFile,
        mac: [u8; TAG_BYTES],
    ) -> anyhow::Result<()> {
        artifact.persist(self.path(digest))?;
        let mut tag = tempfile::NamedTempFile::new_in(&self.dir)?;
        tag.write_all(&mac)?;
        tag.persist(self.tag_path(digest))?;
        Ok(())
    }
}

/// Creates or checks the cache directory and reads (or makes) its key.
fn open(dir: &Path) -> Result<[u8; TAG_BYTES], CacheError> {
    let shown = dir.display().to_string();
    let io = |source| CacheError::Io {
        dir: shown.clone(),
        source,
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    check_private(dir, 0o022)?;
    let key_path = dir.join("key");
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
    {
        Ok(mut file) => {
            let mut key = [0u8; TAG_BYTES];
            getrandom::fill(&mut key).map_err(|e| io(io::Error::other(e.to_string())))?;
            file.write_all(&key).map_err(io)?;
            return Ok(key);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    check_private(&key_path, 0o077)?;
    let bytes = fs::read(&key_path).map_err(io)?;
    bytes.try_into().map_err(|_| CacheError::NotPrivate {
        dir: shown.clone(),
        why: "its key file is damaged".into(),
    })
}

/// Refuses `path` unless this user owns it and none of the `forbidden`
/// mode bits (group and other write, or read too) are set.
fn check_private(path: &Path, forbidden: u32) -> Result<(), CacheError> {
    let shown = || path.display().to_string();
    let metadata = fs::symlink_metadata(path).map_err(|source| CacheError::Io {
        dir: shown(),
        source,
    })?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let why = if metadata.file_type().is_symlink() {
        Some("it is a symbolic link".to_owned())
    } else if metadata.uid() != me {
        Some(format!("it belongs to uid {}, not {me}", metadata.uid()))
    } else if metadata.permissions().mode() & forbidden != 0 {
        Some(format!(
            "its mode {:o} lets others in",
            metadata.permissions().mode() & 0o777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(CacheError::NotPrivate { dir: shown(), why }),
        None => Ok(()),
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub(super) fn hmac_sha256(
    key: &[u8; TAG_BYTES],
    mut message: impl Read,
) -> io::Result<[u8; TAG_BYTES]> {
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    padded[..TAG_BYTES].copy_from_slice(key);
    let pad = |byte: u8| padded.map(|k| k ^ byte);
    let mut inner = Sha256::new().chain_update(pad(0x36));
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match message.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => inner.update(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner.finalize())
        .finalize()
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 has a short key; pad ours the same way (zeros).
        let mut key = [0u8; TAG_BYTES];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex::encode(hmac_sha256(&key, &b"what do ya want for nothing?"[..]).unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        fs::create_dir(&cache).unwrap();
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
        let err = open(&cache).unwrap_err();
        assert!(err.to_string().contains("lets others in"), "{err}");
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).unwrap();
        let key = open(&cache).unwrap();
        assert_eq!(open(&cache).unwrap(), key, "the key is kept");
        let mode = fs::metadata(cache.join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_new_directory_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/b/cache");
        open(&cache).unwrap();
        let mode = fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
