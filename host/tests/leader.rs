//! Leader election against the real kube-apiserver of the test harness: each
//! test campaigns on its own Lease with short timings (lease 3 s, renew
//! deadline 2 s, retry 0.5 s unless said otherwise) and checks what a user
//! of `--leader-elect` would notice: who leads, and how soon another host
//! takes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bosun::leader::{ConfigError, LeaderConfig, LeaderElection};
use bosun_testenv::TestEnv;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

const NAMESPACE: &str = "default";

/// The whole suite is skipped only when this is set to `1`, as in the
/// harness's own tests.
const SKIP_ENV: &str = "BOSUN_SKIP_E2E";

async fn env(test: &str) -> Option<&'static TestEnv> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped because {SKIP_ENV}=1");
        return None;
    }
    match TestEnv::shared().await {
        Ok(env) => Some(env),
        Err(e) => panic!("control plane failed to start:\n{e}"),
    }
}

/// A client of its own per elector, as separate hosts would have.
async fn client(env: &TestEnv) -> Client {
    env.new_client()
        .await
        .expect("client for the test control plane")
}

/// A Lease name no other test (or earlier run) uses.
fn lease_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

fn config(lease: &str, identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_name: lease.to_owned(),
        namespace: NAMESPACE.to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
    }
}

fn start(client: Client, config: LeaderConfig) -> (LeaderElection, watch::Receiver<bool>) {
    LeaderElection::start(client, config).expect("valid leader config")
}

/// Waits until the receiver shows `leading`, failing after `limit`.
async fn wait_for(rx: &mut watch::Receiver<bool>, leading: bool, limit: Duration, what: &str) {
    let waited = timeout(limit, rx.wait_for(|&v| v == leading)).await;
    match waited {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => panic!("{what}: election ended"),
        Err(_) => panic!("{what}: not {leading} within {limit:?}"),
    }
}

/// `true` if the receiver turns `true` at any point within `span`.
async fn ever_leads(rx: &mut watch::Receiver<bool>, span: Duration) -> bool {
    timeout(span, rx.wait_for(|&v| v))
        .await
        .is_ok_and(|r| r.is_ok())
}

async fn holder(client: &Client, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let lease = api.get(lease).await.expect("read lease");
    lease.spec.and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn only_one_of_two_electors_leads_and_the_lease_names_it() {
    let Some(env) = env("only_one_of_two_electors_leads").await else {
        return;
    };
    let lease = lease_name("leader-one-of-two");
    let (a, mut a_rx) = start(client(env).await, config(&lease, "host-a"));
    let (b, mut b_rx) = start(client(env).await, config(&lease, "host-b"));

    let first = timeout(Duration::from_secs(10), async {
        tokio::select! {
            r = a_rx.wait_for(|&v| v) => { r.expect("a's election ended"); "host-a" }
            r = b_rx.wait_for(|&v| v) => { r.expect("b's election ended"); "host-b" }
        }
    })
    .await
    .expect("someone leads within 10 s");
    let (leader_rx, follower_rx) = if first == "host-a" {
        (&mut a_rx, &mut b_rx)
    } else {
        (&mut b_rx, &mut a_rx)
    };

    // Over two lease durations (so several renewals), the follower never
    // leads and the leader never stops.
    assert!(
        !ever_leads(follower_rx, Duration::from_secs(6)).await,
        "both electors led at once"
    );
    assert!(*leader_rx.borrow(), "{first} stopped leading while healthy");
    assert_eq!(
        holder(&client(env).await, &lease).await.as_deref(),
        Some(first),
        "Lease holderIdentity names the leader"
    );

    a.step_down().await;
    b.step_down().await;
}

#[tokio::test]
async fn another_elector_takes_over_after_the_leader_crashes() {
    let Some(env) = env("another_elector_takes_over_after_crash").await else {
        return;
    };
    let lease = lease_name("leader-crash");
    let (a, mut a_rx) = start(client(env).await, config(&lease, "host-a"));
    wait_for(&mut a_rx, true, Duration::from_secs(10), "host-a").await;
    let (b, mut b_rx) = start(client(env).await, config(&lease, "host-b"));
    assert!(!ever_leads(&mut b_rx, Duration::from_secs(1)).await);

    // A crash: the task dies and the Lease still names host-a.
    a.abort();
    let crashed = Instant::now();
    assert!(
        !*a_rx.borrow(),
        "an aborted elector does not report leading"
    );
    assert_eq!(
        holder(&client(env).await, &lease).await.as_deref(),
        Some("host-a")
    );

    // Lease duration (3 s), plus the follower's retry period with jitter
    // and request latency.
    wait_for(
        &mut b_rx,
        true,
        Duration::from_secs(6),
        "host-b after crash",
    )
    .await;
    let took = crashed.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "host-b took over after {took:?}, before host-a's lease could expire"
    );
    assert_eq!(
        holder(&client(env).await, &lease).await.as_deref(),
        Some("host-b")
    );
    b.step_down().await;
}

