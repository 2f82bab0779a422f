//! A change of the apiserver manifest, journaled step by step: back up, write atomically, prove
//! the restart (or put the original back and prove the old apiserver healthy).
use crate::change::journal::{self, State};
use crate::change::plan::{OnInterrupt, PlannedWrite};
use crate::change::restart::{
    Before, Expected, Proof, WaitFailure, WaitOptions, observe_before, wait_for,
};
use crate::change::write::{self as change, Applied, CommitFailure};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::node::store::audit;
use crate::node::store::strays::Stray;
use crate::runtime::interrupt;
use crate::ui::Ui;

/// A change of the manifest (and maybe other files).
pub struct Change<'a> {
    pub command: &'a str,
    pub reason: Option<&'a str>,
    pub writes: &'a [PlannedWrite],
    pub strays: &'a [Stray],
    /// None: write and return (`--no-wait`).
    pub wait: Option<WaitOptions>,
    pub on_interrupt: OnInterrupt,
    /// The session this change reverts, if it is a revert.
    pub reverts: Option<String>,
    pub stale_tokens_at_start: Option<u64>,
    /// `--revert-after`'s deadline, recorded with the session from its start.
    pub revert_after: Option<i64>,
}

/// What a change reports.
pub struct Outcome {
    pub applied: Applied,
    pub before: Before,
    pub proof: Option<Proof>,
    pub session: String,
}

fn text_of(bytes: Option<&Vec<u8>>) -> String {
    String::from_utf8_lossy(bytes.map_or(&[][..], |b| b)).into_owned()
}

