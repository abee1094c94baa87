use std::time::Duration;

use super::Contract;
use super::cage::LimitHit;
use super::contract::Unserved;

/// Why a module could not be loaded. Nothing of it runs; whatever ran before keeps running.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component.
    #[error(
        "{source_name} is not a WebAssembly component: {reason}; build the reconciler with `cargo build --target wasm32-wasip2` (a core module from wasm32-unknown-unknown or wasm32-wasip1 will not do)"
    )]
    NotAComponent {
        /// Where the bytes came from.
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The component did not compile.
    #[error("{source_name} failed to compile: {reason:#}")]
    Compile {
        /// Where the bytes came from.
        source_name: String,
        /// The compiler's complaint.
        reason: wasmtime::Error,
    },
    /// Compiling the component went past a limit of the compile cage: it
    /// does not run, and (for time and memory) the same bytes are not
    /// compiled again under the same limits, even after a restart.
    #[error(
        "{source_name} was not compiled: {hit}{}; a component that needs this much costs every host that loads it — if it is meant to (an interpreted language's runtime is large), raise the limit on the host ({flag}), else rebuild it smaller",
        remembered.as_ref().map(|at| format!(" (remembered from a compile refused at {at}; not compiled again until its bytes or the limits change)")).unwrap_or_default(),
        flag = hit.flag()
    )]
    CompileLimit {
        /// Where the bytes came from.
        source_name: String,
        /// The limit it went past.
        hit: LimitHit,
        /// When the refusal was first made, if this one was read from the
        /// refusal's marker rather than found by compiling.
        remembered: Option<String>,
    },
    /// The compile cage could not compile the component now, through no
    /// fault of the component; loading it again may work.
    #[error("{source_name} could not be compiled now: {reason}; it will be tried again")]
    CompileUnavailable {
        /// Where the bytes came from.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// The component does not implement the `bosun:reconciler/reconciler`
    /// world of the contract version it targets.
    #[error(
        "{source_name} does not implement the bosun:reconciler/reconciler world of {contract}: {reason:#}; build it with the bosun-sdk crate and `bosun_sdk::export!`",
        contract = contract.package()
    )]
    WrongWorld {
        /// Where the bytes came from.
        source_name: String,
        /// The version it was checked against: the one its imports name,
        /// or the current one when they name none.
        contract: Contract,
        /// Which import is unknown or which export is missing or mistyped.
        reason: wasmtime::Error,
    },
    /// The component targets a version of the contract this host does not
    /// serve.
    #[error(
        "{source_name} targets bosun:reconciler@{asked}, which this host does not serve (it serves {served}); rebuild it against one of those (a bosun-sdk release that targets it, or its WIT from the wit/ directory of this bosun release), or run it on a bosun host that serves {asked}",
        served = Contract::served()
    )]
    UnservedContract {
        /// Where the bytes came from.
        source_name: String,
        /// The version its imports name (`unversioned` when they name
        /// none), cut to size.
        asked: String,
    },
    /// The component imports more than one version of the contract.
    #[error(
        "{source_name} imports bosun:reconciler at several versions ({}{}), but a component targets exactly one; rebuild it against one version this host serves ({served})",
        asked.join(", "),
        if *more > 0 { format!(" and {more} more") } else { String::new() },
        served = Contract::served()
    )]
    MixedContracts {
        /// Where the bytes came from.
        source_name: String,
        /// The versions its imports name (the first few, each cut to size).
        asked: Vec<String>,
        /// How many more it names.
        more: usize,
    },
    /// The component was built against `bosun:reconciler@0.1.0` as it was
    /// before `module-info` gained `http-origins` (the one change ever made
    /// to a released version, which the versioning policy now forbids).
    #[error(
        "{source_name} was built against an early draft of bosun:reconciler@0.1.0 whose module-info had no http-origins: 0.1.0 once changed under the same version number (wit/README.md tells the story), and hosts serve only its final shape; rebuild it with a current bosun-sdk (this host serves {served})",
        served = Contract::served()
    )]
    EarlyContract {
        /// Where the bytes came from.
        source_name: String,
    },
    /// Calling `metadata` failed.
    #[error("{source_name}: calling `metadata` failed: {source}")]
    Metadata {
        /// Where the bytes came from.
        source_name: String,
        /// How the call failed.
        #[source]
        source: Box<CallError>,
    },
    /// The metadata the module exports breaks a rule.
    #[error("{source_name} declares invalid metadata: {reason}")]
    InvalidMetadata {
        /// Where the bytes came from.
        source_name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The module file could not be read.
    #[error("cannot read module {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl LoadError {
    /// A CamelCase reason for a status condition: `CompileLimit` for a
    /// limit of the compile cage, `CompileUnavailable` when the cage could
    /// not compile now, `HostStarved` when the `metadata` call missed its
    /// deadline for want of CPU (the host's load, not the module: a later
    /// try may pass), `LoadFailed` for everything else.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::CompileLimit { .. } => "CompileLimit",
            LoadError::CompileUnavailable { .. } => "CompileUnavailable",
            LoadError::Metadata { source, .. } if matches!(**source, CallError::Starved { .. }) => {
                "HostStarved"
            }
            _ => "LoadFailed",
        }
    }

    pub(super) fn unserved(source_name: &str, unserved: Unserved) -> Self {
        let source_name = source_name.to_owned();
        match unserved {
            Unserved::Version(asked) => LoadError::UnservedContract { source_name, asked },
            Unserved::Mixed { asked, more } => LoadError::MixedContracts {
                source_name,
                asked,
                more,
            },
        }
    }
}

