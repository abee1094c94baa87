//! The image `cargo xtask image` builds: its config, the binary running from
//! its own root filesystem, reproducibility, a round trip through a real
//! registry, and the Dockerfile kept in step.
//!
//! The image is built from the debug `bosun` binary the end-to-end tests
//! already build: linked the same way as the release one (same libraries),
//! without paying a release build in every test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use xtask::image::{self, Image, Options};

/// One image per test process, and the directory it lives in.
fn built() -> &'static (TempDir, Options, Image) {
    static BUILT: OnceLock<(TempDir, Options, Image)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        let dir = tempfile::tempdir().expect("tempdir");
        let options = Options::new(binary, dir.path().join("one")).expect("options");
        let image = image::build(&options).expect("the image builds");
        (dir, options, image)
    })
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The manifest named by the layout's index (the only one), and the config.
fn manifest_and_config(layout: &Path) -> (String, Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    let digest = manifests[0]["digest"].as_str().expect("digest").to_owned();
    let manifest = read_json(&blob(layout, &digest));
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let config = read_json(&blob(layout, config_digest));
    (digest, manifest, config)
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The root filesystem: every layer unpacked in order.
fn extract(layout: &Path, into: &Path) {
    let (_, manifest, _) = manifest_and_config(layout);
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_eq!(layer["mediaType"], image::LAYER);
        let digest = layer["digest"].as_str().expect("digest");
        let path = blob(layout, digest);
        assert_eq!(
            sha256_file(&path),
            digest,
            "the layer's bytes match its digest"
        );
        let file = std::fs::File::open(&path).expect("layer");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        archive.set_preserve_permissions(true);
        archive.unpack(into).expect("the layer unpacks");
    }
}

/// `bosun --version` as the CLI prints it, from the WIT files themselves:
/// the current version, then each earlier one under `wit/versions/`,
/// newest first.
fn expected_version() -> String {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let package = |file: &Path| {
        let text = std::fs::read_to_string(file).expect("wit");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .expect("a package line")
            .trim_end_matches(';')
            .to_owned()
    };
    let mut earlier: Vec<(Vec<u64>, String)> = std::fs::read_dir(wit.join("versions"))
        .expect("wit/versions")
        .map(|entry| {
            let dir = entry.expect("an entry").path();
            let version = dir.file_name().unwrap().to_string_lossy().into_owned();
            let numbers = version
                .split('.')
                .map(|n| n.parse().expect("a number"))
                .collect();
            (numbers, package(&dir.join("reconciler.wit")))
        })
        .collect();
    earlier.sort_by(|a, b| b.0.cmp(&a.0));
    let served: Vec<String> = std::iter::once(package(&wit.join("reconciler.wit")))
        .chain(earlier.into_iter().map(|(_, package)| package))
        .collect();
    format!(
        "bosun {} (serves {})",
        env!("CARGO_PKG_VERSION"),
        served.join(", ")
    )
}

#[test]
fn the_config_has_the_entrypoint_user_and_labels() {
    let (_, options, image) = built();
    let (digest, manifest, config) = manifest_and_config(&image.layout);
    assert_eq!(digest, image.manifest.digest);
    assert_eq!(manifest["mediaType"], image::MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], image::CONFIG);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let run = &config["config"];
    assert_eq!(run["Entrypoint"], serde_json::json!(["/bosun"]));
    assert_eq!(
        run["Cmd"],
        serde_json::json!(["run", "--modules-from-cluster", "--leader-elect"])
    );
    assert_eq!(run["User"], "65532:65532");
    assert!(
        run["Env"]
            .as_array()
            .expect("env")
            .contains(&Value::from("BOSUN_CACHE_DIR=/var/cache/bosun/modules")),
        "{run}"
    );
    let labels = &run["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "bosun");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/bosun-dev/bosun"
    );
    assert!(
        labels["org.opencontainers.image.description"]
            .as_str()
            .is_some_and(|d| d.contains("WebAssembly")),
        "{labels}"
    );
    match &options.revision {
        Some(revision) => assert_eq!(labels["org.opencontainers.image.revision"], *revision),
        None => assert!(labels.get("org.opencontainers.image.revision").is_none()),
    }
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    assert_eq!(diff_ids.len(), 2, "a base layer and the binary's");
    assert_eq!(
        manifest["layers"].as_array().map(Vec::len),
        Some(2),
        "{manifest}"
    );
}

