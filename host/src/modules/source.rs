//! Fetching a module's bytes from its [`ModuleSource`].
//!
//! Every source is read whole into memory (the engine compiles from a byte
//! slice) and capped at [`MAX_MODULE_BYTES`], so a wrong URL or file cannot
//! exhaust the host's memory. A `url` source must name the sha256 of its
//! bytes, and bytes that do not match are never returned: the URL does not
//! have to be trusted, and a module cannot change under the host unnoticed.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::resource::{ConfigMapSource, ModuleSource, SpecError, UrlSource};

/// The largest component any source may deliver: 64 MiB.
///
/// Real reconcilers are a few MiB at most; the cap is there so that a URL
/// serving something else (or an endless stream) fails fast instead of
/// filling the host's memory.
pub const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// How long a `url` download may take, from connecting to the last byte.
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
    #[error("GET {url}: {source}")]
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

    /// The server answered with a status other than 200 OK.
    #[error("GET {url} answered HTTP {status}, not 200: check the URL")]
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

    /// The downloaded bytes are not the ones the spec names; they are dropped.
    #[error(
        "downloaded bytes have sha256 {actual}, but spec.source.url.sha256 is {expected}: if the module was rebuilt on purpose, update sha256"
    )]
    Digest {
        /// The sha256 the spec names (lowercase).
        expected: String,
        /// The sha256 of what was downloaded.
        actual: String,
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
/// `client` is used only for `configMap` sources; the host needs `get` on
/// ConfigMaps in that namespace. A `url` source is downloaded with a
/// [`URL_TIMEOUT`] timeout and must be answered with 200 OK and bytes whose
/// sha256 is the spec's. Every source is capped at [`MAX_MODULE_BYTES`].
#[tracing::instrument(level = "debug", skip_all, fields(source = %source))]
pub async fn fetch(client: &Client, source: &ModuleSource) -> Result<Fetched, SourceError> {
    source.validate()?;
    let description = source.to_string();
    let bytes = match source {
        ModuleSource::ConfigMap(cm) => from_config_map(client, cm, &description).await?,
        ModuleSource::Url(u) => from_url(u, &description).await?,
        ModuleSource::File(f) => from_file(&f.path, &description).await?,
    };
    let sha256 = digest(&bytes);
    if let ModuleSource::Url(u) = source {
        let expected = u.sha256.to_ascii_lowercase();
        if sha256 != expected {
            tracing::warn!(%expected, actual = %sha256, "module digest mismatch, bytes dropped");
            return Err(SourceError::Digest {
                expected,
                actual: sha256,
            });
        }
    }
    tracing::debug!(bytes = bytes.len(), %sha256, "module fetched");
    Ok(Fetched {
        bytes,
        sha256,
        description,
    })
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
            SourceError::Http {
                url: url.clone(),
                source: e,
            }
        }
    };
    // A client per fetch: modules are fetched rarely (when a spec changes),
    // and this keeps no connection or global state between them.
    let client = reqwest::Client::builder()
        .timeout(URL_TIMEOUT)
        .build()
        .map_err(http)?;
    let mut response = client.get(url).send().await.map_err(http)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
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

fn check_size(len: u64, description: &str) -> Result<(), SourceError> {
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
    fn the_size_cap_allows_exactly_the_limit() {
        assert!(check_size(MAX_MODULE_BYTES, "x").is_ok());
        let err = check_size(MAX_MODULE_BYTES + 1, "file /x.wasm").unwrap_err();
        assert!(err.to_string().starts_with("file /x.wasm is larger than"));
    }
}
