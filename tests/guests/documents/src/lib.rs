//! kube-rs's reference controller, controller-rs (`Document`), written as a
//! bosun reconciler, for the host's end-to-end tests.
//!
//! A Document is a title and some content that can be hidden; the
//! controller reports `status.hidden`, records an event when a Document is
//! asked to hide, and holds the finalizer `documents.kube.rs` — a name
//! without a `/`, which the API server accepts — so that deleting a
//! Document records an event first. Its CRD (`crd.yaml`, as controller-rs
//! generates it) has neither `status.observedGeneration` nor `conditions`.

// clippy reads kube's derive arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use bosun_sdk::prelude::*;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// controller-rs's finalizer, kept so that Documents it finalized before
/// keep working after the move.
pub const FINALIZER: &str = "documents.kube.rs";

/// A document.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kube.rs",
    version = "v1",
    kind = "Document",
    namespaced,
    status = "DocumentStatus",
    shortname = "doc"
)]
pub struct DocumentSpec {
    /// Its title.
    pub title: String,
    /// Whether it should be hidden.
    pub hide: bool,
    /// What it says.
    pub content: String,
}

/// The status of a Document.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct DocumentStatus {
    /// Whether it is hidden.
    pub hidden: bool,
}

/// The controller-rs reconciler.
pub struct Documents;

impl Reconciler for Documents {
    type Object = Document;

    fn metadata() -> Metadata {
        Metadata::new("documents", env!("CARGO_PKG_VERSION")).finalizer(FINALIZER)
    }

    fn reconcile(doc: &Document, _ctx: &Context) -> Result<Response, Error> {
        let hide = doc.spec.hide;
        let was_hidden = doc.status.as_ref().is_some_and(|s| s.hidden);
        let mut response = Response::new().status(DocumentStatus { hidden: hide });
        if hide && !was_hidden {
            response = response.event(Event::normal(
                "HideRequested",
                format!("Hiding `{}`", doc.name_any()),
            ));
        }
        // controller-rs looks again every five minutes.
        Ok(response.requeue_after(std::time::Duration::from_secs(300)))
    }

    fn finalize(doc: &Document, _ctx: &Context) -> Result<Finalized, Error> {
        Ok(Finalized::done().event(Event::normal(
            "DeleteRequested",
            format!("Delete `{}`", doc.name_any()),
        )))
    }
}

bosun_sdk::export!(Documents);

#[cfg(test)]
mod tests {
    use bosun_sdk::testing::Harness;

    use super::*;

    fn document(hide: bool) -> Document {
        let mut doc = Document::new(
            "lorem",
            DocumentSpec {
                title: "Lorem".into(),
                hide,
                content: "ipsum".into(),
            },
        );
        doc.metadata.namespace = Some("default".into());
        doc
    }

    #[test]
    fn reports_whether_it_is_hidden_and_says_so_once() {
        let outcome = Harness::<Documents>::new()
            .reconcile(&document(true))
            .unwrap();
        assert!(outcome.status::<DocumentStatus>().unwrap().hidden);
        assert_eq!(outcome.events()[0].reason, "HideRequested");
        let mut hidden = document(true);
        hidden.status = Some(DocumentStatus { hidden: true });
        let outcome = Harness::<Documents>::new().reconcile(&hidden).unwrap();
        assert!(outcome.events().is_empty());
    }
}
