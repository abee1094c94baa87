//! Turns a [`Plan`] into API writes: the children, guarded deletes of the
//! pruned ones, the status write and the events.
//!
//! Three rules shape everything here:
//!
//! - **No adoption.** A child is written only where nothing of its name
//!   exists or where the object there is this module's child of this
//!   primary; anything else is a conflict, reported and left alone
//!   ([`children`]).
//! - **No write without a change.** A reconcile of an unchanged object must
//!   cause zero write requests, or every resync and every status change of
//!   a child would turn into a write and a new watch event. A child (or the
//!   status) is skipped when what the host wants is a [semantic subset] of
//!   what it observed *and* is the very body this host applied last time
//!   ([`applied`]), so a field the module stopped setting is still removed.
//! - **Delete only what is provably ours.** A planned prune is re-checked
//!   against the observed object with [`plan::is_prunable`] and sent with
//!   `uid` and `resourceVersion` preconditions.
//!
//! Writes stop at the first failure and the error is returned, saying what
//! to do next ([`ApplyError::retry`]); the caller reports it on the primary
//! ([`Applier::report_failure`]) and the no-op rule makes the writes that
//! already succeeded free the next time. A host that has lost leadership
//! writes nothing more ([`Applier::close`]).
//!
//! [semantic subset]: is_semantic_subset

mod applied;
mod children;
pub mod correlator;
mod error;
mod events;
mod finalizers;
mod status;
mod subset;
mod traced;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::discovery::StatusRoom;
use crate::meta::{Kind, ModuleMeta, Scope, group_of};
use crate::plan::{ObjectRef, Plan};
use crate::validate::Primary;
use applied::{LastApplied, Owner, STATUS};
use correlator::Source;

pub use crate::plan::RECONCILED_CONDITION;
pub use correlator::Source as EventSource;
pub use error::{ApplyError, Operation, Retry};
pub use events::Recorded;
pub use subset::is_semantic_subset;

/// `child` with the bucket label of its primary's bucket, whatever the
/// guest put there: the label is the host's.
fn with_bucket_label(child: &Value, bucket: u16) -> Value {
    let mut child = child.clone();
    if let Some(metadata) = child.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[crate::shard::LABEL] = json!(bucket.to_string());
    }
    child
}

/// What [`Applier::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Children created or server-side-applied.
    pub applied: usize,
    /// Children skipped because the observed object already holds every
    /// desired field.
    pub unchanged: usize,
    /// Children deleted (or found already gone).
    pub pruned: usize,
    /// Whether the status was written (the module's, or the host's
    /// condition cleared).
    pub status_written: bool,
    /// Events recorded.
    pub events: usize,
    /// Events dropped over the object's budget.
    pub events_dropped: usize,
}

impl ApplyReport {
    /// True when the reconcile wrote something: a child, a prune, the
    /// status, or an event (a write too, and one a guest can repeat on
    /// every call): what a hot loop is made of.
    pub fn wrote(&self) -> bool {
        self.applied > 0 || self.pruned > 0 || self.status_written || self.events > 0
    }
}

