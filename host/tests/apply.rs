//! `Applier` against a real kube-apiserver: what a user sees after a plan is
//! written (children, ownership, status, events, finalizers), and that a
//! reconcile of an unchanged object writes nothing at all.
//!
//! One control plane serves the whole file; each test works in its own
//! namespace. The tests also take a lock so they run one at a time: the
//! zero-writes test counts write requests in the API server's metrics,
//! which have no namespace label.

use std::time::Duration;

use bosun::apply::ApplyError;
use bosun::apply::{Applier, ApplyReport};
use bosun::discovery::StatusRoom;
use bosun::engine::bindings as wit;
use bosun::meta::{Kind, ModuleMeta, Scope};
use bosun::plan::{ObjectRef, Plan, PlanContext, plan_response};
use bosun_testenv::TestEnv;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GetParams, ListParams, Patch, PatchParams,
    PostParams,
};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

const WEBAPP_CRD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/webapp/crd.yaml");
const FINALIZER: &str = "examples.bosun.dev/cleanup";

/// Serialises the tests; see the module docs.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// One test's world: a client, a fresh namespace, the webapp module's
/// declaration and an applier.
struct Fixture {
    client: Client,
    ns: String,
    meta: ModuleMeta,
    applier: Applier,
    _serial: MutexGuard<'static, ()>,
}

async fn fixture(test: &str) -> Fixture {
    let serial = SERIAL.lock().await;
    let env = TestEnv::shared()
        .await
        .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"));
    env.install_crds([WEBAPP_CRD])
        .await
        .unwrap_or_else(|e| panic!("installing the WebApp CRD: {e}"));
    // A client on this test's own runtime: the environment's own lives on
    // the first test's, which may have ended.
    let client = env.new_client().await.expect("a client");
    // Namespace names are DNS labels: at most 63 characters.
    let mut ns: String = test.replace('_', "-").chars().take(48).collect();
    ns = format!("{}-{}", ns.trim_end_matches('-'), std::process::id());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
    Fixture {
        applier: Applier::new(client.clone(), "bosun"),
        client,
        ns,
        meta: webapp_meta(),
        _serial: serial,
    }
}

fn kind(group: &str, version: &str, kind: &str, plural: &str) -> Kind {
    Kind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        scope: Scope::Namespaced,
    }
}

fn webapp_meta() -> ModuleMeta {
    ModuleMeta {
        name: "webapp".into(),
        version: "0.1.0".into(),
        primary: kind("examples.bosun.dev", "v1alpha1", "WebApp", "webapps"),
        owns: vec![
            kind("apps", "v1", "Deployment", "deployments"),
            kind("", "v1", "Service", "services"),
        ],
        reads: vec![],
        finalizer: Some(FINALIZER.into()),
        http_origins: vec![],
    }
}

fn resource(kind: &Kind) -> ApiResource {
    ApiResource {
        group: kind.group.clone(),
        version: kind.version.clone(),
        api_version: kind.api_version(),
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
    }
}

impl Fixture {
    fn api(&self, kind: &Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &resource(kind))
    }

    fn webapps(&self) -> Api<DynamicObject> {
        self.api(&self.meta.primary)
    }

    fn deployments(&self) -> Api<DynamicObject> {
        self.api(&self.meta.owns[0])
    }

    fn services(&self) -> Api<DynamicObject> {
        self.api(&self.meta.owns[1])
    }

    async fn create_webapp(&self, name: &str) -> Value {
        let app: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1",
            "kind": "WebApp",
            "metadata": {"name": name},
            "spec": {"image": "nginx:1.27", "replicas": 1, "port": 8080},
        }))
        .expect("webapp object");
        let created = self
            .webapps()
            .create(&PostParams::default(), &app)
            .await
            .unwrap_or_else(|e| panic!("creating WebApp {name}: {e}"));
        to_json(created)
    }

    /// The object as the host's cache would hold it now.
    async fn webapp(&self, name: &str) -> Value {
        let object = self
            .webapps()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("getting WebApp {name}: {e}"));
        compact(to_json(object))
    }

    /// The children of `owner`, as the host's cache would hold them now.
    async fn observed(&self, owner: &Value) -> Vec<Value> {
        let uid = owner["metadata"]["uid"].as_str().expect("owner uid");
        let mut observed = Vec::new();
        for kind in &self.meta.owns {
            let list = self
                .api(kind)
                .list(&ListParams::default())
                .await
                .expect("list children");
            // List items of built-in kinds come without apiVersion and kind;
            // the cache fills them in, and so does this.
            let typed = list.items.into_iter().map(to_json).map(|mut child| {
                child["apiVersion"] = json!(kind.api_version());
                child["kind"] = json!(kind.kind);
                compact(child)
            });
            observed.extend(typed.filter(|child| {
                child["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|owners| owners.iter().any(|o| o["uid"] == uid))
            }));
        }
        observed
    }

    async fn events(&self, regarding: &str) -> Vec<K8sEvent> {
        Api::<K8sEvent>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding))
            .collect()
    }
}

