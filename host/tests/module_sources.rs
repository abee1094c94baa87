//! ReconcilerModules as a user meets them: the CRD installs into a real
//! kube-apiserver, good specs are accepted and bad ones refused at admission,
//! and `fetch` reads a component from each kind of source, refusing bytes that
//! are not what the spec names.
//!
//! One control plane serves the whole file; each test uses its own namespace
//! and object names. URL sources are served by a small HTTP/1.1 server on
//! 127.0.0.1 written into this file, so no network is needed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bosun::modules::resource::{
    CONDITION_LOADED, ConfigMapSource, FileSource, ModuleSource, ReconcilerModule,
    ReconcilerModuleSpec, ReconcilerModuleStatus, UrlSource,
};
use bosun::modules::source::{self, Fetched, MAX_MODULE_BYTES, SourceError};
use bosun_testenv::TestEnv;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;

const CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/reconcilermodule-crd.yaml"
);

/// Not a real component: `fetch` does not look inside, and bytes that are not
/// UTF-8 show that binary data survives every path.
const MODULE: &[u8] = b"\0asm\x0d\0\x01\0 not really a component \xff\xfe";

// ---------------------------------------------------------------------------
// Fixtures

async fn env() -> &'static TestEnv {
    TestEnv::shared()
        .await
        .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"))
}

/// The ReconcilerModule CRD, installed once for the whole file: tests that
/// re-applied it concurrently raced with the API server rebuilding its handler.
async fn installed_crd() -> &'static [CustomResourceDefinition] {
    static INSTALLED: OnceCell<Vec<CustomResourceDefinition>> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            env()
                .await
                .install_crds([CRD])
                .await
                .unwrap_or_else(|e| panic!("installing {CRD}: {e}"))
        })
        .await
}

/// A client of this test's own, on its runtime: no connection is shared
/// with tests that run (and end) concurrently.
async fn client() -> Client {
    env()
        .await
        .new_client()
        .await
        .unwrap_or_else(|e| panic!("client for the control plane: {e}"))
}

/// A client with the ReconcilerModule CRD installed.
async fn client_with_crd() -> Client {
    installed_crd().await;
    client().await
}

/// A name unique to this test and process (DNS label, at most 63 characters).
fn unique(test: &str) -> String {
    let name: String = test.replace('_', "-").chars().take(48).collect();
    format!("{}-{}", name.trim_end_matches('-'), std::process::id())
}

async fn namespace(client: &Client, test: &str) -> String {
    let ns = unique(test);
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
    ns
}

/// A client that is never reached: URL and file sources must not need one.
fn unreachable_client() -> Client {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    Client::try_from(config).expect("client")
}

fn spec(source: ModuleSource) -> ReconcilerModuleSpec {
    ReconcilerModuleSpec {
        source,
        settings: None,
        namespaces: vec![],
        concurrency: None,
        timeout_ms: None,
        memory_limit_mib: None,
        paused: false,
    }
}

fn url_source(url: String, sha256: String) -> ModuleSource {
    ModuleSource::Url(UrlSource { url, sha256 })
}

/// The ReconcilerModule API without types, to send what the typed spec cannot express.
fn raw_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<ReconcilerModule>(&()))
}

async fn create_raw(client: &Client, name: &str, spec: Value) -> Result<DynamicObject, String> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": ReconcilerModule::api_version(&()),
        "kind": ReconcilerModule::kind(&()),
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("object");
    raw_api(client)
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// A tiny HTTP server

/// What the test server answers for one path.
#[derive(Clone)]
struct Answer {
    status: &'static str,
    body: Vec<u8>,
    /// `Content-Length` to announce; `None` sends none and ends the body by
    /// closing the connection.
    length: Option<u64>,
}

impl Answer {
    fn ok(body: &[u8]) -> Self {
        Answer {
            status: "200 OK",
            body: body.to_vec(),
            length: Some(body.len() as u64),
        }
    }
}

