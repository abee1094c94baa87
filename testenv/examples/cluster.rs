//! A throwaway control plane for trying things by hand:
//! `cargo run -p bosun-testenv --example cluster`, then
//! `KUBECONFIG=<printed path> kubectl …`. Ctrl-C tears it down.
//!
//! With `-- --node`, a real node beside it (root and the packages
//! `.ci/run` installs): `kubectl run hello --image=busybox --restart=Never
//! -- echo hi` runs. It prints how long the node took and what its
//! processes hold in memory.

use bosun_testenv::TestEnv;
use bosun_testenv::node::NodeOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = std::env::args().any(|a| a == "--node");
    let mut builder = TestEnv::builder();
    if node {
        builder = builder.node(NodeOptions::default());
    }
    let env = builder.start().await?;
    if let Some(node) = env.node() {
        println!(
            "node {} Ready {:.1}s after the API server; the control plane and node in {:.1}s",
            node.name(),
            node.startup_duration().as_secs_f64(),
            env.startup_duration().unwrap_or_default().as_secs_f64()
        );
        println!(
            "resident memory: {:.0} MiB (the node's cgroup, kube-controller-manager, kube-scheduler, the mirror), {:.0} MiB (kube-apiserver and etcd)",
            node.resident_bytes() as f64 / (1 << 20) as f64,
            env.pids()
                .iter()
                .map(|(_, pid)| bosun_testenv::node::resident_bytes_of(*pid))
                .sum::<u64>() as f64
                / (1 << 20) as f64
        );
    }
    let kubeconfig = env
        .kubeconfig_path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("export KUBECONFIG={kubeconfig}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
