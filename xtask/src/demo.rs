//! `cargo xtask demo`: the main job, end to end. Builds (or reuses) the
//! control plane, the host and the example guests; starts kube-apiserver +
//! etcd; installs the CRDs; runs `bosun run` with the examples; creates
//! sample objects and shows, step by step, what the reconcilers did — a
//! Mirror following what it read ([`reads`]), and, when PowerDNS is
//! installed, the DNS-record operator changing
//! the world outside the cluster through outbound HTTP. Then it
//! leaves everything up, printing the kubeconfig, until Ctrl-C (or exits at
//! once with `--once`, which CI uses).
//!
//! Where the machine allows it (root, the packages `.ci/run` installs),
//! the control plane has a real node beside it ([`bosun_testenv::node`]):
//! the At's Pod runs `echo`, the Deployment controller and the kubelet run
//! the WebApp's nginx stand-ins, the garbage collector deletes what a
//! deleted primary owned, and the host itself is shown running as a Pod.
//! Elsewhere the demo says why there is no node and plays the kubelet and
//! the Deployment controller where the story needs them.

mod dns;
mod examples;
mod in_cluster;
mod reads;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bosun_testenv::TestEnv;
use bosun_testenv::node::NodeOptions;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use dns::DNS_ZONE;

const NAMESPACE: &str = "demo";

#[derive(clap::Args)]
pub struct Args {
    /// Exit when the story is told instead of keeping the cluster up.
    #[arg(long)]
    once: bool,
    /// Tell the story with `bosun reconcile` against files: no cluster.
    #[arg(long)]
    offline: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.offline {
        return crate::demo_offline::run();
    }
    let prepared = crate::prepare::prepare(step)?;
    let guests = prepared.guests;
    let bosun = prepared.bosun;
    let webapp_next =
        bosun_testenv::guests::webapp_next().context("finding the second webapp version")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let env = start_cluster().await?;
        let kubeconfig = env
            .kubeconfig_path()
            .context("the control plane wrote no kubeconfig")?
            .to_owned();
        done(&format!(
            "API server at {} ready in {:.1}s{}",
            env.server_url().unwrap_or("?"),
            env.startup_duration().unwrap_or_default().as_secs_f64(),
            env.node().map_or(String::new(), |node| format!(
                "; node {} Ready in {:.1}s of it (its Pods on 10.252.{}.0/24, Services on {})",
                node.name(),
                node.startup_duration().as_secs_f64(),
                node.network().slot,
                node.network().service_cidr
            ))
        ));
        let root = bosun_testenv::guests::workspace_root();
        step("installing the CRDs (At, WebApp, Mirror, DnsRecord, ReconcilerModule)");
        env.install_crds([
            root.join("examples/cnat/crd.yaml"),
            root.join("examples/webapp/crd.yaml"),
            root.join("examples/mirror/crd.yaml"),
            root.join("examples/dnsrecord/crd.yaml"),
            // So that `bosun push` (README: Writing a reconciler) loads
            // modules into the demo's host.
            root.join("deploy/base/reconcilermodule-crd.yaml"),
        ])
        .await?;
        let client = env.client();
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;

        step(
            "starting `bosun run`, watching a modules directory holding cnat.wasm, webapp.wasm and mirror.wasm",
        );
        let port = free_port()?;
        let log = env
            .dir()
            .map(|d| d.join("bosun.log"))
            .context("no environment directory")?;
        let modules = env
            .dir()
            .map(|d| d.join("modules"))
            .context("no environment directory")?;
        std::fs::create_dir_all(&modules)?;
        for name in ["cnat", "webapp", "mirror"] {
            let module = modules.join(format!("{name}.wasm"));
            std::fs::copy(guests.join(format!("{name}.wasm")), &module)?;
            // What each module may do is granted beside it; here, exactly
            // what it asks for, as `bosun inspect --grant` prints it —
            // mirror, which reads Secrets, within the demo namespace only.
            let grant = Command::new(&bosun)
                .args(["inspect", "--grant", "-o", "json"])
                .arg(&module)
                .output()
                .context("running bosun inspect --grant")?;
            anyhow::ensure!(
                grant.status.success(),
                "bosun inspect --grant {name}.wasm: {}",
                String::from_utf8_lossy(&grant.stderr)
            );
            let mut grant: Value = serde_json::from_slice(&grant.stdout)?;
            if name == "mirror" {
                grant["permissions"]["namespaces"] = json!([NAMESPACE]);
            }
            // JSON is YAML.
            std::fs::write(
                modules.join(format!("{name}.grant.yaml")),
                serde_json::to_string_pretty(&grant)?,
            )?;
        }
        done(&format!("granted each module what `bosun inspect --grant` says it needs (cnat.grant.yaml, webapp.grant.yaml; mirror.grant.yaml confined to namespace {NAMESPACE})"));
        let log_file = std::fs::File::create(&log)?;
        let mut host = HostProcess(
            Command::new(&bosun)
                .arg("run")
                .args(["--modules-dir", &modules.display().to_string()])
                .arg("--modules-from-cluster")
                .args(["--telemetry-addr", &format!("127.0.0.1:{port}")])
                .env("KUBECONFIG", &kubeconfig)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .spawn()
                .context("starting bosun")?,
        );
        wait_ready(port, &mut host).await?;
        done(&format!(
            "ready; metrics at http://127.0.0.1:{port}/metrics, log in {}",
            log.display()
        ));

