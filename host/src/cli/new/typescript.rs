//! `bosun new --lang typescript`: the same module as the Rust scaffold — a
//! custom resource with a `Ready` condition, a reconciler keeping the
//! children it owns (those in `OWNABLE_BY_SCRIPTS`), native tests through
//! `Harness` under `node --test`, a sample and its CRD — as an npm package
//! built by tsc and the TypeScript SDK's `bosun-build` (componentize-qjs).
//!
//! The SDK is on no registry: `package.json` depends on it by `file:` path
//! in the checkout `new.rs` found, with the versions of tsc and the Node
//! types the SDK itself pins.

use std::path::Path;

use super::Scaffold;
use super::script::{self, Steps, component_path};

/// The files of an npm package for `plan`, the SDK depended on at `sdk` (a
/// checkout's `sdks/typescript`).
pub(super) fn files(plan: &Scaffold, sdk: &Path) -> Vec<(String, String)> {
    let lower = plan.kind.to_lowercase();
    vec![
        ("src/app.ts".to_owned(), app(plan)),
        ("test/app.test.ts".to_owned(), tests(plan)),
        ("package.json".to_owned(), package_json(plan, sdk)),
        (
            "tsconfig.json".to_owned(),
            include_str!("typescript/tsconfig.json").to_owned(),
        ),
        (format!("samples/{lower}.yaml"), plan.sample()),
        ("crd.yaml".to_owned(), plan.crd_yaml()),
        ("README.md".to_owned(), readme(plan)),
        (
            ".gitignore".to_owned(),
            "/node_modules\n/dist\n/target\n".to_owned(),
        ),
    ]
}

fn package_json(plan: &Scaffold, sdk: &Path) -> String {
    let component = component_path(&plan.dir);
    let component = component.strip_prefix(&plan.dir).unwrap_or(&component);
    // Written by hand rather than through serde_json, whose maps sort their
    // keys: a package.json reads name first.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    format!(
        r#"{{
  "name": {name},
  "version": "0.1.0",
  "private": true,
  "description": {description},
  "type": "module",
  "scripts": {{
    "build": {build},
    "test": "tsc && node --test dist/test/"
  }},
  "dependencies": {{
    "@bosun/sdk": {sdk}
  }},
  "devDependencies": {{
    "@types/node": "20.19.9",
    "typescript": "5.9.3"
  }}
}}
"#,
        name = quoted(&plan.name),
        description = quoted(&format!(
            "{}: a bosun reconciler module, made by bosun new",
            plan.kind
        )),
        build = quoted(&format!(
            "tsc && bosun-build dist/src/app.js -o {}",
            component.display()
        )),
        sdk = quoted(&format!("file:{}", sdk.display())),
    )
}

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
                "    if (ctx.child(kinds.{kind}, obj.metadata.name) === undefined) {{\n      waiting.push(\"{kind}\");\n    }}\n    response = response.child({function}(obj), kinds.{kind});\n",
                kind = o.kind,
                function = script::lower_camel(&super::function_name(o.kind)),
            )
        })
        .collect();
    let builders: String = if plan.owned.is_empty() {
        String::new()
    } else {
        let mut builders = format!(
            "\n/** The labels every child carries. */\nexport function labels(obj: {kind}): Record<string, string> {{\n  return {{\n    \"app.kubernetes.io/name\": obj.metadata.name,\n    \"app.kubernetes.io/managed-by\": \"bosun\",\n  }};\n}}\n",
            kind = plan.kind
        );
        for owned in &plan.owned {
            let field = script::data_field(owned.kind);
            let what = format!("The {} holding the spec's data.", owned.kind);
            builders.push_str(&format!(
                "\n/** {what} */\nexport function {function}(obj: {kind}): KubeObject {{\n  return {{\n    metadata: {{ name: obj.metadata.name, labels: labels(obj) }},\n    {field}: {{ ...(obj.spec.data ?? {{}}) }},\n  }};\n}}\n",
                function = script::lower_camel(&super::function_name(owned.kind)),
                kind = plan.kind,
            ));
        }
        builders
    };
    let spec_type = if plan.owned.is_empty() {
        "{ note?: string }"
    } else {
        "{ data?: Record<string, string> }"
    };
    plan.substitute(include_str!("typescript/app.ts.tmpl"))
        .replace("{{KIND}}", &plan.kind.to_uppercase())
        .replace("{{summary}}", &plan.summary())
        .replace("{{spec_type}}", spec_type)
        .replace("{{owns}}", &owns)
        .replace("{{children}}", &children)
        .replace("{{builders}}", &builders)
}

