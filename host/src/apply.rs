//! Turns a [`Plan`] into API writes: server-side apply of the children,
//! guarded deletes of the pruned ones, the status write and the events.
//!
//! Two rules shape everything here:
//!
//! - **No write without a change.** A reconcile of an unchanged object must
//!   cause zero write requests, or every resync and every status change of
//!   a child would turn into a write and a new watch event. A child (or the
//!   status) is skipped when what the host wants is a [semantic subset] of
//!   what it observed *and* is the very body this host applied last time
//!   ([`applied`]), so a field the module stopped setting is still removed.
//! - **Delete only what is provably ours.** A planned prune is re-checked
//!   against the observed object with [`plan::is_prunable`] and sent with
//!   `uid` and `resourceVersion` preconditions, so an object re-created
//!   under the same name, or changed since it was checked, is never deleted.
//!
//! Writes stop at the first failure and the error is returned: the caller
//! backs off and reconciles again, and the no-op rule makes the writes that
//! already succeeded free the next time.
//!
//! [semantic subset]: is_semantic_subset

mod applied;

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use serde_json::{Map, Number, Value, json};

use crate::engine::bindings as wit;
use crate::meta::{Kind, ModuleMeta, Scope, group_of, truncate_at_char_boundary};
use crate::plan::{self, ObjectRef, Plan};
use crate::validate::Primary;
use applied::{LastApplied, Owner, STATUS};

pub use crate::plan::RECONCILED_CONDITION;

/// The Events API rejects a `reason` or `action` longer than this.
const MAX_EVENT_FIELD_BYTES: usize = 128;

/// The action recorded for an event that names none: `events.k8s.io/v1`
/// requires one.
const DEFAULT_EVENT_ACTION: &str = "Reconcile";

/// The reason recorded for a permanent error that names none: the
/// condition and the event both require one.
const DEFAULT_ERROR_REASON: &str = "ReconcileFailed";

/// The kind of write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply of a child.
    Apply,
    /// Deletion of a pruned child.
    Prune,
    /// Server-side apply of the primary's status.
    Status,
    /// Recording an event against the primary.
    Event,
    /// Adding or removing the module's finalizer on the primary.
    Finalizer,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Apply => "apply",
            Operation::Prune => "prune",
            Operation::Status => "status write",
            Operation::Event => "event",
            Operation::Finalizer => "finalizer update",
        })
    }
}

