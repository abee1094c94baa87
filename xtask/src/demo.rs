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
//! There is no kubelet and no Deployment controller here, so the demo plays
//! them where the story needs it: it marks the cnat Pod Succeeded and the
//! WebApp's Deployment ready.

mod reads;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bosun_testenv::dns::RecordKind;
use bosun_testenv::{PowerDns, TestEnv};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const NAMESPACE: &str = "demo";

/// Where `examples/dnsrecord` reaches the PowerDNS API unless built for
/// another origin: the demo's PowerDNS serves its API there.
const DNS_API_PORT: u16 = 8081;
const DNS_ZONE: &str = "demo.example.";

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
        step("starting kube-apiserver and etcd");
        let env = TestEnv::start()
            .await
            .context("starting the control plane")?;
        let kubeconfig = env
            .kubeconfig_path()
            .context("the control plane wrote no kubeconfig")?
            .to_owned();
        done(&format!(
            "API server at {} in {:.1}s",
            env.server_url().unwrap_or("?"),
            env.startup_duration().unwrap_or_default().as_secs_f64()
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

        let dns = start_powerdns();
        let story = async {
            tell(&client, &modules, &webapp_next).await?;
            reads::tell(&client, port).await?;
            match &dns {
                Ok(pdns) => tell_dns(&client, pdns, &guests.join("dnsrecord.wasm")).await,
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

async fn tell(
    client: &Client,
    modules: &std::path::Path,
    webapp_next: &std::path::Path,
) -> Result<()> {
    let ats = api(
        client,
        "cnat.programming-kubernetes.info",
        "v1alpha1",
        "At",
        "ats",
    );
    let apps = api(
        client,
        "examples.bosun.dev",
        "v1alpha1",
        "WebApp",
        "webapps",
    );
    let deployments = api(client, "apps", "v1", "Deployment", "deployments");
    let services = api(client, "", "v1", "Service", "services");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);

    let schedule = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    step(&format!(
        "cnat: creating At `example-at`, due at {schedule} (in 8s), command `echo YAY`"
    ));
    ats.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
            "metadata": {"name": "example-at"},
            "spec": {"schedule": schedule, "command": "echo YAY"}
        }))?,
    )
    .await?;
    wait_until("At phase PENDING", || async {
        Ok(phase(&ats, "example-at").await? == "PENDING")
    })
    .await?;
    done("status.phase = PENDING; no Pod yet, requeued for the due time");
    wait_until("the Pod", || async {
        Ok(pods.get_opt("example-at-pod").await?.is_some())
    })
    .await?;
    let pod = pods.get("example-at-pod").await?;
    let container = &pod.spec.as_ref().context("pod spec")?.containers[0];
    done(&format!(
        "Pod example-at-pod created: image {}, command {:?}, owned by At {}",
        container.image.as_deref().unwrap_or("?"),
        container.command.clone().unwrap_or_default(),
        pod.metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .map_or("?", |o| o.name.as_str())
    ));
    wait_until("At phase RUNNING", || async {
        Ok(phase(&ats, "example-at").await? == "RUNNING")
    })
    .await?;
    done("status.phase = RUNNING");
    step("playing the kubelet: the Pod ran `echo YAY` and Succeeded");
    pods.patch_status(
        "example-at-pod",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await?;
    wait_until("At phase DONE", || async {
        Ok(phase(&ats, "example-at").await? == "DONE")
    })
    .await?;
    done("status.phase = DONE");

    step("webapp: creating WebApp `shop` (nginx, 2 replicas, port 8080)");
    apps.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop"},
            "spec": {"image": "nginx:1.27", "replicas": 2, "port": 8080}
        }))?,
    )
    .await?;
    wait_until("the Deployment and the Service", || async {
        Ok(deployments.get_opt("shop").await?.is_some()
            && services.get_opt("shop").await?.is_some())
    })
    .await?;
    done("Deployment shop and Service shop created; Ready=False (0 of 2 replicas ready)");
    step("playing the Deployment controller: 2 replicas ready");
    deployments
        .patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2}})),
        )
        .await?;
    wait_until("Ready=True", || async {
        Ok(apps
            .get("shop")
            .await?
            .data
            .pointer("/status/conditions/0/status")
            == Some(&json!("True")))
    })
    .await?;
    done("WebApp shop: Ready=True, readyReplicas 2");
    step("removing spec.port from the WebApp");
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"port": null}})),
    )
    .await?;
    wait_until("the Service pruned", || async {
        Ok(services.get_opt("shop").await?.is_none())
    })
    .await?;
    done("Service shop pruned; the Deployment stays");

    step(
        "the trust boundary: a WebApp named `kubernetes` in `default` wants the API server's own Service",
    );
    let defaults = api_in(
        client,
        "default",
        "examples.bosun.dev",
        "v1alpha1",
        "WebApp",
        "webapps",
    );
    let default_services = api_in(client, "default", "", "v1", "Service", "services");
    let before = default_services
        .get("kubernetes")
        .await?
        .metadata
        .resource_version;
    defaults
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
                "metadata": {"name": "kubernetes"},
                "spec": {"image": "nginx", "replicas": 1, "port": 8080}
            }))?,
        )
        .await?;
    let refusal = || async {
        let app = defaults.get("kubernetes").await?;
        Ok::<_, anyhow::Error>(
            app.data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Reconciled"))
                .and_then(|c| c["message"].as_str())
                .map(str::to_owned),
        )
    };
    wait_until("the refusal on the WebApp", || async {
        Ok(refusal().await?.is_some())
    })
    .await?;
    let refusal = refusal().await?.unwrap_or_default();
    let after = default_services
        .get("kubernetes")
        .await?
        .metadata
        .resource_version;
    anyhow::ensure!(before == after, "the kubernetes Service was written");
    done(&format!("Reconciled=False, ChildExists: {refusal}"));
    done(
        "the kubernetes Service is untouched (same resourceVersion); `kubectl -n default describe webapp kubernetes` shows the Warning event",
    );
    defaults
        .delete("kubernetes", &kube::api::DeleteParams::default())
        .await?;

    step("hot swap: dropping a new version of webapp (revision 2) into the modules directory");
    let staging = modules.join(".webapp.wasm.partial");
    std::fs::copy(webapp_next, &staging)?;
    let swapped = Instant::now();
    std::fs::rename(&staging, modules.join("webapp.wasm"))?;
    wait_until("the Deployment reconciled by the new version", || async {
        let deployment = deployments.get("shop").await?;
        Ok(deployment
            .labels()
            .get("examples.bosun.dev/revision")
            .map(String::as_str)
            == Some("2"))
    })
    .await?;
    done(&format!(
        "WebApp shop reconciled again by webapp 0.1.0+rev2 {} ms after the file landed; its Deployment now carries examples.bosun.dev/revision=2",
        swapped.elapsed().as_millis()
    ));

    Ok(())
}

