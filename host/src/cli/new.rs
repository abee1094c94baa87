//! `bosun new`: a reconciler crate that builds and passes its own tests
//! out of the box — a custom resource with a status that has conditions, a
//! reconciler with a small real behaviour for the kinds it owns, native
//! tests through the SDK's harness, a sample object, its CRD (generated
//! from the Rust type, with the test that keeps it so) and a README with
//! the next commands.

mod go;
mod kinds;
mod python;
mod rust;
mod script;
mod typescript;

pub use go::SDK_MODULE as GO_SDK_MODULE;
pub use script::component_path as script_component_path;

/// The kinds a Python, TypeScript or Go scaffold knows how to own: those
/// whose child is the spec's data. Others are written by hand (see
/// `examples/cnat-python`, `examples/cnat-typescript`, `examples/cnat-go`).
const OWNABLE_BY_SCRIPTS: [&str; 2] = ["ConfigMap", "Secret"];

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

use super::EXIT_BAD_INPUT;
use super::output::fail;
use crate::meta::is_dns_label;
use kinds::{Field, Owned, catalogue, function_name};

/// Arguments of `bosun new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The module's name: a DNS label (`my-app`); also the crate's.
    pub name: String,
    /// Where to create the crate (default: `./NAME`).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The custom resource's API group.
    #[arg(long, default_value = "example.com")]
    pub group: String,
    /// The custom resource's version.
    #[arg(long, default_value = "v1alpha1")]
    pub version: String,
    /// The custom resource's kind (default: NAME in CamelCase).
    #[arg(long)]
    pub kind: Option<String>,
    /// Kinds the reconciler owns, comma-separated: ConfigMap, Secret,
    /// ServiceAccount, Service, Deployment, StatefulSet, Job, Pod.
    #[arg(long, value_delimiter = ',')]
    pub owns: Vec<String>,
    /// Depend on bosun-sdk by this path (default: the bosun checkout the
    /// crate is made in, else the one this binary was built from).
    #[arg(long, value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
    /// Do not run `cargo test` to generate the CRD (do it yourself:
    /// `BOSUN_UPDATE_CRDS=1 cargo test`). Rust only: a Python project's
    /// CRD is written as YAML.
    #[arg(long)]
    pub no_crd: bool,
    /// The language to write the reconciler in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
}

/// The languages `bosun new` writes a module in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A crate on the Rust SDK (`guest-sdk`), built by cargo.
    Rust,
    /// A project on the Python SDK (`sdks/python`), built by componentize-py.
    Python,
    /// A project on the TypeScript SDK (`sdks/typescript`), built by tsc and
    /// componentize-qjs.
    #[value(name = "typescript")]
    TypeScript,
    /// A module on the Go SDK (`sdks/go`), built by mainline Go for wasip1.
    Go,
}

pub(super) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let plan = match Scaffold::plan(args) {
        Ok(plan) => plan,
        Err(error) => return Ok(fail(EXIT_BAD_INPUT, &format!("{error:#}"))),
    };
    plan.write()?;
    eprintln!(
        "created {} ({} {}/{}, owns {})",
        plan.dir.display(),
        plan.kind,
        plan.group,
        plan.version,
        if plan.owned.is_empty() {
            "nothing".to_owned()
        } else {
            plan.owned
                .iter()
                .map(|o| o.kind)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if args.lang != Lang::Rust {
        // The CRD is written as YAML; nothing to generate.
    } else if args.no_crd {
        eprintln!(
            "generate its CRD with: cd {} && BOSUN_UPDATE_CRDS=1 cargo test",
            plan.dir.display()
        );
    } else {
        eprintln!(
            "generating crd.yaml from the Rust type (cargo test; the first build takes a few minutes)"
        );
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&plan.dir)
            .env("BOSUN_UPDATE_CRDS", "1")
            .args([
                "test",
                "--quiet",
                "--test",
                &plan.crate_name,
                "crd_yaml_is_up_to_date",
            ])
            .status()
            .context("running cargo to generate the CRD")?;
        if !status.success() {
            bail!(
                "generating the CRD failed ({status}); the crate is in {}",
                plan.dir.display()
            );
        }
    }
    println!("{}", plan.next_steps());
    Ok(ExitCode::SUCCESS)
}

/// What `bosun new` writes.
struct Scaffold {
    name: String,
    crate_name: String,
    dir: PathBuf,
    group: String,
    version: String,
    kind: String,
    owned: Vec<Owned>,
    sdk: String,
    /// The SDK's directory, absolute.
    sdk_dir: PathBuf,
    lang: Lang,
    /// The lock file of the checkout the SDK comes from: the versions the
    /// SDK is built and tested with.
    lock: Option<PathBuf>,
}

