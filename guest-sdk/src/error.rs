use std::fmt;

use crate::bindings::bosun::reconciler::types::{Failure, ReconcileError};

/// Why a reconcile did not succeed.
///
/// A [retryable](Error::retryable) error makes the host try again with
/// exponential backoff; a [permanent](Error::permanent) one is surfaced as a
/// condition and a warning event and is not retried until the object
/// changes. Any `std::error::Error` converts into a retryable error, so `?`
/// works on fallible calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    permanent: bool,
    reason: String,
    message: String,
}

impl Error {
    /// A passing failure, worth retrying: a dependency not ready yet, a
    /// read that failed.
    pub fn retryable(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            permanent: false,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The object cannot be reconciled as it is (an invalid spec, say).
    /// Retrying would not help; the user has to change the object.
    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            permanent: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// True for [`Error::permanent`].
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The CamelCase reason, used in the condition and event.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The human-readable explanation.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_wit(self) -> ReconcileError {
        let failure = Failure {
            reason: self.reason,
            message: self.message,
        };
        if self.permanent {
            ReconcileError::Permanent(failure)
        } else {
            ReconcileError::Retryable(failure)
        }
    }

    pub(crate) fn from_wit(error: ReconcileError) -> Self {
        match error {
            ReconcileError::Retryable(f) => Error::retryable(f.reason, f.message),
            ReconcileError::Permanent(f) => Error::permanent(f.reason, f.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = if self.permanent {
            "permanent"
        } else {
            "retryable"
        };
        write!(f, "{class} error {}: {}", self.reason, self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Error::retryable("Error", error.to_string())
    }
}
