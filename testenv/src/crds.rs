//! Installing CustomResourceDefinitions and waiting until they are usable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize as _;

use crate::error::Error;

/// Field manager used when applying CRDs.
const FIELD_MANAGER: &str = "bosun-testenv";

/// A CRD to install: an object, a manifest file or directory, or manifest text.
///
/// `&str`, `String`, `&Path` and `PathBuf` convert to [`CrdSource::Path`]; use
/// [`CrdSource::yaml`] for inline manifest text.
#[derive(Debug, Clone)]
pub enum CrdSource {
    /// A CRD object.
    Object(Box<CustomResourceDefinition>),
    /// A YAML/JSON manifest file (possibly with several `---` documents), or a
    /// directory whose `.yaml`, `.yml` and `.json` files are read (not recursively).
    Path(PathBuf),
    /// Inline YAML/JSON manifest text.
    Yaml(String),
}

impl CrdSource {
    /// Inline YAML (or JSON) manifest text.
    pub fn yaml(text: impl Into<String>) -> Self {
        CrdSource::Yaml(text.into())
    }
}

impl From<CustomResourceDefinition> for CrdSource {
    fn from(crd: CustomResourceDefinition) -> Self {
        CrdSource::Object(Box::new(crd))
    }
}

impl From<&CustomResourceDefinition> for CrdSource {
    fn from(crd: &CustomResourceDefinition) -> Self {
        CrdSource::Object(Box::new(crd.clone()))
    }
}

impl From<&str> for CrdSource {
    fn from(path: &str) -> Self {
        CrdSource::Path(path.into())
    }
}

impl From<String> for CrdSource {
    fn from(path: String) -> Self {
        CrdSource::Path(path.into())
    }
}

impl From<&Path> for CrdSource {
    fn from(path: &Path) -> Self {
        CrdSource::Path(path.into())
    }
}

impl From<PathBuf> for CrdSource {
    fn from(path: PathBuf) -> Self {
        CrdSource::Path(path)
    }
}

/// Loads every CRD named by `sources`.
fn load(sources: Vec<CrdSource>) -> Result<Vec<CustomResourceDefinition>, Error> {
    let mut crds = Vec::new();
    for source in sources {
        match source {
            CrdSource::Object(crd) => crds.push(*crd),
            CrdSource::Yaml(text) => crds.extend(parse("<inline>", &text)?),
            CrdSource::Path(path) if path.is_dir() => {
                let entries =
                    std::fs::read_dir(&path).map_err(Error::io("reading CRD directory", &path))?;
                let mut files = Vec::new();
                for entry in entries {
                    let file = entry
                        .map_err(Error::io("reading CRD directory", &path))?
                        .path();
                    let manifest = file
                        .extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
                    if manifest && file.is_file() {
                        files.push(file);
                    }
                }
                files.sort();
                for file in files {
                    crds.extend(parse_file(&file)?);
                }
            }
            CrdSource::Path(path) => crds.extend(parse_file(&path)?),
        }
    }
    Ok(crds)
}

fn parse_file(path: &Path) -> Result<Vec<CustomResourceDefinition>, Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading CRD manifest", path))?;
    parse(&path.display().to_string(), &text)
}

/// Parses the CRDs out of a (multi-document) manifest; other kinds are skipped.
fn parse(source_name: &str, text: &str) -> Result<Vec<CustomResourceDefinition>, Error> {
    let bad = |message: String| Error::CrdManifest {
        source_name: source_name.to_string(),
        message,
    };
    let mut crds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| bad(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
            continue;
        }
        let crd: CustomResourceDefinition =
            serde_yaml::from_value(value).map_err(|e| bad(e.to_string()))?;
        crds.push(crd);
    }
    if crds.is_empty() {
        return Err(bad("no CustomResourceDefinition in it".into()));
    }
    Ok(crds)
}

/// Applies the CRDs and waits until each is Established and discoverable.
pub(crate) async fn install(
    client: &Client,
    sources: Vec<CrdSource>,
    timeout: Duration,
) -> Result<Vec<CustomResourceDefinition>, Error> {
    let crds = load(sources)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in &crds {
        let mut crd = crd.clone();
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        crd.metadata.uid = None;
        crd.metadata.creation_timestamp = None;
        crd.status = None;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
    }
    let mut installed = Vec::with_capacity(crds.len());
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        installed.push(wait_established(client, &api, &name, timeout).await?);
    }
    Ok(installed)
}

/// Polls until the CRD has `Established=True` and every served version's
/// discovery document lists its plural.
async fn wait_established(
    client: &Client,
    api: &Api<CustomResourceDefinition>,
    name: &str,
    timeout: Duration,
) -> Result<CustomResourceDefinition, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(crd) = api.get_opt(name).await?
            && is_established(&crd)
            && discoverable(client, &crd).await
        {
            return Ok(crd);
        }
        if Instant::now() > deadline {
            return Err(Error::CrdNotEstablished {
                name: name.to_string(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

async fn discoverable(client: &Client, crd: &CustomResourceDefinition) -> bool {
    let group = &crd.spec.group;
    let plural = &crd.spec.names.plural;
    for version in crd.spec.versions.iter().filter(|v| v.served) {
        let listed = client
            .list_api_group_resources(&format!("{group}/{}", version.name))
            .await
            .is_ok_and(|list| list.resources.iter().any(|r| &r.name == plural));
        if !listed {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
---
"#;

    #[test]
    fn parses_crds_and_skips_other_documents() {
        let crds = parse("<test>", MANIFEST).expect("parses");
        assert_eq!(crds.len(), 1);
        assert_eq!(
            crds[0].metadata.name.as_deref(),
            Some("widgets.example.com")
        );
    }

    #[test]
    fn a_manifest_without_crds_is_an_error() {
        let err = parse("cm.yaml", "kind: ConfigMap\n").expect_err("no CRD");
        assert!(err.to_string().contains("cm.yaml"), "{err}");
    }
}
