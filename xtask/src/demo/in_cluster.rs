//! The demo's chapter on a real node only: the host itself as a Pod. The
//! image `cargo xtask image` builds (here from the debug binary the demo
//! already built, so no release build), loaded into the node's containerd
//! under the name `deploy/base` uses, and `deploy/overlays/examples`
//! applied as README says: two replicas Ready under the restricted Pod
//! Security profile, one holding the Lease. Then scaled to zero, so the
//! demo's own `bosun run` stays the one host running modules.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bosun_testenv::node::Node;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use super::{done, step, wait_until};

const NAMESPACE: &str = "bosun-system";

pub(super) async fn tell(
    client: &Client,
    kubeconfig: &Path,
    node: &Node,
    bosun: &Path,
) -> Result<()> {
    step(
        "the host itself as a Pod: the image `cargo xtask image` builds, loaded into the node's containerd",
    );
    let Some(kubectl) = bosun_testenv::tools::find("kubectl") else {
        done(
            "skipped: kubectl is not on PATH (this chapter applies deploy/overlays/examples with it)",
        );
        return Ok(());
    };
    let started = Instant::now();
    let out = bosun_testenv::guests::target_dir().join("demo-image");
    let options = xtask::image::Options::new(bosun.to_owned(), out)?;
    let image = tokio::task::spawn_blocking(move || xtask::image::build(&options))
        .await
        .context("building the image")??;
    node.load_image(&image.archive, "ghcr.io/bosun-dev/bosun")
        .context("loading the image into containerd")?;
    done(&format!(
        "ghcr.io/bosun-dev/bosun:{} ({}, {:.1} MiB compressed, from the debug binary with its DWARF stripped) imported in {:.1}s, no registry involved",
        image.tag,
        &image.manifest.digest[..19],
        image.compressed_size() as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    ));

    step("kubectl apply --server-side -k deploy/overlays/examples");
    let root = bosun_testenv::guests::workspace_root();
    kubectl_run(
        &kubectl,
        kubeconfig,
        &["apply", "--server-side", "-k"],
        &root.join("deploy/overlays/examples"),
    )?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    wait_until("2 bosun Pods Ready", || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=bosun"))
            .await?;
        Ok(list.items.len() == 2
            && list.items.iter().all(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }))
    })
    .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let holder = || async {
        Ok::<_, anyhow::Error>(
            leases
                .get_opt("bosun-leader")
                .await?
                .and_then(|l| l.spec?.holder_identity)
                .and_then(|h| h.split('_').next().map(str::to_owned))
                .unwrap_or_default(),
        )
    };
    wait_until("a replica holding the Lease", || async {
        Ok(!holder().await?.is_empty())
    })
    .await?;
    let holder = holder().await?;
    done(&format!(
        "2 replicas Ready as user 65532 on a read-only root, restricted Pod Security enforced; {holder} holds the Lease bosun-leader, the other stands by (kubectl -n {NAMESPACE} get pods,leases)"
    ));

    step(&format!(
        "scaling it to 0 (kubectl -n {NAMESPACE} scale deployment bosun --replicas=0): the demo's own bosun run stays the one host running modules"
    ));
    let scaled = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "-n",
            NAMESPACE,
            "scale",
            "deployment",
            "bosun",
            "--replicas=0",
        ])
        .output()
        .context("running kubectl scale")?;
    if !scaled.status.success() {
        bail!(
            "kubectl scale failed: {}",
            String::from_utf8_lossy(&scaled.stderr)
        );
    }
    wait_until("the bosun Pods gone", || async {
        Ok(pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=bosun"))
            .await?
            .items
            .is_empty())
    })
    .await?;
    done("the replicas stopped on SIGTERM, the leader releasing its Lease");
    Ok(())
}

fn kubectl_run(kubectl: &Path, kubeconfig: &Path, args: &[&str], target: &Path) -> Result<()> {
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .arg(target)
        .output()
        .context("running kubectl")?;
    if !out.status.success() {
        bail!(
            "kubectl {} {} failed: {}",
            args.join(" "),
            target.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The page a Service serves at `ip:port`, fetched from the machine (the
/// route to the Service range goes into the node), or why not.
pub(super) async fn get_page(ip: &str, port: u16) -> String {
    let address = format!("{ip}:{port}");
    let mut last = String::from("no answer");
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_secs(2), fetch_once(&address)).await {
            Ok(Ok(answer)) => return answer,
            Ok(Err(e)) => last = format!("no answer: {e}"),
            Err(_) => last = "no answer within 2s".into(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    last
}

async fn fetch_once(address: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    if !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            answer.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    Ok(answer)
}
