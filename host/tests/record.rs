//! The flight recorder through the paths a user takes: `bosun reconcile
//! --record` writes a recording, `bosun reconcile --replay` repeats the
//! call from it alone (the servers it talked to gone) and prints the same
//! bytes; a trap replays to the same error; another version of the module
//! prints its own outcome and the difference; a broken recording is
//! refused clearly. Credentials the host injects never reach a recording.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread;
use std::time::Duration;

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, Engine, EngineConfig, Limits, recording};
use bosun::grants::{HttpCredentials, HttpGrant, KeyRef};
use bosun::http::credentials::{Holder, KeySource};
use bosun::http::{Environment, HttpLimits, Origin, Outbound};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn guest(package: &str) -> String {
    bosun_testenv::guests::path(package)
        .unwrap()
        .display()
        .to_string()
}

fn bosun(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(args)
        .env("BOSUN_CACHE_DIR", cache.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(value).unwrap()).unwrap();
    path.display().to_string()
}

/// A loopback server answering each request with `body` (and, when asked,
/// the request's head echoed after it), until the returned stop is called;
/// after that its port refuses connections.
fn server(echo_head: bool) -> (String, impl FnOnce()) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let stopped = Arc::new(Mutex::new(false));
    let stop = stopped.clone();
    let handle = thread::spawn(move || {
        while !*stopped.lock().unwrap() {
            let Ok((mut stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let mut body = b"served once".to_vec();
            if echo_head {
                body.extend_from_slice(&head);
            }
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(&body);
            let _ = stream.write_all(&answer);
        }
        // The listener is dropped here: the port refuses from now on.
    });
    (origin, move || {
        *stop.lock().unwrap() = true;
        handle.join().unwrap();
    })
}

#[test]
fn a_recorded_http_call_replays_byte_for_byte_with_the_server_gone() {
    let (origin, stop) = server(false);
    let module = bosun_testenv::guests::misbehave_reaching(&[&origin])
        .unwrap()
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let caller = write(
        dir.path(),
        "caller.yaml",
        &json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                "metadata": {"name": "caller", "namespace": "default"},
                "spec": {"mode": "http", "url": format!("{origin}/hello")}}),
    );
    let recording = dir.path().join("call.json").display().to_string();
    let live = bosun(&[
        "reconcile",
        &module,
        "--object",
        &caller,
        "--allow-http",
        &origin,
        "--record",
        &recording,
    ]);
    assert!(live.status.success(), "{}", stderr(&live));
    let printed: Value = serde_yaml::from_slice(&live.stdout).unwrap();
    assert_eq!(printed["status"]["http"]["status"], 200, "{printed}");
    stop();

    let replayed = bosun(&["reconcile", &module, "--replay", &recording]);
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    assert_eq!(
        String::from_utf8_lossy(&replayed.stdout),
        String::from_utf8_lossy(&live.stdout),
        "the replay printed something else; stderr: {}",
        stderr(&replayed)
    );

    // Without the recording the server is really gone.
    let again = bosun(&[
        "reconcile",
        &module,
        "--object",
        &caller,
        "--allow-http",
        &origin,
    ]);
    let printed: Value = serde_yaml::from_slice(&again.stdout).unwrap();
    assert!(printed["status"]["http"]["error"].is_string(), "{printed}");
}

#[test]
fn a_cnat_reconcile_replays_byte_for_byte_and_another_version_shows_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("at.json").display().to_string();
    let sample = root()
        .join("examples/cnat/samples/at.yaml")
        .display()
        .to_string();
    let live = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample,
        "--now",
        "2019-04-12T10:00:00Z",
        "--record",
        &recording,
    ]);
    assert!(live.status.success(), "{}", stderr(&live));
    let replayed = bosun(&["reconcile", &guest("cnat"), "--replay", &recording]);
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    assert_eq!(replayed.stdout, live.stdout, "{}", stderr(&replayed));

    // The same inputs through another module: its own output, and how its
    // outcome differs from the recorded one.
    let other = bosun(&["reconcile", &guest("misbehave"), "--replay", &recording]);
    let err = stderr(&other);
    assert!(err.contains("replaying a call recorded with cnat"), "{err}");
    assert!(
        err.contains("differences from the recorded outcome"),
        "{err}"
    );
}

#[test]
fn a_trap_is_recorded_and_replays_to_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let object = write(
        dir.path(),
        "panic.yaml",
        &json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                "metadata": {"name": "boom", "namespace": "default"},
                "spec": {"mode": "panic"}}),
    );
    let recording = dir.path().join("trap.json").display().to_string();
    let live = bosun(&[
        "reconcile",
        &guest("misbehave"),
        "--object",
        &object,
        "--record",
        &recording,
    ]);
    assert_eq!(live.status.code(), Some(4), "{}", stderr(&live));
    assert!(
        stderr(&live).contains("deliberate panic for boom"),
        "{}",
        stderr(&live)
    );
    let recorded: Value = serde_json::from_slice(&std::fs::read(&recording).unwrap()).unwrap();
    assert!(
        recorded["outcome"]["failed"]
            .as_str()
            .is_some_and(|m| m.contains("deliberate panic")),
        "{recorded}"
    );

    let replayed = bosun(&["reconcile", &guest("misbehave"), "--replay", &recording]);
    assert_eq!(replayed.status.code(), Some(4), "{}", stderr(&replayed));
    assert_eq!(stderr(&replayed), stderr(&live));
}

