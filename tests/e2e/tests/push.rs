//! `bosun push` as an author runs it: against a real control plane with a
//! host running `--modules-from-cluster`, and a real registry on loopback.
//! The component is checked, published (a ConfigMap, or a Wasm OCI
//! artifact), its ReconcilerModule applied with the digest pinned, and the
//! host's `Loaded`/`Ready` printed; re-pushing the same bytes writes
//! nothing, new bytes swap; a component too large for a ConfigMap is
//! refused before anything is written. Every shipped example loads from a
//! ConfigMap pushed this way.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bosun_testenv::Registry;
use common::{
    Cluster, Host, condition, eventually, get, label, root, sha256, stderr, stdout, wait_loaded,
    webapp_next,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

/// A built guest's path.
fn guest(package: &str) -> String {
    common::guest(package)
}

/// `component` with a custom section of `size` random bytes appended: still
/// a valid component, but no gzip makes it smaller.
fn padded(component: &str, size: usize, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    let mut noise = vec![0u8; size];
    for (i, byte) in noise.iter_mut().enumerate() {
        // xorshift: incompressible enough for gzip, no dependency.
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = (x >> 24) as u8;
    }
    payload.extend_from_slice(&noise);
    bytes.push(0); // a custom section
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend_from_slice(&payload);
    let path = dir.join("padded.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn webapp_object(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": name}, "spec": {"image": "nginx", "replicas": 1}
    }))
    .unwrap()
}

