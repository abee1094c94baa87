//! What a module declares about itself, checked once at load time and then
//! enforced on every call.

use serde::Serialize;

use crate::origin::Origin;
use crate::reads::KindId;

/// Whether objects of a kind live in a namespace or at cluster scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Objects live in a namespace.
    Namespaced,
    /// Objects have no namespace.
    Cluster,
}

/// A Kubernetes resource kind a module reconciles, owns or reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Kind {
    /// The API group, empty for the core group.
    pub group: String,
    /// The version within the group.
    pub version: String,
    /// The kind, CamelCase.
    pub kind: String,
    /// The lower-case plural used in resource paths.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
}

impl Kind {
    /// A `v1` kind whose plural is its lower-cased name with an `s`, for
    /// unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(group: &str, kind: &str, scope: Scope) -> Kind {
        Kind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            scope,
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube `ApiResource` of this kind. In a cluster the declared plural
    /// and scope have been checked against discovery when the module loaded
    /// ([`crate::discovery`]), so they are the server's.
    pub fn api_resource(&self) -> kube::api::ApiResource {
        kube::api::ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// True when an object with this `apiVersion` and `kind` is of this kind.
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        self.kind == kind
            && match api_version.split_once('/') {
                Some((group, version)) => self.group == group && self.version == version,
                None => self.group.is_empty() && self.version == api_version,
            }
    }

    fn check(&self, role: &str) -> Result<(), String> {
        // As long as Kubernetes lets them be: a group is a DNS subdomain,
        // the rest DNS labels. Checked first, so that nothing longer is
        // ever quoted or sent anywhere.
        for (field, value, most) in [
            ("group", &self.group, 253),
            ("version", &self.version, 63),
            ("kind", &self.kind, 63),
            ("plural", &self.plural, 63),
        ] {
            if value.len() > most {
                return Err(format!(
                    "{role} kind's {field} {} is {} bytes long; at most {most} are allowed",
                    quoted(value),
                    value.len()
                ));
            }
        }
        if self.kind.is_empty() || self.version.is_empty() || self.plural.is_empty() {
            return Err(format!(
                "{role} kind {self:?} needs a kind, a version and a plural"
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.kind, self.api_version())
    }
}

/// A module's declaration: name, version, primary kind, owned and read
/// kinds, finalizer, HTTP origins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleMeta {
    /// The module's name, a DNS label; the controller name in metrics.
    pub name: String,
    /// The module's own version.
    pub version: String,
    /// The kind it reconciles.
    pub primary: Kind,
    /// The kinds of children it may write.
    pub owns: Vec<Kind>,
    /// The further kinds it may read.
    pub reads: Vec<Kind>,
    /// The finalizer it holds on primary objects, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finalizer: Option<String>,
    /// The origins it sends HTTP requests to (checked syntax, duplicates
    /// removed, in declaration order).
    #[serde(rename = "httpOrigins", skip_serializing_if = "Vec::is_empty")]
    pub http_origins: Vec<Origin>,
}

/// What a module says of itself, unchecked: the guest's `metadata` export,
/// converted by the engine from whichever contract version it targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// Its name, as it says it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The kind it asks to reconcile.
    pub primary: Kind,
    /// The kinds it asks to own.
    pub owns: Vec<Kind>,
    /// The further kinds it asks to read.
    pub reads: Vec<Kind>,
    /// The finalizer it asks to hold.
    pub finalizer: Option<String>,
    /// The origins it asks to reach, unparsed.
    pub http_origins: Vec<String>,
}

