//! A watched directory of modules, for `bosun run --modules-dir <dir>`.
//!
//! Each `*.wasm` file directly in the directory is a module, identified by
//! its file stem (the *key*: `cnat.wasm` has key `cnat`), stored as is or
//! gzip-compressed (recognised by its magic bytes, so that modules fit the
//! 1 MiB of a ConfigMap mounted as the directory). Beside it, an
//! optional settings file `<key>.settings.json`, `<key>.settings.yaml` or
//! `<key>.settings.yml` holds the module's settings: any JSON or YAML value,
//! handed on as JSON text; and an optional grant file `<key>.grant.yaml`
//! (or `.yml`, `.json`) holds what the module is granted, in the shape
//! `bosun inspect --grant` prints. Everything else is ignored: other extensions
//! (notably `*.tmp`, which editors and deploy scripts write before renaming),
//! dotfiles and subdirectories.
//!
//! [`DirSource::watch`] first reports every module present (sorted by key)
//! and then reports changes as [`DirEvent`]s while the host runs.
//!
//! # Debouncing
//!
//! A single save is seldom a single filesystem event: `cp` truncates and then
//! writes in chunks, editors write a temporary file and rename it over the
//! original, and `touch` changes only metadata. So events are not reported as
//! they come. Notify's callback runs on its own thread and only forwards raw
//! events over an unbounded channel (it must never block, or the kernel queue
//! overflows); a Tokio task owns all the state and, per key, waits until
//! [`DEBOUNCE`] has passed without a new event for that key. Only then does it
//! read the module and its settings and compare them with what it last
//! reported (a SHA-256 of the bytes and the normalised settings text), and it
//! reports an [`DirEvent::Upsert`] only when something actually changed. This
//! also makes the startup race harmless: the watch is set up before the
//! initial scan, so a file written during the scan is reported once, not
//! missed and not repeated.
//!
//! A module that cannot be read, or whose settings do not parse, is reported
//! as a [`DirEvent::Error`] and keeps running as it was; the next successful
//! read is reported as an `Upsert` even when it equals what ran before, so a
//! consumer always learns that the error is over.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;

use crate::grants::GrantFile;

/// How long a key must go without a filesystem event before its files are
/// read: long enough to cover the steps of one copy or save, short enough
/// that a swap still feels immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// The extension of module files.
const MODULE_SUFFIX: &str = ".wasm";

/// The settings file names, as suffixes of the key. JSON first: that is the
/// order in which they are looked for and reported.
const SETTINGS_SUFFIXES: [&str; 3] = [".settings.json", ".settings.yaml", ".settings.yml"];

/// The grant file names, as suffixes of the key.
const GRANT_SUFFIXES: [&str; 3] = [".grant.json", ".grant.yaml", ".grant.yml"];

/// What happened to one module of the directory.
#[derive(Debug)]
pub enum DirEvent {
    /// A module file appeared or changed, or its settings file did. The
    /// consumer should load `bytes` and swap the module in.
    Upsert {
        /// The file stem: the stable identity of the file (the module's own
        /// name is only known after loading it).
        key: String,
        /// The module file.
        path: PathBuf,
        /// The module file's contents.
        bytes: Arc<[u8]>,
        /// The settings as JSON text, or `None` without a settings file.
        settings: Option<String>,
        /// The grant, or `None` without a grant file.
        grant: Option<Box<GrantFile>>,
    },
    /// The module file is gone: the consumer should stop the module.
    Remove {
        /// The file stem of the module that went away.
        key: String,
    },
    /// A file of the module could not be read, or its settings file does not
    /// parse. Nothing is swapped: the module keeps running as it was (if it
    /// ran at all).
    Error {
        /// The file stem of the module concerned.
        key: String,
        /// What went wrong.
        error: DirError,
    },
}

impl DirEvent {
    /// The key (file stem) of the module the event concerns.
    pub fn key(&self) -> &str {
        match self {
            Self::Upsert { key, .. } | Self::Remove { key } | Self::Error { key, .. } => key,
        }
    }
}

