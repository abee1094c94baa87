//! Every object converged to what its module wants, judged by the module's
//! own logic: each example's reconciler runs natively (the SDK's
//! [`Harness`], the same code as the component) on the object, its
//! children and what it reads, as the API server holds them, and the
//! object is converged when a reconcile now would write nothing — its
//! status and every desired child already hold what the module returns
//! (the host's no-op rule: a semantic subset), no child of the module's is
//! left to prune, the status describes the current generation, and the
//! host reports no failure (`Reconciled=False`).
//!
//! Besides the logic: every WebApp's children carry the revision of the
//! webapp version live in its lane (the hot swap reached them), and the
//! honest tenants of misbehave show `phase: ok` for their generation.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bosun_sdk::Reconciler;
use bosun_sdk::testing::Harness;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use crate::soak::cluster::{self, Lane};
use crate::soak::ledger::REVISION_LABEL;

/// An object that is not (yet) where its module wants it.
#[derive(Debug, Clone)]
pub struct Unconverged {
    /// Its lane.
    pub lane: Lane,
    /// Its kind and name.
    pub object: String,
    /// What differs.
    pub why: String,
}

/// How many objects of each module were judged, and which are not converged.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    /// Objects judged, by module.
    pub judged: BTreeMap<&'static str, usize>,
    /// Those not converged.
    pub unconverged: Vec<Unconverged>,
}

/// What the checks know of a lane beyond the API server: which webapp
/// version runs there (`Some("2")`: webapp-next).
#[derive(Debug, Clone)]
pub struct LaneState {
    /// The lane.
    pub lane: Lane,
    /// The revision label webapp's live version puts on children.
    pub revision: Option<String>,
}

