//! Fetching a module's bytes from its [`ModuleSource`].
//!
//! Every source is read whole into memory (the engine compiles from a byte
//! slice) and capped at [`MAX_MODULE_BYTES`], so a wrong URL or file cannot
//! exhaust the host's memory. A `url` source must name the sha256 of its
//! bytes, an `oci` source its manifest's digest ([`super::oci`]), and a
//! `configMap` source may: bytes that do not match are never returned, so the
//! server (or whoever may edit the ConfigMap) does not have to be trusted, and
//! a module cannot change under the host unnoticed.
//!
//! A component may be stored gzip-compressed (a ConfigMap holds at most
//! 1 MiB; compressed, most components fit): it is recognised by its magic
//! bytes, the pinned digest is checked on the bytes as stored, and the
//! decompressed size is capped like any other.
//!
//! A download follows redirects only within its own origin, and what the
//! errors say — they end up in a ReconcilerModule's status — never echoes
//! what a server answered (its status code, the digest of what it sent):
//! the host must not become a probe of what it can reach. The details go to
//! the host's own log.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::oci;
use super::resource::{ConfigMapSource, ModuleSource, SpecError, UrlSource};

/// The largest component any source may deliver: 64 MiB.
///
/// Real reconcilers are a few MiB at most; the cap is there so that a URL
/// serving something else (or an endless stream) fails fast instead of
/// filling the host's memory.
pub const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// How long a `url` download or an `oci` pull may take, from connecting to
/// the last byte.
pub const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// A module's bytes, and what they are.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The component, as fetched.
    pub bytes: Vec<u8>,
    /// The sha256 of [`bytes`](Self::bytes), lowercase hex.
    pub sha256: String,
    /// Where the bytes came from, for logs and status messages:
    /// `configmap bosun-system/modules[cnat.wasm]`, `https://…`, `file /x.wasm`.
    pub description: String,
}

/// Not the bytes, only their size: a debug print of a module must not dump it.
impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256)
            .field("description", &self.description)
            .finish()
    }
}

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

    /// An `oci` source's manifest is larger than [`oci::MAX_MANIFEST_BYTES`]:
    /// not a Wasm artifact's (a few hundred bytes); it is not parsed.
    #[error(
        "{description}: the manifest is larger than {limit} bytes, far more than a Wasm component artifact's; check spec.source.oci.ref and the digest"
    )]
    ManifestTooLarge {
        /// The source.
        description: String,
        /// The limit, [`oci::MAX_MANIFEST_BYTES`].
        limit: usize,
    },

    /// The pinned manifest is not a Wasm component artifact.
    #[error(
        "{description} is not a Wasm component artifact: its manifest must have config mediaType {} and exactly one layer, of mediaType {}; push the component with wkg oci push or oras push",
        oci::WASM_CONFIG_MEDIA_TYPE,
        oci::WASM_LAYER_MEDIA_TYPE
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

/// Fetches the component `source` names.
///
/// `client` is used only for `configMap` sources and `oci` pull secrets; the
/// host needs `get` on ConfigMaps (Secrets) in that namespace. A `url` source
/// is downloaded with a [`URL_TIMEOUT`] timeout and must be answered with 200
/// OK and bytes whose sha256 is the spec's; an `oci` source is pulled within
/// the same timeout (see [`oci`]). Every source is capped at
/// [`MAX_MODULE_BYTES`].
#[tracing::instrument(level = "debug", skip_all, fields(source = %source))]
pub async fn fetch(client: &Client, source: &ModuleSource) -> Result<Fetched, SourceError> {
    source.validate()?;
    let description = source.to_string();
    let bytes = match source {
        ModuleSource::ConfigMap(cm) => from_config_map(client, cm, &description).await?,
        ModuleSource::Url(u) => from_url(u, &description).await?,
        ModuleSource::Oci(o) => oci::pull(client, o, &description).await?,
        ModuleSource::File(f) => from_file(&f.path, &description).await?,
    };
    let sha256 = digest(&bytes);
    if let Some((field, expected)) = source.pinned_sha256() {
        let expected = expected.to_ascii_lowercase();
        if sha256 != expected {
            tracing::warn!(%expected, actual = %sha256, "module digest mismatch, bytes dropped");
            return Err(SourceError::Digest {
                description,
                field,
                expected,
                actual: sha256,
            });
        }
    }
    let bytes = decompress(bytes, &description)?;
    tracing::debug!(bytes = bytes.len(), %sha256, "module fetched");
    Ok(Fetched {
        bytes,
        sha256,
        description,
    })
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

async fn from_config_map(
    client: &Client,
    source: &ConfigMapSource,
    description: &str,
) -> Result<Vec<u8>, SourceError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let cm = api
        .get_opt(&source.name)
        .await
        .map_err(|e| SourceError::Kube {
            description: description.to_owned(),
            source: e,
        })?
        .ok_or_else(|| SourceError::ConfigMapNotFound {
            namespace: source.namespace.clone(),
            name: source.name.clone(),
        })?;
    let Some(bytes) = cm
        .binary_data
        .as_ref()
        .and_then(|data| data.get(&source.key))
    else {
        let available = cm
            .binary_data
            .iter()
            .flat_map(|d| d.keys())
            .chain(cm.data.iter().flat_map(|d| d.keys()))
            .cloned()
            .collect();
        return Err(SourceError::KeyNotFound {
            namespace: source.namespace.clone(),
            name: source.name.clone(),
            key: source.key.clone(),
            available,
        });
    };
    // The API server already limits a ConfigMap to 1 MiB; checked anyway so
    // every source obeys the same documented cap.
    check_size(bytes.0.len() as u64, description)?;
    Ok(bytes.0.clone())
}

