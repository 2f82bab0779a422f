//! The running apiserver and kubelet, as /proc shows them. Nothing here knows about the
//! simulation: a real kube-apiserver in a container is a host process like any other.
use std::path::PathBuf;

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
        // The kernel keeps 15 bytes of the name (`kube-controller` for the controller-manager):
        // the command line's program name says the rest.
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == &name[..name.len().min(15)])
        })
        .filter_map(|pid| read_cmdline(&pid).map(|args| (pid, args)))
        .filter(|(_, args)| {
            name.len() <= 15
                || args
                    .first()
                    .is_some_and(|program| program.rsplit('/').next() == Some(name))
        })
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

/// The oldest process named `name` in our network namespace (a control-plane component is a
/// hostNetwork pod; the kubelet a host service): who it is and when it started.
pub fn find_component(name: &str) -> Option<ProcessIdentity> {
    processes_named(name)
        .into_iter()
        .filter(|(pid, _)| in_our_network_namespace(pid))
        .filter_map(|(pid, _)| {
            Some(ProcessIdentity {
                pid: pid.parse().ok()?,
                start_ticks: start_ticks(&pid)?,
            })
        })
        .min_by_key(|identity| identity.start_ticks)
}

/// Whether a kubelet runs for this node. On the host's own root any kubelet does but one run
/// for another root: one whose `--pod-manifest-path` or `--root-dir` is another tree's
/// `…/etc/kubernetes/manifests` or `…/var/lib/kubelet` (a sandbox's, the simulator's); a
/// kubelet moved to a bigger disk (`--root-dir=/data/kubelet`) is still the node's. On a
/// sandbox (`--root`), only a kubelet whose `--pod-manifest-path` (or `--root-dir`) IS the
/// sandbox's, compared as canonical paths, so that parallel sandboxes never vouch for each other
/// (a kubelet for `/a/n10` does not run `/a/n1`) and `/a//n1` is `/a/n1`.
pub fn kubelet_running(layout: &crate::node::NodeLayout) -> bool {
    let canonical = |p: PathBuf| p.canonicalize().unwrap_or(p);
    let ours = [
        canonical(layout.manifests_dir()),
        canonical(layout.path("/var/lib/kubelet")),
    ];
    processes_named("kubelet")
        .iter()
        .any(|(_, args)| runs_for(&root_flags(args), &ours, layout.is_host()))
}

/// The running process of a node component by name: the node's own kubelet for `kubelet`,
/// else the oldest process of that name in our network namespace.
pub fn find_node_component(
    layout: &crate::node::NodeLayout,
    name: &str,
) -> Option<ProcessIdentity> {
    if name == "kubelet" {
        find_kubelet(layout)
    } else {
        find_component(name)
    }
}

/// The oldest kubelet that runs this node (`kubelet_running`'s rule: never a sandbox's or a
/// simulator's kubelet on the same host, which could be older and never restart).
pub fn find_kubelet(layout: &crate::node::NodeLayout) -> Option<ProcessIdentity> {
    let canonical = |p: PathBuf| p.canonicalize().unwrap_or(p);
    let ours = [
        canonical(layout.manifests_dir()),
        canonical(layout.path("/var/lib/kubelet")),
    ];
    processes_named("kubelet")
        .into_iter()
        .filter(|(pid, args)| {
            in_our_network_namespace(pid) && runs_for(&root_flags(args), &ours, layout.is_host())
        })
        .filter_map(|(pid, _)| {
            Some(ProcessIdentity {
                pid: pid.parse().ok()?,
                start_ticks: start_ticks(&pid)?,
            })
        })
        .min_by_key(|identity| identity.start_ticks)
}

/// The values of a kubelet's `--pod-manifest-path` and `--root-dir` (`=VALUE` or ` VALUE`),
/// canonical where they exist.
fn root_flags(args: &[String]) -> Vec<PathBuf> {
    let mut values = Vec::new();
    let mut words = args.iter().skip(1);
    while let Some(arg) = words.next() {
        for flag in ["--pod-manifest-path", "--root-dir"] {
            if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
                values.push(PathBuf::from(value));
            } else if arg == flag
                && let Some(value) = words.next()
            {
                values.push(PathBuf::from(value));
            }
        }
    }
    values
        .into_iter()
        .map(|v| v.canonicalize().unwrap_or(v))
        .collect()
}