fn to_json(object: DynamicObject) -> Value {
    serde_json::to_value(object).expect("object as JSON")
}

/// Drops `fieldsV1` from managedFields, as the host's cache does, so the
/// applier is tested on what it will really see.
fn compact(mut object: Value) -> Value {
    if let Some(Value::Array(entries)) = object.pointer_mut("/metadata/managedFields") {
        for entry in entries.iter_mut() {
            *entry = json!({"manager": entry["manager"], "operation": entry["operation"]});
        }
    }
    object
}

fn deployment(name: &str) -> Value {
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "bosun"});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                }]},
            },
        },
    })
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    })
}

fn webapp_status(ns: &str, name: &str) -> Value {
    json!({
        "readyReplicas": 0,
        "url": format!("http://{name}.{ns}.svc:8080"),
        "conditions": [{"type": "Ready", "status": "False", "reason": "ReplicasNotReady", "message": "0 of 1 replicas ready"}],
    })
}

fn response(children: &[Value], status: Option<Value>, events: Vec<wit::Event>) -> wit::Response {
    wit::Response {
        children: children.iter().map(Value::to_string).collect(),
        status: status.map(|s| s.to_string()),
        requeue_after_ms: None,
        events,
    }
}

fn plan(meta: &ModuleMeta, object: &Value, observed: &[Value], response: wit::Response) -> Plan {
    plan_response(
        meta,
        &PlanContext::OFFLINE,
        object,
        observed,
        response,
        Timestamp::now(),
    )
    .expect("a valid response")
}

/// The full reconcile answer for `name`: Deployment, Service and status.
fn full_response(ns: &str, name: &str) -> wit::Response {
    response(
        &[deployment(name), service(name)],
        Some(webapp_status(ns, name)),
        vec![],
    )
}

fn resource_version(object: &Value) -> &str {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
}

