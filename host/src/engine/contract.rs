//! The versions of the `bosun:reconciler` contract this host serves, which
//! one a component was built against, and calls into a component whatever
//! version it targets.
//!
//! Every released version is served side by side (`wit/README.md` has the
//! policy): the linker holds the `host` interface of each, a component is
//! checked against the world of the version its imports name, and calls
//! into one built against an earlier version are converted at this boundary
//! (`super::compat`), so the rest of the host speaks only the current
//! version's types.

use std::collections::BTreeSet;

use wasmtime::Store;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::{
    self, FinalizeResponse, ModuleInfo, ReconcileError, Request, Response, v0_1,
};
use super::compat;
use super::sandbox::Sandbox;

/// The WIT package every version of the contract belongs to.
const PACKAGE: &str = "bosun:reconciler";

/// A released version of the `bosun:reconciler` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contract {
    /// `bosun:reconciler@0.1.0`, frozen in `wit/versions/0.1.0/`.
    V0_1,
    /// `bosun:reconciler@0.2.0`, `wit/reconciler.wit`: the current version,
    /// which added the `read-changed` trigger.
    V0_2,
}

impl Contract {
    /// The version the host's own types and the guest SDK follow.
    pub const CURRENT: Contract = Contract::V0_2;

    /// Every version this host serves, newest first.
    pub const SERVED: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// The version alone, e.g. `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// The WIT package with its version, e.g. `bosun:reconciler@0.2.0`.
    pub fn package(self) -> &'static str {
        match self {
            Contract::V0_1 => "bosun:reconciler@0.1.0",
            Contract::V0_2 => "bosun:reconciler@0.2.0",
        }
    }

    /// Every served version, newest first, as `bosun --version` and load
    /// errors name them: `bosun:reconciler@0.2.0, bosun:reconciler@0.1.0`.
    pub fn served() -> String {
        Contract::SERVED.map(Contract::package).join(", ")
    }

    /// The served version a component importing `version` of the package
    /// runs under: that version, or one wasmtime's linker treats as
    /// semver-compatible with it (`0.2.x` with `0.2.0`, `1.x.y` with `1.0.0`),
    /// since that linker is what resolves the imports in the end.
    fn serving(version: &str) -> Option<Contract> {
        Contract::SERVED.into_iter().find(|served| {
            served.version() == version
                || semver_track(version)
                    .is_some_and(|track| Some(track) == semver_track(served.version()))
        })
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.package())
    }
}

/// The part of a semantic version that compatible versions share, as
/// wasmtime's linker reads it: the major version from 1.0.0 on, else the
/// minor from 0.1.0 on. None where nothing else is compatible: 0.0.z, a
/// pre-release, or no semantic version at all.
fn semver_track(version: &str) -> Option<(u64, u64)> {
    let release = version
        .split_once('+')
        .map_or(version, |(release, _)| release);
    if release.contains('-') {
        return None;
    }
    let mut numbers = release.split('.').map(|n| n.parse::<u64>().ok());
    let (major, minor, _patch) = (numbers.next()??, numbers.next()??, numbers.next()??);
    if numbers.next().is_some() {
        return None;
    }
    match (major, minor) {
        (0, 0) => None,
        (0, minor) => Some((0, minor)),
        (major, _) => Some((major, 0)),
    }
}

/// Why a component's imports name no version the host serves. The
/// versions are the component's words, and end up in a ReconcilerModule's
/// status: each is cut to [`SHOWN_VERSION_BYTES`], and at most
/// [`SHOWN_VERSIONS`] of them are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unserved {
    /// It names one version, and the host does not serve it.
    Version(String),
    /// It names several versions that are not one served version: a
    /// component targets exactly one. `more` were not kept.
    Mixed { asked: Vec<String>, more: usize },
}

/// The longest version quoted back: a real one is a dozen bytes, a
/// pre-release or build suffix may be as long as a component likes.
const SHOWN_VERSION_BYTES: usize = 64;
/// The most versions quoted back when a component names several.
const SHOWN_VERSIONS: usize = 4;

