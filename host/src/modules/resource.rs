//! The `ReconcilerModule` custom resource: which component to run, where its
//! bytes come from, and how the host runs it.
//!
//! The resource is cluster-scoped because a module is host-wide: one module
//! may reconcile objects in many namespaces ([`ReconcilerModuleSpec::namespaces`]).
//! The CRD shipped in `deploy/base/reconcilermodule-crd.yaml` and the Helm
//! chart's `crds/` is generated from these types; a unit test fails when
//! either is stale (`BOSUN_UPDATE_CRDS=1 cargo test -p bosun --lib crd`
//! rewrites both).

use std::fmt;
use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::grants::Permissions;

mod rollout;

pub use rollout::{
    CanaryError, CanarySpec, CanaryStatus, FailureCount, RolloutExample, RolloutMode, RolloutSpec,
    RolloutStatus, VersionCounts,
};

/// Condition type: the component was fetched, compiled and checked against the
/// WIT world.
pub const CONDITION_LOADED: &str = "Loaded";

/// Condition type: the module is running and its controller is reconciling.
pub const CONDITION_READY: &str = "Ready";

/// What a ReconcilerModule asks for: the component and how to run it.
///
/// The host fetches the component from `source`, loads it, and runs one
/// controller for it; changing the spec swaps the module in place.
// Clippy reads repeated `type_ = ..` / `priority = ..` inside the separate
// `printcolumn(..)` groups as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "bosun.dev",
    version = "v1alpha1",
    kind = "ReconcilerModule",
    doc = "A reconciler module (a WebAssembly component) the bosun host runs.",
    plural = "reconcilermodules",
    shortname = "rm",
    category = "bosun",
    status = "ReconcilerModuleStatus",
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.version",
        description = "The version the loaded module declares"
    ),
    printcolumn(
        name = "Loaded",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Loaded\")].status",
        description = "Whether the component was fetched and loaded"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the module is reconciling"
    ),
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.hostClass",
        description = "The class of bosun host that runs the module",
        priority = "1"
    ),
    printcolumn(
        name = "Paused",
        type_ = "boolean",
        json_path = ".spec.paused",
        description = "Whether reconciling is paused",
        priority = "1"
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.digest",
        description = "sha256 of the loaded component",
        priority = "1"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        description = "Why the module is not ready, if it is not",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerModuleSpec {
    /// Where the component's bytes come from: exactly one of `configMap`, `url`,
    /// `oci` or `file`.
    pub source: ModuleSource,

    /// What the module may do: the kinds it may reconcile, own and read,
    /// its finalizer, cluster scope, namespaces and output limits. A module
    /// that declares more than this does not load (`Loaded=False`, reason
    /// `PermissionDenied`, naming what is missing); `bosun inspect` prints
    /// the block a module needs.
    #[serde(default)]
    pub permissions: Permissions,

    /// Settings handed to the module as JSON; their shape is the module's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub settings: Option<serde_json::Value>,

    /// How many objects the module reconciles at once (the host's default if unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,

    /// How long one reconcile may run, in milliseconds, before it is cut off
    /// (the host's default if unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,

    /// The most linear memory one instance may grow to, in MiB (the host's
    /// default if unset).
    #[serde(
        default,
        rename = "memoryLimitMiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub memory_limit_mib: Option<u32>,

    /// Stops reconciling (the module stays loaded) while true.
    #[serde(default)]
    pub paused: bool,

    /// The class of bosun host that runs this module (`bosun run
    /// --host-class`); hosts of other classes leave it alone. A class no
    /// running host serves is reported in the status (`NoHostForClass`).
    #[serde(default = "default_host_class")]
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub host_class: String,

    /// A candidate version staged beside the running one (see
    /// `bosun rollout`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

fn default_host_class() -> String {
    super::class::DEFAULT.to_owned()
}

/// Where a component's bytes come from.
///
/// An enum rather than three optional fields so that "exactly one" holds by
/// construction; in the CRD it becomes a `oneOf`, so the API server rejects a
/// spec with none or several.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ModuleSource {
    /// A component stored in a ConfigMap's `binaryData`.
    ConfigMap(ConfigMapSource),
    /// A component downloaded over HTTP(S) and checked against a sha256.
    Url(UrlSource),
    /// A component pulled from an OCI registry by its manifest digest.
    Oci(OciSource),
    /// A component read from the host's file system (for local use).
    File(FileSource),
}

/// A component in `binaryData[key]` of a ConfigMap.
///
/// `kubectl create configmap NAME --from-file=KEY=module.wasm` puts a binary
/// file there. ConfigMaps hold at most 1 MiB: a component may be stored
/// gzip-compressed (`gzip -9`; `bosun push` does it when that makes it fit),
/// and larger ones need a `url`. Pin the component with `sha256` (of the
/// bytes as stored): then whoever may edit the ConfigMap cannot change the
/// module that runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapSource {
    /// The ConfigMap's namespace.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// The ConfigMap's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The key under `binaryData` holding the component.
    #[schemars(length(min = 1))]
    pub key: String,
    /// The component's sha256, 64 hex digits: bytes that do not match are
    /// refused. Without it, any change to the ConfigMap swaps the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9a-fA-F]{64}$"))]
    pub sha256: Option<String>,
}

