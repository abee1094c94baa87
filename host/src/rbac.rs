//! The Kubernetes permissions the host needs to run a module, derived from
//! the module's (checked) declaration and the namespaces it is granted:
//! what `bosun rbac` prints, and what the host asks the API server it holds
//! (SelfSubjectAccessReview) before it starts a module — a missing
//! permission fails that module's load with `MissingRBAC`, naming the verb,
//! the resource and the rule to add, instead of 403s in a loop.
//!
//! The host watches a module's kinds only in the namespaces its grant
//! names ([`crate::informers`]), so a confined module needs a Role in each
//! of them and no ClusterRole at all for its namespaced kinds;
//! [`rbac_objects`] prints exactly that.

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::meta::{Kind, ModuleMeta, Scope};

/// One permission: a verb on a resource (or subresource) of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Need {
    /// The API group, empty for the core group.
    pub group: String,
    /// The resource, with `/subresource` when it is one (`ats/status`).
    pub resource: String,
    /// The verb.
    pub verb: &'static str,
    /// The namespace of the one object it is needed on, so a Role in that
    /// namespace is enough (the host's review asks about that namespace).
    pub namespace: Option<String>,
    /// The one object it is needed on (`resourceNames`), when it is not
    /// needed on every object of the resource: the Secrets a grant names.
    pub name: Option<String>,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {} ({group})", self.verb, self.resource)?;
        match (&self.namespace, &self.name) {
            (Some(namespace), Some(name)) => write!(f, " named {namespace}/{name}")?,
            (None, Some(name)) => write!(f, " named {name}")?,
            _ => {}
        }
        Ok(())
    }
}

