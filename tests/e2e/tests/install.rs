//! The install paths, checked by the real API server: the kustomize base and
//! overlays in `deploy/` and the Helm chart in `charts/bosun`, rendered by
//! `kubectl kustomize` and `helm template`, looked at, and applied as
//! server-side dry runs (strict field validation, admission, the namespace's
//! restricted Pod Security warnings) — nothing but the namespace is created.
//!
//! kubectl and helm are found on `PATH`; outside CI a missing one skips the
//! test that needs it (`.ci/run` installs helm).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bosun_testenv::TestEnv;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

const NAMESPACE: &str = "bosun-system";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl() -> Option<PathBuf> {
    bosun_testenv::tools::for_test("kubectl", "kubectl 1.27 or newer, with kustomize built in")
        .expect("kubectl is on PATH in CI")
}

fn helm() -> Option<PathBuf> {
    bosun_testenv::tools::for_test("helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0")
        .expect("helm is on PATH in CI")
}

/// The shared control plane, with the namespace the manifests install into
/// created for real (from deploy/base, so with its Pod Security labels).
async fn cluster(kubectl: &Path) -> &'static TestEnv {
    static READY: OnceCell<&'static TestEnv> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let env = TestEnv::shared()
                .await
                .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"));
            let namespace = root().join("deploy/base/namespace.yaml");
            run(
                Command::new(kubectl)
                    .arg("--kubeconfig")
                    .arg(kubeconfig(env))
                    .args([
                        "apply",
                        "--server-side",
                        "--field-manager=install-test",
                        "-f",
                    ])
                    .arg(namespace),
                None,
            );
            env
        })
        .await
}

fn kubeconfig(env: &TestEnv) -> &Path {
    env.kubeconfig_path()
        .expect("the environment has a kubeconfig")
}

/// Runs a command (with `stdin`, if given) that must succeed; its stdout and stderr.
fn run(command: &mut Command, stdin: Option<&str>) -> (String, String) {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("writing stdin");
    }
    let output = child.wait_with_output().expect("the command finishes");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    (stdout, stderr)
}

/// The YAML documents of a rendered stream, without empty ones.
fn documents(text: &str) -> Vec<Value> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line == "---" {
            let value: Value = serde_yaml::from_str(&current)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{current}"));
            if !value.is_null() {
                documents.push(value);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
}

fn kustomize(kubectl: &Path, dir: &str) -> (String, Vec<Value>) {
    let (text, _) = run(
        Command::new(kubectl).arg("kustomize").arg(root().join(dir)),
        None,
    );
    let objects = documents(&text);
    (text, objects)
}

/// `helm template bosun charts/bosun` for the control plane's version.
fn helm_template(helm: &Path, env: &TestEnv, values: Option<&str>) -> (String, Vec<Value>) {
    let version = run(
        Command::new(kubectl().expect("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig(env))
            .args(["version", "-o", "json"]),
        None,
    )
    .0;
    let version: Value = serde_json::from_str(&version).expect("kubectl version -o json");
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .expect("the server's version")
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(helm);
    command
        .args(["template", "bosun"])
        .arg(root().join("charts/bosun"))
        .args(["--namespace", NAMESPACE, "--include-crds", "--kube-version"])
        .arg(server);
    if let Some(values) = values {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).expect("values file");
        command.arg("--values").arg(file);
    }
    let (text, _) = run(&mut command, None);
    let objects = documents(&text);
    (text, objects)
}

/// `kubectl apply --server-side --dry-run=server`: the API server validates
/// every object (strict field validation, admission) and stores none. Fails
/// the test on any warning, such as a Pod Security one.
fn dry_run(kubectl: &Path, env: &TestEnv, source: Source<'_>) -> String {
    let mut command = Command::new(kubectl);
    command.arg("--kubeconfig").arg(kubeconfig(env)).args([
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=install-test",
    ]);
    let stdin = match source {
        Source::Kustomization(dir) => {
            command.arg("-k").arg(root().join(dir));
            None
        }
        Source::Stream(text) => {
            command.args(["-f", "-"]);
            Some(text)
        }
    };
    let (stdout, stderr) = run(&mut command, stdin);
    assert!(
        !stderr.contains("Warning"),
        "the API server warned:\n{stderr}"
    );
    stdout
}

enum Source<'a> {
    Kustomization(&'a str),
    Stream(&'a str),
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", identities(objects)))
}

fn identities(objects: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    ids.sort();
    ids
}

fn args(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string").to_owned())
        .collect()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// What every rendering of the host's Deployment must hold.
fn assert_deployment_is_hardened(deployment: &Value) {
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "bosun");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = container(deployment);
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "telemetry");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(
        args(deployment).contains(&"--telemetry-addr=0.0.0.0:8080".to_owned()),
        "{:?}",
        args(deployment)
    );
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].is_string(),
                "resources.{bound}.{resource}: {}",
                container["resources"]
            );
        }
    }
    // The compile cache: BOSUN_CACHE_DIR on an emptyDir, the one writable place.
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .contains(&json!({"name": "BOSUN_CACHE_DIR", "value": "/var/cache/bosun/modules"})),
        "{}",
        container["env"]
    );
    assert!(
        container["volumeMounts"]
            .as_array()
            .expect("mounts")
            .contains(&json!({"name": "cache", "mountPath": "/var/cache/bosun"}))
    );
    let cache = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "cache")
        .expect("the cache volume");
    assert!(cache["emptyDir"].is_object(), "{cache}");
}

