//! Getting a kubelet that has not reacted to restart kube-apiserver: stop the container through
//! crictl, or move the manifest out of the kubelet's sight and back. A run killed in between
//! leaves the manifest parked; every command that changes the node puts it back first.
use std::time::{Duration, Instant};

use crate::apiserver::process;
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::Ui;

use super::POLL;

/// Moves the manifest out of the kubelet's sight and back, as kubeadm's documentation
/// recommends for restarting a static pod; or stops the container through crictl.
pub fn nudge(layout: &NodeLayout, ui: &Ui, expected_port: u16, deadline: Instant) {
    if let Some(id) = process::crictl_container_id(layout)
        && let Some(stop) = process::crictl(layout, &["stop", &id])
    {
        ui.info(format!(
            "nudging the kubelet: {}",
            crate::ui::command_line(["crictl", "stop", &id])
        ));
        // crictl's own grace period is 10 s; a signal stops the wait (the change rolls back).
        let _ = crate::runtime::interrupt::run(
            stop.stdout_null().stderr_null(),
            Duration::from_secs(30),
            true,
        );
        return;
    }
    let manifest = layout.apiserver_manifest();
    let parked = layout.parked_manifest();
    ui.info(format!(
        "nudging the kubelet: moving the manifest to {} and back (if this is interrupted: mv {} {})",
        parked.display(),
        parked.display(),
        manifest.display()
    ));
    if layout.fs().rename(&manifest, &parked).is_err() {
        return;
    }
    injected_during_nudge();
    // The kubelet relists every 20 s: give it that and a little, but never past our deadline.
    let deadline = deadline.min(Instant::now() + Duration::from_secs(25));
    // Until the kubelet acts on the removal: the old apiserver stops listening the moment it gets
    // SIGTERM, then lives on for the pod's grace period (30 s in kubeadm's manifest). The kubelet
    // starts the new pod only after that anyway, so the manifest goes back at once rather than
    // staying parked through it (measured on the real node: back after 2–3 s instead of 25).
    // A signal ends the wait at once (the manifest is moved back below, then the change rolls back).
    while Instant::now() < deadline
        && !crate::runtime::interrupt::interrupted()
        && process::find_apiserver(expected_port).is_some()
        && process::listening_on(expected_port)
    {
        std::thread::sleep(POLL);
    }
    if let Err(e) = layout.fs().rename(&parked, &manifest) {
        ui.warn(format!(
            "could not move the manifest back ({e}): run mv {} {}",
            parked.display(),
            manifest.display()
        ));
    }
}

/// `--skip-shutdown-grace`: the old apiserver `pid` has stopped listening and only waits for
/// its open connections; its container (from the process's own cgroup, so never another's) is
/// stopped with no grace. Where that cannot be done the kubelet's grace period runs its course.
pub fn end_shutdown(layout: &NodeLayout, ui: &Ui, pid: i32) -> bool {
    let Some(pod) = process::pod_of(pid) else {
        ui.warn(format!(
            "--skip-shutdown-grace: the container of kube-apiserver pid {pid} is not known here; \
             waiting out its grace period"
        ));
        return false;
    };
    let id = pod.container_id;
    let Some(stop) = process::crictl(layout, &["stop", "--timeout", "0", &id]) else {
        ui.warn("--skip-shutdown-grace needs crictl on this node; waiting out the grace period");
        return false;
    };
    ui.info(format!(
        "the old kube-apiserver (pid {pid}) has stopped listening; skipping the rest of its grace \
         period: {}",
        crate::ui::command_line(["crictl", "stop", "--timeout", "0", &id])
    ));
    match crate::runtime::interrupt::run(
        stop.stdout_null().stderr_capture(),
        Duration::from_secs(20),
        true,
    ) {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            ui.warn(format!(
                "crictl stop failed ({}); waiting out the grace period",
                crate::ui::escape(String::from_utf8_lossy(&out.stderr).trim())
            ));
            false
        }
        Err(e) => {
            ui.warn(format!(
                "crictl stop did not finish ({e}); waiting out the grace period"
            ));
            false
        }
    }
}

/// A run killed during a nudge leaves the manifest parked: every command that changes the node
/// first puts it back (the nudge would have done the same a moment later).
pub fn unpark_manifest(layout: &NodeLayout, ui: &Ui) -> Result<()> {
    let parked = layout.parked_manifest();
    let manifest = layout.apiserver_manifest();
    if !layout.fs().exists(&parked) {
        return Ok(());
    }
    if layout.fs().exists(&manifest) {
        return Err(Error::Refused(format!(
            "{} exists and so does {} (parked by an interrupted nudge): compare them and remove the one that is wrong",
            manifest.display(),
            parked.display()
        )));
    }
    layout
        .fs()
        .rename(&parked, &manifest)
        .map_err(|e| Error::io("cannot move back the parked manifest", &parked, e))?;
    ui.warn(format!(
        "an interrupted nudge had parked the manifest in {}; it is back in {}",
        parked.display(),
        manifest.display()
    ));
    Ok(())
}

/// Only the kill form matters here: the nudge has no error path to take.
fn injected_during_nudge() {
    let _ = nudge_failpoint();
}

fn nudge_failpoint() -> Result<()> {
    crate::failpoint!("during-nudge");
    Ok(())
}