/// Writes plans to the API server under each module's field manager.
///
/// Cheap to clone; one is meant to be shared by every module of a host,
/// since the event recorder behind it merges repeated events into series.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    events: Arc<events::EventWriter>,
    last_applied: Arc<LastApplied>,
    /// Open while this host may write: from the start without leader
    /// election, from taking the Lease with it (a standby writes nothing),
    /// closed for good when it loses leadership.
    open: Arc<AtomicBool>,
    /// On a sharded host: every child carries its primary's bucket label
    /// ([`crate::shard::LABEL`]), so the filtered watches see it.
    shard_label: bool,
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
        let events = Arc::new(events::EventWriter::new(client.clone(), reporter));
        Applier {
            client,
            events,
            last_applied: Arc::default(),
            open: Arc::new(AtomicBool::new(true)),
            shard_label: false,
        }
    }

    /// This applier, labelling every child with its primary's bucket: a
    /// sharded host's. Unsharded, the label is not applied, so a child
    /// loses it on its next apply.
    #[must_use]
    pub fn sharded(mut self) -> Self {
        self.shard_label = true;
        self
    }

    /// The client it writes through.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// This applier, refusing every write until [`Applier::open`]: a
    /// standby replica's, which loads its modules and fills its caches
    /// while another replica leads.
    #[must_use]
    pub fn standing_by(self) -> Self {
        self.open.store(false, Ordering::SeqCst);
        self
    }

    /// Lets writes through from now on, in every clone of this applier:
    /// this host has taken the Lease.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Stops every write from now on, in every clone of this applier: a
    /// write already on the wire completes, none is sent after. Called when
    /// this host stops leading, so that it never writes beside the new
    /// leader.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// Refuses a write once [`Applier::close`] was called.
    fn gate(&self, operation: Operation, object: &str) -> Result<(), ApplyError> {
        if self.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ApplyError::NotLeader {
                operation,
                object: object.to_owned(),
            })
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
    /// given the `observed` children (JSON, from the cache: the objects of
    /// owned kinds controlled by the primary), in this order: children,
    /// prunes, status, events. `room` says what the primary's status can
    /// hold.
    ///
    /// A child or status is not written when the observed object already
    /// holds it (see [`is_semantic_subset`]) and it is the body this applier
    /// sent last time, so reconciling an unchanged object makes no write
    /// request at all, while a field the module stopped setting is removed.
    ///
    /// # Errors
    ///
    /// Stops at the first failed write of a child, prune or status and
    /// returns it; the writes before it stay. A child whose name is held by
    /// an object that is not this module's is [`ApplyError::ChildExists`],
    /// and nothing is written to it. Events are notices, not state: a
    /// failed event is logged and left out of [`ApplyReport::events`]
    /// rather than failing (and so repeating) a reconcile whose writes all
    /// succeeded.
    #[tracing::instrument(name = "apply", skip_all, fields(module = %meta.name, object = %describe(object)))]
    pub async fn apply(
        &self,
        meta: &ModuleMeta,
        room: StatusRoom,
        object: &Value,
        observed: &[Value],
        plan: &Plan,
    ) -> Result<ApplyReport, ApplyError> {
        let mut report = ApplyReport::default();
        let owner = self.owner(meta, object, Operation::Apply)?;
        let primary = Primary::from_object(object)
            .map_err(|e| ApplyError::invalid(Operation::Apply, &describe(object), e.to_string()))?;

        let bucket = self
            .shard_label
            .then(|| crate::shard::bucket_of(primary.namespace.as_deref(), &primary.name));
        for child in &plan.apply {
            let labelled;
            let child = match bucket {
                Some(bucket) => {
                    labelled = with_bucket_label(child, bucket);
                    &labelled
                }
                None => child,
            };
            self.apply_child(meta, &owner, &primary, child, observed, &mut report)
                .await?;
        }

        for target in &plan.prune {
            if self.prune(meta, &primary, observed, target).await? {
                self.last_applied
                    .forget_target(&owner, &describe_ref(target));
                report.pruned += 1;
            }
        }

        // The host's condition from an earlier failure goes first, on the
        // version of the status the host looked at.
        if self.clear_reconciled_condition(meta, room, object).await? {
            self.last_applied.forget_target(&owner, STATUS);
            report.status_written = true;
        }
        if let Some(status) = &plan.status {
            let current = object.get("status").unwrap_or(&Value::Null);
            if is_semantic_subset(status, current)
                && self.last_applied.is_unchanged(&owner, STATUS, status)
            {
                tracing::debug!("status unchanged, not written");
            } else {
                self.write_status(meta, room, object, status).await?;
                self.last_applied.record(&owner, STATUS, status);
                report.status_written = true;
            }
        }

        let reference = events::object_reference(object);
        for event in &plan.events {
            self.gate(Operation::Event, &describe(object))?;
            match self.publish(&reference, Source::Guest, event).await {
                Ok(events::Recorded::Written) => report.events += 1,
                Ok(events::Recorded::Dropped) => report.events_dropped += 1,
                Err(error) => {
                    tracing::warn!(%error, reason = %event.reason, "could not record event")
                }
            }
        }

        tracing::debug!(?report, "plan written");
        Ok(report)
    }

    /// A JSON patch of the primary — its status subresource when `operation`
    /// is [`Operation::Status`] — that applies only to the resourceVersion of
    /// `object`: a change made meanwhile is never overwritten, and the
    /// failed `test` (see [`is_failed_test`]) is a [`ApplyError::Conflict`];
    /// every other failure, another 422 included, is [`ApplyError::Api`].
    async fn patch_pinned(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        operation: Operation,
        field_manager: Option<&str>,
        mut operations: Vec<Value>,
    ) -> Result<(), ApplyError> {
        let name = describe(object);
        let (namespace, object_name) = primary_location(object, operation)?;
        let version = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApplyError::invalid(
                    operation,
                    &name,
                    "the object has no metadata.resourceVersion",
                )
            })?;
        operations.insert(
            0,
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}),
        );
        let patch = serde_json::from_value(Value::Array(operations)).map_err(|e| {
            ApplyError::invalid(operation, &name, format!("building the JSON patch: {e}"))
        })?;
        self.gate(operation, &name)?;
        let params = PatchParams {
            field_manager: field_manager.map(str::to_owned),
            ..PatchParams::default()
        };
        let api = self.api(&meta.primary, namespace.as_deref());
        let patch = Patch::<()>::Json(patch);
        let result = if operation == Operation::Status {
            traced::traced(
                "patch status",
                &name,
                api.patch_status(&object_name, &params, &patch),
            )
            .await
        } else {
            traced::traced("patch", &name, api.patch(&object_name, &params, &patch)).await
        };
        result.map_err(|e| match e {
            kube::Error::Api(ref status) if is_failed_test(status) => ApplyError::Conflict {
                operation,
                object: name.clone(),
                source: Box::new(e),
            },
            // Any other refusal, a 422 Invalid included (a condition the
            // status schema does not accept), is an error to report, not a
            // race to retry quietly.
            e => ApplyError::api(operation, &name, e),
        })?;
        Ok(())
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

