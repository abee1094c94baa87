//! Finalizers: calling the guest's `finalize` while a primary is being
//! deleted, and releasing the object once it reports done.

use std::time::Duration;

use kube::api::DynamicObject;
use serde_json::Value;

use super::Controller;
use crate::apply::EventSource;
use crate::engine::bindings::{Request, Trigger};
use crate::engine::{Fault, recording};
use crate::informers::{ObjectKey, guest_json, to_json};
use crate::telemetry::{GuestCall, ReconcileResult};

/// How long to wait before calling `finalize` again when it is not done and
/// asked for no particular delay.
const FINALIZE_POLL: Duration = Duration::from_secs(5);

impl Controller {
    pub(super) async fn finalize(
        &self,
        key: &ObjectKey,
        object: &DynamicObject,
        host_view: &Value,
        finalizer: &str,
        trigger: Trigger,
    ) -> ReconcileResult {
        let children = self
            .children_of(object)
            .map(|child| to_json(&child, true).to_string())
            .collect();
        let request = Request {
            object: guest_json(host_view),
            children,
            settings: self.settings().settings,
            trigger,
            attempt: self.queue.retries(key) + 1,
        };
        let recordings = self.ctx.recordings.clone();
        let outcome = self
            .call(
                GuestCall::Finalize,
                key,
                host_view,
                &self.live_version(),
                request,
                move |module, request, ctx| {
                    recording::finalize_kept(module, request, ctx, recordings.as_deref())
                },
            )
            .await;
        let response = match outcome {
            Err(error) => return self.call_failed(key, host_view, &error, false).await,
            Ok(Err(error)) => return self.guest_error(key, host_view, None, error).await,
            Ok(Ok(response)) => response,
        };
        let events = match crate::validate::validate_events(response.events) {
            Ok(events) => events,
            Err(error) => {
                let error = format!(
                    "module {} returned invalid output from finalize: {error}",
                    self.meta().name
                );
                return self
                    .guest_fault(key, host_view, "InvalidOutput", Fault::Guest, &error, false)
                    .await;
            }
        };
        let Some(applier) = self.writer() else {
            return self.not_written(key);
        };
        match applier
            .record_events(self.meta(), host_view, &events, EventSource::Guest)
            .await
        {
            Ok(dropped) => self.ctx.metrics.events_dropped(&self.meta.name, dropped),
            Err(error) => tracing::warn!(%error, "could not record events"),
        }
        if !response.done {
            let after = response
                .requeue_after_ms
                .map_or(FINALIZE_POLL, Duration::from_millis);
            self.enqueue_after(key.clone(), Trigger::Requeue, after);
            return ReconcileResult::RequeueAfter;
        }
        let Some(applier) = self.writer() else {
            return self.not_written(key);
        };
        match applier
            .remove_finalizer(self.meta(), host_view, finalizer)
            .await
        {
            Ok(()) => {
                self.queue.forget(key);
                ReconcileResult::Success
            }
            Err(error) => self.write_failed(key, host_view, None, error).await,
        }
    }
}
