//! What whoever deploys a module grants it, and the check of the module's
//! declaration against that grant.
//!
//! A module's metadata is a *request*: the kinds it wants to reconcile, own
//! and read, and its finalizer. The *grant* comes from the operator — a
//! ReconcilerModule's `spec.permissions` in a cluster, a grant file for a
//! local module — and the host enforces it: a declaration beyond the grant
//! fails that module's load with every missing permission named, and the
//! grant's namespaces and limits bound what the running module may do.
//!
//! Kinds are granted by group and kind, not version: which versions exist
//! is the API server's business ([`crate::discovery`]), and a module that
//! moves from `v1beta1` to `v1` of a kind it was granted needs no new grant.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::meta::{Kind, ModuleMeta, Scope};
mod file;
mod http;

pub use self::file::{GrantFile, GrantFileError, parse_grants, read_grant_file};
pub use self::http::{CaBundle, DEFAULT_METHODS, HttpCredentials, HttpGrant, KeyRef};

/// A kind by API group and kind name, any version.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct GroupKind {
    /// The API group; empty (or absent) for the core group.
    #[serde(default)]
    pub group: String,
    /// The kind, CamelCase, e.g. `Deployment`.
    #[schemars(length(min = 1))]
    pub kind: String,
}

impl GroupKind {
    /// The group and kind of `kind`.
    pub fn of(kind: &Kind) -> Self {
        GroupKind {
            group: kind.group.clone(),
            kind: kind.kind.clone(),
        }
    }

    fn covers(&self, kind: &Kind) -> bool {
        self.group == kind.group && self.kind == kind.kind
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// What a module may do: the permissions block of a ReconcilerModule's
/// spec, of a grant file, and of `bosun inspect`'s output.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    /// The kind the module may reconcile: it reads and watches its objects,
    /// writes their status and holds its finalizer on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciles: Option<GroupKind>,
    /// The kinds of children it may create, update and delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owns: Vec<GroupKind>,
    /// Further kinds it may read from the host's caches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<GroupKind>,
    /// The finalizer it may hold on the objects it reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizer: Option<String>,
    /// Whether it may reconcile, own or read cluster-scoped kinds. Without
    /// it, a module is confined to namespaces.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scoped: bool,
    /// The namespaces it may reconcile and write in; empty means every
    /// namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub namespaces: Vec<String>,
    /// The origins it may send HTTP requests to, each optionally with the
    /// credentials the host adds to its requests and a CA bundle to verify
    /// it by. A request goes out only to an origin the module declares and
    /// this list grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpGrant>,
    /// Bounds on what one call may return; unset fields keep the host's
    /// defaults.
    #[serde(default, skip_serializing_if = "LimitOverrides::is_empty")]
    pub limits: LimitOverrides,
}

impl Permissions {
    /// Checks what a grant says against itself, before any module is
    /// held to it: HTTP methods are method names, and no grant lets a
    /// module read the Secret its HTTP credentials come from — the host
    /// adds them to requests precisely so that the guest never sees them.
    ///
    /// # Errors
    ///
    /// What is wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        for grant in &self.http {
            for method in &grant.methods {
                let token = !method.is_empty()
                    && method.len() <= 32
                    && method.bytes().all(|b| b.is_ascii_uppercase());
                if !token {
                    return Err(format!(
                        "permissions.http[{}].methods: {} is not an HTTP method name in capitals, such as GET",
                        grant.origin,
                        crate::meta::quoted(method)
                    ));
                }
            }
        }
        let secret = GroupKind {
            group: String::new(),
            kind: "Secret".into(),
        };
        let reads_secrets = self.reads.contains(&secret) || self.owns.contains(&secret);
        if reads_secrets {
            let readable = |namespace: &str| {
                self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
            };
            if let Some(held) = self
                .http
                .iter()
                .filter_map(|grant| grant.credentials.as_ref())
                .map(|credentials| &credentials.secret_ref)
                .find(|key| readable(&key.namespace))
            {
                return Err(format!(
                    "permissions: the module may read Secrets in namespace {}, where its HTTP credentials (Secret {}/{}) are kept; the host adds credentials so that the guest never sees them: keep them in a namespace the module cannot read, or do not grant it Secrets",
                    held.namespace, held.namespace, held.name
                ));
            }
        }
        Ok(())
    }
}

