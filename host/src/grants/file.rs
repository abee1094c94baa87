//! Grant files: the grants of local modules (`--grant`, a modules
//! directory's `*.grant.yaml`), in the shape `bosun inspect --grant` prints.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Permissions;

/// One module's grant in a grant file: the module it is for and its
/// permissions, the shape `bosun inspect --grant` prints.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GrantFile {
    /// The module's name, as it declares it.
    pub module: String,
    /// What it may do.
    pub permissions: Permissions,
}

/// Why a grant file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GrantFileError {
    /// The file could not be read.
    #[error("cannot read grant file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a grant.
    #[error(
        "grant file {path} is not valid: {reason}; it holds documents like `module: NAME` and `permissions: {{…}}`, as `bosun inspect --grant` prints"
    )]
    Invalid {
        /// The file.
        path: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Two grants for one module.
    #[error("grant files name module {module} twice; keep one grant per module")]
    Duplicate {
        /// The module's name.
        module: String,
    },
}

/// Reads the grants in a YAML or JSON file: one grant per document.
pub fn read_grant_file(path: &std::path::Path) -> Result<Vec<GrantFile>, GrantFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| GrantFileError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_grants(&text).map_err(|reason| GrantFileError::Invalid {
        path: shown,
        reason,
    })
}

/// Parses grant documents (YAML, several separated by `---`, or JSON).
pub fn parse_grants(text: &str) -> Result<Vec<GrantFile>, String> {
    let mut grants = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        // Through JSON, as the API server hands a ReconcilerModule's spec to
        // the host: one reading of the schema (serde_yaml alone would want
        // `!tag` syntax for the one-of fields such as `caBundle`).
        let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
        let grant: GrantFile = serde_json::from_value(value).map_err(|e| e.to_string())?;
        grant.permissions.validate()?;
        grants.push(grant);
    }
    Ok(grants)
}
