//! Failure reporting: whatever fails — the guest's call, its output, a
//! write — is reported on the primary, where the user looks (a Warning
//! event, and a `Reconciled` condition where the status has room), counted
//! toward quarantine when it is the guest's own fault, and retried as the
//! cause warrants.

use std::collections::BTreeSet;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::Controller;
use super::triggers::serves;
use crate::apply::{ApplyError, EventSource, Retry};
use crate::engine::bindings::{Event, EventType, ReconcileError};
use crate::engine::{CallError, Fault};
use crate::informers::ObjectKey;
use crate::quarantine;
use crate::telemetry::ReconcileResult;

impl Controller {
    pub(super) async fn call_failed(
        &self,
        key: &ObjectKey,
        object: &Value,
        error: &CallError,
        candidate: bool,
    ) -> ReconcileResult {
        self.ctx.metrics.guest_trap(&self.meta().name, error.kind());
        self.stats.traps.fetch_add(1, Ordering::Relaxed);
        self.guest_fault(
            key,
            object,
            error.kind(),
            error.fault(),
            &error.to_string(),
            candidate,
        )
        .await
    }

    /// A call that failed, or returned what the host refuses: counts it
    /// toward quarantine if it was the guest's fault — and the live
    /// version's: a canary's `candidate` faults are the canary judge's to
    /// weigh — reports it on the object, and retries with backoff.
    pub(super) async fn guest_fault(
        &self,
        key: &ObjectKey,
        object: &Value,
        reason: &str,
        fault: Fault,
        message: &str,
        candidate: bool,
    ) -> ReconcileResult {
        if self.writer().is_none() {
            // Whatever failed, the grant it ran under is gone: nothing to
            // count against the module, nothing to report where it may no
            // longer write.
            return self.not_written(key);
        }
        if reason == "InvalidOutput" {
            self.ctx.metrics.guest_trap(&self.meta().name, reason);
        }
        let limit = self.settings().quarantine_after;
        let verdict = if candidate {
            quarantine::Verdict::NotCounted
        } else {
            self.quarantine
                .failed(fault, key.namespace.as_deref(), limit, || self.tenants())
        };
        if let quarantine::Verdict::Quarantined { in_a_row } = verdict {
            self.queue.set_concurrency(0);
            self.ctx.metrics.set_quarantined(&self.meta().name, true);
            tracing::error!(module = %self.meta().name, in_a_row, "quarantined after {in_a_row} traps in a row, each of its own making; load a new version to resume");
        }
        let delay = self.retry(key);
        tracing::warn!(error = %message, ?fault, retry_in = ?delay, "guest call failed");
        self.report(object, reason, message).await;
        ReconcileResult::Error
    }

    /// How many namespaces the module has objects in among those it serves
    /// (cluster-scoped objects count as one): see [`tenants`].
    pub(super) fn tenants(&self) -> usize {
        let namespaces = self.settings().namespaces;
        tenants(
            self.primary()
                .objects()
                .iter()
                .map(|o| o.metadata.namespace.as_deref()),
            &namespaces,
        )
    }

    pub(super) async fn guest_error(
        &self,
        key: &ObjectKey,
        object: &Value,
        generation: Option<i64>,
        error: ReconcileError,
    ) -> ReconcileResult {
        match error {
            ReconcileError::Retryable(failure) => {
                let delay = self.retry(key);
                tracing::info!(reason = %failure.reason, message = %failure.message, retry_in = ?delay, "retryable error");
                self.report(object, &failure.reason, &failure.message).await;
            }
            ReconcileError::Permanent(failure) => {
                tracing::warn!(reason = %failure.reason, message = %failure.message, "permanent error; not retrying until the object changes");
                self.give_up_until_changed(key, generation);
                self.report(object, &failure.reason, &failure.message).await;
            }
        }
        ReconcileResult::Error
    }

