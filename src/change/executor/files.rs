//! Changes that do not restart the apiserver (credentials, a backup without the manifest): back
//! up, write atomically, prove the result where it can be proved, put everything back if not.
use super::manifest::{Journal, close_as_before, nothing_written};
use super::{BackupRef, Executed, Restart};
use crate::change::journal::{self, FileVersion, State};
use crate::change::plan::{PlannedWrite, Verify};
use crate::change::write as change;
use crate::credentials::verify::{self, NotVerified, Verified};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::node::store::sha256_hex;
use crate::node::store::strays::Stray;
use crate::node::store::{audit, backup};
use crate::ui::Ui;

pub fn write(
    layout: &NodeLayout,
    ui: &Ui,
    command: &str,
    reason: Option<&str>,
    writes: &[PlannedWrite],
    strays: &[Stray],
    verify: &Verify,
) -> Result<Executed> {
    let recorder = begin(layout, command, reason, writes, true)?;
    let prepared = (|| {
        for write in writes.iter().filter(|w| w.old.is_none()) {
            make_parent(layout, write)?;
        }
        change::prepare(layout, ui, command, reason, writes, strays)
    })();
    let prepared = prepared.map_err(|e| nothing_written(&recorder, e))?;
    let backup = BackupRef {
        id: prepared.backup.id.clone(),
        path: layout.node_path(&prepared.backup.dir),
    };
    // Where the originals are, on record before the first file is replaced.
    recorder
        .update(|s| {
            s.backup_id = Some(backup.id.clone());
            s.backup = Some(backup.path.clone());
            s.step = "backed-up".into();
        })
        .map_err(|e| nothing_written(&recorder, e))?;
    let applied = match change::commit(layout, ui, command, reason, writes, prepared) {
        Ok(applied) => applied,
        Err(failure) => return Err(settle(layout, &recorder, writes, failure.error)),
    };
    let journal = Journal {
        recorder: &recorder,
        ui,
    };
    journal.step("written");
    let verified = finish(
        &journal,
        verify,
        verify_or_restore(layout, ui, command, reason, verify, writes),
    )?;
    Ok(Executed {
        session: Some(recorder.id.clone()),
        backup: Some(backup),
        moved_strays: applied.moved_strays,
        restart: Restart::NotNeeded,
        verified,
        ..Executed::idle(false, false)
    })
}

/// Starts the journal session of a change of files: each file with its hashes before and
/// (where known in advance) after.
fn begin<'a>(
    layout: &'a NodeLayout,
    command: &str,
    reason: Option<&str>,
    writes: &[PlannedWrite],
    after_known: bool,
) -> Result<journal::Recorder<'a>> {
    let files = writes
        .iter()
        .map(|w| FileVersion {
            path: layout.node_path(&w.path),
            sha256_before: w.old.as_deref().map(sha256_hex),
            sha256_after: after_known.then(|| sha256_hex(&w.new)),
        })
        .collect();
    let session = journal::new_files_session(command, reason, files);
    let id = session.id.clone();
    journal::Recorder::begin(layout, session)
        .map_err(|e| nothing_written(&journal::Recorder::attach(layout, &id), e))
}

/// A commit that failed: what is on disk decides. Files not holding their old bytes are put
/// back; if that works the node is as before.
fn settle(
    layout: &NodeLayout,
    recorder: &journal::Recorder,
    writes: &[PlannedWrite],
    error: Error,
) -> Error {
    let unrestored = change::put_back_changed(layout, writes);
    if !unrestored.is_empty() {
        let _ = recorder.finish(State::Failed, "write failed and could not be put back");
        return Error::ManualActionNeeded(format!(
            "{error}; putting the files back failed too: {}",
            unrestored.join("; ")
        ));
    }
    let error = match error {
        Error::ManualActionNeeded(msg) | Error::Failed(msg) => Error::Failed(msg),
        other => other,
    };
    close_as_before(recorder, error, "write failed; put back")
}

/// Closes the session after the proof: done, rolled back (the files are back), or failed. The
/// journal says what was done: "proved" only when a proof ran (`--no-verify`, and changes with
/// nothing to prove such as a pruned kubeconfig, are written and not proved).
fn finish(
    journal: &Journal,
    verify: &Verify,
    proved: Result<Vec<Verified>>,
) -> Result<Vec<Verified>> {
    match proved {
        Ok(verified) => {
            journal.finish(
                State::Done,
                match verify {
                    Verify::Credentials(checks) if !checks.is_empty() => {
                        "written and proved (SelfSubjectReview)"
                    }
                    _ => "written; not proved (no check was made beyond the bytes on disk)",
                },
            );
            Ok(verified)
        }
        Err(Error::ManualActionNeeded(msg)) => {
            journal.finish(State::Failed, "did not verify and could not be put back");
            Err(Error::ManualActionNeeded(msg))
        }
        Err(e @ Error::Interrupted(_)) => Err(close_as_before(
            journal.recorder,
            e,
            "interrupted during the proof; put back",
        )),
        Err(e) => Err(close_as_before(
            journal.recorder,
            e,
            "did not verify; put back",
        )),
    }
}

