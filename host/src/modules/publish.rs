//! Publishing a component where a `ReconcilerModule` can fetch it, and
//! pointing the resource at it: what `bosun push` does.
//!
//! Two destinations, the two sources an author can write to:
//!
//! - a ConfigMap's `binaryData`, plain, or gzip-compressed when only that
//!   makes it fit the API server's 1 MiB limit ([`for_config_map`]); a
//!   component too large either way is refused here, before anything is
//!   written, with a pointer to a registry;
//! - an OCI registry, as a Wasm artifact (config
//!   [`WASM_CONFIG_MEDIA_TYPE`], one [`WASM_LAYER_MEDIA_TYPE`] layer), the
//!   layout [`super::oci`] pulls. The manifest is serialised here, so its
//!   digest — what the resource pins — is known before anything is sent.
//!
//! Both are idempotent: bytes already there are not written again
//! ([`Written::Unchanged`]), so re-pushing the same component writes
//! nothing. The resource is written by server-side apply under the field
//! manager [`FIELD_MANAGER`], with the digest of what was published pinned
//! (`configMap.sha256`, `oci.digest`): a later edit of the ConfigMap or a
//! moved tag changes nothing that runs.

use std::io::Write as _;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use serde_json::json;

use super::artifact::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use super::oci::client_for;
use super::resource::{ModuleSource, ReconcilerModule};
use super::source;

/// The most a ConfigMap may hold: the API server refuses one whose data
/// and binaryData values together exceed 1 MiB.
pub const CONFIG_MAP_LIMIT: usize = 1024 * 1024;

/// The field manager of everything `bosun push` writes.
pub const FIELD_MANAGER: &str = "bosun-push";

/// Why a component could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Over the ConfigMap limit, even gzip-compressed.
    #[error(
        "the component is {size} bytes, {compressed} gzip-compressed: a ConfigMap holds at most {CONFIG_MAP_LIMIT} bytes; push it to a registry instead (--to oci://REGISTRY/REPOSITORY:TAG)"
    )]
    TooLargeForConfigMap {
        /// The component's size.
        size: usize,
        /// Its size gzip-compressed.
        compressed: usize,
    },
    /// Reading or writing an object failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// What the API server (or the connection) said.
        source: kube::Error,
    },
    /// `--to oci://…` does not name a registry, repository and tag.
    #[error("{reference:?} is not an image reference (oci://REGISTRY/REPOSITORY:TAG): {reason}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The registry refused or did not answer.
    #[error("pushing to {reference}: {source}")]
    Registry {
        /// Where to.
        reference: String,
        /// What the client said.
        source: oci_client::errors::OciDistributionError,
    },
}

/// A component as a ConfigMap stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The bytes to store: the component, or its gzip.
    pub bytes: Vec<u8>,
    /// Whether [`bytes`](Self::bytes) are gzip-compressed.
    pub compressed: bool,
}

/// `component` as a ConfigMap can hold it: as it is when it fits, else
/// gzip-compressed (`gzip -9`, no timestamp, so the same component gives
/// the same bytes and digest every time) when that fits.
///
/// # Errors
///
/// [`PublishError::TooLargeForConfigMap`] when even compressed it is over
/// [`CONFIG_MAP_LIMIT`].
pub fn for_config_map(component: &[u8]) -> Result<Stored, PublishError> {
    if component.len() <= CONFIG_MAP_LIMIT {
        return Ok(Stored {
            bytes: component.to_vec(),
            compressed: false,
        });
    }
    let compressed = gzip(component);
    if compressed.len() <= CONFIG_MAP_LIMIT {
        return Ok(Stored {
            bytes: compressed,
            compressed: true,
        });
    }
    Err(PublishError::TooLargeForConfigMap {
        size: component.len(),
        compressed: compressed.len(),
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    // GzEncoder writes mtime 0 and no file name: the output depends on the
    // input alone.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether a publish or an apply wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// What is there is what would be written: nothing was.
    Unchanged,
    /// Written.
    Written,
}

/// Stores `bytes` in `binaryData[key]` of the ConfigMap `namespace/name`
/// (created if missing, other keys left alone), unless they are there
/// already.
///
/// # Errors
///
/// When the ConfigMap cannot be read or applied.
pub async fn put_config_map(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    bytes: &[u8],
) -> Result<Written, PublishError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let what = |verb: &str| format!("{verb} ConfigMap {namespace}/{name}");
    let existing = api
        .get_opt(name)
        .await
        .map_err(|source| PublishError::Kube {
            what: what("reading"),
            source,
        })?;
    let current = existing
        .as_ref()
        .and_then(|cm| cm.binary_data.as_ref())
        .and_then(|data| data.get(key));
    if current.is_some_and(|stored| stored.0 == bytes) {
        return Ok(Written::Unchanged);
    }
    let body = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    FIELD_MANAGER.to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        binary_data: Some([(key.to_owned(), ByteString(bytes.to_vec()))].into()),
        ..Default::default()
    };
    api.patch(
        name,
        // Forced: whoever created the key before (kubectl create configmap)
        // meant this module, which is being replaced.
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| PublishError::Kube {
        what: what("writing"),
        source,
    })?;
    Ok(Written::Written)
}