/// A write that failed. Names the operation and the object, e.g.
/// `apply of Deployment.apps/v1 team-a/shop failed: …`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused the write because the object changed
    /// meanwhile (409 Conflict; for finalizer updates also a failed
    /// `resourceVersion` test, 422). Retry with a fresh copy.
    #[error(
        "{operation} of {object} conflicted with a concurrent change (retry with a fresh copy): {source}"
    )]
    Conflict {
        /// What was being written.
        operation: Operation,
        /// The object, as `Kind.apiVersion namespace/name`.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// The API server (or the connection to it) failed the write.
    #[error("{operation} of {object} failed: {source}")]
    Api {
        /// What was being written.
        operation: Operation,
        /// The object, as `Kind.apiVersion namespace/name`.
        object: String,
        /// The API server's answer, or the transport error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The write could not even be formed: the object lacks a field every
    /// object has, or is of a kind the module did not declare.
    #[error("cannot {operation} {object}: {reason}")]
    Invalid {
        /// What was being written.
        operation: Operation,
        /// The object, as far as it could be named.
        object: String,
        /// What is missing or wrong.
        reason: String,
    },
}

impl ApplyError {
    /// True for a conflict with a concurrent change: retrying on the next
    /// event, with a fresh copy of the object, is the cure.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApplyError::Conflict { .. })
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            ApplyError::Conflict { operation, .. }
            | ApplyError::Api { operation, .. }
            | ApplyError::Invalid { operation, .. } => *operation,
        }
    }

    /// The object the failed write was for.
    pub fn object(&self) -> &str {
        match self {
            ApplyError::Conflict { object, .. }
            | ApplyError::Api { object, .. }
            | ApplyError::Invalid { object, .. } => object,
        }
    }

    fn api(operation: Operation, object: &str, source: kube::Error) -> Self {
        let conflict = match &source {
            kube::Error::Api(status) => status.code == 409,
            _ => false,
        };
        let object = object.to_owned();
        let source = Box::new(source);
        if conflict {
            ApplyError::Conflict {
                operation,
                object,
                source,
            }
        } else {
            ApplyError::Api {
                operation,
                object,
                source,
            }
        }
    }

    fn invalid(operation: Operation, object: &str, reason: impl Into<String>) -> Self {
        ApplyError::Invalid {
            operation,
            object: object.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What [`Applier::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Children server-side-applied.
    pub applied: usize,
    /// Children skipped because the observed object already holds every
    /// desired field.
    pub unchanged: usize,
    /// Children deleted (or found already gone).
    pub pruned: usize,
    /// Whether the status was written.
    pub status_written: bool,
    /// Events recorded.
    pub events: usize,
}

/// Writes plans to the API server under each module's field manager.
///
/// Cheap to clone; one is meant to be shared by every module of a host,
/// since the event recorder behind it merges repeated events into series.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    recorder: Recorder,
    last_applied: Arc<LastApplied>,
}

impl fmt::Debug for Applier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Applier").finish_non_exhaustive()
    }
}

impl Applier {
    /// An applier writing through `client`, recording events as the
    /// controller `reporter` (e.g. `bosun`; the host name is the instance).
    pub fn new(client: Client, reporter: &str) -> Self {
        let recorder = Recorder::new(client.clone(), Reporter::from(reporter));
        Applier {
            client,
            recorder,
            last_applied: Arc::default(),
        }
    }

    /// Forgets what was applied for the primary `namespace/name` of
    /// `meta`'s module: call it once the primary is gone, so the record
    /// does not outlive the objects it describes.
    pub fn forget(&self, meta: &ModuleMeta, namespace: Option<&str>, name: &str) {
        self.last_applied.forget(&Owner::new(
            meta.field_manager(),
            namespace.map(str::to_owned),
            name.to_owned(),
        ));
    }

    /// Writes `plan` for `object` (the primary as JSON, from the cache),
    /// given the `observed` children (JSON, from the cache), in this order:
    /// children, prunes, status, events.
    ///
    /// A child or status is not written when the observed object already
    /// holds it (see [`is_semantic_subset`]) and it is the body this applier
    /// sent last time, so reconciling an unchanged object makes no write
    /// request at all, while a field the module stopped setting is removed.
    ///
    /// # Errors
    ///
    /// Stops at the first failed write of a child, prune or status and
    /// returns it; the writes before it stay. Events are notices, not state:
    /// a failed event is logged and left out of [`ApplyReport::events`]
    /// rather than failing (and so repeating) a reconcile whose writes all
    /// succeeded.
    #[tracing::instrument(name = "apply", skip_all, fields(module = %meta.name, object = %describe(object)))]
    pub async fn apply(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        observed: &[Value],
        plan: &Plan,
    ) -> Result<ApplyReport, ApplyError> {
        let mut report = ApplyReport::default();
        let manager = meta.field_manager();
        let apply_params = PatchParams::apply(&manager).force();
        let owner = self.owner(meta, object, Operation::Apply)?;

        for child in &plan.apply {
            let name = describe(child);
            let (kind, namespace, child_name) = locate(meta, child)?;
            let live = observed.iter().find(|o| same_identity(child, o));
            if live.is_some_and(|live| is_semantic_subset(child, live))
                && self.last_applied.is_unchanged(&owner, &name, child)
            {
                tracing::debug!(child = %name, "unchanged, not applied");
                report.unchanged += 1;
                continue;
            }
            self.api(kind, namespace.as_deref())
                .patch(&child_name, &apply_params, &Patch::Apply(child))
                .await
                .map_err(|e| ApplyError::api(Operation::Apply, &name, e))?;
            self.last_applied.record(&owner, &name, child);
            tracing::debug!(child = %name, observed = live.is_some(), "applied");
            report.applied += 1;
        }

        if !plan.prune.is_empty() {
            let primary = Primary::from_object(object).map_err(|e| {
                ApplyError::invalid(Operation::Prune, &describe(object), e.to_string())
            })?;
            for target in &plan.prune {
                if self.prune(meta, &primary, observed, target).await? {
                    self.last_applied
                        .forget_target(&owner, &describe_ref(target));
                    report.pruned += 1;
                }
            }
        }

        if let Some(status) = &plan.status {
            let current = object.get("status").unwrap_or(&Value::Null);
            if is_semantic_subset(status, current)
                && self.last_applied.is_unchanged(&owner, STATUS, status)
            {
                tracing::debug!("status unchanged, not written");
            } else {
                self.write_status(meta, object, status.clone(), &apply_params)
                    .await?;
                self.last_applied.record(&owner, STATUS, status);
                report.status_written = true;
            }
        }

        let reference = object_reference(object);
        for event in &plan.events {
            match self.publish(&reference, event).await {
                Ok(()) => report.events += 1,
                Err(error) => {
                    tracing::warn!(%error, reason = %event.reason, "could not record event")
                }
            }
        }

        tracing::debug!(?report, "plan written");
        Ok(report)
    }

    /// Reports an error no retry can fix: upserts a `Reconciled` condition
    /// (status `False`, `reason`, `message`, `observedGeneration`,
    /// `lastTransitionTime`) into the object's current status and applies
    /// that status under the module's field manager, so the fields the
    /// module's status writes own stay; then records a Warning event.
    ///
    /// The status write is skipped when an identical condition is already
    /// there, so reporting the same error again writes only the event.
    ///
    /// # Errors
    ///
    /// The failed status write or event, named.
    #[tracing::instrument(skip_all, fields(module = %meta.name, object = %describe(object), reason = %reason))]
    pub async fn report_permanent_error(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        reason: &str,
        message: &str,
    ) -> Result<(), ApplyError> {
        let reason = if reason.trim().is_empty() {
            DEFAULT_ERROR_REASON
        } else {
            reason
        };
        let generation = object.pointer("/metadata/generation").cloned();
        let mut status = match object.get("status") {
            Some(Value::Object(status)) => status.clone(),
            _ => Map::new(),
        };
        // Anything but a list of conditions is replaced rather than fail to
        // report the error at all.
        let mut conditions = match status.remove("conditions") {
            Some(Value::Array(conditions)) => conditions,
            _ => Vec::new(),
        };
        let existing = conditions
            .iter()
            .position(|c| c.get("type").and_then(Value::as_str) == Some(RECONCILED_CONDITION));
        let previous = existing.map(|i| &conditions[i]);
        let text = |c: Option<&Value>, field: &str| {
            c.and_then(|c| c.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let identical = text(previous, "status").as_deref() == Some("False")
            && text(previous, "reason").as_deref() == Some(reason)
            && text(previous, "message").as_deref() == Some(message)
            && previous.and_then(|c| c.get("observedGeneration")) == generation.as_ref();

        let event = wit::Event {
            event_type: wit::EventType::Warning,
            reason: reason.to_owned(),
            note: message.to_owned(),
            action: DEFAULT_EVENT_ACTION.to_owned(),
        };
        // The event first: it reaches the user even where the kind's status
        // schema has no conditions to hold the condition.
        self.publish(&object_reference(object), &event)
            .await
            .map_err(|e| ApplyError::api(Operation::Event, &describe(object), e))?;
        if identical {
            tracing::debug!("condition already reported, status not written");
        } else {
            // Like meta.SetStatusCondition: the transition time moves only
            // when the condition's status does.
            let transition = match previous {
                Some(c) if text(Some(c), "status").as_deref() == Some("False") => c
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or_else(|| json!(now())),
                _ => json!(now()),
            };
            let mut condition = json!({
                "type": RECONCILED_CONDITION,
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition,
            });
            if let (Some(generation), Value::Object(c)) = (&generation, &mut condition) {
                c.insert("observedGeneration".into(), generation.clone());
            }
            match existing {
                Some(i) => conditions[i] = condition,
                None => conditions.push(condition),
            }
            status.insert("conditions".into(), Value::Array(conditions));
            let params = PatchParams::apply(&meta.field_manager()).force();
            // The module's own status body is no longer what was applied last.
            let owner = self.owner(meta, object, Operation::Status)?;
            self.last_applied.forget_target(&owner, STATUS);
            match self
                .write_status(meta, object, Value::Object(status), &params)
                .await
            {
                Err(error) if error.to_string().contains("not declared in schema") => {
                    tracing::debug!(%error, "the status schema has no conditions; the event alone reports the error");
                }
                result => result?,
            }
        }
        Ok(())
    }

    /// Records `events` against `object`, as `reporter` (see [`Applier::new`]).
    /// A repeated event within a few minutes becomes a series on one Event
    /// object rather than a new object each time.
    ///
    /// # Errors
    ///
    /// Stops at the first event the API server refuses.
    #[tracing::instrument(skip_all, fields(module = %meta.name, object = %describe(object)))]
    pub async fn record_events(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        events: &[wit::Event],
    ) -> Result<(), ApplyError> {
        let reference = object_reference(object);
        for event in events {
            self.publish(&reference, event)
                .await
                .map_err(|e| ApplyError::api(Operation::Event, &describe(object), e))?;
        }
        Ok(())
    }

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
        let name = describe(object);
        let (namespace, object_name) = primary_location(object, Operation::Finalizer)?;
        let version = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApplyError::invalid(
                    Operation::Finalizer,
                    &name,
                    "the object has no metadata.resourceVersion",
                )
            })?;
        let patch = serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
        ]))
        .map_err(|e| {
            ApplyError::invalid(
                Operation::Finalizer,
                &name,
                format!("building the JSON patch: {e}"),
            )
        })?;
        self.api(&meta.primary, namespace.as_deref())
            .patch(
                &object_name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(|e| match e {
                // A failed `test` is the API server's 422: the object moved on.
                kube::Error::Api(ref status) if status.code == 422 => ApplyError::Conflict {
                    operation: Operation::Finalizer,
                    object: name.clone(),
                    source: Box::new(e),
                },
                e => ApplyError::api(Operation::Finalizer, &name, e),
            })?;
        Ok(())
    }

    /// Deletes one planned prune if the observed object is still prunable.
    /// Returns whether it is gone now.
    async fn prune(
        &self,
        meta: &ModuleMeta,
        primary: &Primary,
        observed: &[Value],
        target: &ObjectRef,
    ) -> Result<bool, ApplyError> {
        let name = describe_ref(target);
        // Never trust the plan alone: the object must be observed, and
        // still owned and applied by this module, right now.
        let Some(live) = observed.iter().find(|o| same_ref(target, o)) else {
            tracing::debug!(child = %name, "not observed any more, nothing to prune");
            return Ok(false);
        };
        if !plan::is_prunable(meta, primary, live) {
            tracing::warn!(child = %name, "planned prune refused: not controlled by this object and applied by this module");
            return Ok(false);
        }
        let text = |pointer: &str| {
            live.pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let Some(uid) = text("/metadata/uid") else {
            tracing::warn!(child = %name, "planned prune refused: the observed object has no uid to pin the delete to");
            return Ok(false);
        };
        let kind = meta
            .owned(&target.api_version, &target.kind)
            .ok_or_else(|| {
                ApplyError::invalid(Operation::Prune, &name, "not a kind the module owns")
            })?;
        let params = DeleteParams {
            // The object must be the very one checked above: not one
            // re-created under the same name (uid), nor one changed since,
            // e.g. handed to another owner (resourceVersion).
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: text("/metadata/resourceVersion").map(str::to_owned),
            }),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match self
            .api(kind, target.namespace.as_deref())
            .delete(&target.name, &params)
            .await
        {
            Ok(_) => {
                tracing::debug!(child = %name, "pruned");
                Ok(true)
            }
            Err(e) if is_not_found(&e) => {
                tracing::debug!(child = %name, "already gone");
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // A failed precondition: the name now holds another object
                // or a newer version of it. Its watch event brings a
                // reconcile that decides afresh.
                tracing::info!(child = %name, message = %status.message, "not pruned: the object changed since it was observed");
                Ok(false)
            }
            Err(e) => Err(ApplyError::api(Operation::Prune, &name, e)),
        }
    }

    /// Server-side-applies `status` to the primary's status subresource.
    async fn write_status(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        status: Value,
        params: &PatchParams,
    ) -> Result<(), ApplyError> {
        let name = describe(object);
        let (namespace, object_name) = primary_location(object, Operation::Status)?;
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(object_name));
        if let Some(namespace) = &namespace {
            metadata.insert("namespace".into(), json!(namespace));
        }
        let body = json!({
            "apiVersion": meta.primary.api_version(),
            "kind": meta.primary.kind,
            "metadata": metadata,
            "status": status,
        });
        self.api(&meta.primary, namespace.as_deref())
            .patch_status(&object_name, params, &Patch::Apply(&body))
            .await
            .map_err(|e| ApplyError::api(Operation::Status, &name, e))?;
        tracing::debug!("status written");
        Ok(())
    }

    async fn publish(
        &self,
        reference: &ObjectReference,
        event: &wit::Event,
    ) -> Result<(), kube::Error> {
        let action = if event.action.trim().is_empty() {
            DEFAULT_EVENT_ACTION
        } else {
            &event.action
        };
        let event = KubeEvent {
            type_: match event.event_type {
                wit::EventType::Normal => KubeEventType::Normal,
                wit::EventType::Warning => KubeEventType::Warning,
            },
            reason: truncate_at_char_boundary(&event.reason, MAX_EVENT_FIELD_BYTES).to_owned(),
            note: Some(event.note.clone()).filter(|n| !n.is_empty()),
            action: truncate_at_char_boundary(action, MAX_EVENT_FIELD_BYTES).to_owned(),
            secondary: None,
        };
        self.recorder.publish(&event, reference).await
    }

    /// Whose writes these are: the module's field manager and the primary.
    fn owner(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        operation: Operation,
    ) -> Result<Owner, ApplyError> {
        let (namespace, name) = primary_location(object, operation)?;
        Ok(Owner::new(meta.field_manager(), namespace, name))
    }

    /// An API for `kind`, in `namespace` when the kind is namespaced.
    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        match (kind.scope, namespace) {
            (Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        }
    }
}

/// The kind, namespace and name of a desired child, checked against what
/// the module owns.
fn locate<'m>(
    meta: &'m ModuleMeta,
    child: &Value,
) -> Result<(&'m Kind, Option<String>, String), ApplyError> {
    let text = |pointer: &str| {
        child
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let kind = meta
        .owned(text("/apiVersion"), text("/kind"))
        .ok_or_else(|| {
            ApplyError::invalid(
                Operation::Apply,
                &describe(child),
                "not a kind the module owns",
            )
        })?;
    let name = text("/metadata/name");
    if name.is_empty() {
        return Err(ApplyError::invalid(
            Operation::Apply,
            &describe(child),
            "the object has no metadata.name",
        ));
    }
    let namespace = Some(text("/metadata/namespace"))
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    Ok((kind, namespace, name.to_owned()))
}

/// The no-op rule: true when every field of `desired` is in `live` with an
/// equal value, so applying `desired` would change nothing.
///
/// Maps compare key by key (extra keys in `live` are fine: the API server
/// fills in defaults such as `imagePullPolicy` or `terminationMessagePath`,
/// and other field managers own fields too). Lists must have the same
/// length and compare element by element, in order. Numbers compare by
/// value (`1` equals `1.0`). A desired `null`, `{}` or `[]` matches a
/// field missing from `live`, because the API server omits empty fields.
/// Nothing else is ignored.
///
/// The rule cannot see a field the module *stopped* setting (the cache keeps
/// no `fieldsV1` to tell which fields the module owns); [`Applier::apply`]
/// pairs it with a record of the body it applied last for that reason.
pub fn is_semantic_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => {
            desired.iter().all(|(key, value)| match live.get(key) {
                Some(live) => is_semantic_subset(value, live),
                None => is_empty(value),
            })
        }
        (Value::Array(desired), Value::Array(live)) => {
            desired.len() == live.len()
                && desired
                    .iter()
                    .zip(live)
                    .all(|(d, l)| is_semantic_subset(d, l))
        }
        (Value::Number(desired), Value::Number(live)) => same_number(desired, live),
        (desired, Value::Null) => is_empty(desired),
        (desired, live) => desired == live,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

fn same_number(a: &Number, b: &Number) -> bool {
    // Exact first: large integers lose precision as floats.
    a == b || ((a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64())
}

/// The same object (group, kind, namespace, name), whichever version of
/// its group each side was read through.
fn same_identity(a: &Value, b: &Value) -> bool {
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let group = |v: &Value| group_of(&text(v, "/apiVersion")).to_owned();
    text(a, "/kind") == text(b, "/kind")
        && text(a, "/metadata/name") == text(b, "/metadata/name")
        && text(a, "/metadata/namespace") == text(b, "/metadata/namespace")
        && group(a) == group(b)
}

fn same_ref(target: &ObjectRef, object: &Value) -> bool {
    let mut desired = json!({
        "apiVersion": target.api_version,
        "kind": target.kind,
        "metadata": {"name": target.name},
    });
    if let Some(namespace) = &target.namespace {
        desired["metadata"]["namespace"] = json!(namespace);
    }
    same_identity(&desired, object)
}

/// The namespace and name of the primary object.
fn primary_location(
    object: &Value,
    operation: Operation,
) -> Result<(Option<String>, String), ApplyError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApplyError::invalid(
                operation,
                &describe(object),
                "the object has no metadata.name",
            )
        })?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    Ok((namespace, name.to_owned()))
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

/// The reference events are recorded against. `resourceVersion` is left
/// out on purpose: the recorder merges repeats of an event into a series
/// only when the reference is equal, and every write changes the version.
fn object_reference(object: &Value) -> ObjectReference {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ObjectReference {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
        uid: text("/metadata/uid"),
        ..ObjectReference::default()
    }
}

/// `Kind.apiVersion namespace/name`, for errors and logs.
fn describe(object: &Value) -> String {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    format_object(
        text("/kind"),
        text("/apiVersion"),
        Some(text("/metadata/namespace")),
        text("/metadata/name"),
    )
}

fn describe_ref(target: &ObjectRef) -> String {
    format_object(
        &target.kind,
        &target.api_version,
        target.namespace.as_deref(),
        &target.name,
    )
}

fn format_object(kind: &str, api_version: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|n| !n.is_empty()) {
        Some(namespace) => format!("{kind}.{api_version} {namespace}/{name}"),
        None => format!("{kind}.{api_version} {name}"),
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_changes() {
        let desired = json!({"spec": {"containers": [{"name": "web", "image": "nginx"}]}});
        let live = json!({"spec": {"containers": [{
            "name": "web", "image": "nginx",
            "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log"
        }], "restartPolicy": "Always"}});
        assert!(is_semantic_subset(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_value_is_a_change() {
        let live = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        assert!(!is_semantic_subset(
            &json!({"spec": {"replicas": 3}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"paused": true}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"ports": [{"port": 81}]}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"replicas": "2"}}),
            &live
        ));
    }

    #[test]
    fn lists_compare_in_order() {
        let live = json!({"args": ["a", "b"]});
        assert!(is_semantic_subset(&json!({"args": ["a", "b"]}), &live));
        assert!(!is_semantic_subset(&json!({"args": ["b", "a"]}), &live));
    }

    #[test]
    fn numbers_compare_by_value_and_empty_values_match_absent_ones() {
        assert!(is_semantic_subset(
            &json!({"weight": 1.0}),
            &json!({"weight": 1})
        ));
        assert!(!is_semantic_subset(
            &json!({"weight": 1.5}),
            &json!({"weight": 1})
        ));
        assert!(is_semantic_subset(
            &json!({"port": null, "labels": {}, "args": []}),
            &json!({})
        ));
        assert!(!is_semantic_subset(
            &json!({"port": 80}),
            &json!({"port": null})
        ));
    }

    #[test]
    fn identity_ignores_the_version_within_a_group() {
        let a = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}});
        let b = json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}});
        let other = json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}});
        assert!(same_identity(&a, &b));
        assert!(!same_identity(&a, &other));
    }

    #[test]
    fn event_fields_are_cut_on_character_boundaries() {
        assert_eq!(truncate_at_char_boundary("ab", 128), "ab");
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
    }
}
