//! README's "Writing a reconciler", run as written: the shell blocks marked
//! `<!-- tested: author-workflow -->` are read from README.md and each line
//! run in order, the way an author types them — `bosun new`, `cargo test`,
//! `bosun build`, `bosun inspect`, `bosun reconcile`, then into a cluster
//! with `kubectl apply` and `bosun push` — against a real control plane
//! with a host running `--modules-from-cluster`, as `cargo xtask demo`
//! leaves one. It passes when the sample object is reconciled: the
//! ConfigMap the scaffolded reconciler keeps is in the cluster.
//!
//! The scaffolded crate lives in `target/author-workflow/` (made afresh
//! each run, inside the repository, so it depends on the SDK by path and
//! copies the workspace's Cargo.lock) and builds into the workspace's own
//! target directory (`CARGO_TARGET_DIR`; `target` in the crate is a link
//! to it, so the README's paths hold): the dependencies it shares with the
//! examples are built once, not again per run. The time of each step is
//! printed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Host, eventually, root};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use serde_json::json;

/// The marker before each tested block.
const MARKER: &str = "<!-- tested: author-workflow -->";

/// The command lines of the README's tested blocks, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find(MARKER) {
        rest = &rest[start + MARKER.len()..];
        let block = rest
            .trim_start()
            .strip_prefix("```sh\n")
            .expect("a ```sh block right after the marker");
        let end = block.find("```").expect("the block ends");
        commands.extend(
            block[..end]
                .lines()
                .map(|line| line.split(" # ").next().unwrap_or(line).trim().to_owned())
                .filter(|line| !line.is_empty()),
        );
        rest = &block[end..];
    }
    commands
}

#[test]
fn the_readme_names_the_whole_workflow() {
    let commands = readme_commands();
    for step in [
        "bosun new ",
        "cargo test",
        "bosun build",
        "bosun inspect ",
        "bosun reconcile ",
        "kubectl apply -f crd.yaml",
        "bosun push ",
    ] {
        assert!(
            commands.iter().any(|c| c.starts_with(step)),
            "README's tested blocks lack {step:?}: {commands:#?}"
        );
    }
}

#[tokio::test]
async fn the_readme_takes_an_author_from_bosun_new_to_a_reconciled_object() {
    if bosun_testenv::tools::for_test("kubectl", "see README: Tests")
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none()
    {
        return;
    }
    let commands = readme_commands();
    let cluster = Cluster::start().await;
    // The demo's namespace, which the README applies the sample to.
    let demo: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &demo)
        .await
        .unwrap();
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;

    let target = bosun_testenv::guests::target_dir();
    let bosun = bosun_testenv::guests::host_binary().expect("bosun builds");
    let work = target.join("author-workflow");
    if work.exists() {
        std::fs::remove_dir_all(&work).unwrap();
    }
    std::fs::create_dir_all(&work).unwrap();
    let path = format!(
        "{}:{}",
        bosun.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut cwd = work.clone();
    let mut times: Vec<(String, Duration)> = Vec::new();
    for command in &commands {
        if let Some(dir) = command.strip_prefix("cd ") {
            cwd = cwd.join(dir.trim());
            continue;
        }
        let started = Instant::now();
        let out = shell(command, &cwd)
            .env("PATH", &path)
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("CARGO_TARGET_DIR", &target)
            .env("BOSUN_CACHE_DIR", root().join("target/e2e-module-cache"))
            .output()
            .expect("sh runs");
        let took = started.elapsed();
        eprintln!(
            "$ {command}    ({:.1}s)\n{}{}",
            took.as_secs_f64(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "README step failed: {command}");
        times.push((command.clone(), took));
        if let Some(name) = command
            .strip_prefix("bosun new ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            // The README's paths name the crate's own target directory.
            std::os::unix::fs::symlink(&target, cwd.join(name).join("target")).unwrap();
        }
    }

    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), "demo");
    let kept = eventually(
        "the sample reconciled by the pushed module",
        Duration::from_secs(60),
        || async { config_maps.get_opt("example").await.unwrap() },
    )
    .await;
    assert_eq!(
        kept.data
            .unwrap_or_default()
            .get("greeting")
            .map(String::as_str),
        Some("hello")
    );
    eprintln!("time of each step:");
    for (command, took) in &times {
        eprintln!("  {:>7.1}s  {command}", took.as_secs_f64());
    }
}

/// `sh -ec command` in `dir`, without the variables cargo set for this
/// test, which would make the nested builds rebuild what the outer one
/// built (see `bosun_testenv::guests::cargo`).
fn shell(command: &str, dir: &Path) -> Command {
    let mut shell = Command::new("sh");
    shell.arg("-ec").arg(command).current_dir(dir);
    for (name, value) in bosun_testenv::guests::cargo().get_envs() {
        if value.is_none() {
            shell.env_remove(name);
        }
    }
    shell
}