/// Whether a kubelet with these root flags runs the node whose directories are `ours`.
fn runs_for(named: &[PathBuf], ours: &[PathBuf], host: bool) -> bool {
    if host {
        let another_root = |value: &PathBuf| {
            !ours.contains(value)
                && ["etc/kubernetes/manifests", "var/lib/kubelet"]
                    .iter()
                    .any(|tail| value.ends_with(tail))
        };
        !named.iter().any(another_root)
    } else {
        named.iter().any(|value| ours.contains(value))
    }
}

/// Whether a socket in our network namespace listens on TCP `port` (/proc/net/tcp and tcp6).
/// An apiserver that got SIGTERM stops listening at once and then lives on for up to its pod's
/// grace period: its process alone does not say that the kubelet has acted, this does.
pub fn listening_on(port: u16) -> bool {
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .any(|table| std::fs::read_to_string(table).is_ok_and(|text| listens(&text, port)))
}

/// Who listens on TCP `port` in our network namespace where `bind` (the apiserver's
/// `--bind-address`; `None`: every address) would have to listen: the pid and name of a
/// process holding that socket (its inode, looked up in every process's descriptors). A
/// listener on another address (a load balancer on the VIP) is not in the way.
pub fn port_holder(port: u16, bind: Option<std::net::IpAddr>) -> Option<(i32, String)> {
    let inodes: Vec<String> = ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| listening_inodes(&text, port, bind))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(|fd| fd.ok()).any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
                })
            })
        })
        .map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_else(|_| "?".into());
            (pid, name)
        })
}

/// The inodes of the table's LISTEN rows with local port `port` whose address clashes with
/// `bind`: the same address, or either one every address.
fn listening_inodes(table: &str, port: u16, bind: Option<std::net::IpAddr>) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter(|row| listens(&format!("header\n{row}"), port))
        .filter(|row| {
            let local = row
                .split_whitespace()
                .nth(1)
                .and_then(|l| l.split(':').next());
            match (local.and_then(table_address), bind) {
                (Some(listener), Some(bind)) => {
                    listener.is_unspecified() || bind.is_unspecified() || listener == bind
                }
                _ => true,
            }
        })
        .filter_map(|row| row.split_whitespace().nth(9).map(str::to_string))
        .collect()
}

/// An address as /proc/net/tcp{,6} writes it: the bytes of each 32-bit word in host (little
/// endian) order, in hex.
fn table_address(hex: &str) -> Option<std::net::IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).map(u32::swap_bytes))
        .collect::<Result<_, _>>()
        .ok()?;
    match words.as_slice() {
        [v4] => Some(std::net::Ipv4Addr::from(*v4).into()),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            Some(v6.to_ipv4_mapped().map_or(v6.into(), Into::into))
        }
        _ => None,
    }
}

/// The table's LISTEN (state 0A) rows with local port `port`.
fn listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|row| {
        let mut fields = row.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        state == Some("0A")
            && local
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
}

/// A running process's command line, program name first.
pub fn arguments(identity: &ProcessIdentity) -> Option<Vec<String>> {
    let pid = identity.pid.to_string();
    // The same process still: a pid reused since is someone else.
    (start_ticks(&pid)? == identity.start_ticks).then_some(())?;
    read_cmdline(&pid)
}

/// Now, in the clock a process's start is counted in (clock ticks since boot, as
/// /proc/PID/stat's field 22): "started after this moment" compared without the whole-second
/// rounding of wall-clock times.
pub fn boot_ticks_now() -> Option<u64> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some((seconds * ticks as f64) as u64)
}

