//! `bosun push`: a component checked locally, published (a ConfigMap or an
//! OCI registry), its ReconcilerModule created or updated with the digest
//! pinned, and — unless `--no-wait` — the host's `Loaded`/`Ready` verdict
//! waited for and printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use oci_client::secrets::RegistryAuth;

use super::output::fail;
use super::{EXIT_BAD_INPUT, EXIT_LOAD_FAILED};
use crate::engine::Engine;
use crate::grants::{GrantFile, Permissions};
use crate::modules::cluster::heals_by_itself;
use crate::modules::publish::{
    self, ModuleSpec, OciDestination, PublishError, Written, for_config_map,
};
use crate::modules::resource::{
    CONDITION_LOADED, CONDITION_READY, ConfigMapSource, ModuleSource, OciSource, ReconcilerModule,
    SecretRef,
};
use crate::modules::source;

mod shadow;

/// Exit status when the module was published but the host did not load it
/// (or did not say so in time).
pub const EXIT_NOT_LOADED: u8 = 5;

/// Arguments of `bosun push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The reconciler component (`.wasm`, as `bosun build` prints it).
    pub module: PathBuf,
    /// The ReconcilerModule's name.
    #[arg(long)]
    pub name: String,
    /// The namespace of the ConfigMap (`--to configmap`) and of the pull
    /// secret (default: the kubeconfig's namespace, as kubectl).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Where to publish: `configmap` (ConfigMap NAME-module, key NAME.wasm,
    /// gzip-compressed when only that makes it fit 1 MiB) or
    /// `oci://REGISTRY/REPOSITORY:TAG` (a Wasm OCI artifact).
    #[arg(
        long,
        default_value = "configmap",
        value_name = "configmap|oci://REGISTRY/REPO:TAG"
    )]
    pub to: String,
    /// The module's settings, a JSON or YAML file (default: keep what the
    /// ReconcilerModule has).
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// What the module may do, a grant file as `bosun inspect --grant`
    /// prints it (default: keep the ReconcilerModule's grant; a new one is
    /// granted what the module declares).
    #[arg(long, value_name = "FILE")]
    pub grant: Option<PathBuf>,
    /// A `kubernetes.io/dockerconfigjson` Secret in --namespace the host
    /// pulls with (`spec.source.oci.pullSecret`).
    #[arg(long, value_name = "NAME")]
    pub pull_secret: Option<String>,
    /// The registry user to push as (default: the docker config's entry
    /// for the registry: REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json).
    #[arg(long, env = "BOSUN_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// The registry password, with --registry-username (better from the
    /// environment than the command line).
    #[arg(long, env = "BOSUN_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// The class of bosun host that runs the module (`spec.hostClass`;
    /// default: keep the ReconcilerModule's, `default` for a new one).
    #[arg(long, value_name = "NAME")]
    pub host_class: Option<crate::modules::class::HostClass>,
    /// Stage the component as a candidate beside the running version
    /// (`spec.rollout`, mode Shadow) instead of swapping it in: the host
    /// compares what it would write with what the running version writes,
    /// and writes nothing for it. `bosun rollout status NAME` shows what it
    /// found; `bosun rollout promote NAME` swaps it in. The ConfigMap is
    /// NAME-candidate, so the running version's stays as it is.
    #[arg(long)]
    pub shadow: bool,
    /// Stage the component as a canary (`spec.rollout`, mode Canary): it
    /// reconciles this share of the objects for real, in percent — one
    /// step (`20`) or several (`10,50,100`) — and the host rolls it back
    /// when it fails more than the running version. `bosun rollout step
    /// NAME` takes the next step; `bosun rollout promote NAME` swaps it in.
    #[arg(
        long,
        value_name = "PERCENT[,PERCENT…]",
        value_delimiter = ',',
        conflicts_with = "shadow"
    )]
    pub canary: Option<Vec<u32>>,
    /// A canary's window in seconds (`spec.rollout.canary.windowSeconds`).
    #[arg(long, value_name = "SECONDS", requires = "canary")]
    pub canary_window: Option<u32>,
    /// The canary's calls in a window before it is judged
    /// (`spec.rollout.canary.minCalls`).
    #[arg(long, value_name = "N", requires = "canary")]
    pub canary_min_calls: Option<u32>,
    /// Take the canary's next step after each clean window without being
    /// asked (`spec.rollout.canary.automatic`).
    #[arg(long, requires = "canary")]
    pub canary_automatic: bool,
    /// Do not wait for the host to load the module.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for `Loaded` and `Ready` (`90s`, `2m`).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub(super) fn run(args: &PushArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    if !crate::meta::is_dns_label(&args.name) {
        return Ok(fail(
            EXIT_BAD_INPUT,
            &format!(
                "--name {:?} cannot name a ReconcilerModule: a DNS label (lower-case letters, digits and '-')",
                args.name
            ),
        ));
    }
    let bytes = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    // A gzip file is checked as the host would load it.
    let component = source::decompress(bytes, &args.module.display().to_string())?;
    // Refused here, before anything reaches the cluster.
    let module = match engine.load(&args.module.display().to_string(), &component) {
        Ok(module) => module,
        Err(error) => return Ok(fail(EXIT_LOAD_FAILED, &error)),
    };
    let settings = args.settings.as_deref().map(read_settings).transpose()?;
    let grant = args.grant.as_deref().map(read_grant).transpose()?;
    let destination = Destination::parse(&args.to)?;
    let stored = match &destination {
        Destination::ConfigMap => match for_config_map(&component) {
            Ok(stored) => Some(stored),
            Err(error) => return Ok(fail(EXIT_BAD_INPUT, &error)),
        },
        Destination::Oci(_) => None,
    };
    eprintln!(
        "{} {} checked: {} bytes, sha256:{}",
        module.meta().name,
        module.meta().version,
        component.len(),
        module.digest()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let config = kube::Config::infer().await.context(
            "reading the kubeconfig (set KUBECONFIG, or run in a pod with a service account)",
        )?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).context("connecting to the cluster")?;
        let current = publish::current(&client, &args.name).await?;

        let source = match (&destination, stored) {
            (Destination::ConfigMap, Some(stored)) => {
                let name = if args.shadow || args.canary.is_some() {
                    format!("{}-candidate", args.name)
                } else {
                    format!("{}-module", args.name)
                };
                let key = format!("{}.wasm", args.name);
                let written =
                    publish::put_config_map(&client, &namespace, &name, &key, &stored.bytes)
                        .await?;
                eprintln!(
                    "{} ConfigMap {namespace}/{name}[{key}]: {} bytes{}",
                    match written {
                        Written::Written => "wrote",
                        Written::Unchanged => "unchanged:",
                    },
                    stored.bytes.len(),
                    if stored.compressed {
                        " (gzip-compressed to fit)"
                    } else {
                        ""
                    }
                );
                ModuleSource::ConfigMap(ConfigMapSource {
                    namespace: namespace.clone(),
                    name,
                    key,
                    sha256: Some(source::digest(&stored.bytes)),
                })
            }
            (Destination::Oci(oci), _) => {
                let auth = registry_auth(args, oci)?;
                let (digest, written) = publish::push_oci(oci, &component, &auth).await?;
                eprintln!(
                    "{} {}@{digest}",
                    match written {
                        Written::Written => "pushed",
                        Written::Unchanged => "unchanged:",
                    },
                    oci.reference_text()
                );
                ModuleSource::Oci(OciSource {
                    reference: oci.reference_text(),
                    digest,
                    pull_secret: args.pull_secret.as_ref().map(|name| SecretRef {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    }),
                })
            }
            (Destination::ConfigMap, None) => unreachable!("a ConfigMap destination is prepared"),
        };
        if args.shadow || args.canary.is_some() {
            return shadow::stage(&client, args, current, source, settings).await;
        }
        let spec = ModuleSpec {
            source,
            permissions: grant
                .or_else(|| current.as_ref().map(|m| m.spec.permissions.clone()))
                .unwrap_or_else(|| crate::grants::requested(module.meta())),
            settings: settings.or_else(|| current.as_ref().and_then(|m| m.spec.settings.clone())),
            host_class: args.host_class.as_ref().map_or_else(
                || {
                    current.as_ref().map_or_else(
                        || crate::modules::class::DEFAULT.to_owned(),
                        |m| m.spec.host_class.clone(),
                    )
                },
                |class| class.as_str().to_owned(),
            ),
        };
        let (generation, written) =
            publish::apply_module(&client, &args.name, &spec, current.as_ref()).await?;
        let new_digest = publish::pinned_digest(&spec.source).unwrap_or_default();
        match (written, current.as_ref().map(|m| &m.spec.source)) {
            (Written::Unchanged, _) => println!(
                "ReconcilerModule {} unchanged: it pins {new_digest} already; nothing written",
                args.name
            ),
            (Written::Written, None) => {
                println!("ReconcilerModule {} created: {new_digest}", args.name)
            }
            (Written::Written, Some(old)) => {
                let old = publish::pinned_digest(old).unwrap_or_else(|| "(unpinned)".to_owned());
                if old == new_digest {
                    println!("ReconcilerModule {} updated: {new_digest}", args.name);
                } else {
                    println!(
                        "ReconcilerModule {} swapped: {old} → {new_digest}",
                        args.name
                    );
                }
            }
        }
        if args.no_wait {
            return Ok(ExitCode::SUCCESS);
        }
        wait(&client, &args.name, generation, args.timeout).await
    })
}

