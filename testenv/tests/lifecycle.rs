//! The harness's own lifecycle: startup errors, teardown on drop, on panic and
//! when the test process is killed. Each test starts its own control plane, so
//! these are skipped under `USE_EXISTING_CLUSTER`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bosun_testenv::assets::{self, AssetsOrigin};
use bosun_testenv::{Error, TestEnv, USE_EXISTING_CLUSTER};
use common::{process_is_dead, wait_dead};

/// Set in the child process of `killed_or_panicking_test_leaves_no_processes`.
const CHILD_PIDFILE: &str = "BOSUN_TESTENV_CHILD_PIDFILE";
const CHILD_MODE: &str = "BOSUN_TESTENV_CHILD_MODE";

fn skipped(test: &str) -> bool {
    if common::skipped(test) {
        return true;
    }
    if std::env::var(USE_EXISTING_CLUSTER).is_ok_and(|v| v == "true" || v == "1") {
        eprintln!("{test}: skipped, it tests the harness's own control plane");
        return true;
    }
    false
}

async fn start() -> TestEnv {
    TestEnv::start()
        .await
        .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"))
}

#[tokio::test]
async fn drop_kills_both_processes_and_removes_the_directory() {
    if skipped("drop_kills_both_processes_and_removes_the_directory") {
        return;
    }
    let env = start().await;
    let pids: Vec<u32> = env.pids().into_iter().map(|(_, pid)| pid).collect();
    let names: Vec<&str> = env.pids().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["kube-apiserver", "etcd"]);
    let dir = env.dir().expect("local env has a dir").to_path_buf();
    let kubeconfig = env.kubeconfig_path().expect("kubeconfig").to_path_buf();
    assert!(kubeconfig.starts_with(&dir) && kubeconfig.is_file());
    assert!(
        env.server_url()
            .is_some_and(|u| u.starts_with("https://127.0.0.1:"))
    );
    let startup = env.startup_duration().expect("startup time");
    eprintln!("control plane ready in {startup:?}");
    for pid in &pids {
        assert!(!process_is_dead(*pid), "{pid} should run");
    }

    drop(env);
    assert_eq!(
        wait_dead(&pids, 0).await,
        Vec::<u32>::new(),
        "drop kills and reaps"
    );
    for pid in &pids {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "{pid} was reaped, not left a zombie"
        );
    }
    assert!(!dir.exists(), "{} removed", dir.display());
}

#[tokio::test]
async fn a_failing_binary_is_named_with_its_last_log_lines() {
    if skipped("a_failing_binary_is_named_with_its_last_log_lines") {
        return;
    }
    let err = TestEnv::builder()
        .apiserver_arg("--no-such-flag=1")
        .start()
        .await
        .expect_err("an unknown flag makes kube-apiserver exit");
    let text = err.to_string();
    match &err {
        Error::Process(failure) => {
            assert_eq!(failure.binary, "kube-apiserver", "{text}");
            assert!(failure.tail.contains("no-such-flag"), "{text}");
            assert!(failure.log.ends_with("kube-apiserver.log"), "{text}");
        }
        other => panic!("expected a process failure, got {other}"),
    }
    assert!(
        text.contains("kube-apiserver") && text.contains("exited during startup"),
        "{text}"
    );
}

#[tokio::test]
async fn missing_binaries_are_reported_by_name() {
    if skipped("missing_binaries_are_reported_by_name") {
        return;
    }
    let nowhere = std::env::temp_dir().join("bosun-testenv-no-binaries-here");
    let err = TestEnv::builder()
        .assets(assets::in_dir(&nowhere, AssetsOrigin::KubebuilderAssets))
        .start()
        .await
        .expect_err("no binaries");
    let text = err.to_string();
    assert!(
        text.contains("etcd") && text.contains("could not be started"),
        "{text}"
    );

    let incomplete = assets::AssetsError::NotBuilt { dir: nowhere }.to_string();
    assert!(
        incomplete.contains("cargo xtask control-plane"),
        "{incomplete}"
    );
}

#[tokio::test]
async fn startup_timeout_is_reported_with_both_logs() {
    if skipped("startup_timeout_is_reported_with_both_logs") {
        return;
    }
    let err = TestEnv::builder()
        .start_timeout(Duration::from_millis(1))
        .start()
        .await
        .expect_err("1 ms is too short");
    match err {
        Error::NotReady(details) => {
            assert!(details.apiserver_log.ends_with("kube-apiserver.log"));
            assert!(details.etcd_log.ends_with("etcd.log"));
        }
        other => panic!("expected NotReady, got {other}"),
    }
}

/// Kills the child test if the parent test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this test binary again as a child that starts a control plane, writes
/// the pids, then gets SIGKILLed (or panics); no process may survive it.
#[tokio::test]
async fn killed_or_panicking_test_leaves_no_processes() {
    if skipped("killed_or_panicking_test_leaves_no_processes") {
        return;
    }
    for mode in ["kill", "panic"] {
        let dir =
            std::env::temp_dir().join(format!("bosun-testenv-child-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pidfile = dir.join("pids");
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--exact",
                    "child_holds_a_control_plane",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_PIDFILE, &pidfile)
                .env(CHILD_MODE, mode)
                .env("RUST_BACKTRACE", "0")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.join("child.log")).expect("child log"))
                .spawn()
                .expect("spawn child test"),
        );
        let (pids, env_dir) = common::within("the child's pid file", 90, async {
            loop {
                if let Ok(text) = std::fs::read_to_string(&pidfile)
                    && text.ends_with('\n')
                {
                    let mut lines: Vec<&str> = text.lines().collect();
                    let env_dir = PathBuf::from(lines.pop().expect("dir line"));
                    let pids = lines
                        .iter()
                        .map(|l| l.parse::<u32>().expect("pid"))
                        .collect::<Vec<_>>();
                    break (pids, env_dir);
                }
                if let Ok(Some(status)) = child.0.try_wait() {
                    panic!("child test exited early: {status}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(pids.len(), 2);
        if mode == "kill" {
            child.0.kill().expect("SIGKILL the child test");
        }
        let status = child.0.wait().expect("wait child");
        assert!(!status.success(), "{mode}: child should die or fail");
        let alive = wait_dead(&pids, 10).await;
        let log = std::fs::read_to_string(dir.join("child.log")).unwrap_or_default();
        assert!(
            alive.is_empty(),
            "{mode}: processes {alive:?} outlived their test; child output:\n{log}"
        );
        if mode == "panic" {
            assert!(!env_dir.exists(), "unwinding removed {}", env_dir.display());
        }
        // A SIGKILLed process cannot clean up its temporary directory.
        let _ = std::fs::remove_dir_all(&env_dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Helper for the test above; does nothing unless run by it.
#[tokio::test]
#[ignore = "run by killed_or_panicking_test_leaves_no_processes"]
async fn child_holds_a_control_plane() {
    let Some(pidfile) = std::env::var_os(CHILD_PIDFILE) else {
        return;
    };
    let env = start().await;
    let mut pids: String = env
        .pids()
        .iter()
        .map(|(_, pid)| format!("{pid}\n"))
        .collect();
    pids.push_str(&format!("{}\n", env.dir().expect("dir").display()));
    let tmp = PathBuf::from(&pidfile).with_extension("tmp");
    std::fs::write(&tmp, pids).expect("write pids");
    std::fs::rename(&tmp, &pidfile).expect("publish pids");
    if std::env::var(CHILD_MODE).is_ok_and(|m| m == "panic") {
        panic!("child test panics with a live control plane (expected)");
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(env);
}
