//! What a grant lets a module reach over HTTP: origins, their methods,
//! the credentials the host adds and the certificates it trusts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::origin::Origin;

/// One origin a module may reach over HTTP.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGrant {
    /// `scheme://host[:port]`; a leading `*.` covers subdomains only.
    /// Loopback, link-local, cloud metadata and the API server's own
    /// addresses are reachable only through an origin naming that host
    /// literally, never through a wildcard.
    pub origin: Origin,
    /// A header the host adds to every request to this origin, its value
    /// read from a Secret the module never sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<HttpCredentials>,
    /// Certificates (PEM) to trust for this origin besides the system's
    /// roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundle>,
    /// The HTTP methods the module may use with this origin, upper-case;
    /// none listed: GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS.
    /// TRACE (which echoes the request, credentials included, into the
    /// response the guest reads) and CONNECT (a tunnel past every check)
    /// only when listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 32)))]
    pub methods: Vec<String>,
}

/// The methods an origin allows when its grant lists none.
pub const DEFAULT_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl HttpGrant {
    /// Whether a request with `method` may go to this origin.
    pub fn allows(&self, method: &str) -> bool {
        if self.methods.is_empty() {
            DEFAULT_METHODS.contains(&method)
        } else {
            self.methods.iter().any(|m| m == method)
        }
    }
}

/// A header bound to an origin, holding a Secret's value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCredentials {
    /// The header's name, e.g. `X-API-Key` or `Authorization`.
    #[schemars(length(min = 1, max = 256))]
    pub header: String,
    /// Written before the Secret's value, e.g. `Bearer `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The Secret key holding the value.
    pub secret_ref: KeyRef,
}

/// One key of a namespaced ConfigMap or Secret.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// The object's namespace.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// The object's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The key within its data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Where an origin's extra trusted certificates are: exactly one of a
/// ConfigMap key or a Secret key holding PEM.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CaBundle {
    /// A ConfigMap key (`data`).
    ConfigMapRef(KeyRef),
    /// A Secret key.
    SecretRef(KeyRef),
}
