//! `Mirror`: the data of a ConfigMap, copied into the Mirror's status, the
//! names of the ConfigMaps a label selector picks, and the keys (never the
//! values) of a Secret.
//!
//! The example shows event-driven reads: it declares `reads::<ConfigMap>()`
//! and `reads::<Secret>()` and reads through `ctx.get` and `ctx.list`, and
//! nothing else. The host
//! records what each reconcile read — a ConfigMap by name, found or not,
//! and a list by selector — and reconciles the Mirror again when one of
//! them is created, changed or deleted, or a ConfigMap's labels move it
//! into or out of the selection. No mapping function, no resync.

// clippy reads kube's repeated `printcolumn(type_ = …)` arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use bosun_sdk::prelude::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to mirror: one ConfigMap by name, and optionally the ConfigMaps a
/// label selector picks, all in the Mirror's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "examples.bosun.dev",
    version = "v1alpha1",
    kind = "Mirror",
    namespaced,
    status = "MirrorStatus",
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.configMapName"),
    printcolumn(name = "Found", type_ = "boolean", json_path = ".status.found"),
    printcolumn(name = "Selected", type_ = "string", json_path = ".status.selected")
)]
#[serde(rename_all = "camelCase")]
pub struct MirrorSpec {
    /// The ConfigMap whose data the status mirrors.
    pub config_map_name: String,
    /// A label selector (`app=web,tier in (a,b)`): the ConfigMaps it picks
    /// are named in the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// A Secret whose keys (never its values) the status lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// What the Mirror saw.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorStatus {
    /// The generation of the spec this status describes (set by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the ConfigMap exists.
    #[serde(default)]
    pub found: bool,
    /// Its data.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// The names of the ConfigMaps the selector picks, sorted.
    #[serde(default)]
    pub selected: Vec<String>,
    /// The keys of the Secret's data, sorted; empty when it does not exist.
    #[serde(default)]
    pub secret_keys: Vec<String>,
}

/// The mirror reconciler.
pub struct Mirrors;

impl Reconciler for Mirrors {
    type Object = Mirror;

    fn metadata() -> Metadata {
        Metadata::new("mirror", env!("CARGO_PKG_VERSION"))
            .reads::<ConfigMap>()
            .reads::<Secret>()
    }

    fn reconcile(mirror: &Mirror, ctx: &Context) -> Result<Response, Error> {
        let name = mirror.spec.config_map_name.trim();
        if name.is_empty() {
            return Err(Error::permanent(
                "InvalidSpec",
                "spec.configMapName must name a ConfigMap",
            ));
        }
        let source = ctx.get::<ConfigMap>(name)?;
        let mut selected: Vec<String> = match &mirror.spec.selector {
            Some(selector) => ctx
                .list::<ConfigMap>(Some(selector))
                .map_err(|e| Error::permanent("InvalidSelector", e.to_string()))?
                .iter()
                .map(ResourceExt::name_any)
                .collect(),
            None => Vec::new(),
        };
        selected.sort();
        let secret_keys = match &mirror.spec.secret_name {
            Some(name) => ctx
                .get::<Secret>(name)?
                .and_then(|secret| secret.data)
                .map(|data| data.into_keys().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Response::new().status(MirrorStatus {
            observed_generation: None,
            found: source.is_some(),
            data: source.and_then(|c| c.data).unwrap_or_default(),
            selected,
            secret_keys,
        }))
    }
}

bosun_sdk::export!(Mirrors);
