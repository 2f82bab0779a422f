//! `extend-tokens enable|disable`: back up, patch the one flag, write atomically.
use serde_json::json;

use super::{Context, read_manifest};
use crate::change::{self, PlannedWrite};
use crate::cli::{ChangeOptions, ExtendTokens};
use crate::error::{Error, Result};
use crate::manifest::{Target, edit_extend_tokens};
use crate::restart;
use crate::store::lock;
use crate::ui::unified_diff;

pub fn run(ctx: &Context, action: ExtendTokens) -> Result<()> {
    let (enable, options) = match action {
        ExtendTokens::Enable(o) => (true, o),
        ExtendTokens::Disable(o) => (false, o),
    };
    change_flag(ctx, enable, &options)
}

fn change_flag(ctx: &Context, enable: bool, options: &ChangeOptions) -> Result<()> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    let verb = if enable { "enable" } else { "disable" };
    let done = if enable { "enabled" } else { "disabled" };
    if !options.dry_run {
        layout.require_privileges()?;
    }
    let path = layout.apiserver_manifest();
    let node_path = layout.node_path(&path);
    let text = read_manifest(&path)?;
    let edit =
        edit_extend_tokens(&text, Target::Set(enable)).map_err(|e| Error::manifest(&path, &e))?;
    for note in &edit.notes {
        ui.info(format!("note: {note}"));
    }
    let mut document = json!({
        "action": verb,
        "manifest": node_path,
        "before": edit.before,
        "after": edit.after,
        "changed": edit.changed,
        "dryRun": options.dry_run,
        "notes": edit.notes,
    });
    if !edit.changed {
        ui.report("ExtendTokensResult", document, || {
            format!("token extension already {done} in {node_path}: nothing to do\n")
        });
        return Ok(());
    }
    let diff = unified_diff(&node_path, &text, &edit.new_text);
    document["diff"] = json!(diff);
    let plan = format!(
        "plan: set --service-account-extend-token-expiration={enable} in {node_path}\n  now: {}\n  then: {}\n",
        edit.before.state.describe(),
        edit.after.state.describe()
    );

    if options.dry_run {
        let strays = crate::store::strays::find(&layout.manifests_dir(), &path);
        for stray in &strays {
            ui.warn(format!(
                "a real run will refuse: {}: {}",
                stray.path.display(),
                stray.why
            ));
        }
        ui.report("ExtendTokensResult", document, || {
            format!("{plan}dry run: nothing was written\n{diff}")
        });
        return Ok(());
    }
    if !options.no_wait {
        restart::require_kubelet(layout)?;
    }
    let strays = change::check_strays(layout, options.move_strays)?;
    ui.info(format!("{plan}{diff}"));
    ui.confirm(&format!("{verb} token extension on this node?"))?;
    let _lock = lock::acquire(&layout.lock_file())?;
    let command = format!("extend-tokens {verb}");
    let writes = [PlannedWrite {
        path: path.clone(),
        old: Some(text.into_bytes()),
        new: edit.new_text.into_bytes(),
        ownership: None,
    }];
    if !options.no_wait {
        let proved = restart::apply_and_prove(
            layout,
            ui,
            &command,
            ctx.reason.as_deref(),
            &writes,
            &strays,
            ctx.wait_options(options),
        )?;
        let backup_path = layout.node_path(&proved.applied.backup.dir);
        document["backup"] = json!({ "id": proved.applied.backup.id, "path": backup_path });
        document["movedStrays"] = json!(proved.applied.moved_strays);
        document["restart"] = json!("proved");
        document["before"]["process"] = json!(proved.before);
        document["proof"] = json!(proved.proof);
        ui.report("ExtendTokensResult", document, || {
            format!(
                "token extension {done} and proved: kube-apiserver pid {} runs the new manifest and is healthy ({:.1}s{})\n  backup: {backup_path} (id {})\n",
                proved.proof.pid,
                proved.proof.waited_ms as f64 / 1000.0,
                if proved.proof.nudged { ", after a nudge" } else { "" },
                proved.applied.backup.id
            )
        });
        return Ok(());
    }
    let applied = change::apply(
        layout,
        ui,
        &command,
        ctx.reason.as_deref(),
        &writes,
        &strays,
    )?;
    let backup_path = layout.node_path(&applied.backup.dir);
    document["backup"] = json!({ "id": applied.backup.id, "path": backup_path });
    document["movedStrays"] = json!(applied.moved_strays);
    document["restart"] = json!("pending");
    ui.report("ExtendTokensResult", document, || {
        let mut out = format!("token extension {done} in {node_path}\n  backup: {backup_path} (id {})\n", applied.backup.id);
        for moved in &applied.moved_strays {
            out.push_str(&format!("  moved stray {moved} into the backup\n"));
        }
        out.push_str(
            "  next: the kubelet notices the change (inotify, or its 20 s relist) and restarts kube-apiserver;\n  \
             check with `kubeadm-recover status` or `crictl ps --name kube-apiserver`.\n  \
             undo with `kubeadm-recover backups restore ",
        );
        out.push_str(&applied.backup.id);
        out.push_str(" --no-wait`\n");
        out
    });
    Ok(())
}
