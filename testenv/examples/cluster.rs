//! A throwaway control plane for trying things by hand:
//! `cargo run -p bosun-testenv --example cluster`, then
//! `KUBECONFIG=<printed path> kubectl …`. Ctrl-C tears it down.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = bosun_testenv::TestEnv::start().await?;
    let kubeconfig = env
        .kubeconfig_path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("export KUBECONFIG={kubeconfig}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
