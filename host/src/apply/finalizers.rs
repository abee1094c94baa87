//! The module's finalizer on the primary: added before the first
//! reconcile, removed once `finalize` reports done, each pinned to the
//! version of the object the host looked at.

use serde_json::{Value, json};

use super::{Applier, ApplyError, Operation, describe, is_not_found};
use crate::meta::ModuleMeta;

impl Applier {
    /// Adds `finalizer` to `object` unless it is already there.
    ///
    /// The patch tests the object's `resourceVersion`, so it applies only to
    /// the version the caller looked at: a finalizer list changed meanwhile
    /// is never overwritten.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Conflict`] when the object changed since it was read
    /// (retry on the next event); [`ApplyError::Invalid`] when the object is
    /// already being deleted, since the API server refuses new finalizers
    /// then.
    #[tracing::instrument(skip_all, fields(module = %meta.name, object = %describe(object), finalizer = %finalizer))]
    pub async fn add_finalizer(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        finalizer: &str,
    ) -> Result<(), ApplyError> {
        let mut finalizers = finalizers(object);
        if finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        if object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            return Err(ApplyError::invalid(
                Operation::Finalizer,
                &describe(object),
                "the object is being deleted, and no finalizer can be added then",
            ));
        }
        finalizers.push(finalizer.to_owned());
        self.set_finalizers(meta, object, finalizers).await?;
        tracing::debug!("finalizer added");
        Ok(())
    }

    /// Removes `finalizer` from `object` if it is there; once no finalizer
    /// is left, a deleted object goes away. An object already gone is fine.
    ///
    /// # Errors
    ///
    /// As [`Applier::add_finalizer`]: [`ApplyError::Conflict`] when the
    /// object changed since it was read.
    #[tracing::instrument(skip_all, fields(module = %meta.name, object = %describe(object), finalizer = %finalizer))]
    pub async fn remove_finalizer(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        finalizer: &str,
    ) -> Result<(), ApplyError> {
        let before = finalizers(object);
        let after: Vec<String> = before.iter().filter(|f| *f != finalizer).cloned().collect();
        if after.len() == before.len() {
            return Ok(());
        }
        match self.set_finalizers(meta, object, after).await {
            Ok(()) => {
                tracing::debug!("finalizer removed");
                Ok(())
            }
            // Gone already: whoever removed the last finalizer finished the job.
            Err(ApplyError::Api { source, .. }) if is_not_found(&source) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Replaces the finalizer list, conditional on `resourceVersion`.
    async fn set_finalizers(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        finalizers: Vec<String>,
    ) -> Result<(), ApplyError> {
        let operations =
            vec![json!({"op": "add", "path": "/metadata/finalizers", "value": finalizers})];
        self.patch_pinned(meta, object, Operation::Finalizer, None, operations)
            .await
    }
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