/// Journal, back up, write atomically, then (unless `--no-wait`) prove the restart; on failure
/// or interrupt put the files back and prove the old apiserver healthy. The caller holds the lock.
pub fn execute(layout: &NodeLayout, ui: &Ui, change: Change) -> Result<Outcome> {
    let manifest_path = layout.apiserver_manifest();
    let manifest_write = change
        .writes
        .iter()
        .find(|w| w.path == manifest_path)
        .expect("the manifest is written");
    let new_text = text_of(Some(&manifest_write.new));
    let old_text = text_of(manifest_write.old.as_ref());
    let new_expected =
        Expected::from_manifest(&new_text).map_err(|e| Error::manifest(&manifest_path, &e))?;
    let old_expected = Expected::from_manifest(&old_text).ok();
    let before = match (&change.wait, &old_expected) {
        (Some(_), Some(old)) => observe_before(layout, old),
        _ => Before {
            process: None,
            container_id: None,
            config_hash: None,
        },
    };
    if change.wait.is_some() && before.process.is_none() {
        ui.warn("no kube-apiserver is running for this manifest right now; the change will be proved by the one the kubelet starts");
    }

    let mut session = journal::new_session(
        change.command,
        change.reason,
        manifest_write.old.as_deref().unwrap_or_default(),
        &new_text,
    );
    session.reverts = change.reverts.clone();
    session.stale_tokens_at_start = change.stale_tokens_at_start;
    session.revert_after = change.revert_after.map(|deadline| journal::RevertSchedule {
        deadline: crate::runtime::clock::rfc3339(deadline),
        deadline_unix: deadline,
        timer: None,
        note: Some("not scheduled yet: the change is under way".into()),
    });
    let id = session.id.clone();
    let recorder = match journal::Recorder::begin(layout, session) {
        Ok(r) => r,
        // The session may be on disk although saving it reported an error: nothing was
        // written, so it must not be left looking unfinished.
        Err(e) => return Err(nothing_written(&journal::Recorder::attach(layout, &id), e)),
    };
    let before_write = || -> Result<Applied> {
        injected_after_lock()?;
        if interrupt::interrupted() {
            return Err(Error::Interrupted(
                "interrupted before anything was changed; the node is as before".into(),
            ));
        }
        let prepared = change::prepare(
            layout,
            ui,
            change.command,
            change.reason,
            change.writes,
            change.strays,
        )?;
        let backup_id = prepared.backup.id.clone();
        let backup_path = layout.node_path(&prepared.backup.dir);
        recorder.update(|s| {
            s.backup_id = Some(backup_id);
            s.backup = Some(backup_path);
            s.step = "backed-up".into();
        })?;
        Ok(prepared)
    };
    let prepared = match before_write() {
        Ok(p) => p,
        Err(e) => return Err(nothing_written(&recorder, e)),
    };
    let backup_path = layout.node_path(&prepared.backup.dir);
    let applied = match change::commit(
        layout,
        ui,
        change.command,
        change.reason,
        change.writes,
        prepared,
    ) {
        Ok(a) => a,
        Err(failure) => {
            return Err(settle_failed_write(
                layout,
                ui,
                &recorder,
                &change,
                old_expected.as_ref(),
                &backup_path,
                failure,
            ));
        }
    };
    // From here on the change is live: a journal that cannot be written must not turn it into a
    // failure that is not true. The change is finished (or rolled back) and proved regardless,
    // and the operator is told loudly.
    let journal = Journal {
        recorder: &recorder,
        ui,
    };
    journal.step("written");
    let Some(options) = change.wait else {
        journal.finish(State::Done, "written; restart pending (--no-wait)");
        return Ok(Outcome {
            applied,
            before,
            proof: None,
            session: recorder.id.clone(),
        });
    };

    journal.step("waiting");
    ui.info("waiting for the kubelet to restart kube-apiserver with the new manifest");
    let mut result = wait_for(
        layout,
        ui,
        &new_expected,
        before.process.as_ref(),
        options,
        true,
    );
    while matches!(result, Err(WaitFailure::Interrupted))
        && change.on_interrupt == OnInterrupt::Continue
    {
        ui.warn("interrupted: finishing the change first (--on-interrupt continue)");
        interrupt::clear();
        result = wait_for(
            layout,
            ui,
            &new_expected,
            before.process.as_ref(),
            options,
            true,
        );
    }
    match result {
        Ok(proof) => {
            journal.finish(State::Done, "proved");
            record(layout, change.command, change.reason, "proved", &applied);
            if interrupt::interrupted() && change.on_interrupt == OnInterrupt::Continue {
                ui.warn("the change was finished and proved before stopping");
            }
            Ok(Outcome {
                applied,
                before,
                proof: Some(proof),
                session: recorder.id.clone(),
            })
        }
        Err(failure) => {
            journal.step("rolling-back");
            let interrupted = matches!(failure, WaitFailure::Interrupted);
            let error = roll_back(
                layout,
                ui,
                &change,
                &applied,
                old_expected.as_ref(),
                options,
                failure,
            );
            let error = match error {
                Error::ManualActionNeeded(_) => {
                    journal.finish(State::Failed, "rollback failed");
                    error
                }
                as_before => close_as_before(&recorder, as_before, "rolled back and proved"),
            };
            Err(match (interrupted, error) {
                (true, Error::Failed(msg)) => Error::Interrupted(msg),
                (_, e) => e,
            })
        }
    }
}

fn injected_during_rollback() -> Result<()> {
    crate::failpoint!("during-rollback");
    Ok(())
}

/// The journal after the rename: its failures are warnings, never the command's outcome.
pub(super) struct Journal<'a> {
    pub(super) recorder: &'a journal::Recorder<'a>,
    pub(super) ui: &'a Ui,
}

impl Journal<'_> {
    pub(super) fn warn(&self, result: Result<()>) {
        if let Err(e) = result {
            self.ui.warn(format!(
                "THE JOURNAL COULD NOT BE WRITTEN ({e}). The change goes on and its outcome below is the truth, \
                 but the journal still shows session {} unfinished: once there is room, `kubeadm-recover resume` \
                 or `revert` settles it",
                self.recorder.id
            ));
        }
    }

    pub(super) fn step(&self, step: &str) {
        self.warn(self.recorder.step(step));
    }

    pub(super) fn finish(&self, state: State, step: &str) {
        self.warn(self.recorder.finish(state, step));
    }
}

fn injected_after_lock() -> Result<()> {
    crate::failpoint!("after-lock");
    Ok(())
}

/// Nothing was written: the session is closed as rolled back (or, if the journal cannot take
/// even that, removed), so that "as before" leaves no unfinished session behind.
pub(super) fn nothing_written(recorder: &journal::Recorder, error: Error) -> Error {
    close_as_before(recorder, error, "nothing was written")
}

