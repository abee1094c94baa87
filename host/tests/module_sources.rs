//! ReconcilerModules as a user meets them: the CRD installs into a real
//! kube-apiserver, good specs are accepted and bad ones refused at admission,
//! and `fetch` reads a component from each kind of source, refusing bytes that
//! are not what the spec names.
//!
//! One control plane serves the whole file; each test uses its own namespace
//! and object names. URL sources are served by a small HTTP/1.1 server on
//! 127.0.0.1 written into this file, so no network is needed; OCI sources by
//! a real registry on 127.0.0.1 (testenv's [`Registry`], Debian's
//! docker-registry), to which the test pushes with oci-client.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bosun::modules::artifact::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use bosun::modules::resource::{
    CONDITION_LOADED, ConfigMapSource, FileSource, ModuleSource, OciSource, ReconcilerModule,
    ReconcilerModuleSpec, ReconcilerModuleStatus, SecretRef, UrlSource,
};
use bosun::modules::source::{self, Fetched, MAX_MODULE_BYTES, SourceError};
use bosun_testenv::{Registry, TestEnv};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
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
    "/../deploy/base/reconcilermodule-crd.yaml"
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

/// `bytes`, gzip-compressed as `gzip -9` would.
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

/// A client that is never reached: URL and file sources must not need one.
fn unreachable_client() -> Client {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    Client::try_from(config).expect("client")
}