#[tokio::test]
async fn push_to_a_config_map_loads_a_re_push_writes_nothing_new_bytes_swap() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &cluster.namespace);
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let ns = cluster.namespace.clone();
    let webapp = guest("webapp");

    // Too large for a ConfigMap even compressed: refused before anything is
    // written, pointing to a registry.
    let dir = tempfile::tempdir().unwrap();
    let huge = padded(&webapp, 1100 * 1024, dir.path());
    let out = cluster.bosun(&["push", huge.to_str().unwrap(), "--name", "huge", "-n", &ns]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--to oci://"), "{}", stderr(&out));
    assert!(config_maps.get_opt("huge-module").await.unwrap().is_none());
    assert!(get(&modules, "huge").await.is_none());

    // A broken component: refused by the local check, nothing written.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0 not a component").unwrap();
    let out = cluster.bosun(&[
        "push",
        broken.to_str().unwrap(),
        "--name",
        "broken",
        "-n",
        &ns,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        config_maps
            .get_opt("broken-module")
            .await
            .unwrap()
            .is_none()
    );

    // The first push: the ConfigMap, the ReconcilerModule pinned to it, and
    // the host's verdict.
    let out = cluster.bosun(&["push", &webapp, "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("ReconcilerModule webapp created"),
        "{printed}"
    );
    assert!(printed.contains("Loaded=True (Loaded)"), "{printed}");
    assert!(printed.contains("Ready=True (Running)"), "{printed}");
    let stored = config_maps.get("webapp-module").await.unwrap();
    let bytes = stored.binary_data.as_ref().unwrap()["webapp.wasm"]
        .0
        .clone();
    assert_eq!(
        bytes,
        std::fs::read(&webapp).unwrap(),
        "stored as it is: it fits"
    );
    let module = get(&modules, "webapp").await.unwrap();
    assert_eq!(
        module.data["spec"]["source"]["configMap"]["sha256"],
        sha256(&bytes),
        "the digest pinned"
    );
    assert_eq!(module.data["status"]["digest"], sha256(&bytes));
    cluster
        .webapps()
        .create(&PostParams::default(), &webapp_object("shop"))
        .await
        .unwrap();
    eventually("the pushed module reconciles", LONG, || async {
        get(&deployments, "shop").await
    })
    .await;

    // The same bytes again: nothing written, and it says so.
    let versions = (
        stored.metadata.resource_version.clone(),
        module.metadata.resource_version.clone(),
        module.metadata.generation,
    );
    let out = cluster.bosun(&["push", &webapp, "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    assert!(stdout(&out).contains("nothing written"), "{}", stdout(&out));
    let stored = config_maps.get("webapp-module").await.unwrap();
    let module = get(&modules, "webapp").await.unwrap();
    assert_eq!(stored.metadata.resource_version, versions.0);
    assert_eq!(module.metadata.generation, versions.2);

    // New bytes, without waiting: a hot swap, old → new digest printed at
    // once; the host then loads it and reconciles with it.
    let next = webapp_next();
    let next_sha = sha256(&std::fs::read(&next).unwrap());
    let out = cluster.bosun(&["push", &next, "--name", "webapp", "-n", &ns, "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!(
            "swapped: sha256:{} → sha256:{next_sha}",
            sha256(&bytes)
        )),
        "{printed}"
    );
    assert!(
        !printed.contains("Loaded="),
        "--no-wait waits for nothing: {printed}"
    );
    let swapped = wait_loaded(&modules, "webapp", "True", "Loaded").await;
    assert_eq!(swapped.data["status"]["digest"], next_sha);
    assert_eq!(swapped.data["status"]["version"], "0.1.0+rev2");
    eventually("the new version reconciles", LONG, || async {
        get(&deployments, "shop")
            .await
            .filter(|d| label(d, webapp::REVISION_LABEL).as_deref() == Some("2"))
    })
    .await;

    // Settings from a file: the same bytes, new settings, applied without a
    // new component; a later push without --settings keeps them.
    let settings = dir.path().join("settings.yaml");
    std::fs::write(&settings, "commonLabels:\n  team: shop\n").unwrap();
    let out = cluster.bosun(&[
        "push",
        &next,
        "--name",
        "webapp",
        "-n",
        &ns,
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ReconcilerModule webapp updated"),
        "{}",
        stdout(&out)
    );
    let module = get(&modules, "webapp").await.unwrap();
    assert_eq!(
        module.data["spec"]["settings"],
        json!({"commonLabels": {"team": "shop"}})
    );
    assert_eq!(
        module.data["status"]["digest"], next_sha,
        "no new component"
    );
    eventually("the settings reach the children", LONG, || async {
        get(&deployments, "shop")
            .await
            .filter(|d| label(d, "team").as_deref() == Some("shop"))
    })
    .await;
    let out = cluster.bosun(&["push", &next, "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing written"), "{}", stdout(&out));
    let module = get(&modules, "webapp").await.unwrap();
    assert_eq!(
        module.data["spec"]["settings"],
        json!({"commonLabels": {"team": "shop"}}),
        "a push without --settings keeps them"
    );

    // A module whose CRD is not installed: the host says why (and tries
    // again by itself), and push gives up at its timeout with its words.
    Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(
        cluster.client.clone(),
    )
    .delete("documents.kube.rs", &Default::default())
    .await
    .unwrap();
    // Deleting a CRD is asynchronous: it is served until the API server has
    // removed it, and a host asked before then would find it.
    eventually("the Document kind no longer served", LONG, || async {
        match cluster.client.list_api_group_resources("kube.rs/v1").await {
            Ok(served) => (!served.resources.iter().any(|r| r.name == "documents")).then_some(()),
            Err(_) => Some(()),
        }
    })
    .await;
    let out = cluster.bosun(&[
        "push",
        &guest("documents"),
        "--name",
        "documents",
        "-n",
        &ns,
        "--timeout",
        "8s",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not ready within 8s"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("Loaded=False"), "{}", stderr(&out));
}

/// Every directory under `examples/` with a crate: each is built with
/// `bosun build`, pushed to a ConfigMap (gzip-compressed when only that
/// makes it fit) and loaded by the host. A new example is covered without
/// touching this test.
#[tokio::test]
async fn every_example_loads_from_a_config_map() {
    let examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .collect();
    assert!(examples.len() >= 2, "{examples:?}");
    let cluster = Cluster::start().await;
    let crds: Vec<PathBuf> = examples
        .iter()
        .map(|dir| dir.join("crd.yaml"))
        .filter(|crd| crd.is_file())
        .collect();
    cluster.env.install_crds(crds).await.unwrap();
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &cluster.namespace);
    let modules = cluster.reconciler_modules();
    for example in &examples {
        let built = common::bosun_json(&["build", example.to_str().unwrap()], None);
        let component = built["component"].as_str().unwrap().to_owned();
        let name = built["module"]["name"].as_str().unwrap().to_owned();
        let size = std::fs::metadata(&component).unwrap().len();
        let out = cluster.bosun(&[
            "push",
            &component,
            "--name",
            &name,
            "-n",
            &cluster.namespace,
        ]);
        assert!(
            out.status.success(),
            "{} does not load from a ConfigMap: {}{}",
            example.display(),
            stdout(&out),
            stderr(&out)
        );
        let stored = config_maps
            .get(&format!("{name}-module"))
            .await
            .unwrap()
            .binary_data
            .unwrap()[&format!("{name}.wasm")]
            .0
            .clone();
        let gzipped = stored.starts_with(&[0x1f, 0x8b]);
        assert_eq!(
            gzipped,
            size > 1024 * 1024,
            "{name}: {size} bytes, stored {} bytes",
            stored.len()
        );
        let module = get(&modules, &name).await.unwrap();
        assert_eq!(condition(&module, "Loaded").unwrap()["status"], "True");
        eprintln!(
            "{name}: {size} bytes, stored {} bytes{}",
            stored.len(),
            if gzipped { " (gzip)" } else { "" }
        );
    }
}

/// A registry on loopback; `None` (skipped) when docker-registry is missing
/// outside CI.
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

#[tokio::test]
async fn push_to_a_registry_loads_swaps_on_a_new_version_and_survives_the_registry_going_away() {
    let (username, password) = ("pusher", "s3cret");
    let Some(registry) = registry(Some((username, password))) else {
        return;
    };
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let ns = cluster.namespace.clone();
    let to = format!("oci://{}/team/webapp:1.0", registry.address());

    // The credentials the host pulls with, as kubectl create secret
    // docker-registry makes them.
    let auth = common::base64(&format!("{username}:{password}"));
    let config = json!({"auths": {registry.address(): {"auth": auth}}}).to_string();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "registry"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": common::base64(&config)},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(cluster.client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // The pusher's credentials from a docker config file, as after
    // `docker login` (or `podman login`, REGISTRY_AUTH_FILE).
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, &config).unwrap();
    let auth_file = auth_file.to_str().unwrap();
    let push = |component: String| {
        let cluster = &cluster;
        let to = to.clone();
        let ns = ns.clone();
        move || {
            cluster.bosun_with(
                &[
                    "push",
                    &component,
                    "--name",
                    "webapp",
                    "-n",
                    &ns,
                    "--to",
                    &to,
                    "--pull-secret",
                    "registry",
                ],
                &[("REGISTRY_AUTH_FILE", auth_file)],
            )
        }
    };

    // Without credentials the registry refuses the push.
    let out = cluster.bosun(&[
        "push",
        &guest("webapp"),
        "--name",
        "webapp",
        "--to",
        &to,
        "--no-wait",
    ]);
    assert!(!out.status.success(), "an anonymous push");
    assert!(get(&modules, "webapp").await.is_none());

    let out = push(guest("webapp"))();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Loaded=True (Loaded)"),
        "{}",
        stdout(&out)
    );
    let module = get(&modules, "webapp").await.unwrap();
    let oci = &module.data["spec"]["source"]["oci"];
    assert_eq!(oci["ref"], to.trim_start_matches("oci://"));
    assert_eq!(
        oci["pullSecret"],
        json!({"namespace": ns, "name": "registry"})
    );
    let first = oci["digest"].as_str().unwrap().to_owned();
    assert!(stderr(&out).contains(&format!("pushed {}@{first}", oci["ref"].as_str().unwrap())));
    cluster
        .webapps()
        .create(&PostParams::default(), &webapp_object("shop"))
        .await
        .unwrap();
    eventually(
        "the module pulled from the registry reconciles",
        LONG,
        || async { get(&deployments, "shop").await },
    )
    .await;

    // Again: the tag names that artifact already; nothing written.
    let out = push(guest("webapp"))();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("unchanged:"), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing written"), "{}", stdout(&out));

    // A new version re-tagged 1.0: a new digest pinned, swapped in.
    let out = push(webapp_next())();
    assert!(out.status.success(), "{}", stderr(&out));
    let module = get(&modules, "webapp").await.unwrap();
    let second = module.data["spec"]["source"]["oci"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    assert!(
        stdout(&out).contains(&format!("swapped: {first} → {second}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(module.data["status"]["version"], "0.1.0+rev2");
    eventually("the new version reconciles", LONG, || async {
        get(&deployments, "shop")
            .await
            .filter(|d| label(d, webapp::REVISION_LABEL).as_deref() == Some("2"))
    })
    .await;

    // The registry gone, and the spec pointed back at the first version:
    // the host cannot fetch it, says so, and the running version stays.
    drop(registry);
    modules
        .patch(
            "webapp",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"source": {"oci": {"digest": first}}}})),
        )
        .await
        .unwrap();
    let refused = wait_loaded(&modules, "webapp", "False", "FetchFailed").await;
    let message = condition(&refused, "Loaded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("did not answer"), "{message}");
    assert_eq!(
        condition(&refused, "Ready").unwrap()["reason"],
        "PreviousVersionRunning"
    );
    assert_eq!(refused.data["status"]["version"], "0.1.0+rev2");
    cluster
        .webapps()
        .create(&PostParams::default(), &webapp_object("outage"))
        .await
        .unwrap();
    eventually("the last good version still reconciles", LONG, || async {
        get(&deployments, "outage")
            .await
            .filter(|d| label(d, webapp::REVISION_LABEL).as_deref() == Some("2"))
    })
    .await;
}