/// A component served over HTTP or HTTPS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct UrlSource {
    /// An `http://` or `https://` URL answering GET with the component.
    #[schemars(pattern(r"^https?://.+"))]
    pub url: String,
    /// The component's sha256, 64 hex digits (`sha256sum module.wasm`). A
    /// download that does not match is refused, so the URL need not be trusted.
    #[schemars(pattern(r"^[0-9a-fA-F]{64}$"))]
    pub sha256: String,
}

/// A component pushed to an OCI registry as a Wasm artifact: a manifest
/// whose config has mediaType `application/vnd.wasm.config.v0+json` and whose
/// one layer, of mediaType `application/wasm`, is the component (what
/// `wkg oci push` and `oras push` write).
///
/// It is pulled by `digest`, so a tag moved to another version does not change
/// the module that runs; the manifest and the layer are checked against their
/// digests. A registry on a loopback address (`127.0.0.1`, `[::1]`,
/// `localhost`) is spoken to over plain HTTP, any other over HTTPS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// The image reference, `registry.example.com/team/webapp:1.2`: the
    /// registry and repository to pull from. The tag tells people which version
    /// `digest` is; it is not what is pulled.
    #[serde(rename = "ref")]
    #[schemars(length(min = 1))]
    pub reference: String,
    /// The manifest's digest, `sha256:` and 64 lowercase hex digits (what
    /// `oras push` prints, or `crane digest REF`).
    #[schemars(pattern(r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
    /// A Secret of type `kubernetes.io/dockerconfigjson` whose `auths` entry
    /// for the registry holds the credentials to pull with; without it the
    /// pull is anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<SecretRef>,
}

/// A Secret, by namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// The Secret's namespace.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A component on the host's file system.
///
/// Meant for running the host locally: whoever may create ReconcilerModules
/// can make the host read any file it can read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct FileSource {
    /// The component's path; a relative path is relative to the host's
    /// working directory.
    #[schemars(length(min = 1))]
    pub path: PathBuf,
}

/// What the host last did with a module, written by the host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerModuleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Loaded` and `Ready`, one of each at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Vec<Condition>,

    /// The sha256 (hex) of the component that is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,

    /// The version the loaded module declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// The name the loaded module declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_name: Option<String>,

    /// When the loaded component was loaded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub loaded_at: Option<Time>,

    /// How long fetching and compiling the loaded component took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_time_ms: Option<u64>,

    /// Reconciles run since the component was loaded.
    #[serde(default)]
    pub reconciles: u64,

    /// Reconciles that returned an error since the component was loaded.
    #[serde(default)]
    pub errors: u64,

    /// Reconciles that trapped (panicked, ran out of fuel, time or memory)
    /// since the component was loaded.
    #[serde(default)]
    pub traps: u64,

    /// The module trapped too often and is no longer called until it changes.
    #[serde(default)]
    pub quarantined: bool,

    /// A human-readable account of the module's state, mostly why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The staged candidate and how it compares with the running version;
    /// null when none is staged (written as null so a merge patch clears it).
    #[serde(default)]
    pub rollout: Option<RolloutStatus>,
}

