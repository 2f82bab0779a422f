//! The running apiserver and kubelet, as /proc shows them. Nothing here knows about the
//! simulation: a real kube-apiserver in a container is a host process like any other.
use std::path::Path;

/// Who is serving: changes when, and only when, the apiserver process is replaced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessIdentity {
    pub pid: i32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, unique.
    pub start_ticks: u64,
}

#[derive(Debug, Clone)]
pub struct ApiserverProcess {
    pub identity: ProcessIdentity,
    /// The full command line, program name first.
    pub args: Vec<String>,
}

fn read_cmdline(pid: &str) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

fn start_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

fn processes_named(name: &str) -> Vec<(String, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter_map(|pid| read_cmdline(&pid).map(|args| (pid, args)))
        // A process that has exited but is not reaped yet (a zombie) keeps its name but has no
        // command line: it serves nothing, and with no --secure-port it would pass for 6443's.
        .filter(|(_, args)| !args.is_empty())
        .collect()
}

/// Whether a process shares our network namespace: only then is it the one answering on our
/// loopback and addresses. kubeadm's apiserver is a hostNetwork pod, so on a node it always does;
/// an apiserver in another namespace (another container, another sandbox) serves someone else.
/// Where the link cannot be read, it is not ruled out.
fn in_our_network_namespace(pid: &str) -> bool {
    let ours = std::fs::read_link("/proc/self/ns/net");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => ours == theirs,
        _ => true,
    }
}

/// Makes `command` join the network namespace `netns` (an open `/proc/PID/ns/net`) before it
/// runs: how a rehearsal on real binaries (and the tests) reach a node whose apiserver lives in
/// a namespace of its own. The file must stay open until the command has started.
pub fn join_network_namespace(command: &mut std::process::Command, netns: &std::fs::File) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::process::CommandExt;
    let fd = netns.as_raw_fd();
    // SAFETY: setns only, between fork and exec, on a descriptor the caller keeps open.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(
                BorrowedFd::borrow_raw(fd),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// The `kube-apiserver` process serving `port` (its last `--secure-port`, default 6443) in our
/// network namespace.
pub fn find_apiserver(port: u16) -> Option<ApiserverProcess> {
    processes_named("kube-apiserver")
        .into_iter()
        .filter(|(pid, _)| in_our_network_namespace(pid))
        .find_map(|(pid, args)| {
            let values: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
            let serving = crate::manifest::flags::last_value(&values, "secure-port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(6443u16);
            if serving != port {
                return None;
            }
            Some(ApiserverProcess {
                identity: ProcessIdentity {
                    pid: pid.parse().ok()?,
                    start_ticks: start_ticks(&pid)?,
                },
                args,
            })
        })
}

/// Whether a kubelet runs for this node. On the host's own root any kubelet does. On a sandbox
/// (`--root`), only a kubelet whose `--pod-manifest-path` (or `--root-dir`) IS the sandbox's,
/// compared as canonical paths, so that parallel sandboxes never vouch for each other (a
/// kubelet for `/a/n10` does not run `/a/n1`) and `/a//n1` is `/a/n1`.
pub fn kubelet_running(layout: &crate::node::NodeLayout) -> bool {
    let ours = [layout.manifests_dir(), layout.path("/var/lib/kubelet")];
    processes_named("kubelet").iter().any(|(_, args)| {
        layout.is_host()
            || args.iter().skip(1).any(|arg| {
                ["--pod-manifest-path=", "--root-dir="].iter().any(|flag| {
                    arg.strip_prefix(flag)
                        .and_then(|value| Path::new(value).canonicalize().ok())
                        .is_some_and(|value| ours.contains(&value))
                })
            })
    })
}

/// Seconds since the epoch when a process started, from its start ticks.
pub fn started_unix(identity: &ProcessIdentity) -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(boot + identity.start_ticks as i64 / ticks)
}

/// The CRI container id of the apiserver, where `crictl` is installed, on the host's own root
/// only: the container runtime belongs to the host, never to a `--root` sandbox.
pub fn crictl_container_id(layout: &crate::node::NodeLayout) -> Option<String> {
    if !layout.is_host() {
        return None;
    }
    let out = crate::interrupt::run(
        duct::cmd!("crictl", "ps", "--name", "kube-apiserver", "-q")
            .stderr_null()
            .stdout_capture(),
        std::time::Duration::from_secs(10),
        true,
    )
    .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}
