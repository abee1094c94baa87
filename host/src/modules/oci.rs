//! Pulling a component from an OCI registry: an `oci` source.
//!
//! The component is a Wasm artifact (the CNCF TAG Runtime layout, what
//! `wkg oci push` and `oras push` write): an OCI image manifest whose config
//! has mediaType [`WASM_CONFIG_MEDIA_TYPE`] and whose one layer, of mediaType
//! [`WASM_LAYER_MEDIA_TYPE`], is the component. The manifest is pulled by the
//! digest the spec pins and checked against it; the layer is checked against
//! the digest the manifest names, its size against [`MAX_MODULE_BYTES`]
//! before and while it is read. So the registry need not be trusted, and a tag
//! moved to another version changes nothing until the spec's digest does.
//!
//! The client is oci-client on the host's one reqwest (rustls with ring).
//! HTTPS always, except for a registry on a loopback address, which is spoken
//! to over plain HTTP. Credentials come from a `kubernetes.io/dockerconfigjson`
//! Secret's `auths` entry for the registry (basic authentication, or the
//! token service the registry names).
//!
//! As in [`super::source`], the errors (which end up in a ReconcilerModule's
//! status) say at most the class of what the registry answered — refused,
//! not found, a 4xx or 5xx error — never its words or digests; those go to
//! the host's log.
//!
//! The manifest is refused unparsed when it is over [`MAX_MANIFEST_BYTES`].
//! oci-client 0.18 reads a manifest (and an error body) whole before
//! returning it and offers no limit, so that check comes after the read:
//! what bounds the read itself is [`URL_TIMEOUT`] on the whole pull.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use tokio::io::AsyncWrite;

use super::artifact::{
    self, MAX_MANIFEST_BYTES, MAX_MODULE_BYTES, SourceError, URL_TIMEOUT, WASM_CONFIG_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE,
};
use super::resource::{OciSource, SecretRef};

/// The type of Secret a pull secret must be.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";

/// The key of a pull secret holding the Docker config JSON.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";

/// The field pinning an `oci` source, for [`SourceError::Digest`].
const DIGEST_FIELD: &str = "spec.source.oci.digest";

/// Pulls the component `source` names, within [`URL_TIMEOUT`].
///
/// `client` reads the pull secret, if the source names one.
pub(crate) async fn pull(
    client: &Client,
    source: &OciSource,
    description: &str,
) -> Result<Vec<u8>, SourceError> {
    let reference = source.parse_reference()?;
    let auth = match &source.pull_secret {
        Some(secret) => credentials(client, secret, reference.registry()).await?,
        None => RegistryAuth::Anonymous,
    };
    let puller = Puller {
        reference: &reference,
        digest: &source.digest,
        with_credentials: !matches!(auth, RegistryAuth::Anonymous),
        auth,
        description,
    };
    tokio::time::timeout(URL_TIMEOUT, puller.pull())
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(source = description, "module pull timed out");
            Err(SourceError::Timeout {
                url: description.to_owned(),
                timeout: URL_TIMEOUT,
            })
        })
}

/// One pull: what it pulls and how it reports failures.
struct Puller<'a> {
    /// The spec's `ref`, parsed (no digest).
    reference: &'a Reference,
    /// The pinned manifest digest, `sha256:<hex>`.
    digest: &'a str,
    auth: RegistryAuth,
    with_credentials: bool,
    description: &'a str,
}