impl ReconcilerModuleStatus {
    /// The condition of type `type_` (`Loaded` or `Ready`), if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A spec that the host cannot act on.
///
/// The CRD's schema rejects most of these at admission; this check covers
/// specs that did not pass through the API server (files, tests) and says
/// which field to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// A required string field is empty.
    #[error("spec.{field} is empty: set it")]
    Empty {
        /// The field's path below `spec`.
        field: &'static str,
    },
    /// `source.url.url` is not an http(s) URL.
    #[error("spec.source.url.url is {url:?}: give an http:// or https:// URL")]
    UrlScheme {
        /// The URL as given.
        url: String,
    },
    /// A `sha256` is not 64 hex digits.
    #[error(
        "spec.{field} is {value:?}: give the component's sha256 as 64 hex digits (sha256sum module.wasm)"
    )]
    Sha256 {
        /// The field's path below `spec`.
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// `source.oci.ref` is not an image reference, or carries a digest.
    #[error(
        "spec.source.oci.ref is {value:?}: give an image reference like registry.example.com/team/webapp:1.2, without a digest (that goes in spec.source.oci.digest)"
    )]
    OciRef {
        /// The value as given.
        value: String,
    },
    /// `source.oci.digest` is not `sha256:` and 64 lowercase hex digits.
    #[error(
        "spec.source.oci.digest is {value:?}: give the manifest's digest as sha256: and 64 lowercase hex digits (oras push prints it; crane digest REF)"
    )]
    OciDigest {
        /// The value as given.
        value: String,
    },
    /// `hostClass` is not a host class.
    #[error("spec.hostClass: {0}")]
    HostClass(#[from] super::class::InvalidClass),
    /// A limit is zero, which would let the module do nothing.
    #[error("spec.{field} is 0: give at least 1, or leave it unset for the host's default")]
    Zero {
        /// The field's path below `spec`.
        field: &'static str,
    },
    /// `spec.rollout.canary` does not hold.
    #[error(transparent)]
    Canary(#[from] CanaryError),
    /// The permissions contradict themselves (see
    /// [`crate::grants::Permissions::validate`]).
    #[error("spec.{reason}")]
    Permissions {
        /// What is wrong, naming the field below `spec`.
        reason: String,
    },
}

impl ReconcilerModuleSpec {
    /// Checks what the schema checks, for specs that did not come through the
    /// API server. The source's "exactly one" holds by construction.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.source.validate()?;
        super::class::HostClass::new(&self.host_class)?;
        if let Some(rollout) = &self.rollout {
            // Its fields' names say `source.`: the candidate is a source.
            rollout.candidate.validate()?;
            rollout.canary_policy()?;
        }
        if self.permissions.namespaces.iter().any(String::is_empty) {
            return Err(SpecError::Empty {
                field: "permissions.namespaces[]",
            });
        }
        self.permissions
            .validate()
            .map_err(|reason| SpecError::Permissions { reason })?;
        let zero = [
            ("concurrency", self.concurrency.map(u64::from)),
            ("timeoutMs", self.timeout_ms),
            ("memoryLimitMiB", self.memory_limit_mib.map(u64::from)),
        ];
        if let Some((field, _)) = zero.into_iter().find(|(_, v)| *v == Some(0)) {
            return Err(SpecError::Zero { field });
        }
        Ok(())
    }
}

impl ModuleSource {
    /// Checks the source's fields (see [`ReconcilerModuleSpec::validate`]).
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            ModuleSource::ConfigMap(cm) => {
                for (field, value) in [
                    ("source.configMap.namespace", &cm.namespace),
                    ("source.configMap.name", &cm.name),
                    ("source.configMap.key", &cm.key),
                ] {
                    if value.is_empty() {
                        return Err(SpecError::Empty { field });
                    }
                }
                if let Some(sha256) = &cm.sha256 {
                    check_sha256("source.configMap.sha256", sha256)?;
                }
            }
            ModuleSource::Url(u) => {
                let rest = u
                    .url
                    .strip_prefix("https://")
                    .or_else(|| u.url.strip_prefix("http://"));
                if rest.is_none_or(str::is_empty) {
                    return Err(SpecError::UrlScheme { url: u.url.clone() });
                }
                check_sha256("source.url.sha256", &u.sha256)?;
            }
            ModuleSource::Oci(o) => {
                o.parse_reference()?;
                let hex = o.digest.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(SpecError::OciDigest {
                        value: o.digest.clone(),
                    });
                }
                if let Some(secret) = &o.pull_secret {
                    for (field, value) in [
                        ("source.oci.pullSecret.namespace", &secret.namespace),
                        ("source.oci.pullSecret.name", &secret.name),
                    ] {
                        if value.is_empty() {
                            return Err(SpecError::Empty { field });
                        }
                    }
                }
            }
            ModuleSource::File(f) => {
                if f.path.as_os_str().is_empty() {
                    return Err(SpecError::Empty {
                        field: "source.file.path",
                    });
                }
            }
        }
        Ok(())
    }
}

