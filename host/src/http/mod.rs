//! Outbound HTTP for guests: `wasi:http/outgoing-handler`, mediated.
//!
//! A module declares the [`Origin`]s it needs; the operator grants them
//! ([`crate::grants::HttpGrant`]). Only requests to an origin both declared
//! and granted leave the host ([`policy`]), to addresses the host checked,
//! within the call's budget ([`budget`]), with the granted credentials
//! added by the host ([`credentials`], [`send`]), over connections each
//! module keeps open between its calls (`pool`).

pub mod budget;
pub mod credentials;
pub mod policy;
mod pool;
pub mod send;

use std::net::IpAddr;
use std::sync::Arc;

pub use crate::limits::HttpLimits;
pub use crate::origin::{Host, Origin, OriginError, Scheme};
pub use policy::{Policy, Refusal};
pub use send::GuestHttp;

use crate::grants::HttpGrant;
use crate::meta::{ModuleMeta, truncate_at_char_boundary};
use crate::telemetry::Metrics;
use credentials::KeySource;

/// What every module's outbound HTTP shares: where granted keys are read,
/// the API server's addresses (always guarded), metrics, and what to tell
/// the user when a request is refused.
#[derive(Clone, Default)]
pub struct Environment {
    /// Reads granted Secret and ConfigMap keys; None: credentials and CA
    /// bundles are unavailable and requests needing them are refused.
    pub keys: Option<Arc<dyn KeySource>>,
    /// The API server's addresses.
    pub api_server: Arc<[IpAddr]>,
    /// Where request counts go.
    pub metrics: Option<Metrics>,
    /// Appended to the warning about a refused request, e.g. how to grant it.
    pub hint: Option<&'static str>,
    /// True while this host leads (None: it always may, as on the command
    /// line). No request leaves while it is false, and a request waiting
    /// for its answer when it turns false is cut: once another replica
    /// leads, only that replica changes the world outside the cluster.
    pub leading: Option<tokio::sync::watch::Receiver<bool>>,
}

/// One module's outbound HTTP: what it may reach, with what budget per
/// call, and its connection pool. Its controller keeps one across calls
/// and builds a new one for a new load, grant or limits
/// (`controller/outbound.rs`), so connections outlive a call but never the
/// grant they were made under.
pub struct Outbound {
    module: Arc<str>,
    policy: Policy,
    limits: HttpLimits,
    env: Environment,
    pool: Arc<pool::Pool>,
}

impl Outbound {
    /// Whether this host may send requests now.
    fn leads(&self) -> bool {
        self.env
            .leading
            .as_ref()
            .is_none_or(|leading| *leading.borrow())
    }

    /// Resolves once this host stops leading; never without leader election.
    async fn lost_leadership(&self) {
        match self.env.leading.clone() {
            Some(mut leading) => {
                // A dropped sender means the host is stopping: cut too.
                let _ = leading.wait_for(|leads| !*leads).await;
            }
            None => std::future::pending().await,
        }
    }

    /// The access of `meta` under `grants` (declared ∩ granted), with
    /// `limits` per call.
    pub fn new(
        meta: &ModuleMeta,
        grants: &[HttpGrant],
        limits: HttpLimits,
        env: Environment,
    ) -> Arc<Self> {
        Arc::new(Outbound {
            module: Arc::from(meta.name.as_str()),
            policy: Policy::new(meta, grants),
            limits,
            env,
            pool: Arc::default(),
        })
    }

    /// Idle connections this module's requests may reuse now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    fn refused<B>(&self, object: &str, request: &http::Request<B>, refusal: Refusal) {
        // The guest chose both: a log line quotes them cut short.
        let uri = request.uri();
        let target = format!(
            "{}://{}",
            truncate_at_char_boundary(uri.scheme_str().unwrap_or("?"), 16),
            truncate_at_char_boundary(uri.authority().map_or("?", |a| a.as_str()), 256)
        );
        tracing::warn!(
            module = %self.module,
            object = %object,
            method = %truncate_at_char_boundary(request.method().as_str(), 32),
            target = %target,
            reason = refusal.as_str(),
            "guest HTTP request refused{}",
            self.env.hint.unwrap_or("")
        );
        if let Some(metrics) = &self.env.metrics {
            metrics.guest_http_refused(&self.module, refusal.as_str());
        }
    }
}

/// The API server's own addresses behind the `kubernetes` Service (its
/// Endpoints in `default`): in a cluster the host reaches the API server
/// through the Service's ClusterIP, but a guest could aim at an endpoint
/// directly. Empty, with a warning, when they cannot be read.
pub async fn api_server_endpoints(client: &kube::Client) -> Vec<IpAddr> {
    use k8s_openapi::api::core::v1::Endpoints;
    let endpoints: kube::Api<Endpoints> = kube::Api::namespaced(client.clone(), "default");
    match endpoints.get("kubernetes").await {
        Ok(found) => found
            .subsets
            .iter()
            .flatten()
            .flat_map(|subset| subset.addresses.iter().flatten())
            .filter_map(|address| address.ip.parse().ok())
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the API server's endpoints (get endpoints default/kubernetes); guest HTTP requests to them are refused only when they are the Service's address or loopback");
            Vec::new()
        }
    }
}

/// The addresses of the API server at `url`: its IP literal, or what its
/// name resolves to now. Empty when it cannot be resolved (then only the
/// other guarded ranges protect it, and a warning says so).
pub async fn api_server_addresses(url: &http::Uri) -> Vec<IpAddr> {
    let Some(host) = url.host() else {
        return Vec::new();
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return vec![ip];
    }
    let port = url.port_u16().unwrap_or(443);
    match tokio::net::lookup_host((bare, port)).await {
        Ok(found) => found.map(|a| a.ip()).collect(),
        Err(error) => {
            tracing::warn!(%url, %error, "cannot resolve the API server's name; guest HTTP requests to its addresses are refused only when they are loopback or link-local");
            Vec::new()
        }
    }
}
