//! `bosun new` for Rust: a crate on the SDK (`guest-sdk`) whose CRD is
//! generated from the Rust type by its own test.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use super::kinds::{Field, Owned, function_name};
use super::{Scaffold, capitalize, readme_commands, write_files};

impl Scaffold {
    pub(super) fn lib(&self) -> String {
        let fields = self.fields();
        let spec_fields: String = if fields.is_empty() {
            "    /// What the object asks for; add your fields here.\n    #[serde(default)]\n    pub note: String,\n".to_owned()
        } else {
            fields.iter().map(|f| f.declaration()).collect()
        };
        let defaults: String = fields
            .iter()
            .filter_map(|f| f.default_fn())
            .map(|f| format!("\n{f}"))
            .collect();
        let owns: String = self
            .owned
            .iter()
            .map(|o| format!("\n            .owns::<{}>()", o.kind))
            .collect();
        let validation = if fields.contains(&Field::Replicas) {
            "        if object.spec.replicas < 0 {\n            // No retry can fix this: the user must change the object.\n            return Err(Error::permanent(\n                \"InvalidSpec\",\n                format!(\"spec.replicas is {}; it cannot be negative\", object.spec.replicas),\n            ));\n        }\n"
        } else {
            ""
        };
        let children: String = self
            .owned
            .iter()
            .map(|o| {
                let function = function_name(o.kind);
                format!(
                    "        let observed = ctx.child::<{kind}>(&name)?;\n        let child_ready = {ready};\n        if !child_ready {{\n            waiting.push(\"{kind}\");\n        }}\n        response = response.child({function}(object, &labels));\n",
                    kind = o.kind,
                    ready = o.ready,
                )
            })
            .collect();
        let (prelude, std_imports, builders) = if self.owned.is_empty() {
            (
                "        let waiting: Vec<&str> = Vec::new();\n        let mut response = Response::new();\n",
                if fields.contains(&Field::Data) {
                    "use std::collections::BTreeMap;\n\n"
                } else {
                    ""
                },
                String::new(),
            )
        } else {
            (
                "        let name = object.name_any();\n        let labels = labels(object);\n        let mut response = Response::new();\n        // What is not ready yet, for the Ready condition.\n        let mut waiting: Vec<&str> = Vec::new();\n",
                "use std::collections::BTreeMap;\n\n",
                std::iter::once(LABELS_FN.to_owned())
                    .chain(self.owned.iter().map(|o| o.builder.clone()))
                    .collect(),
            )
        };
        self.substitute(include_str!("lib.rs.tmpl"))
            .replace("{{summary}}", &self.summary())
            .replace("{{imports}}", &imports(&self.owned))
            .replace("{{spec_fields}}", &spec_fields)
            .replace("{{defaults}}", &defaults)
            .replace("{{owns}}", &owns)
            .replace("{{validation}}", validation)
            .replace("{{prelude}}", prelude)
            .replace("{{std_imports}}", std_imports)
            .replace("{{children}}", &children)
            .replace("{{builders}}", &self.substitute(&builders))
    }

    pub(super) fn tests(&self) -> String {
        let test_imports: String = self
            .owned
            .iter()
            .map(|o| format!("use k8s_openapi::api::{};\n", o.imports[0]))
            .collect();
        let child_asserts: String = self
            .owned
            .iter()
            .map(|o| {
                format!(
                    "    assert!(outcome.child::<{kind}>(\"example\").is_some(), \"a {kind}\");\n",
                    kind = o.kind
                )
            })
            .collect();
        let ready_children: String = self
            .owned
            .iter()
            .map(|o| {
                format!(
                    "        .child({{\n            let name = \"example\";\n            {}\n        }})\n",
                    o.ready_example
                )
            })
            .collect();
        let extra = if self.fields().contains(&Field::Replicas) {
            format!(
                "\n#[test]\nfn negative_replicas_are_a_permanent_error() {{\n    let mut broken = object();\n    broken.spec.replicas = -1;\n    let error = Harness::<{kind}Reconciler>::new().reconcile(&broken).unwrap_err();\n    assert!(error.to_string().contains(\"cannot be negative\"), \"{{error}}\");\n}}\n",
                kind = self.kind
            )
        } else {
            String::new()
        };
        self.substitute(include_str!("tests.rs.tmpl"))
            .replace("{{test_imports}}", &test_imports)
            .replace("{{child_asserts}}", &child_asserts)
            .replace(
                "{{ready_assert}}",
                if self.owned.is_empty() {
                    "    assert!(conditions::is_true(&status.conditions, \"Ready\"), \"nothing to wait for\");"
                } else {
                    "    assert!(\n        !conditions::is_true(&status.conditions, \"Ready\"),\n        \"not ready before its children are\"\n    );"
                },
            )
            .replace("{{ready_children}}", &ready_children)
            .replace("{{extra_tests}}", &extra)
    }

