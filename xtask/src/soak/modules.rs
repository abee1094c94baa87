//! The modules each lane runs, what each is granted, and the hot swap.
//!
//! Every lane runs cnat, webapp and mirror confined to its apps namespace,
//! and misbehave to its apps namespace (the honest tenant) and its hostile
//! one. The grants are what `bosun inspect --grant` prints for each
//! component, with the namespaces set.
//!
//! - The steady host reads them from its `--modules-dir`: `NAME.wasm` and
//!   `NAME.grant.json`. A swap writes the other webapp's bytes beside
//!   `webapp.wasm` and renames them over it, as a deploy does.
//! - The pair reads them from ReconcilerModules, which `bosun push`
//!   writes (the component in a ConfigMap in `bosun-system`, its digest
//!   pinned, the grant in `spec.permissions`). A swap pushes the other
//!   webapp under the same name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::checks::grants::Granted;
use super::cluster::{Lane, SYSTEM_NAMESPACE};

/// The modules every lane runs, by package.
const PACKAGES: [&str; 4] = ["cnat", "webapp", "mirror", "misbehave"];

/// The components and what each lane grants them.
pub struct Modules {
    binary: PathBuf,
    cache: PathBuf,
    /// Each package's component.
    files: BTreeMap<&'static str, PathBuf>,
    /// webapp's second version (labels every child `revision: 2`).
    webapp_next: PathBuf,
    /// Each lane's grant files, by module.
    grants: BTreeMap<(Lane, &'static str), PathBuf>,
    /// What the audit judges against.
    pub granted: Vec<Granted>,
    /// Where the steady host's modules are.
    pub steady_dir: PathBuf,
}

impl Modules {
    /// Builds the guests, compiles them into the shared compile cache and
    /// writes each lane's grants; fills the steady host's modules directory.
    pub fn prepare(binary: &Path, cache: &Path, out: &Path) -> Result<Modules> {
        let mut files = BTreeMap::new();
        for package in PACKAGES {
            files.insert(
                package,
                bosun_testenv::guests::path(package).context("building the guests")?,
            );
        }
        let webapp_next = bosun_testenv::guests::webapp_next().context("building webapp-next")?;
        for file in files.values().chain([&webapp_next]) {
            crate::bench::fleet::compile_into_cache_with(binary, cache, file)?;
        }
        let grants_dir = out.join("grants");
        let steady_dir = out.join("steady-modules");
        for dir in [&grants_dir, &steady_dir] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
            std::fs::create_dir_all(dir)?;
        }
        let mut grants = BTreeMap::new();
        let mut granted = Vec::new();
        for lane in Lane::ALL {
            for package in PACKAGES {
                let mut grant = inspect_grant(binary, cache, &files[package])?;
                let namespaces = if package == "misbehave" {
                    json!(lane.namespaces())
                } else {
                    json!([lane.apps()])
                };
                grant["permissions"]["namespaces"] = namespaces;
                let module = grant["module"].as_str().unwrap_or(package).to_owned();
                let file = grants_dir.join(format!("{}-{module}.grant.json", lane.name()));
                std::fs::write(&file, serde_json::to_string_pretty(&grant)?)?;
                if lane == Lane::Steady {
                    std::fs::copy(&file, steady_dir.join(format!("{module}.grant.json")))?;
                    std::fs::copy(&files[package], steady_dir.join(format!("{module}.wasm")))?;
                }
                granted.push(Granted::from_grant(lane, &grant)?);
                grants.insert((lane, package), file);
            }
        }
        Ok(Modules {
            binary: binary.to_owned(),
            cache: cache.to_owned(),
            files,
            webapp_next,
            grants,
            granted,
            steady_dir,
        })
    }

    /// Publishes the pair's modules as ReconcilerModules, with their grants.
    pub fn publish(&self, kubeconfig: &Path) -> Result<()> {
        for package in PACKAGES {
            self.push(kubeconfig, &self.files[package], package)?;
        }
        Ok(())
    }

    fn push(&self, kubeconfig: &Path, file: &Path, package: &'static str) -> Result<()> {
        let grant = &self.grants[&(Lane::Pair, package)];
        let output = Command::new(&self.binary)
            .arg("push")
            .arg(file)
            .args([
                "--name",
                package,
                "--namespace",
                SYSTEM_NAMESPACE,
                "--no-wait",
                "--grant",
            ])
            .arg(grant)
            .env("KUBECONFIG", kubeconfig)
            .env("BOSUN_CACHE_DIR", &self.cache)
            .output()
            .context("running bosun push")?;
        if !output.status.success() {
            bail!(
                "bosun push {} failed: {}{}",
                file.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Swaps `lane`'s webapp to its second version (`next`) or back.
    pub fn swap(&self, lane: Lane, next: bool, kubeconfig: &Path) -> Result<()> {
        let file = if next {
            &self.webapp_next
        } else {
            &self.files["webapp"]
        };
        match lane {
            Lane::Steady => {
                let staged = self.steady_dir.join("webapp.wasm.tmp");
                std::fs::copy(file, &staged)?;
                std::fs::rename(&staged, self.steady_dir.join("webapp.wasm"))?;
                Ok(())
            }
            Lane::Pair => self.push(kubeconfig, file, "webapp"),
        }
    }
}

/// The grant `bosun inspect --grant` prints for `module`.
fn inspect_grant(binary: &Path, cache: &Path, module: &Path) -> Result<Value> {
    let output = Command::new(binary)
        .args(["inspect", "--grant"])
        .arg(module)
        .args(["-o", "json"])
        .env("BOSUN_CACHE_DIR", cache)
        .output()
        .context("running bosun inspect --grant")?;
    if !output.status.success() {
        bail!(
            "bosun inspect --grant {}: {}",
            module.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("bosun inspect --grant printed no JSON")
}
