//! What the read log's and the index's tests both build.

use std::collections::BTreeMap;

use super::{KindId, TrackedChange};

/// The kind the tests read: ConfigMaps, say.
pub(super) const CM: KindId = KindId(1);

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A change of the ConfigMap `namespace/name` from `old` to `new` labels.
pub(super) fn change<'a>(
    namespace: &'a str,
    name: &'a str,
    old: Option<&'a BTreeMap<String, String>>,
    new: Option<&'a BTreeMap<String, String>>,
) -> TrackedChange<'a> {
    TrackedChange {
        kind: CM,
        namespace: Some(namespace),
        name,
        old_labels: old,
        new_labels: new,
    }
}
