//! Zero writes outside any grant, judged two ways.
//!
//! - **Bystanders**: objects no module may touch — of every kind the
//!   modules reconcile, own or read, in a namespace no grant names; of
//!   kinds no module owns, in the lanes' own namespaces; and the ConfigMap
//!   a hostile guest desires by name in its own namespace (a take-over) —
//!   keep their fingerprint (resourceVersion, ownerReferences and field
//!   managers, read from the API server) from before the hosts start to
//!   the end.
//! - **The audit log**: every write each lane's hosts attempted (their
//!   ServiceAccount's creates, updates, patches and deletes, whatever the
//!   API server answered) is inside a grant of that lane: in a namespace
//!   the module is granted, of its primary kind (status, finalizers) or a
//!   kind it owns — the module known by the request's field manager
//!   (`bosun/<module>`) or, where a request names none (deletes, the
//!   host's condition patches under `bosun`), any module of the lane; or
//!   the host's own: its Lease, ReconcilerModule status, Events in a
//!   granted namespace, access reviews, its recordings (ConfigMaps in its
//!   own namespace).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::soak::cluster::{self, BYSTANDER_NAMESPACE, Lane, SYSTEM_NAMESPACE};

/// What someone checking that an object was not touched compares.
pub type Fingerprint = (Option<String>, Value, Vec<String>);

/// The bystanders and their fingerprints from before the hosts started.
pub struct Bystanders {
    objects: Vec<(ApiResource, String, String, Fingerprint)>,
}

/// A bystander whose fingerprint changed.
#[derive(Debug, Clone)]
pub struct Touched {
    /// `Kind namespace/name`.
    pub object: String,
    /// Before and after.
    pub change: String,
}

async fn fingerprint(api: &Api<DynamicObject>, name: &str) -> Result<Fingerprint> {
    let object = api
        .get(name)
        .await
        .with_context(|| format!("reading {name}"))?;
    let mut managers: Vec<String> = object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    managers.sort();
    Ok((
        object.metadata.resource_version.clone(),
        json!(object.metadata.owner_references),
        managers,
    ))
}