impl Puller<'_> {
    async fn pull(&self) -> Result<Vec<u8>, SourceError> {
        let registry = self.reference.resolve_registry();
        let client = client_for(registry).map_err(|e| self.failed(e))?;
        let pinned = Reference::with_digest(
            self.reference.registry().to_owned(),
            self.reference.repository().to_owned(),
            self.digest.to_owned(),
        );

        let manifest = match client
            .pull_manifest_raw(&pinned, &self.auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
        {
            Ok((manifest, _)) => manifest,
            Err(e) if not_found(&e) => return Err(self.not_found(&client, e).await),
            Err(e) => return Err(self.failed(e)),
        };
        if manifest.len() > MAX_MANIFEST_BYTES {
            tracing::warn!(
                source = self.description,
                size = manifest.len(),
                "manifest over the cap, not parsed"
            );
            return Err(SourceError::ManifestTooLarge {
                description: self.description.to_owned(),
                limit: MAX_MANIFEST_BYTES,
            });
        }
        // oci-client checks this too; the pin is the point of the source.
        let actual = format!("sha256:{}", artifact::digest(&manifest));
        if actual != self.digest {
            return Err(self.mismatch(actual));
        }
        let layer = self.wasm_layer(&manifest)?;

        let mut out = Capped::default();
        if let Err(e) = client.pull_blob(&pinned, &layer, &mut out).await {
            if out.exceeded {
                return Err(self.too_large());
            }
            return Err(self.failed(e));
        }
        let actual = format!("sha256:{}", artifact::digest(&out.bytes));
        if actual != layer.digest {
            return Err(self.mismatch(actual));
        }
        Ok(out.bytes)
    }

    /// The manifest's one `application/wasm` layer, no larger than the cap.
    fn wasm_layer(
        &self,
        manifest: &[u8],
    ) -> Result<oci_client::manifest::OciDescriptor, SourceError> {
        let not_wasm = || SourceError::NotWasmArtifact {
            description: self.description.to_owned(),
        };
        let manifest: OciImageManifest = serde_json::from_slice(manifest).map_err(|e| {
            tracing::warn!(source = self.description, error = %e, "not an OCI image manifest");
            not_wasm()
        })?;
        let [layer] = <[_; 1]>::try_from(manifest.layers).map_err(|_| not_wasm())?;
        if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE
            || layer.media_type != WASM_LAYER_MEDIA_TYPE
            || !layer.digest.starts_with("sha256:")
        {
            return Err(not_wasm());
        }
        if u64::try_from(layer.size).is_ok_and(|size| size > MAX_MODULE_BYTES) {
            return Err(self.too_large());
        }
        Ok(layer)
    }

    /// The pinned manifest is not there. When the reference's tag names
    /// another one, the pin is what is wrong: a digest mismatch; otherwise
    /// the repository or the manifest is missing.
    async fn not_found(&self, client: &oci_client::Client, e: OciDistributionError) -> SourceError {
        tracing::warn!(source = self.description, error = %e, "pinned manifest not found");
        if let Some(tag) = self.reference.tag() {
            let tagged = Reference::with_tag(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                tag.to_owned(),
            );
            if let Ok(actual) = client.fetch_manifest_digest(&tagged, &self.auth).await
                && actual != self.digest
            {
                return self.mismatch(actual);
            }
        }
        SourceError::RegistryNotFound {
            description: self.description.to_owned(),
        }
    }

    fn mismatch(&self, actual: String) -> SourceError {
        tracing::warn!(source = self.description, %actual, "module digest mismatch, bytes dropped");
        SourceError::Digest {
            description: self.description.to_owned(),
            field: DIGEST_FIELD,
            expected: self.digest.to_owned(),
            actual,
        }
    }

    fn too_large(&self) -> SourceError {
        SourceError::TooLarge {
            description: self.description.to_owned(),
            limit: MAX_MODULE_BYTES,
        }
    }

    /// What a failed request becomes: its class only; the client's words
    /// (with whatever the registry said) go to the host's log.
    fn failed(&self, e: OciDistributionError) -> SourceError {
        tracing::warn!(source = self.description, error = %e, "module pull failed");
        let description = self.description.to_owned();
        let denied = || SourceError::RegistryDenied {
            description: self.description.to_owned(),
            registry: self.reference.registry().to_owned(),
            with_credentials: self.with_credentials,
        };
        let answer = |answer| SourceError::Registry {
            description: self.description.to_owned(),
            answer,
        };
        match e {
            OciDistributionError::DigestError(DigestError::VerificationError {
                actual, ..
            }) => self.mismatch(actual),
            OciDistributionError::RequestError(e) if e.is_timeout() => SourceError::Timeout {
                url: description,
                timeout: URL_TIMEOUT,
            },
            OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
                SourceError::RegistryUnreachable { description }
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => denied(),
            OciDistributionError::RegistryError { envelope, .. } => {
                if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    denied()
                } else {
                    answer("a 4xx error")
                }
            }
            OciDistributionError::ServerError { code, .. } => match code {
                401 | 403 => denied(),
                400..=499 => answer("a 4xx error"),
                500..=599 => answer("a 5xx error"),
                _ => answer("an unexpected status"),
            },
            _ => answer("something that is not a registry's answer"),
        }
    }
}

/// Whether the registry answered "no such repository or manifest".
fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

/// An OCI client for `registry`: HTTPS with the system's roots, plain HTTP
/// only for a registry on a loopback address.
pub(crate) fn client_for(
    registry: &str,
) -> Result<oci_client::Client, oci_client::errors::OciDistributionError> {
    let protocol = if is_loopback(registry) {
        ClientProtocol::HttpsExcept(vec![registry.to_owned()])
    } else {
        ClientProtocol::Https
    };
    artifact::install_tls_provider();
    oci_client::Client::try_from(ClientConfig {
        protocol,
        ..ClientConfig::default()
    })
}

