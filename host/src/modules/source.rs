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

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use tokio::io::AsyncReadExt as _;

pub(crate) use super::artifact::decompress;
pub use super::artifact::{MAX_MODULE_BYTES, SourceError, URL_TIMEOUT, digest};
use super::artifact::{check_size, install_tls_provider};
use super::oci;
use super::resource::{ConfigMapSource, ModuleSource, UrlSource};

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
