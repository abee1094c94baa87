//! `bosun new --lang go`: the same module as the Rust scaffold — a custom
//! resource with a `Ready` condition, a reconciler keeping the children it
//! owns (those in `OWNABLE_BY_SCRIPTS`), native tests through `bosuntest`
//! under `go test`, a sample and its CRD — as a Go module built by mainline
//! Go for wasip1 and made a component by `bosun build`.
//!
//! The SDK is on no module proxy: `go.mod` replaces its module path with
//! the checkout `new.rs` found.

use std::path::Path;

use super::Scaffold;
use super::kinds::Owned;
use super::script::{self, Steps};

/// The SDK's module path, which `go.mod` replaces with the checkout's copy.
pub const SDK_MODULE: &str = "github.com/bosun-dev/bosun/sdks/go";

/// How a Go module goes on.
pub(super) const STEPS: Steps = Steps {
    build: "go build for wasip1, then the Wasm component, checked",
    test: "go test ./...",
    push: None,
};

/// The files of a Go module for `plan`, the SDK at `sdk` (a checkout's
/// `sdks/go`).
pub(super) fn files(plan: &Scaffold, sdk: &Path) -> Vec<(String, String)> {
    let lower = plan.kind.to_lowercase();
    vec![
        ("main.go".to_owned(), main_go(plan)),
        ("main_test.go".to_owned(), tests(plan)),
        (
            "go.mod".to_owned(),
            format!(
                "module {name}\n\ngo 1.24\n\nrequire {SDK_MODULE} v0.0.0\n\n// The SDK is on no module proxy: this is the copy in the bosun checkout\n// `bosun new` found.\nreplace {SDK_MODULE} => {sdk}\n",
                name = plan.name,
                sdk = sdk.display()
            ),
        ),
        (format!("samples/{lower}.yaml"), plan.sample()),
        ("crd.yaml".to_owned(), plan.crd_yaml()),
        ("README.md".to_owned(), readme(plan)),
        (".gitignore".to_owned(), "/target\n".to_owned()),
    ]
}

fn kinds_import(plan: &Scaffold) -> &'static str {
    if plan.owned.is_empty() {
        ""
    } else {
        "\t\"github.com/bosun-dev/bosun/sdks/go/kinds\"\n"
    }
}

fn main_go(plan: &Scaffold) -> String {
    let owns: String = plan
        .owned
        .iter()
        .map(|o| format!(".Owns(kinds.{})", o.kind))
        .collect();
    let children: String = plan
        .owned
        .iter()
        .map(|o| {
            format!(
                "\t{{\n\t\tvar observed map[string]any\n\t\tfound, err := ctx.Child(kinds.{kind}, obj.Metadata.Name, &observed)\n\t\tif err != nil {{\n\t\t\treturn nil, err\n\t\t}}\n\t\tif !found {{\n\t\t\twaiting = append(waiting, \"{kind}\")\n\t\t}}\n\t\tresponse.Child({function}(obj), kinds.{kind})\n\t}}\n",
                kind = o.kind,
                function = script::lower_camel(&super::function_name(o.kind)),
            )
        })
        .collect();
    let builders: String = if plan.owned.is_empty() {
        String::new()
    } else {
        let mut builders = format!(
            "\n// labels are the labels every child carries.\nfunc labels(obj *{kind}) map[string]string {{\n\treturn map[string]string{{\n\t\t\"app.kubernetes.io/name\":       obj.Metadata.Name,\n\t\t\"app.kubernetes.io/managed-by\": \"bosun\",\n\t}}\n}}\n",
            kind = plan.kind
        );
        for owned in &plan.owned {
            builders.push_str(&builder(plan, owned));
        }
        builders
    };
    let spec_fields = if plan.owned.is_empty() {
        "\t// What the object asks for; add your fields here.\n\tNote string `json:\"note,omitempty\"`\n"
    } else {
        "\t// Data handed to the application.\n\tData map[string]string `json:\"data,omitempty\"`\n"
    };
    plan.substitute(include_str!("go/main.go.tmpl"))
        .replace("{{KIND}}", &plan.kind.to_uppercase())
        .replace("{{summary}}", &plan.summary())
        .replace("{{kinds_import}}", kinds_import(plan))
        .replace("{{spec_fields}}", spec_fields)
        .replace("{{owns}}", &owns)
        .replace("{{children}}", &children)
        .replace("{{builders}}", &builders)
}

fn builder(plan: &Scaffold, owned: &Owned) -> String {
    format!(
        "\n// {function} is the {kind} holding the spec's data.\nfunc {function}(obj *{ty}) map[string]any {{\n\tdata := obj.Spec.Data\n\tif data == nil {{\n\t\tdata = map[string]string{{}}\n\t}}\n\treturn map[string]any{{\n\t\t\"metadata\": map[string]any{{\"name\": obj.Metadata.Name, \"labels\": labels(obj)}},\n\t\t\"{field}\": data,\n\t}}\n}}\n",
        function = script::lower_camel(&super::function_name(owned.kind)),
        kind = owned.kind,
        ty = plan.kind,
        field = script::data_field(owned.kind),
    )
}