/// Write requests (any verb but reads) the API server has served for the
/// resources an apply can touch, from its own request metrics.
async fn write_requests(client: &Client) -> f64 {
    let request = kube::core::Request::new("")
        .get("metrics", &GetParams::default())
        .expect("metrics request");
    let metrics = client.request_text(request).await.expect("read /metrics");
    let watched = ["deployments", "services", "webapps", "events"];
    metrics
        .lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .filter(|line| {
            ["APPLY", "PATCH", "POST", "PUT", "DELETE"]
                .iter()
                .any(|verb| line.contains(&format!("verb=\"{verb}\"")))
                && watched
                    .iter()
                    .any(|r| line.contains(&format!("resource=\"{r}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn wait_gone(api: &Api<DynamicObject>, name: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while api.get_opt(name).await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} still exists after 10s"));
}

#[tokio::test]
async fn apply_creates_owned_children_and_writes_status() {
    let f = fixture("apply_creates_owned_children_and_writes_status").await;
    let app = f.create_webapp("shop").await;
    let event = wit::Event {
        event_type: wit::EventType::Normal,
        reason: "Created".into(),
        note: "created the Deployment and the Service".into(),
        action: "Reconcile".into(),
    };
    // A guest may leave out the action, which events.k8s.io/v1 requires.
    let without_action = wit::Event {
        event_type: wit::EventType::Warning,
        reason: "Slow".into(),
        note: String::new(),
        action: String::new(),
    };
    let mut response = full_response(&f.ns, "shop");
    response.events = vec![event, without_action];
    let plan = plan(&f.meta, &app, &[], response);

    let report = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &plan)
        .await
        .expect("apply");

    assert_eq!(
        report,
        ApplyReport {
            applied: 2,
            unchanged: 0,
            pruned: 0,
            status_written: true,
            events: 2,
            events_dropped: 0,
        }
    );
    let uid = app["metadata"]["uid"].as_str().expect("uid");
    for child in [
        f.deployments()
            .get("shop")
            .await
            .expect("the Deployment exists"),
        f.services().get("shop").await.expect("the Service exists"),
    ] {
        let owners = child.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].kind, "WebApp");
        assert_eq!(owners[0].controller, Some(true));
        let managers: Vec<_> = child
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| (m.manager.as_deref(), m.operation.as_deref()))
            .collect();
        assert!(
            managers.contains(&(Some("bosun/webapp"), Some("Apply"))),
            "{managers:?}"
        );
    }
    let app = f.webapp("shop").await;
    assert_eq!(app["status"]["observedGeneration"], 1);
    assert_eq!(
        app["status"]["url"],
        format!("http://shop.{}.svc:8080", f.ns)
    );
    assert_eq!(app["status"]["conditions"][0]["type"], "Ready");
    assert!(app["status"]["conditions"][0]["lastTransitionTime"].is_string());
    let events = f.events("shop").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Created") && e.type_.as_deref() == Some("Normal")),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| e.reason.as_deref() == Some("Slow") && e.action.as_deref() == Some("Reconcile")
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn reapplying_an_unchanged_plan_writes_nothing() {
    let f = fixture("reapplying_an_unchanged_plan_writes_nothing").await;
    let app = f.create_webapp("shop").await;
    let first = plan(&f.meta, &app, &[], full_response(&f.ns, "shop"));
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &first)
        .await
        .expect("first apply");

    // The next reconcile, as the operator runs it: everything from the cache.
    let app = f.webapp("shop").await;
    let observed = f.observed(&app).await;
    assert_eq!(observed.len(), 2);
    let again = plan(&f.meta, &app, &observed, full_response(&f.ns, "shop"));
    assert!(again.prune.is_empty());
    let writes_before = write_requests(&f.client).await;
    assert!(
        writes_before > 0.0,
        "the API server's metrics count no writes: the check below would prove nothing"
    );

    let report = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &observed, &again)
        .await
        .expect("second apply");

    assert_eq!(
        report,
        ApplyReport {
            applied: 0,
            unchanged: 2,
            pruned: 0,
            status_written: false,
            events: 0,
            events_dropped: 0,
        }
    );
    assert_eq!(
        write_requests(&f.client).await,
        writes_before,
        "the API server saw write requests"
    );
    assert_eq!(
        resource_version(&f.webapp("shop").await),
        resource_version(&app)
    );
    for (before, after) in observed.iter().zip(f.observed(&app).await) {
        assert_eq!(resource_version(&after), resource_version(before));
    }

    // A real change is written, and only that child.
    let mut scaled = deployment("shop");
    scaled["spec"]["replicas"] = json!(3);
    let changed = plan(
        &f.meta,
        &app,
        &observed,
        response(
            &[scaled, service("shop")],
            Some(webapp_status(&f.ns, "shop")),
            vec![],
        ),
    );
    let report = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &observed, &changed)
        .await
        .expect("third apply");
    assert_eq!((report.applied, report.unchanged), (1, 1));
    assert!(write_requests(&f.client).await > writes_before);
    let deployment = f.deployments().get("shop").await.expect("the Deployment");
    assert_eq!(deployment.data["spec"]["replicas"], 3);
}

