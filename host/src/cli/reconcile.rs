//! `bosun reconcile`: one reconcile (or finalize) through the real engine,
//! offline, printing exactly what the host would write.
//!
//! The object, its observed children and any objects the guest may read come
//! from files; the run goes through the same load, sandbox, validation and
//! planning as the operator, so a module that passes here behaves the same in
//! a cluster.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::output::{fail, go_duration, print};
use super::{
    EXIT_BAD_INPUT, EXIT_CALL_FAILED, EXIT_LOAD_FAILED, EXIT_RECONCILE_ERROR, OutputFormat,
};
use crate::engine::bindings::{self as wit, ReconcileError};
use crate::engine::{CallContext, CallError, Engine, Limits, Module, Outcome, recording};
use crate::manifest::read_objects;
use crate::meta::{ModuleMeta, Scope};
use crate::objects::StaticObjects;
use crate::plan::{PlanContext, plan_response};
use crate::recorder::capture::DEFAULT_CAP_BYTES;
use crate::validate::validate_events;

/// Arguments of `bosun reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The reconciler component (`.wasm`).
    pub module: PathBuf,
    /// A YAML or JSON file holding the object to reconcile (one object of the
    /// module's primary kind).
    #[arg(long, value_name = "FILE", required_unless_present = "replay")]
    pub object: Option<PathBuf>,
    /// Files with the observed children: objects of the module's owned kinds,
    /// as the host would have seen them owned by the object.
    #[arg(long = "children", value_name = "FILE", num_args = 1..)]
    pub children: Vec<PathBuf>,
    /// Files with further objects the guest may read (declared read kinds).
    #[arg(long = "objects", value_name = "FILE", num_args = 1..)]
    pub objects: Vec<PathBuf>,
    /// A YAML or JSON file with the module's settings.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Fix the clock the guest and the host see, as an RFC 3339 time
    /// (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<Timestamp>,
    /// Call `finalize`, as for an object being deleted, instead of `reconcile`.
    #[arg(long)]
    pub finalize: bool,
    /// The call's deadline, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// The guest's memory cap, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub memory_limit_mib: usize,
    /// Let the module's HTTP requests to ORIGIN (`scheme://host[:port]`,
    /// one the module declares) go out to the real endpoint; repeatable.
    /// Without it every request is refused. No credentials are added.
    #[arg(long = "allow-http", value_name = "ORIGIN")]
    pub allow_http: Vec<crate::http::Origin>,
    /// Write a recording of the call (its request, clock, random bytes,
    /// reads, HTTP exchanges and outcome; credentials redacted) to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Repeat a recorded call exactly, answered from RECORDING instead of
    /// files and the network; with another version of the module, also
    /// print how its outcome differs from the recorded one.
    #[arg(
        long,
        value_name = "RECORDING",
        conflicts_with_all = ["object", "children", "objects", "settings", "now", "finalize", "allow_http"]
    )]
    pub replay: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

/// The files, read and checked against the module's declaration.
pub(super) struct Inputs {
    pub(super) object: Value,
    pub(super) children: Vec<Value>,
    pub(super) objects: Vec<Value>,
    pub(super) settings: Option<String>,
}

