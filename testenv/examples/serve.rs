//! Starts a control plane and keeps it up until Ctrl-C, printing how to reach it.
//!
//! ```sh
//! cargo run -p bosun-testenv --example serve
//! kubectl --kubeconfig <printed path> get ns
//! ```
//!
//! With `--exit-after <seconds>` it stops by itself (used to measure startup
//! time and idle memory).

use std::time::Duration;

use bosun_testenv::TestEnv;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let exit_after = match (args.next().as_deref(), args.next()) {
        (Some("--exit-after"), Some(secs)) => Some(Duration::from_secs(secs.parse()?)),
        (None, _) => None,
        _ => return Err("usage: serve [--exit-after <seconds>]".into()),
    };

    let env = TestEnv::start().await?;
    if let Some(startup) = env.startup_duration() {
        println!(
            "ready in {:.2}s at {}",
            startup.as_secs_f64(),
            env.server_url().unwrap_or("?")
        );
    }
    if let Some(kubeconfig) = env.kubeconfig_path() {
        println!("export KUBECONFIG={}", kubeconfig.display());
    }
    for (name, pid) in env.pids() {
        println!("{name}: pid {pid}");
    }
    match exit_after {
        Some(after) => tokio::time::sleep(after).await,
        None => {
            println!("Ctrl-C stops it");
            tokio::signal::ctrl_c().await?;
        }
    }
    for (name, pid) in env.pids() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let rss = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .unwrap_or("VmRSS: ?");
            println!(
                "{name}: {}",
                rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
            );
        }
    }
    drop(env);
    Ok(())
}
