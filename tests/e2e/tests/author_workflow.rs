//! README's "Writing a reconciler", run as written: the shell blocks marked
//! `<!-- tested: author-workflow -->` are read from README.md and each line
//! run in order, the way an author types them — `bosun new`, `cargo test`,
//! `bosun build`, `bosun inspect`, `bosun reconcile`, then into a cluster
//! with `kubectl apply` and `bosun push` — against a real control plane
//! with a host running `--modules-from-cluster`, as `cargo xtask demo`
//! leaves one. It passes when the sample object is reconciled: the
//! ConfigMap the scaffolded reconciler keeps is in the cluster.
//!
//! The scaffolded crate lives in a temporary directory outside the
//! repository, where an author's would: `bosun new` finds the SDK in the
//! checkout the binary was built from (by path, with that checkout's
//! Cargo.lock). It builds into the workspace's own target directory
//! (`CARGO_TARGET_DIR`; `target` in the crate is a link to it, so the
//! README's paths hold): the dependencies it shares with the examples are
//! built once, not again per run. The time of each step is printed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Host, eventually, root};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;

/// The marker before each tested block of the Rust workflow.
const MARKER: &str = "<!-- tested: author-workflow -->";
/// The marker before the Python scaffold's block.
const PYTHON_MARKER: &str = "<!-- tested: author-workflow-python -->";
/// The marker before the TypeScript scaffold's block.
const TYPESCRIPT_MARKER: &str = "<!-- tested: author-workflow-typescript -->";
/// The marker before the Go scaffold's block.
const GO_MARKER: &str = "<!-- tested: author-workflow-go -->";

/// The command lines of the README's blocks marked `marker`, in order.
fn readme_commands(marker: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find(marker) {
        rest = &rest[start + marker.len()..];
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
    let commands = readme_commands(MARKER);
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
    let commands = readme_commands(MARKER);
    let Some(cluster) = cluster_with_demo_namespace().await else {
        return;
    };
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;

    let target = bosun_testenv::guests::target_dir();
    let outside = tempfile::tempdir().unwrap();
    let work = outside.path().to_owned();
    assert!(
        !work.starts_with(root()),
        "{} must be outside the repository",
        work.display()
    );
    let times = run_commands(&commands, &work, &cluster, |name, dir| {
        // The README's paths name the crate's own target directory.
        std::os::unix::fs::symlink(&target, dir.join(name).join("target")).unwrap();
    });

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
    print_times(&times);
}

/// README's Python block, run as written in a directory outside the
/// repository: `bosun new --lang python` makes a project whose `bosun
/// build` installs the SDK from the checkout the binary was built from
/// (with its pinned componentize-py) and builds the component; the
/// project's own tests pass; `bosun reconcile` answers its sample with the
/// ConfigMap; a real API server takes its CRD and its sample.
#[tokio::test]
async fn the_readme_takes_a_python_author_from_bosun_new_to_a_reconciled_sample() {
    a_scripted_scaffold_from_new_to_a_reconciled_sample(PYTHON_MARKER, ".venv/bin/pytest").await;
}

/// README's TypeScript block, the same way: `bosun new --lang typescript`,
/// whose `bosun build` runs npm install, tsc and the SDK's bosun-build.
#[tokio::test]
async fn the_readme_takes_a_typescript_author_from_bosun_new_to_a_reconciled_sample() {
    a_scripted_scaffold_from_new_to_a_reconciled_sample(TYPESCRIPT_MARKER, "npm test").await;
}

/// README's Go block, the same way: `bosun new --lang go`, whose `bosun
/// build` runs go build for wasip1 and makes the component in-process.
#[tokio::test]
async fn the_readme_takes_a_go_author_from_bosun_new_to_a_reconciled_sample() {
    a_scripted_scaffold_from_new_to_a_reconciled_sample(GO_MARKER, "go test").await;
}

async fn a_scripted_scaffold_from_new_to_a_reconciled_sample(marker: &str, tests: &str) {
    let commands = readme_commands(marker);
    for step in [
        "bosun new ",
        "bosun build",
        tests,
        "bosun reconcile ",
        "kubectl apply -f crd.yaml",
    ] {
        assert!(
            commands.iter().any(|c| c.starts_with(step)),
            "README's block {marker} lacks {step:?}: {commands:#?}"
        );
    }
    let Some(cluster) = cluster_with_demo_namespace().await else {
        return;
    };
    let outside = tempfile::tempdir().unwrap();
    let times = run_commands(&commands, outside.path(), &cluster, |_, _| {});
    let (_, _, reconciled) = times
        .iter()
        .find(|(command, _, _)| command.starts_with("bosun reconcile "))
        .unwrap();
    for expected in [
        "kind: ConfigMap",
        "greeting: hello",
        "waiting for ConfigMap",
    ] {
        assert!(
            reconciled.contains(expected),
            "bosun reconcile's answer lacks {expected:?}:\n{reconciled}"
        );
    }
    let greeter = kube::discovery::ApiResource {
        group: "example.com".into(),
        version: "v1alpha1".into(),
        api_version: "example.com/v1alpha1".into(),
        kind: "Greeter".into(),
        plural: "greeters".into(),
    };
    let greeters: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), "demo", &greeter);
    let sample = eventually(
        "the sample in the cluster",
        Duration::from_secs(10),
        || async { greeters.get_opt("example").await.ok().flatten() },
    )
    .await;
    assert_eq!(sample.data["spec"]["data"]["greeting"], "hello");
    print_times(&times);
}

/// A control plane with the demo's namespace, which the README applies
/// samples to; None (the test skips) without kubectl.
async fn cluster_with_demo_namespace() -> Option<Cluster> {
    bosun_testenv::tools::for_test("kubectl", "see README: Tests")
        .unwrap_or_else(|e| panic!("{e}"))?;
    let cluster = Cluster::start().await;
    let demo: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &demo)
        .await
        .unwrap();
    Some(cluster)
}

/// Runs `commands` from `work` as an author types them (`cd` moves), with
/// the bosun binary on PATH and the cluster's kubeconfig; `made(name, dir)`
/// is called after `bosun new NAME` in `dir`. Returns each command with its
/// time and output; panics on the first that fails.
fn run_commands(
    commands: &[String],
    work: &Path,
    cluster: &Cluster,
    made: impl Fn(&str, &Path),
) -> Vec<(String, Duration, String)> {
    let target = bosun_testenv::guests::target_dir();
    let bosun = bosun_testenv::guests::host_binary().expect("bosun builds");
    let path = format!(
        "{}:{}",
        bosun.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cwd = work.to_owned();
    let mut ran = Vec::new();
    for command in commands {
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
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "$ {command}    ({:.1}s)\n{stdout}{}",
            took.as_secs_f64(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "README step failed: {command}");
        if let Some(name) = command
            .strip_prefix("bosun new ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            made(name, &cwd);
        }
        ran.push((command.clone(), took, stdout));
    }
    ran
}

fn print_times(times: &[(String, Duration, String)]) {
    eprintln!("time of each step:");
    for (command, took, _) in times {
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