/// Whether a process started at or after `moment` (a file's change time, say), compared in the
/// clock the start is counted in (ticks since boot, 10 ms) rather than in whole wall-clock
/// seconds: `started_unix` can be up to two seconds early (the boot time and the ticks are both
/// rounded down), and a component restarted a second after its file was written would then
/// look as if it had started before it.
pub fn started_since(identity: &ProcessIdentity, moment: std::time::SystemTime) -> Option<bool> {
    let now_ticks = boot_ticks_now()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let ago = std::time::SystemTime::now()
        .duration_since(moment)
        .unwrap_or_default();
    let moment_ticks = now_ticks.saturating_sub((ago.as_secs_f64() * ticks as f64) as u64);
    Some(identity.start_ticks >= moment_ticks)
}

/// Seconds since the epoch when a process started, from its start ticks (for showing; to
/// compare with a moment, `started_since`).
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

/// The pod and container a process runs in, from its cgroup path as the kubelet names it:
/// `/kubepods[/<qos>]/pod<UID>/<container id>` (cgroupfs) or
/// `…/kubepods-<qos>-pod<UID>.slice/cri-containerd-<id>.scope` (systemd). A static pod's UID IS
/// its config hash. This is the truth right after an outage, when the mirror pod in the API can
/// still show the old hash for a minute (measured on the real kubelet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOfProcess {
    pub uid: String,
    pub container_id: String,
}

pub fn pod_of(pid: i32) -> Option<PodOfProcess> {
    pod_in_cgroup(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

fn pod_in_cgroup(text: &str) -> Option<PodOfProcess> {
    text.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        let mut parts = path.rsplit('/');
        let container = parts.next()?;
        let pod = parts.next()?;
        let uid = match pod.strip_suffix(".slice") {
            Some(slice) => slice.rsplit_once("-pod")?.1.replace('_', "-"),
            None => pod.strip_prefix("pod")?.to_string(),
        };
        let container_id = container
            .strip_suffix(".scope")
            .map_or(container, |scope| scope.rsplit('-').next().unwrap_or(scope));
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        (hex(&uid) && hex(container_id) && path.contains("kubepods")).then(|| PodOfProcess {
            uid,
            container_id: container_id.to_string(),
        })
    })
}

/// `crictl` with the node's runtime endpoint: `/etc/crictl.yaml` when it exists (crictl reads it
/// itself), else the kubelet's own (`containerRuntimeEndpoint` in /var/lib/kubelet/config.yaml,
/// or `--container-runtime-endpoint` in kubeadm-flags.env), so that crictl asks the runtime the
/// kubelet uses instead of trying its default list of sockets. Host only: the container runtime
/// belongs to the host, never to a `--root` sandbox.
pub fn crictl(layout: &crate::node::NodeLayout, args: &[&str]) -> Option<duct::Expression> {
    if !layout.is_host() {
        return None;
    }
    let mut full: Vec<String> = Vec::new();
    if !layout.fs().exists(&layout.path("/etc/crictl.yaml"))
        && let Some(endpoint) = kubelet_runtime_endpoint(layout)
    {
        full.extend(["--runtime-endpoint".to_string(), endpoint]);
    }
    full.extend(args.iter().map(|a| a.to_string()));
    Some(duct::cmd("crictl", full))
}

/// The runtime endpoint the kubelet is configured with, if the node says.
pub fn kubelet_runtime_endpoint(layout: &crate::node::NodeLayout) -> Option<String> {
    let config = layout
        .fs()
        .read_to_string(&layout.path("/var/lib/kubelet/config.yaml"))
        .ok();
    let from_config = config.as_deref().and_then(|text| {
        text.lines().find_map(|line| {
            line.strip_prefix("containerRuntimeEndpoint:")
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        })
    });
    let from_flags = || {
        let flags = layout
            .fs()
            .read_to_string(&layout.path("/var/lib/kubelet/kubeadm-flags.env"))
            .ok()?;
        flags
            .split(|c: char| c.is_whitespace() || c == '"')
            .find_map(|word| word.strip_prefix("--container-runtime-endpoint="))
            .map(str::to_string)
    };
    from_config.filter(|e| !e.is_empty()).or_else(from_flags)
}