fn rules_for<'a>(role: &'a Value, resource: &str) -> Vec<&'a str> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| {
            r["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
        })
        .flat_map(|r| r["verbs"].as_array().expect("verbs").iter())
        .map(|v| v.as_str().expect("a verb"))
        .collect()
}

#[tokio::test]
async fn the_kustomize_base_installs_the_host_hot_loading_modules_from_the_cluster() {
    let Some(kubectl) = kubectl() else { return };
    let env = cluster(&kubectl).await;
    let (_, objects) = kustomize(&kubectl, "deploy/base");
    assert_eq!(
        identities(&objects),
        [
            "ClusterRole bosun-host",
            "ClusterRoleBinding bosun-host",
            "CustomResourceDefinition reconcilermodules.bosun.dev",
            "Deployment bosun",
            "Namespace bosun-system",
            "PodDisruptionBudget bosun",
            "Role bosun-leader-election",
            "Role bosun-recordings",
            "RoleBinding bosun-leader-election",
            "RoleBinding bosun-recordings",
            "Service bosun-metrics",
            "ServiceAccount bosun",
        ]
    );
    // The flight recorder writes ConfigMaps in the host's namespace only.
    let recordings = find(&objects, "Role", "bosun-recordings");
    assert_eq!(recordings["metadata"]["namespace"], "bosun-system");
    assert_eq!(
        rules_for(recordings, "configmaps"),
        ["list", "create", "delete"]
    );
    let deployment = find(&objects, "Deployment", "bosun");
    assert_deployment_is_hardened(deployment);
    let args = args(deployment);
    assert_eq!(args[0], "run");
    assert!(
        args.contains(&"--modules-from-cluster".to_owned()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-elect".to_owned()), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--module=") || a.starts_with("--modules-dir")),
        "{args:?}"
    );

    // The host's own needs, and nothing of any module's.
    let host = find(&objects, "ClusterRole", "bosun-host");
    assert_eq!(
        rules_for(host, "reconcilermodules"),
        ["get", "list", "watch"]
    );
    assert!(rules_for(host, "reconcilermodules/status").contains(&"patch"));
    assert_eq!(rules_for(host, "configmaps"), ["get"]);
    assert!(rules_for(host, "events").contains(&"create"));
    assert!(rules_for(host, "pods").is_empty() && rules_for(host, "deployments").is_empty());
    let leases = find(&objects, "Role", "bosun-leader-election");
    assert_eq!(rules_for(leases, "leases"), ["get", "create", "update"]);
    // Host classes: its own announcement above, everyone's read.
    assert_eq!(rules_for(host, "leases"), ["list"]);
    assert!(
        !args.iter().any(|a| a.starts_with("--host-class")),
        "{args:?}"
    );
    let binding = find(&objects, "ClusterRoleBinding", "bosun-host");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "bosun", "namespace": NAMESPACE}])
    );

    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let pdb = find(&objects, "PodDisruptionBudget", "bosun");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let service = find(&objects, "Service", "bosun-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "telemetry");
    for selector in [
        &pdb["spec"]["selector"]["matchLabels"],
        &service["spec"]["selector"],
    ] {
        for (key, value) in selector.as_object().expect("a selector") {
            assert_eq!(
                &pod_labels[key], value,
                "the selector {selector} picks the pods"
            );
        }
    }

    let applied = dry_run(&kubectl, env, Source::Kustomization("deploy/base"));
    assert!(
        applied.contains("deployment.apps/bosun serverside-applied (server dry run)"),
        "{applied}"
    );
}