        let dns = dns::start_powerdns();
        let story = async {
            examples::tell(&client, &modules, &webapp_next, env.node()).await?;
            reads::tell(&client, port).await?;
            if let Some(node) = env.node() {
                in_cluster::tell(&client, &kubeconfig, node, &bosun).await?;
            }
            match &dns {
                Ok(pdns) => dns::tell_dns(&client, pdns, &guests.join("dnsrecord.wasm")).await,
                Err(why) => {
                    step("dnsrecord: the DNS operator (outbound HTTP to PowerDNS)");
                    done(&format!("skipped: {why}; the rest of the story does not need it"));
                    Ok(())
                }
            }?;
            count(port).await
        }
        .await;
        if let Err(error) = &story {
            eprintln!(
                "\nthe demo failed: {error:#}\n--- bosun log ---\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        story?;

        if args.once {
            step("done (--once): stopping bosun and the control plane");
            host.terminate();
            return Ok(());
        }
        println!("\nThe cluster stays up. Try:");
        println!("  export KUBECONFIG={}", kubeconfig.display());
        println!("  kubectl -n {NAMESPACE} get ats,webapps,mirrors,pods,deployments,services");
        if env.node().is_some() {
            println!("  kubectl -n {NAMESPACE} logs example-at-pod   # what the At's Pod printed");
            println!(
                "  kubectl -n bosun-system scale deployment bosun --replicas=2   # the host as Pods again (stop the demo's own first)"
            );
        }
        println!(
            "  kubectl -n {NAMESPACE} create configmap extra2 --from-literal=k=v && kubectl -n {NAMESPACE} label configmap extra2 app=shop   # then: kubectl -n {NAMESPACE} get mirror shop"
        );
        if let Ok(pdns) = &dns {
            println!(
                "  kubectl -n {NAMESPACE} apply -f examples/dnsrecord/samples/dnsrecord.yaml   # with zone: demo.example"
            );
            println!(
                "  curl -s -H 'X-API-Key: {}' {}/api/v1/servers/localhost/zones/{DNS_ZONE}",
                pdns.api_key(),
                pdns.api_url()
            );
        }
        println!("  bosun push MODULE.wasm --name NAME   # README: Writing a reconciler");
        println!("  curl -s 127.0.0.1:{port}/metrics | grep controller_runtime_reconcile_total");
        println!("Ctrl-C stops bosun and the control plane.");
        tokio::signal::ctrl_c().await?;
        host.terminate();
        Ok(())
    })
}

/// What the host counted, from its metrics.
/// The control plane, with a node beside it when this machine can run
/// one; otherwise (or if the node fails to start) the control plane
/// alone, saying why.
async fn start_cluster() -> Result<TestEnv> {
    match bosun_testenv::node::available() {
        Ok(()) => {
            step(
                "starting kube-apiserver and etcd, and a node beside them: kube-controller-manager, kube-scheduler, containerd, the kubelet and kube-proxy",
            );
            match TestEnv::builder()
                .node(NodeOptions::default())
                .start()
                .await
            {
                Ok(env) => return Ok(env),
                Err(e) => {
                    done(&format!(
                        "the node did not start, so the demo goes on without one: {e}"
                    ));
                }
            }
        }
        Err(why) => {
            step("starting kube-apiserver and etcd (no node)");
            done(&format!(
                "no real node here: {why}. The demo plays the kubelet and the Deployment controller where the story needs them"
            ));
        }
    }
    TestEnv::start().await.context("starting the control plane")
}

async fn count(port: u16) -> Result<()> {
    step("what the host counted");
    let metrics = http_get(port, "/metrics").await?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("controller_runtime_reconcile_total") || l.starts_with("workqueue_adds_total")
    }) {
        println!("    {line}");
    }
    Ok(())
}

fn api_in(
    client: &Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    api_in(client, NAMESPACE, group, version, kind, plural)
}

fn object(value: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(value)?)
}

async fn phase(ats: &Api<DynamicObject>, name: &str) -> Result<String> {
    let at = ats.get(name).await?;
    Ok(at
        .data
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("waited 60s for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn wait_ready(port: u16, host: &mut HostProcess) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(status) = host.0.try_wait()
            && let Some(status) = status
        {
            bail!("bosun exited during startup ({status})");
        }
        if http_get(port, "/readyz")
            .await
            .is_ok_and(|body| body.trim() == "ok")
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("bosun was not ready within 60s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The body of a 200 response, else an error.
async fn http_get(port: u16, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn done(text: &str) {
    println!("    ✓ {text}");
}

/// The bosun process; killed if the demo ends early.
struct HostProcess(Child);

impl HostProcess {
    fn terminate(&mut self) {
        // SIGTERM: the host finishes in-flight reconciles and exits.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
