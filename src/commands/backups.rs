//! `backups list` and `backups restore`.
use serde_json::json;

use super::Context;
use crate::change::{self, PlannedWrite};
use crate::cli::{Backups, ChangeOptions};
use crate::error::{Error, Result};
use crate::restart::{self, Change};
use crate::store::backup::{self, Backup};
use crate::store::lock;
use crate::ui::unified_diff;
use crate::{interrupt, journal};

pub fn run(ctx: &Context, action: Backups) -> Result<()> {
    match action {
        Backups::List => list(ctx),
        Backups::Restore { id, options } => restore(ctx, &id, &options),
    }
}

fn list(ctx: &Context) -> Result<()> {
    let layout = &ctx.layout;
    let mut items = Vec::new();
    let mut text = String::new();
    for entry in backup::list(layout) {
        match entry {
            Ok(b) => {
                let problems = b.verify();
                text.push_str(&format!(
                    "{}  {}  {}{}\n",
                    b.id,
                    b.operation,
                    b.files
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!("  CHECKSUM MISMATCH: {}", problems.join("; "))
                    }
                ));
                items.push(json!({
                    "id": b.id, "created": b.created, "operation": b.operation, "reason": b.reason,
                    "path": layout.node_path(&b.dir), "files": b.files, "checksumsOk": problems.is_empty(),
                    "problems": problems,
                }));
            }
            Err((dir, e)) => {
                text.push_str(&format!("{}: unreadable: {e}\n", dir.display()));
                items.push(json!({ "path": layout.node_path(&dir), "error": e }));
            }
        }
    }
    if items.is_empty() {
        text = format!("no backups in {}\n", layout.tmp_dir().display());
    }
    ctx.ui
        .report("BackupList", json!({ "backups": items }), || text);
    Ok(())
}

fn load(ctx: &Context, id: &str) -> Result<Backup> {
    match backup::find(&ctx.layout, id) {
        None => Err(Error::Usage(format!(
            "no backup {id} in {}: see `kubeadm-recover backups list`",
            ctx.layout.tmp_dir().display()
        ))),
        Some(Err((dir, e))) => Err(Error::Refused(format!(
            "backup {} is unreadable: {e}",
            dir.display()
        ))),
        Some(Ok(b)) => Ok(b),
    }
}

fn restore(ctx: &Context, id: &str, options: &ChangeOptions) -> Result<()> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    if !options.dry_run {
        layout.require_privileges()?;
        restart::unpark_manifest(layout, ui)?;
    }
    let backup = load(ctx, id)?;
    let problems = backup.verify();
    if !problems.is_empty() {
        return Err(Error::Refused(format!(
            "backup {} no longer matches its checksums, so it is not restored:\n  {}",
            backup.dir.display(),
            problems.join("\n  ")
        )));
    }
    let mut writes = Vec::new();
    let mut diffs = String::new();
    for file in backup.files.iter().filter(|f| f.restorable) {
        let target = layout.path(&file.path);
        let new = backup
            .read(file)
            .map_err(|e| Error::io("cannot read the backup of", &target, e))?;
        let old = match std::fs::read(&target) {
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
    let skipped: Vec<&str> = backup
        .files
        .iter()
        .filter(|f| !f.restorable)
        .map(|f| f.path.as_str())
        .collect();
    let mut document = json!({
        "id": backup.id,
        "files": writes.iter().map(|w| layout.node_path(&w.path)).collect::<Vec<_>>(),
        "notRestored": skipped,
        "changed": !writes.is_empty(),
        "dryRun": options.dry_run,
        "diff": diffs,
    });
    if !skipped.is_empty() {
        ui.info(format!(
            "not restored (stray copies moved out of the manifest directory; putting them back would recreate the trap): {}",
            skipped.join(", ")
        ));
    }
    if writes.is_empty() {
        ui.report("RestoreResult", document, || {
            format!(
                "the node already matches backup {}: nothing to do\n",
                backup.id
            )
        });
        return Ok(());
    }
    if options.dry_run {
        ui.report("RestoreResult", document, || {
            format!("dry run: nothing was written\n{diffs}")
        });
        return Ok(());
    }
    let touches_manifest = writes.iter().any(|w| w.path == layout.apiserver_manifest());
    if touches_manifest && !options.no_wait {
        restart::require_kubelet(layout)?;
    }
    journal::refuse_if_unfinished(layout)?;
    let strays = change::check_strays(layout, options.move_strays)?;
    ui.info(&diffs);
    ui.confirm(&format!("restore backup {}?", backup.id))?;
    let _lock = lock::acquire(&layout.lock_file())?;
    let applied = if touches_manifest {
        interrupt::install();
        let outcome = restart::execute(
            layout,
            ui,
            Change {
                command: "backups restore",
                reason: ctx.reason.as_deref(),
                writes: &writes,
                strays: &strays,
                wait: (!options.no_wait).then(|| ctx.wait_options(options)),
                on_interrupt: options.on_interrupt,
                reverts: None,
                stale_tokens_at_start: None,
            },
        )?;
        document["session"] = json!(outcome.session);
        document["restart"] = json!(if outcome.proof.is_some() {
            "proved"
        } else {
            "pending"
        });
        document["proof"] = json!(outcome.proof);
        outcome.applied
    } else {
        document["restart"] = json!("notNeeded");
        change::apply(
            layout,
            ui,
            "backups restore",
            ctx.reason.as_deref(),
            &writes,
            &strays,
        )?
    };
    let pre_restore = layout.node_path(&applied.backup.dir);
    document["backup"] = json!({ "id": applied.backup.id, "path": pre_restore });
    ui.report("RestoreResult", document, || {
        format!(
            "restored backup {}\n  the files it replaced are in {pre_restore} (id {})\n",
            backup.id, applied.backup.id
        )
    });
    Ok(())
}
