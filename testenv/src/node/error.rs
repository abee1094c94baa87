//! What can go wrong starting or using a node, each saying what to do.

use std::path::PathBuf;
use std::time::Duration;

/// Why a node could not start, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// This machine lacks something a node needs (a program, root, a
    /// kernel feature). Nothing was started.
    #[error("a node cannot run here: {missing}. {install}")]
    Unavailable {
        /// What is missing, in a few words.
        missing: String,
        /// How to get it.
        install: String,
    },

    /// Setting up the node's cgroup, namespaces, network or files failed.
    #[error("{what}: {source}")]
    Setup {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A program the harness ran for the node (`ip`, `ctr`, `skopeo`) failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed on stderr (and stdout).
        output: String,
    },

    /// A component did not become ready in time.
    #[error(
        "{component} was not ready within {timeout:?} (last: {last}); last lines of {}:\n{tail}",
        log.display()
    )]
    NotReady {
        /// `containerd`, `kubelet`, …
        component: &'static str,
        /// How long the harness waited.
        timeout: Duration,
        /// The last answer or error seen.
        last: String,
        /// The component's log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// Building an image the node needs failed.
    #[error("building the image {name}: {message}")]
    Image {
        /// The image's name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

impl NodeError {
    pub(crate) fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
        let what = what.into();
        move |source| NodeError::Setup { what, source }
    }
}