/// `verbs` on `kind` (or its `subresource`): in each of `namespaces` for
/// a namespaced kind when some are named, else cluster-wide.
fn needs_on(
    kind: &Kind,
    subresource: Option<&str>,
    verbs: &[&'static str],
    namespaces: &[String],
) -> Vec<Need> {
    let resource = match subresource {
        Some(sub) => format!("{}/{sub}", kind.plural),
        None => kind.plural.clone(),
    };
    let scopes: Vec<Option<String>> = match kind.scope {
        Scope::Namespaced if !namespaces.is_empty() => {
            namespaces.iter().cloned().map(Some).collect()
        }
        _ => vec![None],
    };
    let mut needs = Vec::new();
    for namespace in scopes {
        for verb in verbs {
            needs.push(Need {
                group: kind.group.clone(),
                resource: resource.clone(),
                verb,
                name: None,
                namespace: namespace.clone(),
            });
        }
    }
    needs
}

/// `get` on one Secret, by name.
fn get_secret(namespace: &str, name: &str) -> Need {
    Need {
        group: String::new(),
        resource: "secrets".into(),
        verb: "get",
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
    }
}

/// What the host needs to run `meta` within `namespaces` (empty: every
/// namespace): watch and patch its primary (the finalizer), write its
/// status, update its finalizers subresource (which setting
/// `blockOwnerDeletion` on a child requires), and read, create, apply and
/// delete its owned kinds, read its read kinds.
pub fn module_needs(meta: &ModuleMeta, namespaces: &[String]) -> Vec<Need> {
    let primary = &meta.primary;
    let mut needs = needs_on(
        primary,
        None,
        &["get", "list", "watch", "patch"],
        namespaces,
    );
    needs.extend(needs_on(
        primary,
        Some("status"),
        &["get", "patch"],
        namespaces,
    ));
    if !meta.owns.is_empty() {
        needs.extend(needs_on(
            primary,
            Some("finalizers"),
            &["update"],
            namespaces,
        ));
    }
    for kind in &meta.owns {
        needs.extend(needs_on(kind, None, OWNED_VERBS, namespaces));
    }
    for kind in &meta.reads {
        needs.extend(needs_on(kind, None, READ_VERBS, namespaces));
    }
    needs.sort();
    needs.dedup();
    needs
}

const OWNED_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// What the host needs to run a module granted `permissions` (for
/// ReconcilerModules, whose declarations are only known once fetched): the
/// same as [`module_needs`] for the granted kinds, their plurals found by
/// discovery.
///
/// # Errors
///
/// When a granted kind is not served.
pub async fn grant_needs(
    permissions: &crate::grants::Permissions,
    discovery: &crate::discovery::Discovery,
) -> Result<Vec<Need>, kube::Error> {
    let kind = |(plural, scope): (String, Scope), group: &str| Kind {
        group: group.to_owned(),
        version: String::new(),
        kind: String::new(),
        plural,
        scope,
    };
    let namespaces = &permissions.namespaces;
    let mut needs = Vec::new();
    if let Some(primary) = &permissions.reconciles {
        let served = discovery.plural_of(&primary.group, &primary.kind).await?;
        let primary = kind(served, &primary.group);
        needs.extend(needs_on(
            &primary,
            None,
            &["get", "list", "watch", "patch"],
            namespaces,
        ));
        needs.extend(needs_on(
            &primary,
            Some("status"),
            &["get", "patch"],
            namespaces,
        ));
        if !permissions.owns.is_empty() {
            needs.extend(needs_on(
                &primary,
                Some("finalizers"),
                &["update"],
                namespaces,
            ));
        }
    }
    for owned in &permissions.owns {
        let served = discovery.plural_of(&owned.group, &owned.kind).await?;
        needs.extend(needs_on(
            &kind(served, &owned.group),
            None,
            OWNED_VERBS,
            namespaces,
        ));
    }
    for read in &permissions.reads {
        let served = discovery.plural_of(&read.group, &read.kind).await?;
        needs.extend(needs_on(
            &kind(served, &read.group),
            None,
            READ_VERBS,
            namespaces,
        ));
    }
    needs.sort();
    needs.dedup();
    Ok(needs)
}

/// What the host needs for a module's HTTP grant: `get` on each Secret
/// holding credentials or a CA bundle, by name, and nothing more (CA
/// bundles in ConfigMaps are covered by the host's own `get` on ConfigMaps).
pub fn http_needs(permissions: &crate::grants::Permissions) -> Vec<Need> {
    let mut needs: Vec<Need> = permissions
        .http
        .iter()
        .flat_map(|grant| {
            let credentials = grant.credentials.as_ref().map(|c| &c.secret_ref);
            let bundle = match &grant.ca_bundle {
                Some(crate::grants::CaBundle::SecretRef(key)) => Some(key),
                _ => None,
            };
            credentials.into_iter().chain(bundle)
        })
        .map(|key| get_secret(&key.namespace, &key.name))
        .collect();
    needs.sort();
    needs.dedup();
    needs
}

/// What the host needs to fetch a module whose source names `pull_secret`
/// (an OCI source's, as [`ModuleSource::pull_secret`] gives it): `get` on
/// that Secret alone. ConfigMap sources are covered by the host's own `get`
/// on ConfigMaps; URL and file sources need nothing.
///
/// [`ModuleSource::pull_secret`]: crate::modules::resource::ModuleSource::pull_secret
pub fn pull_secret_needs(pull_secret: Option<(&str, &str)>) -> Vec<Need> {
    pull_secret
        .map(|(namespace, name)| get_secret(namespace, name))
        .into_iter()
        .collect()
}

/// What the host needs for itself, whatever its modules: ReconcilerModules
/// and their status, ConfigMaps (module sources), Leases (leader election)
/// and Events.
pub fn host_needs() -> Vec<Need> {
    let need = |group: &str, resource: &str, verbs: &[&'static str]| -> Vec<Need> {
        verbs
            .iter()
            .map(|verb| Need {
                group: group.to_owned(),
                resource: resource.to_owned(),
                verb,
                name: None,
                namespace: None,
            })
            .collect()
    };
    [
        need("bosun.dev", "reconcilermodules", &["get", "list", "watch"]),
        need("bosun.dev", "reconcilermodules/status", &["get", "patch"]),
        need("", "configmaps", &["get"]),
        need(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update"],
        ),
        need("events.k8s.io", "events", &["create", "patch"]),
        vec![Need {
            group: String::new(),
            resource: "endpoints".into(),
            verb: "get",
            name: Some("kubernetes".into()),
            namespace: Some("default".into()),
        }],
    ]
    .concat()
}

/// A ClusterRole granting `needs`, rules grouped by group and resource.
pub fn cluster_role(name: &str, needs: &[Need]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules(needs),
    })
}

/// A Role in `namespace` granting `needs`.
pub fn role(name: &str, namespace: &str, needs: &[Need]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules(needs),
    })
}

