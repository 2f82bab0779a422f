//! The one error type, and the outcomes that are not errors. Each error variant is a promise
//! about the node and maps to an exit code; the whole exit-code contract (README "Exit codes")
//! is the one match in [`exit_code`].
use std::path::{Path, PathBuf};

use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage, or a decision that non-interactive mode cannot make. Nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// A preflight check refused the operation. Nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A manifest the tool cannot safely work on (refused, like `Refused`): the file, the line
    /// and the remedy.
    #[error("{}: {source}\n  what to do: {}", path.display(), source.hint())]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    /// The journal is not a journal this tool can read: every change is refused until a person
    /// has looked (refused, like `Refused`).
    #[error("{} is unreadable ({source}); move it aside after checking the node by hand", path.display())]
    JournalUnreadable {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The audit log cannot take the line a change starts with, so the change does not start
    /// (refused, like `Refused`).
    #[error(
        "the audit log {} cannot be written ({source}); every change is audited, so nothing was changed. \
         Free space or fix it, then run this again",
        path.display()
    )]
    AuditUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the plan read changed before it was written (exit 1, like `Failed`).
    #[error("{} changed while this command was running; nothing was written. Run it again", path.display())]
    ChangedUnderfoot { path: PathBuf },
    /// The backup could not be made (exit 1, like `Failed`).
    #[error("could not make the backup, nothing was changed: {0}")]
    Backup(#[source] std::io::Error),
    /// A file could not be read or written before anything was changed (exit 1, like `Failed`).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The operation failed; the node is as it was before.
    #[error("{0}")]
    Failed(String),
    /// The operation failed AND putting things back failed: a person must act.
    #[error("{0}")]
    ManualActionNeeded(String),
    /// Stopped by a signal before the first write (exit 130, like `Interrupted`).
    #[error("interrupted before anything was changed; the node is as before")]
    InterruptedBeforeChange,
    /// Stopped by SIGINT/SIGTERM/SIGHUP; what was started was put back (or finished).
    #[error("{0}")]
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a command that did not fail ended. A negative answer and a declined step are outcomes,
/// not errors: nothing went wrong, and nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// A question answered "no" (a token the apiserver does not accept, a workload that still
    /// depends on token extension): the command's report, already printed, says why.
    Negative(String),
    /// The person at the terminal declined a step of `guide`.
    Declined(Declined),
}

/// `skip` (go on to the next step) or `quit` (stop here); nothing of that step was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined {
    pub quit: bool,
    pub message: String,
}

/// The documented exit code (README "Exit codes") of every way a command can end.
pub fn exit_code(ending: std::result::Result<&ExitStatus, &Error>) -> i32 {
    match ending {
        Ok(ExitStatus::Success) => 0,
        Ok(ExitStatus::Negative(_)) => 1,
        Ok(ExitStatus::Declined(_)) => 2,
        Err(
            Error::Failed(_) | Error::Io { .. } | Error::ChangedUnderfoot { .. } | Error::Backup(_),
        ) => 1,
        Err(Error::Usage(_)) => 2,
        Err(
            Error::Refused(_)
            | Error::Manifest { .. }
            | Error::JournalUnreadable { .. }
            | Error::AuditUnwritable { .. },
        ) => 3,
        Err(Error::ManualActionNeeded(_)) => 4,
        Err(Error::Interrupted(_) | Error::InterruptedBeforeChange) => 130,
    }
}

impl Error {
    /// The exit code this error ends the process with.
    pub fn code(&self) -> i32 {
        exit_code(Err(self))
    }

    /// The `reason` of the JSON error document: the kind of promise, not the variant's data.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Failed(_)
            | Error::Io { .. }
            | Error::ChangedUnderfoot { .. }
            | Error::Backup(_) => "Failed",
            Error::Usage(_) => "Usage",
            Error::Refused(_)
            | Error::Manifest { .. }
            | Error::JournalUnreadable { .. }
            | Error::AuditUnwritable { .. } => "Refused",
            Error::ManualActionNeeded(_) => "ManualActionNeeded",
            Error::Interrupted(_) | Error::InterruptedBeforeChange => "Interrupted",
        }
    }

    /// A manifest the tool cannot safely work on: refused, naming the file, line and remedy.
    pub fn manifest(path: &Path, err: &ManifestError) -> Self {
        Error::Manifest {
            path: path.to_path_buf(),
            source: err.clone(),
        }
    }

    /// An I/O failure before anything was changed.
    pub fn io(what: &'static str, path: &Path, err: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.to_path_buf(),
            source: err,
        }
    }
}

impl ExitStatus {
    /// What stderr says about an outcome that is not a success.
    pub fn message(&self) -> Option<&str> {
        match self {
            ExitStatus::Success => None,
            ExitStatus::Negative(why) => Some(why),
            ExitStatus::Declined(declined) => Some(&declined.message),
        }
    }
}