/// Polls [`judge`] until every object is converged or `timeout` passes;
/// returns the last judgement and when it first came out clean.
pub async fn wait(
    client: &kube::Client,
    lanes: &[LaneState],
    timeout: Duration,
) -> Result<(Judgement, Option<Instant>)> {
    let started = Instant::now();
    loop {
        let judgement = judge(client, lanes).await;
        let judgement = match judgement {
            Ok(judgement) => judgement,
            // The API server away a moment: try again.
            Err(error) if started.elapsed() < timeout => {
                eprintln!("soak: judging convergence: {error:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        if judgement.unconverged.is_empty() {
            return Ok((judgement, Some(Instant::now())));
        }
        if started.elapsed() > timeout {
            return Ok((judgement, None));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn list(
    client: &kube::Client,
    namespace: &str,
    resource: &ApiResource,
) -> Result<Vec<DynamicObject>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    Ok(api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {} in {namespace}", resource.plural))?
        .items
        .into_iter()
        .map(|mut o| {
            o.types = Some(kube::api::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            });
            o
        })
        .collect())
}

/// The primaries not being deleted: one deleted in the foreground stays
/// until the garbage collector has taken its children, and the host
/// writes nothing for it meanwhile; the orphan check judges what it
/// leaves.
fn staying(objects: Vec<DynamicObject>) -> impl Iterator<Item = DynamicObject> {
    objects
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
}

/// Judges every object of every lane as the API server holds it now.
pub async fn judge(client: &kube::Client, lanes: &[LaneState]) -> Result<Judgement> {
    let mut judgement = Judgement::default();
    let now = jiff::Timestamp::now();
    for state in lanes {
        let lane = state.lane;
        let namespace = lane.apps();
        let mut children: HashMap<String, Vec<DynamicObject>> = HashMap::new();
        for resource in [
            cluster::pods(),
            cluster::deployments(),
            cluster::services(),
            cluster::config_maps(),
        ] {
            for child in list(client, &namespace, &resource).await? {
                if let Some(owner) = controller_of(&child) {
                    children.entry(owner).or_default().push(child);
                }
            }
        }
        let config_maps = list(client, &namespace, &cluster::config_maps()).await?;
        let mut unconverged = |object: &DynamicObject, why: String| {
            judgement.unconverged.push(Unconverged {
                lane,
                object: format!(
                    "{} {}",
                    object.types.as_ref().map_or("?", |t| t.kind.as_str()),
                    object.metadata.name.as_deref().unwrap_or("?")
                ),
                why,
            });
        };
        let mut judged = BTreeMap::<&'static str, usize>::new();
        for at in staying(list(client, &namespace, &cluster::ats()).await?) {
            *judged.entry("cnat").or_default() += 1;
            let observed = children_of(&children, &at);
            let outcome = run::<cnat::Cnat>(&at, &observed, &[], now);
            if let Err(why) = outcome.and_then(|o| compare(&at, &o, &observed, "bosun/cnat")) {
                unconverged(&at, why);
            }
        }
        for app in staying(list(client, &namespace, &cluster::webapps()).await?) {
            *judged.entry("webapp").or_default() += 1;
            let observed = children_of(&children, &app);
            let outcome = run::<webapp::WebApps>(&app, &observed, &[], now);
            let verdict = outcome
                .and_then(|o| compare(&app, &o, &observed, "bosun/webapp"))
                .and_then(|()| revisions(&observed, state.revision.as_deref()));
            if let Err(why) = verdict {
                unconverged(&app, why);
            }
        }
        for mirror in staying(list(client, &namespace, &cluster::mirrors()).await?) {
            *judged.entry("mirror").or_default() += 1;
            let outcome = run::<mirror::Mirrors>(&mirror, &[], &config_maps, now);
            if let Err(why) = outcome.and_then(|o| compare(&mirror, &o, &[], "bosun/mirror")) {
                unconverged(&mirror, why);
            }
        }
        for tenant in staying(list(client, &namespace, &cluster::misbehaves()).await?) {
            *judged.entry("misbehave").or_default() += 1;
            if let Err(why) = tenant_ok(&tenant) {
                unconverged(&tenant, why);
            }
        }
        for (module, n) in judged {
            *judgement.judged.entry(module).or_default() += n;
        }
    }
    Ok(judgement)
}

fn controller_of(object: &DynamicObject) -> Option<String> {
    object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

fn children_of(
    children: &HashMap<String, Vec<DynamicObject>>,
    primary: &DynamicObject,
) -> Vec<DynamicObject> {
    primary
        .metadata
        .uid
        .as_ref()
        .and_then(|uid| children.get(uid))
        .cloned()
        .unwrap_or_default()
}

/// What module `R` wants for `primary` now, given what it observes and reads.
struct Wanted {
    children: Vec<Value>,
    status: Option<Value>,
}

fn run<R>(
    primary: &DynamicObject,
    observed: &[DynamicObject],
    reads: &[DynamicObject],
    now: jiff::Timestamp,
) -> Result<Wanted, String>
where
    R: Reconciler,
{
    let object: R::Object = serde_json::to_value(primary)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("does not parse as its module's kind: {e}"))?;
    let mut harness = Harness::<R>::new().at(now);
    for child in observed {
        harness = harness.child(child);
    }
    for read in reads {
        harness = harness.object(read);
    }
    match harness.reconcile(&object) {
        Ok(outcome) => Ok(Wanted {
            children: outcome.children_json(),
            status: outcome.status::<Value>(),
        }),
        Err(error) => Err(format!("its module's logic fails on it now: {error:?}")),
    }
}

/// Whether a reconcile of `primary` now would write nothing: see the module
/// documentation.
fn compare(
    primary: &DynamicObject,
    wanted: &Wanted,
    observed: &[DynamicObject],
    manager: &str,
) -> Result<(), String> {
    let status = primary.data.get("status").cloned().unwrap_or(Value::Null);
    if let Some(failed) = status
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c["type"] == "Reconciled" && c["status"] == "False")
        })
    {
        return Err(format!(
            "the host reports Reconciled=False ({}): {}",
            failed["reason"].as_str().unwrap_or_default(),
            failed["message"].as_str().unwrap_or_default()
        ));
    }
    let observed_generation = status.get("observedGeneration").and_then(Value::as_i64);
    if observed_generation != primary.metadata.generation {
        return Err(format!(
            "status describes generation {observed_generation:?}, the object is at {:?}",
            primary.metadata.generation
        ));
    }
    if let Some(desired) = &wanted.status
        && !is_semantic_subset(desired, &status)
    {
        return Err(format!(
            "status {status} is not what the module wants: {desired}"
        ));
    }
    for child in &wanted.children {
        let (kind, name) = (
            child["kind"].as_str().unwrap_or_default(),
            child
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        let Some(live) = observed.iter().find(|o| {
            o.types.as_ref().is_some_and(|t| t.kind == kind)
                && o.metadata.name.as_deref() == Some(name)
        }) else {
            return Err(format!("its {kind} {name} is missing"));
        };
        let mut desired = child.clone();
        if let Some(metadata) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("namespace");
        }
        let live = serde_json::to_value(live).unwrap_or(Value::Null);
        if !is_semantic_subset(&desired, &live) {
            return Err(format!(
                "its {kind} {name} is not what the module wants: {desired}"
            ));
        }
    }
    for child in observed {
        let kind = child.types.as_ref().map_or("", |t| t.kind.as_str());
        let name = child.metadata.name.as_deref().unwrap_or_default();
        let wanted_here = wanted.children.iter().any(|c| {
            c["kind"] == kind && c.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        });
        let applied = child.metadata.managed_fields.iter().flatten().any(|m| {
            m.manager.as_deref() == Some(manager) && m.operation.as_deref() == Some("Apply")
        });
        if !wanted_here && applied {
            return Err(format!(
                "its {kind} {name} is no longer wanted and was not pruned"
            ));
        }
    }
    Ok(())
}