fn tests(plan: &Scaffold) -> String {
    let reconciler = format!("{}Reconciler", plan.kind);
    let mut tests = String::new();
    if plan.owned.is_empty() {
        tests.push_str(&format!(
            "\ntest(\"ready with nothing to wait for\", () => {{\n  const outcome = new Harness({reconciler}).reconcile(obj());\n  assert.equal(ready(outcome).status, \"True\");\n  assert.deepEqual(outcome.events.map((e) => e.reason), [\"Ready\"]);\n}});\n"
        ));
    } else {
        for owned in &plan.owned {
            let field = script::data_field(owned.kind);
            tests.push_str(&format!(
                "\ntest(\"it keeps a {kind} of the spec's data\", () => {{\n  const outcome = new Harness({reconciler}).reconcile(obj());\n  const child = outcome.child(kinds.{kind}, \"example\");\n  assert.ok(child, \"a {kind}\");\n  assert.deepEqual(child[\"{field}\"], {{ greeting: \"hello\" }});\n  assert.equal(child.metadata?.labels?.[\"app.kubernetes.io/managed-by\"], \"bosun\");\n}});\n",
                kind = owned.kind,
            ));
        }
        let waiting: Vec<&str> = plan.owned.iter().map(|o| o.kind).collect();
        let observed: String = plan
            .owned
            .iter()
            .map(|o| {
                format!(
                    "    .child({{ metadata: {{ name: \"example\" }} }}, kinds.{})\n",
                    o.kind
                )
            })
            .collect();
        tests.push_str(&format!(
            "\ntest(\"not ready until every child is observed\", () => {{\n  const outcome = new Harness({reconciler}).reconcile(obj());\n  assert.equal(ready(outcome).status, \"False\");\n  assert.equal(ready(outcome).message, \"waiting for {waiting}\");\n  assert.deepEqual(outcome.events, []);\n}});\n\ntest(\"ready once every child is observed\", () => {{\n  const outcome = new Harness({reconciler})\n{observed}    .reconcile(obj());\n  assert.equal(ready(outcome).status, \"True\");\n  assert.deepEqual(outcome.events.map((e) => e.reason), [\"Ready\"]);\n}});\n",
            waiting = waiting.join(", "),
        ));
    }
    let spec_example = if plan.owned.is_empty() {
        "{ note: \"hello\" }"
    } else {
        "{ data: { greeting: \"hello\" } }"
    };
    plan.substitute(include_str!("typescript/app.test.ts.tmpl"))
        .replace("{{spec_example}}", spec_example)
        .replace("{{tests}}", &tests)
}

/// How a TypeScript package goes on.
pub(super) const STEPS: Steps = Steps {
    build: "npm install (the first time), tsc, then the Wasm component, checked",
    test: "npm test",
    push: None,
};

fn readme(plan: &Scaffold) -> String {
    let kind = &plan.kind;
    let lower = kind.to_lowercase();
    script::readme(
        plan,
        &STEPS,
        "TypeScript",
        &[
            format!("`src/app.ts`: the `{kind}` reconciler; the module's default export is what the component exports."),
            "`test/app.test.ts`: its tests, natively, through `Harness` from `@bosun/sdk/testing`.".to_owned(),
            format!("`crd.yaml`: the `{kind}` kind; keep its schema in step with `src/app.ts`."),
            format!("`samples/{lower}.yaml`: an object to try."),
            "`package.json`: the SDK (by path: it is on no registry) and the pinned tsc;\n  `bosun build` runs `npm install` the first time.".to_owned(),
        ],
    )
}
