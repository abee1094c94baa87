//! The cluster's store of recordings: ConfigMaps in the host's own
//! namespace, a bounded number per module, the oldest deleted.
//!
//! Why ConfigMaps: a user fetches a recording with the access they already
//! have to the cluster (`bosun record get`, or `kubectl get configmap`),
//! without a shell in the host's Pod and without a new custom resource or a
//! port on the host; a ConfigMap survives the host's restarts, and its size
//! limit (1 MiB) is a bound the recorder's cap stays under. They live in the
//! host's namespace, not the object's, so a module's recordings (which hold
//! what its reads returned) are readable only by who may read the host's
//! namespace, and the host needs to write only there.
//!
//! What is kept: every call that failed (trap, deadline, memory, invalid
//! output) or returned an error, and one in [`StoreSettings::sample_every`]
//! successful ones. At most [`StoreSettings::per_module`] recordings and
//! [`StoreSettings::bytes_per_module`] bytes per module; each write is
//! followed by deleting the oldest beyond either. Writes run on the async
//! runtime, at most [`MAX_WRITES_IN_FLIGHT`] at once; a recording that
//! finds them all busy is dropped (and counted in the log), so a burst of
//! failures never queues recordings in memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use sha2::{Digest, Sha256};

use super::format::{RecordedOutcome, Recording};

/// Label naming the module a recording ConfigMap belongs to.
pub const MODULE_LABEL: &str = "bosun.dev/recording-of";
/// Label identifying the recorded object (a hash: names outgrow label values).
pub const OBJECT_LABEL: &str = "bosun.dev/recorded-object";
/// Annotation with the recorded object's `namespace/name`.
pub const OBJECT_ANNOTATION: &str = "bosun.dev/recorded-object";
/// Annotation with when the call was recorded (RFC 3339).
pub const RECORDED_AT_ANNOTATION: &str = "bosun.dev/recorded-at";
/// Annotation with how the call ended: `failed`, `error` or `sampled`.
pub const OUTCOME_ANNOTATION: &str = "bosun.dev/recorded-outcome";
/// Annotation with the recording's size in bytes, so that pruning lists
/// metadata only: listing the recordings themselves would hold up to the
/// per-module byte cap in memory for every write in flight.
pub const BYTES_ANNOTATION: &str = "bosun.dev/recording-bytes";
/// The ConfigMap key holding the recording.
pub const DATA_KEY: &str = "recording.json";

/// How many ConfigMap writes may be under way at once.
pub const MAX_WRITES_IN_FLIGHT: usize = 4;

/// The bounds of the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The namespace recordings are written to (the host's).
    pub namespace: String,
    /// Recordings kept per module.
    pub per_module: usize,
    /// Bytes of recordings kept per module.
    pub bytes_per_module: usize,
    /// The cap of one recording, below a ConfigMap's 1 MiB.
    pub recording_bytes: usize,
    /// Keep one in this many successful calls; 0: none.
    pub sample_every: u64,
}

impl StoreSettings {
    /// The defaults, in `namespace`.
    pub fn new(namespace: String) -> Self {
        StoreSettings {
            namespace,
            per_module: 20,
            bytes_per_module: 8 << 20,
            recording_bytes: 768 << 10,
            sample_every: 100,
        }
    }
}

/// Where the controllers keep recordings.
pub struct RecordStore {
    client: Client,
    settings: StoreSettings,
    successes: AtomicU64,
    writing: Arc<AtomicUsize>,
}

impl RecordStore {
    /// A store writing through `client`.
    pub fn new(client: Client, settings: StoreSettings) -> Arc<Self> {
        Arc::new(RecordStore {
            client,
            settings,
            successes: AtomicU64::new(0),
            writing: Arc::default(),
        })
    }

    /// The cap a recording for this store is made with.
    pub fn recording_bytes(&self) -> usize {
        self.settings.recording_bytes
    }