/// Every child of a WebApp carries the revision of the webapp version live.
fn revisions(observed: &[DynamicObject], revision: Option<&str>) -> Result<(), String> {
    for child in observed {
        let label = child
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .map(String::as_str);
        if label != revision {
            return Err(format!(
                "its {} {} carries revision {label:?}, the live webapp {revision:?}",
                child.types.as_ref().map_or("?", |t| t.kind.as_str()),
                child.metadata.name.as_deref().unwrap_or("?"),
            ));
        }
    }
    Ok(())
}

/// An honest tenant of misbehave (mode `status`): `phase: ok` for its
/// generation, no failure reported.
fn tenant_ok(tenant: &DynamicObject) -> Result<(), String> {
    let status = tenant.data.get("status").cloned().unwrap_or(Value::Null);
    let generation = status.get("observedGeneration").and_then(Value::as_i64);
    if status.get("phase").and_then(Value::as_str) != Some("ok")
        || generation != tenant.metadata.generation
    {
        return Err(format!(
            "status {status} for generation {:?}",
            tenant.metadata.generation
        ));
    }
    Ok(())
}

/// The host's no-op rule (`host/src/apply/subset.rs`), here to judge
/// from outside: every field of `desired` is in `live` with an equal value
/// (maps key by key, lists element by element and of the same length,
/// numbers by value, an empty desired value matching a missing one);
/// besides, condition transition times are not compared.
pub fn is_semantic_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => desired.iter().all(|(key, value)| {
            key == "lastTransitionTime"
                || match live.get(key) {
                    Some(live) => is_semantic_subset(value, live),
                    None => is_empty(value),
                }
        }),
        (Value::Array(desired), Value::Array(live)) => {
            desired.len() == live.len()
                && desired
                    .iter()
                    .zip(live)
                    .all(|(d, l)| is_semantic_subset(d, l))
        }
        (Value::Number(desired), Value::Number(live)) => {
            desired == live || desired.as_f64() == live.as_f64()
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_subset_rule_is_the_hosts() {
        assert!(is_semantic_subset(
            &json!({"spec": {"containers": [{"name": "web"}]}, "x": null}),
            &json!({"spec": {"containers": [{"name": "web", "image": "nginx"}], "replicas": 1}})
        ));
        assert!(!is_semantic_subset(
            &json!({"a": [1, 2]}),
            &json!({"a": [1]})
        ));
        assert!(is_semantic_subset(&json!({"n": 1}), &json!({"n": 1.0})));
        assert!(is_semantic_subset(
            &json!({"conditions": [{"type": "Ready", "lastTransitionTime": "a"}]}),
            &json!({"conditions": [{"type": "Ready", "lastTransitionTime": "b"}]})
        ));
        assert!(!is_semantic_subset(
            &json!({"found": false}),
            &json!({"found": true})
        ));
    }
}
