//! What the host asks the API server before it starts a module: does its
//! own service account hold every permission the module needs? Against a
//! real kube-apiserver, with a service account that holds only some.

use bosun::meta::{Kind, ModuleMeta, Scope};
use bosun::rbac::{check, module_needs};
use bosun_testenv::TestEnv;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use kube::{Client, Config};
use serde_json::json;

fn kind(group: &str, kind: &str, plural: &str) -> Kind {
    Kind {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        scope: Scope::Namespaced,
    }
}

fn webapp() -> ModuleMeta {
    ModuleMeta {
        name: "webapp".into(),
        version: "0.1.0".into(),
        primary: kind("examples.bosun.dev", "WebApp", "webapps"),
        owns: vec![
            kind("apps", "Deployment", "deployments"),
            kind("", "Service", "services"),
        ],
        reads: vec![],
        finalizer: None,
        http_origins: vec![],
    }
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("an object")
}

/// A client acting as service account `name` in `namespace`, allowed only
/// what `rules` say, through a token from the TokenRequest API.
async fn service_account(
    env: &TestEnv,
    admin: &Client,
    namespace: &str,
    name: &str,
    rules: serde_json::Value,
) -> Client {
    let _ = Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": namespace}})),
        )
        .await;
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": name}})),
        )
        .await
        .expect("create the service account");
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": name}, "rules": rules})),
        )
        .await
        .expect("create the role");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})),
        )
        .await
        .expect("bind the role");
    let token = accounts
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .expect("a token")
        .status
        .expect("a token status")
        .token;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(env.kubeconfig_path().expect("a kubeconfig"))
            .expect("the kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a config");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..kube::config::AuthInfo::default()
    };
    Client::try_from(config).expect("a client")
}

#[tokio::test]
async fn a_module_the_hosts_account_cannot_serve_is_refused_naming_each_permission() {
    let env = TestEnv::shared()
        .await
        .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"));
    let admin = env.new_client().await.expect("a client");
    // Enough to watch WebApps, not to write anything.
    let limited = service_account(
        env,
        &admin,
        "rbac-check",
        "watch-only",
        json!([{"apiGroups": ["examples.bosun.dev"], "resources": ["webapps"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    let missing = check(&limited, "webapp", &module_needs(&webapp(), &[]))
        .await
        .expect_err("the account cannot write");
    let named: Vec<String> = missing.missing.iter().map(ToString::to_string).collect();
    for needed in [
        "patch webapps (examples.bosun.dev)",
        "patch webapps/status (examples.bosun.dev)",
        "create deployments (apps)",
        "delete services (core)",
    ] {
        assert!(
            named.contains(&needed.to_owned()),
            "{needed} not in {named:?}"
        );
    }
    assert!(
        !named.contains(&"list webapps (examples.bosun.dev)".to_owned()),
        "what it holds is not named: {named:?}"
    );
    let message = missing.to_string();
    assert!(
        message.contains("resources:") && message.contains("- deployments"),
        "{message}"
    );

    // The admin holds everything.
    check(&admin, "webapp", &module_needs(&webapp(), &[]))
        .await
        .expect("the admin may do it all");
}
