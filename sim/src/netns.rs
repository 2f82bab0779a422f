//! A network namespace for a node laid out by the real kubeadm. kubeadm will not advertise a
//! loopback address, and the real etcd and kube-apiserver listen on the advertise address at
//! fixed ports (2379, 2380, 6443): each real node gets a namespace of its own, with that address on
//! a veth pair that leads nowhere, so nothing it does reaches another host or another node.
//! The rehearsal and the tests run commands inside it with [`join`].
use std::process::Command;

use nix::sched::{CloneFlags, unshare};

/// The advertise address inside every node's namespace (TEST-NET-1, never routed).
pub const ADDRESS: &str = "192.0.2.10";

/// Moves the calling thread (and so every child it starts afterwards) into a new network
/// namespace with loopback up and [`ADDRESS`] on a veth pair, with a default route through it
/// (kube-apiserver and kubeadm look for one).
pub fn enter_new() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot create a network namespace (needs root): {e}"))?;
    let steps: [&[&str]; 6] = [
        &["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        &["addr", "add", &format!("{ADDRESS}/24"), "dev", "v0"],
        &["link", "set", "lo", "up"],
        &["link", "set", "v0", "up"],
        &["link", "set", "v1", "up"],
        &[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.1",
            "dev",
            "v0",
            "onlink",
        ],
    ];
    for args in steps {
        let status = Command::new("ip")
            .args(args)
            .status()
            .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
        if !status.success() {
            return Err(format!("`ip {}` failed ({status})", args.join(" ")));
        }
    }
    Ok(())
}

/// Makes `command` join the network namespace `netns` (an open `/proc/PID/ns/net`) before it
/// runs: how a rehearsal on real binaries (and the tests) reach a node whose apiserver lives in
/// a namespace of its own. The file must stay open until the command has started.
pub fn join(command: &mut Command, netns: &std::fs::File) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::process::CommandExt;
    let fd = netns.as_raw_fd();
    // SAFETY: setns only, between fork and exec, on a descriptor the caller keeps open.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
}