/// Serves `routes` on 127.0.0.1 until dropped; unknown paths get 404.
struct Server {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(routes: BTreeMap<&'static str, Answer>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                // Read the request head; GETs have no body.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let answer = routes.get(path.as_str()).cloned().unwrap_or(Answer {
                    status: "404 Not Found",
                    body: b"no such module".to_vec(),
                    length: Some(14),
                });
                let mut response = format!("HTTP/1.1 {}\r\nConnection: close\r\n", answer.status);
                if let Some(length) = answer.length {
                    response.push_str(&format!("Content-Length: {length}\r\n"));
                }
                response.push_str("\r\n");
                // The client may hang up early (a refused size); that is fine.
                if stream.write_all(response.as_bytes()).await.is_ok() {
                    let _ = stream.write_all(&answer.body).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { base, task }
}

// ---------------------------------------------------------------------------
// The CRD

#[tokio::test]
async fn the_crd_installs_and_is_established() {
    let crds = installed_crd().await;
    assert_eq!(crds.len(), 1);
    let crd = &crds[0];
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("reconcilermodules.bosun.dev")
    );
    let conditions = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .expect("CRD conditions");
    for type_ in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True"),
            "{type_} is not True: {conditions:?}"
        );
    }
    // A schema the API server found non-structural would show up here.
    assert!(
        !conditions
            .iter()
            .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True"),
        "{conditions:?}"
    );
}

