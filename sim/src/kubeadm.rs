//! A node laid out by the real kubeadm: its certificates, kubeconfigs and static pod manifests
//! (etcd and kube-apiserver) for an explicit Kubernetes version, written with `--rootfs` into
//! the sandbox. The simulated kubelet then runs the pods from the real binaries
//! (`SimConfig::kube_bin`), in the node's own network namespace (`netns`).
use std::path::Path;
use std::process::Command;

use super::config::SimConfig;
use super::netns::ADDRESS;
use kubeadm_recover::credentials::kubeconfig::edit::kubeadm_kubeconfig;
use kubeadm_recover::credentials::pki::{self, Key, KeyType, Profile, Request, YEAR};

/// Where the kubeadm configuration lives, inside the node (kubeadm reads it after its chroot).
pub const CONFIG_PATH: &str = "/var/lib/kubeadm-recover-sim/kubeadm.yaml";
/// The audit log, set through kubeadm's own configuration (`apiServer.extraArgs`).
pub const AUDIT_LOG: &str = "/var/log/kubernetes/audit/audit.log";
pub const APISERVER_PORT: u16 = 6443;

/// The binaries a real node needs, as the official release ships them.
pub const BINARIES: [&str; 3] = ["kubeadm", "kube-apiserver", "etcd"];

pub struct RealOptions<'a> {
    pub kube_bin: &'a Path,
    pub config: SimConfig,
}

fn kubeadm_config(node_name: &str, version: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {ADDRESS}
  bindPort: {APISERVER_PORT}
nodeRegistration:
  name: {node_name}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
apiServer:
  extraArgs:
  - name: audit-policy-file
    value: /etc/kubernetes/audit/policy.yaml
  - name: audit-log-path
    value: {AUDIT_LOG}
  extraVolumes:
  - name: audit-policy
    hostPath: /etc/kubernetes/audit
    mountPath: /etc/kubernetes/audit
    readOnly: true
    pathType: DirectoryOrCreate
  - name: audit-log
    hostPath: /var/log/kubernetes/audit
    mountPath: /var/log/kubernetes/audit
    pathType: DirectoryOrCreate
etcd:
  local:
    extraArgs:
    # what envtest does too: a test cluster's data need not survive a power cut
    - name: unsafe-no-fsync
      value: \"true\"
"
    )
}

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";

/// The version `kube-apiserver --version` reports ("v1.37.2"): kubeadm is told it explicitly,
/// so it never looks anything up.
pub fn binary_version(kube_bin: &Path) -> Result<String, String> {
    let binary = kube_bin.join("kube-apiserver");
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("Kubernetes ")
        .filter(|v| v.starts_with('v'))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{} --version said {:?}, not \"Kubernetes vX.Y.Z\"",
                binary.display(),
                text.trim()
            )
        })
}

fn run_kubeadm(root: &Path, kube_bin: &Path, phase: &[&str]) -> Result<(), String> {
    let out = Command::new(kube_bin.join("kubeadm"))
        .args(["init", "phase"])
        .args(phase)
        .arg("--rootfs")
        .arg(root)
        .args(["--config", CONFIG_PATH])
        .output()
        .map_err(|e| format!("kubeadm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "kubeadm init phase {}: {}",
            phase.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Lays out the node with the real kubeadm in `root` (empty, a sandbox).
pub fn lay_out(root: &Path, options: &RealOptions) -> Result<(), String> {
    for name in BINARIES {
        let path = options.kube_bin.join(name);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: --kube-bin needs kubeadm, kube-apiserver and etcd (tests/upstream/build.sh builds them)",
                path.display()
            ));
        }
    }
    let version = binary_version(options.kube_bin)?;
    let io = |e: std::io::Error| e.to_string();
    let mut config = options.config.clone();
    config.kube_bin = Some(
        options
            .kube_bin
            .canonicalize()
            .map_err(|e| format!("{}: {e}", options.kube_bin.display()))?,
    );
    config.save(root).map_err(io)?;
    std::fs::write(
        root.join(CONFIG_PATH.trim_start_matches('/')),
        kubeadm_config(&config.node_name, &version),
    )
    .map_err(io)?;
    let audit = root.join("etc/kubernetes/audit");
    std::fs::create_dir_all(&audit).map_err(io)?;
    std::fs::write(audit.join("policy.yaml"), AUDIT_POLICY).map_err(io)?;
    for phase in [
        &["certs", "all"][..],
        &["kubeconfig", "all"],
        &["etcd", "local"],
        &["control-plane", "apiserver"],
    ] {
        run_kubeadm(root, options.kube_bin, phase)?;
    }
    // What the pods' chroot needs besides the hostPath volumes: mount points for the binaries
    // and for /dev and /proc.
    for dir in ["usr/local/bin", "dev", "proc", "var/lib/etcd"] {
        std::fs::create_dir_all(root.join(dir)).map_err(io)?;
    }
    for name in ["etcd", "kube-apiserver"] {
        std::fs::write(root.join("usr/local/bin").join(name), "").map_err(io)?;
    }
    Ok(())
}

/// What `kubeadm init` does once the apiserver answers: `init phase upload-config all`, which
/// stores kubeadm-config (read by `kubeadm certs renew`) and creates the ClusterRoleBinding
/// that gives admin.conf's group `kubeadm:cluster-admins` cluster-admin (through super-admin.conf).
/// Run it inside the node's network namespace.
pub fn upload_config(root: &Path) -> Result<(), String> {
    let config = SimConfig::load(root);
    let kube_bin = config.kube_bin.ok_or_else(|| {
        format!(
            "{} was not laid out by kubeadm (node --kube-bin)",
            root.display()
        )
    })?;
    run_kubeadm(root, &kube_bin, &["upload-config", "all"])
}

/// Replaces kubeadm's admin.conf and super-admin.conf with ones that expired a year ago: same
/// CA, same subject, same server. On a real node, after `upload_config` (which needs a working
/// admin.conf, as during `kubeadm init`).
pub fn expire_admin_credentials(root: &Path) -> Result<(), pki::Error> {
    expire_admin_credentials_at(root, &format!("https://{ADDRESS}:{APISERVER_PORT}"))
}

/// The same for a node whose apiserver is at `server` (a real kubeadm node's).
pub fn expire_admin_credentials_at(root: &Path, server: &str) -> Result<(), pki::Error> {
    let k8s = root.join("etc/kubernetes");
    let ca_pem = std::fs::read_to_string(k8s.join("pki/ca.crt"))?;
    let ca_key = Key::from_pem(&std::fs::read_to_string(k8s.join("pki/ca.key"))?)?;
    for (file, user, group) in [
        ("admin.conf", "kubernetes-admin", "kubeadm:cluster-admins"),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            "system:masters",
        ),
    ] {
        let key = Key::generate(KeyType::Rsa2048)?;
        let cert = pki::issue(
            &ca_pem,
            &ca_key,
            &key,
            &Request {
                common_name: user,
                organizations: &[group],
                profile: Profile::Client,
                now: pki::now() - time::Duration::days(2 * 365),
                validity: YEAR,
            },
        )?;
        std::fs::write(
            k8s.join(file),
            kubeadm_kubeconfig(&ca_pem, server, user, &cert.pem, &key.pem),
        )?;
    }
    Ok(())
}