impl Scaffold {
    fn plan(args: &NewArgs) -> anyhow::Result<Scaffold> {
        if !is_dns_label(&args.name) || args.name.starts_with(|c: char| c.is_ascii_digit()) {
            bail!(
                "{:?} cannot be a module's name: a DNS label (lower-case letters, digits and '-'), starting with a letter",
                args.name
            );
        }
        let kind = args.kind.clone().unwrap_or_else(|| camel_case(&args.name));
        if !kind.starts_with(|c: char| c.is_ascii_uppercase())
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            bail!("{kind:?} cannot be a kind: CamelCase letters and digits, like MyApp");
        }
        let known = catalogue();
        let mut owned = Vec::new();
        for wanted in &args.owns {
            let Some(index) = known.iter().position(|o| o.kind == wanted) else {
                bail!(
                    "bosun new does not know how to own {wanted:?}; it knows {}",
                    known.iter().map(|o| o.kind).collect::<Vec<_>>().join(", ")
                );
            };
            if args.lang != Lang::Rust && !OWNABLE_BY_SCRIPTS.contains(&wanted.as_str()) {
                bail!(
                    "bosun new --lang {} knows how to own {}; write a {wanted} child by hand (examples/cnat-{} keeps a Pod)",
                    args.lang.name(),
                    OWNABLE_BY_SCRIPTS.join(" and "),
                    args.lang.name(),
                );
            }
            if owned.iter().any(|o: &Owned| o.kind == wanted) {
                continue;
            }
            owned.push(catalogue().swap_remove(index));
        }
        let dir = args
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(&args.name));
        if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
            bail!("{} exists and is not empty", dir.display());
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        // bosun-sdk is on no registry: a crate depends on it by path, in
        // the checkout it is made in (relative, so the checkout can move),
        // else in the checkout this binary was built from.
        let inside = repository_of(&dir);
        let repository = inside.clone().or_else(built_from);
        let sdk_in_checkout = match args.lang {
            Lang::Rust => "guest-sdk",
            Lang::Python => "sdks/python",
            Lang::TypeScript => "sdks/typescript",
            Lang::Go => "sdks/go",
        };
        let sdk_path = args
            .sdk_path
            .clone()
            .or_else(|| repository.as_ref().map(|repo| repo.join(sdk_in_checkout)))
            .with_context(|| {
                format!(
                    "cannot find bosun-sdk, which is on no registry: this bosun was built from {}, which is gone; pass --sdk-path with a bosun checkout's {sdk_in_checkout}",
                    built_from_dir().display()
                )
            })?;
        let sdk_path = sdk_path
            .canonicalize()
            .with_context(|| format!("the SDK path {} does not exist", sdk_path.display()))?;
        let shown = if inside.is_some() {
            relative_to(&sdk_path, &dir)
        } else {
            sdk_path.clone()
        };
        let sdk = format!("bosun-sdk = {{ path = {:?} }}", shown.display().to_string());
        Ok(Scaffold {
            crate_name: args.name.replace('-', "_"),
            name: args.name.clone(),
            dir,
            group: args.group.clone(),
            version: args.version.clone(),
            kind,
            owned,
            sdk,
            sdk_dir: sdk_path,
            lang: args.lang,
            lock: repository.map(|repo| repo.join("Cargo.lock")),
        })
    }

    fn fields(&self) -> BTreeSet<Field> {
        self.owned
            .iter()
            .flat_map(|o| o.uses.iter().copied())
            .collect()
    }

    fn substitute(&self, template: &str) -> String {
        template
            .replace("{{Kind}}", &self.kind)
            .replace("{{kind}}", &self.kind.to_lowercase())
            .replace("{{name}}", &self.name)
            .replace("{{crate}}", &self.crate_name)
            .replace("{{group}}", &self.group)
            .replace("{{version}}", &self.version)
    }

    fn summary(&self) -> String {
        if self.owned.is_empty() {
            "a custom resource reconciled by a bosun module.".to_owned()
        } else {
            format!(
                "a custom resource that keeps a {} of its name.",
                self.owned
                    .iter()
                    .map(|o| o.kind)
                    .collect::<Vec<_>>()
                    .join(" and a ")
            )
        }
    }

    fn sample(&self) -> String {
        let fields = self.fields();
        let mut spec = BTreeMap::new();
        if fields.contains(&Field::Image) {
            spec.insert("image", "nginx:1.27".to_owned());
        }
        if fields.contains(&Field::Replicas) {
            spec.insert("replicas", "2".to_owned());
        }
        if fields.contains(&Field::Port) {
            spec.insert("port", "8080".to_owned());
        }
        if fields.contains(&Field::Data) {
            spec.insert("data", "{greeting: hello}".to_owned());
        }
        if fields.is_empty() {
            spec.insert("note", "hello".to_owned());
        }
        let spec: String = spec.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect();
        format!(
            "apiVersion: {group}/{version}\nkind: {kind}\nmetadata:\n  name: example\nspec:\n{spec}",
            group = self.group,
            version = self.version,
            kind = self.kind,
        )
    }

    /// The plural kube-derive gives the kind (`to_plural`), which the
    /// SDKs' `custom_kind` computes too: the CRD must agree with both.
    fn plural(&self) -> String {
        let word = self.kind.to_lowercase();
        if word.ends_with('s')
            || word.ends_with('x')
            || word.ends_with('z')
            || word.ends_with("ch")
            || word.ends_with("sh")
        {
            format!("{word}es")
        } else if let Some(stem) = word
            .strip_suffix('y')
            .filter(|stem| stem.chars().last().is_some_and(|c| !"aeiou".contains(c)))
        {
            format!("{stem}ies")
        } else {
            format!("{word}s")
        }
    }

    /// The CRD of a project whose kind is written by hand, not generated
    /// from a Rust type: the same schema the Rust scaffold's derives.
    fn crd_yaml(&self) -> String {
        let spec_schema = if self.owned.is_empty() {
            "              note:\n                description: What the object asks for; add your fields here.\n                type: string\n                default: \"\""
        } else {
            "              data:\n                description: Data handed to the application.\n                type: object\n                default: {}\n                additionalProperties:\n                  type: string"
        };
        self.substitute(include_str!("new/crd.yaml.tmpl"))
            .replace("{{plural}}", &self.plural())
            .replace("{{spec_schema}}", spec_schema)
    }

    /// The sample's spec as JSON, for the scripts' tests.
    fn spec_example(&self) -> &'static str {
        if self.owned.is_empty() {
            "{\"note\": \"hello\"}"
        } else {
            "{\"data\": {\"greeting\": \"hello\"}}"
        }
    }

    fn next_steps(&self) -> String {
        match self.lang {
            Lang::Python => return script::next_steps(self, &python::STEPS),
            Lang::TypeScript => return script::next_steps(self, &typescript::STEPS),
            Lang::Go => return script::next_steps(self, &go::STEPS),
            Lang::Rust => {}
        }
        let dir = self.dir.display();
        let kind = self.kind.to_lowercase();
        format!(
            "next:\n  cd {dir}\n  cargo test                                  # the reconciler, natively\n  bosun build                                 # the Wasm component, checked\n  bosun reconcile target/wasm32-wasip2/guest/{crate_name}.wasm --object samples/{kind}.yaml\n  kubectl apply -f crd.yaml                   # then, in a cluster:\n  bosun push target/wasm32-wasip2/guest/{crate_name}.wasm --name {name}",
            crate_name = self.crate_name,
            name = self.name,
        )
    }

    fn write(&self) -> anyhow::Result<()> {
        match self.lang {
            Lang::Rust => self.write_crate(),
            Lang::Python => write_files(&self.dir, python::files(self, &self.sdk_dir)),
            Lang::TypeScript => write_files(&self.dir, typescript::files(self, &self.sdk_dir)),
            Lang::Go => {
                write_files(&self.dir, go::files(self, &self.sdk_dir))?;
                // Formatted as gofmt would; it is the author's code from now on.
                let _ = Command::new("gofmt")
                    .arg("-w")
                    .arg(self.dir.join("main.go"))
                    .arg(self.dir.join("main_test.go"))
                    .status();
                Ok(())
            }
        }
    }
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::TypeScript => "typescript",
            Lang::Go => "go",
        }
    }
}

