//! The telemetry endpoints over real HTTP: bind a free port, serve, and ask
//! as Prometheus and the kubelet would.

use std::net::SocketAddr;
use std::time::Duration;

use bosun::telemetry::{Health, Metrics, ReconcileResult, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A response, as much of it as the tests look at.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 GET on a fresh connection. `Connection: close` makes the
/// server end the stream after the response, so reading to the end is the
/// whole response.
async fn get(address: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let raw = String::from_utf8(raw).expect("a UTF-8 response");

    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status code in {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let response = Response {
        status,
        headers,
        body: body.to_owned(),
    };
    // The bodies here are whole strings, which axum sends with a length; a
    // chunked body would need decoding this client does not do.
    assert_eq!(
        response.header("transfer-encoding"),
        None,
        "unexpected chunked response: {response:?}"
    );
    response
}

struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), bosun::telemetry::TelemetryError>>,
}

async fn start(metrics: Metrics, health: Health) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, metrics, health, async {
        let _ = stopped.await;
    }));
    Server {
        address,
        stop,
        task,
    }
}

impl Server {
    async fn shut_down(self) {
        let _ = self.stop.send(());
        // A hang guard, not a timing assertion: a server that ignores its
        // shutdown would otherwise hang the suite.
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("the serve task does not panic")
            .expect("serve returns Ok");
    }
}

#[tokio::test]
async fn metrics_are_served_in_openmetrics_format_with_controller_runtime_names() {
    let metrics = Metrics::new();
    let server = start(metrics.clone(), Health::new()).await;

    metrics.set_max_concurrent("cnat", 2);
    metrics.reconciled("cnat", ReconcileResult::Success, Duration::from_millis(1));
    metrics.reconciled("cnat", ReconcileResult::Success, Duration::from_millis(1));
    metrics.queue_observer("cnat").retried();

    let response = get(server.address, "/metrics").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let body = &response.body;
    for line in [
        r#"controller_runtime_reconcile_total{controller="cnat",result="success"} 2"#,
        r#"controller_runtime_reconcile_errors_total{controller="cnat"} 0"#,
        r#"controller_runtime_reconcile_time_seconds_count{controller="cnat"} 2"#,
        r#"controller_runtime_max_concurrent_reconciles{controller="cnat"} 2"#,
        r#"workqueue_retries_total{name="cnat"} 1"#,
        "# EOF",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "expected the line\n  {line}\nin\n{body}"
        );
    }

    server.shut_down().await;
}

#[tokio::test]
async fn healthz_answers_ok_while_serving() {
    let server = start(Metrics::new(), Health::new()).await;
    let response = get(server.address, "/healthz").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "ok");
    server.shut_down().await;
}

#[tokio::test]
async fn readyz_lists_failing_checks_until_they_pass() {
    let health = Health::new();
    let synced = health.check("caches-synced");
    let leader = health.check("leader-election");
    leader.set(true);
    let server = start(Metrics::new(), health).await;

    let response = get(server.address, "/readyz").await;
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(
        response.body,
        "[-]caches-synced failed\nreadyz check failed\n"
    );

    let response = get(server.address, "/readyz?verbose").await;
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(
        response.body,
        "[-]caches-synced failed\n[+]leader-election ok\nreadyz check failed\n"
    );

    synced.set(true);
    let response = get(server.address, "/readyz").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "ok");

    let response = get(server.address, "/readyz?verbose").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.body,
        "[+]caches-synced ok\n[+]leader-election ok\nreadyz check passed\n"
    );

    server.shut_down().await;
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let server = start(Metrics::new(), Health::new()).await;
    for path in ["/", "/metricsx", "/healthz/ping", "/livez"] {
        let response = get(server.address, path).await;
        assert_eq!(response.status, 404, "{path}: {response:?}");
    }
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_ends_serve_and_closes_the_port() {
    let server = start(Metrics::new(), Health::new()).await;
    let address = server.address;
    assert_eq!(get(address, "/healthz").await.status, 200);

    server.shut_down().await;

    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed once serve returns"
    );
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_an_idle_keep_alive_connection() {
    // Prometheus keeps its scrape connection open between scrapes; stopping
    // the operator must not wait for it to go away.
    let server = start(Metrics::new(), Health::new()).await;
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.address);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    // Read until the whole `ok` body has arrived; the connection stays open.
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\nok") {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.expect("read response");
        assert_ne!(n, 0, "the server closed a keep-alive connection early");
        raw.extend_from_slice(&chunk[..n]);
    }
    assert!(raw.starts_with(b"HTTP/1.1 200"));

    server.shut_down().await;

    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .expect("read to the end");
    assert!(
        rest.is_empty(),
        "nothing more after shutdown: {:?}",
        String::from_utf8_lossy(&rest)
    );
}