/// The roles granting `needs`, least privilege first: a Role named `name`
/// in each namespace where something is needed there only, and a
/// ClusterRole named `name` for what is needed cluster-wide (none when
/// nothing is). Needs on one named object (a Secret a grant names) stay in
/// the ClusterRole by name, as `bosun rbac` has always printed them.
pub fn rbac_objects(name: &str, needs: &[Need]) -> Vec<Value> {
    let mut cluster_wide: Vec<Need> = Vec::new();
    let mut by_namespace: BTreeMap<&str, Vec<Need>> = BTreeMap::new();
    for need in needs {
        match (&need.namespace, &need.name) {
            (Some(namespace), None) => by_namespace
                .entry(namespace.as_str())
                .or_default()
                .push(need.clone()),
            _ => cluster_wide.push(need.clone()),
        }
    }
    let mut objects: Vec<Value> = by_namespace
        .into_iter()
        .map(|(namespace, needs)| role(name, namespace, &needs))
        .collect();
    if !cluster_wide.is_empty() || objects.is_empty() {
        objects.push(cluster_role(name, &cluster_wide));
    }
    objects
}

/// The rules granting `needs`, grouped by group and verbs.
fn rules(needs: &[Need]) -> Vec<Value> {
    let mut rules: BTreeMap<(String, Vec<&'static str>), Vec<String>> = BTreeMap::new();
    let mut verbs: BTreeMap<(String, String), Vec<&'static str>> = BTreeMap::new();
    // Needs on named objects get rules of their own, with resourceNames.
    let mut named: BTreeMap<(String, String, &'static str), Vec<String>> = BTreeMap::new();
    for need in needs {
        if let Some(name) = &need.name {
            named
                .entry((need.group.clone(), need.resource.clone(), need.verb))
                .or_default()
                .push(name.clone());
            continue;
        }
        let entry = verbs
            .entry((need.group.clone(), need.resource.clone()))
            .or_default();
        if !entry.contains(&need.verb) {
            entry.push(need.verb);
        }
    }
    for ((group, resource), mut verbs) in verbs {
        verbs.sort_by_key(|verb| VERB_ORDER.iter().position(|v| v == verb));
        rules.entry((group, verbs)).or_default().push(resource);
    }
    let named_rules = named.into_iter().map(|((group, resource, verb), mut names)| {
        names.sort();
        names.dedup();
        json!({"apiGroups": [group], "resources": [resource], "resourceNames": names, "verbs": [verb]})
    });
    rules
        .into_iter()
        .map(|((group, verbs), resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
        })
        .chain(named_rules)
        .collect()
}

/// The order verbs are written in, as in Kubernetes' own roles.
const VERB_ORDER: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// Some permissions the host lacks for a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the host's service account lacks what module {module} needs: {}; bind the host to these roles (bosun rbac prints them for a module and its grant):\n{rules}",
    missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
)]
pub struct MissingRbac {
    /// The module's name.
    pub module: String,
    /// Each missing permission.
    pub missing: Vec<Need>,
    /// The roles to bind the host to, as YAML documents.
    pub rules: String,
}