impl OciSource {
    /// `ref` parsed: a registry, a repository and at most a tag (a missing
    /// registry is Docker Hub's, a missing tag `latest`).
    pub fn parse_reference(&self) -> Result<oci_client::Reference, SpecError> {
        match self.reference.parse::<oci_client::Reference>() {
            Ok(reference) if reference.digest().is_none() => Ok(reference),
            _ => Err(SpecError::OciRef {
                value: self.reference.clone(),
            }),
        }
    }
}

fn check_sha256(field: &'static str, value: &str) -> Result<(), SpecError> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SpecError::Sha256 {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

impl ModuleSource {
    /// The pull secret an OCI source names, as (namespace, name).
    pub fn pull_secret(&self) -> Option<(&str, &str)> {
        match self {
            ModuleSource::Oci(oci) => oci
                .pull_secret
                .as_ref()
                .map(|secret| (secret.namespace.as_str(), secret.name.as_str())),
            _ => None,
        }
    }

    /// The sha256 the source pins its bytes to, if it does, and the field
    /// that pins it (`spec.source.url.sha256`).
    pub fn pinned_sha256(&self) -> Option<(&'static str, &str)> {
        match self {
            ModuleSource::ConfigMap(cm) => cm
                .sha256
                .as_deref()
                .map(|sha256| ("spec.source.configMap.sha256", sha256)),
            ModuleSource::Url(u) => Some(("spec.source.url.sha256", &u.sha256)),
            // Pinned by its manifest's digest, checked while pulling.
            ModuleSource::Oci(_) | ModuleSource::File(_) => None,
        }
    }
}

/// Where the bytes come from, for logs, events and errors:
/// `configmap bosun-system/modules[cnat.wasm]`, `https://…`,
/// `oci registry.example.com/team/webapp:1.2@sha256:…`, `file /x.wasm`.
impl fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleSource::ConfigMap(cm) => {
                write!(f, "configmap {}/{}[{}]", cm.namespace, cm.name, cm.key)
            }
            ModuleSource::Url(u) => f.write_str(&u.url),
            ModuleSource::Oci(o) => write!(f, "oci {}@{}", o.reference, o.digest),
            ModuleSource::File(file) => write!(f, "file {}", file.path.display()),
        }
    }
}

/// Any JSON value, kept as written: the module, not the CRD, defines it.
fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Settings handed to the module as JSON; their shape is the module's own.",
        "x-kubernetes-preserve-unknown-fields": true,
        "nullable": true,
    })
}

/// RFC 3339 time, as metav1.Time serialises.
fn date_time(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "When the loaded component was loaded (RFC 3339).",
        "type": "string",
        "format": "date-time",
        "nullable": true,
    })
}

