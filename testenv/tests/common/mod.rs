//! Helpers shared by the harness's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use bosun_testenv::TestEnv;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

/// The whole suite is skipped only when this is set to `1` explicitly; missing
/// binaries otherwise make every test fail with the harness's error.
pub const SKIP_ENV: &str = "BOSUN_SKIP_E2E";

/// `true` (after saying so) when the suite is explicitly skipped.
pub fn skipped(test: &str) -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped because {SKIP_ENV}=1");
        return true;
    }
    false
}

/// The process-wide control plane; panics with the harness's error (which says
/// how to build the binaries) if it cannot start.
pub async fn shared_env() -> &'static TestEnv {
    match TestEnv::shared().await {
        Ok(env) => env,
        Err(e) => panic!("control plane failed to start:\n{e}"),
    }
}

pub const CRD_NAME: &str = "widgets.testenv.bosun.dev";

/// A namespaced CRD with a status subresource and a structural schema.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.bosun.dev
spec:
  group: testenv.bosun.dev
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 0}
              color: {type: string}
          status:
            type: object
            properties:
              phase: {type: string}
              observedGeneration: {type: integer}
"#;

/// The Widget resource, for `Api<DynamicObject>`.
pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("testenv.bosun.dev", "v1", "Widget"),
        "widgets",
    )
}

/// A fresh namespace named after the test (unique per process).
pub async fn namespace(client: &Client, test: &str) -> String {
    let name = format!("{}-{}", test.replace('_', "-"), std::process::id());
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Installs the Widget CRD on the shared environment and returns a client and
/// an `Api` for Widgets in a fresh namespace. `None` when the suite is skipped.
pub async fn widgets(test: &str) -> Option<(Client, Api<DynamicObject>, String)> {
    if skipped(test) {
        return None;
    }
    let env = shared_env().await;
    env.install_crds([bosun_testenv::CrdSource::yaml(WIDGET_CRD)])
        .await
        .unwrap_or_else(|e| panic!("installing the Widget CRD: {e}"));
    // A client on this test's own runtime: the environment's own client
    // lives on the first test's, which may have ended ("runtime dropped the
    // dispatch task").
    let client = env.new_client().await.expect("a client");
    let ns = namespace(&client, test).await;
    let api = Api::namespaced_with(client.clone(), &ns, &widget_resource());
    Some((client, api, ns))
}

/// A Widget object with the given name and spec.
pub fn widget(name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "testenv.bosun.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("widget object")
}

/// Runs `fut` with a deadline, panicking with `what` on timeout.
pub async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s waiting for {what}"))
}

/// Whether a process is gone (or a zombie no one has reaped yet).
pub fn process_is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Waits up to `secs` for every pid to die.
pub async fn wait_dead(pids: &[u32], secs: u64) -> Vec<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| !process_is_dead(*p))
            .collect();
        if alive.is_empty() || std::time::Instant::now() > deadline {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
