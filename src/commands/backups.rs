//! `backups list` and `backups restore`.
use serde::Serialize;

use super::{Context, change_settings};
use crate::change::executor::{self, ChangeReport, Done, Executed, Ran, Unfinished};
use crate::change::plan::{self, ChangeSettings, Gate, Plan, PlannedWrite};
use crate::cli::Backups;
use crate::error::{Error, ExitStatus, Result};
use crate::node::store::backup::{self, Backup, BackupFile};
use crate::survey::facts::{BackupEntry, backup_entries};
use crate::ui::{Report, unified_diff};

pub fn run(ctx: &Context, action: Backups) -> Result<ExitStatus> {
    match action {
        Backups::List => {
            ctx.ui.report(&list(ctx))?;
            Ok(ExitStatus::Success)
        }
        Backups::Restore {
            id,
            confirm,
            restart,
        } => restore(ctx, &id, &change_settings(&confirm, Some(&restart), None)),
    }
}

#[derive(Debug, Serialize)]
pub struct BackupList {
    pub backups: Vec<BackupEntry>,
    #[serde(skip)]
    dir: String,
}

impl Report for BackupList {
    const KIND: &'static str = "BackupList";

    fn text(&self) -> String {
        if self.backups.is_empty() {
            return format!("no backups in {}\n", self.dir);
        }
        let mut out = String::new();
        for entry in &self.backups {
            match entry {
                BackupEntry::Readable {
                    id,
                    operation,
                    files,
                    problems,
                    ..
                } => out.push_str(&format!(
                    "{id}  {operation}  {}{}\n",
                    files
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!("  CHECKSUM MISMATCH: {}", problems.join("; "))
                    }
                )),
                BackupEntry::Unreadable { path, error } => {
                    out.push_str(&format!("{path}: unreadable: {error}\n"))
                }
            }
        }
        out
    }
}

fn list(ctx: &Context) -> BackupList {
    BackupList {
        backups: backup_entries(&ctx.layout),
        dir: ctx.layout.node_path(&ctx.layout.backups_dir()),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    pub id: String,
    pub files: Vec<String>,
    pub not_restored: Vec<String>,
    pub changed: bool,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The session, where the files the restore replaced were backed up, the restart.
    #[serde(flatten)]
    pub change: Option<ChangeReport>,
}

impl Report for RestoreResult {
    const KIND: &'static str = "RestoreResult";

    fn text(&self) -> String {
        if !self.changed {
            return format!(
                "the node already matches backup {}: nothing to do\n",
                self.id
            );
        }
        if self.dry_run {
            return format!("dry run: nothing was written\n{}", self.diff);
        }
        let mut out = format!("restored backup {}\n", self.id);
        if let Some(backup) = self.change.as_ref().and_then(|c| c.backup.as_ref()) {
            out.push_str(&format!(
                "  the files it replaced are in {} (id {})\n",
                backup.path, backup.id
            ));
        }
        out
    }
}

fn load(ctx: &Context, id: &str) -> Result<Backup> {
    match backup::find(&ctx.layout, id) {
        None => Err(Error::Usage(format!(
            "no backup {id} in {}: see `kubeadm-recover backups list`",
            ctx.layout.backups_dir().display()
        ))),
        Some(Err((dir, e))) => Err(Error::Refused(format!(
            "backup {} is unreadable: {e}",
            dir.display()
        ))),
        Some(Ok(b)) => Ok(b),
    }
}

/// The node paths the tool itself backs up, so the only ones a restore may write: a backup's
/// `backup.json` is data on disk, and a tampered one must not choose where root writes.
fn restorable_path(ctx: &Context, node_path: &str) -> bool {
    let layout = &ctx.layout;
    let fixed = [
        layout.apiserver_manifest(),
        layout.admin_conf(),
        layout.super_admin_conf(),
        layout.path("/root/.kube/config"),
    ];
    if fixed.iter().any(|p| layout.node_path(p) == node_path) {
        return true;
    }
    // A kubeconfig copy the tool updates: /home/<user>/.kube/config, or $SUDO_USER's.
    let home_copy = node_path
        .strip_prefix("/home/")
        .and_then(|rest| rest.strip_suffix("/.kube/config"))
        .is_some_and(|user| !user.is_empty() && !user.contains('/') && user != "." && user != "..");
    home_copy
        || crate::credentials::copies::candidates(&ctx.layout, &[])
            .iter()
            .any(|p| ctx.layout.node_path(p) == node_path)
}

/// Where a backed-up file goes back, refusing anything the tool would not have backed up: an
/// unknown path, a path that leaves the root through a symlinked directory, a mode that lets
/// others write or execute it, an owner other than the file's own.
fn restore_target(ctx: &Context, backup: &Backup, file: &BackupFile) -> Result<std::path::PathBuf> {
    let tampered = |why: String| {
        Error::Refused(format!(
            "backup {} wants to restore {}: {why}. The tool never backs up such a thing, so backup.json has been \
             changed; nothing was restored. Restore the file by hand if you trust it",
            backup.id, file.path
        ))
    };
    if !restorable_path(ctx, &file.path) {
        return Err(tampered("not a file kubeadm-recover backs up".into()));
    }
    // Where the write lands is confined to the root by construction (node::fs): a symlink in
    // the path resolves inside the node, never on the host.
    let target = ctx.layout.path(&file.path);
    let mode = file.ownership.mode;
    if mode & 0o7133 != 0 {
        return Err(tampered(format!(
            "mode {mode:04o} would let others write it, or make it executable"
        )));
    }
    if let Ok(current) = crate::node::fs::Ownership::of(&ctx.layout, &target)
        && (current.uid, current.gid) != (file.ownership.uid, file.ownership.gid)
    {
        return Err(tampered(format!(
            "owner {}:{} differs from the file's own {}:{}",
            file.ownership.uid, file.ownership.gid, current.uid, current.gid
        )));
    }
    Ok(target)
}

/// The writes that put a backup's restorable files back, and their diffs.
fn restore_writes(ctx: &Context, backup: &Backup) -> Result<(Vec<PlannedWrite>, String)> {
    let mut writes = Vec::new();
    let mut diffs = String::new();
    for file in backup.files.iter().filter(|f| f.restorable) {
        let target = restore_target(ctx, backup, file)?;
        let new = backup
            .read(&ctx.layout, file)
            .map_err(|e| Error::io("cannot read the backup of", &target, e))?;
        let old = match ctx.layout.fs().read(&target) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", &target, e)),
        };
        if old.as_deref() == Some(&new[..]) {
            continue;
        }
        diffs.push_str(&unified_diff(
            &file.path,
            &String::from_utf8_lossy(old.as_deref().unwrap_or_default()),
            &String::from_utf8_lossy(&new),
        ));
        writes.push(PlannedWrite {
            path: target,
            old,
            new,
            ownership: Some(file.ownership),
        });
    }
    Ok((writes, diffs))
}

