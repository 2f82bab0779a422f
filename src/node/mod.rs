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

#[derive(Debug, Clone)]
pub struct NodeLayout {
    /// The root, canonical (made so once, here).
    root: PathBuf,
    /// `--root` was given: a sandbox, where running as non-root is fine.
    sandbox: bool,
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
            fs: Arc::new(fs),
        })
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
    pub fn state_dir(&self) -> PathBuf {
        self.path("/var/lib/kubeadm-recover")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.path("/var/lib/kubeadm-recover/lock")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.path("/var/log/kubeadm-recover/audit.jsonl")
    }

    /// Whether the root is the host's own `/`: only then may the tool touch the host's container
    /// runtime (crictl). A sandbox on a real control-plane node must never stop its apiserver.
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Changing a real node needs root; a sandbox (`--root`) does not.
    pub fn require_privileges(&self) -> Result<()> {
        if self.sandbox || nix::unistd::geteuid().is_root() {
            Ok(())
        } else {
            Err(Error::Refused(
                "changing a node needs root: run with sudo (or point --root at a sandbox)".into(),
            ))
        }
    }
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
