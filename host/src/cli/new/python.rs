//! `bosun new --lang python`: the same module as the Rust scaffold — a
//! custom resource with a `Ready` condition, a reconciler keeping the
//! children it owns (those in `OWNABLE_BY_SCRIPTS`), native tests through
//! `bosun.testing.Harness`, a sample and its CRD — as a Python project
//! built by componentize-py through the Python SDK (`sdks/python`).
//!
//! The SDK is on no registry: `requirements.txt` installs it by `file://`
//! URL from the checkout `new.rs` found, with its pinned build toolchain.

use std::path::Path;

use super::Scaffold;
use super::kinds::Owned;
use super::script::{self, Steps};

/// The files of a Python project for `plan`, the SDK installed from
/// `sdk` (a checkout's `sdks/python`).
pub(super) fn files(plan: &Scaffold, sdk: &Path) -> Vec<(String, String)> {
    let lower = plan.kind.to_lowercase();
    vec![
        ("app.py".to_owned(), app(plan)),
        ("tests/test_app.py".to_owned(), tests(plan)),
        ("conftest.py".to_owned(), CONFTEST.to_owned()),
        (
            "requirements.txt".to_owned(),
            format!(
                "# The bosun SDK for Python with its pinned build toolchain (componentize-py)\n# and pytest. It is on no registry: this is the copy in the bosun checkout\n# `bosun new` found.\nbosun-sdk[build,test] @ file://{}\n",
                sdk.display()
            ),
        ),
        (format!("samples/{lower}.yaml"), plan.sample()),
        ("crd.yaml".to_owned(), plan.crd_yaml()),
        ("README.md".to_owned(), readme(plan)),
        (
            ".gitignore".to_owned(),
            "/.venv\n/target\n__pycache__/\n".to_owned(),
        ),
    ]
}

const CONFTEST: &str =
    "# pytest's rootdir conftest: puts this directory on sys.path so tests import `app`.\n";

fn app(plan: &Scaffold) -> String {
    let owns: String = plan
        .owned
        .iter()
        .map(|o| format!(".owns(kinds.{})", o.kind))
        .collect();
    let children: String = plan
        .owned
        .iter()
        .map(|o| {
            format!(
                "        if ctx.child(kinds.{kind}, obj[\"metadata\"][\"name\"]) is None:\n            waiting.append(\"{kind}\")\n        response = response.child({function}(obj), kinds.{kind})\n",
                kind = o.kind,
                function = super::function_name(o.kind),
            )
        })
        .collect();
    let builders: String = if plan.owned.is_empty() {
        String::new()
    } else {
        let mut builders = String::from(
            "\n\ndef labels(obj: dict[str, Any]) -> dict[str, str]:\n    \"\"\"The labels every child carries.\"\"\"\n    return {\n        \"app.kubernetes.io/name\": obj[\"metadata\"][\"name\"],\n        \"app.kubernetes.io/managed-by\": \"bosun\",\n    }\n",
        );
        for owned in &plan.owned {
            builders.push_str(&builder(owned));
        }
        builders
    };
    plan.substitute(include_str!("python/app.py.tmpl"))
        .replace("{{KIND}}", &plan.kind.to_uppercase())
        .replace("{{summary}}", &plan.summary())
        .replace("{{owns}}", &owns)
        .replace("{{children}}", &children)
        .replace("{{builders}}", &builders)
}

fn builder(owned: &Owned) -> String {
    let field = script::data_field(owned.kind);
    let what = format!("The {} holding the spec's data.", owned.kind);
    format!(
        "\n\ndef {function}(obj: dict[str, Any]) -> dict[str, Any]:\n    \"\"\"{what}\"\"\"\n    return {{\n        \"metadata\": {{\"name\": obj[\"metadata\"][\"name\"], \"labels\": labels(obj)}},\n        \"{field}\": dict(obj[\"spec\"].get(\"data\") or {{}}),\n    }}\n",
        function = super::function_name(owned.kind),
    )
}

fn tests(plan: &Scaffold) -> String {
    let reconciler = format!("{}Reconciler", plan.kind);
    let mut tests = String::new();
    if plan.owned.is_empty() {
        tests.push_str(&format!(
            "\n\ndef test_ready_with_nothing_to_wait_for():\n    outcome = Harness({reconciler}).reconcile(obj())\n    assert ready(outcome)[\"status\"] == \"True\"\n    assert [event.reason for event in outcome.events] == [\"Ready\"]\n"
        ));
    } else {
        for owned in &plan.owned {
            let field = script::data_field(owned.kind);
            tests.push_str(&format!(
                "\n\ndef test_it_keeps_a_{lower}_of_the_spec_data():\n    outcome = Harness({reconciler}).reconcile(obj())\n    child = outcome.child(kinds.{kind}, \"example\")\n    assert child is not None, \"a {kind}\"\n    assert child[\"{field}\"] == {{\"greeting\": \"hello\"}}\n    assert child[\"metadata\"][\"labels\"][\"app.kubernetes.io/managed-by\"] == \"bosun\"\n",
                lower = super::function_name(owned.kind),
                kind = owned.kind,
            ));
        }
        let waiting: Vec<&str> = plan.owned.iter().map(|o| o.kind).collect();
        let observed: String = plan
            .owned
            .iter()
            .map(|o| {
                format!(
                    "    harness.child({{\"metadata\": {{\"name\": \"example\"}}}}, kinds.{})\n",
                    o.kind
                )
            })
            .collect();
        tests.push_str(&format!(
            "\n\ndef test_not_ready_until_every_child_is_observed():\n    outcome = Harness({reconciler}).reconcile(obj())\n    assert ready(outcome)[\"status\"] == \"False\"\n    assert ready(outcome)[\"message\"] == \"waiting for {waiting}\"\n    assert outcome.events == []\n\n\ndef test_ready_once_every_child_is_observed():\n    harness = Harness({reconciler})\n{observed}    outcome = harness.reconcile(obj())\n    assert ready(outcome)[\"status\"] == \"True\"\n    assert [event.reason for event in outcome.events] == [\"Ready\"]\n",
            waiting = waiting.join(", "),
        ));
    }
    plan.substitute(include_str!("python/test_app.py.tmpl"))
        .replace("{{spec_example}}", plan.spec_example())
        .replace("{{tests}}", &tests)
}

/// How a Python project goes on.
pub(super) const STEPS: Steps = Steps {
    build: ".venv with the SDK (the first time), then the Wasm component, checked",
    test: ".venv/bin/pytest -q",
    push: Some((
        " (a Python component is too big for a ConfigMap)",
        " --to oci://REGISTRY/{name}:0.1.0",
    )),
};

fn readme(plan: &Scaffold) -> String {
    let kind = &plan.kind;
    let lower = kind.to_lowercase();
    script::readme(
        plan,
        &STEPS,
        "Python",
        &[
            format!("`app.py`: the `{kind}` reconciler; `WitWorld` is what the component exports."),
            "`tests/test_app.py`: its tests, natively, through `bosun.testing.Harness`.".to_owned(),
            format!("`crd.yaml`: the `{kind}` kind; keep its schema in step with `app.py`."),
            format!("`samples/{lower}.yaml`: an object to try."),
            "`requirements.txt`: the SDK and its pinned toolchain; `bosun build` installs\n  them into `.venv` the first time.".to_owned(),
        ],
    )
}