/// Where `--to` publishes.
enum Destination {
    ConfigMap,
    Oci(OciDestination),
}

impl Destination {
    fn parse(to: &str) -> anyhow::Result<Destination> {
        if to == "configmap" {
            return Ok(Destination::ConfigMap);
        }
        if to.starts_with("oci://") {
            return Ok(Destination::Oci(OciDestination::parse(to)?));
        }
        bail!("--to {to:?}: give configmap or oci://REGISTRY/REPOSITORY:TAG")
    }
}

/// Waits until the host has looked at `generation` and says `Loaded` and
/// `Ready`; prints both conditions.
async fn wait(
    client: &kube::Client,
    name: &str,
    generation: i64,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let api = kube::Api::<ReconcilerModule>::all(client.clone());
    let mut last: Option<ReconcilerModule> = None;
    while started.elapsed() < timeout {
        let module = api
            .get_opt(name)
            .await
            .map_err(|source| PublishError::Kube {
                what: format!("reading ReconcilerModule {name}"),
                source,
            })?;
        if let Some(module) = module {
            let status = module.status.clone().unwrap_or_default();
            let seen = |type_: &str| {
                status
                    .condition(type_)
                    .filter(|c| c.observed_generation.unwrap_or(0) >= generation)
                    .cloned()
            };
            if let (Some(loaded), Some(ready)) = (seen(CONDITION_LOADED), seen(CONDITION_READY)) {
                print_conditions(&[&loaded, &ready]);
                if loaded.status == "True" && ready.status == "True" {
                    println!(
                        "{name} is running {} {} in {:.1}s",
                        status.module_name.as_deref().unwrap_or(name),
                        status.version.as_deref().unwrap_or("?"),
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                if !heals_by_itself(&loaded.reason) {
                    eprintln!("error: the host did not load {name}: {}", loaded.message);
                    return Ok(ExitCode::from(EXIT_NOT_LOADED));
                }
                // The host tries again by itself (a CRD or RBAC rule to come).
            }
            last = Some(module);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let conditions: Vec<Condition> = last
        .and_then(|m| m.status)
        .map(|s| s.conditions)
        .unwrap_or_default();
    if conditions.is_empty() {
        eprintln!(
            "error: no word from the host about {name} within {}s: is a host running with --modules-from-cluster?",
            timeout.as_secs()
        );
    } else {
        let said: Vec<String> = conditions
            .iter()
            .map(|c| format!("{}={} ({}): {}", c.type_, c.status, c.reason, c.message))
            .collect();
        eprintln!(
            "error: {name} not ready within {}s; the host says {}",
            timeout.as_secs(),
            said.join("; ")
        );
    }
    Ok(ExitCode::from(EXIT_NOT_LOADED))
}

fn print_conditions(conditions: &[&Condition]) {
    for c in conditions {
        println!("{}={} ({}): {}", c.type_, c.status, c.reason, c.message);
    }
}

/// The credentials to push with: the flags, else the docker config's entry
/// for the registry, else none.
fn registry_auth(args: &PushArgs, destination: &OciDestination) -> anyhow::Result<RegistryAuth> {
    if let Some(username) = &args.registry_username {
        let password = args.registry_password.clone().context(
            "--registry-username needs --registry-password (or BOSUN_REGISTRY_PASSWORD)",
        )?;
        return Ok(RegistryAuth::Basic(username.clone(), password));
    }
    let registry = destination.reference.registry();
    for path in docker_configs() {
        let Ok(config) = std::fs::read(&path) else {
            continue;
        };
        return match crate::modules::oci::auth_for(&config, registry) {
            Ok(auth) => Ok(auth),
            Err(problem) if problem.starts_with("has no entry") => Ok(RegistryAuth::Anonymous),
            Err(problem) => bail!("the docker config {} {problem}", path.display()),
        };
    }
    Ok(RegistryAuth::Anonymous)
}

/// Where registry credentials are looked for, in order: podman's and
/// skopeo's REGISTRY_AUTH_FILE, docker's $DOCKER_CONFIG, ~/.docker.
fn docker_configs() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE") {
        paths.push(PathBuf::from(file));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        paths.push(Path::new(&dir).join("config.json"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).join(".docker/config.json"));
    }
    paths
}

fn read_settings(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{} is not JSON or YAML", path.display()))
}

fn read_grant(path: &Path) -> anyhow::Result<Permissions> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let grant: GrantFile = serde_yaml::from_str(&text).with_context(|| {
        format!(
            "{} is not a grant file (bosun inspect --grant)",
            path.display()
        )
    })?;
    Ok(grant.permissions)
}

/// `90s`, `2m`, `1m30s`, `500ms`, or seconds alone.
fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 90s or 2m"))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            _ => return Err(format!("{text:?} is not a duration like 90s or 2m")),
        };
        rest = &rest[unit..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectls() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