fn restore(ctx: &Context, id: &str, settings: &ChangeSettings) -> Result<ExitStatus> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    let ran = executor::run(layout, ui, settings, Unfinished::Refuse, || {
        let backup = load(ctx, id)?;
        let problems = backup.verify(&ctx.layout);
        if !problems.is_empty() {
            return Err(Error::Refused(format!(
                "backup {} no longer matches its checksums, so it is not restored:\n  {}",
                backup.dir.display(),
                problems.join("\n  ")
            )));
        }
        let (writes, diff) = restore_writes(ctx, &backup)?;
        let skipped: Vec<String> = backup
            .files
            .iter()
            .filter(|f| !f.restorable)
            .map(|f| f.path.clone())
            .collect();
        if !skipped.is_empty() {
            ui.info(format!(
                "not restored (stray copies moved out of the manifest directory; putting them back would recreate the trap): {}",
                skipped.join(", ")
            ));
        }
        let files: Vec<String> = writes.iter().map(|w| layout.node_path(&w.path)).collect();
        let action = if writes.is_empty() {
            plan::Action::Nothing
        } else {
            plan::Action::Write {
                writes,
                verify: plan::Verify::Nothing,
            }
        };
        let mut plan = Plan::new(
            "backups restore",
            format!("restore backup {}?", backup.id),
            action,
        )
        .step(format!(
            "restore backup {}: {}",
            backup.id,
            files.join(", ")
        ))
        .gate(Gate::Kubelet)
        .gate(Gate::Strays);
        plan.diff = diff;
        Ok((plan, (backup.id, files, skipped)))
    })?;
    let Done {
        plan,
        executed,
        facts: (id, files, not_restored),
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    ui.report(&RestoreResult {
        id,
        changed: !matches!(executed, Executed::Nothing),
        files,
        not_restored,
        dry_run: executed.dry_run(),
        diff: plan.diff.clone(),
        change: executed.report().cloned(),
    })?;
    Ok(ExitStatus::Success)
}
