//! Reading the Secret keys (and CA bundles) a grant names, with the host's
//! own permissions, never more often than every few seconds per key, and
//! never for a key no grant names.
//!
//! Values are read per request through a short cache rather than once per
//! load, so a rotated Secret takes effect within [`FRESH_FOR`] without
//! reloading the module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use crate::grants::KeyRef;

/// How long a value read from the API server is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// Which kind of object a [`KeyRef`] points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A Secret's `data`.
    Secret,
    /// A ConfigMap's `data`.
    ConfigMap,
}

/// Where the values of granted keys come from.
pub trait KeySource: Send + Sync {
    /// The value of `key` in the object `holder` names; the error says what
    /// is missing, without any value.
    fn read(&self, holder: Holder, key: &KeyRef) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

/// Values read recently, with when they were read.
type KeyCache = HashMap<(Holder, KeyRef), (Instant, Vec<u8>)>;

/// Keys read from the API server with the host's client, cached briefly.
#[derive(Clone)]
pub struct ClusterKeys {
    client: Client,
    cache: Arc<Mutex<KeyCache>>,
}

impl ClusterKeys {
    /// Reads through `client`.
    pub fn new(client: Client) -> Self {
        ClusterKeys {
            client,
            cache: Arc::default(),
        }
    }
}

impl KeySource for ClusterKeys {
    fn read(&self, holder: Holder, key: &KeyRef) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let this = self.clone();
        let key = key.clone();
        Box::pin(async move {
            let cached = this
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&(holder, key.clone()))
                .filter(|(at, _)| at.elapsed() < FRESH_FOR)
                .map(|(_, value)| value.clone());
            if let Some(value) = cached {
                return Ok(value);
            }
            let value = fetch(&this.client, holder, &key).await?;
            this.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((holder, key), (Instant::now(), value.clone()));
            Ok(value)
        })
    }
}

async fn fetch(client: &Client, holder: Holder, key: &KeyRef) -> Result<Vec<u8>, String> {
    let missing = |what: &str| {
        format!(
            "{holder:?} {}/{} key {}: {what}",
            key.namespace, key.name, key.key
        )
    };
    match holder {
        Holder::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &key.namespace);
            let secret = api
                .get_opt(&key.name)
                .await
                .map_err(|e| missing(&format!("cannot be read ({e})")))?
                .ok_or_else(|| missing("the Secret does not exist"))?;
            secret
                .data
                .and_then(|mut data| data.remove(&key.key))
                .map(|bytes| bytes.0)
                .ok_or_else(|| missing("no such key"))
        }
        Holder::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &key.namespace);
            let map = api
                .get_opt(&key.name)
                .await
                .map_err(|e| missing(&format!("cannot be read ({e})")))?
                .ok_or_else(|| missing("the ConfigMap does not exist"))?;
            map.data
                .and_then(|mut data| data.remove(&key.key))
                .map(String::into_bytes)
                .ok_or_else(|| missing("no such key"))
        }
    }
}
