//! `cargo xtask demo --offline`: walks the cnat `At` through its whole life
//! and the webapp through a spec change with `bosun reconcile`, each step
//! through the real engine, with no cluster.
//!
//! Each step feeds the next the way the operator would: the object gets the
//! status the previous step wrote, and the demo plays the kubelet by marking
//! the Pod Succeeded.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

struct Demo {
    bosun: PathBuf,
    guests: PathBuf,
    root: PathBuf,
    scratch: PathBuf,
    step: usize,
}

pub fn run() -> Result<()> {
    let root = bosun_testenv::guests::workspace_root();
    let guests = crate::guests::build()?;
    eprintln!("demo: cargo build --package bosun");
    let bosun = bosun_testenv::guests::host_binary().context("building bosun")?;
    let scratch = std::env::temp_dir().join(format!("bosun-demo-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut demo = Demo {
        bosun,
        guests,
        root,
        scratch: scratch.clone(),
        step: 0,
    };
    let result = demo.cnat().and_then(|()| demo.webapp());
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    println!("\nThat was every phase, through the sandboxed engine, with no cluster.");
    println!("Try it yourself:  target/debug/bosun reconcile --help");
    Ok(())
}

impl Demo {
    fn cnat(&mut self) -> Result<()> {
        let module = self.guests.join("cnat.wasm");
        self.title("what the cnat module declares");
        self.show(&["inspect", path(&module)])?;

        let sample = self.root.join("examples/cnat/samples/at.yaml");
        let at: Value = json!({
            "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
            "metadata": {"name": "example-at", "namespace": "default", "uid": "8c6a1c9e-0000-4000-8000-000000000001", "generation": 1},
            "spec": {"schedule": "2026-12-01T10:00:00Z", "command": "echo YAY"}
        });

        self.title("an At due at 10:00, reconciled at 09:58: PENDING, requeue in 2m");
        let pending = self.reconcile(&module, &at, &[], "2026-12-01T09:58:00Z", &[])?;
        self.summarize(&pending);

        self.title("reconciled again at 10:00:01: the Pod is created and the phase is RUNNING");
        let at = with_status(at, &pending);
        let running = self.reconcile(&module, &at, &[], "2026-12-01T10:00:01Z", &[])?;
        self.summarize(&running);
        let mut pod = running["apply"][0].clone();
        println!("\n  the Pod, exactly as the host would apply it:");
        print_indented(&pod);

        self.title("the kubelet reports the Pod Succeeded: the phase is DONE");
        pod["status"] = json!({"phase": "Succeeded"});
        // What the API server would have added by then.
        pod["metadata"]["managedFields"] = json!([{"manager": "bosun/cnat", "operation": "Apply"}]);
        let at = with_status(at, &running);
        let done = self.reconcile(&module, &at, &[pod], "2026-12-01T10:00:30Z", &[])?;
        self.summarize(&done);

        self.title("a schedule that is not a time: a permanent error, not retried");
        self.show(&[
            "reconcile",
            path(&module),
            "--object",
            path(&self.root.join("examples/cnat/samples/bad-schedule.yaml")),
        ])?;
        let _ = sample;
        Ok(())
    }

    fn webapp(&mut self) -> Result<()> {
        let module = self.guests.join("webapp.wasm");
        let settings = self.root.join("examples/webapp/samples/settings.yaml");
        let app = json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop", "namespace": "default", "uid": "5a1f0000-0000-4000-8000-000000000002", "generation": 1},
            "spec": {"image": "nginx:1.27", "replicas": 2, "port": 8080}
        });
        self.title(
            "a WebApp with a port: a Deployment and a Service, labelled from the module settings",
        );
        let first = self.reconcile(
            &module,
            &app,
            &[],
            "2026-11-25T10:00:00Z",
            &["--settings", path(&settings)],
        )?;
        self.summarize(&first);

        self.title("the port is removed: the Service the host applied is pruned");
        let observed: Vec<Value> = first["apply"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut child| {
                child["metadata"]["managedFields"] =
                    json!([{"manager": "bosun/webapp", "operation": "Apply"}]);
                child
            })
            .collect();
        let mut app = with_status(app, &first);
        app["spec"]["port"] = Value::Null;
        app["metadata"]["generation"] = json!(2);
        let second = self.reconcile(
            &module,
            &app,
            &observed,
            "2026-11-25T10:01:00Z",
            &["--settings", path(&settings)],
        )?;
        self.summarize(&second);
        Ok(())
    }

    fn title(&mut self, text: &str) {
        self.step += 1;
        println!("\n[{}] {text}", self.step);
    }

    /// Runs `bosun` and shows its output as is.
    fn show(&self, args: &[&str]) -> Result<()> {
        println!(
            "  $ bosun {}",
            args.join(" ").replace(&*self.root.to_string_lossy(), ".")
        );
        let out = Command::new(&self.bosun).args(args).output()?;
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("    {line}");
        }
        println!("    (exit status {})", out.status.code().unwrap_or(-1));
        Ok(())
    }

    /// Runs `bosun reconcile -o json` on `object` and returns the report.
    fn reconcile(
        &self,
        module: &Path,
        object: &Value,
        children: &[Value],
        now: &str,
        extra: &[&str],
    ) -> Result<Value> {
        let object_file = self.write("object.json", object)?;
        let mut args = vec![
            "reconcile",
            path(module),
            "--object",
            path(&object_file),
            "--now",
            now,
            "-o",
            "json",
        ];
        let children_file;
        if !children.is_empty() {
            children_file = self.write(
                "children.json",
                &json!({"apiVersion": "v1", "kind": "List", "items": children}),
            )?;
            args.extend(["--children", path(&children_file)]);
        }
        args.extend(extra);
        println!(
            "  $ bosun reconcile {} --now {now}",
            module.file_name().unwrap_or_default().to_string_lossy()
        );
        let out = Command::new(&self.bosun).args(&args).output()?;
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            println!("    {line}");
        }
        if !out.status.success() {
            bail!("bosun reconcile failed ({})", out.status);
        }
        serde_json::from_slice(&out.stdout).context("bosun reconcile printed no JSON")
    }

    fn summarize(&self, report: &Value) {
        let applied: Vec<String> = report["apply"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}",
                    c["kind"].as_str().unwrap_or("?"),
                    c["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let pruned: Vec<String> = report["prune"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}",
                    c["kind"].as_str().unwrap_or("?"),
                    c["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "    apply:   {}",
            if applied.is_empty() {
                "nothing".into()
            } else {
                applied.join(", ")
            }
        );
        println!(
            "    prune:   {}",
            if pruned.is_empty() {
                "nothing".into()
            } else {
                pruned.join(", ")
            }
        );
        let status = &report["status"];
        if let Some(phase) = status["phase"].as_str() {
            println!("    status:  phase {phase}");
        } else if !status.is_null() {
            println!("    status:  {status}");
        }
        if let Some(after) = report["requeueAfter"].as_str() {
            println!("    requeue: after {after}");
        }
        for event in report["events"].as_array().into_iter().flatten() {
            println!(
                "    event:   {} {}: {}",
                event["type"].as_str().unwrap_or(""),
                event["reason"].as_str().unwrap_or(""),
                event["note"].as_str().unwrap_or("")
            );
        }
    }

    fn write(&self, name: &str, value: &Value) -> Result<PathBuf> {
        let file = self.scratch.join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(value)?)?;
        Ok(file)
    }
}

/// The object as it is after the host wrote the status the report planned.
fn with_status(mut object: Value, report: &Value) -> Value {
    if !report["status"].is_null() {
        object["status"] = report["status"].clone();
    }
    object
}

fn print_indented(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    for line in text.lines() {
        println!("      {line}");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
