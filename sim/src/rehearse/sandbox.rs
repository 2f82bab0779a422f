//! Where a rehearsal runs: the sandbox directory, the simulator's own subcommands that build and
//! run the node in it, and, for a node of real binaries, the network namespace it lives in.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use kubeadm_recover::cli::RehearseOptions;
use kubeadm_recover::error::{Error, Result};

/// The simulator's binary name, as its messages name it.
pub const SIMULATOR: &str = "kubeadm-recover-sim";

/// The sandbox and what runs in it; dropped, it stops them (and removes a temp dir not kept).
pub struct Sandbox {
    pub root: PathBuf,
    pub kubelet: Option<Child>,
    /// With real binaries: the process holding the node's network namespace.
    pub netns_holder: Option<Child>,
    pub keep: bool,
    temp: Option<tempfile::TempDir>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut kubelet) = self.kubelet.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(kubelet.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = kubelet.wait();
        }
        if let Some(mut holder) = self.netns_holder.take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        if self.keep
            && let Some(temp) = self.temp.take()
        {
            let _ = temp.keep();
        }
    }
}

impl Sandbox {
    /// The directory `--dir` names (checked), or a new temp dir.
    pub fn start(options: &RehearseOptions) -> Result<Sandbox> {
        let (root, temp) = match &options.dir {
            Some(dir) => (check_dir(dir, options.serve)?, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("kubeadm-recover-rehearse-")
                    .tempdir()
                    .map_err(|e| Error::Failed(format!("cannot make a temp dir: {e}")))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        Ok(Sandbox {
            root,
            kubelet: None,
            netns_holder: None,
            keep: options.keep || options.dir.is_some(),
            temp,
        })
    }

    /// A kept sandbox whose node kubeadm laid out (`--kube-bin`): it runs the real binaries.
    pub fn has_real_binaries(&self) -> bool {
        self.root
            .join("var/lib/kubeadm-recover-sim/kubeadm.yaml")
            .is_file()
    }
}

/// `--dir`: a new or empty directory to build in, or (with `--serve`) a sandbox `rehearse`
/// built. Never `/`, never a directory holding anything else: a rehearsal writes a CA key and
/// an admin.conf there.
fn check_dir(dir: &Path, serve: bool) -> Result<PathBuf> {
    if dir.canonicalize().is_ok_and(|d| d == Path::new("/")) {
        return Err(Error::Refused(
            "--dir /: a rehearsal never runs on a real root; give it a directory of its own".into(),
        ));
    }
    let built = dir.join("var/lib/kubeadm-recover-sim").is_dir();
    if serve {
        if !built {
            return Err(Error::Refused(format!(
                "{} is not a sandbox node made by `kubeadm-recover rehearse --keep`",
                dir.display()
            )));
        }
        return Ok(dir.to_path_buf());
    }
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
            true
        }
        Err(e) => return Err(Error::io("cannot read", dir, e)),
    };
    if !empty {
        return Err(Error::Refused(format!(
            "{} is not empty: a rehearsal builds its node only in a new or empty directory \
             (to run a kept sandbox again: --dir {} --serve)",
            dir.display(),
            dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}

/// `--kube-bin`: a directory with the three real binaries, used as root.
pub fn check_kube_bin(dir: &Path) -> Result<PathBuf> {
    let missing: Vec<&str> = ["kubeadm", "kube-apiserver", "etcd"]
        .into_iter()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Refused(format!(
            "--kube-bin {}: {} missing; it needs kubeadm, kube-apiserver and etcd (the official \
             release binaries, or the ones tests/upstream/build.sh builds)",
            dir.display(),
            missing.join(", ")
        )));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Refused(
            "--kube-bin needs root: kubeadm and the pods run chrooted into the sandbox, in a network namespace of their own".into(),
        ));
    }
    dir.canonicalize()
        .map_err(|e| Error::io("cannot read", dir, e))
}

/// Where the rehearsal's commands run: the sandbox root and, for a node of real binaries, its
/// network namespace (kubeadm's fixed ports and advertise address live only there).
pub struct Target {
    pub root: PathBuf,
    pub netns: Option<std::fs::File>,
}

impl Target {
    /// Makes `command` join the node's network namespace, if it has one.
    pub fn enter(&self, command: &mut Command) {
        if let Some(netns) = &self.netns {
            crate::netns::join(command, netns);
        }
    }
}

/// This very binary, whose other subcommands (`node`, `kubelet`, `netns`, `config`, ...) build
/// and run the node: each runs as its own process, as it would from a shell.
pub fn simulator() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find this program's path: {e}")))
}

/// Starts the simulator's network-namespace holder; returns it and its namespace.
pub fn hold_network_namespace() -> Result<(Child, std::fs::File)> {
    let mut holder = Command::new(simulator()?)
        .arg("netns")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Failed(format!("cannot run {SIMULATOR} netns: {e}")))?;
    let mut ready = String::new();
    let stdout = holder.stdout.take().expect("piped");
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready);
    if ready.trim() != "ready" {
        let _ = holder.kill();
        let _ = holder.wait();
        return Err(Error::Failed(format!(
            "{SIMULATOR} netns could not make the node's network namespace (it needs root and iproute2)"
        )));
    }
    let path = format!("/proc/{}/ns/net", holder.id());
    let netns = std::fs::File::open(&path).map_err(|e| Error::Failed(format!("{path}: {e}")))?;
    Ok((holder, netns))
}

/// Runs a simulator subcommand to completion; its stdout.
pub fn simulate(args: &[&OsStr]) -> Result<String> {
    simulate_in(None, args)
}

/// [`simulate`], inside the node's network namespace when `target` has one.
pub fn simulate_in(target: Option<&Target>, args: &[&OsStr]) -> Result<String> {
    let mut command = Command::new(simulator()?);
    command.args(args).stdin(Stdio::null());
    if let Some(target) = target {
        target.enter(&mut command);
    }
    let out = command
        .output()
        .map_err(|e| Error::Failed(format!("cannot run {SIMULATOR}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "{SIMULATOR} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets the simulation's knobs (`KEY=JSON`) while it runs.
pub fn configure(root: &Path, settings: &[&str]) -> Result<()> {
    let mut args: Vec<&OsStr> = vec!["config".as_ref(), "--root".as_ref(), root.as_os_str()];
    args.extend(settings.iter().map(OsStr::new));
    simulate(&args).map(drop)
}

/// Starts the node's simulated kubelet; it dies with us.
pub fn spawn_kubelet(target: &Target) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(simulator()?);
    command
        .arg("kubelet")
        .arg("--root")
        .arg(&target.root)
        .stdin(Stdio::null());
    target.enter(&mut command);
    // SAFETY: prctl is async-signal-safe; it only ties the child's life to ours.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    command
        .spawn()
        .map_err(|e| Error::Failed(format!("starting the simulated kubelet: {e}")))
}

/// When the newest simulated apiserver started serving (the simulation's own log line), to
/// measure how quickly the tool noticed. The tool under test never reads this.
pub fn ready_at_ms(root: &Path) -> Option<i64> {
    let layout = kubeadm_recover::node::NodeLayout::new(Some(root.to_path_buf())).ok()?;
    let (_, newest) = kubeadm_recover::apiserver::logs::latest(&layout)?;
    let text = std::fs::read_to_string(newest).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.rsplit(" at ").next()?.trim().parse().ok())
}

pub fn read_manifest(root: &Path) -> Result<Vec<u8>> {
    let path = root.join("etc/kubernetes/manifests/kube-apiserver.yaml");
    std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))
}
