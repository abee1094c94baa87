//! `bosun diff OLD.wasm NEW.wasm`: what a new version of a module would
//! write differently from the old one, object by object, without writing
//! anything — against a live cluster (read access only: lists) or against
//! files, as `bosun reconcile` takes them.
//!
//! Both versions go through [`crate::rollout::side`], the same call and
//! plan the host's shadow runs use, and are compared by
//! [`crate::rollout::compare`]; the exit status (0 no differences, 1
//! differences, 2 errors) lets a CI pipeline gate on it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};

use super::OutputFormat;
use super::output::print;
use super::reconcile::{complete_server_fields, object_label, str_at};
use crate::engine::bindings::{Request, Trigger};
use crate::engine::{CallContext, Engine, Limits, Module};
use crate::informers::guest_json;
use crate::manifest::read_objects;
use crate::meta::{Kind, ModuleMeta, Scope};
use crate::objects::StaticObjects;
use crate::plan::PlanContext;
use crate::rollout::compare::{Diff, Verdict, compare};
use crate::rollout::side;

/// Exit status when the versions differ on at least one object.
pub const EXIT_DIFFERENT: u8 = 1;
/// Exit status when something could not be compared (a module that does
/// not load, unreadable files, a cluster that could not be listed).
pub const EXIT_DIFF_ERROR: u8 = 2;

/// The most objects of the primary kind `bosun diff` lists from a
/// cluster: each is run twice, and a cluster's lists are not ours to bound.
const MAX_OBJECTS: usize = 10_000;

/// Arguments of `bosun diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The version running now (`.wasm`).
    pub old: PathBuf,
    /// The version to compare with it (`.wasm`).
    pub new: PathBuf,
    /// Compare on this object (YAML or JSON, as `bosun reconcile
    /// --object`) instead of the cluster's; repeatable.
    #[arg(long = "object", value_name = "FILE")]
    pub objects: Vec<PathBuf>,
    /// With --object: files of observed children (objects of the owned
    /// kinds, as the host would hand them over) and of objects either
    /// version may read.
    #[arg(long = "children", value_name = "FILE", num_args = 1..)]
    pub children: Vec<PathBuf>,
    /// The namespace to list objects in (default: every namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// A YAML or JSON file with the module's settings, handed to both.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// The clock both versions see, as an RFC 3339 time (default: now,
    /// the same instant for every call).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<Timestamp>,
    /// Each call's deadline, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Print identical objects too.
    #[arg(long)]
    pub all: bool,
    /// Print a machine-readable report instead of text.
    #[arg(short, long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// One object to compare on: the host's view of it and its children.
struct Subject {
    object: Value,
    children: Vec<Value>,
}

pub(super) fn run(args: &DiffArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    match compare_all(args, engine) {
        Ok(code) => Ok(code),
        Err(error) => {
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            Ok(ExitCode::from(EXIT_DIFF_ERROR))
        }
    }
}

