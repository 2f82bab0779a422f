//! The one transaction every change of the node runs through, in the shape of kubeadm's
//! `phases/upgrade/staticpods.go`: journal → back up → write → prove → (roll back → prove the
//! node as before). Only the write set and the proofs vary. What is on disk, never what a step
//! thinks it did, decides how a failure is settled; the exit code says which way it went.
use crate::change::journal::{self, Recorder, State};
use crate::change::plan::PlannedWrite;
use crate::change::prove::{NotProved, Prove, Proved, RollbackNotProved, StaticPodRestart};
use crate::change::write::{self, Applied};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::node::store::audit;
use crate::node::store::strays::Stray;
use crate::runtime::interrupt;
use crate::ui::Ui;

/// How the new files come to be.
pub enum Writer<'a> {
    /// The tool writes each file's planned bytes, atomically.
    Atomic,
    /// Programs rewrite the files themselves (`kubeadm certs renew`).
    Programs(&'a [Vec<String>]),
}

pub struct Transaction<'a> {
    pub layout: &'a NodeLayout,
    pub ui: &'a Ui,
    pub command: &'a str,
    pub reason: Option<&'a str>,
    pub writes: &'a [PlannedWrite],
    pub writer: Writer<'a>,
    /// Moved into the backup before the write.
    pub strays: &'a [Stray],
    /// The journal session, recorded before anything is touched.
    pub session: journal::Session,
    /// Run in order after the write; the first that fails rolls the change back.
    pub proofs: Vec<Prove>,
}

/// A change that was written and proved (as far as its proofs go).
pub struct Committed {
    pub session: String,
    pub backup: Applied,
    pub proved: Vec<Proved>,
}

/// How long a program that rewrites credentials (`kubeadm certs renew`) may take.
const PROGRAM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