async fn from_url(source: &UrlSource, description: &str) -> Result<Vec<u8>, SourceError> {
    let url = &source.url;
    let http = |e: reqwest::Error| {
        if e.is_timeout() {
            SourceError::Timeout {
                url: url.clone(),
                timeout: URL_TIMEOUT,
            }
        } else {
            tracing::warn!(%url, error = %e, "module download failed");
            SourceError::Http {
                url: url.clone(),
                source: e,
            }
        }
    };
    // A client per fetch: modules are fetched rarely (when a spec changes),
    // and this keeps no connection or global state between them.
    install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(URL_TIMEOUT)
        .redirect(same_origin_redirects())
        .build()
        .map_err(http)?;
    let mut response = client.get(url).send().await.map_err(http)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        tracing::warn!(%url, status = status.as_u16(), location = ?response.headers().get("location"), "module download not answered with 200 OK");
        return Err(SourceError::Status {
            url: url.clone(),
            status: status.as_u16(),
        });
    }
    if let Some(length) = response.content_length() {
        check_size(length, description)?;
    }
    // Counted while streaming: Content-Length may be absent or wrong.
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        check_size((bytes.len() + chunk.len()) as u64, description)?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn from_file(path: &Path, description: &str) -> Result<Vec<u8>, SourceError> {
    let io = |e| SourceError::File {
        path: path.to_owned(),
        source: e,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    // Read one byte past the cap to tell "exactly the cap" from "more".
    let mut bytes = Vec::new();
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(io)?;
    check_size(bytes.len() as u64, description)?;
    Ok(bytes)
}

/// Follows at most five redirects, each to the same scheme, host and port
/// as the URL asked for; anything else is answered as it is (a 3xx, which
/// is not the component).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = |url: &reqwest::Url| {
            (
                url.scheme().to_owned(),
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            )
        };
        let first = attempt.previous().first().map(origin);
        if attempt.previous().len() > 5 || first.as_ref() != Some(&origin(attempt.url())) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_lowercase_hex_sha256() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn gzip_is_decompressed_within_the_cap() {
        use std::io::Write as _;
        let gzip = |data: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let component = b"\0asm\x0d\0\x01\0 a component".to_vec();
        assert_eq!(decompress(gzip(&component), "x").unwrap(), component);
        assert_eq!(
            decompress(component.clone(), "x").unwrap(),
            component,
            "plain bytes stay"
        );
        // A bomb: 65 MiB of zeros in a few kilobytes.
        let bomb = gzip(&vec![0; (MAX_MODULE_BYTES + (1 << 20)) as usize]);
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(
            decompress(bomb, "x"),
            Err(SourceError::TooLarge { .. })
        ));
        let mut broken = gzip(&component);
        broken.truncate(12);
        assert!(matches!(
            decompress(broken, "x"),
            Err(SourceError::Gzip { .. })
        ));
    }

    #[test]
    fn the_size_cap_allows_exactly_the_limit() {
        assert!(check_size(MAX_MODULE_BYTES, "x").is_ok());
        let err = check_size(MAX_MODULE_BYTES + 1, "file /x.wasm").unwrap_err();
        assert!(err.to_string().starts_with("file /x.wasm is larger than"));
    }
}
