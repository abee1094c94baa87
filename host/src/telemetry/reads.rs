//! What the host caches and what guests read: the size of every watch's
//! cache and the objects it skipped, and read tracking per module (reads
//! held, reconciles they brought, logs that overflowed their cap).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::informers::{CacheObserver, SkippedObject};
use crate::meta::Kind;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    /// `Kind.group/version`, as the host names kinds in its logs.
    kind: String,
    /// The namespace watched; empty for a cluster-wide watch.
    namespace: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UndecodableLabels {
    /// As in [`CacheLabels`].
    kind: String,
    /// `too_deep`, `too_large` or `malformed`.
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModuleLabels {
    module: String,
}

/// The families of this concern, registered in the host's one registry.
#[derive(Clone, Default)]
pub(super) struct ReadFamilies {
    cached_objects: Family<CacheLabels, Gauge>,
    skipped_objects: Family<CacheLabels, Gauge>,
    undecodable: Family<UndecodableLabels, Counter>,
    tracked_reads: Family<ModuleLabels, Gauge>,
    read_triggers: Family<ModuleLabels, Counter>,
    overflows: Family<ModuleLabels, Counter>,
}

impl ReadFamilies {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let families = ReadFamilies::default();
        registry.register(
            "bosun_cached_objects",
            "Objects in each watch's cache, by kind and namespace (empty: cluster-wide)",
            families.cached_objects.clone(),
        );
        registry.register(
            "bosun_skipped_objects",
            "Objects each watch could not decode (too deep, too large or malformed) and does not cache, by kind and namespace (empty: cluster-wide)",
            families.skipped_objects.clone(),
        );
        registry.register(
            "bosun_undecodable_objects",
            "Total number of object versions the watches skipped because they could not be decoded, by kind and reason",
            families.undecodable.clone(),
        );
        registry.register(
            "bosun_tracked_reads",
            "Reads the host tracks for a module's primaries, to reconcile a primary again when what it read changes",
            families.tracked_reads.clone(),
        );
        registry.register(
            "bosun_read_triggers",
            "Total number of reconciles queued because something a primary read changed",
            families.read_triggers.clone(),
        );
        registry.register(
            "bosun_tracked_reads_overflows",
            "Total number of calls that read more than the module's tracked-reads cap; their reads past it are tracked per kind and namespace",
            families.overflows.clone(),
        );
        families
    }

    fn module(module: &str) -> ModuleLabels {
        ModuleLabels {
            module: module.to_owned(),
        }
    }

    pub(super) fn set_tracked(&self, module: &str, reads: usize) {
        self.tracked_reads
            .get_or_create(&Self::module(module))
            .set(i64::try_from(reads).unwrap_or(i64::MAX));
    }

    pub(super) fn read_triggered(&self, module: &str) {
        self.read_triggers
            .get_or_create(&Self::module(module))
            .inc();
    }

    pub(super) fn overflowed(&self, module: &str) {
        self.overflows.get_or_create(&Self::module(module)).inc();
    }

    /// Creates a module's series at zero, so they exist before its first
    /// read.
    pub(super) fn init_module(&self, module: &str) {
        let labels = Self::module(module);
        drop(self.tracked_reads.get_or_create(&labels));
        drop(self.read_triggers.get_or_create(&labels));
        drop(self.overflows.get_or_create(&labels));
    }
}

fn cache_labels(kind: &Kind, namespace: Option<&str>) -> CacheLabels {
    CacheLabels {
        kind: kind.to_string(),
        namespace: namespace.unwrap_or_default().to_owned(),
    }
}

impl CacheObserver for ReadFamilies {
    fn cached(&self, kind: &Kind, namespace: Option<&str>, objects: usize) {
        self.cached_objects
            .get_or_create(&cache_labels(kind, namespace))
            .set(i64::try_from(objects).unwrap_or(i64::MAX));
    }

    fn skipped(&self, kind: &Kind, namespace: Option<&str>, objects: usize) {
        let labels = cache_labels(kind, namespace);
        // A series appears with the first skipped object, not with every watch.
        if objects > 0 || self.skipped_objects.get(&labels).is_some() {
            self.skipped_objects
                .get_or_create(&labels)
                .set(i64::try_from(objects).unwrap_or(i64::MAX));
        }
    }

    fn undecodable(&self, kind: &Kind, _namespace: Option<&str>, object: &SkippedObject) {
        self.undecodable
            .get_or_create(&UndecodableLabels {
                kind: kind.to_string(),
                reason: object.reason.label().to_owned(),
            })
            .inc();
    }

    fn stopped(&self, kind: &Kind, namespace: Option<&str>) {
        let labels = cache_labels(kind, namespace);
        self.cached_objects.remove(&labels);
        self.skipped_objects.remove(&labels);
    }
}
