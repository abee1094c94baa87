use std::borrow::Cow;

use crate::bindings::bosun::reconciler::types::{self as wit};

/// Whether objects of a kind live in a namespace or at cluster scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Objects live in a namespace.
    Namespaced,
    /// Objects have no namespace.
    Cluster,
}

/// Maps a kube/k8s-openapi scope marker type to a [`Scope`].
///
/// Implemented for `NamespaceResourceScope` and `ClusterResourceScope`, the
/// scopes a reconciled or owned kind can have.
pub trait KnownScope {
    /// The scope this marker stands for.
    const SCOPE: Scope;
}

impl KnownScope for k8s_openapi::NamespaceResourceScope {
    const SCOPE: Scope = Scope::Namespaced;
}

impl KnownScope for k8s_openapi::ClusterResourceScope {
    const SCOPE: Scope = Scope::Cluster;
}

/// A Kubernetes resource kind, for kinds that have no Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKind {
    /// The API group; empty for the core group.
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

impl ApiKind {
    /// The kind of the Rust type `K`.
    pub fn of<K>() -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: KnownScope,
    {
        ApiKind {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            scope: <K::Scope as KnownScope>::SCOPE,
        }
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> Cow<'_, str> {
        if self.group.is_empty() {
            Cow::Borrowed(&self.version)
        } else {
            Cow::Owned(format!("{}/{}", self.group, self.version))
        }
    }

    pub(crate) fn into_wit(self) -> wit::ApiKind {
        wit::ApiKind {
            group: self.group,
            version: self.version,
            kind: self.kind,
            plural: self.plural,
            scope: match self.scope {
                Scope::Namespaced => wit::Scope::Namespaced,
                Scope::Cluster => wit::Scope::Cluster,
            },
        }
    }
}

/// What a module declares about itself: its name and version, the kinds it
/// owns and reads, its finalizer and the HTTP origins it reaches.
///
/// The host enforces the declaration: a child of an undeclared kind, or a
/// read of one, is an error.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) owns: Vec<ApiKind>,
    pub(crate) reads: Vec<ApiKind>,
    pub(crate) finalizer: Option<String>,
    pub(crate) http_origins: Vec<String>,
}

impl Metadata {
    /// A module called `name` (a DNS label; it becomes the controller name
    /// and the field manager `bosun/<name>`) at `version`; pass
    /// `env!("CARGO_PKG_VERSION")` to use the crate's.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Metadata {
            name: name.into(),
            version: version.into(),
            owns: Vec::new(),
            reads: Vec::new(),
            finalizer: None,
            http_origins: Vec::new(),
        }
    }

    /// Declares that the module creates children of kind `K`.
    pub fn owns<K>(self) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: KnownScope,
    {
        self.owns_kind(ApiKind::of::<K>())
    }

    /// Declares an owned kind that has no Rust type.
    pub fn owns_kind(mut self, kind: ApiKind) -> Self {
        self.owns.push(kind);
        self
    }

    /// Declares that the module reads objects of kind `K` through
    /// [`Context::get`](crate::Context::get) and
    /// [`Context::list`](crate::Context::list).
    pub fn reads<K>(self) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: KnownScope,
    {
        self.reads_kind(ApiKind::of::<K>())
    }

    /// Declares a read kind that has no Rust type.
    pub fn reads_kind(mut self, kind: ApiKind) -> Self {
        self.reads.push(kind);
        self
    }

    /// Asks the host to hold `finalizer` on every primary object and to call
    /// [`Reconciler::finalize`](crate::Reconciler::finalize) before it goes.
    pub fn finalizer(mut self, finalizer: impl Into<String>) -> Self {
        self.finalizer = Some(finalizer.into());
        self
    }

    /// Declares an origin the module sends HTTP requests to,
    /// `scheme://host[:port]` (`http` or `https`; a leading `*.` covers
    /// subdomains only, e.g. `https://*.example.com`). Call once per origin.
    ///
    /// The operator must grant each declared origin (the
    /// ReconcilerModule's `spec.permissions.http`); the host refuses
    /// requests to any other origin, and adds the credentials the grant
    /// binds to an origin itself, so the module never holds them.
    pub fn http_origin(mut self, origin: impl Into<String>) -> Self {
        self.http_origins.push(origin.into());
        self
    }

    pub(crate) fn into_wit(self, primary: ApiKind) -> wit::ModuleInfo {
        wit::ModuleInfo {
            name: self.name,
            version: self.version,
            primary: primary.into_wit(),
            owns: self.owns.into_iter().map(ApiKind::into_wit).collect(),
            reads: self.reads.into_iter().map(ApiKind::into_wit).collect(),
            finalizer: self.finalizer,
            http_origins: self.http_origins,
        }
    }
}
