//! What the Python and TypeScript scaffolds share: where `bosun build`
//! writes their component, the commands to go on with, and the README.

use std::path::{Path, PathBuf};

use super::Scaffold;

/// Where `bosun build` writes the component of a Python or TypeScript
/// project in `dir`: `target/<the directory's name>.wasm`.
pub fn component_path(dir: &Path) -> PathBuf {
    // `bosun build` in the project itself names it `.`: the name is the
    // directory's own.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("module")
        .to_owned();
    dir.join("target").join(format!("{name}.wasm"))
}

/// How a language's project goes on after `bosun new`.
pub(super) struct Steps {
    /// What `bosun build` does, as a comment.
    pub build: &'static str,
    /// The command that runs the project's own tests.
    pub test: &'static str,
    /// Why and how `bosun push` sends the component elsewhere than a
    /// ConfigMap, when it must.
    pub push: Option<(&'static str, &'static str)>,
}

/// The commands to go on with, as `bosun new` prints them.
pub(super) fn next_steps(plan: &Scaffold, steps: &Steps) -> String {
    let dir = plan.dir.display();
    let component = component_path(&plan.dir);
    let component = component
        .strip_prefix(&plan.dir)
        .unwrap_or(&component)
        .display();
    let (why, to) = steps.push.unwrap_or(("", ""));
    format!(
        "next:\n  cd {dir}\n  bosun build                                 # {build}\n  {test:<43} # the reconciler, natively\n  bosun reconcile {component} --object samples/{kind}.yaml\n  kubectl apply -f crd.yaml                   # then, in a cluster{why}:\n  bosun push {component} --name {name}{to}",
        build = steps.build,
        test = steps.test,
        kind = plan.kind.to_lowercase(),
        name = plan.name,
        to = to.replace("{name}", &plan.name),
    )
}

/// The project's README: what it is, the commands, and its files.
pub(super) fn readme(plan: &Scaffold, steps: &Steps, language: &str, files: &[String]) -> String {
    let files: String = files.iter().map(|line| format!("- {line}\n")).collect();
    format!(
        "# {name}\n\n{summary}\n\nA [bosun](https://github.com/bosun-dev/bosun) reconciler module in {language}, made by\n`bosun new --lang {lang}`.\n\n{commands}\n\n{files}",
        name = plan.name,
        summary = super::capitalize(&plan.summary()),
        lang = language.to_lowercase(),
        commands = super::readme_commands(&next_steps(plan, steps)),
    )
}

/// The field of an owned kind's child that holds the spec's data: a
/// Secret's `stringData` (the API server encodes it), else `data`.
pub(super) fn data_field(kind: &str) -> &'static str {
    if kind == "Secret" {
        "stringData"
    } else {
        "data"
    }
}

/// A Rust function name as the scripts spell theirs: `config_map` →
/// `configMap`.
pub(super) fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