/// Why the directory cannot be watched, or why one module could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory does not exist; it is not created, since a typo in the
    /// path would otherwise go unnoticed.
    #[error("the modules directory {} does not exist", .path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("the modules directory {} is not a directory", .path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory could not be inspected (for instance, no permission).
    #[error("cannot open the modules directory {}: {source}", .path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The filesystem watch could not be set up.
    #[error("cannot watch the modules directory {}: {source}", .path.display())]
    Watch {
        /// The path given.
        path: PathBuf,
        /// Notify's error (on Linux, often the inotify watch limit).
        #[source]
        source: notify::Error,
    },
    /// [`DirSource::watch`] was called outside a Tokio runtime, which the
    /// debouncing task needs.
    #[error("watching a modules directory needs a Tokio runtime")]
    NoRuntime,
    /// A module or settings file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A module file is gzip-compressed but does not decompress, or
    /// decompresses past the size cap.
    #[error("{0}")]
    Compressed(#[source] super::source::SourceError),
    /// A settings file is not valid JSON or YAML.
    #[error("the settings file {} does not parse: {reason}", .path.display())]
    Settings {
        /// The settings file.
        path: PathBuf,
        /// The parser's complaint, with its line and column.
        reason: String,
    },
    /// A grant file is not one valid grant.
    #[error("the grant file {} is not valid: {reason}", .path.display())]
    Grant {
        /// The grant file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A module has more than one settings file, and it is not clear which
    /// one is meant.
    #[error(
        "module {key} has several settings files ({}); keep only one",
        .paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousSettings {
        /// The module's key.
        key: String,
        /// The settings files found.
        paths: Vec<PathBuf>,
    },
}

/// A watched modules directory. Events arrive on the receiver returned by
/// [`DirSource::watch`]; dropping the `DirSource` stops watching, and the
/// receiver then ends.
pub struct DirSource {
    dir: PathBuf,
    task: AbortHandle,
    // Held only to keep the watch alive: dropping it removes the watch.
    _watcher: RecommendedWatcher,
}

impl fmt::Debug for DirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirSource")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for DirSource {
    fn drop(&mut self) {
        // Dropping the watcher alone would end the task only once notify's
        // thread has shut down; aborting makes the stop immediate, so no
        // event is reported after the source is gone.
        self.task.abort();
    }
}

impl DirSource {
    /// Scans `dir` once (every current module becomes an
    /// [`DirEvent::Upsert`], sorted by key; a module whose settings do not
    /// parse becomes a [`DirEvent::Error`] in its place) and then watches it.
    ///
    /// The directory must exist. Must be called within a Tokio runtime: the
    /// events are debounced by a task spawned on it.
    pub fn watch(
        dir: impl Into<PathBuf>,
    ) -> Result<(DirSource, mpsc::UnboundedReceiver<DirEvent>), DirError> {
        let dir = dir.into();
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(DirError::NotADirectory { path: dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DirError::Missing { path: dir });
            }
            Err(source) => return Err(DirError::Open { path: dir, source }),
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| DirError::NoRuntime)?;