/// The node is as before: the session is closed as rolled back (or, if the journal cannot take
/// even that, removed), so that exit 1 never leaves an unfinished session behind.
pub(super) fn close_as_before(recorder: &journal::Recorder, error: Error, step: &str) -> Error {
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
            crate::change::journal::abandon_command(&recorder.id)
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

/// A write failed (an error, not a crash). What is on disk decides what happened: every file
/// that does not hold its original bytes is put back, and when the manifest had been renamed
/// into place (the kubelet may have seen it) the old apiserver is proved healthy again.
fn settle_failed_write(
    layout: &NodeLayout,
    ui: &Ui,
    recorder: &journal::Recorder,
    change: &Change,
    old_expected: Option<&Expected>,
    backup: &str,
    failure: CommitFailure,
) -> Error {
    let error = failure.error;
    let unrestored = change::put_back_changed(layout, change.writes);
    if !unrestored.is_empty() {
        let _ = recorder.finish(State::Failed, "write failed and could not be put back");
        return Error::ManualActionNeeded(format!(
            "{error}; putting the files back failed too: {}. The originals are in {backup}",
            unrestored.join("; ")
        ));
    }
    let manifest_seen = failure
        .renamed
        .iter()
        .any(|p| *p == layout.apiserver_manifest());
    if manifest_seen
        && let (Some(options), Some(old)) = (change.wait, old_expected)
        && let Err(e) = wait_for(layout, ui, old, None, options.for_rollback(), false)
    {
        let _ = recorder.finish(
            State::Failed,
            "write failed; the old apiserver is not healthy",
        );
        return Error::ManualActionNeeded(format!(
            "{error}; the files are back, but the old kube-apiserver is not healthy ({e}). The originals are in {backup}"
        ));
    }
    let closed = nothing_written(recorder, Error::Failed(String::new()));
    let message = match error {
        Error::Failed(msg) if msg.contains("the node is as before") => msg,
        Error::Failed(msg) => format!("{msg}; the files are put back, the node is as before"),
        other => other.to_string(),
    };
    match closed {
        Error::ManualActionNeeded(journal) => {
            Error::ManualActionNeeded(format!("{message}. {journal}"))
        }
        _ => Error::Failed(message),
    }
}

fn record(
    layout: &NodeLayout,
    command: &str,
    reason: Option<&str>,
    outcome: &str,
    applied: &Applied,
) {
    let mut record = audit::Record::new(command, reason, outcome);
    record.backup = Some(layout.node_path(&applied.backup.dir));
    if let Err(e) = audit::append(layout, &record) {
        crate::ui::stderr_line(&format!("warning: could not write the audit log: {e}"));
    }
}

fn roll_back(
    layout: &NodeLayout,
    ui: &Ui,
    change: &Change,
    applied: &Applied,
    old_expected: Option<&Expected>,
    options: WaitOptions,
    failure: WaitFailure,
) -> Error {
    let (command, reason) = (change.command, change.reason);
    let backup = applied.backup.dir.display().to_string();
    ui.warn(format!(
        "the change was not proved: {failure}; rolling back from {backup}"
    ));
    let unrestored = match injected_during_rollback() {
        Ok(()) => change::put_back(layout, change.writes),
        Err(e) => vec![e.to_string()],
    };
    let manual = |what: String| {
        record(layout, command, reason, "rollback failed", applied);
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
    let Some(old_expected) = old_expected else {
        return manual("the original manifest does not describe an apiserver to wait for".into());
    };
    ui.info("original files restored; waiting for the old kube-apiserver to be healthy again");
    // The rollback itself is not interruptible: it is how an interrupt is handled.
    match wait_for(
        layout,
        ui,
        old_expected,
        None,
        options.for_rollback(),
        false,
    ) {
        Ok(_) => {
            record(layout, command, reason, "rolled back", applied);
            Error::Failed(format!(
                "{failure}.\n  Rolled back: the original files are in place and the old kube-apiserver is healthy again; the node is as before.\n  \
                 The file as it was before the attempt is in {backup}."
            ))
        }
        Err(e) => manual(format!(
            "the old kube-apiserver did not become healthy either ({e})"
        )),
    }
}
