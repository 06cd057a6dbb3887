//! [`LaunchError`]: why a real execution client could not be started.

use std::{io, time::Duration};

/// Why a real execution client could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The client (or what it needs to run, such as `node`) is not installed.
    #[error("{client} is not available: {hint}")]
    NotInstalled {
        /// Which client.
        client: &'static str,
        /// How to install it or which environment variable to set.
        hint: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path or command.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The client kept running but did not answer its RPC ports in time.
    #[error(
        "{client} did not answer engine_exchangeCapabilities and eth_chainId within {waited:?} \
         (a heavily loaded machine may need longer); last log lines:\n{log_tail}"
    )]
    NotReady {
        /// Which client.
        client: &'static str,
        /// How long it was given.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// The client exited before it was ready.
    #[error("{client} exited during startup ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Which client.
        client: &'static str,
        /// Exit code or signal.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
}

impl LaunchError {
    pub(super) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
