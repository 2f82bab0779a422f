//! A plan: what a mutating command will do, built by the command from what the node shows, run
//! by the one executor (`change::executor`). Pure data: building a plan reads the node, but a plan
//! never writes; `--dry-run` prints it, guided mode asks about it, scripted mode runs it.
use std::path::PathBuf;
use std::time::Duration;

use crate::change::journal::State;
use crate::change::restart::WaitOptions;
use crate::credentials::issue::{CertFacts, Subject};
use crate::node::fs::Ownership;

/// One file to replace: what we read (to detect a change under our feet) and what we write.
#[derive(Debug, Clone)]
pub struct PlannedWrite {
    pub path: PathBuf,
    /// `None`: the file must not exist (restoring a file someone removed).
    pub old: Option<Vec<u8>>,
    pub new: Vec<u8>,
    pub ownership: Option<Ownership>,
}

/// What to do on SIGINT/SIGTERM/SIGHUP while a change is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Put the original back, prove the old apiserver healthy, exit 130.
    Rollback,
    /// Finish the change and prove it (an SSH session dropping must not leave it half-done).
    Continue,
}

/// How a command that changes the node was asked to run.
#[derive(Debug, Clone)]
pub struct ChangeSettings {
    pub dry_run: bool,
    pub reason: Option<String>,
    /// None: write and return without proving the restart (`--no-wait`).
    pub wait: Option<WaitOptions>,
    pub move_strays: bool,
    pub on_interrupt: OnInterrupt,
    pub accept_stale_tokens: bool,
    pub stale_window: Duration,
}

impl ChangeSettings {
    /// For commands that never restart the apiserver (admin-conf).
    pub fn files_only(dry_run: bool, reason: Option<String>) -> Self {
        ChangeSettings {
            dry_run,
            reason,
            wait: None,
            move_strays: false,
            on_interrupt: OnInterrupt::Rollback,
            accept_stale_tokens: false,
            stale_window: Duration::ZERO,
        }
    }
}

/// Checks made in a real run, after the plan is shown and before the question; each can refuse.
#[derive(Debug, Clone)]
pub enum Gate {
    /// A kubelet must be running to restart the apiserver (skipped with `--no-wait`).
    Kubelet,
    /// No stray copies in the manifest directory (or `--move-strays` moves them into the backup).
    Strays,
    /// Turning extension off: nobody may still depend on stale tokens. `session` is the change
    /// being undone (its start, and the stale-token counter then).
    StaleTokens {
        manifest: String,
        session: Option<(i64, Option<u64>)>,
    },
}

/// A journal entry to close on an earlier session (the session this run recorded, if any, is
/// named after the step).
#[derive(Debug, Clone)]
pub struct Mark {
    pub session: String,
    pub state: State,
    pub step: String,
}

/// How the result is proved after the files are written.
#[derive(Debug, Clone)]
pub enum Verify {
    /// Nothing beyond the bytes on disk.
    Nothing,
    /// Each new credential answers SelfSubjectReview with its own identity.
    Credentials(Vec<CredentialCheck>),
    /// Each component uses its renewed certificates (`certs renew`), proved in order.
    Components(Vec<crate::certs::prove::ComponentCheck>),
}

#[derive(Debug, Clone)]
pub struct CredentialCheck {
    pub file: &'static str,
    pub path: PathBuf,
    pub subject: Subject,
}

/// Where to go when a change cannot be proved: the original bytes, and the session to close.
#[derive(Debug, Clone)]
pub struct GoingBack {
    pub writes: Vec<PlannedWrite>,
    pub mark: Mark,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// The node already is as asked: nothing to do.
    Nothing,
    /// Write files atomically (backed up first). When the apiserver manifest is among them, the
    /// restart is proved (or rolled back), all journaled as a session.
    Write {
        writes: Vec<PlannedWrite>,
        verify: Verify,
    },
    /// Nothing to write: prove that the apiserver running `manifest` is healthy. If that cannot
    /// be proved and `otherwise` is given, go back and prove that instead (and fail).
    Prove {
        manifest: String,
        otherwise: Option<GoingBack>,
    },
    /// Change no file: only close a session in the journal (`plan.on_success`), audited.
    CloseSession,
    /// Run programs that rewrite `files` themselves (`kubeadm certs renew`): backed up first,
    /// put back if a program fails or the result does not verify.
    External {
        programs: Vec<Vec<String>>,
        files: Vec<PlannedWrite>,
        verify: Verify,
    },
}

/// What a change of the apiserver manifest records in its session; other changes ignore it.
#[derive(Debug, Clone, Default)]
pub struct ManifestSession {
    /// The session this plan reverts (recorded in its own session).
    pub reverts: Option<String>,
    pub stale_tokens: StaleTokens,
    /// `--revert-after`: the deadline (Unix seconds) by which this change is to be reverted.
    pub revert_after: Option<i64>,
}

/// `serviceaccount_stale_tokens_total` at the start of a change, so that the later revert can
/// tell new stale-token use from old.
#[derive(Debug, Clone, Copy)]
pub enum StaleTokens {
    /// Measured just before the write (turning extension on).
    Measure,
    /// Carried over from the session this one continues (a resumed change keeps its original
    /// measurement), or not known.
    Carried(Option<u64>),
}

impl Default for StaleTokens {
    fn default() -> Self {
        StaleTokens::Carried(None)
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Names the session, the backup and the audit record: "extend-tokens enable".
    pub command: String,
    /// One line per thing the plan does, for people.
    pub steps: Vec<String>,
    /// Unified diffs of the files it writes.
    pub diff: String,
    /// The confirmation question.
    pub question: String,
    pub action: Action,
    pub gates: Vec<Gate>,
    /// Used when the plan writes the apiserver manifest.
    pub manifest: ManifestSession,
    /// Closed under the lock, before the action (a change resumed as a new session).
    pub supersedes: Option<Mark>,
    /// Closed once the action succeeded (the session a revert undid).
    pub on_success: Option<Mark>,
    /// Certificates the plan issues: audited, and remembered by the session in effect.
    pub certificates: Vec<CertFacts>,
}

impl Plan {
    pub fn new(command: impl Into<String>, question: impl Into<String>, action: Action) -> Self {
        Plan {
            command: command.into(),
            steps: Vec::new(),
            diff: String::new(),
            question: question.into(),
            action,
            gates: Vec::new(),
            manifest: ManifestSession::default(),
            supersedes: None,
            on_success: None,
            certificates: Vec::new(),
        }
    }

    pub fn step(mut self, line: impl Into<String>) -> Self {
        self.steps.push(line.into());
        self
    }

    pub fn gate(mut self, gate: Gate) -> Self {
        self.gates.push(gate);
        self
    }

    /// The steps, a `plan:` line each.
    pub fn steps_text(&self) -> String {
        self.steps.iter().map(|s| format!("plan: {s}\n")).collect()
    }

    /// What a person reads before saying yes: the steps and the diff.
    pub fn describe(&self) -> String {
        self.steps_text() + &self.diff
    }

    pub fn writes(&self) -> &[PlannedWrite] {
        match &self.action {
            Action::Write { writes, .. } => writes,
            Action::External { files, .. } => files,
            Action::Prove { .. } | Action::Nothing | Action::CloseSession => &[],
        }
    }
}