        // Unbounded so that notify's thread never waits on the task; the
        // events are small and the task drains them promptly.
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            // Fails only once the task has ended, when nobody is listening.
            let _ = raw_tx.send(event);
        })
        .map_err(|source| DirError::Watch {
            path: dir.clone(),
            source,
        })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| DirError::Watch {
                path: dir.clone(),
                source,
            })?;

        let (tx, rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("modules_dir", dir = %dir.display());
        let debouncer = Debouncer {
            dir: dir.clone(),
            out: tx,
            reported: HashMap::new(),
            failing: HashSet::new(),
            pending: HashMap::new(),
        };
        let task = runtime.spawn(debouncer.run(raw_rx).instrument(span));
        tracing::info!(dir = %dir.display(), "watching the modules directory");
        Ok((
            DirSource {
                dir,
                task: task.abort_handle(),
                _watcher: watcher,
            },
            rx,
        ))
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What was last reported for a key, to tell a real change from a touch.
#[derive(Debug, PartialEq, Eq)]
struct Reported {
    digest: [u8; 32],
    settings: Option<String>,
    grant: Option<GrantFile>,
}

/// A module as read from disk.
struct Found {
    path: PathBuf,
    bytes: Vec<u8>,
    settings: Option<String>,
    grant: Option<GrantFile>,
}

/// The task that turns raw notify events into [`DirEvent`]s; see the module
/// docs.
struct Debouncer {
    dir: PathBuf,
    out: mpsc::UnboundedSender<DirEvent>,
    /// Keys reported by an `Upsert` and not removed since.
    reported: HashMap<String, Reported>,
    /// Keys whose latest report was an `Error`.
    failing: HashSet<String>,
    /// Keys with unsettled events, and when they settle.
    pending: HashMap<String, Instant>,
}

/// Stops the task: the consumer dropped its receiver.
struct Closed;

impl Debouncer {
    async fn run(mut self, mut raw: mpsc::UnboundedReceiver<notify::Result<notify::Event>>) {
        // Ends the task as soon as the consumer goes away, even while idle.
        let out = self.out.clone();
        if self.scan().await.is_err() {
            return;
        }
        loop {
            let next = self.pending.values().min().copied();
            let due = async {
                match next {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let result = tokio::select! {
                event = raw.recv() => match event {
                    Some(Ok(event)) => {
                        self.note(event).await;
                        Ok(())
                    }
                    Some(Err(error)) => {
                        // Nothing to attribute it to a key; a lost event is
                        // made up for by the next one on the same file.
                        tracing::warn!(%error, "the filesystem watch reported an error");
                        Ok(())
                    }
                    // The watcher was dropped.
                    None => Err(Closed),
                },
                () = due => self.settle_due().await,
                () = out.closed() => Err(Closed),
            };
            if result.is_err() {
                return;
            }
        }
    }

    /// Reports every module present, sorted by key.
    async fn scan(&mut self) -> Result<(), Closed> {
        for key in self.list().await {
            self.settle(&key).await?;
        }
        Ok(())
    }

    /// The keys of the files in the directory now.
    async fn list(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "cannot list the modules directory");
                return keys;
            }
        };
        loop {
            match entries.next_entry().await {
                Ok(Some(entry)) => keys.extend(key_of(&entry.file_name())),
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot list the modules directory");
                    break;
                }
            }
        }
        keys
    }

    /// Takes in one raw event: each key it touches settles [`DEBOUNCE`]
    /// from now.
    async fn note(&mut self, event: notify::Event) {
        match event.kind {
            // Our own reads open and close the files; only a closed write
            // says something about the contents.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return,
            _ => {}
        }
        let at = Instant::now() + DEBOUNCE;
        // The kernel dropped events (queue overflow), or the directory itself
        // was removed or moved: any key may have changed.
        if event.need_rescan() || event.paths.iter().any(|p| p == &self.dir) {
            tracing::debug!(kind = ?event.kind, "rescanning the modules directory");
            if matches!(event.kind, EventKind::Remove(_)) {
                // The kernel drops the watch with the directory; a new
                // directory of the same name is not watched.
                tracing::warn!("the modules directory was removed; restart to watch it again");
            }
            let keys: Vec<String> = self
                .list()
                .await
                .into_iter()
                .chain(self.reported.keys().cloned())
                .chain(self.failing.iter().cloned())
                .collect();
            self.pending.extend(keys.into_iter().map(|key| (key, at)));
            return;
        }
        for path in &event.paths {
            if path.parent() != Some(self.dir.as_path()) {
                continue;
            }
            if let Some(key) = path.file_name().and_then(key_of) {
                tracing::trace!(%key, kind = ?event.kind, "file event");
                self.pending.insert(key, at);
            }
        }
    }

    /// Settles every key whose quiet period is over, in key order.
    async fn settle_due(&mut self) -> Result<(), Closed> {
        let now = Instant::now();
        let mut due: Vec<String> = self
            .pending
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        due.sort();
        for key in due {
            self.pending.remove(&key);
            self.settle(&key).await?;
        }
        Ok(())
    }

    /// Reads one module as it is now and reports it if that differs from
    /// what was last reported.
    async fn settle(&mut self, key: &str) -> Result<(), Closed> {
        let event = match self.read(key).await {
            Ok(None) => {
                let known = self.reported.remove(key).is_some();
                let failed = self.failing.remove(key);
                (known || failed).then(|| DirEvent::Remove {
                    key: key.to_owned(),
                })
            }
            Ok(Some(found)) => {
                let now = Reported {
                    digest: Sha256::digest(&found.bytes).into(),
                    settings: found.settings.clone(),
                    grant: found.grant.clone(),
                };
                let recovered = self.failing.remove(key);
                if !recovered && self.reported.get(key) == Some(&now) {
                    tracing::debug!(%key, "unchanged; nothing to report");
                    None
                } else {
                    self.reported.insert(key.to_owned(), now);
                    Some(DirEvent::Upsert {
                        key: key.to_owned(),
                        path: found.path,
                        bytes: found.bytes.into(),
                        settings: found.settings,
                        grant: found.grant.map(Box::new),
                    })
                }
            }
            Err(error) => {
                self.failing.insert(key.to_owned());
                Some(DirEvent::Error {
                    key: key.to_owned(),
                    error,
                })
            }
        };
        let Some(event) = event else {
            return Ok(());
        };
        match &event {
            DirEvent::Upsert {
                path,
                bytes,
                settings,
                grant,
                ..
            } => tracing::info!(
                %key,
                path = %path.display(),
                size = bytes.len(),
                settings = settings.is_some(),
                grant = grant.is_some(),
                "module file changed"
            ),
            DirEvent::Remove { .. } => tracing::info!(%key, "module file removed"),
            DirEvent::Error { error, .. } => {
                tracing::warn!(%key, %error, "module left as it was")
            }
        }
        self.out.send(event).map_err(|_| Closed)
    }

    /// The module `key` as it is on disk now, or `None` without a module
    /// file (a settings file alone is not a module).
    async fn read(&self, key: &str) -> Result<Option<Found>, DirError> {
        let path = self.dir.join(format!("{key}{MODULE_SUFFIX}"));
        let Some(stored) = read_file(&path).await? else {
            return Ok(None);
        };
        // Compressed, two examples fit the 1 MiB of one ConfigMap mounted
        // as this directory.
        let bytes = super::source::decompress(stored, &path.display().to_string())
            .map_err(DirError::Compressed)?;
        let settings = match self.one_of(key, &SETTINGS_SUFFIXES).await? {
            None => None,
            Some((path, text)) => Some(parse_settings(&path, &text)?),
        };
        let grant = match self.one_of(key, &GRANT_SUFFIXES).await? {
            None => None,
            Some((path, text)) => Some(parse_grant(&path, &text)?),
        };
        Ok(Some(Found {
            path,
            bytes,
            settings,
            grant,
        }))
    }

    /// The one file of `key` with one of `suffixes`, if any: two are
    /// ambiguous.
    async fn one_of(
        &self,
        key: &str,
        suffixes: &[&str],
    ) -> Result<Option<(PathBuf, Vec<u8>)>, DirError> {
        let mut found = Vec::new();
        for suffix in suffixes {
            let path = self.dir.join(format!("{key}{suffix}"));
            if let Some(text) = read_file(&path).await? {
                found.push((path, text));
            }
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            _ => Err(DirError::AmbiguousSettings {
                key: key.to_owned(),
                paths: found.into_iter().map(|(path, _)| path).collect(),
            }),
        }
    }
}

