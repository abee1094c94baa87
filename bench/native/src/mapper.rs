//! The mapper a kube-rs user writes for `Mirror` (`examples/mirror`): a
//! Mirror reads the ConfigMap it names, the ConfigMaps its selector picks
//! and the Secret it names, all in its namespace, so a change of a
//! ConfigMap or Secret must reconcile the Mirrors that read it. kube-runtime
//! knows nothing of what a reconcile read; the mapper looks it up in the
//! Controller's store of Mirrors, by each Mirror's spec.
//!
//! What such a mapper cannot do, and bosun's recorded reads do: it sees
//! only the object's new state, so a ConfigMap whose labels move it *out*
//! of a selection reconciles nothing (the Mirror keeps listing it until
//! something else reconciles it); and it scans every Mirror of the
//! namespace on every event, where the host looks the change up in an
//! index of what was read.

use kube::api::{ApiResource, DynamicObject};
use kube::core::SelectorExt as _;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

/// The Mirrors (of kind `primary`) that read `object`, a ConfigMap or a
/// Secret (`kind`).
pub fn mirror_readers(
    mirrors: &Store<DynamicObject>,
    primary: &ApiResource,
    kind: &ApiResource,
    object: &DynamicObject,
) -> Vec<ObjectRef<DynamicObject>> {
    let Some(name) = object.metadata.name.as_deref() else {
        return Vec::new();
    };
    let namespace = object.metadata.namespace.as_deref();
    let is_secret = kind.kind == "Secret";
    let empty = Default::default();
    let labels = object.metadata.labels.as_ref().unwrap_or(&empty);
    mirrors
        .state()
        .iter()
        .filter(|mirror| mirror.metadata.namespace.as_deref() == namespace)
        .filter(|mirror| {
            let spec = mirror.data.get("spec");
            let field = |f: &str| spec.and_then(|s| s.get(f)).and_then(Value::as_str);
            if is_secret {
                return field("secretName") == Some(name);
            }
            field("configMapName").map(str::trim) == Some(name)
                || field("selector").is_some_and(|selector| {
                    // A selector that does not parse fails the Mirror's
                    // reconcile; it picks nothing here.
                    bosun_selector::parse(selector).is_ok_and(|s| s.matches(labels))
                })
        })
        .map(|mirror| ObjectRef::from_obj_with(mirror.as_ref(), primary.clone()))
        .collect()
}