/// PowerDNS on the port dnsrecord reaches by default, or why not.
fn start_powerdns() -> std::result::Result<PowerDns, String> {
    if !PowerDns::installed() {
        return Err(format!(
            "PowerDNS is not installed here (`{}` adds this chapter)",
            bosun_testenv::powerdns::INSTALL
        ));
    }
    PowerDns::start_at(DNS_API_PORT).map_err(|e| {
        format!("PowerDNS did not start with its API on 127.0.0.1:{DNS_API_PORT}: {e}")
    })
}

/// The DNS-record operator: a ReconcilerModule granted the PowerDNS API's
/// origin, its key bound from a Secret; a DnsRecord served over DNS; its
/// deletion held until the record is gone from PowerDNS.
async fn tell_dns(client: &Client, pdns: &PowerDns, wasm: &std::path::Path) -> Result<()> {
    step(&format!(
        "dnsrecord: PowerDNS runs on 127.0.0.1 (API {}, DNS {}), zone {DNS_ZONE}; its API key goes into Secret {NAMESPACE}/pdns-api",
        pdns.api_url(),
        pdns.dns_address()
    ));
    pdns.create_zone(DNS_ZONE)
        .map_err(|e| anyhow::anyhow!("creating the zone: {e}"))?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pdns-api"},
        "stringData": {"api-key": pdns.api_key()},
    }))?;
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    let module = object(json!({
        "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
        "metadata": {"name": "dnsrecord"},
        "spec": {
            "source": {"file": {"path": wasm}},
            "permissions": {
                "reconciles": {"group": "examples.bosun.dev", "kind": "DnsRecord"},
                "finalizer": "examples.bosun.dev/dns-record",
                "http": [{
                    "origin": pdns.api_url(),
                    "credentials": {
                        "header": "X-API-Key",
                        "secretRef": {"namespace": NAMESPACE, "name": "pdns-api", "key": "api-key"},
                    },
                }],
            },
            "settings": {"apiUrl": pdns.api_url()},
        },
    }))?;
    let modules: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "bosun.dev".into(),
            version: "v1alpha1".into(),
            api_version: "bosun.dev/v1alpha1".into(),
            kind: "ReconcilerModule".into(),
            plural: "reconcilermodules".into(),
        },
    );
    modules.create(&PostParams::default(), &module).await?;
    let loaded = || async {
        let module = modules.get("dnsrecord").await?;
        Ok::<_, anyhow::Error>(
            module
                .data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Loaded"))
                .map(|c| {
                    (
                        c["status"] == "True",
                        c["message"].as_str().unwrap_or_default().to_owned(),
                    )
                }),
        )
    };
    wait_until("ReconcilerModule dnsrecord loaded", || async {
        Ok(loaded().await?.is_some())
    })
    .await?;
    match loaded().await? {
        Some((true, _)) => done(&format!(
            "ReconcilerModule dnsrecord Loaded, granted {} only; the host adds the X-API-Key header, the module never sees the key",
            pdns.api_url()
        )),
        Some((false, why)) => bail!("ReconcilerModule dnsrecord did not load: {why}"),
        None => bail!("ReconcilerModule dnsrecord has no Loaded condition"),
    }

    step("dnsrecord: creating DnsRecord `www` (www.demo.example. A 192.0.2.10, ttl 300)");
    let records = api(
        client,
        "examples.bosun.dev",
        "v1alpha1",
        "DnsRecord",
        "dnsrecords",
    );
    records
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "DnsRecord",
                "metadata": {"name": "www"},
                "spec": {"zone": "demo.example", "name": "www", "type": "A", "ttl": 300, "content": ["192.0.2.10"]}
            }))?,
        )
        .await?;
    let answer = || {
        pdns.query("www.demo.example.", RecordKind::A)
            .map(|a| a.contents())
            .unwrap_or_default()
    };
    wait_until("PowerDNS to answer for www.demo.example.", || async {
        Ok(answer() == ["192.0.2.10"])
    })
    .await?;
    done(&format!(
        "asked over DNS, PowerDNS ({}) answers www.demo.example. A 192.0.2.10",
        pdns.dns_address()
    ));
    wait_until("the DnsRecord's Ready condition", || async {
        Ok(records
            .get("www")
            .await?
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }))
    })
    .await?;
    done("DnsRecord www: Ready=True, its status says what the API holds");

    step("dnsrecord: deleting DnsRecord `www`");
    records
        .delete("www", &kube::api::DeleteParams::default())
        .await?;
    wait_until("the DnsRecord gone", || async {
        Ok(records.get_opt("www").await?.is_none())
    })
    .await?;
    anyhow::ensure!(
        answer().is_empty(),
        "PowerDNS still answers for www.demo.example. after the DnsRecord went"
    );
    done("its finalizer deleted the record from PowerDNS first; DNS no longer answers for it");
    Ok(())
}

/// What the host counted, from its metrics.
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
