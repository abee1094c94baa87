//! Write Kubernetes reconcilers for the [bosun] host as WebAssembly components.
//!
//! A reconciler is a function from one object (and what the host observed
//! about it) to the state you want: children to apply, a status to write,
//! events to record, when to look again. The host owns every connection to
//! the API server, applies what you return after checking it, and runs each
//! call in a fresh sandbox. You write plain Rust against typed objects from
//! [`k8s_openapi`] or your own `#[derive(CustomResource)]` types.
//!
//! ```
//! use bosun_sdk::prelude::*;
//! use k8s_openapi::api::core::v1::{ConfigMap, Secret};
//!
//! /// Keeps a `<name>-copy` Secret holding the data of each ConfigMap.
//! struct Mirror;
//!
//! impl Reconciler for Mirror {
//!     type Object = ConfigMap;
//!
//!     fn metadata() -> Metadata {
//!         Metadata::new("mirror", "0.1.0").owns::<Secret>()
//!     }
//!
//!     fn reconcile(source: &ConfigMap, _ctx: &Context) -> Result<Response, Error> {
//!         let copy = Secret {
//!             metadata: ObjectMeta {
//!                 name: Some(format!("{}-copy", source.name_any())),
//!                 ..ObjectMeta::default()
//!             },
//!             string_data: source.data.clone(),
//!             ..Secret::default()
//!         };
//!         Ok(Response::new().child(copy))
//!     }
//! }
//!
//! bosun_sdk::export!(Mirror);
//!
//! // The same logic, natively, through the same JSON boundary the host uses:
//! let source = ConfigMap {
//!     metadata: ObjectMeta { name: Some("settings".into()), namespace: Some("demo".into()), ..Default::default() },
//!     ..Default::default()
//! };
//! let outcome = bosun_sdk::testing::Harness::<Mirror>::new().reconcile(&source).unwrap();
//! assert_eq!(outcome.children::<Secret>()[0].metadata.name.as_deref(), Some("settings-copy"));
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` file
//! in `target/wasm32-wasip2/release/` is the component the host loads.
//!
//! [bosun]: https://github.com/bosun-dev/bosun

#![warn(missing_docs)]

pub mod conditions;
mod context;
mod error;
mod host;
pub mod http;
#[cfg(any(test, target_arch = "wasm32"))]
mod mem;
mod metadata;
mod response;
pub mod testing;

#[doc(hidden)]
pub mod __private;

/// The raw bindings generated from `wit/reconciler.wit`: the contract
/// `bosun:reconciler@0.2.0`, which every component built with this crate targets.
///
/// Reach for these only to do what the typed API cannot, such as returning
/// hand-made JSON; everything else is easier through [`Reconciler`].
pub mod bindings {
    #![allow(missing_docs, clippy::all)]
    wit_bindgen::generate!({
        world: "reconciler",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_reconciler_world",
        default_bindings_module: "::bosun_sdk::bindings",
    });
}

pub use context::{Context, Trigger};
pub use error::Error;
pub use metadata::{ApiKind, KnownScope, Metadata, Scope};
pub use response::{Event, EventType, Finalized, Response};

pub use jiff;
pub use k8s_openapi;
pub use kube;
pub use serde_json;

/// The level of a log line written through [`Context::log`].
pub use bindings::bosun::reconciler::host::LogLevel;

/// A reconciler: the logic of one controller.
///
/// The host calls [`reconcile`](Reconciler::reconcile) for every object of
/// the primary kind whenever it or one of its children changes, when a
/// requested requeue comes due, and on resync. Return the whole desired
/// state every time: the host computes the difference, applies it, and
/// prunes children you no longer return.
pub trait Reconciler {
    /// The primary kind: a k8s-openapi type or a `#[derive(CustomResource)]` type.
    type Object: kube::Resource<DynamicType = (), Scope: KnownScope>
        + serde::de::DeserializeOwned
        + serde::Serialize
        + Clone;

    /// Names the module and declares what it owns and reads. The primary
    /// kind is taken from [`Reconciler::Object`].
    fn metadata() -> Metadata;

    /// Computes the desired state for `object`.
    fn reconcile(object: &Self::Object, ctx: &Context) -> Result<Response, Error>;

    /// Cleans up for `object`, which is being deleted. Called only when
    /// [`Metadata::finalizer`] was declared. The default reports done at once.
    fn finalize(object: &Self::Object, ctx: &Context) -> Result<Finalized, Error> {
        let _ = (object, ctx);
        Ok(Finalized::done())
    }
}

/// Everything a reconciler usually needs, in one import.
pub mod prelude {
    pub use crate::{
        Context, Error, Event, Finalized, Metadata, Reconciler, Response, Trigger, conditions,
    };
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
    pub use kube::{Resource, ResourceExt};
}

/// Exports a [`Reconciler`] as the component's implementation of the
/// `bosun:reconciler/reconciler` world.
///
/// Use it once per crate, on the type that implements [`Reconciler`]. On
/// native targets it expands to nothing, so the same crate can be tested
/// with [`testing::Harness`].
#[macro_export]
macro_rules! export {
    ($reconciler:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __BosunComponent;

            impl $crate::bindings::Guest for __BosunComponent {
                fn metadata() -> $crate::bindings::bosun::reconciler::types::ModuleInfo {
                    $crate::__private::metadata::<$reconciler>()
                }

                fn reconcile(
                    request: $crate::bindings::bosun::reconciler::types::Request,
                ) -> ::core::result::Result<
                    $crate::bindings::bosun::reconciler::types::Response,
                    $crate::bindings::bosun::reconciler::types::ReconcileError,
                > {
                    $crate::__private::reconcile::<$reconciler>(request, &$crate::__private::WasmHost)
                }

                fn finalize(
                    request: $crate::bindings::bosun::reconciler::types::Request,
                ) -> ::core::result::Result<
                    $crate::bindings::bosun::reconciler::types::FinalizeResponse,
                    $crate::bindings::bosun::reconciler::types::ReconcileError,
                > {
                    $crate::__private::finalize::<$reconciler>(request, &$crate::__private::WasmHost)
                }
            }

            $crate::bindings::__export_reconciler_world!(__BosunComponent with_types_in $crate::bindings);
        };
    };
}