#[tokio::test]
async fn a_field_the_module_stops_setting_is_removed() {
    // What a new version or a settings change that drops a label, or a
    // status that stops reporting a field, must do: what is left of the
    // desired object is already in the live one, yet the dropped field goes.
    let f = fixture("a_field_the_module_stops_setting_is_removed").await;
    let app = f.create_webapp("shop").await;
    let mut labelled = deployment("shop");
    labelled["metadata"]["labels"]["examples.bosun.dev/revision"] = json!("2");
    let status = webapp_status(&f.ns, "shop");
    let mut unexposed = status.clone();
    unexposed
        .as_object_mut()
        .expect("a status object")
        .remove("url");
    let first = plan(
        &f.meta,
        &app,
        &[],
        response(&[labelled], Some(status.clone()), vec![]),
    );
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &first)
        .await
        .expect("first apply");

    // A reconcile from the cache whose response leaves both fields out.
    let reconcile_without = || async {
        let app = f.webapp("shop").await;
        let observed = f.observed(&app).await;
        let without = plan(
            &f.meta,
            &app,
            &observed,
            response(&[deployment("shop")], Some(unexposed.clone()), vec![]),
        );
        f.applier
            .apply(&f.meta, StatusRoom::ANY, &app, &observed, &without)
            .await
            .expect("apply without the fields")
    };
    assert_eq!(f.webapp("shop").await["status"]["url"], status["url"]);
    let report = reconcile_without().await;
    assert_eq!((report.applied, report.status_written), (1, true));

    let live = f.deployments().get("shop").await.expect("the Deployment");
    let labels = live.metadata.labels.expect("labels");
    assert!(
        !labels.contains_key("examples.bosun.dev/revision"),
        "the dropped label stayed: {labels:?}"
    );
    assert_eq!(labels["app.kubernetes.io/name"], "shop");
    let app = f.webapp("shop").await;
    assert!(
        app["status"].get("url").is_none(),
        "the dropped status field stayed: {}",
        app["status"]
    );

    // And once that is written, the same response again writes nothing.
    let report = reconcile_without().await;
    assert_eq!(
        (report.applied, report.unchanged, report.status_written),
        (0, 1, false)
    );
}

#[tokio::test]
async fn prune_deletes_only_what_this_module_applied_for_this_object() {
    let f = fixture("prune_deletes_only_what_this_module_applied_for_this_object").await;
    let app = f.create_webapp("shop").await;
    let other = f.create_webapp("other").await;
    let first = plan(&f.meta, &app, &[], full_response(&f.ns, "shop"));
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &first)
        .await
        .expect("apply shop");

    // A Service with shop's controller reference, but made by hand.
    let mut hand_made = service("hand-made");
    hand_made["metadata"]["ownerReferences"] =
        first.apply[0]["metadata"]["ownerReferences"].clone();
    let hand_made: DynamicObject = serde_json::from_value(hand_made).expect("service object");
    let kubectl = PostParams {
        field_manager: Some("kubectl".into()),
        ..PostParams::default()
    };
    f.services()
        .create(&kubectl, &hand_made)
        .await
        .expect("create hand-made Service");
    // A Service this module applied, for the other WebApp.
    let foreign = plan(
        &f.meta,
        &other,
        &[],
        response(&[service("foreign")], None, vec![]),
    );
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &other, &[], &foreign)
        .await
        .expect("apply other");

    // The guest no longer wants shop's Service.
    let app = f.webapp("shop").await;
    let observed: Vec<Value> = [f.observed(&app).await, f.observed(&other).await].concat();
    let mut pruning = plan(
        &f.meta,
        &app,
        &observed,
        response(
            &[deployment("shop")],
            Some(webapp_status(&f.ns, "shop")),
            vec![],
        ),
    );
    let names: Vec<_> = pruning.prune.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["shop"]);
    // Forged entries the plan itself would never produce: the applier must
    // refuse them on its own.
    for name in ["hand-made", "foreign"] {
        pruning.prune.push(ObjectRef {
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: Some(f.ns.clone()),
            name: name.into(),
        });
    }

    let report = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &observed, &pruning)
        .await
        .expect("apply");

    assert_eq!(report.pruned, 1);
    wait_gone(&f.services(), "shop").await;
    assert!(
        f.services()
            .get_opt("hand-made")
            .await
            .expect("get")
            .is_some(),
        "a hand-made Service was deleted"
    );
    assert!(
        f.services()
            .get_opt("foreign")
            .await
            .expect("get")
            .is_some(),
        "another WebApp's Service was deleted"
    );
    assert!(
        f.deployments()
            .get_opt("shop")
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn prune_never_deletes_an_object_recreated_under_the_same_name() {
    let f = fixture("prune_never_deletes_an_object_recreated_under_the_same_name").await;
    let app = f.create_webapp("shop").await;
    let first = plan(&f.meta, &app, &[], full_response(&f.ns, "shop"));
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &first)
        .await
        .expect("apply");
    let app = f.webapp("shop").await;
    // The cache still holds the old Service while it is deleted and made again.
    let stale = f.observed(&app).await;
    f.services()
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete the Service");
    wait_gone(&f.services(), "shop").await;
    let recreated = f
        .services()
        .patch(
            "shop",
            &PatchParams::apply("bosun/webapp").force(),
            &Patch::Apply(&first.apply[1]),
        )
        .await
        .expect("re-create the Service");

    let pruning = plan(
        &f.meta,
        &app,
        &stale,
        response(
            &[deployment("shop")],
            Some(webapp_status(&f.ns, "shop")),
            vec![],
        ),
    );
    assert_eq!(pruning.prune.len(), 1);
    let report = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &stale, &pruning)
        .await
        .expect("apply");

    assert_eq!(report.pruned, 0);
    let live = f
        .services()
        .get("shop")
        .await
        .expect("the re-created Service still exists");
    assert_eq!(live.metadata.uid, recreated.metadata.uid);
}