    /// A write that failed (or that the host refused to make): reported on
    /// the object unless it is a race a retry resolves, and retried as the
    /// cause warrants ([`Retry`]).
    pub(super) async fn write_failed(
        &self,
        key: &ObjectKey,
        object: &Value,
        generation: Option<i64>,
        error: ApplyError,
    ) -> ReconcileResult {
        let retry = error.retry();
        if retry != Retry::Quietly {
            self.ctx
                .metrics
                .write_failed(&self.meta().name, error.reason());
        }
        match retry {
            Retry::Never => {
                tracing::info!(%error, "not written: this host no longer leads");
                return ReconcileResult::Error;
            }
            Retry::Quietly => {
                let delay = self.retry(key);
                tracing::debug!(%error, retry_in = ?delay, "write raced a concurrent change; retrying");
                return ReconcileResult::Error;
            }
            Retry::WithBackoff => {
                let delay = self.retry(key);
                tracing::warn!(%error, retry_in = ?delay, "write failed; retrying with backoff");
            }
            Retry::WhenChanged => {
                tracing::warn!(%error, "write refused as invalid; not retrying until the object changes");
                self.give_up_until_changed(key, generation);
            }
        }
        self.report(object, error.reason(), &error.to_string())
            .await;
        ReconcileResult::Error
    }

    /// Stops reconciling `key` until its generation moves past `generation`.
    pub(super) fn give_up_until_changed(&self, key: &ObjectKey, generation: Option<i64>) {
        self.queue.forget(key);
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), generation);
    }

    /// Reports a failure on `object`: a Warning event, and the host's
    /// `Reconciled=False` condition where the status has room for it.
    pub(super) async fn report(&self, object: &Value, reason: &str, message: &str) {
        let room = self.resolved().status;
        let Some(applier) = self.writer() else {
            return;
        };
        if let Err(error) = applier
            .report_failure(self.meta(), room, object, reason, message)
            .await
        {
            tracing::warn!(%error, "could not report the failure on the object");
        }
    }

    /// Warns on `object` about something that did not fail the reconcile:
    /// a Warning event only, no condition.
    pub(super) async fn report_warning(&self, object: &Value, reason: &str, message: &str) {
        let event = Event {
            event_type: EventType::Warning,
            reason: reason.to_owned(),
            note: message.to_owned(),
            action: "Reconcile".to_owned(),
        };
        let Some(applier) = self.writer() else {
            return;
        };
        if let Err(error) = applier
            .record_events(self.meta(), object, &[event], EventSource::Host)
            .await
        {
            tracing::warn!(%error, "could not record the warning on the object");
        }
    }
}

/// How many tenants the primaries in `objects` (their namespaces) make for
/// a module granted `namespaces`: the distinct namespaces it serves,
/// cluster-scoped objects counting as one. The informer watches the kind
/// cluster-wide, so it holds objects in namespaces outside the grant too;
/// the module never reconciles those, so they can never bring it a fault,
/// and counting them would ask for faults from two namespaces of a module
/// that serves one: it would never be quarantined.
fn tenants<'a>(objects: impl IntoIterator<Item = Option<&'a str>>, namespaces: &[String]) -> usize {
    objects
        .into_iter()
        .filter(|namespace| serves(namespaces, *namespace))
        .collect::<BTreeSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(namespaces: &[&str]) -> Vec<String> {
        namespaces.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn tenants_are_the_namespaces_the_module_serves() {
        let objects = [Some("a"), Some("a"), Some("b"), Some("c")];
        assert_eq!(tenants(objects, &[]), 3);
        assert_eq!(tenants(objects, &granted(&["a", "b"])), 2);
        // One granted namespace is one tenant, however many namespaces
        // outside the grant hold objects of the kind.
        assert_eq!(tenants(objects, &granted(&["a"])), 1);
        assert_eq!(tenants(objects, &granted(&["z"])), 0);
    }

    #[test]
    fn cluster_scoped_primaries_are_one_tenant() {
        let objects = [None, None];
        assert_eq!(tenants(objects, &[]), 1);
        assert_eq!(tenants(objects, &granted(&["a"])), 1);
        assert_eq!(tenants(std::iter::empty(), &granted(&["a"])), 0);
    }
}