    /// Keeps `recording` of a call about `object` (`namespace/name`) if it
    /// is one to keep; returns at once, the write runs on the runtime.
    pub fn keep(&self, object: &str, recording: Recording) {
        let outcome = match &recording.outcome {
            RecordedOutcome::Failed(_) | RecordedOutcome::Unfinished => "failed",
            RecordedOutcome::Error { .. } => "error",
            RecordedOutcome::Response(_) => {
                let n = self.successes.fetch_add(1, Ordering::Relaxed);
                if self.settings.sample_every == 0 || !n.is_multiple_of(self.settings.sample_every)
                {
                    return;
                }
                "sampled"
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.writing.fetch_add(1, Ordering::AcqRel) >= MAX_WRITES_IN_FLIGHT {
            self.writing.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(module = %recording.module.name, %object, "dropped a recording: the store is busy");
            return;
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let settings = self.settings.clone();
        let object = object.to_owned();
        let writing = self.writing.clone();
        runtime.spawn(async move {
            let module = recording.module.name.clone();
            // The recording goes as soon as it is text: a write in flight
            // holds one copy of it less.
            let json = recording.to_json();
            drop(recording);
            if let Err(error) = write(&api, &settings, &object, outcome, &module, json).await {
                tracing::warn!(%module, %object, %error, "cannot keep a recording");
            }
            writing.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// The label value standing for `object` (`namespace/name`).
pub fn object_label(object: &str) -> String {
    hex::encode(&Sha256::digest(object.as_bytes())[..10])
}

/// A label value for a module name (names are DNS labels, but bounded anyway).
pub fn module_label(module: &str) -> String {
    module.chars().take(63).collect()
}

async fn write(
    api: &Api<ConfigMap>,
    settings: &StoreSettings,
    object: &str,
    outcome: &str,
    module: &str,
    json: String,
) -> Result<(), kube::Error> {
    let module = module_label(module);
    let at = jiff::Timestamp::now();
    let mut suffix = [0u8; 3];
    let _ = getrandom::fill(&mut suffix);
    let name = format!(
        "rec-{}-{}-{}",
        module.chars().take(200).collect::<String>(),
        at.as_millisecond(),
        hex::encode(suffix)
    );
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "bosun".to_owned(),
                ),
                (MODULE_LABEL.to_owned(), module.clone()),
                (OBJECT_LABEL.to_owned(), object_label(object)),
            ])),
            annotations: Some(BTreeMap::from([
                (OBJECT_ANNOTATION.to_owned(), object.to_owned()),
                (RECORDED_AT_ANNOTATION.to_owned(), at.to_string()),
                (OUTCOME_ANNOTATION.to_owned(), outcome.to_owned()),
                (BYTES_ANNOTATION.to_owned(), json.len().to_string()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), json)])),
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &map).await?;
    prune(api, settings, &module).await
}

/// Deletes `module`'s oldest recordings beyond the count and byte caps.
async fn prune(
    api: &Api<ConfigMap>,
    settings: &StoreSettings,
    module: &str,
) -> Result<(), kube::Error> {
    let listed = api
        .list_metadata(&ListParams::default().labels(&format!("{MODULE_LABEL}={module}")))
        .await?;
    let mut kept: Vec<(jiff::Timestamp, String, usize)> = listed
        .items
        .into_iter()
        .map(|map| {
            let at = recorded_at(&map.metadata);
            // One without its size (made by hand) counts as the largest a
            // recording may be: the caps hold whatever it holds.
            let size = map
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(BYTES_ANNOTATION))
                .and_then(|bytes| bytes.parse().ok())
                .unwrap_or(settings.recording_bytes);
            (at, map.metadata.name.unwrap_or_default(), size)
        })
        .collect();
    // Newest first.
    kept.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut bytes = 0usize;
    for (index, (_, name, size)) in kept.iter().enumerate() {
        bytes = bytes.saturating_add(*size);
        if index >= settings.per_module || bytes > settings.bytes_per_module {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                // Deleted meanwhile (another replica's prune): as good.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// The newest recording of `module`'s calls about `object` in `namespace`.
pub async fn newest(
    client: &Client,
    namespace: &str,
    module: &str,
    object: &str,
) -> Result<Option<(String, String)>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "{MODULE_LABEL}={},{OBJECT_LABEL}={}",
        module_label(module),
        object_label(object)
    );
    let listed = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|map| {
            let at = recorded_at(&map.metadata);
            let data = map.data?.remove(DATA_KEY)?;
            Some((at, data))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(at, data)| (at.to_string(), data)))
}

/// When a recording ConfigMap says it was recorded; one that does not say
/// (edited by hand) counts as the oldest.
fn recorded_at(metadata: &ObjectMeta) -> jiff::Timestamp {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECORDED_AT_ANNOTATION))
        .and_then(|at| at.parse().ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