#[test]
fn a_broken_recording_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "garbage.json",
            b"not json at all".to_vec(),
            "not a bosun recording",
        ),
        (
            "future.json",
            br#"{"format": "bosun.dev/recording/v9"}"#.to_vec(),
            "recording format \"bosun.dev/recording/v9\" is not one this bosun reads",
        ),
        (
            "shape.json",
            br#"{"format": "bosun.dev/recording/v1", "module": 3}"#.to_vec(),
            "not a bosun recording",
        ),
        (
            "huge.json",
            vec![b' '; (64 << 20) + 1],
            "is larger than 67108864 bytes",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = bosun(&[
            "reconcile",
            &guest("cnat"),
            "--replay",
            &path.display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
    }
}

/// The one Secret key the test grants.
struct Key(String);

impl KeySource for Key {
    fn read(
        &self,
        _holder: Holder,
        _key: &KeyRef,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let value = self.0.as_bytes().to_vec();
        Box::pin(async move { Ok(value) })
    }
}

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(EngineConfig::default()).expect("engine"));

#[test]
fn a_granted_secret_the_host_injects_never_reaches_the_recording() {
    const SECRET: &str = "s3cr3t-api-key-7f9a";
    // The server echoes the request head, credential header included, into
    // the body the guest reads and copies into its status.
    let (origin, stop) = server(true);
    let path = bosun_testenv::guests::misbehave_reaching(&[&origin]).unwrap();
    let module = ENGINE.load_file(&path).unwrap();
    let grant = HttpGrant {
        origin: Origin::parse(&origin).unwrap(),
        credentials: Some(HttpCredentials {
            header: "X-Token".into(),
            prefix: Some("Bearer ".into()),
            secret_ref: KeyRef {
                namespace: "bosun-system".into(),
                name: "api".into(),
                key: "key".into(),
            },
        }),
        ca_bundle: None,
        methods: Vec::new(),
    };
    let outbound = Outbound::new(
        module.meta(),
        &[grant],
        HttpLimits::default(),
        Environment {
            keys: Some(Arc::new(Key(SECRET.to_owned()))),
            ..Environment::default()
        },
    );
    let ctx = CallContext {
        http: Some(outbound),
        limits: Limits {
            timeout: Duration::from_secs(5),
            ..Limits::default()
        },
        ..CallContext::default()
    };
    let request = Request {
        object: json!({
            "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
            "metadata": {"name": "caller", "namespace": "default", "uid": "u-1"},
            "spec": {"mode": "http", "url": format!("{origin}/echo")}
        })
        .to_string(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    };
    let (result, recorded) = recording::reconcile_recorded(&module, &request, &ctx, 1 << 20);
    stop();
    // The secret reached the server (and came back in the body)...
    let status = result.as_ref().unwrap().as_ref().unwrap().status.clone();
    assert!(status.as_deref().unwrap().contains(SECRET), "{status:?}");
    // ...and is nowhere in the file a user would fetch.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), recorded.to_json()).unwrap();
    let text = std::fs::read_to_string(file.path()).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("[redacted by bosun]"), "{text}");
    assert_eq!(recorded.http.len(), 1, "{text}");
}

#[test]
fn the_rust_harness_loads_a_recording_as_a_fixture_and_agrees_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("at.json");
    let sample = root()
        .join("examples/cnat/samples/at.yaml")
        .display()
        .to_string();
    let live = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample,
        "--now",
        "2019-04-12T10:00:00Z",
        "--record",
        &recording.display().to_string(),
    ]);
    assert!(live.status.success(), "{}", stderr(&live));
    let recorded: Value = serde_json::from_slice(&std::fs::read(&recording).unwrap()).unwrap();

    let (harness, at) =
        bosun_sdk::testing::Harness::<cnat::Cnat>::from_recording_file(&recording).unwrap();
    let outcome = harness.reconcile(&at).unwrap();
    let status: Value = outcome.status().unwrap();
    assert_eq!(status, recorded["outcome"]["response"]["status"]);
    assert_eq!(
        outcome.children_json(),
        recorded["outcome"]["response"]["children"]
            .as_array()
            .unwrap()
            .clone()
    );

    let err = bosun_sdk::testing::Harness::<cnat::Cnat>::from_recording(
        r#"{"format": "bosun.dev/recording/v2"}"#,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("is not one this SDK reads"),
        "{err}"
    );

    // An untrusted file is read no further than the cap.
    let big = dir.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(bosun_sdk::testing::MAX_RECORDING_BYTES as u64 + 1)
        .unwrap();
    let err = bosun_sdk::testing::Harness::<cnat::Cnat>::from_recording_file(&big)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("larger than 67108864 bytes"),
        "{err}"
    );
}