/// A new file's missing directory (`~alice/.kube`) is made private and owned like the file.
fn make_parent(layout: &NodeLayout, write: &PlannedWrite) -> Result<()> {
    let Some(dir) = write.path.parent().filter(|d| !layout.fs().exists(d)) else {
        return Ok(());
    };
    layout
        .fs()
        .create_dir_all(dir, 0o700, write.ownership.map(|o| (o.uid, o.gid)))
        .map_err(|e| Error::io("cannot create", dir, e))?;
    Ok(())
}

/// How long a program that rewrites credentials (`kubeadm certs renew`) may take.
const PROGRAM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs programs that rewrite `files` themselves, after backing them up; a failing program or
/// a result that does not verify puts the originals back.
pub fn external(
    layout: &NodeLayout,
    ui: &Ui,
    command: &str,
    reason: Option<&str>,
    programs: &[Vec<String>],
    files: &[PlannedWrite],
    verify: &Verify,
) -> Result<Executed> {
    let recorder = begin(layout, command, reason, files, false)?;
    let sources: Vec<backup::Source> = files
        .iter()
        .filter(|f| f.old.is_some())
        .map(|f| backup::Source {
            path: &f.path,
            restorable: true,
        })
        .collect();
    let operation = command.replace(' ', "-");
    let made = backup::create(layout, &operation, reason, &sources).map_err(|e| {
        nothing_written(
            &recorder,
            Error::Failed(format!(
                "could not make the backup, nothing was changed: {e}"
            )),
        )
    })?;
    for program in programs {
        let (name, args) = program.split_first().expect("a program has a name");
        let ran = crate::runtime::interrupt::run(
            duct::cmd(name, args).stderr_to_stdout().stdout_capture(),
            PROGRAM_DEADLINE,
            true,
        );
        let out = match ran {
            Ok(out) => out,
            Err(crate::runtime::interrupt::Stopped::Failed(e)) => {
                return Err(nothing_written(
                    &recorder,
                    Error::Failed(format!("cannot run {name}: {e}; nothing was changed")),
                ));
            }
            // Killed half-way: it may have written, so what is on disk decides.
            Err(stopped) => {
                let why = format!(
                    "{} {stopped}; the previous files are back in place (backup {})",
                    program.join(" "),
                    made.dir.display()
                );
                let error = match stopped {
                    crate::runtime::interrupt::Stopped::Interrupted => Error::Interrupted(why),
                    _ => Error::Failed(why),
                };
                return Err(settle(layout, &recorder, files, error));
            }
        };
        ui.info(String::from_utf8_lossy(&out.stdout).trim_end());
        if !out.status.success() {
            let error = Error::Failed(format!(
                "{} failed ({}); the previous files are back in place (backup {})",
                program.join(" "),
                out.status,
                made.dir.display()
            ));
            return Err(settle(layout, &recorder, files, error));
        }
    }
    let mut record = audit::Record::new(command, reason, "rewritten by an external program");
    record.backup = Some(layout.node_path(&made.dir));
    let _ = audit::append(layout, &record);
    let journal = Journal {
        recorder: &recorder,
        ui,
    };
    journal.warn(recorder.update(|s| {
        s.backup_id = Some(made.id.clone());
        s.backup = Some(layout.node_path(&made.dir));
    }));
    let verified = finish(
        &journal,
        verify,
        verify_or_restore(layout, ui, command, reason, verify, files),
    )?;
    Ok(Executed {
        session: Some(recorder.id.clone()),
        backup: Some(BackupRef {
            id: made.id.clone(),
            path: layout.node_path(&made.dir),
        }),
        verified,
        ..Executed::idle(false, false)
    })
}

/// Proves every new credential; on failure puts every written file back (exit 1).
pub fn verify_or_restore(
    layout: &NodeLayout,
    ui: &Ui,
    command: &str,
    reason: Option<&str>,
    verify: &Verify,
    writes: &[PlannedWrite],
) -> Result<Vec<Verified>> {
    let Verify::Credentials(checks) = verify else {
        return Ok(Vec::new());
    };
    let mut verified = Vec::new();
    for check in checks {
        let proved = layout
            .fs()
            .read_to_string(&check.path)
            .map_err(|e| NotVerified::Failed(format!("cannot read {}: {e}", check.path.display())))
            .and_then(|text| verify::verify(&text, &check.subject));
        match proved {
            Ok(v) => verified.push(v),
            Err(why) => {
                let interrupted = matches!(why, NotVerified::Interrupted);
                let failed = change::put_back(layout, writes);
                let outcome = if interrupted {
                    "interrupted during verification; restored"
                } else {
                    "verification failed; restored"
                };
                let record = audit::Record::new(command, reason, outcome);
                let _ = audit::append(layout, &record);
                if !failed.is_empty() {
                    return Err(Error::ManualActionNeeded(format!(
                        "{} did not verify ({why}), and putting the previous files back failed: {}",
                        check.file,
                        failed.join("; ")
                    )));
                }
                if interrupted {
                    return Err(Error::Interrupted(format!(
                        "interrupted while proving {}: the previous files are back in place; the node is as before",
                        check.file
                    )));
                }
                ui.detail(format!(
                    "{} did not verify; the previous files are back",
                    check.file
                ));
                return Err(Error::Failed(format!(
                    "{} did not verify: {why}.\n  The previous files are back in place; the node is as before.\n  \
                     If the apiserver is down, regenerate with --no-verify and check again once it is up.",
                    check.file
                )));
            }
        }
    }
    Ok(verified)
}