impl ModuleMeta {
    /// Checks what the guest declared.
    pub fn from_declared(info: Declared) -> Result<Self, String> {
        let meta = ModuleMeta {
            name: info.name,
            version: info.version,
            primary: info.primary,
            owns: info.owns,
            reads: info.reads,
            finalizer: info.finalizer,
            http_origins: parse_origins(info.http_origins)?,
        };
        if !is_dns_label(&meta.name) {
            return Err(format!(
                "module name {} must be a DNS label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
                quoted(&meta.name)
            ));
        }
        // The version goes into the ReconcilerModule's status, log lines
        // and a metric label: as short as a version needs to be.
        if meta.version.len() > MAX_VERSION_BYTES || meta.version.chars().any(char::is_control) {
            return Err(format!(
                "module version {} must be at most {MAX_VERSION_BYTES} bytes without control characters (it is {} bytes); a version such as 1.2.3+build.4 is plenty",
                quoted(&meta.version),
                meta.version.len()
            ));
        }
        meta.primary.check("primary")?;
        let kinds = 1 + meta.owns.len() + meta.reads.len();
        if kinds > MAX_KINDS {
            return Err(format!(
                "the module declares {kinds} kinds (its primary, owned and read kinds); at most {MAX_KINDS} are allowed"
            ));
        }
        for kind in &meta.owns {
            kind.check("owned")?;
            if kind.group == meta.primary.group && kind.kind == meta.primary.kind {
                return Err(format!(
                    "a module cannot own its own primary kind {}: its children would be the objects it reconciles",
                    meta.primary
                ));
            }
            if meta.primary.scope == Scope::Namespaced && kind.scope == Scope::Cluster {
                return Err(format!(
                    "a namespaced primary ({}) cannot own cluster-scoped {kind}: Kubernetes garbage collection does not follow such ownerReferences",
                    meta.primary
                ));
            }
        }
        for kind in &meta.reads {
            kind.check("read")?;
        }
        if let Some(finalizer) = &meta.finalizer {
            check_finalizer(finalizer)?;
            if !finalizer.contains('/') {
                tracing::warn!(module = %meta.name, finalizer, "the finalizer is not domain-qualified; prefer a name like example.com/cleanup, which no other controller will pick by chance");
            }
        }
        Ok(meta)
    }

    /// The field manager the host applies this module's writes with.
    pub fn field_manager(&self) -> String {
        format!("bosun/{}", self.name)
    }

    /// The owned kind with this `apiVersion` and `kind`.
    pub fn owned(&self, api_version: &str, kind: &str) -> Option<&Kind> {
        self.owns.iter().find(|k| k.matches(api_version, kind))
    }

    /// The readable kind (primary, owned or declared read) with this
    /// `apiVersion` and `kind`.
    pub fn readable(&self, api_version: &str, kind: &str) -> Option<&Kind> {
        self.readable_id(api_version, kind).map(|(_, kind)| kind)
    }

    /// The kinds a guest may read, each once, in a fixed order: the
    /// primary, the owned kinds, the declared read kinds. A kind's place in
    /// this list is how read tracking numbers it ([`KindId`]), and the
    /// controller watches them in the same order.
    pub fn readable_kinds(&self) -> Vec<&Kind> {
        let mut kinds: Vec<&Kind> = Vec::new();
        for kind in std::iter::once(&self.primary)
            .chain(&self.owns)
            .chain(&self.reads)
        {
            let seen = kinds
                .iter()
                .any(|k| k.group == kind.group && k.version == kind.version && k.kind == kind.kind);
            if !seen {
                kinds.push(kind);
            }
        }
        kinds
    }

    /// [`ModuleMeta::readable`], with the kind's place among
    /// [`ModuleMeta::readable_kinds`].
    pub fn readable_id(&self, api_version: &str, kind: &str) -> Option<(KindId, &Kind)> {
        self.readable_kinds()
            .into_iter()
            .enumerate()
            .find(|(_, k)| k.matches(api_version, kind))
            .map(|(at, kind)| (KindId(at as u16), kind))
    }
}

