//! `--revert-after`: a revert that is not forgotten. Where the node has systemd, a transient
//! timer (`systemd-run`, named after the session, in `systemctl list-timers`) runs
//! `kubeadm-recover revert --session ID` at the deadline, and every hour after that while the
//! revert refuses (stale tokens still in use: it logs why and leaves the node as it is). A
//! successful revert, or `extend-tokens disable`, stops the timer.
use std::path::{Path, PathBuf};

use crate::change::journal::{Journal, Recorder, RevertSchedule};
use crate::error::{Error, Result};
use crate::node::{NodeLayout, on_path};
use crate::ui::Ui;

/// How long systemd-run or systemctl may take to answer.
const SYSTEMD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether this node's revert may be left to systemd. Only the host's own systemd runs timers,
/// and it must never be given one for a `--root` sandbox (it would keep firing after the
/// sandbox is gone, as the container runtime is never touched for one). Test builds may allow
/// it for the tests' fake systemd.
pub fn uses_systemd(layout: &NodeLayout) -> bool {
    layout.is_host()
        || (cfg!(feature = "test-clock")
            && std::env::var_os("KUBEADM_RECOVER_TEST_SANDBOX_SYSTEMD").is_some())
}

/// The binary a root timer will run later, refused unless only root can change it: the file
/// and every directory above it owned by root and writable by no one else (or sticky). Otherwise whoever
/// may write there chooses what root runs at the deadline.
pub fn runnable_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Refused(format!("--revert-after: cannot find this binary: {e}")))?;
    let install = "install it where only root can write (install -o root -g root -m 0755 kubeadm-recover /usr/local/sbin/) and run it from there, or revert by hand without --revert-after";
    for path in std::iter::once(exe.as_path()).chain(exe.ancestors().skip(1)) {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| Error::Refused(format!("--revert-after: {}: {e}", path.display())))?;
        // A root-owned sticky directory (/tmp) is fine above it: others may add entries there
        // but never rename or remove root's.
        let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky_dir) {
            return Err(Error::Refused(format!(
                "--revert-after: a root timer would run {}, but {} is {} (owner uid {}, mode {:04o}): refused.\n  what to do: {install}",
                exe.display(),
                path.display(),
                if meta.uid() != 0 {
                    "not root's"
                } else {
                    "writable by others"
                },
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(exe)
}

/// The timer's unit name for a session: only the characters systemd allows, no dots.
pub fn unit_name(session: &str) -> String {
    let safe: String = session
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("kubeadm-recover-revert-{safe}")
}

/// The command the timer runs: this binary, reverting exactly this session, unattended.
pub fn revert_command(layout: &NodeLayout, exe: &Path, session: &str) -> Vec<String> {
    let mut command = vec![exe.display().to_string()];
    if !layout.is_host() {
        command.push(format!("--root={}", layout.root().display()));
    }
    command.extend(
        [
            "revert",
            "--session",
            session,
            "--fleet-lease",
            "--yes",
            "--non-interactive",
            "--reason",
            "scheduled by --revert-after",
        ]
        .map(String::from),
    );
    command
}

/// `2026-12-06 07:44:00 UTC`, as `OnCalendar=` reads it.
fn calendar(unix: i64) -> String {
    crate::runtime::clock::rfc3339(unix)
        .trim_end_matches('Z')
        .replace('T', " ")
        + " UTC"
}

/// Schedules the revert of `session` at `deadline_unix`; says what it did.
pub fn schedule(layout: &NodeLayout, ui: &Ui, session: &str, deadline_unix: i64) -> RevertSchedule {
    let deadline = crate::runtime::clock::rfc3339(deadline_unix);
    let mut scheduled = RevertSchedule {
        deadline: deadline.clone(),
        deadline_unix,
        timer: None,
        note: None,
    };
    if !uses_systemd(layout) {
        let note = format!(
            "{} is a --root sandbox, not this host's node: no timer is left on the host's systemd, so nothing will revert it by itself; run `{}` by {deadline}",
            layout.root().display(),
            layout.tool_command(&["revert"])
        );
        ui.warn(&note);
        scheduled.note = Some(note);
        return scheduled;
    }
    let exe = match runnable_binary() {
        Ok(exe) => exe,
        Err(e) => {
            let note = format!("{e}; run `kubeadm-recover revert` by {deadline}");
            ui.warn(&note);
            scheduled.note = Some(note);
            return scheduled;
        }
    };
    if on_path("systemd-run").is_none() {
        let note = format!(
            "this node has no systemd (no systemd-run), so nothing will revert it by itself: run `kubeadm-recover revert` by {deadline}; `status` shows the deadline"
        );
        ui.warn(&note);
        scheduled.note = Some(note);
        return scheduled;
    }
    let unit = unit_name(session);
    let mut args = vec![
        format!("--unit={unit}"),
        format!("--description=kubeadm-recover: revert session {session} (--revert-after)"),
        format!("--on-calendar={}", calendar(deadline_unix)),
        // While the revert refuses (stale tokens still in use), try again every hour.
        "--on-unit-active=1h".into(),
        "--timer-property=AccuracySec=1min".into(),
        "--".into(),
    ];
    args.extend(revert_command(layout, &exe, session));
    // Bounded like every wait: a systemd that does not answer is a note, never a hang.
    match crate::runtime::interrupt::run(
        duct::cmd("systemd-run", &args)
            .stderr_to_stdout()
            .stdout_capture(),
        SYSTEMD_DEADLINE,
        false,
    ) {
        Ok(out) if out.status.success() => {
            ui.info(format!(
                "revert scheduled for {deadline} by the timer {unit}.timer ({}); it retries hourly while stale tokens are in use",
                crate::ui::command_line(["systemctl", "list-timers", &format!("{unit}.timer")])
            ));
            scheduled.timer = Some(format!("{unit}.timer"));
        }
        Ok(out) => {
            let note = format!(
                "systemd-run could not schedule the revert ({}): {}; run `kubeadm-recover revert` by {deadline}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            );
            ui.warn(&note);
            scheduled.note = Some(note);
        }
        Err(e) => {
            let note =
                format!("cannot run systemd-run ({e}); run `kubeadm-recover revert` by {deadline}");
            ui.warn(&note);
            scheduled.note = Some(note);
        }
    }
    scheduled
}

/// The schedule as it stands now: a timer the journal names but systemd no longer has (a
/// transient timer does not survive a reboot) is said to be gone, never reported as scheduled.
pub fn live(layout: &NodeLayout, schedule: &RevertSchedule) -> RevertSchedule {
    let Some(timer) = &schedule.timer else {
        return schedule.clone();
    };
    if !uses_systemd(layout) || on_path("systemctl").is_none() {
        return schedule.clone();
    }
    let active = crate::runtime::interrupt::run(
        duct::cmd("systemctl", ["is-active", "--quiet", timer.as_str()])
            .stderr_null()
            .stdout_null(),
        SYSTEMD_DEADLINE,
        true,
    );
    match active {
        Ok(out) if out.status.success() => schedule.clone(),
        Ok(_) => RevertSchedule {
            timer: None,
            note: Some(format!(
                "the timer {} is gone (systemd has no such timer: a transient timer does not survive a reboot); nothing will revert by itself: run `{}` by {}, or schedule it again",
                crate::ui::escape(timer),
                layout.tool_command(&["revert"]),
                schedule.deadline
            )),
            ..schedule.clone()
        },
        // systemd did not answer: what the journal says stands.
        Err(_) => schedule.clone(),
    }
}

/// Stops the scheduled revert timers in the journal — of session `only`, or all — after a revert,
/// or turning extension off by hand: the change it would undo is gone. Failing to stop one is a
/// warning, not an error.
pub fn cancel(layout: &NodeLayout, ui: &Ui, only: Option<&str>) {
    let Ok(journal) = Journal::load(layout) else {
        return;
    };
    for session in &journal.sessions {
        if only.is_some_and(|id| id != session.id) {
            continue;
        }
        let Some(schedule) = &session.revert_after else {
            continue;
        };
        let Some(timer) = &schedule.timer else {
            continue;
        };
        if !uses_systemd(layout) {
            continue;
        }
        let stopped = on_path("systemctl").is_some()
            && crate::runtime::interrupt::run(
                duct::cmd("systemctl", ["stop", timer.as_str()])
                    .stderr_null()
                    .stdout_null(),
                SYSTEMD_DEADLINE,
                false,
            )
            .is_ok_and(|o| o.status.success());
        if !stopped {
            ui.warn(stop_by_hand(timer));
        } else {
            ui.info(format!("stopped the scheduled revert {timer}"));
        }
        let timer = timer.clone();
        let _ = Recorder::attach(layout, &session.id).update(|s| {
            if let Some(r) = s.revert_after.as_mut() {
                r.timer = None;
                r.note = Some(format!(
                    "{timer} was stopped: the change was reverted or turned off"
                ));
            }
        });
    }
}

/// What to say when a timer could not be stopped. The unit name comes from the journal: quoted.
fn stop_by_hand(timer: &str) -> String {
    format!(
        "could not stop the scheduled revert {}: stop it with `{}`",
        crate::ui::escape(timer),
        crate::ui::command_line(["systemctl", "stop", timer])
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timer_to_stop_by_hand_is_named_in_a_quoted_command() {
        assert_eq!(
            super::stop_by_hand("x; rm -rf /.timer"),
            "could not stop the scheduled revert x; rm -rf /.timer: stop it with `systemctl stop 'x; rm -rf /.timer'`"
        );
    }

    #[test]
    fn unit_names_and_calendar_times_are_what_systemd_reads() {
        assert_eq!(
            super::unit_name("20261129T064828.520Z-extend-tokens-enable"),
            "kubeadm-recover-revert-20261129T064828-520Z-extend-tokens-enable"
        );
        assert_eq!(super::calendar(1_800_000_000), "2027-01-15 08:00:00 UTC");
    }
}
