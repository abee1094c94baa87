//! What a module is as bytes, wherever it comes from: the size cap, the
//! digest, gzip, the Wasm OCI artifact layout, and the errors of fetching
//! one. A leaf of `modules`: the sources ([`super::source`],
//! [`super::oci`]), the directory watcher and the publisher all read it,
//! and it reads none of them.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::resource::SpecError;

/// The largest component any source may deliver: 64 MiB.
///
/// Real reconcilers are a few MiB at most; the cap is there so that a URL
/// serving something else (or an endless stream) fails fast instead of
/// filling the host's memory.
pub const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// How long a `url` download or an `oci` pull may take, from connecting to
/// the last byte.
pub const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// The mediaType of a Wasm artifact's config.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// The mediaType of a Wasm artifact's layer: the component itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The largest manifest parsed: 4 MiB, the distribution registry's own
/// limit on manifests it accepts. A Wasm artifact's is a few hundred bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Why a module's bytes could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source itself is unusable (checked before fetching anything).
    #[error(transparent)]
    Spec(#[from] SpecError),

    /// The ConfigMap does not exist.
    #[error(
        "configmap {namespace}/{name} not found: create it (kubectl create configmap {name} -n {namespace} --from-file=KEY=module.wasm) or fix spec.source.configMap"
    )]
    ConfigMapNotFound {
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },

    /// The ConfigMap exists but has no such key in `binaryData`.
    #[error(
        "configmap {namespace}/{name} has no key {key:?} in binaryData (it has: {}); fix spec.source.configMap.key or add the component under that key",
        if available.is_empty() { "nothing".to_owned() } else { available.join(", ") }
    )]
    KeyNotFound {
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The key asked for.
        key: String,
        /// The keys the ConfigMap has, in `binaryData` and `data`.
        available: Vec<String>,
    },

    /// Reading the ConfigMap failed for another reason (access, connection).
    #[error(
        "reading {description}: {source}; check the host's RBAC allows getting configmaps there"
    )]
    Kube {
        /// Which ConfigMap.
        description: String,
        /// What the API server or client said.
        source: kube::Error,
    },

    /// The download failed: DNS, connection, TLS, or the body broke off.
    /// The client's own words are in the host's log only.
    #[error("GET {url} failed: no connection, or it broke off; the host's log has the details")]
    Http {
        /// The URL.
        url: String,
        /// What the HTTP client said.
        source: reqwest::Error,
    },

    /// The download took longer than [`URL_TIMEOUT`].
    #[error("GET {url}: no complete answer within {}s; check the server, or serve the module from closer", timeout.as_secs())]
    Timeout {
        /// The URL.
        url: String,
        /// The limit that was hit.
        timeout: Duration,
    },

    /// The server answered with a status other than 200 OK (a redirect to
    /// another origin included). The status is in the host's log only.
    #[error(
        "GET {url} did not answer with the component (no 200 OK; redirects are followed only within the same origin): check the URL; the host's log has the details"
    )]
    Status {
        /// The URL.
        url: String,
        /// The status code the server sent.
        status: u16,
    },

    /// The component is larger than [`MAX_MODULE_BYTES`].
    #[error(
        "{description} is larger than {limit} bytes, the most a module may be; is this the right component?"
    )]
    TooLarge {
        /// Where the bytes came from.
        description: String,
        /// The limit, [`MAX_MODULE_BYTES`].
        limit: u64,
    },

    /// The fetched bytes are not the ones the spec names; they are dropped.
    /// For an `oci` source: the manifest or the layer does not match its
    /// digest, or the registry does not have the pinned manifest while the
    /// reference's tag names another one.
    #[error(
        "{description} did not deliver the component the spec pins ({field} {expected}); nothing was loaded: if the module was rebuilt on purpose, update {field}"
    )]
    Digest {
        /// Where the bytes came from.
        description: String,
        /// The spec's field pinning them: `spec.source.url.sha256`, …
        field: &'static str,
        /// The digest the spec names (lowercase): hex for `sha256` fields,
        /// `sha256:<hex>` for `oci` sources.
        expected: String,
        /// The digest of what was downloaded (of the manifest, or the layer,
        /// or what the tag names, for `oci`).
        actual: String,
    },

    /// An `oci` source's registry did not answer: DNS, connection, TLS, or
    /// the answer broke off. The client's own words are in the host's log only.
    #[error(
        "pulling {description}: the registry did not answer (no connection, or it broke off); check spec.source.oci.ref and that the host can reach the registry; the host's log has the details"
    )]
    RegistryUnreachable {
        /// The source.
        description: String,
    },

    /// An `oci` source's registry refused the pull (a 401 or 403, or a token
    /// it would not give).
    #[error(
        "pulling {description}: the registry {registry} refused access: {}; the host's log has the details",
        if *with_credentials { "check the credentials in spec.source.oci.pullSecret's Secret" } else { "set spec.source.oci.pullSecret to a kubernetes.io/dockerconfigjson Secret with credentials for it" }
    )]
    RegistryDenied {
        /// The source.
        description: String,
        /// The registry's host.
        registry: String,
        /// Whether credentials were sent.
        with_credentials: bool,
    },

    /// An `oci` source's registry has no such repository or manifest.
    #[error(
        "pulling {description}: the registry has no such repository or manifest; check spec.source.oci.ref and that the digest was pushed there"
    )]
    RegistryNotFound {
        /// The source.
        description: String,
    },

    /// An `oci` source's registry answered with another error, or with
    /// something that is not a registry's answer. Only the status class is
    /// said; the rest is in the host's log.
    #[error(
        "pulling {description}: the registry answered with {answer}; check the registry; the host's log has the details"
    )]
    Registry {
        /// The source.
        description: String,
        /// `a 4xx error`, `a 5xx error`, `something that is not a registry's answer`.
        answer: &'static str,
    },

    /// An `oci` source's manifest is larger than [`MAX_MANIFEST_BYTES`]:
    /// not a Wasm artifact's (a few hundred bytes); it is not parsed.
    #[error(
        "{description}: the manifest is larger than {limit} bytes, far more than a Wasm component artifact's; check spec.source.oci.ref and the digest"
    )]
    ManifestTooLarge {
        /// The source.
        description: String,
        /// The limit, [`MAX_MANIFEST_BYTES`].
        limit: usize,
    },

    /// The pinned manifest is not a Wasm component artifact.
    #[error(
        "{description} is not a Wasm component artifact: its manifest must have config mediaType {} and exactly one layer, of mediaType {}; push the component with wkg oci push or oras push",
        WASM_CONFIG_MEDIA_TYPE,
        WASM_LAYER_MEDIA_TYPE
    )]
    NotWasmArtifact {
        /// The source.
        description: String,
    },

    /// An `oci` source's pull secret is missing or unusable.
    #[error(
        "pull secret {namespace}/{name} {problem}; fix spec.source.oci.pullSecret or the Secret"
    )]
    PullSecret {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What is wrong with it (never its contents).
        problem: String,
    },

    /// The bytes start like gzip but do not decompress.
    #[error("{description} is gzip-compressed but does not decompress: {reason}")]
    Gzip {
        /// Where the bytes came from.
        description: String,
        /// What the decompressor said.
        reason: String,
    },

    /// The file could not be read.
    #[error("reading file {}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The sha256 of `bytes`, lowercase hex: the digest used in status and in
/// `url` sources.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `bytes` decompressed when they are gzip, at most [`MAX_MODULE_BYTES`].
pub(crate) fn decompress(bytes: Vec<u8>, description: &str) -> Result<Vec<u8>, SourceError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    use std::io::Read as _;
    let mut decompressed = Vec::new();
    // One byte past the cap tells "exactly the cap" from "more": a small
    // archive must not inflate into the host's memory.
    flate2::read::GzDecoder::new(bytes.as_slice())
        .take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut decompressed)
        .map_err(|e| SourceError::Gzip {
            description: description.to_owned(),
            reason: e.to_string(),
        })?;
    check_size(decompressed.len() as u64, description)?;
    Ok(decompressed)
}

/// Installs ring as the process's rustls provider unless one is installed:
/// reqwest is built without a provider of its own (no aws-lc next to the ring
/// kube uses), and needs one before a client is built.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn check_size(len: u64, description: &str) -> Result<(), SourceError> {
    if len > MAX_MODULE_BYTES {
        return Err(SourceError::TooLarge {
            description: description.to_owned(),
            limit: MAX_MODULE_BYTES,
        });
    }
    Ok(())
}