/// The commands `bosun new` prints, as a README's shell block: without
/// the `cd` into the project, whose README this is (and which may move).
fn readme_commands(next_steps: &str) -> String {
    let lines: Vec<&str> = next_steps
        .lines()
        .skip(1)
        .map(str::trim_start)
        .filter(|line| !line.starts_with("cd "))
        .collect();
    format!("```sh\n{}\n```", lines.join("\n"))
}

fn write_files(dir: &Path, files: Vec<(String, String)>) -> anyhow::Result<()> {
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The bosun repository `dir` is in, if any.
fn repository_of(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|d| is_checkout(d)).map(Path::to_owned)
}

/// The bosun checkout this binary was built from, while it is there.
fn built_from() -> Option<PathBuf> {
    let checkout = built_from_dir();
    is_checkout(&checkout).then_some(checkout)
}

fn built_from_dir() -> PathBuf {
    // The host crate's directory, recorded at compile time; its parent is
    // the checkout.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("/"))
        .to_owned()
}

fn is_checkout(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("guest-sdk/Cargo.toml"))
        .is_ok_and(|toml| toml.contains("name = \"bosun-sdk\""))
}

/// `path` relative to `base` (both absolute).
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let path: Vec<_> = path.components().collect();
    let base: Vec<_> = base.components().collect();
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &path[common..] {
        relative.push(part);
    }
    relative
}

fn camel_case(name: &str) -> String {
    name.split('-').map(capitalize).collect()
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_kinds_and_functions() {
        assert_eq!(camel_case("my-app"), "MyApp");
        assert_eq!(function_name("StatefulSet"), "stateful_set");
        assert_eq!(function_name("ConfigMap"), "config_map");
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative_to(Path::new("/repo/guest-sdk"), Path::new("/repo/apps/mine")),
            PathBuf::from("../../guest-sdk")
        );
    }
}