/// The key of a file name, or `None` for a file that is neither a module nor
/// a settings file.
fn key_of(name: &OsStr) -> Option<String> {
    // A non-UTF-8 name cannot be a key: keys end up in logs and statuses.
    let name = name.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    std::iter::once(MODULE_SUFFIX)
        .chain(SETTINGS_SUFFIXES)
        .chain(GRANT_SUFFIXES)
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
        .map(str::to_owned)
}

/// The contents of a regular file, or `None` when there is none (a
/// directory does not count: it may have been named like a module).
async fn read_file(path: &Path) -> Result<Option<Vec<u8>>, DirError> {
    let read = async {
        if !tokio::fs::metadata(path).await?.is_file() {
            return Ok(None);
        }
        tokio::fs::read(path).await.map(Some)
    };
    match read.await {
        Ok(bytes) => Ok(bytes),
        // Deleted between the event and the read: the next event says so.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DirError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses a settings file by its extension and returns it as compact JSON
/// text. Normalising means that a change of layout or comments alone does not
/// swap the module.
fn parse_settings(path: &Path, text: &[u8]) -> Result<String, DirError> {
    let is_json = path.extension() == Some(OsStr::new("json"));
    let value: Result<serde_json::Value, String> = if is_json {
        serde_json::from_slice(text).map_err(|e| e.to_string())
    } else {
        serde_yaml::from_slice(text).map_err(|e| e.to_string())
    };
    let value = value.map_err(|reason| DirError::Settings {
        path: path.to_owned(),
        reason,
    })?;
    // A `serde_json::Value` always serialises.
    serde_json::to_string(&value).map_err(|e| DirError::Settings {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses a grant file: exactly one grant.
fn parse_grant(path: &Path, text: &[u8]) -> Result<GrantFile, DirError> {
    let invalid = |reason: String| DirError::Grant {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(text).map_err(|e| invalid(e.to_string()))?;
    let mut grants = crate::grants::parse_grants(text).map_err(invalid)?;
    match grants.len() {
        1 => Ok(grants.remove(0)),
        n => Err(invalid(format!(
            "it holds {n} grants; a module's grant file holds exactly one"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    /// Generous: only there so a broken watcher fails instead of hanging.
    const WAIT: Duration = Duration::from_secs(10);

    /// Long enough for a change to have been reported had there been one.
    const QUIET: Duration = Duration::from_secs(1);

    async fn next(rx: &mut mpsc::UnboundedReceiver<DirEvent>) -> DirEvent {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the event stream ended"),
            Err(_) => panic!("no event within {WAIT:?}"),
        }
    }

    async fn assert_quiet(rx: &mut mpsc::UnboundedReceiver<DirEvent>) {
        if let Ok(event) = tokio::time::timeout(QUIET, rx.recv()).await {
            panic!("expected no event, got {event:?}");
        }
    }

    /// The key, bytes and settings (parsed) of an `Upsert`.
    fn upsert(event: DirEvent) -> (String, Vec<u8>, Option<serde_json::Value>) {
        match event {
            DirEvent::Upsert {
                key,
                path,
                bytes,
                settings,
                ..
            } => {
                assert_eq!(path.file_name(), Some(OsStr::new(&format!("{key}.wasm"))));
                let settings = settings.map(|s| {
                    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON: {s}: {e}"))
                });
                (key, bytes.to_vec(), settings)
            }
            other => panic!("expected an Upsert, got {other:?}"),
        }
    }

    /// A watched empty directory, with its initial scan done.
    fn empty() -> (
        tempfile::TempDir,
        DirSource,
        mpsc::UnboundedReceiver<DirEvent>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (source, rx) = DirSource::watch(dir.path()).expect("watch");
        (dir, source, rx)
    }

    #[tokio::test]
    async fn initial_scan_reports_every_module_sorted_with_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        fs::write(p.join("c.wasm"), b"c").expect("write");
        fs::write(p.join("a.wasm"), b"a").expect("write");
        fs::write(p.join("a.settings.json"), br#"{"replicas": 2}"#).expect("write");
        fs::write(p.join("b.wasm"), b"b").expect("write");
        fs::write(
            p.join("b.settings.yaml"),
            b"image: nginx\nports: [80, 443]\n",
        )
        .expect("write");
        fs::write(p.join("d.settings.yml"), b"orphan: true\n").expect("write");

        let (_source, mut rx) = DirSource::watch(p).expect("watch");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("a".into(), b"a".to_vec(), Some(json!({"replicas": 2})))
        );
        assert_eq!(
            upsert(next(&mut rx).await),
            (
                "b".into(),
                b"b".to_vec(),
                Some(json!({"image": "nginx", "ports": [80, 443]}))
            )
        );
        assert_eq!(
            upsert(next(&mut rx).await),
            ("c".into(), b"c".to_vec(), None)
        );
        // A settings file without a module is not a module.
        assert_quiet(&mut rx).await;
    }

    #[tokio::test]
    async fn a_new_module_file_is_reported() {
        let (dir, _source, mut rx) = empty();
        fs::write(dir.path().join("new.wasm"), b"v1").expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("new".into(), b"v1".to_vec(), None)
        );
    }

    #[tokio::test]
    async fn a_compressed_module_file_is_reported_decompressed_and_a_broken_one_as_an_error() {
        use std::io::Write as _;
        let (dir, _source, mut rx) = empty();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(b"the component").expect("compress");
        let compressed = gzip.finish().expect("compress");
        fs::write(dir.path().join("small.wasm"), &compressed).expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("small".into(), b"the component".to_vec(), None)
        );
        fs::write(
            dir.path().join("small.wasm"),
            &compressed[..compressed.len() / 2],
        )
        .expect("write");
        match next(&mut rx).await {
            DirEvent::Error { key, error } => {
                assert_eq!(key, "small");
                assert!(error.to_string().contains("does not decompress"), "{error}");
            }
            other => panic!("expected an Error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn overwriting_with_new_bytes_reports_them() {
        let (dir, _source, mut rx) = empty();
        let file = dir.path().join("m.wasm");
        fs::write(&file, b"v1").expect("write");
        assert_eq!(upsert(next(&mut rx).await).1, b"v1");
        fs::write(&file, b"v2 is longer").expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"v2 is longer".to_vec(), None)
        );
    }

    #[tokio::test]
    async fn rewriting_identical_bytes_reports_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.wasm");
        fs::write(&file, b"same").expect("write");
        let (_source, mut rx) = DirSource::watch(dir.path()).expect("watch");
        assert_eq!(upsert(next(&mut rx).await).1, b"same");
        fs::write(&file, b"same").expect("write");
        assert_quiet(&mut rx).await;
    }

    #[tokio::test]
    async fn an_atomic_rename_replace_is_reported_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.wasm");
        fs::write(&file, b"v1").expect("write");
        let (_source, mut rx) = DirSource::watch(dir.path()).expect("watch");
        assert_eq!(upsert(next(&mut rx).await).1, b"v1");

        let tmp = dir.path().join("m.wasm.tmp");
        fs::write(&tmp, b"v2").expect("write");
        fs::rename(&tmp, &file).expect("rename");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"v2".to_vec(), None)
        );
        assert_quiet(&mut rx).await;
    }

    #[tokio::test]
    async fn deleting_a_module_file_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.wasm");
        fs::write(&file, b"v1").expect("write");
        fs::write(dir.path().join("m.settings.json"), b"{}").expect("write");
        let (_source, mut rx) = DirSource::watch(dir.path()).expect("watch");
        assert_eq!(upsert(next(&mut rx).await).0, "m");

        fs::remove_file(&file).expect("remove");
        match next(&mut rx).await {
            DirEvent::Remove { key } => assert_eq!(key, "m"),
            other => panic!("expected a Remove, got {other:?}"),
        }
        // The settings file left behind does not bring it back.
        fs::write(dir.path().join("m.settings.json"), b"{\"x\": 1}").expect("write");
        assert_quiet(&mut rx).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moving_a_module_away_and_back_removes_and_restores_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.wasm");
        let parked = dir.path().join("m.wasm.bak");
        fs::write(&file, b"code").expect("write");
        let (_source, mut rx) = DirSource::watch(dir.path()).expect("watch");
        assert_eq!(upsert(next(&mut rx).await).0, "m");

        fs::rename(&file, &parked).expect("rename");
        assert!(matches!(next(&mut rx).await, DirEvent::Remove { key } if key == "m"));
        fs::rename(&parked, &file).expect("rename");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"code".to_vec(), None)
        );
    }

    #[tokio::test]
    async fn removing_the_directory_removes_every_module() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("modules");
        fs::create_dir(&dir).expect("mkdir");
        fs::write(dir.join("a.wasm"), b"a").expect("write");
        fs::write(dir.join("b.wasm"), b"b").expect("write");
        let (_source, mut rx) = DirSource::watch(&dir).expect("watch");
        assert_eq!(upsert(next(&mut rx).await).0, "a");
        assert_eq!(upsert(next(&mut rx).await).0, "b");

        fs::remove_dir_all(&dir).expect("remove");
        let mut removed = BTreeSet::new();
        for _ in 0..2 {
            match next(&mut rx).await {
                DirEvent::Remove { key } => removed.insert(key),
                other => panic!("expected a Remove, got {other:?}"),
            };
        }
        assert_eq!(removed, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    }

    #[tokio::test]
    async fn adding_and_changing_settings_reports_the_same_bytes_with_new_settings() {
        let (dir, _source, mut rx) = empty();
        fs::write(dir.path().join("m.wasm"), b"code").expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"code".to_vec(), None)
        );

        let settings = dir.path().join("m.settings.yaml");
        fs::write(&settings, b"level: 1\n").expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"code".to_vec(), Some(json!({"level": 1})))
        );

        fs::write(&settings, b"level: 2\n").expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"code".to_vec(), Some(json!({"level": 2})))
        );

        // Only the layout changed: the settings handed on are the same.
        fs::write(&settings, b"# tuned\nlevel:   2\n").expect("write");
        assert_quiet(&mut rx).await;
    }

    #[tokio::test]
    async fn removing_settings_reports_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("m.wasm"), b"code").expect("write");
        let settings = dir.path().join("m.settings.json");
        fs::write(&settings, br#"["a"]"#).expect("write");
        let (_source, mut rx) = DirSource::watch(dir.path()).expect("watch");
        assert_eq!(upsert(next(&mut rx).await).2, Some(json!(["a"])));

        fs::remove_file(&settings).expect("remove");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"code".to_vec(), None)
        );
    }

    #[tokio::test]
    async fn bad_settings_are_an_error_until_fixed() {
        let (dir, _source, mut rx) = empty();
        fs::write(dir.path().join("m.wasm"), b"code").expect("write");
        assert_eq!(upsert(next(&mut rx).await).0, "m");

        let settings = dir.path().join("m.settings.json");
        fs::write(&settings, b"{\"replicas\": ").expect("write");
        match next(&mut rx).await {
            DirEvent::Error {
                key,
                error: DirError::Settings { path, .. },
            } => {
                assert_eq!(key, "m");
                assert_eq!(path, settings);
            }
            other => panic!("expected a settings Error, got {other:?}"),
        }

        fs::write(&settings, b"{\"replicas\": 3}").expect("write");
        assert_eq!(
            upsert(next(&mut rx).await),
            ("m".into(), b"code".to_vec(), Some(json!({"replicas": 3})))
        );
    }

    #[tokio::test]
    async fn a_module_with_bad_settings_at_start_is_an_error_not_an_upsert() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("m.wasm"), b"code").expect("write");
        fs::write(dir.path().join("m.settings.yaml"), b"a: [1, 2\n").expect("write");
        let (_source, mut rx) = DirSource::watch(dir.path()).expect("watch");
        let event = next(&mut rx).await;
        assert!(
            matches!(&event, DirEvent::Error { key, error: DirError::Settings { .. } } if key == "m"),
            "expected a settings Error, got {event:?}"
        );
    }

    #[tokio::test]
    async fn two_settings_files_are_an_error() {
        let (dir, _source, mut rx) = empty();
        fs::write(dir.path().join("m.wasm"), b"code").expect("write");
        assert_eq!(upsert(next(&mut rx).await).0, "m");
        fs::write(dir.path().join("m.settings.json"), b"{}").expect("write");
        // Let the first settings file be reported before adding the second.
        assert_eq!(upsert(next(&mut rx).await).2, Some(json!({})));
        fs::write(dir.path().join("m.settings.yml"), b"{}").expect("write");
        let event = next(&mut rx).await;
        assert!(
            matches!(&event, DirEvent::Error { error: DirError::AmbiguousSettings { paths, .. }, .. } if paths.len() == 2),
            "expected an AmbiguousSettings Error, got {event:?}"
        );
    }

    #[tokio::test]
    async fn other_files_are_ignored() {
        let (dir, _source, mut rx) = empty();
        let p = dir.path();
        fs::write(p.join("notes.txt"), b"hello").expect("write");
        fs::write(p.join("m.wasm.tmp"), b"partial").expect("write");
        fs::write(p.join(".hidden.wasm"), b"hidden").expect("write");
        fs::write(p.join(".wasm"), b"no stem").expect("write");
        fs::create_dir(p.join("sub")).expect("mkdir");
        fs::write(p.join("sub").join("inner.wasm"), b"nested").expect("write");
        fs::create_dir(p.join("dir.wasm")).expect("mkdir");
        assert_quiet(&mut rx).await;

        // The watch is alive: a real module after all that is the first event.
        fs::write(p.join("real.wasm"), b"real").expect("write");
        assert_eq!(upsert(next(&mut rx).await).0, "real");
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-modules");
        let error = DirSource::watch(&missing).expect_err("watching a missing directory");
        assert!(matches!(&error, DirError::Missing { path } if path == &missing));
        assert!(
            error.to_string().contains(&missing.display().to_string()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_file_is_not_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("m.wasm");
        fs::write(&file, b"code").expect("write");
        let error = DirSource::watch(&file).expect_err("watching a file");
        assert!(matches!(error, DirError::NotADirectory { .. }), "{error}");
    }

    #[tokio::test]
    async fn dropping_the_source_ends_the_stream() {
        let (dir, source, mut rx) = empty();
        drop(source);
        fs::write(dir.path().join("late.wasm"), b"late").expect("write");
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(None) => {}
            Ok(Some(event)) => panic!("expected the end of the stream, got {event:?}"),
            Err(_) => panic!("the stream did not end within {WAIT:?}"),
        }
    }

    #[test]
    fn settings_are_handed_on_as_compact_json() {
        let yaml = Path::new("m.settings.yaml");
        assert_eq!(
            parse_settings(yaml, b"# comment\nname: web\nports:\n  - 80\n").expect("parses"),
            r#"{"name":"web","ports":[80]}"#
        );
        let json = Path::new("m.settings.json");
        assert_eq!(
            parse_settings(json, b" \"just text\" ").expect("parses"),
            r#""just text""#
        );
        // JSON is parsed as JSON, not as the YAML it also is not.
        let error = parse_settings(json, b"name: web").expect_err("not JSON");
        assert!(error.to_string().contains("m.settings.json"), "{error}");
    }

    #[test]
    fn keys_are_file_stems_of_modules_and_settings() {
        let key = |name: &str| key_of(OsStr::new(name));
        assert_eq!(key("cnat.wasm").as_deref(), Some("cnat"));
        assert_eq!(key("cnat.settings.json").as_deref(), Some("cnat"));
        assert_eq!(key("cnat.settings.yaml").as_deref(), Some("cnat"));
        assert_eq!(key("cnat.settings.yml").as_deref(), Some("cnat"));
        assert_eq!(key("web.app.wasm").as_deref(), Some("web.app"));
        for ignored in [
            "cnat.wasm.tmp",
            ".cnat.wasm",
            ".wasm",
            "README.md",
            "x.json",
        ] {
            assert_eq!(key(ignored), None, "{ignored}");
        }
    }
}