impl Transaction<'_> {
    /// Runs the change; the caller holds the lock and has audited its start.
    pub fn run(self) -> Result<Committed> {
        let id = self.session.id.clone();
        let recorder = match Recorder::begin(self.layout, self.session.clone()) {
            Ok(r) => r,
            // The session may be on disk although saving it reported an error: nothing was
            // written, so it must not be left looking unfinished.
            Err(e) => return Err(nothing_written(&Recorder::attach(self.layout, &id), e)),
        };
        let prepared = self
            .back_up(&recorder)
            .map_err(|e| nothing_written(&recorder, e))?;
        let applied = self.write(&recorder, prepared)?;
        // From here on the change is live: a journal that cannot be written must not turn it
        // into a failure that is not true. It is proved (or rolled back) regardless, and the
        // operator is told loudly.
        let journal = LiveJournal {
            recorder: &recorder,
            ui: self.ui,
        };
        journal.step("written");
        let mut proved = Vec::new();
        for proof in &self.proofs {
            if proof.restart().is_some_and(|r| r.wait.is_some()) {
                journal.step("waiting");
            }
            match proof.run(self.layout, self.ui) {
                Ok(p) => proved.push(p),
                Err(why) => return Err(self.roll_back(&journal, &applied, why)),
            }
        }
        journal.finish(State::Done, done_step(&proved));
        if proved.iter().any(Proved::proves_something) {
            self.audit("proved", &applied);
        }
        Ok(Committed {
            session: recorder.id.clone(),
            backup: applied,
            proved,
        })
    }

    /// Checks nothing changed under our feet, backs the files (and strays) up, and puts on
    /// record where the originals are before the first file is replaced.
    fn back_up(&self, recorder: &Recorder) -> Result<Applied> {
        injected_after_lock()?;
        if interrupt::interrupted() {
            return Err(Error::InterruptedBeforeChange);
        }
        for new_file in self.writes.iter().filter(|w| w.old.is_none()) {
            write::make_parent(self.layout, new_file)?;
        }
        let prepared = write::prepare(
            self.layout,
            self.ui,
            self.command,
            self.reason,
            self.writes,
            self.strays,
        )?;
        let backup_id = prepared.backup.id.clone();
        let backup_path = self.layout.node_path(&prepared.backup.dir);
        recorder.update(|s| {
            s.backup_id = Some(backup_id);
            s.backup = Some(backup_path);
            s.step = "backed-up".into();
        })?;
        Ok(prepared)
    }

    fn write(&self, recorder: &Recorder, prepared: Applied) -> Result<Applied> {
        let backup = self.layout.node_path(&prepared.backup.dir);
        let programs = match self.writer {
            Writer::Atomic => {
                return write::commit(
                    self.layout,
                    self.ui,
                    self.command,
                    self.reason,
                    self.writes,
                    prepared,
                )
                .map_err(|failure| {
                    let manifest_seen = failure
                        .renamed
                        .iter()
                        .any(|p| *p == self.layout.apiserver_manifest());
                    let as_before = Error::Failed(failure.error.as_before());
                    self.settle(
                        recorder,
                        &backup,
                        failure.error.to_string(),
                        as_before,
                        manifest_seen,
                    )
                });
            }
            Writer::Programs(programs) => programs,
        };
        for (index, program) in programs.iter().enumerate() {
            let (name, args) = program.split_first().expect("a program has a name");
            let ran = interrupt::run(
                duct::cmd(name, args).stderr_to_stdout().stdout_capture(),
                PROGRAM_DEADLINE,
                true,
            );
            let failed = |why: String, interrupted: bool| {
                let message = format!(
                    "{why}; the previous files are back in place (backup {})",
                    prepared.backup.dir.display()
                );
                let as_before = if interrupted {
                    Error::Interrupted(message.clone())
                } else {
                    Error::Failed(message.clone())
                };
                self.settle(recorder, &backup, message, as_before, false)
            };
            let out = match ran {
                Ok(out) => out,
                // Not started: nothing written, unless a program before it wrote.
                Err(interrupt::Stopped::Failed(e)) if index == 0 => {
                    return Err(nothing_written(
                        recorder,
                        Error::Failed(format!("cannot run {name}: {e}; nothing was changed")),
                    ));
                }
                Err(interrupt::Stopped::Failed(e)) => {
                    return Err(failed(format!("cannot run {name}: {e}"), false));
                }
                // Killed half-way: it may have written, so what is on disk decides.
                Err(stopped) => {
                    let interrupted = matches!(stopped, interrupt::Stopped::Interrupted);
                    return Err(failed(
                        format!("{} {stopped}", program.join(" ")),
                        interrupted,
                    ));
                }
            };
            self.ui
                .info(String::from_utf8_lossy(&out.stdout).trim_end());
            if !out.status.success() {
                return Err(failed(
                    format!("{} failed ({})", program.join(" "), out.status),
                    false,
                ));
            }
        }
        self.audit("rewritten by an external program", &prepared);
        Ok(prepared)
    }

    /// A write failed (an error, not a crash). Every file that does not hold its original bytes
    /// is put back, and when the manifest had been renamed into place (the kubelet may have seen
    /// it) the old apiserver is proved healthy again. `shown` is the failure as it happened;
    /// `as_before` the error once the node is as before.
    fn settle(
        &self,
        recorder: &Recorder,
        backup: &str,
        shown: String,
        as_before: Error,
        manifest_seen: bool,
    ) -> Error {
        let unrestored = write::put_back_changed(self.layout, self.writes);
        if !unrestored.is_empty() {
            let _ = recorder.finish(State::Failed, "write failed and could not be put back");
            return Error::ManualActionNeeded(format!(
                "{shown}; putting the files back failed too: {}. The originals are in {backup}",
                unrestored.join("; ")
            ));
        }
        if manifest_seen && let Some(Err(RollbackNotProved::Unhealthy(e))) = self.restart_back() {
            let _ = recorder.finish(
                State::Failed,
                "write failed; the old apiserver is not healthy",
            );
            return Error::ManualActionNeeded(format!(
                "{shown}; the files are back, but the old kube-apiserver is not healthy ({e}). The originals are in {backup}"
            ));
        }
        close_as_before(recorder, as_before, "write failed; put back")
    }

    /// The static pod this change restarts, if it restarts one.
    fn restart(&self) -> Option<&StaticPodRestart> {
        self.proofs.iter().find_map(Prove::restart)
    }

    /// The old apiserver proved healthy again, if this change restarts one and waits for it.
    fn restart_back(&self) -> Option<std::result::Result<(), RollbackNotProved>> {
        self.restart()
            .and_then(|restart| restart.prove_old(self.layout, self.ui))
    }

    /// A proof failed: every file goes back, the node as before is proved (the old apiserver
    /// healthy again, where the manifest was among the files), the session closed.
    fn roll_back(&self, journal: &LiveJournal, applied: &Applied, why: NotProved) -> Error {
        journal.step("rolling-back");
        let backup = applied.backup.dir.display().to_string();
        if let NotProved::Restart(failure) = &why {
            self.ui.warn(format!(
                "the change was not proved: {failure}; rolling back from {backup}"
            ));
        }
        let interrupted = why.interrupted();
        let unrestored = match injected_during_rollback() {
            Ok(()) => write::put_back(self.layout, self.writes),
            Err(e) => vec![e.to_string()],
        };
        match why {
            NotProved::Restart(failure) => {
                let manual = |what: String| {
                    self.audit("rollback failed", applied);
                    journal.finish(State::Failed, "rollback failed");
                    Error::ManualActionNeeded(format!(
                        "{failure}, and the rollback failed: {what}.\n  The original files are in {backup} (backup.json says where each belongs).\n  \
                         Put each back: cp <backup>/<name> /etc/kubernetes/tmp/<name>.new && mv /etc/kubernetes/tmp/<name>.new <original path>\n  \
                         then watch: crictl ps --name kube-apiserver; and check: kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz\n  \
                         or run `kubeadm-recover revert`, which does exactly that and proves it"
                    ))
                };
                if !unrestored.is_empty() {
                    return manual(format!("could not write {}", unrestored.join("; ")));
                }
                if self.restart().is_some_and(|r| r.old.is_some()) {
                    self.ui.info(
                        "original files restored; waiting for the old kube-apiserver to be healthy again",
                    );
                }
                match self.restart_back() {
                    Some(Err(RollbackNotProved::NoOldApiserver)) => manual(
                        "the original manifest does not describe an apiserver to wait for".into(),
                    ),
                    Some(Err(RollbackNotProved::Unhealthy(e))) => manual(format!(
                        "the old kube-apiserver did not become healthy either ({e})"
                    )),
                    Some(Ok(())) | None => {
                        self.audit("rolled back", applied);
                        let message = format!(
                            "{failure}.\n  Rolled back: the original files are in place and the old kube-apiserver is healthy again; the node is as before.\n  \
                             The file as it was before the attempt is in {backup}."
                        );
                        match close_as_before(
                            journal.recorder,
                            Error::Failed(message),
                            "rolled back and proved",
                        ) {
                            Error::Failed(msg) if interrupted => Error::Interrupted(msg),
                            other => other,
                        }
                    }
                }
            }
            NotProved::Component { check, why } => {
                let component = check.component().name();
                self.audit_outcome(if interrupted {
                    "interrupted during the proof; restored"
                } else {
                    "component not proved; restored"
                });
                if !unrestored.is_empty() {
                    journal.finish(State::Failed, "not proved and could not be put back");
                    return Error::ManualActionNeeded(format!(
                        "{component} was not proved on its renewed certificates ({why}), and putting the previous files back failed: {}. \
                         The originals are in {backup}",
                        unrestored.join("; ")
                    ));
                }
                self.ui.warn(format!(
                    "{component} was not proved ({why}); its previous files are back, proving it as before"
                ));
                if let Err(e) = check.prove_old(self.layout, self.ui) {
                    self.audit("rollback failed", applied);
                    journal.finish(
                        State::Failed,
                        "put back; the component is not proved as before",
                    );
                    return Error::ManualActionNeeded(format!(
                        "{component} was not proved on its renewed certificates ({why}); its previous files are back, \
                         but it is not proved as before either ({e}).\n  The originals are in {backup}.\n  \
                         Look at it: crictl ps -a --name {component}; crictl logs \"$(crictl ps -a -q --name {component} | head -1)\""
                    ));
                }
                let message = format!(
                    "{component} was not proved on its renewed certificates: {why}.\n  Rolled back: its previous files are in place \
                     and it is proved as before; the node is as it was before this step.\n  The files as they were are in {backup}."
                );
                if interrupted {
                    return close_as_before(
                        journal.recorder,
                        Error::Interrupted(message),
                        "interrupted during the proof; put back",
                    );
                }
                close_as_before(
                    journal.recorder,
                    Error::Failed(message),
                    "not proved; put back and proved as before",
                )
            }
            NotProved::Credential { file, why } => {
                self.audit_outcome(if interrupted {
                    "interrupted during verification; restored"
                } else {
                    "verification failed; restored"
                });
                if !unrestored.is_empty() {
                    journal.finish(State::Failed, "did not verify and could not be put back");
                    return Error::ManualActionNeeded(format!(
                        "{file} did not verify ({why}), and putting the previous files back failed: {}",
                        unrestored.join("; ")
                    ));
                }
                if self
                    .writes
                    .iter()
                    .any(|w| w.path == self.layout.apiserver_manifest())
                    && let Some(Err(e)) = self.restart_back()
                {
                    journal.finish(
                        State::Failed,
                        "did not verify; the old apiserver is not healthy",
                    );
                    let e = match e {
                        RollbackNotProved::NoOldApiserver => {
                            "the original manifest describes no apiserver".to_string()
                        }
                        RollbackNotProved::Unhealthy(e) => e.to_string(),
                    };
                    return Error::ManualActionNeeded(format!(
                        "{file} did not verify ({why}); the files are back, but the old kube-apiserver is not healthy ({e}). The originals are in {backup}"
                    ));
                }
                if interrupted {
                    return close_as_before(
                        journal.recorder,
                        Error::Interrupted(format!(
                            "interrupted while proving {file}: the previous files are back in place; the node is as before"
                        )),
                        "interrupted during the proof; put back",
                    );
                }
                self.ui.detail(format!(
                    "{file} did not verify; the previous files are back"
                ));
                close_as_before(
                    journal.recorder,
                    Error::Failed(format!(
                        "{file} did not verify: {why}.\n  The previous files are back in place; the node is as before.\n  \
                         If the apiserver is down, regenerate with --no-verify and check again once it is up."
                    )),
                    "did not verify; put back",
                )
            }
        }
    }

    /// The audit policy after the write: a line per outcome, with the backup; a line that
    /// cannot be written is a warning, never a failure of a change that is live.
    fn audit(&self, outcome: &str, applied: &Applied) {
        let mut record = audit::Record::new(self.command, self.reason, outcome);
        record.backup = Some(self.layout.node_path(&applied.backup.dir));
        audit::append_or_warn(self.layout, &record);
    }

    fn audit_outcome(&self, outcome: &str) {
        audit::append_or_warn(
            self.layout,
            &audit::Record::new(self.command, self.reason, outcome),
        );
    }
}

