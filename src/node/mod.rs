//! The node's filesystem, under `--root`: every path the tool touches comes from here, and
//! every file operation on it goes through `fs`, confined to the root.
pub mod fs;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// An external program as the shell finds it: the first `program` file on PATH.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Where the tool keeps its own records of a change: the journal, the backups, the audit log
/// and the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateHome {
    /// A node's (the node's files, root's business): the journal and the lock in
    /// `/var/lib/kubeadm-recover`, the backups in `/etc/kubernetes/tmp` (beside the manifests,
    /// for rename), the audit log in `/var/log/kubeadm-recover`.
    Node,
    /// A person's own (their kubeconfig, on a workstation or a node): all four in one 0700
    /// directory, `$XDG_STATE_HOME/kubeadm-recover`, else `~/.local/state/kubeadm-recover`.
    /// Nothing is created under `/etc` or `/var` of a machine that may not be a node.
    User(PathBuf),
}

#[derive(Debug, Clone)]
pub struct NodeLayout {
    /// The root, canonical (made so once, here).
    root: PathBuf,
    /// `--root` was given: a sandbox, where running as non-root is fine.
    sandbox: bool,
    home: StateHome,
    fs: Arc<fs::NodeFs>,
}

impl NodeLayout {
    /// The node at `root` (`--root`), or the host's own `/`. The root is canonicalised once:
    /// `/a//n1`, `/a/./n1` and a link to it are the same node.
    pub fn new(root: Option<PathBuf>) -> Result<Self> {
        let sandbox = root.is_some();
        let given = root.unwrap_or_else(|| PathBuf::from("/"));
        let fs = fs::NodeFs::open(&given).map_err(|e| {
            Error::Usage(format!(
                "--root {}: {e}; give the directory where the node's filesystem is mounted",
                given.display()
            ))
        })?;
        Ok(NodeLayout {
            root: fs.host_root().to_path_buf(),
            sandbox,
            home: StateHome::Node,
            fs: Arc::new(fs),
        })
    }

    /// The layout whose records go where a change of `file` belongs: a person's own file
    /// (not under `/etc/kubernetes` or `/var/lib/kubelet`) in that person's state directory,
    /// a node file (and anything in a `--root` sandbox) in the node's.
    pub fn for_file(&self, file: &Path) -> Result<NodeLayout> {
        // `~/.kube/config -> /etc/kubernetes/admin.conf` is the node's admin.conf.
        let file = self
            .fs
            .resolved(file)
            .unwrap_or_else(|_| file.to_path_buf());
        if self.sandbox || is_node_file(&self.node_path(&file)) {
            return Ok(self.clone());
        }
        self.with_user_state()
    }

