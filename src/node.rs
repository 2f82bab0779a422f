//! The node's filesystem, under `--root`: every path the tool touches comes from here.
use std::path::{Path, PathBuf};

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
    root: PathBuf,
    /// `--root` was given: a sandbox, where running as non-root is fine.
    sandbox: bool,
}

impl NodeLayout {
    pub fn new(root: Option<PathBuf>) -> Self {
        match root {
            Some(root) => NodeLayout {
                root,
                sandbox: true,
            },
            None => NodeLayout {
                root: PathBuf::from("/"),
                sandbox: false,
            },
        }
    }

    /// An absolute node path (`/etc/kubernetes/...`) under the root.
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
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
    pub fn manifests_dir(&self) -> PathBuf {
        self.path("/etc/kubernetes/manifests")
    }
    pub fn apiserver_manifest(&self) -> PathBuf {
        self.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
    }
    /// kubeadm's own scratch directory, on the same filesystem as the manifests (for rename).
    pub fn tmp_dir(&self) -> PathBuf {
        self.path("/etc/kubernetes/tmp")
    }
    pub fn admin_conf(&self) -> PathBuf {
        self.path("/etc/kubernetes/admin.conf")
    }
    pub fn super_admin_conf(&self) -> PathBuf {
        self.path("/etc/kubernetes/super-admin.conf")
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
        self.root.canonicalize().is_ok_and(|r| r == Path::new("/"))
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