/// Per-module overrides of the bounds on one call's output.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitOverrides {
    /// Desired children one reconcile may return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub children: Option<u32>,
    /// Events one call may return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub events: Option<u32>,
    /// Log lines one call may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<u32>,
    /// The longest error message kept, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64))]
    pub message_bytes: Option<u32>,
    /// The shortest requeue the module may ask for, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requeue_ms: Option<u64>,
    /// HTTP requests one call may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_requests: Option<u32>,
    /// Bytes of HTTP request bodies one call may send, in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_bytes: Option<u64>,
    /// Bytes of HTTP response bodies one call may receive, in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_bytes: Option<u64>,
    /// The longest label selector one `list-objects` may pass, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 65536))]
    pub selector_bytes: Option<u32>,
    /// The most requirements in one label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub selector_requirements: Option<u32>,
    /// Reads of one call the host tracks one by one to reconcile the
    /// object again when what it read changes; past them, any change of
    /// the kind in the namespace read brings it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub tracked_reads: Option<u32>,
}

impl LimitOverrides {
    fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }

    /// `limits` with these overrides applied.
    pub fn apply_to(&self, limits: Limits) -> Limits {
        Limits {
            children: self.children.map_or(limits.children, |n| n as usize),
            events: self.events.map_or(limits.events, |n| n as usize),
            log_lines: self.log_lines.unwrap_or(limits.log_lines),
            message_bytes: self
                .message_bytes
                .map_or(limits.message_bytes, |n| n as usize),
            min_requeue: self
                .min_requeue_ms
                .map_or(limits.min_requeue, Duration::from_millis),
            http: crate::limits::HttpLimits {
                requests: self.http_requests.unwrap_or(limits.http.requests),
                request_bytes: self.http_request_bytes.unwrap_or(limits.http.request_bytes),
                response_bytes: self
                    .http_response_bytes
                    .unwrap_or(limits.http.response_bytes),
            },
            // A grant is trusted, but a typo must not make every read
            // cost the host whatever a guest likes.
            selector_bytes: self
                .selector_bytes
                .map_or(limits.selector_bytes, |n| n.clamp(64, 1 << 16)),
            selector_requirements: self
                .selector_requirements
                .map_or(limits.selector_requirements, |n| n.clamp(1, 1024)),
            tracked_reads: self.tracked_reads.unwrap_or(limits.tracked_reads).max(1),
            ..limits
        }
    }
}

/// Where a module's permissions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Exactly what the module declares: `--grant-declared`, for local
    /// development only. Never implied.
    Declared,
    /// What an operator wrote down.
    Granted {
        /// The module the grant names (a grant file's `module`); None for
        /// a grant that comes with its source, as a ReconcilerModule's.
        module: Option<String>,
        /// What it may do.
        permissions: Box<Permissions>,
    },
}

impl Grant {
    /// No grant at all: every declared permission is missing.
    pub fn none() -> Self {
        Grant::Granted {
            module: None,
            permissions: Box::default(),
        }
    }

    /// The permissions in force for `meta`, checked: every permission the
    /// module declares must be granted, and a grant written for another
    /// module grants nothing.
    pub fn check(&self, meta: &ModuleMeta) -> Result<Permissions, PermissionDenied> {
        let permissions = match self {
            Grant::Declared => requested(meta),
            Grant::Granted {
                module: Some(other),
                ..
            } if *other != meta.name => {
                return Err(PermissionDenied {
                    module: meta.name.clone(),
                    missing: vec![format!(
                        "a grant for module {} (the grant given is for module {other})",
                        meta.name
                    )],
                });
            }
            Grant::Granted { permissions, .. } => (**permissions).clone(),
        };
        check(meta, &permissions)?;
        Ok(permissions)
    }
}

/// Why a module may not run: what it declares and was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "module {module} declares more than it was granted: {}; grant it (bosun inspect prints the permissions block the module needs) or run a module that asks for less",
    missing.join("; ")
)]
pub struct PermissionDenied {
    /// The module's name.
    pub module: String,
    /// Each missing permission, e.g. `own Secret` or `hold finalizer x.io/y`.
    pub missing: Vec<String>,
}

