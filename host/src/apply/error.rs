//! What can go wrong writing a plan, and what the host does about each.

use std::fmt;

/// The kind of write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply of a child.
    Apply,
    /// Deletion of a pruned child.
    Prune,
    /// Server-side apply of the primary's status.
    Status,
    /// Recording an event against the primary.
    Event,
    /// Adding or removing the module's finalizer on the primary.
    Finalizer,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Apply => "apply",
            Operation::Prune => "prune",
            Operation::Status => "status write",
            Operation::Event => "event",
            Operation::Finalizer => "finalizer update",
        })
    }
}

/// What to do after a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A race with a concurrent change: reconcile again with a fresh copy,
    /// without troubling the user.
    Quietly,
    /// Tell the user, and retry with backoff: the cause may pass (an
    /// outage, a permission granted later, a foreign object removed).
    WithBackoff,
    /// Tell the user, and do not retry until the object changes: the API
    /// server refused the write as invalid, and the same write will be
    /// refused again.
    WhenChanged,
    /// Nothing: this host may not write any more (it lost leadership).
    Never,
}

/// A write that failed. Names the operation and the object, e.g.
/// `apply of Deployment.apps/v1 team-a/shop failed: …`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused the write because the object changed
    /// meanwhile (409 Conflict on a `resourceVersion` or `uid`
    /// precondition; for finalizer updates a failed `test`, 422). Retry with
    /// a fresh copy.
    #[error(
        "{operation} of {object} conflicted with a concurrent change (retry with a fresh copy): {source}"
    )]
    Conflict {
        /// What was being written.
        operation: Operation,
        /// The object, as `Kind.apiVersion namespace/name`.
        object: String,
        /// The API server's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object that is not this module's child already has the name the
    /// module wants for one. Nothing was written to it: the host never
    /// adopts.
    #[error(
        "{object} already exists and {reason}; bosun does not take over objects it did not create: delete or rename it, or have the module choose another name"
    )]
    ChildExists {
        /// The object, as `Kind.apiVersion namespace/name`.
        object: String,
        /// Why it is not this module's: whom it belongs to.
        reason: String,
    },
    /// The API server (or the connection to it) failed the write.
    #[error("{operation} of {object} failed: {source}")]
    Api {
        /// What was being written.
        operation: Operation,
        /// The object, as `Kind.apiVersion namespace/name`.
        object: String,
        /// The API server's answer, or the transport error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The write could not even be formed: the object lacks a field every
    /// object has, or is of a kind the module did not declare, or the kind
    /// has no status subresource.
    #[error("cannot {operation} {object}: {reason}")]
    Invalid {
        /// What was being written.
        operation: Operation,
        /// The object, as far as it could be named.
        object: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// This host lost leadership: another replica writes now, so nothing
    /// more is written from here.
    #[error("{operation} of {object} not sent: this host no longer leads")]
    NotLeader {
        /// What was about to be written.
        operation: Operation,
        /// The object.
        object: String,
    },
}

impl ApplyError {
    /// True for a conflict with a concurrent change: retrying on the next
    /// event, with a fresh copy of the object, is the cure.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApplyError::Conflict { .. })
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            ApplyError::Conflict { operation, .. }
            | ApplyError::Api { operation, .. }
            | ApplyError::Invalid { operation, .. }
            | ApplyError::NotLeader { operation, .. } => *operation,
            ApplyError::ChildExists { .. } => Operation::Apply,
        }
    }

    /// The object the failed write was for.
    pub fn object(&self) -> &str {
        match self {
            ApplyError::Conflict { object, .. }
            | ApplyError::Api { object, .. }
            | ApplyError::Invalid { object, .. }
            | ApplyError::NotLeader { object, .. }
            | ApplyError::ChildExists { object, .. } => object,
        }
    }

    /// A CamelCase reason for the event and condition that report it.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::ChildExists { .. } => "ChildExists",
            error => match error.operation() {
                Operation::Apply => "ApplyFailed",
                Operation::Prune => "PruneFailed",
                Operation::Status => "StatusWriteFailed",
                Operation::Event => "EventFailed",
                Operation::Finalizer => "FinalizerFailed",
            },
        }
    }

    /// What the host does next.
    pub fn retry(&self) -> Retry {
        match self {
            ApplyError::Conflict { .. } => Retry::Quietly,
            ApplyError::NotLeader { .. } => Retry::Never,
            ApplyError::Invalid { .. } => Retry::WhenChanged,
            ApplyError::ChildExists { .. } => Retry::WithBackoff,
            ApplyError::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
                    Retry::WhenChanged
                }
                _ => Retry::WithBackoff,
            },
        }
    }

    pub(super) fn api(operation: Operation, object: &str, source: kube::Error) -> Self {
        let conflict = match &source {
            kube::Error::Api(status) => status.code == 409,
            _ => false,
        };
        let object = object.to_owned();
        let source = Box::new(source);
        if conflict {
            ApplyError::Conflict {
                operation,
                object,
                source,
            }
        } else {
            ApplyError::Api {
                operation,
                object,
                source,
            }
        }
    }

    pub(super) fn invalid(operation: Operation, object: &str, reason: impl Into<String>) -> Self {
        ApplyError::Invalid {
            operation,
            object: object.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> ApplyError {
        let status = kube::core::Status::failure("refused", "Refused").with_code(code);
        ApplyError::api(Operation::Apply, "x", kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn the_retry_fits_the_cause() {
        assert_eq!(api_error(409).retry(), Retry::Quietly);
        assert_eq!(api_error(422).retry(), Retry::WhenChanged);
        assert_eq!(api_error(403).retry(), Retry::WithBackoff);
        assert_eq!(api_error(500).retry(), Retry::WithBackoff);
        let exists = ApplyError::ChildExists {
            object: "Service.v1 default/kubernetes".into(),
            reason: "is not controlled by WebApp kubernetes".into(),
        };
        assert_eq!(exists.retry(), Retry::WithBackoff);
        assert_eq!(exists.reason(), "ChildExists");
    }
}