/// Whether `registry` (`host[:port]`) is a loopback address or `localhost`,
/// the only registries spoken to over plain HTTP.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The credentials the pull secret holds for `registry`.
async fn credentials(
    client: &Client,
    secret: &SecretRef,
    registry: &str,
) -> Result<RegistryAuth, SourceError> {
    let problem = |problem: String| SourceError::PullSecret {
        namespace: secret.namespace.clone(),
        name: secret.name.clone(),
        problem,
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
    let found = api
        .get_opt(&secret.name)
        .await
        .map_err(|e| {
            problem(format!(
                "could not be read ({e}): check the host's RBAC allows getting secrets there"
            ))
        })?
        .ok_or_else(|| {
            problem(format!(
                "was not found: create it (kubectl create secret docker-registry {} -n {} --docker-server={registry} --docker-username=… --docker-password=…)",
                secret.name, secret.namespace
            ))
        })?;
    if found.type_.as_deref() != Some(DOCKER_CONFIG_JSON_TYPE) {
        return Err(problem(format!("is not of type {DOCKER_CONFIG_JSON_TYPE}")));
    }
    let config = found
        .data
        .as_ref()
        .and_then(|data| data.get(DOCKER_CONFIG_JSON_KEY))
        .ok_or_else(|| problem(format!("has no key {DOCKER_CONFIG_JSON_KEY}")))?;
    auth_for(&config.0, registry).map_err(problem)
}

/// A Docker config's `auths`. No `Debug`: it holds passwords.
#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

/// One `auths` entry: `username` and `password`, or `auth`, the base64 of
/// `username:password`.
#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

/// The credentials a Docker config JSON holds for `registry`, or what is
/// wrong with it (never its contents).
pub(crate) fn auth_for(config: &[u8], registry: &str) -> Result<RegistryAuth, String> {
    let config: DockerConfig = serde_json::from_slice(config)
        .map_err(|_| format!("has no Docker config JSON with auths in {DOCKER_CONFIG_JSON_KEY}"))?;
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| same_registry(key, registry))
        .map(|(_, entry)| entry)
        .ok_or_else(|| format!("has no entry for {registry} in its auths"))?;
    if !entry.username.is_empty() && !entry.password.is_empty() {
        return Ok(RegistryAuth::Basic(
            entry.username.clone(),
            entry.password.clone(),
        ));
    }
    let malformed =
        || format!("has an entry for {registry} without username and password or a valid auth");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    match decoded.split_once(':') {
        Some((username, password)) if !username.is_empty() => Ok(RegistryAuth::Basic(
            username.to_owned(),
            password.to_owned(),
        )),
        _ => Err(malformed()),
    }
}

/// Whether an `auths` key (`registry.example.com`, `https://host:5000/v1/`)
/// names `registry`; Docker Hub's several names are one.
fn same_registry(key: &str, registry: &str) -> bool {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or_default();
    let docker_hub = |host: &str| {
        ["docker.io", "index.docker.io", "registry-1.docker.io"]
            .iter()
            .any(|hub| host.eq_ignore_ascii_case(hub))
    };
    host.eq_ignore_ascii_case(registry) || (docker_hub(host) && docker_hub(registry))
}

/// A sink for the layer that refuses to grow past [`MAX_MODULE_BYTES`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if (self.bytes.len() + buf.len()) as u64 > MAX_MODULE_BYTES {
            self.exceeded = true;
            return Poll::Ready(Err(io::Error::other("the layer is larger than the cap")));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_plain_http() {
        for registry in [
            "127.0.0.1:5000",
            "127.0.0.2",
            "localhost:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback(registry), "{registry}");
        }
        for registry in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(registry), "{registry}");
        }
    }

    #[test]
    fn credentials_come_from_the_registrys_auths_entry() {
        let basic = |auth: Result<RegistryAuth, String>| match auth {
            Ok(RegistryAuth::Basic(user, password)) => (user, password),
            other => panic!("expected basic credentials, got {:?}", other.map(|_| ())),
        };
        let config = serde_json::json!({"auths": {
            "https://registry.example.com/v1/": {"username": "u", "password": "p"},
            "127.0.0.1:5000": {"auth": base64::engine::general_purpose::STANDARD.encode("bob:s:cret")},
            "https://index.docker.io/v1/": {"auth": "bm90IGJhc2U2NA"},
        }})
        .to_string();
        assert_eq!(
            basic(auth_for(config.as_bytes(), "registry.example.com")),
            ("u".to_owned(), "p".to_owned())
        );
        assert_eq!(
            basic(auth_for(config.as_bytes(), "127.0.0.1:5000")),
            ("bob".to_owned(), "s:cret".to_owned())
        );
        let err = auth_for(config.as_bytes(), "docker.io")
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("without username and password"), "{err}");
        let err = auth_for(config.as_bytes(), "ghcr.io")
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err, "has no entry for ghcr.io in its auths");
        let err = auth_for(b"{not json", "ghcr.io").map(|_| ()).unwrap_err();
        assert!(err.contains("no Docker config JSON"), "{err}");
    }
}