/// Why one call into a guest failed. The call's output is discarded and
/// nothing is written; the module keeps serving further calls.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest computed past its deadline (epoch interruption).
    #[error(
        "module {module} computed past its {limit:?} deadline and was stopped; it may loop forever — if it needs longer, raise the module's timeout"
    )]
    Timeout {
        /// The module's name.
        module: String,
        /// The deadline it had.
        limit: Duration,
    },
    /// The call ran out of time without having had it: the thread running
    /// it got less than half its deadline of CPU (the host was busy with
    /// other work, or the machine is oversubscribed). Not the guest's
    /// fault: it never counts toward quarantine.
    #[error(
        "module {module}'s call reached its {limit:?} deadline having had only {cpu:?} of CPU: the host was starved, not the guest slow; it is retried, and counts nothing against the module — if it recurs, give the host more CPU or fewer modules"
    )]
    Starved {
        /// The module's name.
        module: String,
        /// The deadline it had.
        limit: Duration,
        /// The CPU time the call's thread had.
        cpu: Duration,
    },
    /// The guest waited in a host call (a sleep, a poll) past its deadline.
    #[error(
        "module {module} was still waiting in a host call (a sleep or a poll) at its {limit:?} deadline and was stopped; a reconciler must not block — ask for a requeue instead"
    )]
    Blocked {
        /// The module's name.
        module: String,
        /// The deadline it had.
        limit: Duration,
    },
    /// A host function the guest called (a list over many objects, say)
    /// ran into the call's deadline: the time went into the host's work
    /// for the guest, not the guest's own code.
    #[error(
        "module {module}'s call to {call} ran into its {limit:?} deadline in the host, after looking at {examined} objects, and the call was stopped; read less per call: narrow the list with a namespace or a label selector"
    )]
    HostCallOverran {
        /// The module's name.
        module: String,
        /// The host function.
        call: &'static str,
        /// How many objects it had looked at.
        examined: usize,
        /// The deadline it had.
        limit: Duration,
    },
    /// The guest tried to grow its memory past its cap.
    #[error(
        "module {module} tried to use more than its {limit_mib} MiB memory cap (handling a request of {} KiB) and was stopped; if it needs more, raise the module's memory limit",
        request_bytes.div_ceil(1024)
    )]
    MemoryLimit {
        /// The module's name.
        module: String,
        /// The cap, in MiB.
        limit_mib: usize,
        /// The size of the request it was handling.
        request_bytes: usize,
    },
    /// The request (object, children, settings) is too large for the
    /// guest's memory cap; the guest was not called.
    #[error(
        "the request for module {module} is {} KiB, too large for its {limit_mib} MiB memory cap; the object (or its children) must shrink, or the module's memory limit grow",
        size.div_ceil(1024)
    )]
    RequestTooLarge {
        /// The module's name.
        module: String,
        /// The request's size in bytes.
        size: usize,
        /// The cap, in MiB.
        limit_mib: usize,
    },
    /// The guest returned more items of one sort than allowed.
    #[error(
        "module {module} returned {count} {what}, more than the {limit} allowed in one call; raise the limit in the module's grant if that many are meant"
    )]
    TooMany {
        /// The module's name.
        module: String,
        /// What it returned too many of (`children`, `events`).
        what: &'static str,
        /// How many it returned.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The guest panicked.
    #[error("module {module} panicked: {message}")]
    Panic {
        /// The module's name.
        module: String,
        /// The panic message the guest printed.
        message: String,
    },
    /// The guest trapped for another reason.
    #[error("module {module} trapped: {reason:#}")]
    Trap {
        /// The module's name.
        module: String,
        /// The trap, with the guest's backtrace when available.
        reason: wasmtime::Error,
    },
    /// The guest returned more bytes than allowed.
    #[error(
        "module {module} returned {size} bytes, more than the {limit} byte limit; return fewer or smaller objects"
    )]
    OutputTooLarge {
        /// The module's name.
        module: String,
        /// How much it returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The module's code was let go while it was idle and could not be
    /// mapped again.
    #[error(
        "module {module} was unloaded while idle and could not be loaded again: {reason}; re-apply its ReconcilerModule (or restart the host) to load it afresh"
    )]
    Reload {
        /// The module's name.
        module: String,
        /// Why.
        reason: String,
    },
    /// A fresh instance could not be created.
    #[error("module {module} could not be instantiated: {reason:#}")]
    Instantiate {
        /// The module's name.
        module: String,
        /// Why: usually the instance pool is exhausted.
        reason: wasmtime::Error,
    },
}

