//! Reading Kubernetes objects from YAML or JSON files, as `kubectl apply -f` does.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// A file that could not be read as Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not YAML or JSON.
    #[error("{path}: document {index} is not valid YAML or JSON: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The document's position, from 1.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A document is not a Kubernetes object.
    #[error(
        "{path}: document {index} is not a Kubernetes object (it needs apiVersion, kind and metadata.name)"
    )]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The document's position, from 1.
        index: usize,
    },
}

/// Reads every object in a YAML (multi-document) or JSON file. Empty
/// documents are skipped and `kind: List` documents are flattened.
pub fn read_objects(path: &Path) -> Result<Vec<Value>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let index = index + 1;
        let value = Value::deserialize(document).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            index,
            reason: e.to_string(),
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    objects.push(checked(path, index, item)?);
                }
            }
            other => objects.push(checked(path, index, other)?),
        }
    }
    Ok(objects)
}

fn checked(path: &Path, index: usize, value: Value) -> Result<Value, ManifestError> {
    let has = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if has("/apiVersion") && has("/kind") && has("/metadata/name") {
        Ok(value)
    } else {
        Err(ManifestError::NotAnObject {
            path: path.to_owned(),
            index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Value>, ManifestError> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        read_objects(file.path())
    }

    #[test]
    fn reads_multi_document_yaml_and_skips_empty_documents() {
        let objects = read("---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["metadata"]["name"], "b");
    }

    #[test]
    fn reads_json_and_flattens_lists() {
        let objects = read(r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}]}"#).unwrap();
        assert_eq!(objects.len(), 1);
    }

    #[test]
    fn names_the_document_that_is_not_an_object() {
        let err =
            read("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\njust: text\n").unwrap_err();
        assert!(err.to_string().contains("document 2"), "{err}");
        let err = read("key: [unclosed\n").unwrap_err();
        assert!(
            matches!(err, ManifestError::Parse { index: 1, .. }),
            "{err}"
        );
    }
}
