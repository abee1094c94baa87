//! The live controller's side of a shadow run ([`crate::rollout::shadow`]):
//! staging and dropping a candidate, offering it each key the live version
//! reconciled, and answering its requests from the same caches, settings
//! and running version a live reconcile uses. Nothing here writes.

use std::sync::{Arc, PoisonError, Weak};

use super::Controller;
use crate::engine::Module;
use crate::informers::{ObjectKey, to_json};
use crate::objects::ConfinedObjects;
use crate::rollout::shadow::{Report, Shadow, Subject, Subjects};
use crate::rollout::{StageError, same_kinds};

impl Controller {
    /// Stages `candidate` (sha256 `digest`, with its own `settings` or,
    /// when None, the live version's) beside the running version: every
    /// object is compared now, and each one again after the live version
    /// reconciles it. A candidate already staged with the same digest and
    /// settings keeps its results.
    ///
    /// # Errors
    ///
    /// When the candidate's kinds or finalizer differ from the running
    /// version's (the same request would not mean the same), or its thread
    /// cannot start.
    pub fn stage(
        self: &Arc<Self>,
        candidate: Module,
        digest: String,
        settings: Option<String>,
    ) -> Result<(), StageError> {
        if let Some(shadow) = self.shadow()
            && shadow.digest() == digest
            && shadow.settings() == settings.as_deref()
        {
            return Ok(());
        }
        same_kinds(&self.meta, candidate.meta())?;
        let subjects: Weak<dyn Subjects> = Arc::downgrade(self) as Weak<dyn Subjects>;
        let shadow = Shadow::start(
            candidate,
            digest,
            settings,
            subjects,
            self.ctx.guest_slots.clone(),
        )
        .map_err(StageError::Thread)?;
        tracing::info!(module = %self.meta.name, "shadow run started");
        *self.shadow.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(shadow));
        Ok(())
    }

    /// Drops the staged candidate, if any; its call in hand finishes and
    /// is forgotten.
    pub fn unstage(&self) {
        if self
            .shadow
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
        {
            tracing::info!(module = %self.meta.name, "shadow run stopped");
        }
    }

    /// What the shadow run found so far; None when nothing is staged.
    pub fn shadow_report(&self) -> Option<Report> {
        self.shadow().map(|shadow| shadow.report())
    }

    fn shadow(&self) -> Option<Arc<Shadow>> {
        self.shadow
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The live version reconciled `key`: the shadow compares it (again).
    pub(super) fn offer_shadow(&self, key: &ObjectKey) {
        if let Some(shadow) = self.shadow() {
            shadow.offer(key.clone());
        }
    }
}

impl Subjects for Controller {
    fn keys(&self) -> Vec<ObjectKey> {
        self.primary()
            .objects()
            .iter()
            .map(|object| ObjectKey::of(object))
            .collect()
    }

    fn busy(&self) -> bool {
        self.live_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    }

    fn subject(&self, key: &ObjectKey) -> Option<Subject> {
        let object = self.primary().get(key)?;
        // An object in deletion gets finalize, which a shadow never calls.
        if object.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let observed = self
            .children_of(&object)
            .map(|child| to_json(&child, false))
            .collect();
        let settings = self.settings();
        Some(Subject {
            object: to_json(&object, false),
            observed,
            live: self.module(),
            settings: settings.settings,
            limits: settings.limits,
            objects: ConfinedObjects::over(self.objects.clone(), settings.namespaces.clone()),
            status: self.resolved().status,
            namespaces: settings.namespaces,
        })
    }
}
