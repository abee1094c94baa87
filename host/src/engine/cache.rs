//! The on-disk compile cache: compiled components keyed by the sha256 of
//! their bytes and by the engine's compatibility hash, so that a restart or
//! a reload of the same module skips Cranelift entirely.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`. The directory
    /// is created on first write. It must be private to the host: its
    /// contents are loaded as native code.
    pub fn new(dir: impl Into<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir: dir.into(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the component with this digest, if any.
    /// A corrupt or incompatible entry is removed and reported as a miss.
    pub fn get(&self, engine: &wasmtime::Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the cache directory is written only by this host, from
        // components it compiled itself; wasmtime checks the artifact's
        // engine compatibility and refuses a mismatch.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "dropping unusable compile cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component. Failures are logged, not returned: the
    /// cache only ever saves time.
    pub fn put(&self, digest: &str, component: &Component) {
        let result = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let bytes = component.serialize()?;
            let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
            file.write_all(&bytes)?;
            // Rename into place so that a concurrent reader never sees half a file.
            file.persist(self.path(digest))?;
            Ok(())
        })();
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "could not write the compile cache");
        }
    }
}
