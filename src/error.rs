//! The one error type. Each variant is a promise about the node, and maps to an exit code.
use std::path::Path;

use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage, or a decision that non-interactive mode cannot make. Nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// A preflight check refused the operation. Nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The operation failed; the node is as it was before.
    #[error("{0}")]
    Failed(String),
    /// The operation failed AND putting things back failed: a person must act.
    #[error("{0}")]
    ManualActionNeeded(String),
    /// Stopped by SIGINT/SIGTERM/SIGHUP; what was started was put back (or finished).
    #[error("{0}")]
    Interrupted(String),
    /// A question answered "no" (a token the apiserver does not accept, a workload that still
    /// depends on token extension): the command's report, already printed, says why. Nothing
    /// was changed.
    #[error("{0}")]
    Negative(String),
    /// The person at the terminal declined a step of `guide`: `skip` (go on to the next step)
    /// or `quit` (stop here). Nothing of that step was changed.
    #[error("{message}")]
    Declined { quit: bool, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The documented exit code (README "Exit codes").
    pub fn code(&self) -> i32 {
        match self {
            Error::Failed(_) | Error::Negative(_) => 1,
            Error::Usage(_) | Error::Declined { .. } => 2,
            Error::Refused(_) => 3,
            Error::ManualActionNeeded(_) => 4,
            Error::Interrupted(_) => 130,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Error::Failed(_) => "Failed",
            Error::Usage(_) => "Usage",
            Error::Refused(_) => "Refused",
            Error::ManualActionNeeded(_) => "ManualActionNeeded",
            Error::Interrupted(_) => "Interrupted",
            Error::Negative(_) => "Negative",
            Error::Declined { .. } => "Declined",
        }
    }

    /// A manifest the tool cannot safely work on: refused, naming the file, line and remedy.
    pub fn manifest(path: &Path, err: &ManifestError) -> Self {
        Error::Refused(format!(
            "{}: {err}\n  what to do: {}",
            path.display(),
            err.hint()
        ))
    }

    /// An I/O failure before anything was changed.
    pub fn io(what: impl std::fmt::Display, path: &Path, err: std::io::Error) -> Self {
        Error::Failed(format!("{what} {}: {err}", path.display()))
    }
}