/// What a bystander object looks like to someone checking it was not
/// touched: its version, owners and field managers.
fn fingerprint(object: &DynamicObject) -> (Option<String>, Value, Vec<String>) {
    (
        object.metadata.resource_version.clone(),
        json!(object.metadata.owner_references),
        object
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect(),
    )
}

#[tokio::test]
async fn an_object_of_the_childs_name_that_is_not_the_modules_is_never_taken_over() {
    let f = fixture("an_object_of_the_childs_name_that_is_not_the_modules").await;
    let app = f.create_webapp("shop").await;
    // A Service a person made, with the name the WebApp wants for its own.
    let hand_made: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "shop", "labels": {"made": "by-hand"}},
            "spec": {"ports": [{"name": "admin", "port": 9000}]}}))
        .expect("service object");
    let kubectl = PostParams {
        field_manager: Some("kubectl".into()),
        ..PostParams::default()
    };
    f.services()
        .create(&kubectl, &hand_made)
        .await
        .expect("create the hand-made Service");
    let before = f.services().get("shop").await.expect("get");

    // The cache has not seen it (or has, but it is not a child): either way
    // it is not among the observed children.
    let wanted = plan(&f.meta, &app, &[], full_response(&f.ns, "shop"));
    let err = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &wanted)
        .await
        .expect_err("the name is taken");
    assert!(
        matches!(&err, ApplyError::ChildExists { object, reason }
            if object.contains("Service.v1") && reason.contains("not controlled by WebApp shop")),
        "{err}"
    );
    let after = f.services().get("shop").await.expect("get");
    assert_eq!(
        fingerprint(&after),
        fingerprint(&before),
        "the hand-made Service was written"
    );
    assert_eq!(
        after.data["spec"]["ports"].as_array().map(Vec::len),
        Some(1)
    );

    // Controlled by the WebApp but written by someone else: still not ours.
    let mut forged = service("forged");
    forged["metadata"]["ownerReferences"] = wanted.apply[0]["metadata"]["ownerReferences"].clone();
    let forged: DynamicObject = serde_json::from_value(forged).expect("service object");
    f.services()
        .create(&kubectl, &forged)
        .await
        .expect("create the forged Service");
    let app = f.webapp("shop").await;
    let observed = f.observed(&app).await;
    let wants_forged = plan(
        &f.meta,
        &app,
        &observed,
        response(&[service("forged")], None, vec![]),
    );
    let err = f
        .applier
        .apply(&f.meta, StatusRoom::ANY, &app, &observed, &wants_forged)
        .await
        .expect_err("a hand-made child is not the module's");
    assert!(
        matches!(&err, ApplyError::ChildExists { reason, .. } if reason.contains("not written by bosun/webapp")),
        "{err}"
    );
}

