//! Compiles refused for a limit, remembered across restarts.
//!
//! A component that went past the cage's CPU time or memory will do so
//! again: compiling it at every start would spend those resources each
//! time (and, before the cage, crash-looped a host killed while compiling
//! it). So a refusal is written beside the compile cache, under a name
//! made of the component's digest, the engine's compatibility key and the
//! limits' fingerprint, and the next load of the same bytes under the same
//! engine and limits is refused from it without starting a worker. New
//! bytes, other limits or another host build compile again.
//!
//! A marker decides that a module does *not* run, so a planted one could
//! block a good module: each carries an HMAC-SHA256 under the cache's own
//! key over what it says (digest, engine key, limits and the limit hit), in
//! a directory private to the host. One that does not verify, or names
//! other bytes or limits than its file name, is dropped and the component
//! compiled.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cache::{CompileCache, TAG_BYTES, hmac_sha256};
use super::cage::{CompileLimits, LimitHit};

/// What a marker says, and what its tag covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    digest: String,
    engine: String,
    limits: String,
    hit: LimitHit,
    /// When the compile was refused (RFC 3339), for the message.
    at: String,
}

/// A refusal read back from its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The limit the earlier compile went past.
    pub hit: LimitHit,
    /// When it was refused (RFC 3339).
    pub at: String,
}

/// Keeps domain apart from the artifacts' tags, which cover raw bytes.
const DOMAIN: &[u8] = b"bosun compile refusal v1\0";

fn path(cache: &CompileCache, digest: &str, limits: &CompileLimits) -> PathBuf {
    cache.dir().join(format!(
        "{digest}-{}-{}.refused",
        cache.engine_key(),
        limits.fingerprint()
    ))
}

fn tag(key: &[u8; TAG_BYTES], body: &[u8]) -> Option<[u8; TAG_BYTES]> {
    hmac_sha256(key, std::io::Read::chain(DOMAIN, body)).ok()
}

/// The refusal of these bytes under these limits, if one was remembered
/// (and verifies).
pub(super) fn recall(
    cache: &CompileCache,
    digest: &str,
    limits: &CompileLimits,
) -> Option<Remembered> {
    let key = cache.key()?;
    let path = path(cache, digest, limits);
    let bytes = fs::read(&path).ok()?;
    let verified = (|| {
        let (mac, body) = bytes.split_at_checked(TAG_BYTES)?;
        if tag(key, body)?[..] != mac[..] {
            return None;
        }
        let marker: Marker = serde_json::from_slice(body).ok()?;
        let names_these = marker.digest == digest
            && marker.engine == cache.engine_key()
            && marker.limits == limits.fingerprint();
        names_these.then_some(Remembered {
            hit: marker.hit,
            at: marker.at,
        })
    })();
    if verified.is_none() {
        tracing::warn!(path = %path.display(), "dropping a compile refusal this host did not write (or that is damaged)");
        let _ = fs::remove_file(&path);
    }
    verified
}

/// Remembers that these bytes went past `hit` under these limits. Failures
/// are logged: the refusal stands for this load either way.
pub(super) fn remember(cache: &CompileCache, digest: &str, limits: &CompileLimits, hit: LimitHit) {
    let Some(key) = cache.key() else {
        return;
    };
    let marker = Marker {
        digest: digest.to_owned(),
        engine: cache.engine_key().to_owned(),
        limits: limits.fingerprint(),
        hit,
        at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
    };
    let result = (|| -> anyhow::Result<()> {
        let body = serde_json::to_vec(&marker)?;
        let mac = tag(key, &body).ok_or_else(|| anyhow::anyhow!("cannot tag the marker"))?;
        let mut file = tempfile::NamedTempFile::new_in(cache.dir())?;
        file.write_all(&mac)?;
        file.write_all(&body)?;
        file.persist(path(cache, digest, limits))?;
        Ok(())
    })();
    if let Err(error) = result {
        tracing::warn!(dir = %cache.dir().display(), %error, "could not remember a refused compile");
    }
}