pub(super) fn run(args: &ReconcileArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    let module = match engine.load_file(&args.module) {
        Ok(module) => module,
        Err(error) => return Ok(fail(EXIT_LOAD_FAILED, &error)),
    };
    if let Some(recording) = &args.replay {
        return super::replay::run(&module, recording, args.output);
    }
    let meta = module.meta();
    let inputs = match read_inputs(args, meta) {
        Ok(inputs) => inputs,
        Err(error) => return Ok(fail(EXIT_BAD_INPUT, &format!("{error:#}"))),
    };
    let label = object_label(&inputs.object);
    let _span = tracing::info_span!("reconcile", module = %meta.name, object = %label).entered();

    let now = args.now.unwrap_or_else(Timestamp::now);
    let request = wit::Request {
        object: inputs.object.to_string(),
        children: inputs.children.iter().map(Value::to_string).collect(),
        settings: inputs.settings.clone(),
        trigger: wit::Trigger::Manual,
        attempt: 1,
    };
    let readable = inputs
        .objects
        .iter()
        .cloned()
        .chain(inputs.children.iter().cloned())
        .chain([inputs.object.clone()]);
    let ctx = CallContext {
        objects: Arc::new(StaticObjects::new(readable)),
        clock: Some(now),
        limits: Limits {
            timeout: Duration::from_millis(args.timeout_ms),
            memory_bytes: args.memory_limit_mib << 20,
            ..Limits::default()
        },
        http: (!meta.http_origins.is_empty()).then(|| {
            let grants: Vec<_> = args
                .allow_http
                .iter()
                .map(|origin| crate::grants::HttpGrant {
                    origin: origin.clone(),
                    credentials: None,
                    ca_bundle: None,
                    methods: Vec::new(),
                })
                .collect();
            crate::http::Outbound::new(
                meta,
                &grants,
                crate::limits::HttpLimits::default(),
                crate::http::Environment {
                    hint: Some(
                        "; bosun reconcile sends a module's HTTP requests only to origins given with --allow-http ORIGIN",
                    ),
                    ..crate::http::Environment::default()
                },
            )
        }),
        read_log: None,
    };
    if args.finalize && meta.finalizer.is_none() {
        let message = format!(
            "module {} declares no finalizer, so the host never calls its finalize",
            meta.name
        );
        return Ok(fail(EXIT_BAD_INPUT, &message));
    }
    let header = header(meta, &label);
    let record = args.record.is_some();
    let (code, recorded) = if args.finalize {
        let (result, recorded) = if record {
            let (result, recorded) =
                recording::finalize_recorded(&module, &request, &ctx, DEFAULT_CAP_BYTES);
            (result, Some(recorded))
        } else {
            (module.finalize(&request, &ctx), None)
        };
        (finalize(&module, result, header, args.output)?, recorded)
    } else {
        let (result, recorded) = if record {
            let (result, recorded) =
                recording::reconcile_recorded(&module, &request, &ctx, DEFAULT_CAP_BYTES);
            (result, Some(recorded))
        } else {
            (module.reconcile(&request, &ctx), None)
        };
        (
            reconcile(&module, result, &inputs, header, now, args.output)?,
            recorded,
        )
    };
    if let (Some(path), Some(recorded)) = (&args.record, recorded) {
        if let Err(error) = std::fs::write(path, recorded.to_json()) {
            let message = format!("cannot write the recording {}: {error}", path.display());
            return Ok(fail(EXIT_BAD_INPUT, &message));
        }
        if recorded.truncated {
            eprintln!(
                "warning: the recording passed its cap of {DEFAULT_CAP_BYTES} bytes and was truncated; a replay may diverge where it ends"
            );
        }
    }
    Ok(code)
}

/// The head of the printed report.
pub(super) fn header(meta: &ModuleMeta, label: &str) -> Value {
    json!({
        "module": format!("{} {}", meta.name, meta.version),
        "object": format!("{} {label}", meta.primary.kind),
    })
}

