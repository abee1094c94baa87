//! Owning a created child as applied: the second step of a create.
//!
//! A create records the child's fields under an `Update` entry of the
//! module's field manager, and an `Update` entry is never released by a
//! later apply: a field the module stops returning would stay for ever,
//! and a prune, which looks for the module's `Apply` entry, would never
//! find the child. Turning the entry into an `Apply` entry as it is (what
//! client-go's `csaupgrade` does) is not enough either: a create's entry
//! also holds every field the API server defaulted (a Pod's
//! `restartPolicy`, a container's `terminationMessagePath`), so the next
//! apply, which does not name them, would drop them from the module's set
//! and rewrite the child, once per child, after every failover.
//!
//! So the field set the module's apply owns is asked of the API server,
//! which alone knows the kind's schema (list keys, defaults): a dry-run
//! apply of the same body under a probe manager. The module's `Update`
//! entry is then replaced by an `Apply` entry holding that set, by a JSON
//! patch that `test`s the child's uid and resourceVersion, so nothing
//! written meanwhile is overwritten. Two writes per created child, and one
//! request that writes nothing.

use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::Applier;
use super::Operation;

/// Whether `manager` holds an `Update` entry on `object` (for the object
/// itself, not a subresource) and no `Apply` entry: a child created and not
/// yet owned as applied.
pub(super) fn needs_applied_entry(object: &Value, manager: &str) -> bool {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return false;
    };
    !entries.iter().any(|e| is_entry(e, manager, "Apply"))
        && entries.iter().any(|e| is_entry(e, manager, "Update"))
}

fn is_entry(entry: &Value, manager: &str, operation: &str) -> bool {
    entry.get("manager").and_then(Value::as_str) == Some(manager)
        && entry.get("operation").and_then(Value::as_str) == Some(operation)
        && entry
            .get("subresource")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
}

/// The manager the dry-run apply runs under: any name but the module's own
/// (whose `Update` entry would share the fields), within the API server's
/// 128 bytes.
fn probe_manager(manager: &str) -> String {
    let mut probe: String = manager.chars().take(100).collect();
    probe.push_str("-fields-probe");
    probe
}

/// The JSON patch that replaces `manager`'s `Update` entry on `object` by
/// its `Apply` entry holding `applied` (the probe's entry from the dry
/// run: its field set and API version), pinned by `test`s of the object's
/// uid and resourceVersion. None when there is nothing to replace: no such
/// entry, or the manager holds an `Apply` entry already (merging two field
/// sets is left to the API server's next apply). Subresource entries
/// (status) are left alone.
///
/// Every entry must carry its field set: the list replaces the object's
/// whole, and one read from the cache (which drops field sets) would wipe
/// every manager's ownership.
fn applied_entry_patch(object: &Value, manager: &str, applied: &Value) -> Option<Value> {
    if !needs_applied_entry(object, manager) {
        return None;
    }
    let entries = object.pointer("/metadata/managedFields")?.as_array()?;
    if entries.iter().any(|entry| entry.get("fieldsV1").is_none()) {
        return None;
    }
    let fields = applied.get("fieldsV1")?;
    let mut kept: Vec<Value> = entries
        .iter()
        .filter(|entry| !is_entry(entry, manager, "Update"))
        .cloned()
        .collect();
    kept.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion")?,
        "time": applied.get("time").cloned().unwrap_or(Value::Null),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }));
    let uid = object.pointer("/metadata/uid")?;
    let version = object.pointer("/metadata/resourceVersion")?;
    Some(json!([
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/metadata/managedFields", "value": kept},
    ]))
}

/// `body` pinned to `object`'s uid and resourceVersion, so that a dry run
/// answers for that very object.
fn pinned(body: &Value, object: &Value) -> Value {
    let mut body = body.clone();
    for field in ["uid", "resourceVersion"] {
        if let Some(value) = object.pointer(&format!("/metadata/{field}")) {
            body["metadata"][field] = value.clone();
        }
    }
    body
}