fn compare_all(args: &DiffArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    let old = engine
        .load_file(&args.old)
        .with_context(|| format!("loading {}", args.old.display()))?;
    let new = engine
        .load_file(&args.new)
        .with_context(|| format!("loading {}", args.new.display()))?;
    check_same_kinds(old.meta(), new.meta())?;
    let settings = args
        .settings
        .as_deref()
        .map(|path| -> anyhow::Result<String> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading settings {}", path.display()))?;
            let value: Value = serde_yaml::from_str(&text)
                .with_context(|| format!("settings {} are not YAML or JSON", path.display()))?;
            Ok(value.to_string())
        })
        .transpose()?;
    let (subjects, readable) = if args.objects.is_empty() {
        from_cluster(args, old.meta(), new.meta())?
    } else {
        from_files(args, old.meta())?
    };
    let objects = Arc::new(StaticObjects::new(readable));
    let now = args.now.unwrap_or_else(Timestamp::now);
    let limits = Limits {
        timeout: Duration::from_millis(args.timeout_ms),
        ..Limits::default()
    };

    let mut report = Vec::new();
    let (mut identical, mut differing, mut failing) = (0usize, 0usize, 0usize);
    for subject in &subjects {
        let diff = compare_one(
            &old,
            &new,
            subject,
            &objects,
            settings.as_deref(),
            now,
            limits,
        );
        match diff.verdict {
            Verdict::Identical => identical += 1,
            Verdict::Differing => differing += 1,
            Verdict::Failing => failing += 1,
        }
        let label = format!(
            "{} {}",
            old.meta().primary.kind,
            object_label(&subject.object)
        );
        if diff.verdict != Verdict::Identical || args.all {
            report.push((label, diff));
        }
    }
    let summary = format!(
        "{} objects compared: {identical} identical, {differing} differing, {failing} failing ({} {} → {} {})",
        subjects.len(),
        old.meta().name,
        old.meta().version,
        new.meta().name,
        new.meta().version,
    );
    match args.output {
        Some(format) => {
            let objects: Vec<Value> = report
                .iter()
                .map(|(object, diff)| json!({"object": object, "diff": diff}))
                .collect();
            print(
                format,
                &json!({
                    "compared": subjects.len(),
                    "identical": identical,
                    "differing": differing,
                    "failing": failing,
                    "objects": objects,
                }),
            )?;
        }
        None => {
            for (label, diff) in &report {
                println!("{label}: {}", crate::rollout::report::verdict_line(diff));
                for line in crate::rollout::report::change_lines(diff) {
                    println!("  {line}");
                }
            }
            println!("{summary}");
        }
    }
    Ok(if differing + failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERENT)
    })
}

#[allow(clippy::too_many_arguments)]
fn compare_one(
    old: &Module,
    new: &Module,
    subject: &Subject,
    objects: &Arc<StaticObjects>,
    settings: Option<&str>,
    now: Timestamp,
    limits: Limits,
) -> Diff {
    let request = Request {
        object: guest_json(&subject.object),
        children: subject.children.iter().map(guest_json).collect(),
        settings: settings.map(str::to_owned),
        trigger: Trigger::Manual,
        attempt: 1,
    };
    // No HTTP: any request may be a write somewhere; a version that needs
    // one fails alike on both sides.
    let ctx = CallContext {
        objects: objects.clone(),
        clock: Some(now),
        limits,
        http: None,
        read_log: None,
    };
    let run = |module: &Module| {
        side::run(
            module,
            &request,
            &ctx,
            &PlanContext::OFFLINE,
            &subject.object,
            &subject.children,
            now,
        )
    };
    compare(&run(old), &run(new))
}

/// Two versions are compared on the same requests only when they reconcile
/// the same kind with the same children.
fn check_same_kinds(old: &ModuleMeta, new: &ModuleMeta) -> anyhow::Result<()> {
    if old.primary != new.primary {
        bail!(
            "the versions reconcile different kinds ({} and {}): nothing to compare",
            old.primary,
            new.primary
        );
    }
    Ok(())
}

fn from_files(args: &DiffArgs, meta: &ModuleMeta) -> anyhow::Result<(Vec<Subject>, Vec<Value>)> {
    let mut subjects = Vec::new();
    for path in &args.objects {
        for mut object in read_objects(path)? {
            if !meta
                .primary
                .matches(str_at(&object, "/apiVersion"), str_at(&object, "/kind"))
            {
                continue;
            }
            complete_server_fields(&mut object, meta);
            subjects.push(Subject {
                object,
                children: Vec::new(),
            });
        }
    }
    if subjects.is_empty() {
        bail!("no object of kind {} in the --object files", meta.primary);
    }
    let mut others = Vec::new();
    for path in &args.children {
        others.extend(read_objects(path)?);
    }
    // A child goes with the object its controller ownerReference names
    // (by uid, or by name in the same namespace for hand-written files).
    for subject in &mut subjects {
        let uid = str_at(&subject.object, "/metadata/uid").to_owned();
        let name = str_at(&subject.object, "/metadata/name").to_owned();
        let namespace = str_at(&subject.object, "/metadata/namespace").to_owned();
        subject.children = others
            .iter()
            .filter(|child| {
                meta.owned(str_at(child, "/apiVersion"), str_at(child, "/kind"))
                    .is_some()
                    && controller_of(child).is_some_and(|(owner_uid, owner_name)| {
                        owner_uid == uid
                            || (owner_name == name
                                && str_at(child, "/metadata/namespace") == namespace)
                    })
            })
            .cloned()
            .collect();
    }
    let readable = subjects
        .iter()
        .map(|s| s.object.clone())
        .chain(others)
        .collect();
    Ok((subjects, readable))
}

