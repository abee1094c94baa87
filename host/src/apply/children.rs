//! Writing children: create what is absent, update what is this module's,
//! refuse everything else, and delete only what is provably ours.
//!
//! **No adoption.** A child is written only where no object of its identity
//! exists, or where the existing object is controlled by this primary *and*
//! carries this module's field manager. A Service that happens to have the
//! name a WebApp wants — the cluster's own `kubernetes` Service, a
//! hand-made Deployment — is a conflict reported on the primary, never
//! taken over. The rule is enforced by the API server, so no race between
//! the host's look at its cache and its write can break it:
//!
//! - an absent child is created by a server-side apply whose body carries
//!   the `resourceVersion` [`CREATE_ONLY`], 2^64 − 1. Creating, the API
//!   server ignores it; updating, it is a precondition no stored object
//!   can meet, and the apply is refused with a conflict. The API server
//!   stores through the etcd3 API whatever the storage behind it (etcd,
//!   or kine and dqlite in k3s and MicroK8s), and there a revision is a
//!   signed 64-bit number: no object's resourceVersion exceeds 2^63 − 1,
//!   so none equals this one, on any storage. (The first version used
//!   `"1"`, which relied on etcd never giving revision 1 to an object, a
//!   rule of etcd's and not of the protocol.) So the apply only ever
//!   creates, whatever appeared under that name meanwhile — and, unlike a
//!   plain create, records exactly the fields it sent under the module's
//!   `Apply` entry, which a later apply without a field removes it from
//!   (a plain create's `Update` entry would also hold every defaulted
//!   field and never let go of any), in one request.
//! - a child of ours is server-side-applied with its observed `uid` and
//!   `resourceVersion` in the body: preconditions the API server checks, so
//!   an object re-created or changed since it was looked at is not written.
//!
//! **Guarded prunes.** A planned prune is re-checked against the observed
//! object ([`plan::is_prunable`]) and sent with `uid` and `resourceVersion`
//! preconditions, so an object re-created under the same name, or changed
//! since it was checked, is never deleted.

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use serde_json::{Value, json};

use super::applied::Owner;
use super::traced::traced;
use super::{
    Applier, ApplyError, ApplyReport, Operation, describe, describe_ref, is_not_found,
    is_semantic_subset, same_identity, same_ref,
};
use crate::meta::{Kind, ModuleMeta, group_of};
use crate::plan::{self, ObjectRef};
use crate::validate::Primary;

/// Whose an existing object is, as far as writing a child goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// This module's child of this primary: it may be updated.
    Ours,
    /// Someone else's; why, in words for the user.
    Foreign(String),
}

/// Decides whether `live` may be written as a child of `primary` by the
/// module with field manager `manager`.
pub(super) fn standing(live: &Value, primary: &Primary, manager: &str) -> Standing {
    let controller = live
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|owners| {
            owners
                .iter()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        });
    let text = |value: Option<&Value>, field: &str| {
        value
            .and_then(|v| v.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let Some(controller) = controller else {
        return Standing::Foreign(format!(
            "is not controlled by {} {}",
            primary.kind, primary.name
        ));
    };
    if primary.uid.is_empty() || text(Some(controller), "uid") != primary.uid {
        let (kind, name, uid) = (
            text(Some(controller), "kind"),
            text(Some(controller), "name"),
            text(Some(controller), "uid"),
        );
        // The same kind and name, another uid: an object of this identity
        // that was deleted (a name is unique while its object lives), whose
        // children the garbage collector has not removed yet. Saying only
        // "controlled by WebApp kubernetes" reads as the primary itself.
        if kind == primary.kind
            && name == primary.name
            && group_of(&text(Some(controller), "apiVersion")) == group_of(&primary.api_version)
        {
            let deleting = live.pointer("/metadata/deletionTimestamp").is_some();
            return Standing::Foreign(format!(
                "is controlled by an earlier {kind} {name} (uid {uid}), deleted since; {}, \
                 and is created for this one once it is gone",
                if deleting {
                    "it is still being deleted"
                } else {
                    "the garbage collector deletes it in turn"
                }
            ));
        }
        return Standing::Foreign(format!("is controlled by {kind} {name}"));
    }
    let written_by_module = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.get("manager").and_then(Value::as_str) == Some(manager))
        });
    if !written_by_module {
        return Standing::Foreign(format!(
            "is controlled by {} {} but was not written by {manager}",
            primary.kind, primary.name
        ));
    }
    Standing::Ours
}