impl Proved {
    fn proves_something(&self) -> bool {
        match self {
            Proved::Restarted { .. } => true,
            Proved::RestartPending => false,
            Proved::Credentials(verified) => !verified.is_empty(),
            Proved::Component(proved) => !matches!(
                proved,
                crate::certs::prove::ComponentProved::NotRunning { .. }
            ),
        }
    }
}

/// What the journal says of a change that went through: "proved" only when a proof ran
/// (`--no-wait`, `--no-verify` and changes with nothing to prove are written, not proved).
fn done_step(proved: &[Proved]) -> &'static str {
    if proved.iter().any(|p| {
        matches!(p, Proved::Restarted { .. })
            || matches!(p, Proved::Component(_)) && p.proves_something()
    }) {
        "proved"
    } else if proved.iter().any(|p| matches!(p, Proved::RestartPending)) {
        "written; restart pending (--no-wait)"
    } else if proved.iter().any(Proved::proves_something) {
        "written and proved (SelfSubjectReview)"
    } else {
        "written; not proved (no check was made beyond the bytes on disk)"
    }
}

fn injected_after_lock() -> Result<()> {
    crate::failpoint!("after-lock");
    Ok(())
}

fn injected_during_rollback() -> Result<()> {
    crate::failpoint!("during-rollback");
    Ok(())
}

