//! The cnat reconciler under a kind of the benchmark's choosing.
//!
//! The memory scenario of `cargo xtask bench` runs M modules in one host,
//! each reconciling a kind of its own (M CRDs generated for the run), beside
//! M native controller processes. M builds of a crate per run would cost
//! minutes; instead the kind is read at run time from a marked static in
//! the component's data, and `bosun_testenv::guests::cnat_fleet` writes one
//! copy of the built component per kind with those bytes replaced. Each copy
//! is a distinct component (its own hash, its own compiled code in the
//! host), as M modules from M teams would be.
//!
//! cnat's logic is compiled in from the example's source
//! (`examples/cnat/src/at.rs`) rather than linked as a crate: the `cnat`
//! crate exports itself as a component, and two exports cannot share one.
//!
//! Every copy declares module `cnat-<kind in lower case>`, primary kind
//! `fleet.bench.bosun.dev/v1alpha1 <kind>` (plural: the kind in lower case
//! plus `s`), owns Pods, and runs cnat's reconcile unchanged.

use std::borrow::Cow;

// clippy reads kube's repeated `printcolumn(type_ = …)` arguments as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[path = "../../../../examples/cnat/src/at.rs"]
pub mod cnat;

use bosun_sdk::prelude::*;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

/// The API group of every fleet kind.
pub const GROUP: &str = "fleet.bench.bosun.dev";
/// The version of every fleet kind (that of cnat's CRD, whose schema they share).
pub const VERSION: &str = "v1alpha1";

/// The kind, patched into the built component by the benchmark.
#[used]
static FLEET_KIND: [u8; 27] = *b"FLEET-KIND=At              ";

/// Where the kind starts in `FLEET_KIND`: after the marker the patcher looks for.
const KIND_AT: usize = "FLEET-KIND=".len();

/// The kind this copy reconciles, read at run time so the compiler cannot
/// fold it.
fn kind() -> String {
    // SAFETY: a plain read of an initialised static.
    let bytes = unsafe { core::ptr::read_volatile(&FLEET_KIND) };
    String::from_utf8_lossy(&bytes[KIND_AT..]).trim().to_owned()
}

/// An object of this copy's kind: cnat's `At` under another name.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct FleetAt {
    metadata: ObjectMeta,
    spec: cnat::AtSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<cnat::AtStatus>,
}

impl Resource for FleetAt {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        kind().into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        format!("{}s", kind().to_lowercase()).into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// cnat's reconciler for this copy's kind.
pub struct CnatFleet;

impl Reconciler for CnatFleet {
    type Object = FleetAt;

    fn metadata() -> Metadata {
        Metadata::new(
            format!("cnat-{}", kind().to_lowercase()),
            env!("CARGO_PKG_VERSION"),
        )
        .owns::<Pod>()
    }

    fn reconcile(object: &FleetAt, ctx: &Context) -> Result<Response, Error> {
        let at = cnat::At {
            metadata: object.metadata.clone(),
            spec: object.spec.clone(),
            status: object.status.clone(),
        };
        cnat::Cnat::reconcile(&at, ctx)
    }
}

bosun_sdk::export!(CnatFleet);