#[tokio::test]
async fn a_pod_outside_the_restricted_profile_would_be_warned_about() {
    // The absence of warnings in the other tests means something only if the
    // API server gives them: drop one setting and it does.
    let Some(kubectl) = kubectl() else { return };
    let env = cluster(&kubectl).await;
    let (_, objects) = kustomize(&kubectl, "deploy/base");
    let mut deployment = find(&objects, "Deployment", "bosun").clone();
    deployment["metadata"]["name"] = json!("bosun-loose");
    let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    container["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let text = serde_yaml::to_string(&deployment).expect("yaml");
    let (_, stderr) = run(
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig(env))
            .args(["apply", "--server-side", "--dry-run=server", "-f", "-"]),
        Some(&text),
    );
    assert!(
        stderr.contains("would violate PodSecurity") && stderr.contains("allowPrivilegeEscalation"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_file_modules_overlay_runs_a_modules_dir_from_a_config_map() {
    let Some(kubectl) = kubectl() else { return };
    let env = cluster(&kubectl).await;
    let (_, objects) = kustomize(&kubectl, "deploy/overlays/file-modules");
    let deployment = find(&objects, "Deployment", "bosun");
    assert_deployment_is_hardened(deployment);
    let args = args(deployment);
    assert!(
        args.contains(&"--modules-dir=/modules".to_owned()),
        "{args:?}"
    );
    assert!(
        !args.contains(&"--modules-from-cluster".to_owned()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-elect".to_owned()), "{args:?}");
    assert!(
        container(deployment)["volumeMounts"]
            .as_array()
            .expect("mounts")
            .contains(&json!({"name": "modules", "mountPath": "/modules", "readOnly": true}))
    );
    assert!(
        deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .contains(&json!({"name": "modules", "configMap": {"name": "bosun-modules"}}))
    );
    let examples = find(&objects, "ClusterRole", "bosun-example-modules");
    assert!(rules_for(examples, "pods").contains(&"delete"));
    dry_run(
        &kubectl,
        env,
        Source::Kustomization("deploy/overlays/file-modules"),
    );
}

#[tokio::test]
async fn the_examples_overlay_binds_the_example_modules_rules_beside_the_hosts() {
    let Some(kubectl) = kubectl() else { return };
    let env = cluster(&kubectl).await;
    let (_, base) = kustomize(&kubectl, "deploy/base");
    let (_, objects) = kustomize(&kubectl, "deploy/overlays/examples");
    let mut added: Vec<String> = identities(&objects)
        .into_iter()
        .filter(|id| !identities(&base).contains(id))
        .collect();
    added.sort();
    assert_eq!(
        added,
        [
            "ClusterRole bosun-example-modules",
            "ClusterRoleBinding bosun-example-modules"
        ]
    );
    let role = find(&objects, "ClusterRole", "bosun-example-modules");
    for (resource, verb) in [
        ("ats", "watch"),
        ("ats/status", "patch"),
        ("webapps", "watch"),
        ("webapps/status", "patch"),
        ("pods", "create"),
        ("services", "delete"),
        ("deployments", "patch"),
    ] {
        assert!(
            rules_for(role, resource).contains(&verb),
            "{resource}: {verb}"
        );
    }
    dry_run(
        &kubectl,
        env,
        Source::Kustomization("deploy/overlays/examples"),
    );
}

/// An object without what differs by design between the two renderings:
/// labels and annotations (Helm adds its own), and how a number is spelled
/// (Helm passes `crds/` through as written, `1.0`; kustomize writes `1`).
fn comparable(object: &Value) -> Value {
    fn numbers(value: &mut Value) {
        match value {
            Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15) {
                    *value = json!(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(numbers),
            Value::Object(map) => map.values_mut().for_each(numbers),
            _ => {}
        }
    }
    let mut object = object.clone();
    for metadata in ["/metadata", "/spec/template/metadata"] {
        if let Some(Value::Object(m)) = object.pointer_mut(metadata) {
            m.remove("labels");
            m.remove("annotations");
        }
    }
    numbers(&mut object);
    object
}

fn assert_same_objects(helm: &[Value], kustomize: &[Value]) {
    let kustomize: Vec<&Value> = kustomize
        .iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    let kustomize: Vec<Value> = kustomize.into_iter().cloned().collect();
    assert_eq!(identities(helm), identities(&kustomize), "the same objects");
    for object in &kustomize {
        let name = object["metadata"]["name"].as_str().expect("name");
        let kind = object["kind"].as_str().expect("kind");
        assert_eq!(
            comparable(find(helm, kind, name)),
            comparable(object),
            "{kind} {name} renders the same from the chart and from kustomize"
        );
    }
}

#[tokio::test]
async fn the_helm_chart_renders_the_objects_of_the_kustomize_base() {
    let (Some(kubectl), Some(helm)) = (kubectl(), helm()) else {
        return;
    };
    let env = cluster(&kubectl).await;
    let (text, rendered) = helm_template(&helm, env, None);
    let (_, base) = kustomize(&kubectl, "deploy/base");
    assert_same_objects(&rendered, &base);
    assert_deployment_is_hardened(find(&rendered, "Deployment", "bosun"));
    dry_run(&kubectl, env, Source::Stream(&text));

    // File modules and the examples' rules: the file-modules overlay.
    let (text, rendered) = helm_template(
        &helm,
        env,
        Some("modules: {source: configMap}\nrbac: {exampleModules: true}\n"),
    );
    let (_, overlay) = kustomize(&kubectl, "deploy/overlays/file-modules");
    assert_same_objects(&rendered, &overlay);
    dry_run(&kubectl, env, Source::Stream(&text));
}

#[tokio::test]
async fn the_helm_chart_runs_sharded_replicas_when_asked() {
    let (Some(kubectl), Some(helm)) = (kubectl(), helm()) else {
        return;
    };
    let env = cluster(&kubectl).await;
    let (text, rendered) = helm_template(
        &helm,
        env,
        Some("replicaCount: 3\nsharding: {enabled: true}\n"),
    );
    let deployment = find(&rendered, "Deployment", "bosun");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let args = args(deployment);
    assert!(args.contains(&"--sharded".to_owned()), "{args:?}");
    assert!(
        !args.contains(&"--leader-elect".to_owned()),
        "sharding takes leader election's place: {args:?}"
    );
    dry_run(&kubectl, env, Source::Stream(&text));
}

#[tokio::test]
async fn the_helm_values_shape_what_is_rendered() {
    let (Some(kubectl), Some(helm)) = (kubectl(), helm()) else {
        return;
    };
    let env = cluster(&kubectl).await;
    let values = r#"
image: {repository: registry.example/bosun, tag: "0.1.0-rc1", pullPolicy: Always}
replicaCount: 3
hostClass: tenant-a
logFormat: text
logLevel: "info,bosun=debug"
extraArgs: ["--concurrency=8"]
resources:
  requests: {cpu: 200m, memory: 256Mi}
  limits: {cpu: "2", memory: 1Gi}
cache: {sizeLimit: 2Gi, medium: Memory}
serviceAccount: {create: false, name: platform-operator}
rbac:
  extraRules:
    - apiGroups: [shop.example]
      resources: [carts, carts/status]
      verbs: [get, list, watch, patch]
  pullSecrets: [{namespace: bosun-system, name: registry}]
  httpSecrets: [{namespace: default, name: pdns-api}]
podAnnotations: {prometheus.io/scrape: "true"}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: operators, effect: NoSchedule}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}]
"#;
    let (text, rendered) = helm_template(&helm, env, Some(values));
    assert!(
        !rendered.iter().any(|o| o["kind"] == "ServiceAccount"),
        "serviceAccount.create=false renders none"
    );
    let deployment = find(&rendered, "Deployment", "bosun");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "platform-operator");
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert!(pod["affinity"]["nodeAffinity"].is_object());
    assert!(
        pod["affinity"]["podAntiAffinity"].is_null(),
        "affinity replaces the default"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let container = container(deployment);
    assert_eq!(container["image"], "registry.example/bosun:0.1.0-rc1");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    let args = args(deployment);
    assert!(args.contains(&"--log-format=text".to_owned()), "{args:?}");
    assert!(args.contains(&"--concurrency=8".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--host-class=tenant-a".to_owned()),
        "{args:?}"
    );
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .contains(&json!({"name": "RUST_LOG", "value": "info,bosun=debug"}))
    );
    let cache = &pod["volumes"][0];
    assert_eq!(
        cache["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "2Gi"})
    );
    let modules = find(&rendered, "ClusterRole", "bosun-modules");
    assert_eq!(modules["rules"][0]["apiGroups"], json!(["shop.example"]));
    for binding in ["bosun-host", "bosun-modules"] {
        assert_eq!(
            find(&rendered, "ClusterRoleBinding", binding)["subjects"][0]["name"],
            "platform-operator"
        );
    }
    // A pull secret: get on that one Secret, in its namespace, and no other.
    let pull = find(&rendered, "Role", "bosun-pull-secret-registry");
    assert_eq!(pull["metadata"]["namespace"], "bosun-system");
    assert_eq!(
        pull["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["registry"], "verbs": ["get"]}])
    );
    assert_eq!(
        find(&rendered, "RoleBinding", "bosun-pull-secret-registry")["subjects"][0]["name"],
        "platform-operator"
    );
    // An HTTP credential: the same, for that Secret in its own namespace.
    let credential = find(&rendered, "Role", "bosun-http-secret-pdns-api");
    assert_eq!(credential["metadata"]["namespace"], "default");
    assert_eq!(
        credential["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["pdns-api"], "verbs": ["get"]}])
    );
    assert_eq!(
        find(&rendered, "RoleBinding", "bosun-http-secret-pdns-api")["subjects"][0]["name"],
        "platform-operator"
    );
    let secrets = |object: &Value| {
        object["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|rule| rule["resources"].to_string().contains("secrets"))
            .count()
    };
    assert_eq!(
        rendered.iter().map(secrets).sum::<usize>(),
        2,
        "no rule but the pull secret's and the HTTP credential's touches Secrets"
    );
    dry_run(&kubectl, env, Source::Stream(&text));
}

#[tokio::test]
async fn the_chart_binds_confined_modules_rules_in_their_namespaces_only() {
    let (Some(kubectl), Some(helm)) = (kubectl(), helm()) else {
        return;
    };
    let env = cluster(&kubectl).await;
    // What `bosun rbac --module mirror.wasm --grant …` prints for a grant
    // confined to `default`, as the chart takes it.
    let values = r#"
rbac:
  namespacedRules:
    - namespace: default
      rules:
        - apiGroups: [examples.bosun.dev]
          resources: [mirrors]
          verbs: [get, list, watch, patch]
        - apiGroups: [""]
          resources: [configmaps, secrets]
          verbs: [get, list, watch]
"#;
    let (text, rendered) = helm_template(&helm, env, Some(values));
    let role = rendered
        .iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == "bosun-modules")
        .expect("a Role for the modules");
    assert_eq!(role["metadata"]["namespace"], "default");
    assert_eq!(
        role["rules"][1]["resources"],
        json!(["configmaps", "secrets"])
    );
    let binding = rendered
        .iter()
        .find(|o| o["kind"] == "RoleBinding" && o["metadata"]["name"] == "bosun-modules")
        .expect("its binding");
    assert_eq!(binding["metadata"]["namespace"], "default");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert!(
        !rendered
            .iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .any(|o| o["rules"].to_string().contains("secrets")),
        "Secrets are readable in the one namespace only"
    );
    dry_run(&kubectl, env, Source::Stream(&text));
}

#[test]
fn the_chart_refuses_replicas_without_leader_election() {
    let Some(helm) = helm() else { return };
    let output = Command::new(helm)
        .args(["template", "bosun"])
        .arg(root().join("charts/bosun"))
        .args([
            "--kube-version",
            "1.35.0",
            "--set",
            "leaderElection.enabled=false",
        ])
        .output()
        .expect("helm runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("leaderElection.enabled"),
        "{output:?}"
    );
}
