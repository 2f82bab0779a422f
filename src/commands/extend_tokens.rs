//! `extend-tokens enable|disable`: back up, patch the one flag, write atomically, prove the
//! restart (or roll back), all journaled.
use serde_json::json;

use super::{Context, read_manifest};
use crate::change::{self, PlannedWrite};
use crate::cli::{ChangeOptions, ExtendTokens};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, Target, edit_extend_tokens};
use crate::restart::{self, Change};
use crate::store::lock;
use crate::ui::unified_diff;
use crate::{interrupt, journal, migration};

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
        crate::restart::unpark_manifest(layout, ui)?;
        journal::refuse_if_unfinished(layout)?;
    }
    let path = layout.apiserver_manifest();
    let node_path = layout.node_path(&path);
    let text = read_manifest(layout)?;
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
            format!("{plan}dry run: nothing was written\n") + &diff
        });
        return Ok(());
    }
    if !options.no_wait {
        restart::require_kubelet(layout)?;
    }
    let strays = change::check_strays(layout, options.move_strays)?;
    let manifest = Manifest::parse(&text).map_err(|e| Error::manifest(&path, &e))?;
    if !enable {
        // Turning extension off ends the grace for stale tokens: check who still uses them.
        let check = migration::check(layout, &manifest, None, options.stale_window);
        migration::confirm_or_refuse(ui, &check, options.accept_stale_tokens)?;
    }
    ui.info(format!("{plan}{diff}"));
    ui.confirm(&format!("{verb} token extension on this node?"))?;
    let _lock = lock::acquire(&layout.lock_file())?;
    interrupt::install();
    let stale_tokens_at_start = if enable {
        migration::stale_tokens_total(layout, &manifest)
    } else {
        None
    };
    let command = format!("extend-tokens {verb}");
    let writes = [PlannedWrite {
        path: path.clone(),
        old: Some(text.into_bytes()),
        new: edit.new_text.into_bytes(),
        ownership: None,
    }];
    let outcome = restart::execute(
        layout,
        ui,
        Change {
            command: &command,
            reason: ctx.reason.as_deref(),
            writes: &writes,
            strays: &strays,
            wait: (!options.no_wait).then(|| ctx.wait_options(options)),
            on_interrupt: options.on_interrupt,
            reverts: None,
            stale_tokens_at_start,
        },
    )?;
    let backup_path = layout.node_path(&outcome.applied.backup.dir);
    document["session"] = json!(outcome.session);
    document["backup"] = json!({ "id": outcome.applied.backup.id, "path": backup_path });
    document["movedStrays"] = json!(outcome.applied.moved_strays);
    document["restart"] = json!(if outcome.proof.is_some() {
        "proved"
    } else {
        "pending"
    });
    if let Some(proof) = &outcome.proof {
        document["before"]["process"] = json!(outcome.before);
        document["proof"] = json!(proof);
    }
    ui.report("ExtendTokensResult", document, || {
        let mut out = match &outcome.proof {
            Some(proof) => format!(
                "token extension {done} and proved: kube-apiserver pid {} runs the new manifest and is healthy ({:.1}s{})\n",
                proof.pid,
                proof.waited_ms as f64 / 1000.0,
                if proof.nudged { ", after a nudge" } else { "" }
            ),
            None => format!(
                "token extension {done} in {node_path}\n  next: the kubelet notices the change (inotify, or its 20 s relist) and restarts kube-apiserver;\n  \
                 check with `kubeadm-recover status` or `crictl ps --name kube-apiserver`.\n"
            ),
        };
        out.push_str(&format!("  backup: {backup_path} (id {})\n", outcome.applied.backup.id));
        for moved in &outcome.applied.moved_strays {
            out.push_str(&format!("  moved stray {moved} into the backup\n"));
        }
        out.push_str("  undo with: kubeadm-recover revert\n");
        out
    });
    Ok(())
}