#[tokio::test]
async fn a_module_of_each_source_kind_is_accepted_as_written() {
    let client = client_with_crd().await;
    let api = Api::<ReconcilerModule>::all(client.clone());
    let test = "each-kind";
    let sources = [
        ModuleSource::ConfigMap(ConfigMapSource {
            namespace: "bosun-system".into(),
            name: "modules".into(),
            key: "cnat.wasm".into(),
        }),
        url_source(
            "https://modules.example/cnat.wasm".into(),
            source::digest(MODULE),
        ),
        ModuleSource::File(FileSource {
            path: "/var/lib/bosun/cnat.wasm".into(),
        }),
    ];
    for (i, source) in sources.into_iter().enumerate() {
        let name = unique(&format!("{test}-{i}"));
        let mut spec = spec(source);
        spec.settings = Some(json!({"schedule": {"every": "1m"}, "labels": ["a", "b"]}));
        spec.namespaces = vec!["team-a".into()];
        spec.concurrency = Some(4);
        spec.timeout_ms = Some(2_000);
        spec.memory_limit_mib = Some(64);
        let created = api
            .create(
                &PostParams::default(),
                &ReconcilerModule::new(&name, spec.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {name} ({}): {e}", spec.source));
        // Nothing was pruned or defaulted away: settings survive as written.
        assert_eq!(created.spec, spec, "{name}");
        assert_eq!(created.metadata.generation, Some(1));
    }
}

#[tokio::test]
async fn a_module_with_no_source_or_two_sources_is_rejected_by_the_api_server() {
    let client = client_with_crd().await;
    let name = unique("bad-source");
    let file = json!({"path": "/x.wasm"});
    let config_map = json!({"namespace": "a", "name": "b", "key": "c"});
    // The API server's words for a broken `oneOf`; CEL rules could say it
    // better but are skipped once schema validation has failed.
    const NONE: &str =
        "\"spec.source\" must validate one and only one schema (oneOf). Found none valid";
    const TWO: &str =
        "\"spec.source\" must validate one and only one schema (oneOf). Found 2 valid alternatives";

    let err = create_raw(&client, &name, json!({"source": {}}))
        .await
        .expect_err("no source is refused");
    assert!(err.contains(NONE), "{err}");

    let err = create_raw(
        &client,
        &name,
        json!({"source": {"file": file, "configMap": config_map}}),
    )
    .await
    .expect_err("two sources are refused");
    assert!(err.contains(TWO), "{err}");

    let err = create_raw(&client, &name, json!({"paused": true}))
        .await
        .expect_err("a missing source is refused");
    assert!(err.contains("spec.source"), "{err}");

    // And the one-source spec, otherwise the same, is fine.
    create_raw(&client, &name, json!({"source": {"file": file}}))
        .await
        .expect("one source is accepted");
}

#[tokio::test]
async fn a_url_without_a_proper_sha256_or_scheme_is_rejected_by_the_api_server() {
    let client = client_with_crd().await;
    let name = unique("bad-url");
    let err = create_raw(
        &client,
        &name,
        json!({"source": {"url": {"url": "https://modules.example/m.wasm"}}}),
    )
    .await
    .expect_err("sha256 is required");
    assert!(err.contains("sha256"), "{err}");

    let err = create_raw(
        &client,
        &name,
        json!({"source": {"url": {"url": "https://modules.example/m.wasm", "sha256": "abc"}}}),
    )
    .await
    .expect_err("a short sha256 is refused");
    assert!(err.contains("sha256"), "{err}");

    let err = create_raw(
        &client,
        &name,
        json!({"source": {"url": {"url": "ftp://modules.example/m.wasm", "sha256": source::digest(MODULE)}}}),
    )
    .await
    .expect_err("a non-http URL is refused");
    assert!(err.contains("spec.source.url.url"), "{err}");

    let err = create_raw(
        &client,
        &name,
        json!({"source": {"file": {"path": "/x.wasm"}}, "concurrency": 0}),
    )
    .await
    .expect_err("zero concurrency is refused");
    assert!(err.contains("spec.concurrency"), "{err}");
}

#[tokio::test]
async fn the_host_can_write_status_and_conditions_merge_by_type() {
    let client = client_with_crd().await;
    let api = Api::<ReconcilerModule>::all(client.clone());
    let name = unique("status");
    api.create(
        &PostParams::default(),
        &ReconcilerModule::new(
            &name,
            spec(ModuleSource::File(FileSource {
                path: "/x.wasm".into(),
            })),
        ),
    )
    .await
    .expect("create");

    let condition = |type_: &str, status: &str| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: "Test".into(),
        message: String::new(),
        last_transition_time: Time(jiff::Timestamp::now()),
        observed_generation: Some(1),
    };
    let status = |conditions| {
        json!({
            "apiVersion": ReconcilerModule::api_version(&()),
            "kind": ReconcilerModule::kind(&()),
            "status": ReconcilerModuleStatus {
                observed_generation: Some(1),
                conditions,
                digest: Some(source::digest(MODULE)),
                version: Some("0.1.0".into()),
                module_name: Some("cnat".into()),
                loaded_at: Some(Time(jiff::Timestamp::now())),
                load_time_ms: Some(12),
                reconciles: 3,
                ..ReconcilerModuleStatus::default()
            },
        })
    };
    // Two field managers each own one condition, as the loader and the
    // controller would; server-side apply keeps both.
    api.patch_status(
        &name,
        &PatchParams::apply("loader").force(),
        &Patch::Apply(status(vec![condition(CONDITION_LOADED, "True")])),
    )
    .await
    .expect("apply Loaded");
    let patched = api
        .patch_status(
            &name,
            &PatchParams::apply("controller").force(),
            &Patch::Apply(json!({
                "apiVersion": ReconcilerModule::api_version(&()),
                "kind": ReconcilerModule::kind(&()),
                "status": {"conditions": [condition("Ready", "False")]},
            })),
        )
        .await
        .expect("apply Ready");
    let status = patched.status.expect("status");
    assert_eq!(
        status
            .condition(CONDITION_LOADED)
            .map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        status.condition("Ready").map(|c| c.status.as_str()),
        Some("False")
    );
    assert_eq!(status.module_name.as_deref(), Some("cnat"));
    assert_eq!(status.reconciles, 3);
    assert!(status.loaded_at.is_some());
}

// ---------------------------------------------------------------------------
// Fetching: ConfigMap

#[tokio::test]
async fn fetches_a_component_from_a_configmap_binary_data() {
    let client = client().await;
    let ns = namespace(&client, "configmap-fetch").await;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("modules".into()),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(
            "cnat.wasm".to_owned(),
            ByteString(MODULE.to_vec()),
        )])),
        data: Some(BTreeMap::from([("README".to_owned(), "text".to_owned())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let source_for = |name: &str, key: &str| {
        ModuleSource::ConfigMap(ConfigMapSource {
            namespace: ns.clone(),
            name: name.into(),
            key: key.into(),
        })
    };

    let fetched = source::fetch(&client, &source_for("modules", "cnat.wasm"))
        .await
        .expect("fetch");
    assert_eq!(
        fetched,
        Fetched {
            bytes: MODULE.to_vec(),
            sha256: source::digest(MODULE),
            description: format!("configmap {ns}/modules[cnat.wasm]"),
        }
    );

    let err = source::fetch(&client, &source_for("modules", "webapp.wasm"))
        .await
        .expect_err("missing key");
    assert!(matches!(err, SourceError::KeyNotFound { .. }), "{err:?}");
    let message = err.to_string();
    for part in [&format!("{ns}/modules"), "\"webapp.wasm\"", "cnat.wasm"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }

    let err = source::fetch(&client, &source_for("nope", "cnat.wasm"))
        .await
        .expect_err("missing configmap");
    assert!(
        matches!(err, SourceError::ConfigMapNotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("configmap {ns}/nope not found")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Fetching: URL

#[tokio::test]
async fn fetches_a_component_from_a_url_with_the_right_sha256() {
    let server = serve(BTreeMap::from([("/cnat.wasm", Answer::ok(MODULE))])).await;
    let url = format!("{}/cnat.wasm", server.base);
    // Upper-case hex is as good as lower-case.
    let source = url_source(url.clone(), source::digest(MODULE).to_uppercase());
    let fetched = source::fetch(&unreachable_client(), &source)
        .await
        .expect("fetch");
    assert_eq!(
        fetched,
        Fetched {
            bytes: MODULE.to_vec(),
            sha256: source::digest(MODULE),
            description: url,
        }
    );
}

#[tokio::test]
async fn a_url_whose_bytes_do_not_match_the_sha256_is_refused() {
    let server = serve(BTreeMap::from([("/cnat.wasm", Answer::ok(b"tampered"))])).await;
    let expected = source::digest(MODULE);
    let source = url_source(format!("{}/cnat.wasm", server.base), expected.clone());
    let err = source::fetch(&unreachable_client(), &source)
        .await
        .expect_err("mismatch");
    match err {
        SourceError::Digest {
            expected: e,
            actual,
        } => {
            assert_eq!(e, expected);
            assert_eq!(actual, source::digest(b"tampered"));
        }
        other => panic!("expected a digest error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_url_answering_404_is_an_error_naming_the_status() {
    let server = serve(BTreeMap::new()).await;
    let url = format!("{}/missing.wasm", server.base);
    let err = source::fetch(
        &unreachable_client(),
        &url_source(url.clone(), source::digest(MODULE)),
    )
    .await
    .expect_err("404");
    assert!(
        matches!(&err, SourceError::Status { status: 404, url: u } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn a_url_serving_more_than_the_cap_is_cut_off() {
    let too_big = MAX_MODULE_BYTES + 1;
    let server = serve(BTreeMap::from([
        // Announced too big: refused before the body is read.
        (
            "/announced.wasm",
            Answer {
                status: "200 OK",
                body: vec![],
                length: Some(too_big),
            },
        ),
        // No length announced: counted while streaming.
        (
            "/streamed.wasm",
            Answer {
                status: "200 OK",
                body: vec![0; too_big as usize],
                length: None,
            },
        ),
    ]))
    .await;
    for path in ["/announced.wasm", "/streamed.wasm"] {
        let url = format!("{}{path}", server.base);
        let err = source::fetch(
            &unreachable_client(),
            &url_source(url.clone(), source::digest(MODULE)),
        )
        .await
        .expect_err("too large");
        assert!(
            matches!(&err, SourceError::TooLarge { limit, .. } if *limit == MAX_MODULE_BYTES),
            "{path}: {err:?}"
        );
        assert!(err.to_string().starts_with(&url), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Fetching: file

#[tokio::test]
async fn fetches_a_component_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cnat.wasm");
    std::fs::write(&path, MODULE).expect("write module");
    let fetched = source::fetch(
        &unreachable_client(),
        &ModuleSource::File(FileSource { path: path.clone() }),
    )
    .await
    .expect("fetch");
    assert_eq!(fetched.bytes, MODULE);
    assert_eq!(fetched.sha256, source::digest(MODULE));
    assert_eq!(fetched.description, format!("file {}", path.display()));

    let missing: PathBuf = dir.path().join("missing.wasm");
    let err = source::fetch(
        &unreachable_client(),
        &ModuleSource::File(FileSource {
            path: missing.clone(),
        }),
    )
    .await
    .expect_err("missing file");
    assert!(
        matches!(&err, SourceError::File { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.wasm"), "{err}");
}