#[tokio::test]
async fn a_created_child_is_owned_by_the_modules_apply_entry_alone() {
    let f = fixture("a_created_child_is_owned_by_the_modules_apply_entry").await;
    let app = f.create_webapp("shop").await;
    let wanted = plan(&f.meta, &app, &[], full_response(&f.ns, "shop"));
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &wanted)
        .await
        .expect("apply");
    for child in [
        f.deployments().get("shop").await,
        f.services().get("shop").await,
    ] {
        let child = child.expect("created");
        let entries: Vec<(Option<String>, Option<String>)> = child
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| (m.manager.clone(), m.operation.clone()))
            .collect();
        assert!(
            entries.contains(&(Some("bosun/webapp".into()), Some("Apply".into()))),
            "{entries:?}"
        );
        assert!(
            !entries.contains(&(Some("bosun/webapp".into()), Some("Update".into()))),
            "a create left an Update entry that apply would never release: {entries:?}"
        );
    }

    // A new host (a failover: nothing remembered) applies the same plan:
    // the module's applied fields are exactly what it applies, so nothing
    // is rewritten. (Had the entry kept the fields the API server
    // defaulted at the create, this apply would drop them from the
    // module's set and write every child once more.)
    let versions = |d: &DynamicObject| d.metadata.resource_version.clone();
    let before = (
        versions(&f.deployments().get("shop").await.expect("the Deployment")),
        versions(&f.services().get("shop").await.expect("the Service")),
    );
    let observed = f.observed(&app).await;
    let again = plan(&f.meta, &app, &observed, full_response(&f.ns, "shop"));
    Applier::new(f.client.clone(), "bosun")
        .apply(&f.meta, StatusRoom::ANY, &app, &observed, &again)
        .await
        .expect("the next host's apply");
    let after = (
        versions(&f.deployments().get("shop").await.expect("the Deployment")),
        versions(&f.services().get("shop").await.expect("the Service")),
    );
    assert_eq!(
        before, after,
        "the next host rewrote the children it found converged"
    );
}

#[tokio::test]
async fn a_permanent_error_sets_a_condition_and_records_a_warning() {
    let f = fixture("a_permanent_error_sets_a_condition_and_records_a_warning").await;
    let app = f.create_webapp("shop").await;
    let first = plan(&f.meta, &app, &[], full_response(&f.ns, "shop"));
    f.applier
        .apply(&f.meta, StatusRoom::ANY, &app, &[], &first)
        .await
        .expect("apply");
    let app = f.webapp("shop").await;

    let message = "spec.image must name a container image";
    f.applier
        .report_failure(&f.meta, StatusRoom::ANY, &app, "InvalidSpec", message)
        .await
        .expect("report");

    let reported = f.webapp("shop").await;
    let status = &reported["status"];
    let condition = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Reconciled"))
        .unwrap_or_else(|| panic!("no Reconciled condition in {status}"));
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "InvalidSpec");
    assert_eq!(condition["message"], message);
    assert_eq!(condition["observedGeneration"], 1);
    assert!(condition["lastTransitionTime"].is_string());
    // The module's own status stays.
    assert_eq!(status["url"], format!("http://shop.{}.svc:8080", f.ns));
    assert!(
        status["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready")),
        "{status}"
    );
    let events = f.events("shop").await;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("InvalidSpec")
            && e.note.as_deref() == Some(message)),
        "{events:?}"
    );

    // The same error again: the condition is already there, no status write.
    f.applier
        .report_failure(&f.meta, StatusRoom::ANY, &reported, "InvalidSpec", message)
        .await
        .expect("report again");
    assert_eq!(
        resource_version(&f.webapp("shop").await),
        resource_version(&reported)
    );
}

#[tokio::test]
async fn the_finalizer_holds_deletion_until_removed() {
    let f = fixture("the_finalizer_holds_deletion_until_removed").await;
    let app = f.create_webapp("shop").await;

    f.applier
        .add_finalizer(&f.meta, &app, FINALIZER)
        .await
        .expect("add finalizer");
    let held = f.webapp("shop").await;
    assert_eq!(held["metadata"]["finalizers"], json!([FINALIZER]));
    // The first copy lacks the finalizer and its resourceVersion is stale:
    // adding from it must conflict rather than overwrite the list.
    let err = f
        .applier
        .add_finalizer(&f.meta, &app, FINALIZER)
        .await
        .expect_err("a stale copy must not overwrite the finalizers");
    assert!(err.is_conflict(), "{err}");
    // From the fresh copy it is already there: nothing is written.
    f.applier
        .add_finalizer(&f.meta, &held, FINALIZER)
        .await
        .expect("already there");
    assert_eq!(
        resource_version(&f.webapp("shop").await),
        resource_version(&held)
    );

    f.webapps()
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleting = f.webapp("shop").await;
    assert!(
        deleting["metadata"]["deletionTimestamp"].is_string(),
        "{deleting}"
    );

    f.applier
        .remove_finalizer(&f.meta, &deleting, FINALIZER)
        .await
        .expect("remove finalizer");
    wait_gone(&f.webapps(), "shop").await;
    // A retry after the object went away is fine.
    f.applier
        .remove_finalizer(&f.meta, &deleting, FINALIZER)
        .await
        .expect("remove from a gone object");
}
