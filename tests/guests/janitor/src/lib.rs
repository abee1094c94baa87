//! A reconciler with a finalizer, for the host's end-to-end tests.
//!
//! A `Tidy` gets a ConfigMap `<name>-data`. When it is deleted, `finalize`
//! holds the deletion until `spec.release` is true or a ConfigMap
//! `<name>-release` exists, then reports done, so a test can watch the host
//! add the finalizer, call `finalize` again when the object or what it
//! read changes, and remove the finalizer. It asks to be called again only
//! after a minute: the host's event-driven reads bring it back sooner.

// clippy reads kube's derive arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::time::Duration;

use bosun_sdk::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The finalizer the host holds on every `Tidy`.
pub const FINALIZER: &str = "tests.bosun.dev/janitor";

/// An object whose deletion waits for `release`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tests.bosun.dev",
    version = "v1",
    kind = "Tidy",
    namespaced,
    status = "TidyStatus"
)]
pub struct TidySpec {
    /// Let the deletion finish.
    #[serde(default)]
    pub release: bool,
}

/// What the janitor reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TidyStatus {
    /// The generation this status describes (set by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The name of the ConfigMap kept for the object.
    #[serde(default)]
    pub data: String,
}

/// The janitor reconciler.
pub struct Janitor;

impl Reconciler for Janitor {
    type Object = Tidy;

    fn metadata() -> Metadata {
        Metadata::new("janitor", env!("CARGO_PKG_VERSION"))
            .owns::<ConfigMap>()
            .finalizer(FINALIZER)
    }

    fn reconcile(tidy: &Tidy, _ctx: &Context) -> Result<Response, Error> {
        let name = format!("{}-data", tidy.name_any());
        let data = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            data: Some([("owner".to_owned(), tidy.name_any())].into()),
            ..ConfigMap::default()
        };
        Ok(Response::new().child(data).status(TidyStatus {
            observed_generation: None,
            data: name,
        }))
    }

    fn finalize(tidy: &Tidy, ctx: &Context) -> Result<Finalized, Error> {
        let release = format!("{}-release", tidy.name_any());
        if tidy.spec.release || ctx.get::<ConfigMap>(&release)?.is_some() {
            ctx.info("released; letting the deletion finish");
            Ok(Finalized::done().event(Event::normal("Released", "cleanup finished")))
        } else {
            Ok(
                Finalized::pending(Duration::from_secs(60)).event(Event::normal(
                    "Holding",
                    format!("waiting for spec.release or ConfigMap {release}"),
                )),
            )
        }
    }
}

bosun_sdk::export!(Janitor);