    /// This layout with the records in the invoking user's own state directory. As root, a
    /// directory another user controls (`sudo` keeping `$HOME`) is refused: root must not
    /// take back from there a journal and backups that person could have written.
    pub fn with_user_state(&self) -> Result<NodeLayout> {
        let dir = user_state_dir(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))?;
        if nix::unistd::geteuid().is_root() {
            self.refuse_unless_roots(&dir)?;
        }
        Ok(NodeLayout {
            home: StateHome::User(dir),
            ..self.clone()
        })
    }

    /// As root: every existing directory down to `dir` is root's and writable only by root.
    fn refuse_unless_roots(&self, dir: &Path) -> Result<()> {
        for ancestor in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
            let Ok(meta) = self.fs.symlink_metadata(ancestor) else {
                continue;
            };
            // Sticky or not: a directory others may write can gain the missing part of the
            // path under root's feet, owned by them.
            let foreign = meta.uid != 0 || meta.mode & 0o022 != 0;
            if foreign || meta.kind == fs::Kind::Symlink {
                return Err(Error::Refused(format!(
                    "{}: the state directory {} lies in a directory another user controls (uid {}, mode {:04o}), \
                     where root must not keep its records; run as the kubeconfig's owner without sudo \
                     (a kubeconfig needs no root), or with `sudo -H` so that $HOME is root's",
                    ancestor.display(),
                    dir.display(),
                    meta.uid,
                    meta.mode
                )));
            }
        }
        Ok(())
    }

    /// Where this layout keeps its records.
    pub fn home(&self) -> &StateHome {
        &self.home
    }

    /// This tool's command line for a person to run on this node: `--root DIR` added for a
    /// sandbox, every word quoted (`ui::command_line`).
    pub fn tool_command(&self, args: &[&str]) -> String {
        let root = self.root.display().to_string();
        let mut words = vec!["kubeadm-recover"];
        if !self.is_host() {
            words.extend(["--root", root.as_str()]);
        }
        words.extend(args);
        crate::ui::command_line(words)
    }

    /// The one way to touch a file on the node.
    pub fn fs(&self) -> &fs::NodeFs {
        &self.fs
    }

    /// Whether `--root` was given.
    pub fn is_sandbox(&self) -> bool {
        self.sandbox
    }

    /// An absolute node path (`/etc/kubernetes/...`) under the root.
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// A path a person gave on the command line (`--kubeconfig`, `--copy`), as a host path
    /// inside the root: an absolute one is a node path; a relative one is taken from the
    /// current directory, which must then lie inside the root.
    pub fn given_path(&self, given: &Path) -> Result<PathBuf> {
        if given.is_absolute() {
            return Ok(self.path(&given.to_string_lossy()));
        }
        let cwd = std::env::current_dir().map_err(|e| {
            Error::Usage(format!("{}: the current directory: {e}", given.display()))
        })?;
        let cwd = cwd.canonicalize().unwrap_or(cwd);
        if !cwd.starts_with(&self.root) {
            return Err(Error::Usage(format!(
                "{}: a relative path is taken from the current directory, which is not inside the node root {}; give it as the node sees it, from /",
                given.display(),
                self.root.display()
            )));
        }
        Ok(cwd.join(given))
    }

    /// The node path of a file under the root, for records that must make sense on the node.
    pub fn node_path(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `/etc/kubernetes`: the kubeconfigs, and the directories below.
    pub fn kubernetes_dir(&self) -> PathBuf {
        self.path("/etc/kubernetes")
    }
    /// A kubeconfig kubeadm writes (`admin.conf`, `super-admin.conf`, ...).
    pub fn kubeconfig(&self, file_name: &str) -> PathBuf {
        self.kubernetes_dir().join(file_name)
    }
    pub fn pki_dir(&self) -> PathBuf {
        self.path("/etc/kubernetes/pki")
    }
    /// A certificate under the PKI directory, by kubeadm's name for it (`etcd/server`).
    pub fn pki_certificate(&self, name: &str) -> PathBuf {
        self.pki_dir().join(format!("{name}.crt"))
    }
    /// The cluster CA's certificate, `pki/ca.crt`.
    pub fn cluster_ca(&self) -> PathBuf {
        self.pki_certificate("ca")
    }
    /// The cluster CA's key, `pki/ca.key`: only on a control-plane node that can sign.
    pub fn cluster_ca_key(&self) -> PathBuf {
        self.pki_dir().join("ca.key")
    }
    pub fn manifests_dir(&self) -> PathBuf {
        self.path("/etc/kubernetes/manifests")
    }
    pub fn apiserver_manifest(&self) -> PathBuf {
        self.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
    }
    /// Where an interrupted nudge parks the apiserver manifest (outside the manifest directory,
    /// so that the kubelet stops the pod); every change moves it back first.
    pub fn parked_manifest(&self) -> PathBuf {
        self.tmp_dir()
            .join("kube-apiserver.yaml.kubeadm-recover-nudge")
    }

    /// kubeadm's own scratch directory, on the same filesystem as the manifests (for rename).
    pub fn tmp_dir(&self) -> PathBuf {
        self.path("/etc/kubernetes/tmp")
    }
    pub fn admin_conf(&self) -> PathBuf {
        self.kubeconfig("admin.conf")
    }
    pub fn super_admin_conf(&self) -> PathBuf {
        self.kubeconfig("super-admin.conf")
    }
    /// The journal's directory (and the lock's).
    pub fn state_dir(&self) -> PathBuf {
        match &self.home {
            StateHome::Node => self.path("/var/lib/kubeadm-recover"),
            StateHome::User(dir) => dir.clone(),
        }
    }
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir().join("lock")
    }
    pub fn audit_log(&self) -> PathBuf {
        match &self.home {
            StateHome::Node => self.path("/var/log/kubeadm-recover/audit.jsonl"),
            StateHome::User(dir) => dir.join("audit.jsonl"),
        }
    }
    /// Where the backup directories are.
    pub fn backups_dir(&self) -> PathBuf {
        match &self.home {
            StateHome::Node => self.tmp_dir(),
            StateHome::User(dir) => dir.join("backups"),
        }
    }
    /// Where a new file's bytes are staged before the rename (beside the target instead when
    /// this is another filesystem).
    pub fn staging_dir(&self) -> PathBuf {
        match &self.home {
            StateHome::Node => self.tmp_dir(),
            StateHome::User(dir) => dir.join("tmp"),
        }
    }

    /// Whether the root is the host's own `/`: only then may the tool touch the host's container
    /// runtime (crictl). A sandbox on a real control-plane node must never stop its apiserver.
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Changing a real node needs root; a sandbox (`--root`) and a person's own files do not.
    pub fn require_privileges(&self) -> Result<()> {
        if self.sandbox
            || matches!(self.home, StateHome::User(_))
            || nix::unistd::geteuid().is_root()
        {
            Ok(())
        } else {
            Err(Error::Refused(
                "changing a node needs root: run with sudo (or point --root at a sandbox)".into(),
            ))
        }
    }
}
/// Whether a node path is one of the node's own files (kubeadm's and the kubelet's), as
/// opposed to a person's.
pub fn is_node_file(node_path: &str) -> bool {
    ["/etc/kubernetes/", "/var/lib/kubelet/"]
        .iter()
        .any(|dir| node_path.starts_with(dir))
}

