//! README's tested blocks, run as a user would type them: each block whole
//! (`sh -e`), in a directory that stands for the repository's root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::root;

/// The tested block `name` of README.md, as written.
pub fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let marker = format!("<!-- tested: {name} -->");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no block marked {marker}"));
    let block = readme[start + marker.len()..]
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block right after the marker");
    block[..block.find("```").expect("the block ends")].to_owned()
}

/// Where the blocks run: a directory inside the workspace (so `cargo
/// build -p …` finds it) whose `deploy`, `charts`, `examples` and
/// `target` are the repository's, and whose `my-bosun` is the test's.
pub fn workdir() -> PathBuf {
    let dir = bosun_testenv::guests::target_dir().join("install-walkthrough");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("removing the last walkthrough");
    }
    std::fs::create_dir_all(&dir).expect("the walkthrough directory");
    for link in ["deploy", "charts", "examples"] {
        std::os::unix::fs::symlink(root().join(link), dir.join(link)).expect("a link");
    }
    std::os::unix::fs::symlink(bosun_testenv::guests::target_dir(), dir.join("target"))
        .expect("a link");
    dir
}

/// Runs a README block with `sh -e` in `dir`, failing the test (with its
/// output) if it fails or takes longer than `timeout`.
pub fn run_block(name: &str, dir: &Path, kubeconfig: &Path, timeout: Duration) -> String {
    let script = readme_block(name);
    let bosun = bosun_testenv::guests::host_binary().expect("bosun builds");
    let path = format!(
        "{}:{}",
        bosun.parent().expect("bosun's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).expect("a log file");
    let mut command = Command::new("sh");
    command
        .arg("-ec")
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("a log file"))
        .stderr(out);
    // Without the variables cargo set for this test, which would make the
    // block's `cargo build` rebuild what the outer one built.
    for (variable, value) in bosun_testenv::guests::cargo().get_envs() {
        if value.is_none() {
            command.env_remove(variable);
        }
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("sh starts");
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for sh") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "--- README block {name} ({:.1}s)\n{script}--- its output\n{output}",
        started.elapsed().as_secs_f64()
    );
    match status {
        Some(status) if status.success() => output,
        Some(status) => panic!("README block {name} failed ({status}):\n{output}"),
        None => panic!("README block {name} took more than {timeout:?}:\n{output}"),
    }
}