/// The metav1.Condition list, as a map keyed by type so that server-side
/// apply merges conditions one by one instead of replacing the list.
fn conditions(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "`Loaded` and `Ready`, one of each at most.",
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "maxLength": 316},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string", "maxLength": 1024},
                "message": {"type": "string", "maxLength": 32768},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    /// The shipped CRDs (the kustomize base's and the Helm chart's) are
    /// what the types generate; `BOSUN_UPDATE_CRDS=1` rewrites them.
    #[test]
    fn crd_yaml_is_up_to_date() {
        for shipped in [
            "/../deploy/base/reconcilermodule-crd.yaml",
            "/../charts/bosun/crds/reconcilermodule-crd.yaml",
        ] {
            bosun_sdk::testing::assert_crd_up_to_date::<ReconcilerModule>(
                [env!("CARGO_MANIFEST_DIR"), shipped].concat(),
            );
        }
    }

    #[test]
    fn crd_is_cluster_scoped_with_status_and_short_name() {
        let crd = ReconcilerModule::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("reconcilermodules.bosun.dev")
        );
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["rm".to_owned()]));
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().unwrap().status.is_some());
    }

    #[test]
    fn spec_reads_the_documented_json() {
        let spec: ReconcilerModuleSpec = serde_json::from_value(json!({
            "source": {"url": {"url": "https://example.com/cnat.wasm", "sha256": "ab".repeat(32)}},
            "settings": {"replicas": 2},
            "permissions": {"reconciles": {"group": "cnat.programming-kubernetes.info", "kind": "At"}, "owns": [{"kind": "Pod"}], "namespaces": ["a"]},
            "concurrency": 4,
            "timeoutMs": 500,
            "memoryLimitMiB": 64,
        }))
        .expect("spec");
        assert!(!spec.paused);
        assert_eq!(spec.memory_limit_mib, Some(64));
        assert_eq!(spec.settings, Some(json!({"replicas": 2})));
        assert_eq!(spec.permissions.namespaces, ["a"]);
        assert_eq!(spec.permissions.owns[0].group, "");
        spec.validate().expect("valid");
        assert_eq!(spec.source.to_string(), "https://example.com/cnat.wasm");
    }

    #[test]
    fn a_source_with_two_kinds_does_not_parse() {
        let two = json!({
            "file": {"path": "/x.wasm"},
            "configMap": {"namespace": "a", "name": "b", "key": "c"},
        });
        assert!(serde_json::from_value::<ModuleSource>(two).is_err());
        assert!(serde_json::from_value::<ModuleSource>(json!({})).is_err());
    }

    #[test]
    fn validate_names_the_field_to_fix() {
        let spec = |source| ReconcilerModuleSpec {
            source,
            permissions: Permissions::default(),
            settings: None,
            concurrency: None,
            timeout_ms: None,
            memory_limit_mib: None,
            paused: false,
            host_class: "default".into(),
            rollout: None,
        };
        let url = |url: &str, sha256: &str| {
            ModuleSource::Url(UrlSource {
                url: url.into(),
                sha256: sha256.into(),
            })
        };
        let err = spec(url("ftp://x/m.wasm", &"0".repeat(64)))
            .validate()
            .unwrap_err();
        assert!(matches!(err, SpecError::UrlScheme { .. }), "{err}");
        let err = spec(url("https://x/m.wasm", "abc")).validate().unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
        let err = spec(ModuleSource::ConfigMap(ConfigMapSource {
            namespace: "ns".into(),
            name: "m".into(),
            key: String::new(),
            sha256: None,
        }))
        .validate()
        .unwrap_err();
        assert_eq!(
            err,
            SpecError::Empty {
                field: "source.configMap.key"
            }
        );
        let mut zero = spec(ModuleSource::File(FileSource {
            path: "/m.wasm".into(),
        }));
        zero.timeout_ms = Some(0);
        assert_eq!(zero.validate(), Err(SpecError::Zero { field: "timeoutMs" }));
    }

    #[test]
    fn an_oci_source_needs_a_reference_without_digest_and_a_sha256_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let oci = |reference: &str, digest: &str| {
            ModuleSource::Oci(OciSource {
                reference: reference.into(),
                digest: digest.into(),
                pull_secret: None,
            })
        };
        let source = oci("registry.example.com/team/webapp:1.2", &digest);
        source.validate().expect("valid");
        assert_eq!(
            source.to_string(),
            format!("oci registry.example.com/team/webapp:1.2@{digest}")
        );
        oci("127.0.0.1:5000/webapp", &digest)
            .validate()
            .expect("no tag");
        for reference in [
            "",
            "Registry.example.com/UPPER:1.2",
            "registry.example.com/team/webapp:1.2@sha256:0123",
            &format!("registry.example.com/team/webapp@{digest}"),
        ] {
            let err = oci(reference, &digest).validate().unwrap_err();
            assert!(
                matches!(err, SpecError::OciRef { .. }),
                "{reference}: {err}"
            );
        }
        for bad in [
            "ab".repeat(32),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha512:{}", "ab".repeat(64)),
            "sha256:abc".to_owned(),
        ] {
            let err = oci("registry.example.com/webapp:1", &bad)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("spec.source.oci.digest"), "{err}");
        }
        let source = ModuleSource::Oci(OciSource {
            reference: "registry.example.com/webapp:1".into(),
            digest,
            pull_secret: Some(SecretRef {
                namespace: "ns".into(),
                name: String::new(),
            }),
        });
        assert_eq!(
            source.validate(),
            Err(SpecError::Empty {
                field: "source.oci.pullSecret.name"
            })
        );
    }

    #[test]
    fn sources_describe_where_they_are() {
        let cm = ModuleSource::ConfigMap(ConfigMapSource {
            namespace: "bosun-system".into(),
            name: "modules".into(),
            key: "cnat.wasm".into(),
            sha256: None,
        });
        assert_eq!(cm.to_string(), "configmap bosun-system/modules[cnat.wasm]");
        let file = ModuleSource::File(FileSource {
            path: "/x.wasm".into(),
        });
        assert_eq!(file.to_string(), "file /x.wasm");
    }
}