    pub(super) fn cargo_toml(&self) -> String {
        format!(
            r#"[package]
name = "{name}"
description = "{summary}"
version = "0.1.0"
edition = "2024"
publish = false

# A crate of its own, even inside another workspace.
[workspace]

[lib]
# cdylib: the Wasm component; rlib: the native tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
{sdk}
k8s-openapi = {{ version = "0.29", default-features = false, features = ["std", "v1_35"] }}
kube = {{ version = "5", default-features = false, features = ["derive"] }}
schemars = "1"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# Native tests build heavy dependencies: optimised, they stay quick.
[profile.dev.package."*"]
opt-level = 1

# What `bosun build` builds: a small component (it fits a ConfigMap and
# compiles fast in the host), as bosun's own examples are built.
[profile.guest]
inherits = "release"
opt-level = "s"
lto = true
codegen-units = 1
debug = false
strip = true
"#,
            name = self.name,
            summary = self.summary(),
            sdk = self.sdk,
        )
    }

    pub(super) fn readme(&self) -> String {
        format!(
            "# {name}\n\n{summary_upper}\n\nA [bosun](https://github.com/bosun-dev/bosun) reconciler module, made by `bosun new`.\n\n{steps}\n\n- `src/lib.rs`: the `{kind}` custom resource and its reconciler.\n- `tests/{crate_name}.rs`: its tests; they also keep `crd.yaml` in step with the Rust type\n  (`BOSUN_UPDATE_CRDS=1 cargo test` rewrites it).\n- `samples/{lower}.yaml`: an object to try.\n",
            name = self.name,
            summary_upper = capitalize(&self.summary()),
            steps = readme_commands(&self.next_steps()),
            kind = self.kind,
            crate_name = self.crate_name,
            lower = self.kind.to_lowercase(),
        )
    }

    pub(super) fn write_crate(&self) -> anyhow::Result<()> {
        let files = [
            ("Cargo.toml".to_owned(), self.cargo_toml()),
            ("src/lib.rs".to_owned(), self.lib()),
            (format!("tests/{}.rs", self.crate_name), self.tests()),
            (
                format!("samples/{}.yaml", self.kind.to_lowercase()),
                self.sample(),
            ),
            ("README.md".to_owned(), self.readme()),
            (".gitignore".to_owned(), "/target\n".to_owned()),
            // Written by the CRD test; present so a crate made with
            // --no-crd fails that test until it is generated.
            ("crd.yaml".to_owned(), String::new()),
        ];
        write_files(&self.dir, files.into())?;
        if let Some(lock) = self.lock.as_ref().filter(|lock| lock.is_file()) {
            std::fs::copy(lock, self.dir.join("Cargo.lock"))?;
        }
        // Formatted as rustfmt would; it is the author's code from now on.
        let _ = Command::new("rustfmt")
            .args(["--edition", "2024"])
            .arg(self.dir.join("src/lib.rs"))
            .arg(self.dir.join(format!("tests/{}.rs", self.crate_name)))
            .status();
        Ok(())
    }
}

/// The labels every child carries.
const LABELS_FN: &str = r#"
/// The labels every child carries.
fn labels(object: &{{Kind}}) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name".to_owned(), object.name_any()),
        ("app.kubernetes.io/managed-by".to_owned(), "bosun".to_owned()),
    ]
    .into()
}
"#;

/// The `use` lines for the k8s-openapi items the owned kinds use.
fn imports(owned: &[Owned]) -> String {
    let mut by_module: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for item in owned.iter().flat_map(|o| o.imports.iter()) {
        if *item == "LabelSelector" {
            by_module
                .entry("apimachinery::pkg::apis::meta::v1")
                .or_default()
                .insert("LabelSelector");
            continue;
        }
        if let Some((module, name)) = item.rsplit_once("::") {
            by_module.entry(module).or_default().insert(name);
        }
    }
    by_module
        .into_iter()
        .map(|(module, names)| {
            let prefix = if module.starts_with("apimachinery") {
                "k8s_openapi"
            } else {
                "k8s_openapi::api"
            };
            let names: Vec<&str> = names.into_iter().collect();
            if names.len() == 1 {
                format!("use {prefix}::{module}::{};\n", names[0])
            } else {
                format!("use {prefix}::{module}::{{{}}};\n", names.join(", "))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::new::kinds::catalogue;

    #[test]
    fn imports_are_grouped_by_module() {
        let owned: Vec<Owned> = catalogue()
            .into_iter()
            .filter(|o| o.kind == "Deployment" || o.kind == "Service")
            .collect();
        let text = imports(&owned);
        assert!(
            text.contains("use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};"),
            "{text}"
        );
        assert!(
            text.contains("use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;"),
            "{text}"
        );
    }
}