/// The uid and name of `child`'s controller ownerReference.
fn controller_of(child: &Value) -> Option<(&str, &str)> {
    child
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|o| (str_at(o, "/uid"), str_at(o, "/name")))
}

/// Lists every object of the primary kind (in `--namespace`, or every
/// namespace), the objects of both versions' owned and read kinds there,
/// and hands each primary the children its uid controls. Lists only.
fn from_cluster(
    args: &DiffArgs,
    old: &ModuleMeta,
    new: &ModuleMeta,
) -> anyhow::Result<(Vec<Subject>, Vec<Value>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let config = kube::Config::infer().await.context(
            "reading the kubeconfig (set KUBECONFIG, or give the objects with --object FILE)",
        )?;
        let client = kube::Client::try_from(config).context("connecting to the cluster")?;
        let mut kinds = old.readable_kinds();
        for kind in new.readable_kinds() {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let mut primaries = Vec::new();
        let mut others = Vec::new();
        for kind in kinds {
            let resource = kind.api_resource();
            let api: Api<DynamicObject> = match (&args.namespace, kind.scope) {
                (Some(ns), Scope::Namespaced) => {
                    Api::namespaced_with(client.clone(), ns, &resource)
                }
                _ => Api::all_with(client.clone(), &resource),
            };
            let listed = list_all(&api, kind)
                .await
                .with_context(|| format!("listing {}", kind))?;
            if *kind == old.primary {
                primaries = listed;
            } else {
                others.extend(listed);
            }
        }
        let mut owned: HashMap<String, Vec<Value>> = HashMap::new();
        for other in &others {
            let is_owned = old
                .owned(str_at(other, "/apiVersion"), str_at(other, "/kind"))
                .is_some()
                || new
                    .owned(str_at(other, "/apiVersion"), str_at(other, "/kind"))
                    .is_some();
            if let Some((uid, _)) = controller_of(other).filter(|_| is_owned) {
                owned.entry(uid.to_owned()).or_default().push(other.clone());
            }
        }
        let subjects = primaries
            .iter()
            // An object in deletion gets finalize, not reconcile.
            .filter(|o| o.pointer("/metadata/deletionTimestamp").is_none())
            .map(|object| Subject {
                children: owned
                    .get(str_at(object, "/metadata/uid"))
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    // As the host: a namespaced primary's children are in its namespace.
                    .filter(|child| {
                        old.primary.scope == Scope::Cluster
                            || str_at(child, "/metadata/namespace")
                                == str_at(object, "/metadata/namespace")
                    })
                    .collect(),
                object: object.clone(),
            })
            .collect();
        Ok((subjects, primaries.into_iter().chain(others).collect()))
    })
}

/// Every object `api` lists, page by page, up to [`MAX_OBJECTS`], each
/// with its apiVersion and kind (a list's items of built-in kinds come
/// without them).
async fn list_all(api: &Api<DynamicObject>, kind: &Kind) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        for object in page.items {
            let mut object = serde_json::to_value(&object)?;
            if let Some(fields) = object.as_object_mut() {
                fields.insert("apiVersion".into(), json!(kind.api_version()));
                fields.insert("kind".into(), json!(kind.kind));
            }
            objects.push(object);
        }
        if objects.len() > MAX_OBJECTS {
            bail!("more than {MAX_OBJECTS} objects; narrow the comparison with --namespace");
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(objects),
        }
    }
}