/// `version` as an error quotes it.
fn shown(version: &str) -> String {
    let kept = crate::meta::truncate_at_char_boundary(version, SHOWN_VERSION_BYTES);
    if kept.len() < version.len() {
        format!("{kept}…")
    } else {
        kept.to_owned()
    }
}

/// The version a `bosun:reconciler` import names (`bosun:reconciler/host@0.1.0`
/// names `0.1.0`); `unversioned` for an import without one, so that it is
/// refused as a version no host serves. None for every other import.
fn imported_version(import: &str) -> Option<&str> {
    let (package, rest) = import.split_once('/')?;
    if package != PACKAGE {
        return None;
    }
    Some(
        rest.split_once('@')
            .map_or("unversioned", |(_, version)| version),
    )
}

/// The served version `component` was built against, read from the version
/// its `bosun:reconciler` imports carry. A component built with WIT tooling
/// always imports `bosun:reconciler/types` (its exports use those types),
/// so it always names its version. One that imports nothing of the package
/// has no version to read; it is checked against the current world.
pub(super) fn detect(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<Contract, Unserved> {
    let ty = component.component_type();
    let asked: BTreeSet<&str> = ty
        .imports(engine)
        .filter_map(|(name, _)| imported_version(name))
        .collect();
    let serving: BTreeSet<Option<Contract>> = asked.iter().map(|v| Contract::serving(v)).collect();
    match (serving.len(), serving.first()) {
        (0, _) => Ok(Contract::CURRENT),
        (1, Some(Some(contract))) => Ok(*contract),
        _ => {
            let more = asked.len().saturating_sub(SHOWN_VERSIONS);
            let mut asked: Vec<String> =
                asked.into_iter().take(SHOWN_VERSIONS).map(shown).collect();
            if asked.len() == 1 {
                Err(Unserved::Version(asked.remove(0)))
            } else {
                Err(Unserved::Mixed { asked, more })
            }
        }
    }
}

/// Whether `component` exports the `metadata` of `bosun:reconciler@0.1.0` as
/// it was before `module-info` gained `http-origins`: that version changed
/// under the same number once, and components built before cannot load.
pub(super) fn predates_http_origins(engine: &wasmtime::Engine, component: &Component) -> bool {
    let ty = component.component_type();
    let Some(ComponentItem::ComponentFunc(metadata)) =
        ty.get_export(engine, "metadata").map(|export| export.ty)
    else {
        return false;
    };
    let Some(Type::Record(info)) = metadata.results().next() else {
        return false;
    };
    let fields: Vec<&str> = info.fields().map(|field| field.name).collect();
    ["name", "primary", "owns", "reads", "finalizer"]
        .iter()
        .all(|name| fields.contains(name))
        && !fields.contains(&"http-origins")
}

/// Links the `host` interface of every served version into `linker`:
/// interfaces of different minor versions are distinct names to wasmtime,
/// so each component finds the version it imports.
pub(super) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    bindings::Reconciler::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |sandbox| sandbox)?;
    v0_1::Reconciler::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |sandbox| sandbox)?;
    Ok(())
}

/// A component linked against the host's imports and checked against the
/// world of its version, ready to instantiate.
#[derive(Clone)]
pub(super) enum Pre {
    V0_1(v0_1::ReconcilerPre<Sandbox>),
    V0_2(bindings::ReconcilerPre<Sandbox>),
}

impl Pre {
    /// `component` linked, its exports checked against `contract`'s world; an
    /// error if it does not implement it.
    pub fn link(
        linker: &Linker<Sandbox>,
        component: &Component,
        contract: Contract,
    ) -> wasmtime::Result<Pre> {
        let pre = linker.instantiate_pre(component)?;
        Ok(match contract {
            Contract::V0_1 => Pre::V0_1(v0_1::ReconcilerPre::new(pre)?),
            Contract::V0_2 => Pre::V0_2(bindings::ReconcilerPre::new(pre)?),
        })
    }

    /// The version the component targets.
    pub fn contract(&self) -> Contract {
        match self {
            Pre::V0_1(_) => Contract::V0_1,
            Pre::V0_2(_) => Contract::V0_2,
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::V0_1(pre) => pre.engine(),
            Pre::V0_2(pre) => pre.engine(),
        }
    }