/// The `resourceVersion` of the create-only apply: a valid resourceVersion
/// (an unsigned 64-bit number) that no stored object can have, because the
/// etcd3 API every storage speaks counts revisions in signed 64 bits (see
/// the module docs).
const CREATE_ONLY: &str = "18446744073709551615";

impl Applier {
    /// Writes one desired child; see the module docs for the rules.
    pub(super) async fn apply_child(
        &self,
        meta: &ModuleMeta,
        owner: &Owner,
        primary: &Primary,
        child: &Value,
        observed: &[Value],
        report: &mut ApplyReport,
    ) -> Result<(), ApplyError> {
        let name = describe(child);
        let (kind, namespace, child_name) = locate(meta, child)?;
        let manager = meta.field_manager();
        let live = observed.iter().find(|o| same_identity(child, o));
        let Some(live) = live else {
            return self
                .create_child(
                    meta,
                    owner,
                    primary,
                    kind,
                    namespace.as_deref(),
                    &child_name,
                    child,
                    report,
                )
                .await;
        };
        if let Standing::Foreign(reason) = standing(live, primary, &manager) {
            return Err(ApplyError::ChildExists {
                object: name,
                reason,
            });
        }
        if is_semantic_subset(child, live) && self.last_applied.is_unchanged(owner, &name, child) {
            tracing::debug!(child = %name, "unchanged, not applied");
            report.unchanged += 1;
            return Ok(());
        }
        self.update_child(
            meta,
            owner,
            kind,
            namespace.as_deref(),
            &child_name,
            child,
            live,
        )
        .await?;
        report.applied += 1;
        Ok(())
    }

    /// Creates a child the cache does not know, by the create-only apply.
    /// If the name turns out to be taken, the object there decides: a child
    /// of ours the cache had not seen yet is updated, anything else is a
    /// conflict.
    #[allow(clippy::too_many_arguments)]
    async fn create_child(
        &self,
        meta: &ModuleMeta,
        owner: &Owner,
        primary: &Primary,
        kind: &Kind,
        namespace: Option<&str>,
        child_name: &str,
        child: &Value,
        report: &mut ApplyReport,
    ) -> Result<(), ApplyError> {
        let name = describe(child);
        let manager = meta.field_manager();
        let mut body = child.clone();
        body["metadata"]["resourceVersion"] = json!(CREATE_ONLY);
        self.gate(Operation::Apply, &name)?;
        let api = self.api(kind, namespace);
        let params = PatchParams::apply(&manager).force();
        match traced(
            "create",
            &name,
            api.patch(child_name, &params, &Patch::Apply(&body)),
        )
        .await
        {
            Ok(_) => {
                self.last_applied.record(owner, &name, child);
                tracing::debug!(child = %name, "created");
                report.applied += 1;
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = api
                    .get_opt(child_name)
                    .await
                    .map_err(|e| ApplyError::api(Operation::Apply, &name, e))?;
                let Some(existing) = existing else {
                    // Deleted meanwhile: the next reconcile creates it.
                    return Err(ApplyError::api(
                        Operation::Apply,
                        &name,
                        kube::Error::Api(status),
                    ));
                };
                let existing = serde_json::to_value(&existing).unwrap_or(Value::Null);
                match standing(&existing, primary, &manager) {
                    Standing::Ours => {
                        self.update_child(
                            meta, owner, kind, namespace, child_name, child, &existing,
                        )
                        .await?;
                        report.applied += 1;
                        Ok(())
                    }
                    Standing::Foreign(reason) => Err(ApplyError::ChildExists {
                        object: name,
                        reason,
                    }),
                }
            }
            Err(error) => Err(ApplyError::api(Operation::Apply, &name, error)),
        }
    }