/// Asks the API server, by SelfSubjectAccessReview, whether the host holds
/// every permission in `needs`, each where it is needed: in its namespace,
/// or cluster-wide.
///
/// # Errors
///
/// [`MissingRbac`] naming each one it lacks. A review that cannot be made
/// (the API is unreachable, or refuses reviews) is not taken as a refusal:
/// the host then finds out from the writes themselves.
pub async fn check(client: &Client, module: &str, needs: &[Need]) -> Result<(), MissingRbac> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for need in needs {
        let (resource, subresource) = match need.resource.split_once('/') {
            Some((resource, sub)) => (resource.to_owned(), Some(sub.to_owned())),
            None => (need.resource.clone(), None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(need.group.clone()),
                    resource: Some(resource),
                    subresource,
                    name: need.name.clone(),
                    namespace: need.namespace.clone(),
                    verb: Some(need.verb.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => missing.push(need.clone()),
            Err(error) => {
                tracing::warn!(%error, module, "cannot review the host's permissions; going ahead");
                return Ok(());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let rules = rbac_objects("bosun-modules", &missing)
        .iter()
        .map(|role| serde_yaml::to_string(role).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n");
    Err(MissingRbac {
        module: module.to_owned(),
        missing,
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Scope;

    fn kind(group: &str, kind: &str, plural: &str) -> Kind {
        Kind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            scope: Scope::Namespaced,
        }
    }

    fn meta() -> ModuleMeta {
        ModuleMeta {
            name: "webapp".into(),
            version: "0.1.0".into(),
            primary: kind("examples.bosun.dev", "WebApp", "webapps"),
            owns: vec![
                kind("apps", "Deployment", "deployments"),
                kind("", "Service", "services"),
            ],
            reads: vec![kind("", "ConfigMap", "configmaps")],
            finalizer: None,
            http_origins: vec![],
        }
    }

    #[test]
    fn a_module_needs_its_primary_its_status_and_its_children() {
        let needs = module_needs(&meta(), &[]);
        let has = |group: &str, resource: &str, verb: &str| {
            needs
                .iter()
                .any(|n| n.group == group && n.resource == resource && n.verb == verb)
        };
        assert!(has("examples.bosun.dev", "webapps", "watch"));
        assert!(has("examples.bosun.dev", "webapps/status", "patch"));
        assert!(has("examples.bosun.dev", "webapps/finalizers", "update"));
        assert!(has("apps", "deployments", "delete"));
        assert!(has("", "configmaps", "list"));
        assert!(!has("", "configmaps", "delete"), "read kinds are read only");
        assert!(!has("", "secrets", "get"));
    }

    #[test]
    fn a_module_confined_to_namespaces_needs_a_role_in_each_and_no_cluster_role() {
        let namespaces = ["shop".to_owned(), "blog".to_owned()];
        let needs = module_needs(&meta(), &namespaces);
        assert!(needs.iter().all(|n| n.namespace.is_some()), "{needs:?}");
        let objects = rbac_objects("bosun-webapp", &needs);
        let kinds: Vec<(&str, &str)> = objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["namespace"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(kinds, [("Role", "blog"), ("Role", "shop")]);
        let shop = &objects[1];
        assert!(
            shop["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resources"] == json!(["configmaps"])
                    && r["verbs"] == json!(["get", "list", "watch"])),
            "{shop}"
        );
    }

    #[test]
    fn cluster_scoped_kinds_stay_cluster_wide_under_a_confined_grant() {
        let mut meta = meta();
        meta.reads.push(Kind {
            scope: Scope::Cluster,
            ..kind("", "Node", "nodes")
        });
        let objects = rbac_objects("m", &module_needs(&meta, &["shop".to_owned()]));
        let cluster_role = objects
            .iter()
            .find(|o| o["kind"] == "ClusterRole")
            .expect("a ClusterRole for the cluster-scoped kind");
        assert_eq!(
            cluster_role["rules"],
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}])
        );
        assert!(objects.iter().any(|o| o["kind"] == "Role"));
    }

    #[test]
    fn an_unconfined_module_gets_one_cluster_role() {
        let objects = rbac_objects("bosun-webapp", &module_needs(&meta(), &[]));
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["kind"], "ClusterRole");
    }

    #[test]
    fn the_cluster_role_groups_rules_by_group_and_verbs() {
        let role = cluster_role("bosun-webapp", &module_needs(&meta(), &[]));
        let rules = role["rules"].as_array().unwrap();
        let core_owned = rules
            .iter()
            .find(|r| r["apiGroups"] == json!([""]) && r["resources"] == json!(["services"]))
            .unwrap();
        assert_eq!(
            core_owned["verbs"],
            json!(["get", "list", "watch", "create", "patch", "delete"])
        );
        assert_eq!(role["metadata"]["name"], "bosun-webapp");
    }

    #[test]
    fn secrets_a_module_is_granted_or_pulled_with_are_read_by_name_only() {
        let permissions: crate::grants::Permissions = serde_json::from_value(json!({
            "http": [
                {"origin": "https://dns.example",
                 "credentials": {"header": "X-API-Key",
                                 "secretRef": {"namespace": "dns", "name": "pdns-key", "key": "key"}},
                 "caBundle": {"secretRef": {"namespace": "dns", "name": "pdns-ca", "key": "ca.crt"}}},
                {"origin": "https://open.example"}
            ]
        }))
        .unwrap();
        let mut needs = http_needs(&permissions);
        needs.extend(pull_secret_needs(Some(("bosun-system", "registry-auth"))));
        needs.sort();
        let named: Vec<String> = needs.iter().map(ToString::to_string).collect();
        assert_eq!(
            named,
            [
                "get secrets (core) named bosun-system/registry-auth",
                "get secrets (core) named dns/pdns-ca",
                "get secrets (core) named dns/pdns-key",
            ],
        );
        let role = cluster_role("bosun-modules", &needs);
        assert_eq!(
            role["rules"],
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                    "resourceNames": ["pdns-ca", "pdns-key", "registry-auth"]}]),
            "no rule reads Secrets other than those named"
        );
    }
}