impl Bystanders {
    /// Creates the bystanders and takes their fingerprints.
    pub async fn create(client: &kube::Client) -> Result<Bystanders> {
        let due = "2020-01-01T00:00:00Z";
        let mut wanted: Vec<(String, ApiResource, Value)> = vec![
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::config_maps(),
                json!({"data": {"mine": "yes"}}),
            ),
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::resource("", "v1", "Secret", "secrets"),
                json!({"stringData": {"token": "hunter2"}}),
            ),
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::services(),
                json!({"spec": {"selector": {"app.kubernetes.io/name": "bystander"}, "ports": [{"port": 80}]}}),
            ),
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::ats(),
                json!({"spec": {"schedule": due, "command": "echo never"}}),
            ),
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::webapps(),
                json!({"spec": {"image": "nginx", "replicas": 1, "port": 80}}),
            ),
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::mirrors(),
                json!({"spec": {"configMapName": "bystander"}}),
            ),
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::misbehaves(),
                json!({"spec": {"mode": "ok"}}),
            ),
            // Without a node nothing but a host could write it; with one,
            // only kube-controller-manager's status of it, once (below).
            (
                BYSTANDER_NAMESPACE.into(),
                cluster::deployments(),
                json!({"spec": {"replicas": 0, "selector": {"matchLabels": {"app.kubernetes.io/name": "bystander"}},
                    "template": {"metadata": {"labels": {"app.kubernetes.io/name": "bystander"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
            ),
        ];
        for lane in Lane::ALL {
            wanted.push((
                lane.apps(),
                cluster::resource("", "v1", "Secret", "secrets"),
                json!({"stringData": {"keep": "out"}}),
            ));
            wanted.push((
                lane.apps(),
                cluster::config_maps(),
                json!({"data": {"handmade": "yes"}}),
            ));
            wanted.push((
                lane.apps(),
                cluster::resource("", "v1", "ServiceAccount", "serviceaccounts"),
                json!({}),
            ));
            wanted.push((
                lane.apps(),
                cluster::resource("rbac.authorization.k8s.io", "v1", "Role", "roles"),
                json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            ));
            // What the hostile `named` guest desires: a take-over.
            wanted.push((
                lane.hostile(),
                cluster::config_maps(),
                json!({"data": {"mine": "yes"}}),
            ));
        }
        let mut objects = Vec::new();
        for (namespace, resource, body) in wanted {
            let mut object = body;
            object["apiVersion"] = json!(resource.api_version);
            object["kind"] = json!(resource.kind);
            object["metadata"] = json!({"name": "bystander", "namespace": namespace});
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            api.create(&PostParams::default(), &serde_json::from_value(object)?)
                .await
                .with_context(|| {
                    format!("creating the bystander {} in {namespace}", resource.kind)
                })?;
            let print = fingerprint(&api, "bystander").await?;
            objects.push((resource, namespace, "bystander".to_owned(), print));
        }
        // With `--node` kube-controller-manager writes the Deployment's
        // status once (a ReplicaSet of none) after it is made: the
        // fingerprints count from when two reads 3 s apart agree.
        for _ in 0..10 {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            let mut settled = true;
            for (resource, namespace, name, print) in &mut objects {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, resource);
                let now = fingerprint(&api, name).await?;
                if &now != print {
                    settled = false;
                    *print = now;
                }
            }
            if settled {
                break;
            }
        }
        Ok(Bystanders { objects })
    }

    /// How many bystanders there are.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The bystanders whose fingerprint changed.
    pub async fn touched(&self, client: &kube::Client) -> Result<Vec<Touched>> {
        let mut touched = Vec::new();
        for (resource, namespace, name, before) in &self.objects {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
            let now = match fingerprint(&api, name).await {
                Ok(now) => now,
                Err(error) => {
                    touched.push(Touched {
                        object: format!("{} {namespace}/{name}", resource.kind),
                        change: format!("gone: {error:#}"),
                    });
                    continue;
                }
            };
            if &now != before {
                touched.push(Touched {
                    object: format!("{} {namespace}/{name}", resource.kind),
                    change: format!("{before:?} → {now:?}"),
                });
            }
        }
        Ok(touched)
    }
}

/// What one module of a lane is granted, as the audit judges it.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The lane whose hosts run it.
    pub lane: Lane,
    /// The module's name (its field manager is `bosun/<name>`).
    pub module: String,
    /// Its namespaces.
    pub namespaces: Vec<String>,
    /// The resources (plurals, with their API group) it reconciles or owns.
    pub resources: Vec<(String, String)>,
}

impl Granted {
    /// From a grant file as `bosun inspect --grant` prints it.
    pub fn from_grant(lane: Lane, grant: &Value) -> Result<Granted> {
        let module = grant["module"]
            .as_str()
            .context("a grant without a module")?
            .to_owned();
        let permissions = &grant["permissions"];
        let kinds = permissions["reconciles"]
            .as_object()
            .map(|k| Value::Object(k.clone()))
            .into_iter()
            .chain(permissions["owns"].as_array().cloned().unwrap_or_default());
        let resources = kinds
            .map(|kind| {
                (
                    kind["group"].as_str().unwrap_or_default().to_owned(),
                    // Every kind the soak's modules name has the regular plural.
                    format!(
                        "{}s",
                        kind["kind"].as_str().unwrap_or_default().to_lowercase()
                    ),
                )
            })
            .collect();
        let namespaces = permissions["namespaces"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Granted {
            lane,
            module,
            namespaces,
            resources,
        })
    }

    fn covers(&self, namespace: &str, group: &str, resource: &str) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            && self
                .resources
                .iter()
                .any(|(g, r)| g == group && r == resource)
    }
}

/// What the audit log says of the hosts' writes.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Writes inside a grant the API server took (2xx), by lane and what.
    pub granted: BTreeMap<(String, String), u64>,
    /// Attempts inside a grant the API server refused, by lane and code
    /// (conflicts of create-only applies and pinned updates, a guest's
    /// child it finds invalid).
    pub refused: BTreeMap<(String, u16), u64>,
    /// Writes outside every grant of their lane: the request, its answer.
    pub outside: Vec<String>,
    /// Lines that were not audit events of a host.
    pub unreadable: u64,
}

