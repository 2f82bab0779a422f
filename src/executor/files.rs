//! Changes that do not restart the apiserver (credentials, a backup without the manifest): back
//! up, write atomically, prove the result where it can be proved, put everything back if not.
use super::{BackupRef, Executed, Restart};
use crate::change;
use crate::credentials::verify::{self, Verified};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::plan::{PlannedWrite, Verify};
use crate::store::strays::Stray;
use crate::store::{audit, backup};
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
    for write in writes.iter().filter(|w| w.old.is_none()) {
        make_parent(write)?;
    }
    let applied = change::apply(layout, ui, command, reason, writes, strays)?;
    let verified = verify_or_restore(layout, ui, command, reason, verify, writes)?;
    Ok(Executed {
        backup: Some(BackupRef {
            id: applied.backup.id.clone(),
            path: layout.node_path(&applied.backup.dir),
        }),
        moved_strays: applied.moved_strays,
        restart: Restart::NotNeeded,
        verified,
        ..Executed::idle(false, false)
    })
}

/// A new file's missing directory (`~alice/.kube`) is made private and owned like the file.
fn make_parent(write: &PlannedWrite) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = write.path.parent().filter(|d| !d.exists()) else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("cannot create", dir, e))?;
    if let Some(owner) = write.ownership {
        nix::unistd::chown(
            dir,
            Some(nix::unistd::Uid::from_raw(owner.uid)),
            Some(nix::unistd::Gid::from_raw(owner.gid)),
        )
        .map_err(|e| Error::io("cannot chown", dir, e.into()))?;
    }
    Ok(())
}

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
        Error::Failed(format!(
            "could not make the backup, nothing was changed: {e}"
        ))
    })?;
    for program in programs {
        let (name, args) = program.split_first().expect("a program has a name");
        let out = duct::cmd(name, args)
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|e| Error::Failed(format!("cannot run {name}: {e}; nothing was changed")))?;
        ui.info(String::from_utf8_lossy(&out.stdout).trim_end());
        if !out.status.success() {
            let failed = change::put_back(layout, files);
            if !failed.is_empty() {
                return Err(Error::ManualActionNeeded(format!(
                    "{} failed and the backup {} could not be put back: {}",
                    program.join(" "),
                    made.dir.display(),
                    failed.join("; ")
                )));
            }
            return Err(Error::Failed(format!(
                "{} failed ({}); the previous files are back in place",
                program.join(" "),
                out.status
            )));
        }
    }
    let mut record = audit::Record::new(command, reason, "rewritten by an external program");
    record.backup = Some(layout.node_path(&made.dir));
    let _ = audit::append(&layout.audit_log(), &record);
    let verified = verify_or_restore(layout, ui, command, reason, verify, files)?;
    Ok(Executed {
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
        let proved = std::fs::read_to_string(&check.path)
            .map_err(|e| format!("cannot read {}: {e}", check.path.display()))
            .and_then(|text| verify::verify(&text, &check.subject));
        match proved {
            Ok(v) => verified.push(v),
            Err(why) => {
                let failed = change::put_back(layout, writes);
                let record = audit::Record::new(command, reason, "verification failed; restored");
                let _ = audit::append(&layout.audit_log(), &record);
                if !failed.is_empty() {
                    return Err(Error::ManualActionNeeded(format!(
                        "{} did not verify ({why}), and putting the previous files back failed: {}",
                        check.file,
                        failed.join("; ")
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