/// Whose doing a failed call was: what decides whether it counts toward a
/// module's quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The guest's own: it looped, blocked, panicked, allocated without
    /// bound or returned too much. Counts toward quarantine.
    Guest,
    /// The data's: the object (or its children) is too large for the
    /// module's memory cap. Fails that object only.
    Input,
    /// The host's: no instance could be made, or the call's deadline
    /// passed while the host (not the guest) had the CPU. Retried, never
    /// held against the module.
    Host,
}

impl CallError {
    /// A short CamelCase name for the kind of failure, used as a metric label
    /// and an event reason.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } => "Timeout",
            CallError::Blocked { .. } => "Blocked",
            CallError::HostCallOverran { .. } => "HostCallDeadline",
            CallError::Starved { .. } => "Starved",
            CallError::MemoryLimit { .. } => "MemoryLimit",
            CallError::RequestTooLarge { .. } => "RequestTooLarge",
            CallError::TooMany { .. } => "OutputTooLarge",
            CallError::Panic { .. } => "Panic",
            CallError::Trap { .. } => "Trap",
            CallError::OutputTooLarge { .. } => "OutputTooLarge",
            CallError::Instantiate { .. } => "Instantiate",
            CallError::Reload { .. } => "Reload",
        }
    }

    /// Whose doing the failure was.
    ///
    /// Running out of memory on a request that takes a large share of the
    /// cap (a 32nd: parsing JSON into a tree takes several times its size)
    /// is put down to the data: one tenant's large objects must not
    /// quarantine a module every tenant shares.
    pub fn fault(&self) -> Fault {
        match self {
            CallError::RequestTooLarge { .. } => Fault::Input,
            CallError::MemoryLimit {
                limit_mib,
                request_bytes,
                ..
            } if request_bytes.saturating_mul(32) >= limit_mib << 20 => Fault::Input,
            CallError::Instantiate { .. }
            | CallError::Reload { .. }
            | CallError::Starved { .. } => Fault::Host,
            _ => Fault::Guest,
        }
    }
}

/// What a host function returns to end a call that ran into its deadline
/// inside the host; [`CallError::HostCallOverran`] once classified.
#[derive(Debug, thiserror::Error)]
#[error("{call} ran into the call's deadline in the host after looking at {examined} objects")]
pub(crate) struct HostCallOverran {
    pub(crate) call: &'static str,
    pub(crate) examined: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_call_starved_of_cpu_is_host_starved_not_a_failed_load() {
        let metadata = |source| LoadError::Metadata {
            source_name: "m.wasm".to_owned(),
            source: Box::new(source),
        };
        let starved = metadata(CallError::Starved {
            module: "m".to_owned(),
            limit: Duration::from_secs(2),
            cpu: Duration::from_millis(700),
        });
        assert_eq!(starved.reason(), "HostStarved");
        let spun = metadata(CallError::Timeout {
            module: "m".to_owned(),
            limit: Duration::from_secs(2),
        });
        assert_eq!(spun.reason(), "LoadFailed");
    }
}