/// The CRI container id of the running apiserver, where `crictl` is installed (host only).
pub fn crictl_container_id(layout: &crate::node::NodeLayout) -> Option<String> {
    running_container(layout, "kube-apiserver", true)
}

/// The running container of the static pod container `name` (crictl's `--name` is a pattern:
/// anchored here so that `etcd` is not also `etcd-backup`).
pub fn running_container(
    layout: &crate::node::NodeLayout,
    name: &str,
    stop_at_signal: bool,
) -> Option<String> {
    let anchored = format!("^{name}$");
    let out = crate::runtime::interrupt::run(
        crictl(
            layout,
            &["ps", "--name", &anchored, "--state", "running", "-q"],
        )?
        .stderr_null()
        .stdout_capture(),
        std::time::Duration::from_secs(10),
        stop_at_signal,
    )
    .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_compared_with_a_moment_to_the_tick_not_to_the_second() {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
        let now = std::time::SystemTime::now();
        // Started 0.3 s ago: after a file changed 1 s ago, before one changed 0.1 s ago.
        let started = ProcessIdentity {
            pid: 1,
            start_ticks: boot_ticks_now().unwrap() - 3 * ticks / 10,
        };
        let ago = |ms| now - std::time::Duration::from_millis(ms);
        assert_eq!(started_since(&started, ago(1000)), Some(true));
        assert_eq!(started_since(&started, ago(100)), Some(false));
        assert_eq!(
            started_since(&started, now + std::time::Duration::from_secs(5)),
            Some(false)
        );
    }

    fn args(words: &[&str]) -> Vec<String> {
        std::iter::once("kubelet")
            .chain(words.iter().copied())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn on_the_host_a_kubelet_counts_unless_it_runs_another_roots_tree() {
        let ours = [
            PathBuf::from("/etc/kubernetes/manifests"),
            PathBuf::from("/var/lib/kubelet"),
        ];
        let host = |words: &[&str]| runs_for(&root_flags(&args(words)), &ours, true);
        assert!(
            host(&["--config=/var/lib/kubelet/config.yaml"]),
            "kubeadm's"
        );
        assert!(
            host(&["--root-dir=/data/kubelet"]),
            "moved to a bigger disk"
        );
        assert!(host(&["--root-dir", "/var/lib/kubelet"]));
        assert!(
            !host(&["--root-dir=/tmp/.tmpA/var/lib/kubelet"]),
            "a simulator's"
        );
        assert!(!host(&[
            "--pod-manifest-path",
            "/srv/n1/etc/kubernetes/manifests"
        ]));
    }

    #[test]
    fn proc_net_addresses_read_back() {
        assert_eq!(
            table_address("0100007F"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(table_address("00000000"), Some("0.0.0.0".parse().unwrap()));
        assert_eq!(
            table_address("00000000000000000000000001000000"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            table_address("0000000000000000FFFF00000A64C6C6"),
            Some("198.198.100.10".parse().unwrap())
        );
        let row = "   0: 0A64C6C6:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0";
        let table = format!("header\n{row}\n");
        let at = |bind: &str| listening_inodes(&table, 6443, Some(bind.parse().unwrap()));
        assert_eq!(at("198.198.100.10"), ["4242"], "the same address");
        assert_eq!(at("0.0.0.0"), ["4242"], "the apiserver wants every address");
        assert!(at("10.0.0.1").is_empty(), "a listener on another address");
    }

    #[test]
    fn in_a_sandbox_only_its_own_kubelet_counts() {
        let ours = [
            PathBuf::from("/a/n1/etc/kubernetes/manifests"),
            PathBuf::from("/a/n1/var/lib/kubelet"),
        ];
        let sandbox = |words: &[&str]| runs_for(&root_flags(&args(words)), &ours, false);
        assert!(sandbox(&["--root-dir=/a/n1/var/lib/kubelet"]));
        assert!(!sandbox(&["--root-dir=/a/n10/var/lib/kubelet"]));
        assert!(
            !sandbox(&["--config=/var/lib/kubelet/config.yaml"]),
            "the host's"
        );
    }
}
