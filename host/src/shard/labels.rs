//! The bucket label on primaries: set by a bucket's owner, removed by an
//! unsharded host.
//!
//! Both are server-side applies under [`FIELD_MANAGER`], a manager that
//! owns the label and nothing else: setting it leaves every other label
//! (a user's) alone, and applying an empty body under the same manager
//! removes exactly what it set. A label someone else set on purpose is
//! never overwritten (only unlabelled objects are labelled), so there is
//! nothing to fight over.
//!
//! Unlabelled primaries are found by listing with `!bosun.dev/shard-bucket`
//! every retry period — an empty answer once everything is labelled, so
//! cheap — by every replica, each labelling those in the buckets it
//! holds. The label is then what brings the object into its owner's
//! filtered watch.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{FIELD_MANAGER, LABEL, Sharding, bucket_of};
use crate::meta::{Kind, Scope};

/// The APIs of `kind` in `namespaces` (empty: cluster-wide).
fn apis(client: &kube::Client, kind: &Kind, namespaces: &[String]) -> Vec<Api<DynamicObject>> {
    let resource = kind.api_resource();
    match kind.scope {
        Scope::Namespaced if !namespaces.is_empty() => namespaces
            .iter()
            .map(|ns| Api::namespaced_with(client.clone(), ns, &resource))
            .collect(),
        _ => vec![Api::all_with(client.clone(), &resource)],
    }
}

/// The apply body that sets (or, with None, drops) the label of `object`.
fn label_body(kind: &Kind, object: &DynamicObject, bucket: Option<u16>) -> serde_json::Value {
    let mut metadata = json!({"name": object.metadata.name});
    if let Some(namespace) = &object.metadata.namespace {
        metadata["namespace"] = json!(namespace);
    }
    if let Some(bucket) = bucket {
        metadata["labels"] = json!({LABEL: bucket.to_string()});
    }
    json!({"apiVersion": kind.api_version(), "kind": kind.kind, "metadata": metadata})
}

/// Label patches in flight at once: a first start over thousands of
/// unlabelled objects is bounded by round trips, not by the API server.
const LABELLING_CONCURRENCY: usize = 16;

/// Labels, every `period`, the unlabelled primaries of the buckets this
/// replica holds. Runs until aborted.
pub async fn label_unlabelled(client: kube::Client, sharding: Arc<Sharding>, period: Duration) {
    loop {
        let held = sharding.gate.held();
        if !held.is_empty() {
            for (kind, namespaces) in sharding.primaries() {
                for api in apis(&client, &kind, &namespaces) {
                    let unlabelled = match api
                        .list_metadata(&ListParams::default().labels(&format!("!{LABEL}")))
                        .await
                    {
                        Ok(list) => list.items,
                        Err(error) => {
                            tracing::warn!(kind = %kind, %error, "could not list unlabelled primaries");
                            continue;
                        }
                    };
                    let ours = unlabelled.into_iter().filter_map(|object| {
                        let name = object.metadata.name.clone()?;
                        let namespace = match kind.scope {
                            Scope::Namespaced => object.metadata.namespace.clone(),
                            Scope::Cluster => None,
                        };
                        let bucket = bucket_of(namespace.as_deref(), &name);
                        held.contains(bucket).then_some((name, namespace, bucket))
                    });
                    let labelled: usize = futures::stream::iter(ours)
                        .map(|(name, namespace, bucket)| {
                            label_one(&client, &kind, name, namespace, bucket)
                        })
                        .buffer_unordered(LABELLING_CONCURRENCY)
                        .map(usize::from)
                        .fold(0, |sum, one| async move { sum + one })
                        .await;
                    if labelled > 0 {
                        tracing::info!(kind = %kind, labelled, "labelled primaries with their bucket");
                    }
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// Sets the label of one primary; whether it did.
async fn label_one(
    client: &kube::Client,
    kind: &Kind,
    name: String,
    namespace: Option<String>,
    bucket: u16,
) -> bool {
    let api: Api<DynamicObject> = match namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.api_resource()),
        None => Api::all_with(client.clone(), &kind.api_resource()),
    };
    let mut object = DynamicObject::new(&name, &kind.api_resource());
    object.metadata.namespace = namespace;
    let body = label_body(kind, &object, Some(bucket));
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => true,
        // Deleted meanwhile: nothing to label.
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        // Refused (RBAC without `patch` on the kind, say): the object is
        // in no replica's watch until labelled, so say so; the next round
        // tries again.
        Err(error) => {
            tracing::warn!(kind = %kind, object = %name, shard = bucket, %error, "could not label a primary with its bucket; it is not reconciled until labelled");
            false
        }
    }
}

/// Removes the bucket label from `objects` (primaries of `kind`, from
/// the cache) that carry it: what an unsharded host does once, so that
/// turning sharding off leaves no label of the host's behind. The cache,
/// not a LIST: a standby taking over lists nothing. Children lose it on
/// their next apply, which no longer sets it. Returns how many it removed.
pub async fn unlabel(
    client: &kube::Client,
    kind: &Kind,
    objects: &[Arc<DynamicObject>],
) -> Result<usize, kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER);
    let mut removed = 0;
    let labelled = objects.iter().filter(|o| {
        o.metadata
            .labels
            .as_ref()
            .is_some_and(|labels| labels.contains_key(LABEL))
    });
    for object in labelled {
        let Some(name) = object.metadata.name.as_deref() else {
            continue;
        };
        let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(ns) if kind.scope == Scope::Namespaced => {
                Api::namespaced_with(client.clone(), ns, &kind.api_resource())
            }
            _ => Api::all_with(client.clone(), &kind.api_resource()),
        };
        match api
            .patch(name, &params, &Patch::Apply(label_body(kind, object, None)))
            .await
        {
            Ok(_) => removed += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_only_the_label() {
        let kind = Kind {
            group: "tests.bosun.dev".into(),
            version: "v1".into(),
            kind: "Misbehave".into(),
            plural: "misbehaves".into(),
            scope: Scope::Namespaced,
        };
        let mut object = DynamicObject::new("a", &kind.api_resource()).within("ns");
        object.metadata.labels = Some([("team".to_owned(), "x".to_owned())].into());
        assert_eq!(
            label_body(&kind, &object, Some(7)),
            json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                   "metadata": {"name": "a", "namespace": "ns", "labels": {"bosun.dev/shard-bucket": "7"}}})
        );
        assert_eq!(
            label_body(&kind, &object, None),
            json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                   "metadata": {"name": "a", "namespace": "ns"}})
        );
    }
}