/// The lines of README's shell block marked `marker`, comments dropped.
fn readme_block(marker: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find(marker).expect("the README has the block") + marker.len();
    let block = readme[start..]
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block right after the marker");
    let block = &block[..block.find("```").expect("the block ends")];
    block
        .lines()
        .map(|line| line.split(" # ").next().unwrap_or(line).trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_record_and_replay_block_runs_as_written() {
    let lines = readme_block("<!-- tested: record-replay -->");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest("cnat"), dir.path().join("cnat.wasm")).unwrap();
    std::fs::copy(
        root().join("examples/cnat/samples/at.yaml"),
        dir.path().join("at.yaml"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_bosun")).parent().unwrap();
    let run = |line: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(line)
            .current_dir(dir.path())
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("BOSUN_CACHE_DIR", cache.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {}", stderr(&out));
        out.stdout
    };
    let recorded = run(&lines[0]);
    let replayed = run(&lines[1]);
    assert!(String::from_utf8_lossy(&recorded).contains("example-at"));
    assert_eq!(replayed, recorded);
}

#[test]
fn a_dnsrecord_call_against_real_powerdns_replays_offline_without_its_api_key() {
    if !bosun_testenv::PowerDns::installed() {
        assert!(
            std::env::var("CI").is_err(),
            "PowerDNS is missing: {}",
            bosun_testenv::powerdns::INSTALL
        );
        eprintln!("skipped: {}", bosun_testenv::powerdns::INSTALL);
        return;
    }
    let pdns = bosun_testenv::PowerDns::start().expect("PowerDNS starts");
    pdns.create_zone("example.org.").unwrap();
    let api = pdns.api_url();
    let path = bosun_testenv::guests::dnsrecord_for_origin(&api).unwrap();
    let module = ENGINE.load_file(&path).unwrap();
    let grant = HttpGrant {
        origin: Origin::parse(&api).unwrap(),
        credentials: Some(HttpCredentials {
            header: "X-API-Key".into(),
            prefix: None,
            secret_ref: KeyRef {
                namespace: "bosun-system".into(),
                name: "pdns-api".into(),
                key: "api-key".into(),
            },
        }),
        ca_bundle: None,
        methods: Vec::new(),
    };
    let outbound = Outbound::new(
        module.meta(),
        &[grant],
        HttpLimits::default(),
        Environment {
            keys: Some(Arc::new(Key(pdns.api_key().to_owned()))),
            ..Environment::default()
        },
    );
    let ctx = CallContext {
        http: Some(outbound),
        limits: Limits {
            timeout: Duration::from_secs(10),
            ..Limits::default()
        },
        ..CallContext::default()
    };
    let mut object: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("examples/dnsrecord/samples/dnsrecord.yaml")).unwrap(),
    )
    .unwrap();
    object["metadata"]["uid"] = json!("4d1c2f0e-0000-4000-8000-000000000001");
    object["metadata"]["generation"] = json!(1);
    let request = Request {
        object: object.to_string(),
        children: vec![],
        settings: Some(json!({"apiUrl": api, "serverId": "localhost"}).to_string()),
        trigger: Trigger::Manual,
        attempt: 1,
    };
    let (result, recorded) = recording::reconcile_recorded(&module, &request, &ctx, 1 << 20);
    let response = result.as_ref().unwrap().as_ref().unwrap();
    assert!(response.status.is_some(), "{response:?}");
    assert!(!recorded.http.is_empty(), "dnsrecord called PowerDNS");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dnsrecord.json");
    std::fs::write(&file, recorded.to_json()).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(pdns.api_key()),
        "the API key is in the recording"
    );
    // The zone now holds the record: the call really wrote through the API.
    assert!(
        pdns.zone("example.org.")
            .unwrap()
            .to_string()
            .contains("192.0.2.10")
    );
    drop(pdns);

    // No PowerDNS, no network: the same outcome from the recording alone.
    let replayed = bosun(&[
        "reconcile",
        &path.display().to_string(),
        "--replay",
        &file.display().to_string(),
    ]);
    let err = stderr(&replayed);
    assert!(replayed.status.success(), "{err}");
    assert!(
        !err.contains("differs") && !err.contains("diverged"),
        "{err}"
    );
    let printed: Value = serde_yaml::from_slice(&replayed.stdout).unwrap();
    let status: Value = serde_json::from_str(response.status.as_deref().unwrap()).unwrap();
    for (field, value) in status.as_object().unwrap() {
        if field != "conditions" {
            assert_eq!(&printed["status"][field], value, "{field}: {printed}");
        }
    }
}