/// Prints what the host would do with a reconcile's `result`.
pub(super) fn reconcile(
    module: &Module,
    result: Result<Outcome<wit::Response>, CallError>,
    inputs: &Inputs,
    mut report: Value,
    now: Timestamp,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let response = match result {
        Err(error) => return Ok(fail(EXIT_CALL_FAILED, &error)),
        Ok(Err(error)) => return Ok(guest_error(&module.meta().name, error)),
        Ok(Ok(response)) => response,
    };
    let plan = match plan_response(
        module.meta(),
        &PlanContext::OFFLINE,
        &inputs.object,
        &inputs.children,
        response,
        now,
    ) {
        Ok(plan) => plan,
        Err(error) => {
            let message = format!(
                "module {} returned invalid output, nothing would be written: {error}",
                module.meta().name
            );
            return Ok(fail(EXIT_CALL_FAILED, &message));
        }
    };
    let fields = report.as_object_mut().expect("the header is an object");
    fields.insert("result".into(), json!("Success"));
    fields.insert("apply".into(), Value::Array(plan.apply));
    fields.insert("prune".into(), serde_json::to_value(&plan.prune)?);
    if let Some(status) = plan.status {
        fields.insert("status".into(), status);
    }
    insert_requeue(fields, plan.requeue_after);
    fields.insert("events".into(), recording::events_json(&plan.events));
    print(format, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what the host would do with a finalize's `result`.
pub(super) fn finalize(
    module: &Module,
    result: Result<Outcome<wit::FinalizeResponse>, CallError>,
    mut report: Value,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let response = match result {
        Err(error) => return Ok(fail(EXIT_CALL_FAILED, &error)),
        Ok(Err(error)) => return Ok(guest_error(&module.meta().name, error)),
        Ok(Ok(response)) => response,
    };
    let events_checked = match validate_events(response.events) {
        Ok(events) => events,
        Err(error) => {
            let message = format!(
                "module {} returned invalid output: {error}",
                module.meta().name
            );
            return Ok(fail(EXIT_CALL_FAILED, &message));
        }
    };
    let fields = report.as_object_mut().expect("the header is an object");
    fields.insert(
        "result".into(),
        json!(if response.done { "Done" } else { "Pending" }),
    );
    insert_requeue(fields, response.requeue_after_ms.map(Duration::from_millis));
    fields.insert("events".into(), recording::events_json(&events_checked));
    print(format, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// The reconciler answered with an error of its own: say what the host would do.
fn guest_error(module: &str, error: ReconcileError) -> ExitCode {
    let (class, failure, consequence) = match error {
        ReconcileError::Retryable(f) => ("retryable", f, "the host would retry with backoff"),
        ReconcileError::Permanent(f) => (
            "permanent",
            f,
            "the host would record it in a condition and an event and not retry until the object changes",
        ),
    };
    let line = format!(
        "module {module} returned a {class} error {}: {}; {consequence}",
        failure.reason, failure.message
    );
    fail(EXIT_RECONCILE_ERROR, &line)
}

fn insert_requeue(fields: &mut Map<String, Value>, requeue_after: Option<Duration>) {
    if let Some(after) = requeue_after {
        fields.insert("requeueAfter".into(), json!(go_duration(after)));
        fields.insert("requeueAfterMs".into(), json!(after.as_millis() as u64));
    }
}

fn read_inputs(args: &ReconcileArgs, meta: &ModuleMeta) -> anyhow::Result<Inputs> {
    let Some(path) = &args.object else {
        anyhow::bail!("give the object to reconcile with --object FILE");
    };
    let mut found: Vec<Value> = read_objects(path)?;
    let primary_api_version = meta.primary.api_version();
    found.retain(|o| {
        meta.primary
            .matches(str_at(o, "/apiVersion"), str_at(o, "/kind"))
    });
    let mut object = match found.len() {
        1 => found.remove(0),
        n => anyhow::bail!(
            "{} holds {n} objects of kind {} ({primary_api_version}); give exactly one",
            path.display(),
            meta.primary.kind
        ),
    };
    complete_server_fields(&mut object, meta);

    let mut children = Vec::new();
    for path in &args.children {
        for child in read_objects(path)? {
            let (api_version, kind) = (str_at(&child, "/apiVersion"), str_at(&child, "/kind"));
            if meta.owned(api_version, kind).is_none() {
                anyhow::bail!(
                    "{}: {kind}.{api_version} {:?} is not a kind module {} owns, so the host would never hand it over as a child",
                    path.display(),
                    str_at(&child, "/metadata/name"),
                    meta.name
                );
            }
            children.push(child);
        }
    }
    let mut objects = Vec::new();
    for path in &args.objects {
        objects.extend(read_objects(path)?);
    }
    let settings = args.settings.as_deref().map(read_settings).transpose()?;
    Ok(Inputs {
        object,
        children,
        objects,
        settings,
    })
}

fn read_settings(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings {}", path.display()))?;
    let value: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("settings {} are not valid YAML or JSON", path.display()))?;
    Ok(value.to_string())
}

/// Fills in what the API server would have set on a stored object and a
/// hand-written file usually lacks: the namespace (`default`, as kubectl
/// does), a uid (derived from the object's identity, so runs repeat) and
/// generation 1.
pub(super) fn complete_server_fields(object: &mut Value, meta: &ModuleMeta) {
    let identity = format!(
        "{}/{}/{}/{}",
        str_at(object, "/apiVersion"),
        str_at(object, "/kind"),
        str_at(object, "/metadata/namespace"),
        str_at(object, "/metadata/name")
    );
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if meta.primary.scope == Scope::Namespaced
        && metadata
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        metadata.insert("namespace".into(), json!("default"));
    }
    if metadata
        .get("uid")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let uid = derived_uid(&identity);
        tracing::debug!(%uid, "the object has no metadata.uid; using one derived from its name");
        metadata.insert("uid".into(), json!(uid));
    }
    metadata.entry("generation").or_insert(json!(1));
}

/// A UUID-shaped uid derived from `identity`.
fn derived_uid(identity: &str) -> String {
    let hash = hex::encode(&Sha256::digest(identity.as_bytes())[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hash[..8],
        &hash[8..12],
        &hash[12..16],
        &hash[16..20],
        &hash[20..32]
    )
}

pub(super) fn object_label(object: &Value) -> String {
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(namespace) => format!("{namespace}/{}", str_at(object, "/metadata/name")),
        None => str_at(object, "/metadata/name").to_owned(),
    }
}

pub(super) fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}