    /// Applies a child of ours, pinned to the very object looked at: its
    /// uid and resourceVersion go in the body as preconditions.
    #[allow(clippy::too_many_arguments)]
    async fn update_child(
        &self,
        meta: &ModuleMeta,
        owner: &Owner,
        kind: &Kind,
        namespace: Option<&str>,
        child_name: &str,
        child: &Value,
        live: &Value,
    ) -> Result<(), ApplyError> {
        let name = describe(child);
        let mut body = child.clone();
        for field in ["uid", "resourceVersion"] {
            if let Some(value) = live.pointer(&format!("/metadata/{field}")) {
                body["metadata"][field] = value.clone();
            }
        }
        self.gate(Operation::Apply, &name)?;
        let params = PatchParams::apply(&meta.field_manager()).force();
        let api = self.api(kind, namespace);
        traced(
            "apply",
            &name,
            api.patch(child_name, &params, &Patch::Apply(&body)),
        )
        .await
        .map_err(|e| ApplyError::api(Operation::Apply, &name, e))?;
        self.last_applied.record(owner, &name, child);
        tracing::debug!(child = %name, "applied");
        Ok(())
    }

    /// Deletes one planned prune if the observed object is still prunable.
    /// Returns whether it is gone now.
    pub(super) async fn prune(
        &self,
        meta: &ModuleMeta,
        primary: &Primary,
        observed: &[Value],
        target: &ObjectRef,
    ) -> Result<bool, ApplyError> {
        let name = describe_ref(target);
        // Never trust the plan alone: the object must be observed, in the
        // primary's namespace, and still owned and applied by this module,
        // right now.
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
        self.gate(Operation::Prune, &name)?;
        let api = self.api(kind, target.namespace.as_deref());
        match traced("delete", &name, api.delete(&target.name, &params)).await {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn primary() -> Primary {
        Primary::from_object(&json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "kubernetes", "namespace": "default", "uid": "u-1", "generation": 1}
        }))
        .unwrap()
    }

    fn live(owner_uid: Option<&str>, manager: &str) -> Value {
        let mut object = json!({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "kubernetes", "namespace": "default", "uid": "s-1", "resourceVersion": "7",
            "managedFields": [{"manager": manager, "operation": "Apply"}]
        }});
        if let Some(uid) = owner_uid {
            object["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp", "name": "other",
                "uid": uid, "controller": true
            }]);
        }
        object
    }

    #[test]
    fn the_create_only_version_is_valid_and_past_every_stored_revision() {
        // The API server parses a resourceVersion as an unsigned 64-bit
        // number; the etcd3 API's revisions are signed 64-bit ones.
        let version: u64 = CREATE_ONLY.parse().expect("a valid resourceVersion");
        assert!(version > i64::MAX as u64);
    }

    #[test]
    fn only_a_controlled_child_written_by_the_module_is_ours() {
        assert_eq!(
            standing(
                &live(Some("u-1"), "bosun/webapp"),
                &primary(),
                "bosun/webapp"
            ),
            Standing::Ours
        );
        let Standing::Foreign(reason) =
            standing(&live(None, "kube-apiserver"), &primary(), "bosun/webapp")
        else {
            panic!("the cluster's own Service is not ours");
        };
        assert!(
            reason.contains("not controlled by WebApp kubernetes"),
            "{reason}"
        );
        let Standing::Foreign(reason) = standing(
            &live(Some("u-9"), "bosun/webapp"),
            &primary(),
            "bosun/webapp",
        ) else {
            panic!("another WebApp's child is not ours");
        };
        assert!(reason.contains("controlled by WebApp other"), "{reason}");
        let mut earlier = live(Some("u-0"), "bosun/webapp");
        earlier["metadata"]["ownerReferences"][0]["name"] = json!("kubernetes");
        let Standing::Foreign(reason) = standing(&earlier, &primary(), "bosun/webapp") else {
            panic!("an earlier WebApp's child is not this one's");
        };
        assert!(
            reason.contains("controlled by an earlier WebApp kubernetes (uid u-0), deleted since")
                && reason.contains("the garbage collector deletes it"),
            "{reason}"
        );
        earlier["metadata"]["deletionTimestamp"] = json!("2026-12-06T10:00:00Z");
        let Standing::Foreign(reason) = standing(&earlier, &primary(), "bosun/webapp") else {
            panic!("an earlier WebApp's child is not this one's");
        };
        assert!(reason.contains("still being deleted"), "{reason}");
        assert!(matches!(
            standing(&live(Some("u-1"), "kubectl"), &primary(), "bosun/webapp"),
            Standing::Foreign(_)
        ));
    }
}