/// The journal after the rename: its failures are warnings, never the command's outcome.
struct LiveJournal<'a> {
    recorder: &'a Recorder<'a>,
    ui: &'a Ui,
}

impl LiveJournal<'_> {
    fn warn(&self, result: Result<()>) {
        if let Err(e) = result {
            self.ui.warn(format!(
                "THE JOURNAL COULD NOT BE WRITTEN ({e}). The change goes on and its outcome below is the truth, \
                 but the journal still shows session {} unfinished: once there is room, `kubeadm-recover resume` \
                 or `revert` settles it",
                self.recorder.id
            ));
        }
    }

    fn step(&self, step: &str) {
        self.warn(self.recorder.step(step));
    }

    fn finish(&self, state: State, step: &str) {
        self.warn(self.recorder.finish(state, step));
    }
}

/// Nothing was written: the session is closed as rolled back (or, if the journal cannot take
/// even that, removed), so that "as before" leaves no unfinished session behind.
fn nothing_written(recorder: &Recorder, error: Error) -> Error {
    close_as_before(recorder, error, "nothing was written")
}

/// The node is as before: the session is closed as rolled back (or, if the journal cannot take
/// even that, removed), so that exit 1 never leaves an unfinished session behind.
fn close_as_before(recorder: &Recorder, error: Error, step: &str) -> Error {
    // What the journal on disk says decides, not whether a save reported an error.
    let unfinished = || {
        recorder.load().map(|journal| {
            journal
                .find(&recorder.id)
                .is_some_and(|s| matches!(s.state, State::InProgress | State::Failed))
        })
    };
    let _ = recorder.finish(State::RolledBack, step);
    if !matches!(unfinished(), Ok(false)) {
        let _ = recorder.discard();
    }
    match unfinished() {
        Ok(false) => error,
        Ok(true) => Error::ManualActionNeeded(format!(
            "{error}. The files are as before, but the journal cannot be updated and still lists \
             session {} as unfinished: free space under {}, then `{}` clears it",
            recorder.id,
            recorder.dir().display(),
            journal::abandon_command(&recorder.id)
        )),
        // Whether it lists this session cannot be told: a person must look at it.
        Err(_) => Error::ManualActionNeeded(format!(
            "{error}. The files are as before, but the journal under {} cannot be read, so whether \
             it lists session {} cannot be told; every change is refused until it is readable again",
            recorder.dir().display(),
            recorder.id
        )),
    }
}