/// The declared origins, parsed; a guest declares at most
/// [`MAX_ORIGINS`] so that checking a request against them stays cheap.
fn parse_origins(declared: Vec<String>) -> Result<Vec<Origin>, String> {
    if declared.len() > MAX_ORIGINS {
        return Err(format!(
            "the module declares {} HTTP origins; at most {MAX_ORIGINS} are allowed",
            declared.len()
        ));
    }
    let mut origins: Vec<Origin> = Vec::new();
    for text in declared {
        let origin = Origin::parse(&text).map_err(|e| format!("declared HTTP origin {e}"))?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// The most HTTP origins a module may declare.
pub const MAX_ORIGINS: usize = 64;

/// The longest module version: semver with a pre-release and build
/// metadata fits many times over.
pub const MAX_VERSION_BYTES: usize = 128;

/// `text` as an error message quotes a string someone else chose: its
/// first 64 bytes, debug-escaped, and a mark that there was more.
pub fn quoted(text: &str) -> String {
    let cut = truncate_at_char_boundary(text, 64);
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// The most kinds a module may declare, primary, owned and read together:
/// each is a watch per granted namespace, and read tracking numbers them
/// in 16 bits.
pub const MAX_KINDS: usize = 128;

/// The group of an `apiVersion` (`apps/v1` → `apps`; `v1` → the core group, ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    let cut = (0..=max.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[..cut]
}

/// An RFC 1123 label, as Kubernetes names of many kinds must be.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// An RFC 1123 subdomain: the rule for most object names.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// Checks a finalizer name as the API server does (a qualified name: an
/// optional DNS-subdomain prefix and `/`, then at most 63 of
/// `[A-Za-z0-9-_.]`, starting and ending alphanumeric), so a controller
/// moving to bosun keeps the finalizers its objects already carry. Names
/// Kubernetes itself uses are refused: a module holding them would
/// interfere with garbage collection and namespace deletion.
fn check_finalizer(finalizer: &str) -> Result<(), String> {
    let (prefix, name) = match finalizer.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, finalizer),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !name_ok || prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return Err(format!(
            "finalizer {finalizer:?} is not a name the API server accepts: an optional DNS-subdomain prefix and '/', then up to 63 letters, digits, '-', '_' or '.', like example.com/cleanup"
        ));
    }
    let reserved = matches!(finalizer, "kubernetes" | "orphan" | "foregroundDeletion")
        || prefix.is_some_and(|p| {
            p == "kubernetes.io"
                || p.ends_with(".kubernetes.io")
                || p == "k8s.io"
                || p.ends_with(".k8s.io")
        });
    if reserved {
        return Err(format!(
            "finalizer {finalizer:?} belongs to Kubernetes itself; choose one under your own domain, like example.com/cleanup"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(group: &str, version: &str, kind: &str, scope: Scope) -> Kind {
        Kind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            scope,
        }
    }

    fn info() -> Declared {
        Declared {
            name: "cnat".into(),
            version: "0.1.0".into(),
            primary: kind(
                "cnat.programming-kubernetes.info",
                "v1alpha1",
                "At",
                Scope::Namespaced,
            ),
            owns: vec![kind("", "v1", "Pod", Scope::Namespaced)],
            reads: vec![kind("", "v1", "ConfigMap", Scope::Namespaced)],
            finalizer: Some("cnat.programming-kubernetes.info/cleanup".into()),
            http_origins: vec![],
        }
    }

    #[test]
    fn declared_origins_are_parsed_and_bad_ones_refused() {
        let mut ok = info();
        ok.http_origins = vec![
            "https://dns.example.com:443".into(),
            "https://dns.example.com".into(),
            "http://127.0.0.1:8081".into(),
        ];
        let meta = ModuleMeta::from_declared(ok).unwrap();
        let shown: Vec<String> = meta.http_origins.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["https://dns.example.com", "http://127.0.0.1:8081"]);
        let mut bad = info();
        bad.http_origins = vec!["https://dns.example.com/api".into()];
        assert!(
            ModuleMeta::from_declared(bad)
                .unwrap_err()
                .contains("declared HTTP origin")
        );
    }

    #[test]
    fn accepts_a_sound_declaration() {
        let meta = ModuleMeta::from_declared(info()).unwrap();
        assert_eq!(meta.field_manager(), "bosun/cnat");
        assert!(meta.owned("v1", "Pod").is_some());
        assert!(meta.owned("v1", "ConfigMap").is_none());
        assert!(meta.readable("v1", "ConfigMap").is_some());
        assert!(
            meta.readable("cnat.programming-kubernetes.info/v1alpha1", "At")
                .is_some()
        );
        assert!(meta.readable("v1", "Secret").is_none());
    }

    #[test]
    fn rejects_a_bad_name() {
        let mut bad = info();
        bad.name = "Cnat_Controller".into();
        assert!(
            ModuleMeta::from_declared(bad)
                .unwrap_err()
                .contains("DNS label")
        );
    }

    #[test]
    fn accepts_every_finalizer_the_api_server_accepts() {
        // controller-rs's finalizer has no '/': the API server accepts it
        // (with a warning), so a controller moving to bosun keeps it.
        for good in ["documents.kube.rs", "cleanup", "example.com/clean_up.v2"] {
            let mut ok = info();
            ok.finalizer = Some(good.into());
            assert!(ModuleMeta::from_declared(ok).is_ok(), "{good}");
        }
        let long = "x".repeat(64);
        for bad in [
            "-cleanup",
            "Example.com/x",
            "example.com/",
            "a/b/c",
            long.as_str(),
        ] {
            let mut refused = info();
            refused.finalizer = Some(bad.to_owned());
            assert!(
                ModuleMeta::from_declared(refused)
                    .unwrap_err()
                    .contains("not a name the API server accepts"),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_the_finalizers_of_kubernetes_itself() {
        for reserved in [
            "orphan",
            "foregroundDeletion",
            "kubernetes",
            "kubernetes.io/pv-protection",
            "batch.kubernetes.io/job-tracking",
        ] {
            let mut bad = info();
            bad.finalizer = Some(reserved.into());
            assert!(
                ModuleMeta::from_declared(bad)
                    .unwrap_err()
                    .contains("Kubernetes itself"),
                "{reserved}"
            );
        }
    }

    #[test]
    fn rejects_owning_its_own_primary_kind() {
        let mut bad = info();
        bad.owns.push(bad.primary.clone());
        assert!(
            ModuleMeta::from_declared(bad)
                .unwrap_err()
                .contains("cannot own its own primary kind")
        );
    }

    #[test]
    fn rejects_cluster_scoped_children_of_a_namespaced_primary() {
        let mut bad = info();
        bad.owns.push(kind(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            Scope::Cluster,
        ));
        assert!(
            ModuleMeta::from_declared(bad)
                .unwrap_err()
                .contains("cannot own cluster-scoped")
        );
    }

    #[test]
    fn long_module_supplied_text_is_refused_and_never_quoted_whole() {
        let mut long_version = info();
        long_version.version = "1".repeat(32 << 10);
        let error = ModuleMeta::from_declared(long_version).unwrap_err();
        assert!(error.contains("32768 bytes"), "{error}");
        assert!(error.len() < 400, "the error quotes the version whole");
        let mut control = info();
        control.version = "1.0\n".into();
        assert!(ModuleMeta::from_declared(control).is_err());
        let mut long_name = info();
        long_name.name = "a".repeat(10_000);
        let error = ModuleMeta::from_declared(long_name).unwrap_err();
        assert!(error.len() < 400, "{} bytes", error.len());
        let mut long_kind = info();
        long_kind.reads[0].plural = "x".repeat(1_000);
        let error = ModuleMeta::from_declared(long_kind).unwrap_err();
        assert!(error.contains("1000 bytes") && error.len() < 400, "{error}");
    }

    #[test]
    fn core_and_grouped_api_versions_match_exactly() {
        let pod = kind("", "v1", "Pod", Scope::Namespaced);
        assert!(pod.matches("v1", "Pod"));
        assert!(!pod.matches("apps/v1", "Pod"));
        let deploy = kind("apps", "v1", "Deployment", Scope::Namespaced);
        assert!(deploy.matches("apps/v1", "Deployment"));
        assert!(!deploy.matches("v1", "Deployment"));
        assert!(!deploy.matches("extensions/v1beta1", "Deployment"));
    }
}