#[test]
fn the_binary_runs_from_the_extracted_root_filesystem() {
    let (_, _, image) = built();
    let root = tempfile::tempdir().expect("tempdir");
    let rootfs = root.path();
    extract(&image.layout, rootfs);
    for file in [
        "bosun",
        "etc/passwd",
        "etc/group",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        assert!(rootfs.join(file).is_file(), "the image has /{file}");
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert!(rootfs.join("var/cache/bosun").is_dir());
    assert!(rootfs.join("tmp").is_dir());

    // The loader the binary names, from the image, told to search only the
    // image's library directories.
    let loader = rootfs.join("lib64/ld-linux-x86-64.so.2");
    assert!(loader.is_file(), "the image has the loader");
    let library_path = rootfs.join("lib/x86_64-linux-gnu");
    let through_loader = |args: &[&str]| {
        let output = Command::new(&loader)
            .arg("--inhibit-cache")
            .arg("--library-path")
            .arg(&library_path)
            .arg(rootfs.join("bosun"))
            .args(args)
            .env_clear()
            .output()
            .expect("the image's loader runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let version = through_loader(&["--version"]);
    assert_eq!(version.trim(), expected_version());

    // What that loader resolves for the binary: every library from the image.
    let listed = Command::new(&loader)
        .arg("--inhibit-cache")
        .arg("--library-path")
        .arg(&library_path)
        .arg("--list")
        .arg(rootfs.join("bosun"))
        .output()
        .expect("ld.so --list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for line in listed.lines().filter(|l| l.contains("=>")) {
        let target = line.split("=>").nth(1).unwrap_or_default().trim();
        assert!(
            target.starts_with(rootfs.to_str().expect("utf-8")),
            "a library from outside the image: {line}\n{listed}"
        );
    }

    // As root (CI): inside the image's root alone, as its own user would.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let chroot = bosun_testenv::tools::find("chroot").expect("coreutils' chroot");
        let output = Command::new(chroot)
            .arg(format!("--userspec={}", image::USER))
            .arg(rootfs)
            .args(image::ENTRYPOINT)
            .arg("--version")
            .env_clear()
            .output()
            .expect("chroot runs");
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected_version()
        );
    } else {
        eprintln!("not root: the chroot run is skipped (the loader run above used the image)");
    }
}

#[test]
fn building_twice_gives_the_same_digest() {
    let (dir, options, first) = built();
    let again = Options {
        out_dir: dir.path().join("two"),
        ..options.clone()
    };
    let second = image::build(&again).expect("builds again");
    assert_eq!(first.manifest.digest, second.manifest.digest);
    assert_eq!(
        sha256_file(&first.archive),
        sha256_file(&second.archive),
        "the archives are byte for byte the same"
    );

    // Another creation time changes the config, never the layers: file times
    // in the layers are fixed, not taken from the clock or the files.
    let later = Options {
        out_dir: dir.path().join("later"),
        created: options.created + 86_400,
        ..options.clone()
    };
    let third = image::build(&later).expect("builds later");
    assert_ne!(first.config.digest, third.config.digest);
    let layers = |image: &Image| -> Vec<String> {
        image.layers.iter().map(|l| l.blob.digest.clone()).collect()
    };
    assert_eq!(layers(first), layers(&third));
}

#[test]
fn skopeo_pushes_it_to_a_registry_and_copies_it_back_with_the_same_digest() {
    let Some(skopeo) = bosun_testenv::tools::for_test("skopeo", "apt-get install skopeo")
        .expect("skopeo is installed in CI")
    else {
        return;
    };
    if bosun_testenv::tools::for_test("docker-registry", "apt-get install docker-registry")
        .expect("docker-registry is installed in CI")
        .is_none()
    {
        return;
    }
    let (dir, _, image) = built();
    let registry = bosun_testenv::Registry::start().expect("the registry starts");
    let reference = format!("docker://{}/bosun:{}", registry.address(), image.tag);
    let skopeo = |args: &[&str]| -> Vec<u8> {
        let output = Command::new(&skopeo)
            .arg("--insecure-policy")
            .args(args)
            .output()
            .expect("skopeo runs");
        assert!(
            output.status.success(),
            "skopeo {args:?} failed: {}\nregistry log {}:\n{}",
            String::from_utf8_lossy(&output.stderr),
            registry.log().display(),
            std::fs::read_to_string(registry.log()).unwrap_or_default()
        );
        output.stdout
    };
    let archive = format!("oci-archive:{}", image.archive.display());
    skopeo(&["copy", "--dest-tls-verify=false", &archive, &reference]);

    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&raw))),
        image.manifest.digest,
        "the registry serves the manifest unchanged"
    );

    let back = dir.path().join("pulled");
    let destination = format!("oci:{}:{}", back.display(), image.tag);
    skopeo(&["copy", "--src-tls-verify=false", &reference, &destination]);
    let (digest, manifest, _) = manifest_and_config(&back);
    assert_eq!(
        digest, image.manifest.digest,
        "copied back with the same digest"
    );
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        assert_eq!(sha256_file(&blob(&back, digest)), digest);
    }
}