/// Judges the audit log at `path` against each lane's grants.
pub fn audit(path: &Path, grants: &[Granted]) -> Result<Audit> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut audit = Audit::default();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            audit.unreadable += 1;
            continue;
        };
        let user = event
            .pointer("/user/username")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(lane) = Lane::ALL.into_iter().find(|l| l.user() == user) else {
            audit.unreadable += 1;
            continue;
        };
        let text = |pointer: &str| {
            event
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let resource = text("/objectRef/resource");
        let group = text("/objectRef/apiGroup");
        let namespace = text("/objectRef/namespace");
        let subresource = text("/objectRef/subresource");
        let uri = text("/requestURI");
        let code = event
            .pointer("/responseStatus/code")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u16;
        let manager = field_manager(uri);
        let lane_grants: Vec<&Granted> = grants.iter().filter(|g| g.lane == lane).collect();
        let in_lane = |namespace: &str| {
            lane_grants
                .iter()
                .any(|g| g.namespaces.iter().any(|n| n == namespace))
        };
        let what: Option<String> = match (group, resource) {
            ("authorization.k8s.io" | "authentication.k8s.io", _) => Some("access reviews".into()),
            ("coordination.k8s.io", "leases") if namespace == SYSTEM_NAMESPACE => {
                Some("its Lease".into())
            }
            // The flight recorder's ConfigMaps, in the host's own namespace.
            ("", "configmaps") if namespace == SYSTEM_NAMESPACE => Some("its recordings".into()),
            ("bosun.dev", "reconcilermodules") if subresource == "status" => {
                Some("ReconcilerModule status".into())
            }
            ("" | "events.k8s.io", "events") if in_lane(namespace) => Some("events".into()),
            _ => {
                let module = manager.as_deref().and_then(|m| m.strip_prefix("bosun/"));
                let covered = lane_grants.iter().any(|g| {
                    module.is_none_or(|m| m == g.module) && g.covers(namespace, group, resource)
                });
                covered.then(|| {
                    format!(
                        "{} {resource}{}",
                        module.unwrap_or("(the host)"),
                        if subresource.is_empty() {
                            String::new()
                        } else {
                            format!("/{subresource}")
                        }
                    )
                })
            }
        };
        match what {
            Some(what) if (200..300).contains(&code) => {
                *audit
                    .granted
                    .entry((lane.name().to_owned(), what))
                    .or_default() += 1;
            }
            Some(_) => {
                *audit
                    .refused
                    .entry((lane.name().to_owned(), code))
                    .or_default() += 1
            }
            None => audit.outside.push(format!(
                "{} host: {} {uri} (field manager {manager:?}) → {code}",
                lane.name(),
                text("/verb"),
            )),
        }
    }
    Ok(audit)
}

/// The `fieldManager` query parameter of a request URI, decoded.
fn field_manager(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("fieldManager=")?;
        Some(value.replace("%2F", "/").replace("%2f", "/"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        user: &str,
        verb: &str,
        uri: &str,
        group: &str,
        resource: &str,
        namespace: &str,
        code: u16,
    ) -> String {
        json!({
            "kind": "Event", "stage": "ResponseComplete", "verb": verb, "requestURI": uri,
            "user": {"username": user},
            "objectRef": {"resource": resource, "apiGroup": group, "namespace": namespace},
            "responseStatus": {"code": code},
        })
        .to_string()
    }

    #[test]
    fn writes_are_judged_against_their_lanes_grants() {
        let grant = json!({"module": "webapp", "permissions": {
            "reconciles": {"group": "examples.bosun.dev", "kind": "WebApp"},
            "owns": [{"group": "apps", "kind": "Deployment"}, {"group": "", "kind": "Service"}],
            "namespaces": ["soak-pair"]}});
        let grants = [Granted::from_grant(Lane::Pair, &grant).unwrap()];
        let pair = Lane::Pair.user();
        let steady = Lane::Steady.user();
        let lines = [
            line(
                &pair,
                "patch",
                "/apis/apps/v1/namespaces/soak-pair/deployments/a?fieldManager=bosun%2Fwebapp",
                "apps",
                "deployments",
                "soak-pair",
                200,
            ),
            line(
                &pair,
                "patch",
                "/api/v1/namespaces/soak-pair/services/a?fieldManager=bosun%2Fwebapp",
                "",
                "services",
                "soak-pair",
                409,
            ),
            line(
                &pair,
                "delete",
                "/api/v1/namespaces/soak-pair/services/a",
                "",
                "services",
                "soak-pair",
                200,
            ),
            line(
                &pair,
                "patch",
                "/api/v1/namespaces/soak-other/services/a?fieldManager=bosun%2Fwebapp",
                "",
                "services",
                "soak-other",
                200,
            ),
            line(
                &pair,
                "patch",
                "/api/v1/namespaces/soak-pair/configmaps/a?fieldManager=bosun%2Fwebapp",
                "",
                "configmaps",
                "soak-pair",
                200,
            ),
            line(
                &steady,
                "patch",
                "/apis/apps/v1/namespaces/soak-pair/deployments/a?fieldManager=bosun%2Fwebapp",
                "apps",
                "deployments",
                "soak-pair",
                200,
            ),
            line(
                &pair,
                "update",
                "/apis/coordination.k8s.io/v1/namespaces/bosun-system/leases/bosun-leader",
                "coordination.k8s.io",
                "leases",
                "bosun-system",
                200,
            ),
            line(
                &pair,
                "create",
                "/api/v1/namespaces/soak-pair/events",
                "",
                "events",
                "soak-pair",
                201,
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let audit = audit(&path, &grants).unwrap();
        assert_eq!(audit.outside.len(), 3, "{:?}", audit.outside);
        assert_eq!(audit.refused[&("pair".to_owned(), 409)], 1);
        assert_eq!(
            audit.granted.values().sum::<u64>(),
            4,
            "{:?}",
            audit.granted
        );
    }
}