/// The permissions `meta` asks for: what `bosun inspect` prints and
/// `--grant-declared` grants.
pub fn requested(meta: &ModuleMeta) -> Permissions {
    let kinds = |kinds: &[Kind]| -> Vec<GroupKind> {
        kinds
            .iter()
            .map(GroupKind::of)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let all = std::iter::once(&meta.primary)
        .chain(&meta.owns)
        .chain(&meta.reads);
    Permissions {
        reconciles: Some(GroupKind::of(&meta.primary)),
        owns: kinds(&meta.owns),
        reads: kinds(&meta.reads),
        finalizer: meta.finalizer.clone(),
        cluster_scoped: all.into_iter().any(|k| k.scope == Scope::Cluster),
        namespaces: Vec::new(),
        http: meta
            .http_origins
            .iter()
            .map(|origin| HttpGrant {
                origin: origin.clone(),
                credentials: None,
                ca_bundle: None,
                methods: Vec::new(),
            })
            .collect(),
        limits: LimitOverrides::default(),
    }
}

/// Checks `meta` (whose kinds the API server has confirmed) against
/// `granted`, naming every permission it lacks.
pub fn check(meta: &ModuleMeta, granted: &Permissions) -> Result<(), PermissionDenied> {
    let mut missing = Vec::new();
    if !granted
        .reconciles
        .as_ref()
        .is_some_and(|g| g.covers(&meta.primary))
    {
        missing.push(format!("reconcile {}", GroupKind::of(&meta.primary)));
    }
    for kind in &meta.owns {
        if !granted.owns.iter().any(|g| g.covers(kind)) {
            missing.push(format!("own {}", GroupKind::of(kind)));
        }
    }
    for kind in &meta.reads {
        let readable = granted
            .reads
            .iter()
            .chain(&granted.owns)
            .any(|g| g.covers(kind))
            || granted.reconciles.as_ref().is_some_and(|g| g.covers(kind));
        if !readable {
            missing.push(format!("read {}", GroupKind::of(kind)));
        }
    }
    if let Some(finalizer) = &meta.finalizer
        && granted.finalizer.as_deref() != Some(finalizer)
    {
        missing.push(format!("hold finalizer {finalizer}"));
    }
    for origin in &meta.http_origins {
        if !granted.http.iter().any(|g| origin.covered_by(&g.origin)) {
            missing.push(format!("reach {origin} over HTTP"));
        }
    }
    if !granted.cluster_scoped {
        let cluster: Vec<String> = std::iter::once(&meta.primary)
            .chain(&meta.owns)
            .chain(&meta.reads)
            .filter(|k| k.scope == Scope::Cluster)
            .map(|k| GroupKind::of(k).to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !cluster.is_empty() {
            missing.push(format!("clusterScoped (for {})", cluster.join(", ")));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PermissionDenied {
            module: meta.name.clone(),
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::Origin;

    fn credentialed(namespaces: &[&str], reads: &[&str]) -> Permissions {
        serde_json::from_value(serde_json::json!({
            "reads": reads.iter().map(|k| serde_json::json!({"kind": k})).collect::<Vec<_>>(),
            "namespaces": namespaces,
            "http": [{"origin": "https://dns.example",
                      "credentials": {"header": "X-API-Key",
                                      "secretRef": {"namespace": "dns", "name": "pdns-key", "key": "key"}}}],
        }))
        .unwrap()
    }

    #[test]
    fn a_grant_that_lets_the_module_read_its_own_credentials_is_refused() {
        let error = credentialed(&[], &["Secret"]).validate().unwrap_err();
        assert!(error.contains("dns/pdns-key"), "{error}");
        assert!(credentialed(&["dns"], &["Secret"]).validate().is_err());
        // Secrets elsewhere only, or no Secrets at all: fine.
        assert!(credentialed(&["shop"], &["Secret"]).validate().is_ok());
        assert!(credentialed(&[], &["ConfigMap"]).validate().is_ok());
    }

    #[test]
    fn http_methods_are_method_names() {
        let mut permissions = credentialed(&[], &[]);
        permissions.http[0].methods = vec!["get".into()];
        assert!(permissions.validate().unwrap_err().contains("methods"));
        permissions.http[0].methods = vec!["GET".into(), "TRACE".into()];
        assert!(permissions.validate().is_ok());
        assert!(permissions.http[0].allows("TRACE"));
        assert!(!permissions.http[0].allows("POST"));
    }

    fn kind(group: &str, kind: &str, scope: Scope) -> Kind {
        Kind::for_test(group, kind, scope)
    }

    fn meta() -> ModuleMeta {
        ModuleMeta {
            name: "webapp".into(),
            version: "0.1.0".into(),
            primary: kind("examples.bosun.dev", "WebApp", Scope::Namespaced),
            owns: vec![
                kind("apps", "Deployment", Scope::Namespaced),
                kind("", "Service", Scope::Namespaced),
            ],
            reads: vec![kind("", "ConfigMap", Scope::Namespaced)],
            finalizer: Some("examples.bosun.dev/cleanup".into()),
            http_origins: vec![],
        }
    }

    #[test]
    fn what_a_module_declares_is_what_it_requests() {
        let requested = requested(&meta());
        assert!(check(&meta(), &requested).is_ok());
        assert!(!requested.cluster_scoped);
        assert_eq!(requested.owns.len(), 2);
    }

    #[test]
    fn every_missing_permission_is_named() {
        let granted = Permissions {
            reconciles: Some(GroupKind {
                group: "examples.bosun.dev".into(),
                kind: "WebApp".into(),
            }),
            owns: vec![GroupKind {
                group: "apps".into(),
                kind: "Deployment".into(),
            }],
            ..Permissions::default()
        };
        let denied = check(&meta(), &granted).unwrap_err();
        assert_eq!(
            denied.missing,
            [
                "own Service",
                "read ConfigMap",
                "hold finalizer examples.bosun.dev/cleanup"
            ]
        );
        assert!(denied.to_string().contains("bosun inspect"), "{denied}");
    }

    #[test]
    fn an_empty_grant_denies_everything_and_cluster_scope_needs_its_own_grant() {
        let mut cluster = meta();
        cluster.reads.push(kind("", "Namespace", Scope::Cluster));
        let denied = check(&cluster, &Permissions::default()).unwrap_err();
        assert!(
            denied
                .missing
                .contains(&"reconcile WebApp.examples.bosun.dev".to_owned())
        );
        assert!(
            denied
                .missing
                .contains(&"clusterScoped (for Namespace)".to_owned())
        );
        let mut granted = requested(&cluster);
        granted.cluster_scoped = false;
        let denied = check(&cluster, &granted).unwrap_err();
        assert_eq!(denied.missing, ["clusterScoped (for Namespace)"]);
    }

    #[test]
    fn the_group_matters_not_only_the_kind_name() {
        let mut granted = requested(&meta());
        granted.owns[0].group = "extensions".into();
        assert!(check(&meta(), &granted).is_err());
    }

    #[test]
    fn grant_files_hold_one_grant_per_document_and_refuse_unknown_fields() {
        let text = "module: webapp\npermissions:\n  reconciles: {group: examples.bosun.dev, kind: WebApp}\n  owns: [{group: apps, kind: Deployment}]\n  limits: {children: 10}\n---\nmodule: cnat\npermissions: {}\n";
        let grants = parse_grants(text).unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].permissions.limits.children, Some(10));
        let typo = "module: webapp\npermissions:\n  own: [{kind: Deployment}]\n";
        assert!(parse_grants(typo).unwrap_err().contains("own"));
    }

    #[test]
    fn every_declared_origin_must_be_granted_and_grants_parse_as_documented() {
        let mut wants = meta();
        wants.http_origins = vec![
            Origin::parse("https://dns.example.com:8081").unwrap(),
            Origin::parse("https://api.example.org").unwrap(),
        ];
        let text = "module: webapp\npermissions:\n  http:\n    - origin: https://dns.example.com:8081\n      credentials: {header: X-API-Key, prefix: 'Bearer ', secretRef: {namespace: bosun-system, name: pdns, key: api-key}}\n      caBundle: {configMapRef: {namespace: bosun-system, name: pdns-ca, key: ca.crt}}\n    - origin: https://*.example.net\n  limits: {httpRequests: 4, httpResponseBytes: 65536}\n";
        let grant = parse_grants(text).unwrap().remove(0);
        let http = &grant.permissions.http;
        assert_eq!(http[0].credentials.as_ref().unwrap().header, "X-API-Key");
        assert_eq!(
            http[0].ca_bundle,
            Some(CaBundle::ConfigMapRef(KeyRef {
                namespace: "bosun-system".into(),
                name: "pdns-ca".into(),
                key: "ca.crt".into()
            }))
        );
        assert_eq!(grant.permissions.limits.http_requests, Some(4));
        let mut granted = requested(&wants);
        granted.http = grant.permissions.http.clone();
        let denied = check(&wants, &granted).unwrap_err();
        assert_eq!(denied.missing, ["reach https://api.example.org over HTTP"]);
        assert!(check(&wants, &requested(&wants)).is_ok());
        let bad =
            "module: webapp\npermissions:\n  http: [{origin: 'https://x.example.com/path'}]\n";
        assert!(parse_grants(bad).unwrap_err().contains("not an origin"));
    }

    #[test]
    fn a_grant_for_another_module_grants_nothing() {
        let grant = Grant::Granted {
            module: Some("cnat".into()),
            permissions: Box::new(requested(&meta())),
        };
        let denied = grant.check(&meta()).unwrap_err();
        assert!(denied.missing[0].contains("for module cnat"), "{denied}");
        let grant = Grant::Granted {
            module: Some("webapp".into()),
            permissions: Box::new(requested(&meta())),
        };
        assert!(grant.check(&meta()).is_ok());
        assert!(Grant::Declared.check(&meta()).is_ok());
        assert!(Grant::none().check(&meta()).is_err());
    }

    #[test]
    fn limit_overrides_replace_only_what_they_name() {
        let overrides = LimitOverrides {
            children: Some(3),
            min_requeue_ms: Some(50),
            ..LimitOverrides::default()
        };
        let limits = overrides.apply_to(Limits::default());
        assert_eq!(limits.children, 3);
        assert_eq!(limits.min_requeue, Duration::from_millis(50));
        assert_eq!(limits.events, Limits::default().events);
    }
}