impl Applier {
    /// Makes the fields `body` sets on the created child `object` the
    /// module's applied ones (see the module docs), so that a later apply
    /// that leaves a field out removes it and a prune finds the module's
    /// `Apply` entry. Something writing the child meanwhile (a controller
    /// setting its status) moves its resourceVersion: the child is read
    /// again, the same uid only, and the patch made anew. Should that keep
    /// failing, a warning says so and the next reconcile of the primary
    /// tries again.
    ///
    /// Returns the child as the patch left it, None when nothing was
    /// written.
    pub(super) async fn own_as_applied(
        &self,
        api: &kube::Api<DynamicObject>,
        child_name: &str,
        name: &str,
        manager: &str,
        body: &Value,
        mut object: Value,
    ) -> Option<Value> {
        const ATTEMPTS: usize = 3;
        let uid = object.pointer("/metadata/uid").cloned();
        let probe = probe_manager(manager);
        for attempt in 1..=ATTEMPTS {
            if !needs_applied_entry(&object, manager) {
                return None;
            }
            self.gate(Operation::Apply, name).ok()?;
            let error = match self
                .replace_update_entry(api, child_name, manager, &probe, body, &object)
                .await
            {
                Ok(Some(owned)) => return Some(owned),
                Ok(None) => return None,
                Err(error) => error,
            };
            // A failed `test` is a 422; a write meanwhile may also show as
            // a 409 (the pinned dry run). Anything else will not go away by
            // looking again.
            let moved = matches!(&error, kube::Error::Api(status) if status.code == 409 || status.code == 422);
            if !moved || attempt == ATTEMPTS {
                tracing::warn!(child = %name, %error, "the child's fields stay under its create's Update entry for now: the next reconcile tries again");
                return None;
            }
            match api.get(child_name).await.map(serde_json::to_value) {
                Ok(Ok(fresh)) if fresh.pointer("/metadata/uid") == uid.as_ref() => object = fresh,
                // Gone, replaced, or unreadable: nothing of ours to own.
                _ => return None,
            }
        }
        None
    }

    /// One try: the dry run, then the patch. Ok(None) when the answers
    /// leave nothing to patch (or no patch can be made of them).
    async fn replace_update_entry(
        &self,
        api: &kube::Api<DynamicObject>,
        child_name: &str,
        manager: &str,
        probe: &str,
        body: &Value,
        object: &Value,
    ) -> Result<Option<Value>, kube::Error> {
        let mut dry_run = PatchParams::apply(probe).force();
        dry_run.dry_run = true;
        let probed = api
            .patch(child_name, &dry_run, &Patch::Apply(&pinned(body, object)))
            .await?;
        let probed = serde_json::to_value(probed).map_err(kube::Error::SerdeError)?;
        let Some(applied) = probed
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .and_then(|entries| entries.iter().find(|e| is_entry(e, probe, "Apply")))
        else {
            tracing::warn!(
                child = child_name,
                "the dry-run apply named no field set; the child's fields stay under its create's Update entry"
            );
            return Ok(None);
        };
        let Some(patch) = applied_entry_patch(object, manager, applied) else {
            return Ok(None);
        };
        let patch = match serde_json::from_value(patch) {
            Ok(patch) => Patch::<()>::Json(patch),
            Err(error) => {
                tracing::warn!(child = child_name, %error, "could not build the patch making the create's fields the module's applied ones");
                return Ok(None);
            }
        };
        let owned = api
            .patch(child_name, &PatchParams::default(), &patch)
            .await?;
        Ok(serde_json::to_value(owned).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(entries: Value) -> Value {
        json!({"metadata": {"name": "shop", "uid": "u-1", "resourceVersion": "41", "managedFields": entries}})
    }

    fn probe_entry() -> Value {
        json!({"manager": "bosun/webapp-fields-probe", "operation": "Apply", "apiVersion": "apps/v1",
               "time": "2026-12-06T10:00:00Z", "fieldsType": "FieldsV1",
               "fieldsV1": {"f:spec": {"f:replicas": {}}}})
    }

    #[test]
    fn the_creates_entry_gives_way_to_an_apply_entry_of_the_applied_fields_only() {
        let object = created(json!([
            {"manager": "bosun/webapp", "operation": "Update", "apiVersion": "apps/v1",
             "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}, "f:revisionHistoryLimit": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
             "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
        ]));
        let patch = applied_entry_patch(&object, "bosun/webapp", &probe_entry()).expect("a patch");
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/uid", "value": "u-1"})
        );
        assert_eq!(
            patch[1],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "41"})
        );
        let entries = patch[2]["value"].as_array().expect("entries");
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0]["manager"], "kube-controller-manager");
        assert_eq!(entries[1]["manager"], "bosun/webapp");
        assert_eq!(entries[1]["operation"], "Apply");
        // The defaulted field the create's entry held is not the module's.
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn nothing_is_patched_without_field_sets_or_once_applied() {
        // Entries as the cache keeps them (no field sets) would wipe every
        // manager's ownership.
        let from_cache = created(json!([
            {"manager": "bosun/webapp", "operation": "Update"},
        ]));
        assert_eq!(
            applied_entry_patch(&from_cache, "bosun/webapp", &probe_entry()),
            None
        );
        let applied = created(json!([
            {"manager": "bosun/webapp", "operation": "Apply", "fieldsV1": {}},
            {"manager": "bosun/webapp", "operation": "Update", "fieldsV1": {}},
        ]));
        assert!(!needs_applied_entry(&applied, "bosun/webapp"));
        assert_eq!(
            applied_entry_patch(&applied, "bosun/webapp", &probe_entry()),
            None
        );
    }

    #[test]
    fn the_probe_is_never_the_module_and_fits_a_field_manager() {
        let long = "bosun/".to_owned() + &"m".repeat(200);
        let probe = probe_manager(&long);
        assert!(probe.len() <= 128, "{}", probe.len());
        assert_ne!(probe_manager("bosun/webapp"), "bosun/webapp");
    }
}