/// What the API server says of a JSON patch it could not apply: k8s.io/
/// apiserver's `applyJSPatch` answers `NewGenericServerResponse(422, …)`,
/// which keeps this fixed message and drops the patch library's own words
/// (no causes).
const PATCH_NOT_APPLIED: &str = "the server rejected our request due to an error in our request";

/// Whether `status` is the API server refusing a pinned JSON patch because
/// its `test` failed: the object changed since it was looked at, a race a
/// retry with a fresh copy resolves.
///
/// The API server answers a patch that does not apply with a fixed message
/// and no causes ([`PATCH_NOT_APPLIED`]); the patch library's own message
/// (evanphx/json-patch: `testing value /metadata/resourceVersion failed:
/// test failed`) is accepted too, should a server pass it on. Both are
/// matched whole, never as a part of the message: a 422 Invalid from
/// validation (`… is invalid: status.conditions[0].message: Invalid value:
/// "…"`) names the field in its causes and may echo text a module chose,
/// and must stay an error that is reported, not a race retried quietly.
/// The `test` comes first in every pinned patch and the other operations
/// were built from the very version it pins, so a patch that does not
/// apply is one whose `test` failed.
fn is_failed_test(status: &kube::core::Status) -> bool {
    let message = status.message.trim();
    let no_causes = status.details.as_ref().is_none_or(|d| d.causes.is_empty());
    let from_patch_library =
        message.starts_with("testing value ") && message.ends_with(" failed: test failed");
    status.code == 422 && no_causes && (message == PATCH_NOT_APPLIED || from_patch_library)
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
    use crate::meta::truncate_at_char_boundary;

    #[test]
    fn identity_ignores_the_version_within_a_group() {
        let a = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}});
        let b = json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}});
        let other = json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}});
        assert!(same_identity(&a, &b));
        assert!(!same_identity(&a, &other));
    }

    fn status_422(message: &str, causes: &[(&str, &str)]) -> kube::core::Status {
        let mut status = kube::core::Status::failure(message, "Invalid").with_code(422);
        if !causes.is_empty() {
            status.details = Some(kube::core::response::StatusDetails {
                causes: causes
                    .iter()
                    .map(|(field, message)| kube::core::response::StatusCause {
                        reason: "FieldValueInvalid".into(),
                        message: (*message).into(),
                        field: (*field).into(),
                    })
                    .collect(),
                name: "m".into(),
                group: "bosun.dev".into(),
                kind: "Misbehave".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            });
        }
        status
    }

    #[test]
    fn only_a_failed_test_is_a_conflict() {
        // What kube-apiserver answers when a pinned patch's test fails.
        let failed = status_422(PATCH_NOT_APPLIED, &[]);
        assert!(is_failed_test(&failed));
        // The patch library's own words, should a server pass them on.
        let library = status_422(
            "testing value /metadata/resourceVersion failed: test failed",
            &[],
        );
        assert!(is_failed_test(&library));
        // The same message with another code is not a refused patch.
        assert!(!is_failed_test(
            &kube::core::Status::failure(PATCH_NOT_APPLIED, "BadRequest").with_code(400)
        ));
    }

    #[test]
    fn a_condition_the_schema_refuses_is_an_error_not_a_race() {
        let invalid = status_422(
            r#"Misbehave.bosun.dev "m" is invalid: status.conditions[0].reason: Invalid value: "not a reason": status.conditions[0].reason in body should match '^[A-Za-z]'"#,
            &[("status.conditions[0].reason", "Invalid value")],
        );
        assert!(!is_failed_test(&invalid));
        // Text a module chose, echoed in a validation error, never passes
        // for a failed test.
        let echoed = status_422(
            &format!(
                r#"Misbehave.bosun.dev "m" is invalid: status.conditions[0].message: Invalid value: "{PATCH_NOT_APPLIED}""#
            ),
            &[("status.conditions[0].message", PATCH_NOT_APPLIED)],
        );
        assert!(!is_failed_test(&echoed));
        let echoed = status_422(
            "testing value /metadata/resourceVersion failed: test failed",
            &[("status.conditions[0].message", "Invalid value")],
        );
        assert!(!is_failed_test(&echoed));
        let forbidden = status_422(
            r#"Misbehave.bosun.dev "m" is forbidden: no new finalizers can be added if the object is being deleted"#,
            &[],
        );
        assert!(!is_failed_test(&forbidden));

        // Reported and not retried until the object changes, as any write
        // refused as invalid.
        let error = ApplyError::api(
            Operation::Status,
            "Misbehave.bosun.dev/v1 ns/m",
            kube::Error::Api(Box::new(invalid)),
        );
        assert!(!error.is_conflict());
        assert_eq!(error.retry(), Retry::WhenChanged);
    }

    #[test]
    fn event_fields_are_cut_on_character_boundaries() {
        assert_eq!(truncate_at_char_boundary("ab", 128), "ab");
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
    }
}
