//! What the `export!` macro expands to. Not a stable API.

use kube::Resource;

use crate::bindings::bosun::reconciler::types as wit;
use crate::{ApiKind, Context, Error, Reconciler};

pub use crate::host::{Host, WasmHost};

/// The module's metadata, with the primary kind taken from `R::Object`.
pub fn metadata<R: Reconciler>() -> wit::ModuleInfo {
    R::metadata().into_wit(ApiKind::of::<R::Object>())
}

/// Runs `R::reconcile` on a request, through JSON on both sides.
pub fn reconcile<R: Reconciler>(
    request: wit::Request,
    host: &dyn Host,
) -> Result<wit::Response, wit::ReconcileError> {
    let (object, ctx) = decode::<R>(&request, host).map_err(Error::into_wit)?;
    R::reconcile(&object, &ctx)
        .and_then(crate::Response::into_wit)
        .map_err(Error::into_wit)
}

/// Runs `R::finalize` on a request, through JSON on both sides.
pub fn finalize<R: Reconciler>(
    request: wit::Request,
    host: &dyn Host,
) -> Result<wit::FinalizeResponse, wit::ReconcileError> {
    let (object, ctx) = decode::<R>(&request, host).map_err(Error::into_wit)?;
    R::finalize(&object, &ctx)
        .map(crate::Finalized::into_wit)
        .map_err(Error::into_wit)
}

fn decode<'a, R: Reconciler>(
    request: &'a wit::Request,
    host: &'a dyn Host,
) -> Result<(R::Object, Context<'a>), Error> {
    let object: R::Object = serde_json::from_str(&request.object).map_err(|e| {
        // The API server validated the object against its schema, so a
        // mismatch is the Rust type's fault or the object's: retrying cannot help.
        Error::permanent(
            "InvalidObject",
            format!(
                "the {} does not match its Rust type: {e}",
                R::Object::kind(&())
            ),
        )
    })?;
    let meta = object.meta();
    let ctx = Context::new(request, meta.namespace.clone(), meta.generation, host)?;
    Ok((object, ctx))
}
