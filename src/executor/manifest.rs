//! A change of the apiserver manifest, journaled step by step: back up, write atomically, prove
//! the restart (or put the original back and prove the old apiserver healthy).
use crate::change::{self, Applied};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::journal::{self, State};
use crate::node::NodeLayout;
use crate::plan::{OnInterrupt, PlannedWrite};
use crate::restart::{Before, Expected, Proof, WaitFailure, WaitOptions, observe_before, wait_for};
use crate::store::audit;
use crate::store::strays::Stray;
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
    let recorder = journal::Recorder::begin(layout, session)?;
    crate::failpoint!("after-lock");
    if interrupt::interrupted() {
        recorder.finish(State::RolledBack, "interrupted before any change")?;
        return Err(Error::Interrupted(
            "interrupted before anything was changed; the node is as before".into(),
        ));
    }

    let prepared = match change::prepare(
        layout,
        ui,
        change.command,
        change.reason,
        change.writes,
        change.strays,
    ) {
        Ok(p) => p,
        Err(e) => {
            recorder.finish(State::RolledBack, "failed before writing")?;
            return Err(e);
        }
    };
    let backup_id = prepared.backup.id.clone();
    let backup_path = layout.node_path(&prepared.backup.dir);
    recorder.update(|s| {
        s.backup_id = Some(backup_id.clone());
        s.backup = Some(backup_path.clone());
        s.step = "backed-up".into();
    })?;
    let applied = match change::commit(
        layout,
        ui,
        change.command,
        change.reason,
        change.writes,
        prepared,
    ) {
        Ok(a) => a,
        Err(e) => {
            return Err(settle_failed_write(
                layout,
                ui,
                &recorder,
                &change,
                old_expected.as_ref(),
                &backup_path,
                e,
            ));
        }
    };
    recorder.step("written")?;
    let Some(options) = change.wait else {
        recorder.finish(State::Done, "written; restart pending (--no-wait)")?;
        return Ok(Outcome {
            applied,
            before,
            proof: None,
            session: recorder.id.clone(),
        });
    };

    recorder.step("waiting")?;
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
            recorder.finish(State::Done, "proved")?;
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
            recorder.step("rolling-back")?;
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
            let (state, step) = match &error {
                Error::ManualActionNeeded(_) => (State::Failed, "rollback failed"),
                _ => (State::RolledBack, "rolled back and proved"),
            };
            recorder.finish(state, step)?;
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

/// A write failed half-way (an error, not a crash): put back what was written and, if the
/// apiserver may have seen the new manifest, prove the old one healthy again.
fn settle_failed_write(
    layout: &NodeLayout,
    ui: &Ui,
    recorder: &journal::Recorder,
    change: &Change,
    old_expected: Option<&Expected>,
    backup: &str,
    error: Error,
) -> Error {
    let failed = change::put_back(layout, change.writes);
    if !failed.is_empty() {
        let _ = recorder.finish(State::Failed, "write failed and could not be put back");
        return Error::ManualActionNeeded(format!(
            "{error}; putting the files back failed too: {}. The originals are in {backup}",
            failed.join("; ")
        ));
    }
    if let (Some(options), Some(old)) = (change.wait, old_expected)
        && let Err(e) = wait_for(layout, ui, old, None, options, false)
    {
        let _ = recorder.finish(
            State::Failed,
            "write failed; the old apiserver is not healthy",
        );
        return Error::ManualActionNeeded(format!(
            "{error}; the files are back, but the old kube-apiserver is not healthy ({e}). The originals are in {backup}"
        ));
    }
    let _ = recorder.finish(State::RolledBack, "write failed; put back");
    match error {
        Error::Failed(msg) => Error::Failed(format!(
            "{msg}; the files are put back, the node is as before"
        )),
        other => other,
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
    if let Err(e) = audit::append(&layout.audit_log(), &record) {
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
    match wait_for(layout, ui, old_expected, None, options, false) {
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
