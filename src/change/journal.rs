//! The recovery journal, `/var/lib/kubeadm-recover/journal.json`: one session per change of the
//! manifest, rewritten atomically after each step, so that a run killed at any instant can be
//! finished (`resume`) or undone (`revert`) by the next one.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::FlagState;
use crate::node::NodeLayout;
use crate::node::fs::Ownership;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    InProgress,
    Done,
    RolledBack,
    Reverted,
    /// Failed and could not be put back: a person must act.
    Failed,
    /// An unfinished session a person took over (`journal abandon`): the tool no longer acts
    /// on it; the manifest is whatever the person left.
    Abandoned,
}

impl State {
    /// As the journal writes it.
    pub fn name(self) -> &'static str {
        match self {
            State::InProgress => "in-progress",
            State::Done => "done",
            State::RolledBack => "rolled-back",
            State::Reverted => "reverted",
            State::Failed => "failed",
            State::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestVersion {
    pub sha256: String,
    /// The flag as that version writes it (absent / explicit / invalid).
    pub flag: Option<FlagState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub step: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub command: String,
    pub reason: Option<String>,
    pub uid: u32,
    pub sudo_user: Option<String>,
    pub started: String,
    pub started_unix: i64,
    pub updated: String,
    pub state: State,
    pub step: String,
    /// What the session changes: the manifest, or other files.
    #[serde(flatten)]
    pub kind: SessionKind,
    /// The backup holding the original bytes (id and node path).
    pub backup_id: Option<String>,
    pub backup: Option<String>,
    /// The session this one reverts, for `revert` sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverts: Option<String>,
    #[serde(default)]
    pub credentials_issued: Vec<String>,
    /// `serviceaccount_stale_tokens_total` when a change of the manifest started (kept at the
    /// top level, where journals have always had it; `null` for changes of other files).
    pub stale_tokens_at_start: Option<u64>,
    pub history: Vec<StepRecord>,
    /// `--revert-after`: when this change is to be reverted, and by what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_after: Option<RevertSchedule>,
}

/// A revert that is not forgotten: the deadline, and the systemd timer that runs it (none on a
/// node without systemd, where `status` keeps showing the deadline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevertSchedule {
    pub deadline: String,
    pub deadline_unix: i64,
    /// The transient timer unit (`systemctl list-timers` shows it).
    pub timer: Option<String>,
    /// Why there is no timer, or that it was cancelled.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileVersion {
    /// The node path.
    pub path: String,
    /// `None`: the file did not exist.
    pub sha256_before: Option<String>,
    /// `None`: written by another program (kubeadm), so not known in advance.
    pub sha256_after: Option<String>,
}

/// What a session changes. Serialized flat into the session, as journals have always been
/// written: a change of files has `files`; a change of the manifest has its two versions.
/// Journals of earlier releases wrote empty manifest fields beside `files`: `files` decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SessionKind {
    /// A change of files other than the manifest (`admin-conf regenerate`): each file with its
    /// hashes before and after.
    Files { files: Vec<FileVersion> },
    #[serde(rename_all = "camelCase")]
    Manifest {
        original: ManifestVersion,
        intended: ManifestVersion,
        /// The text the change writes, so that `resume` can finish a write that never happened.
        intended_text: String,
    },
}

impl Session {
    /// A change of the apiserver manifest (the sessions `revert` undoes without `--session`).
    pub fn is_manifest(&self) -> bool {
        matches!(self.kind, SessionKind::Manifest { .. })
    }

    /// A change that turned token extension on (`extend-tokens enable`).
    pub fn enables_token_extension(&self) -> bool {
        self.command == EXTEND_TOKENS_ENABLE
    }

    /// The manifest's two versions and the text written, for a change of the manifest.
    pub fn manifest(&self) -> Option<(&ManifestVersion, &ManifestVersion, &str)> {
        match &self.kind {
            SessionKind::Manifest {
                original,
                intended,
                intended_text,
            } => Some((original, intended, intended_text)),
            SessionKind::Files { .. } => None,
        }
    }