    /// A fresh instance in `store`.
    pub async fn instantiate_async(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<Guest> {
        Ok(match self {
            Pre::V0_1(pre) => Guest::V0_1(pre.instantiate_async(store).await?),
            Pre::V0_2(pre) => Guest::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// One instance of a component, called with the current version's types
/// whatever version it targets.
pub(super) enum Guest {
    V0_1(v0_1::Reconciler),
    V0_2(bindings::Reconciler),
}

impl Guest {
    pub async fn call_metadata(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<ModuleInfo> {
        match self {
            Guest::V0_1(guest) => Ok(compat::v0_1::module_info(guest.call_metadata(store).await?)),
            Guest::V0_2(guest) => guest.call_metadata(store).await,
        }
    }

    pub async fn call_reconcile(
        &self,
        store: &mut Store<Sandbox>,
        request: &Request,
    ) -> wasmtime::Result<Result<Response, ReconcileError>> {
        match self {
            Guest::V0_1(guest) => {
                let outcome = guest
                    .call_reconcile(store, &compat::v0_1::request(request))
                    .await?;
                Ok(outcome
                    .map(compat::v0_1::response)
                    .map_err(compat::v0_1::reconcile_error))
            }
            Guest::V0_2(guest) => guest.call_reconcile(store, request).await,
        }
    }

    pub async fn call_finalize(
        &self,
        store: &mut Store<Sandbox>,
        request: &Request,
    ) -> wasmtime::Result<Result<FinalizeResponse, ReconcileError>> {
        match self {
            Guest::V0_1(guest) => {
                let outcome = guest
                    .call_finalize(store, &compat::v0_1::request(request))
                    .await?;
                Ok(outcome
                    .map(compat::v0_1::finalize_response)
                    .map_err(compat::v0_1::reconcile_error))
            }
            Guest::V0_2(guest) => guest.call_finalize(store, request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package line of a WIT file.
    fn package_of(wit: &str) -> &str {
        wit.lines()
            .find_map(|line| line.trim().strip_prefix("package "))
            .map(|rest| rest.trim_end_matches(';').trim())
            .unwrap_or_else(|| panic!("no package line in:\n{wit}"))
    }

    /// Each served version, the WIT file its bindings are generated from.
    fn wit_of(contract: Contract) -> &'static str {
        match contract {
            Contract::V0_1 => include_str!("../../../wit/versions/0.1.0/reconciler.wit"),
            Contract::V0_2 => include_str!("../../../wit/reconciler.wit"),
        }
    }

    #[test]
    fn each_served_version_is_named_as_its_wit_file_says() {
        for contract in Contract::SERVED {
            assert_eq!(package_of(wit_of(contract)), contract.package());
            assert_eq!(
                contract.package(),
                format!("{PACKAGE}@{}", contract.version())
            );
        }
        assert_eq!(Contract::SERVED[0], Contract::CURRENT, "newest first");
        assert_eq!(
            Contract::served(),
            "bosun:reconciler@0.2.0, bosun:reconciler@0.1.0"
        );
    }

    /// Released versions are frozen (wit/README.md): each file's bytes are
    /// pinned here. A change to a released file fails this test; the change
    /// belongs in a new version, and the digest of a version is added here
    /// when it is released.
    #[test]
    fn released_versions_are_frozen() {
        use sha2::{Digest, Sha256};
        const RELEASED: [(Contract, &str); 2] = [
            (
                Contract::V0_1,
                "39f22f9f0094f68c488241165d899f6304c01e7a1b44ab8d20a5a209424c67ba",
            ),
            (
                Contract::V0_2,
                "b59a77bf59340f410ae28a0095db00e79418fef56f40cda25e7a138eb624e1f8",
            ),
        ];
        for (contract, pinned) in RELEASED {
            let digest = hex::encode(Sha256::digest(wit_of(contract)));
            assert_eq!(
                digest, pinned,
                "the WIT of released {contract} changed; put the change in a new version (wit/README.md)"
            );
        }
    }

    /// `wit/http` is published for other languages' bindings: it must be
    /// complete (its deps carry the current contract as released) and
    /// honest (its WASI packages are the ones the host links, so a guest
    /// built against it links here). An upgrade of wasmtime-wasi-http that
    /// moves WASI fails this test until `wit/http` follows.
    #[test]
    fn the_published_http_world_carries_the_contract_and_the_wasi_the_host_links() {
        let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let published = repository.join("wit/http");
        assert_eq!(
            std::fs::read(published.join("deps/bosun-reconciler/reconciler.wit")).unwrap(),
            wit_of(Contract::CURRENT).as_bytes(),
            "wit/http/deps/bosun-reconciler/reconciler.wit is not wit/reconciler.wit; copy it over"
        );
        let world = std::fs::read_to_string(published.join("world.wit")).unwrap();
        assert!(
            world.contains(&format!(
                "include bosun:reconciler/reconciler@{};",
                Contract::CURRENT.version()
            )),
            "wit/http/world.wit must include the current reconciler world:\n{world}"
        );

        let metadata = std::process::Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--offline"])
            .current_dir(&repository)
            .output()
            .expect("cargo metadata runs");
        let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&metadata.stderr)));
        let linked = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|package| package["name"] == "wasmtime-wasi-http")
            .expect("the host links wasmtime-wasi-http");
        let crate_wit = std::path::Path::new(linked["manifest_path"].as_str().unwrap())
            .with_file_name("wit")
            .join("deps");
        let mut compared = 0;
        for entry in std::fs::read_dir(&crate_wit).unwrap() {
            let path = entry.unwrap().path();
            let package = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let ours = published
                .join("deps")
                .join(&package)
                .join(format!("{package}.wit"));
            assert_eq!(
                std::fs::read(&ours).ok(),
                Some(std::fs::read(&path).unwrap()),
                "{} is not the WASI the host links ({}); copy it over",
                ours.display(),
                path.display()
            );
            compared += 1;
        }
        assert!(
            compared >= 7,
            "found only {compared} WASI packages in {}",
            crate_wit.display()
        );
    }

    #[test]
    fn imports_name_the_version_they_target() {
        assert_eq!(
            imported_version("bosun:reconciler/host@0.1.0"),
            Some("0.1.0")
        );
        assert_eq!(
            imported_version("bosun:reconciler/types@0.2.0"),
            Some("0.2.0")
        );
        assert_eq!(
            imported_version("bosun:reconciler/host"),
            Some("unversioned")
        );
        assert_eq!(imported_version("bosun:reconcilers/host@0.1.0"), None);
        assert_eq!(imported_version("wasi:io/streams@0.2.6"), None);
        assert_eq!(imported_version("bosun:reconciler"), None);
    }

    #[test]
    fn versions_are_quoted_back_cut_to_size() {
        assert_eq!(shown("0.9.0"), "0.9.0");
        let long = format!("1.0.0-{}", "a".repeat(100));
        assert_eq!(shown(&long), format!("{}…", &long[..SHOWN_VERSION_BYTES]));
    }

    #[test]
    fn a_version_is_served_by_itself_or_a_semver_compatible_one() {
        assert_eq!(Contract::serving("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::serving("0.2.0"), Some(Contract::V0_2));
        // What wasmtime's linker would match: a patch on the same track.
        assert_eq!(Contract::serving("0.2.3"), Some(Contract::V0_2));
        assert_eq!(Contract::serving("0.1.1+build"), Some(Contract::V0_1));
        for unserved in [
            "0.3.0",
            "0.9.0",
            "1.0.0",
            "0.0.1",
            "0.2.0-rc.1",
            "0.2",
            "x",
            "",
            "unversioned",
        ] {
            assert_eq!(Contract::serving(unserved), None, "{unserved:?}");
        }
    }

    #[test]
    fn semver_tracks_follow_wasmtime() {
        assert_eq!(semver_track("1.2.3"), Some((1, 0)));
        assert_eq!(semver_track("0.2.3"), Some((0, 2)));
        assert_eq!(semver_track("0.0.3"), None);
        assert_eq!(semver_track("1.0.0-pre"), None);
        assert_eq!(semver_track("1.0.0.0"), None);
        assert_eq!(semver_track("1.0"), None);
    }
}