/// `$XDG_STATE_HOME/kubeadm-recover` (an absolute one: the spec ignores a relative one), else
/// `$HOME/.local/state/kubeadm-recover`.
fn user_state_dir(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    let xdg = xdg_state_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(dir) => dir,
        None => home
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".local/state"))
            .ok_or_else(|| {
                Error::Usage(
                    "neither $XDG_STATE_HOME nor $HOME names a directory: set HOME, where \
                     kubeadm-recover keeps the backups of your kubeconfig"
                        .into(),
                )
            })?,
    };
    Ok(base.join("kubeadm-recover"))
}

/// The apiserver manifest's text, or a refusal that says why this node cannot be worked on.
pub fn read_apiserver_manifest(layout: &NodeLayout) -> Result<String> {
    let path = layout.apiserver_manifest();
    let bytes = layout.fs().read(&path).map_err(|e| {
        let parked = layout.parked_manifest();
        if e.kind() == std::io::ErrorKind::NotFound && layout.fs().exists(&parked) {
            Error::Refused(format!(
                "{} is parked at {} by an interrupted nudge; any kubeadm-recover command that changes the node \
                 (resume, revert) moves it back first",
                path.display(),
                parked.display()
            ))
        } else if e.kind() == std::io::ErrorKind::NotFound {
            Error::Refused(format!(
                "{} does not exist: this is not a kubeadm control-plane node (or --root points at the wrong place)",
                path.display()
            ))
        } else {
            Error::Refused(format!("cannot read {}: {e}", path.display()))
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Refused(format!(
            "{}: not UTF-8 text ({e}); the kubelet cannot read it either",
            path.display()
        ))
    })
}