    /// The files a change of files wrote (none for a change of the manifest).
    pub fn files(&self) -> &[FileVersion] {
        match &self.kind {
            SessionKind::Files { files } => files,
            SessionKind::Manifest { .. } => &[],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    #[serde(default)]
    pub sessions: Vec<Session>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    sessions: &'a [Session],
}

pub fn path(layout: &NodeLayout) -> std::path::PathBuf {
    layout.state_dir().join("journal.json")
}

/// The records a command about past changes (`revert`, `resume`, `journal`, `backups`) works
/// on. In a `--root` sandbox, the node's. As a person without root, their own: the changes of
/// their kubeconfigs. As root, the node's, unless the session asked for is in root's own state
/// directory, or this machine has no node journal and root's own has one (a workstation).
pub fn records_home(layout: &NodeLayout, session: Option<&str>) -> Result<NodeLayout> {
    if layout.is_sandbox() {
        return Ok(layout.clone());
    }
    if !nix::unistd::geteuid().is_root() {
        return layout.with_user_state();
    }
    let Ok(own) = layout.with_user_state() else {
        return Ok(layout.clone());
    };
    let has = |l: &NodeLayout| Journal::load(l).ok().filter(|j| !j.sessions.is_empty());
    let unfinished = |l: &NodeLayout| has(l).is_some_and(|j| j.unfinished().is_some());
    let in_own = match session {
        Some(id) => {
            has(layout).is_none_or(|j| j.find(id).is_none())
                && has(&own).is_some_and(|j| j.find(id).is_some())
        }
        // Root's own unfinished change (someone's kubeconfig, killed) is the one to finish
        // while the node has none: never the node's last change in its place.
        None => {
            (!layout.fs().exists(&path(layout)) && has(&own).is_some())
                || (unfinished(&own) && !unfinished(layout))
        }
    };
    Ok(if in_own { own } else { layout.clone() })
}

impl Journal {
    pub fn load(layout: &NodeLayout) -> Result<Journal> {
        let path = path(layout);
        match layout.fs().read_state(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| Error::JournalUnreadable { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Journal::default()),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    /// Rewrites the journal atomically (temp file in the state dir, fsync, rename).
    pub fn save(&self, layout: &NodeLayout) -> Result<()> {
        crate::failpoint!("before-journal-write");
        let dir = layout.state_dir();
        layout
            .fs()
            .private_dir(&dir)
            .map_err(|e| Error::io("cannot create", &dir, e))?;
        let document = Document {
            api_version: crate::ui::API_VERSION,
            kind: "Journal",
            sessions: &self.sessions,
        };
        let bytes = serde_json::to_vec_pretty(&document).expect("serializable");
        let me = Ownership {
            mode: 0o600,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        layout
            .fs()
            .replace_state(&path(layout), &bytes, me)
            .map_err(|e| Error::io("cannot write the journal", &path(layout), e))?;
        crate::failpoint!("after-journal-write");
        Ok(())
    }

    /// A change that stopped half-way, or failed and could not be put back.
    pub fn unfinished(&self) -> Option<&Session> {
        self.sessions
            .iter()
            .rev()
            .find(|s| matches!(s.state, State::InProgress | State::Failed))
    }

    /// The change in effect: the LATEST change, when it completed and is not itself a revert.
    /// An older change is never picked behind the operator's back (after reverting the latest
    /// one, a second `revert` must not quietly undo, say, an earlier CIS hardening); naming it
    /// with `--session` is how to revert it.
    pub fn revertable(&self) -> Option<&Session> {
        self.latest_change()
            .filter(|s| s.state == State::Done && s.reverts.is_none())
    }

    /// The latest change of the manifest that changed something (sessions rolled back changed
    /// nothing; credential sessions are never reverted by default: the old ones had expired).
    pub fn latest_change(&self) -> Option<&Session> {
        self.sessions
            .iter()
            .rev()
            .filter(|s| s.is_manifest())
            .find(|s| !matches!(s.state, State::RolledBack | State::Abandoned))
    }

    pub fn find(&self, id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }
}

/// The command that turns token extension on, as sessions name it.
pub const EXTEND_TOKENS_ENABLE: &str = "extend-tokens enable";

/// Records a session's progress: every call rewrites the journal before the step it names.
pub struct Recorder<'a> {
    layout: &'a NodeLayout,
    pub id: String,
}

impl<'a> Recorder<'a> {
    pub fn begin(layout: &'a NodeLayout, mut session: Session) -> Result<Recorder<'a>> {
        let mut journal = Journal::load(layout)?;
        let now = crate::runtime::clock::now_unix();
        session.started = crate::runtime::clock::rfc3339(now);
        session.started_unix = now;
        session.updated = session.started.clone();
        session.history = vec![StepRecord {
            step: session.step.clone(),
            at: session.started.clone(),
        }];
        let id = session.id.clone();
        journal.sessions.push(session);
        journal.save(layout)?;
        Ok(Recorder { layout, id })
    }

    /// Resumes recording an existing session.
    pub fn attach(layout: &'a NodeLayout, id: &str) -> Recorder<'a> {
        Recorder {
            layout,
            id: id.to_string(),
        }
    }

    pub fn update(&self, change: impl FnOnce(&mut Session)) -> Result<()> {
        let mut journal = Journal::load(self.layout)?;
        let session = journal.find_mut(&self.id).ok_or_else(|| {
            Error::Failed(format!("session {} vanished from the journal", self.id))
        })?;
        change(session);
        session.updated = crate::runtime::clock::rfc3339(crate::runtime::clock::now_unix());
        journal.save(self.layout)
    }

    /// Removes the session: for a change that wrote nothing, when even closing it failed.
    pub fn discard(&self) -> Result<()> {
        let mut journal = Journal::load(self.layout)?;
        if journal.find(&self.id).is_none() {
            return Ok(());
        }
        journal.sessions.retain(|s| s.id != self.id);
        journal.save(self.layout)
    }

    pub fn load(&self) -> Result<Journal> {
        Journal::load(self.layout)
    }

    pub fn dir(&self) -> std::path::PathBuf {
        self.layout.state_dir()
    }

    pub fn step(&self, step: &str) -> Result<()> {
        self.update(|s| {
            s.step = step.to_string();
            s.history.push(StepRecord {
                step: step.to_string(),
                at: crate::runtime::clock::rfc3339(crate::runtime::clock::now_unix()),
            });
        })
    }

    pub fn finish(&self, state: State, step: &str) -> Result<()> {
        self.update(|s| {
            s.state = state;
            s.step = step.to_string();
            s.history.push(StepRecord {
                step: step.to_string(),
                at: crate::runtime::clock::rfc3339(crate::runtime::clock::now_unix()),
            });
        })
    }
}

/// Builds a new in-progress session for a manifest change.
pub fn new_session(
    command: &str,
    reason: Option<&str>,
    original: &[u8],
    intended: &str,
) -> Session {
    let flag_of = |text: &str| {
        crate::manifest::Manifest::parse(text)
            .ok()
            .map(|m| m.extend_tokens().state)
    };
    let stamp = crate::runtime::clock::compact_ms(crate::runtime::clock::now_unix_ms());
    Session {
        id: format!("{stamp}-{}", command.replace(' ', "-")),
        command: command.to_string(),
        reason: reason.map(str::to_string),
        uid: nix::unistd::getuid().as_raw(),
        sudo_user: std::env::var("SUDO_USER").ok(),
        started: String::new(),
        started_unix: 0,
        updated: String::new(),
        state: State::InProgress,
        step: "started".into(),
        kind: SessionKind::Manifest {
            original: ManifestVersion {
                sha256: crate::node::store::sha256_hex(original),
                flag: flag_of(&String::from_utf8_lossy(original)),
            },
            intended: ManifestVersion {
                sha256: crate::node::store::sha256_hex(intended.as_bytes()),
                flag: flag_of(intended),
            },
            intended_text: intended.to_string(),
        },
        backup_id: None,
        backup: None,
        reverts: None,
        credentials_issued: Vec::new(),
        stale_tokens_at_start: None,
        history: Vec::new(),
        revert_after: None,
    }
}

/// Builds a new in-progress session for a change of other files than the manifest.
pub fn new_files_session(command: &str, reason: Option<&str>, files: Vec<FileVersion>) -> Session {
    Session {
        kind: SessionKind::Files { files },
        ..new_session(command, reason, b"", "")
    }
}

/// Refuses (exit 3) to start a change while an earlier one is unfinished, and says what to do.
pub fn refuse_if_unfinished(layout: &NodeLayout) -> Result<()> {
    let journal = Journal::load(layout)?;
    let Some(session) = journal.unfinished() else {
        return Ok(());
    };
    // A running process holds the lock: that is "busy", not "unfinished".
    drop(crate::node::store::lock::acquire(layout)?);
    Err(Error::Refused(unfinished_message(layout, session)))
}

pub fn unfinished_message(layout: &NodeLayout, session: &Session) -> String {
    let sha = |node_path: &str| {
        layout
            .fs()
            .read(&layout.path(node_path))
            .ok()
            .map(|b| crate::node::store::sha256_hex(&b))
    };
    let where_ = if let Some((original, intended, _)) = session.manifest() {
        let now = sha(&layout.node_path(&layout.apiserver_manifest()));
        if now.as_deref() == Some(intended.sha256.as_str()) {
            "the manifest holds the new version".to_string()
        } else if now.as_deref() == Some(original.sha256.as_str()) {
            "the manifest is still the original".to_string()
        } else {
            "the manifest is neither the original nor the intended version (changed by someone else)"
                .to_string()
        }
    } else {
        let states: Vec<String> = session
            .files()
            .iter()
            .map(|f| {
                let now = sha(&f.path);
                let state = if now == f.sha256_before {
                    "as before"
                } else if now.is_some() && now == f.sha256_after {
                    "new"
                } else {
                    "changed"
                };
                format!("{} {state}", f.path)
            })
            .collect();
        states.join(", ")
    };
    let what_to_do = if session.is_manifest() {
        format!(
            "`{}` finishes it and proves the restart, or `{}` goes back to the original and proves that",
            crate::ui::command_line(["kubeadm-recover", "resume", "--session", &session.id]),
            crate::ui::command_line(["kubeadm-recover", "revert", "--session", &session.id])
        )
    } else {
        format!(
            "`{}` puts the previous files back (then run the command again)",
            crate::ui::command_line(["kubeadm-recover", "revert", "--session", &session.id])
        )
    };
    format!(
        "an earlier change did not finish: session {} ({}), stopped at step {:?}; {where_}.\n  \
         what to do: {what_to_do}; if that cannot help, \
         `{}` hands it over to you",
        session.id,
        session.command,
        session.step,
        abandon_command(&session.id)
    )
}

/// The command that hands an unfinished session over to a person, as they would type it.
pub fn abandon_command(session: &str) -> String {
    crate::ui::command_line([
        "kubeadm-recover",
        "journal",
        "abandon",
        "--session",
        session,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal as release 0.1.0 wrote it: a change of the manifest, and a change of files
    /// whose (empty) manifest fields sit beside its `files`.
    const RELEASE_0_1_0: &str = include_str!("../../tests/fixtures/journal-0.1.0.json");

    #[test]
    fn a_journal_written_by_the_previous_release_loads_with_each_session_of_its_kind() {
        let journal: Journal = serde_json::from_str(RELEASE_0_1_0).unwrap();
        let [manifest, files] = journal.sessions.as_slice() else {
            panic!("two sessions: {journal:?}");
        };
        let (original, intended, text) = manifest.manifest().expect("a change of the manifest");
        assert_eq!(original.sha256, "1".repeat(64));
        assert!(matches!(
            intended.flag,
            Some(FlagState::Explicit { value: true })
        ));
        assert_eq!(text, "apiVersion: v1\nkind: Pod\n");
        assert_eq!(manifest.stale_tokens_at_start, Some(3));
        assert_eq!(manifest.credentials_issued, vec!["0a1b".to_string()]);
        assert!(manifest.revert_after.as_ref().unwrap().timer.is_some());

        assert!(!files.is_manifest(), "`files` decides: {files:?}");
        assert_eq!(files.files().len(), 2);
        assert_eq!(files.files()[1].sha256_after, None);
        assert_eq!(
            journal.unfinished().map(|s| s.id.as_str()),
            Some(files.id.as_str())
        );
        assert_eq!(
            journal.latest_change().map(|s| s.id.as_str()),
            Some(manifest.id.as_str())
        );
    }

    #[test]
    fn a_state_is_named_as_the_journal_writes_it() {
        for state in [
            State::InProgress,
            State::Done,
            State::RolledBack,
            State::Reverted,
            State::Failed,
            State::Abandoned,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.name());
        }
    }

    #[test]
    fn a_session_written_now_reads_back_as_the_same_kind() {
        let journal: Journal = serde_json::from_str(RELEASE_0_1_0).unwrap();
        let again: Journal =
            serde_json::from_slice(&serde_json::to_vec(&journal).unwrap()).unwrap();
        let kinds = |j: &Journal| {
            j.sessions
                .iter()
                .map(Session::is_manifest)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&again), vec![true, false]);
        let written = serde_json::to_value(&again.sessions[1]).unwrap();
        assert!(
            written.get("intendedText").is_none() && written.get("original").is_none(),
            "a change of files no longer writes empty manifest fields: {written}"
        );
    }
}