fn tests(plan: &Scaffold) -> String {
    let reconciler = format!("{}Reconciler", plan.kind);
    let harness = format!("bosuntest.New[{}]({reconciler}{{}})", plan.kind);
    let mut tests = String::new();
    if plan.owned.is_empty() {
        tests.push_str(&format!(
            "\nfunc TestReadyWithNothingToWaitFor(t *testing.T) {{\n\toutcome := reconcile(t, {harness})\n\tif got := ready(t, outcome).Status; got != \"True\" {{\n\t\tt.Fatalf(\"Ready is %s\", got)\n\t}}\n\tif got := reasons(outcome); len(got) != 1 || got[0] != \"Ready\" {{\n\t\tt.Fatalf(\"events %v\", got)\n\t}}\n}}\n"
        ));
    } else {
        for owned in &plan.owned {
            tests.push_str(&format!(
                "\nfunc TestItKeepsA{kind}OfTheSpecData(t *testing.T) {{\n\toutcome := reconcile(t, {harness})\n\tvar children []map[string]any\n\tif err := outcome.ChildrenOf(kinds.{kind}, &children); err != nil || len(children) != 1 {{\n\t\tt.Fatalf(\"one {kind} (err %v): %v\", err, children)\n\t}}\n\tdata, _ := children[0][\"{field}\"].(map[string]any)\n\tif data[\"greeting\"] != \"hello\" {{\n\t\tt.Fatalf(\"{field} %v\", children[0][\"{field}\"])\n\t}}\n\tlabels, _ := children[0][\"metadata\"].(map[string]any)[\"labels\"].(map[string]any)\n\tif labels[\"app.kubernetes.io/managed-by\"] != \"bosun\" {{\n\t\tt.Fatalf(\"labels %v\", labels)\n\t}}\n}}\n",
                kind = owned.kind,
                field = script::data_field(owned.kind),
            ));
        }
        let waiting: Vec<&str> = plan.owned.iter().map(|o| o.kind).collect();
        let observed: String = plan
            .owned
            .iter()
            .map(|o| {
                format!(
                    "\th.Child(map[string]any{{\"metadata\": map[string]any{{\"name\": \"example\"}}}}, kinds.{})\n",
                    o.kind
                )
            })
            .collect();
        tests.push_str(&format!(
            "\nfunc TestNotReadyUntilEveryChildIsObserved(t *testing.T) {{\n\toutcome := reconcile(t, {harness})\n\tcondition := ready(t, outcome)\n\tif condition.Status != \"False\" || condition.Message != \"waiting for {waiting}\" {{\n\t\tt.Fatalf(\"Ready %+v\", condition)\n\t}}\n\tif got := reasons(outcome); len(got) != 0 {{\n\t\tt.Fatalf(\"events %v\", got)\n\t}}\n}}\n\nfunc TestReadyOnceEveryChildIsObserved(t *testing.T) {{\n\th := {harness}\n{observed}\toutcome := reconcile(t, h)\n\tif got := ready(t, outcome).Status; got != \"True\" {{\n\t\tt.Fatalf(\"Ready is %s\", got)\n\t}}\n\tif got := reasons(outcome); len(got) != 1 || got[0] != \"Ready\" {{\n\t\tt.Fatalf(\"events %v\", got)\n\t}}\n}}\n",
            waiting = waiting.join(", "),
        ));
    }
    let spec_example = if plan.owned.is_empty() {
        format!("{}Spec{{Note: \"hello\"}}", plan.kind)
    } else {
        format!(
            "{}Spec{{Data: map[string]string{{\"greeting\": \"hello\"}}}}",
            plan.kind
        )
    };
    plan.substitute(include_str!("go/main_test.go.tmpl"))
        .replace("{{kinds_import}}", kinds_import(plan))
        .replace("{{spec_example}}", &spec_example)
        .replace("{{tests}}", &tests)
}

fn readme(plan: &Scaffold) -> String {
    let kind = &plan.kind;
    let lower = kind.to_lowercase();
    script::readme(
        plan,
        &STEPS,
        "Go",
        &[
            format!(
                "`main.go`: the `{kind}` custom resource and its reconciler, exported in `init`."
            ),
            "`main_test.go`: its tests, natively, through `bosuntest` under `go test`.".to_owned(),
            format!("`crd.yaml`: the `{kind}` kind; keep its schema in step with `main.go`."),
            format!("`samples/{lower}.yaml`: an object to try."),
            "`go.mod`: the SDK, by `replace` to a bosun checkout (it is on no module proxy)."
                .to_owned(),
        ],
    )
}
