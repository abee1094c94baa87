//! The harness's typed errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::assets::AssetsError;

/// Everything that can go wrong starting, using or stopping a [`crate::TestEnv`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `kube-apiserver` or `etcd` could not be located.
    #[error(transparent)]
    Assets(#[from] AssetsError),

    /// A filesystem operation on the environment's files failed.
    #[error("{what} ({}): {source}", path.display())]
    Io {
        /// What the harness was doing.
        what: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The background thread or runtime of [`crate::TestEnv::shared`] failed.
    #[error("{0}: {1}")]
    Runtime(&'static str, #[source] std::io::Error),

    /// No free loopback port could be reserved.
    #[error("could not reserve a free port on 127.0.0.1: {0}")]
    Ports(#[source] std::io::Error),

    /// Generating the certificates or keys failed.
    #[error("generating certificates: {0}")]
    Certs(#[from] rcgen::Error),

    /// A control-plane process could not be started or died during startup.
    #[error("{0}")]
    Process(Box<ProcessFailure>),

    /// `/readyz` did not report ok in time.
    #[error("{0}")]
    NotReady(Box<NotReady>),

    /// The written kubeconfig could not be loaded (or, with
    /// `USE_EXISTING_CLUSTER`, the current one could not be found).
    #[error("loading kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    /// Building or using the Kubernetes client failed.
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),

    /// Starting the process-wide environment of [`crate::TestEnv::shared`] failed.
    #[error("the shared test environment failed to start: {0}")]
    Shared(std::sync::Arc<Error>),

    /// A CRD manifest could not be read or parsed.
    #[error("CRD manifest {source_name}: {message}")]
    CrdManifest {
        /// The file (or `<inline>`) the manifest came from.
        source_name: String,
        /// What was wrong with it.
        message: String,
    },

    /// A program the harness runs is not on `PATH`.
    #[error("{tool} is not on PATH (install: {install})")]
    ToolMissing {
        /// The program.
        tool: &'static str,
        /// How to install it.
        install: &'static str,
    },

    /// The registry did not answer `GET /v2/` with 200 in time.
    #[error(
        "docker-registry did not become ready within {timeout:?} (last answer: {last}); \
         last lines of {}:\n{tail}", log.display()
    )]
    RegistryNotReady {
        /// How long the harness waited.
        timeout: Duration,
        /// The last status line or error seen.
        last: String,
        /// The registry's log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// Jaeger's query API did not answer in time.
    #[error(
        "jaeger did not become ready within {timeout:?} (last answer: {last}); \
         last lines of {}:\n{tail}", log.display()
    )]
    JaegerNotReady {
        /// How long the harness waited.
        timeout: Duration,
        /// The last answer or error seen.
        last: String,
        /// Jaeger's log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// PowerDNS's API did not answer in time.
    #[error(
        "pdns_server did not become ready within {timeout:?} (last answer: {last}); \
         last lines of {}:\n{tail}", log.display()
    )]
    PowerDnsNotReady {
        /// How long the harness waited.
        timeout: Duration,
        /// The last answer or error seen.
        last: String,
        /// The server's log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// The node could not start (or this machine cannot run one: the
    /// message names what to install).
    #[error("{0}")]
    Node(Box<crate::node::NodeError>),

    /// A CRD was not Established (and discoverable) in time.
    #[error("CRD {name} was not established within {timeout:?}")]
    CrdNotEstablished {
        /// The CRD's name (`<plural>.<group>`).
        name: String,
        /// How long the harness waited.
        timeout: Duration,
    },
}

/// A control-plane process that failed to start or exited during startup.
#[derive(Debug)]
pub struct ProcessFailure {
    /// `kube-apiserver` or `etcd`.
    pub binary: &'static str,
    /// The binary's path.
    pub path: PathBuf,
    /// What happened (spawn error or exit status).
    pub reason: String,
    /// The file capturing its stdout and stderr.
    pub log: PathBuf,
    /// The last lines of that file.
    pub tail: String,
}

impl std::fmt::Display for ProcessFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) {}; last lines of {}:\n{}",
            self.binary,
            self.path.display(),
            self.reason,
            self.log.display(),
            self.tail
        )
    }
}

/// The apiserver did not become ready in time; carries both processes' log tails.
#[derive(Debug)]
pub struct NotReady {
    /// How long the harness waited.
    pub timeout: Duration,
    /// The last error or body seen from `/readyz`.
    pub last: String,
    /// The kube-apiserver log file.
    pub apiserver_log: PathBuf,
    /// Its last lines.
    pub apiserver_tail: String,
    /// The etcd log file.
    pub etcd_log: PathBuf,
    /// Its last lines.
    pub etcd_tail: String,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kube-apiserver did not become ready within {:?} (last /readyz answer: {}); \
             last lines of {}:\n{}\nlast lines of {}:\n{}",
            self.timeout,
            self.last,
            self.apiserver_log.display(),
            self.apiserver_tail,
            self.etcd_log.display(),
            self.etcd_tail
        )
    }
}

impl From<ProcessFailure> for Error {
    fn from(failure: ProcessFailure) -> Self {
        Error::Process(Box::new(failure))
    }
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}