/// An `oci://REGISTRY/REPOSITORY:TAG` destination, parsed.
#[derive(Debug, Clone)]
pub struct OciDestination {
    /// The reference as the resource's `spec.source.oci.ref` names it
    /// (without `oci://`).
    pub reference: Reference,
}

impl OciDestination {
    /// Parses `oci://REGISTRY/REPOSITORY:TAG` (the scheme is optional; the
    /// tag defaults to `latest`, a digest is refused: a push makes one).
    ///
    /// # Errors
    ///
    /// [`PublishError::Reference`] for anything else.
    pub fn parse(text: &str) -> Result<OciDestination, PublishError> {
        let bare = text.strip_prefix("oci://").unwrap_or(text);
        let bad = |reason: &str| PublishError::Reference {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        if !bare.contains('/') {
            return Err(bad("name the registry and the repository"));
        }
        let reference: Reference = bare.parse().map_err(|e| bad(&format!("{e}")))?;
        if reference.digest().is_some() {
            return Err(bad("give a tag, not a digest: the push makes the digest"));
        }
        Ok(OciDestination { reference })
    }

    /// `registry/repository:tag`, what `spec.source.oci.ref` holds.
    pub fn reference_text(&self) -> String {
        format!(
            "{}/{}:{}",
            self.reference.registry(),
            self.reference.repository(),
            self.reference.tag().unwrap_or("latest")
        )
    }
}

/// The Wasm artifact for `component`: its layer, config and manifest, and
/// the manifest's bytes and digest.
struct Artifact {
    layer: ImageLayer,
    config: Config,
    manifest: Vec<u8>,
    digest: String,
}

impl Artifact {
    fn of(component: &[u8]) -> Artifact {
        let layer = ImageLayer::new(component.to_vec(), WASM_LAYER_MEDIA_TYPE.to_owned(), None);
        // What wkg writes, without the creation time: the same component
        // makes the same artifact, so a re-push is recognised.
        let config = Config::new(
            json!({
                "architecture": "wasm",
                "os": "wasip2",
                "layerDigests": [layer.sha256_digest()],
            })
            .to_string()
            .into_bytes(),
            WASM_CONFIG_MEDIA_TYPE.to_owned(),
            None,
        );
        let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        // Serialising a struct of strings and numbers cannot fail.
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        let digest = format!("sha256:{}", source::digest(&manifest));
        Artifact {
            layer,
            config,
            manifest,
            digest,
        }
    }
}

/// Pushes `component` to `destination` as a Wasm artifact and returns the
/// manifest digest, unless the tag names that very artifact already.
///
/// A registry on a loopback address is spoken to over plain HTTP, any
/// other over HTTPS, as the host pulls.
///
/// # Errors
///
/// When the registry refuses or does not answer.
pub async fn push_oci(
    destination: &OciDestination,
    component: &[u8],
    auth: &RegistryAuth,
) -> Result<(String, Written), PublishError> {
    let reference = &destination.reference;
    let failed = |source| PublishError::Registry {
        reference: destination.reference_text(),
        source,
    };
    let registry = reference.resolve_registry();
    let client = client_for(registry).map_err(failed)?;
    client.store_auth_if_needed(registry, auth).await;
    let artifact = Artifact::of(component);
    if client
        .fetch_manifest_digest(reference, auth)
        .await
        .is_ok_and(|tagged| tagged == artifact.digest)
    {
        return Ok((artifact.digest, Written::Unchanged));
    }
    client
        .push_blob(
            reference,
            artifact.layer.data.clone(),
            &artifact.layer.sha256_digest(),
        )
        .await
        .map_err(failed)?;
    let config_digest = format!("sha256:{}", source::digest(&artifact.config.data));
    client
        .push_blob(reference, artifact.config.data.clone(), &config_digest)
        .await
        .map_err(failed)?;
    client
        .push_manifest_raw(
            reference,
            artifact.manifest.clone(),
            http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .map_err(failed)?;
    Ok((artifact.digest, Written::Written))
}

/// What `bosun push` sets in a ReconcilerModule's spec; every other field
/// is left to whoever set it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSpec {
    /// Where the component is, its digest pinned.
    pub source: ModuleSource,
    /// What the module may do.
    pub permissions: crate::grants::Permissions,
    /// Its settings, if any.
    pub settings: Option<serde_json::Value>,
    /// The class of host that runs it.
    pub host_class: String,
}

/// The pinned digest a source names (`sha256:…` or hex), for printing.
pub fn pinned_digest(source: &ModuleSource) -> Option<String> {
    match source {
        ModuleSource::ConfigMap(cm) => cm.sha256.as_ref().map(|hex| format!("sha256:{hex}")),
        ModuleSource::Url(url) => Some(format!("sha256:{}", url.sha256)),
        ModuleSource::Oci(oci) => Some(oci.digest.clone()),
        ModuleSource::File(_) => None,
    }
}

/// Reads the ReconcilerModule `name`, if there is one.
///
/// # Errors
///
/// When it cannot be read.
pub async fn current(
    client: &Client,
    name: &str,
) -> Result<Option<ReconcilerModule>, PublishError> {
    Api::<ReconcilerModule>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(|source| PublishError::Kube {
            what: format!("reading ReconcilerModule {name}"),
            source,
        })
}

/// Applies `spec` to the ReconcilerModule `name` (creating it if missing),
/// unless `current` says so already; returns the generation to wait for.
///
/// # Errors
///
/// When the apply fails (the API server's words say why: a schema
/// violation, missing rights).
pub async fn apply_module(
    client: &Client,
    name: &str,
    spec: &ModuleSpec,
    current: Option<&ReconcilerModule>,
) -> Result<(i64, Written), PublishError> {
    if let Some(current) = current
        && current.spec.source == spec.source
        && current.spec.permissions == spec.permissions
        && current.spec.settings == spec.settings
        && current.spec.host_class == spec.host_class
    {
        return Ok((current.metadata.generation.unwrap_or(0), Written::Unchanged));
    }
    let mut body = json!({
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "ReconcilerModule",
        "metadata": {"name": name},
        "spec": {"source": spec.source, "permissions": spec.permissions, "hostClass": spec.host_class},
    });
    if let Some(settings) = &spec.settings {
        body["spec"]["settings"] = settings.clone();
    }
    let applied = Api::<ReconcilerModule>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| PublishError::Kube {
            what: format!("applying ReconcilerModule {name}"),
            source,
        })?;
    Ok((applied.metadata.generation.unwrap_or(0), Written::Written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_compressed_only_when_that_makes_it_fit() {
        let small = b"\0asm small".to_vec();
        assert_eq!(
            for_config_map(&small).unwrap(),
            Stored {
                bytes: small.clone(),
                compressed: false
            }
        );
        // Compressible and over the limit: gzip, the same bytes each time.
        let large = vec![7u8; CONFIG_MAP_LIMIT + 1];
        let stored = for_config_map(&large).unwrap();
        assert!(stored.compressed);
        assert_eq!(stored.bytes, for_config_map(&large).unwrap().bytes);
        assert_eq!(
            source::decompress(stored.bytes, "test").unwrap(),
            large,
            "what the host reads back"
        );
        // Incompressible: refused, pointing to a registry.
        let mut noise = vec![0u8; CONFIG_MAP_LIMIT + 1];
        getrandom::fill(&mut noise).unwrap();
        let error = for_config_map(&noise).unwrap_err().to_string();
        assert!(error.contains("--to oci://"), "{error}");
        assert!(error.contains(&format!("{} bytes", noise.len())), "{error}");
    }

    #[test]
    fn destinations_name_a_registry_a_repository_and_a_tag() {
        let parsed = OciDestination::parse("oci://127.0.0.1:5000/team/greeter:1.0").unwrap();
        assert_eq!(parsed.reference_text(), "127.0.0.1:5000/team/greeter:1.0");
        assert_eq!(
            OciDestination::parse("oci://127.0.0.1:5000/greeter")
                .unwrap()
                .reference_text(),
            "127.0.0.1:5000/greeter:latest"
        );
        for bad in [
            "oci://greeter",
            "oci://127.0.0.1:5000/greeter@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(OciDestination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_same_component_makes_the_same_artifact() {
        let a = Artifact::of(b"\0asm one");
        assert_eq!(a.digest, Artifact::of(b"\0asm one").digest);
        assert_ne!(a.digest, Artifact::of(b"\0asm two").digest);
        assert_eq!(a.digest, format!("sha256:{}", source::digest(&a.manifest)));
    }
}