fn spec(source: ModuleSource) -> ReconcilerModuleSpec {
    ReconcilerModuleSpec {
        source,
        permissions: Default::default(),
        settings: None,
        concurrency: None,
        timeout_ms: None,
        memory_limit_mib: None,
        paused: false,
        host_class: "default".into(),
        rollout: None,
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
    /// A `Location` header, for redirects.
    location: Option<String>,
}

impl Answer {
    fn ok(body: &[u8]) -> Self {
        Answer {
            status: "200 OK",
            body: body.to_vec(),
            length: Some(body.len() as u64),
            location: None,
        }
    }

    fn redirect(to: &str) -> Self {
        Answer {
            status: "302 Found",
            body: vec![],
            length: Some(0),
            location: Some(to.to_owned()),
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
                    location: None,
                });
                let mut response = format!("HTTP/1.1 {}\r\nConnection: close\r\n", answer.status);
                if let Some(length) = answer.length {
                    response.push_str(&format!("Content-Length: {length}\r\n"));
                }
                if let Some(location) = &answer.location {
                    response.push_str(&format!("Location: {location}\r\n"));
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
            sha256: Some(source::digest(MODULE)),
        }),
        url_source(
            "https://modules.example/cnat.wasm".into(),
            source::digest(MODULE),
        ),
        ModuleSource::Oci(OciSource {
            reference: "registry.example.com/team/cnat:1.2".into(),
            digest: format!("sha256:{}", source::digest(MODULE)),
            pull_secret: Some(SecretRef {
                namespace: "bosun-system".into(),
                name: "registry".into(),
            }),
        }),
        ModuleSource::File(FileSource {
            path: "/var/lib/bosun/cnat.wasm".into(),
        }),
    ];
    for (i, source) in sources.into_iter().enumerate() {
        let name = unique(&format!("{test}-{i}"));
        let mut spec = spec(source);
        spec.settings = Some(json!({"schedule": {"every": "1m"}, "labels": ["a", "b"]}));
        spec.permissions = serde_json::from_value(json!({
            "reconciles": {"group": "cnat.programming-kubernetes.info", "kind": "At"},
            "owns": [{"kind": "Pod"}],
            "finalizer": "cnat.programming-kubernetes.info/cleanup",
            "namespaces": ["team-a"],
            "limits": {"children": 10, "minRequeueMs": 500}
        }))
        .expect("permissions");
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
        json!({"source": {"oci": {"ref": "registry.example.com/cnat:1", "digest": source::digest(MODULE)}}}),
    )
    .await
    .expect_err("an OCI digest without its algorithm is refused");
    assert!(err.contains("spec.source.oci.digest"), "{err}");

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
        binary_data: Some(BTreeMap::from([
            ("cnat.wasm".to_owned(), ByteString(MODULE.to_vec())),
            ("cnat.wasm.gz".to_owned(), ByteString(gzipped(MODULE))),
        ])),
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
            sha256: None,
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

    // Stored compressed, pinned by the digest of what is stored: the
    // component comes out whole.
    let mut compressed = source_for("modules", "cnat.wasm.gz");
    if let ModuleSource::ConfigMap(cm) = &mut compressed {
        cm.sha256 = Some(source::digest(&gzipped(MODULE)));
    }
    let fetched = source::fetch(&client, &compressed).await.expect("fetch");
    assert_eq!(fetched.bytes, MODULE);

    // Pinned: the right digest loads, any other refuses the bytes.
    let mut pinned = source_for("modules", "cnat.wasm");
    if let ModuleSource::ConfigMap(cm) = &mut pinned {
        cm.sha256 = Some(source::digest(MODULE).to_uppercase());
    }
    source::fetch(&client, &pinned)
        .await
        .expect("the pinned bytes load");
    if let ModuleSource::ConfigMap(cm) = &mut pinned {
        cm.sha256 = Some(source::digest(b"another module"));
    }
    let err = source::fetch(&client, &pinned)
        .await
        .expect_err("bytes other than the pinned ones");
    assert!(matches!(err, SourceError::Digest { .. }), "{err:?}");

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
    // What the server sent is not echoed where a ReconcilerModule's author
    // reads it: the status would make the host a probe.
    let message = err.to_string();
    assert!(!message.contains(&source::digest(b"tampered")), "{message}");
    match err {
        SourceError::Digest {
            expected: e,
            actual,
            ..
        } => {
            assert_eq!(e, expected);
            assert_eq!(actual, source::digest(b"tampered"));
        }
        other => panic!("expected a digest error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_url_answering_404_is_an_error_that_does_not_echo_the_status() {
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
    let message = err.to_string();
    assert!(
        message.contains("did not answer with the component"),
        "{message}"
    );
    // The URL carries a loopback port that may itself contain "404".
    assert!(!message.replace(&url, "").contains("404"), "{message}");
}

#[tokio::test]
async fn a_redirect_is_followed_within_its_origin_only() {
    let elsewhere = serve(BTreeMap::from([("/cnat.wasm", Answer::ok(MODULE))])).await;
    let server = serve(BTreeMap::from([
        ("/moved.wasm", Answer::redirect("/cnat.wasm")),
        ("/cnat.wasm", Answer::ok(MODULE)),
        (
            "/away.wasm",
            Answer::redirect(&format!("{}/cnat.wasm", elsewhere.base)),
        ),
    ]))
    .await;
    let client = unreachable_client();
    let source_at =
        |path: &str| url_source(format!("{}{path}", server.base), source::digest(MODULE));
    let fetched = source::fetch(&client, &source_at("/moved.wasm"))
        .await
        .expect("a same-origin redirect");
    assert_eq!(fetched.bytes, MODULE);
    // Another port is another origin, and the host does not go there.
    let err = source::fetch(&client, &source_at("/away.wasm"))
        .await
        .expect_err("a redirect elsewhere");
    assert!(
        matches!(err, SourceError::Status { status: 302, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&elsewhere.base), "{err}");
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
                location: None,
            },
        ),
        // No length announced: counted while streaming.
        (
            "/streamed.wasm",
            Answer {
                status: "200 OK",
                body: vec![0; too_big as usize],
                length: None,
                location: None,
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

// ---------------------------------------------------------------------------
// Fetching: OCI

/// A registry on loopback, with basic authentication for `user` if given;
/// `None` (the test is skipped) when docker-registry is missing outside CI.
fn registry(user: Option<(&str, &str)>) -> Option<Registry> {
    bosun_testenv::tools::for_test(
        bosun_testenv::registry::REGISTRY,
        "apt-get install docker-registry",
    )
    .unwrap_or_else(|e| panic!("{e}"))?;
    let started = match user {
        None => Registry::start(),
        Some((username, password)) => Registry::start_with_auth(username, password),
    };
    Some(started.unwrap_or_else(|e| panic!("the registry failed to start: {e}")))
}

/// A built example component (`cnat`, `webapp`).
fn component(package: &str) -> Vec<u8> {
    let path = bosun_testenv::guests::path(package).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Pushes `layer` as the one layer of an artifact with a Wasm config to
/// `registry/repository:tag`, as `wkg oci push` lays it out when `layer` is
/// `application/wasm`; returns the manifest's digest.
async fn push(
    registry: &Registry,
    repository: &str,
    tag: &str,
    layer: oci_client::client::ImageLayer,
    auth: &oci_client::secrets::RegistryAuth,
) -> String {
    bosun::modules::artifact::install_tls_provider();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let reference: oci_client::Reference = format!("{}/{repository}:{tag}", registry.address())
        .parse()
        .expect("reference");
    let config = oci_client::client::Config::new(
        json!({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer.sha256_digest()]})
            .to_string()
            .into_bytes(),
        WASM_CONFIG_MEDIA_TYPE.to_owned(),
        None,
    );
    client
        .push(&reference, &[layer], config, auth, None)
        .await
        .unwrap_or_else(|e| panic!("pushing {reference}: {e}"));
    client
        .fetch_manifest_digest(&reference, auth)
        .await
        .unwrap_or_else(|e| panic!("the digest of {reference}: {e}"))
}

fn wasm_layer(component: &[u8]) -> oci_client::client::ImageLayer {
    oci_client::client::ImageLayer::new(component.to_vec(), WASM_LAYER_MEDIA_TYPE.to_owned(), None)
}

fn oci_source(reference: String, digest: &str, pull_secret: Option<SecretRef>) -> ModuleSource {
    ModuleSource::Oci(OciSource {
        reference,
        digest: digest.to_owned(),
        pull_secret,
    })
}

#[tokio::test]
async fn fetches_a_component_from_a_registry_by_its_manifest_digest() {
    let Some(registry) = registry(None) else {
        return;
    };
    let anonymous = oci_client::secrets::RegistryAuth::Anonymous;
    let cnat = component("cnat");
    let reference = format!("{}/team/module:1.2", registry.address());
    let first = push(
        &registry,
        "team/module",
        "1.2",
        wasm_layer(&cnat),
        &anonymous,
    )
    .await;

    let source = oci_source(reference.clone(), &first, None);
    let fetched = source::fetch(&unreachable_client(), &source)
        .await
        .expect("fetch by digest");
    assert_eq!(
        fetched,
        Fetched {
            sha256: source::digest(&cnat),
            bytes: cnat.clone(),
            description: format!("oci {reference}@{first}"),
        }
    );

    // A new version re-tagged 1.2: the pinned digest still pulls the old one,
    // the new digest the new one.
    let webapp = component("webapp");
    let second = push(
        &registry,
        "team/module",
        "1.2",
        wasm_layer(&webapp),
        &anonymous,
    )
    .await;
    assert_ne!(first, second);
    let fetched = source::fetch(&unreachable_client(), &source)
        .await
        .expect("the old digest after the re-tag");
    assert_eq!(fetched.bytes, cnat);
    let fetched = source::fetch(
        &unreachable_client(),
        &oci_source(reference.clone(), &second, None),
    )
    .await
    .expect("the new digest");
    assert_eq!(fetched.bytes, webapp);

    // A digest the repository does not have, while the tag names another
    // manifest: the pin is wrong, which is a digest mismatch (the tag's
    // digest is not said).
    let wrong = format!("sha256:{}", source::digest(b"not pushed"));
    let err = source::fetch(
        &unreachable_client(),
        &oci_source(reference.clone(), &wrong, None),
    )
    .await
    .expect_err("a wrong digest");
    assert!(
        matches!(&err, SourceError::Digest { expected, actual, field, .. }
            if *expected == wrong && *actual == second && *field == "spec.source.oci.digest"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(!message.contains(&second), "{message}");
    assert!(
        message.contains("update spec.source.oci.digest"),
        "{message}"
    );

    // Neither the digest nor the tag: not found, which is not about the pin.
    let err = source::fetch(
        &unreachable_client(),
        &oci_source(format!("{}/team/other:1", registry.address()), &wrong, None),
    )
    .await
    .expect_err("a missing repository");
    assert!(
        matches!(err, SourceError::RegistryNotFound { .. }),
        "{err:?}"
    );

    // Not the Wasm layout: a tar layer.
    let tar = oci_client::client::ImageLayer::oci_v1(cnat.clone(), None);
    let image = push(&registry, "team/image", "1", tar, &anonymous).await;
    let err = source::fetch(
        &unreachable_client(),
        &oci_source(format!("{}/team/image:1", registry.address()), &image, None),
    )
    .await
    .expect_err("not a wasm artifact");
    assert!(
        matches!(err, SourceError::NotWasmArtifact { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("application/wasm"), "{err}");

    // The registry gone: it did not answer.
    drop(registry);
    let err = source::fetch(&unreachable_client(), &source)
        .await
        .expect_err("registry stopped");
    assert!(
        matches!(err, SourceError::RegistryUnreachable { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("the registry did not answer"),
        "{err}"
    );
}

#[tokio::test]
async fn a_registry_wanting_credentials_gets_them_from_the_pull_secret() {
    let (username, password) = ("puller", "s3cret:with-colon");
    let Some(registry) = registry(Some((username, password))) else {
        return;
    };
    let credentials =
        oci_client::secrets::RegistryAuth::Basic(username.to_owned(), password.to_owned());
    let cnat = component("cnat");
    let digest = push(
        &registry,
        "team/cnat",
        "1.0",
        wasm_layer(&cnat),
        &credentials,
    )
    .await;
    let reference = format!("{}/team/cnat:1.0", registry.address());

    let client = client().await;
    let ns = namespace(&client, "oci-pull-secret").await;
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let secret = |name: &str, config: Value| Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.to_string().into_bytes()),
        )])),
        ..Secret::default()
    };
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{username}:{password}"),
    );
    let address = registry.address();
    for (name, config) in [
        (
            "by-password",
            json!({"auths": {address: {"username": username, "password": password}}}),
        ),
        (
            "by-auth",
            json!({"auths": {"other.example": {"auth": "eDp5"}, format!("http://{address}/v2/"): {"auth": auth}}}),
        ),
        (
            "wrong",
            json!({"auths": {address: {"username": username, "password": "wrong"}}}),
        ),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, config))
            .await
            .unwrap_or_else(|e| panic!("creating secret {name}: {e}"));
    }
    let with_secret = |name: &str| {
        oci_source(
            reference.clone(),
            &digest,
            Some(SecretRef {
                namespace: ns.clone(),
                name: name.to_owned(),
            }),
        )
    };

    for name in ["by-password", "by-auth"] {
        let fetched = source::fetch(&client, &with_secret(name))
            .await
            .unwrap_or_else(|e| panic!("fetch with {name}: {e}"));
        assert_eq!(fetched.bytes, cnat, "{name}");
    }

    let err = source::fetch(&client, &oci_source(reference.clone(), &digest, None))
        .await
        .expect_err("anonymous");
    assert!(
        matches!(
            err,
            SourceError::RegistryDenied {
                with_credentials: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("spec.source.oci.pullSecret"),
        "{err}"
    );

    let err = source::fetch(&client, &with_secret("wrong"))
        .await
        .expect_err("a wrong password");
    assert!(
        matches!(
            err,
            SourceError::RegistryDenied {
                with_credentials: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");

    let err = source::fetch(&client, &with_secret("missing"))
        .await
        .expect_err("a missing secret");
    assert!(
        matches!(&err, SourceError::PullSecret { problem, .. } if problem.starts_with("was not found")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_manifest_over_the_cap_is_refused_unparsed() {
    // A registry that serves a 5 MiB "manifest" under its own digest: the
    // pin matches, so only the size cap stands between it and the parser.
    // (docker-registry itself refuses to store a manifest this large.)
    let mut manifest = br#"{"schemaVersion":2,"layers":[],"padding":""#.to_vec();
    manifest.resize(bosun::modules::artifact::MAX_MANIFEST_BYTES + 1024, b'x');
    manifest.extend_from_slice(br#""}"#);
    let digest = format!("sha256:{}", source::digest(&manifest));
    let path: &'static str =
        Box::leak(format!("/v2/team/huge/manifests/{digest}").into_boxed_str());
    let server = serve(BTreeMap::from([
        ("/v2/", Answer::ok(b"{}")),
        (path, Answer::ok(&manifest)),
    ]))
    .await;
    let registry = server.base.trim_start_matches("http://").to_owned();
    let err = source::fetch(
        &unreachable_client(),
        &oci_source(format!("{registry}/team/huge:1"), &digest, None),
    )
    .await
    .expect_err("a manifest over the cap");
    assert!(
        matches!(err, SourceError::ManifestTooLarge { limit, .. } if limit == bosun::modules::artifact::MAX_MANIFEST_BYTES),
        "{err:?}"
    );
    assert!(err.to_string().contains("larger than"), "{err}");
}
