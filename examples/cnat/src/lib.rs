//! The `At` controller ("cnat", cloud-native at) from the book *Programming
//! Kubernetes* by Michael Hausenblas and Stefan Schimanski, as a bosun
//! reconciler.
//!
//! An `At` runs a command once, at a given time: it stays `PENDING` until
//! `spec.schedule` (UTC, Go layout `2006-01-02T15:04:05Z`), then the
//! controller starts a one-shot busybox Pod running `spec.command` and the
//! phase becomes `RUNNING`, and once the Pod has succeeded or failed the
//! phase is `DONE`.
//!
//! The book's controller writes the status one phase at a time and
//! re-reads; a bosun reconciler returns the whole desired state in one go,
//! so a due `At` goes from no status straight to `RUNNING` with its Pod.

// clippy reads kube's repeated `printcolumn(type_ = …)` arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod at;

pub use at::*;

bosun_sdk::export!(Cnat);