#[tokio::test]
async fn graceful_step_down_hands_over_without_waiting_for_expiry() {
    let Some(env) = env("graceful_step_down_hands_over").await else {
        return;
    };
    let lease = lease_name("leader-step-down");
    // A long lease makes "before it would have expired" unmistakable.
    let long = |identity| LeaderConfig {
        lease_duration: Duration::from_secs(20),
        renew_deadline: Duration::from_secs(10),
        ..config(&lease, identity)
    };
    let (a, mut a_rx) = start(client(env).await, long("host-a"));
    wait_for(&mut a_rx, true, Duration::from_secs(10), "host-a").await;
    let (b, mut b_rx) = start(client(env).await, long("host-b"));
    assert!(!ever_leads(&mut b_rx, Duration::from_secs(1)).await);

    let stepping = Instant::now();
    a.step_down().await;
    assert!(!*a_rx.borrow(), "host-a no longer leads after step_down");
    wait_for(
        &mut b_rx,
        true,
        Duration::from_secs(5),
        "host-b after step_down",
    )
    .await;
    let took = stepping.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "handover took {took:?}; the lease would have expired after 20 s"
    );
    assert_eq!(
        holder(&client(env).await, &lease).await.as_deref(),
        Some("host-b")
    );
    b.step_down().await;
}

/// The strongest promise: a leader cut off from the API server (its
/// requests hang) stops leading by its renew deadline, before another host
/// can take the Lease, so the two never lead at once.
#[tokio::test]
async fn partitioned_leader_steps_down_before_another_takes_over() {
    let Some(env) = env("partitioned_leader_steps_down").await else {
        return;
    };
    let lease = lease_name("leader-partition");
    let proxy = Blackhole::start(env).await;
    let (a, mut a_rx) = start(proxy.client(env).await, config(&lease, "host-a"));
    wait_for(&mut a_rx, true, Duration::from_secs(10), "host-a").await;
    let (b, mut b_rx) = start(client(env).await, config(&lease, "host-b"));
    assert!(!ever_leads(&mut b_rx, Duration::from_secs(1)).await);

    proxy.cut();
    let cut = Instant::now();
    // Renew deadline (2 s) from the last renewal, which began before the cut.
    wait_for(
        &mut a_rx,
        false,
        Duration::from_secs(3),
        "host-a after the cut",
    )
    .await;
    let stepped_down = cut.elapsed();
    wait_for(
        &mut b_rx,
        true,
        Duration::from_secs(8),
        "host-b after the cut",
    )
    .await;
    let took_over = cut.elapsed();
    assert!(
        !*a_rx.borrow(),
        "host-a leads again although it cannot reach the API server"
    );
    assert!(
        stepped_down < took_over,
        "host-a stepped down after {stepped_down:?}, host-b led after {took_over:?}"
    );

    a.abort();
    b.step_down().await;
}

#[tokio::test]
async fn invalid_configs_are_rejected() {
    let base = config("leader-invalid", "host-a");
    assert_eq!(base.validate(), Ok(()));
    assert_eq!(LeaderConfig::default().validate(), Ok(()));

    let cases = [
        (
            LeaderConfig {
                renew_deadline: Duration::from_secs(3),
                ..base.clone()
            },
            "renew deadline equal to the lease duration",
        ),
        (
            LeaderConfig {
                retry_period: Duration::from_secs(2),
                ..base.clone()
            },
            "retry period equal to the renew deadline",
        ),
        (
            LeaderConfig {
                retry_period: Duration::ZERO,
                ..base.clone()
            },
            "zero retry period",
        ),
        (
            LeaderConfig {
                identity: String::new(),
                ..base.clone()
            },
            "empty identity",
        ),
        (
            LeaderConfig {
                lease_name: "Bosun_Leader".into(),
                ..base.clone()
            },
            "lease name the API server would refuse",
        ),
    ];
    for (config, what) in &cases {
        assert!(config.validate().is_err(), "{what} was accepted");
    }
    assert!(matches!(
        cases[0].0.validate(),
        Err(ConfigError::RenewDeadlineNotBelowLeaseDuration { .. })
    ));
    assert!(matches!(
        cases[1].0.validate(),
        Err(ConfigError::RetryPeriodNotBelowRenewDeadline { .. })
    ));

    // start() refuses too, before touching the cluster: this client points
    // at a port nothing listens on.
    let nowhere = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
    let client = Client::try_from(nowhere).expect("client");
    let err = LeaderElection::start(client, cases[0].0.clone()).map(|_| ());
    assert!(matches!(
        err,
        Err(ConfigError::RenewDeadlineNotBelowLeaseDuration { .. })
    ));
}

/// A TCP proxy in front of the API server that can be cut: afterwards it
/// forwards nothing but keeps every connection open, so requests hang as
/// they would behind a network partition.
struct Blackhole {
    port: u16,
    cut: Arc<AtomicBool>,
    cut_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    async fn start(env: &TestEnv) -> Blackhole {
        let upstream = env
            .server_url()
            .and_then(|u| u.strip_prefix("https://"))
            .expect("a control plane started by the harness")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let (cut_tx, cut_rx) = watch::channel(false);
        let is_cut = Arc::clone(&cut);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((downstream, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    held.push(downstream);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let mut down = downstream;
                    let cut = async { cut_rx.wait_for(|&c| c).await.is_ok() };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => return,
                        _ = cut => {}
                    }
                    // Hold both ends open, silently, until the proxy is dropped.
                    let _ = cut_rx.changed().await;
                });
            }
        });
        Blackhole {
            port,
            cut,
            cut_tx,
            task,
        }
    }

    async fn client(&self, env: &TestEnv) -> Client {
        let path = env.kubeconfig_path().expect("kubeconfig");
        let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kube config");
        // The serving certificate names 127.0.0.1, so TLS verifies through
        // the proxy as it does directly.
        config.cluster_url = format!("https://127.0.0.1:{}", self.port)
            .parse()
            .expect("proxy url");
        Client::try_from(config).expect("client through the proxy")
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cut_tx.send_replace(true);
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