/// The Dockerfile's final stage, as instructions and their arguments, with
/// continuation lines joined.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"))
        .expect("the Dockerfile");
    let mut joined = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                joined.push_str(part);
                joined.push(' ');
            }
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    let instructions: Vec<(String, String)> = joined
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, rest) = l.trim().split_once(' ').unwrap_or((l.trim(), ""));
            (name.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|(name, _)| name == "FROM")
        .expect("a FROM");
    instructions[last_from..].to_vec()
}

/// `KEY=VALUE KEY="VALUE WITH SPACES" …`, as LABEL and ENV write them.
fn pairs(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').expect("a closing quote");
                (quoted[..end].to_owned(), &quoted[end + 1..])
            }
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        pairs.push((key.trim().to_owned(), value));
        rest = next.trim();
    }
    pairs
}

#[test]
fn the_dockerfile_builds_the_same_config() {
    let (_, options, _) = built();
    let stage = dockerfile_final_stage();
    let arg = |name: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, rest)| rest.clone())
            .collect()
    };
    assert_eq!(arg("FROM"), ["scratch"], "a final stage from scratch");
    assert_eq!(arg("USER"), [image::USER]);
    let json = |text: &str| -> Value { serde_json::from_str(text).expect("exec form") };
    let entrypoint = arg("ENTRYPOINT");
    assert_eq!(json(&entrypoint[0]), serde_json::json!(image::ENTRYPOINT));
    let cmd = arg("CMD");
    assert_eq!(json(&cmd[0]), serde_json::json!(image::CMD));
    let env: Vec<String> = arg("ENV")
        .iter()
        .flat_map(|e| pairs(e))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(env, image::ENV);
    let labels: Vec<(String, String)> = arg("LABEL").iter().flat_map(|l| pairs(l)).collect();
    let expected = image::labels(options);
    for (key, value) in expected.as_object().expect("labels") {
        // Build-specific: the Dockerfile takes them as build arguments.
        if key.ends_with(".created") || key.ends_with(".revision") {
            assert!(
                labels.iter().any(|(k, _)| k == key),
                "the Dockerfile sets {key}"
            );
            continue;
        }
        assert!(
            labels
                .iter()
                .any(|(k, v)| k == key && Some(v.as_str()) == value.as_str()),
            "the Dockerfile's {key} is {value}: {labels:?}"
        );
    }
}
